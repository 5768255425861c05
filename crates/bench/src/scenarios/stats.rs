//! Scenario 6, statistics: `CONNECT_GET_ALL_DOMAIN_STATS` (what `virsh
//! domstats` and exporters call, all groups) over N paused VMs, first
//! idle, then while one VM's monitor hangs and a DOMAIN_SUSPEND waits on
//! it (holding its job). ferrovirtd answers from its statistics cache;
//! libvirtd takes each VM's job and asks its monitor.

use std::time::{Duration, Instant};

use rpc::Client;
use rpc::protocol::remote::{ConnectGetAllDomainStatsArgs, ConnectGetAllDomainStatsRet, procedure};

use crate::client::{self, StartAs};
use crate::daemon::{DaemonKind, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{CallOutcome, StatsResult};
use crate::stats::LatencySummary;

use super::{Rig, Special};

/// Time the suspend is given to reach the hung monitor.
const IN_FLIGHT: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    kind: DaemonKind,
    emu: Emu,
    env: &Env,
    params: &Params,
) -> BenchResult<StatsResult> {
    let special = Special {
        emu,
        start_as: StartAs::Running,
        extra: Vec::new(),
    };
    let mut p = params.clone();
    p.quiet_vms = params.stats_n.saturating_sub(1).max(1);
    let rig = Rig::start(kind, special, env, &p, "stats").await?;
    let result = measure(&rig, params).await;
    rig.daemon.stop().await;
    let result = result?;
    eprintln!(
        "  [{}/{}] stats: {} VMs idle p50 {} us; hung: {:?}",
        kind.name(),
        emu.label(),
        result.vms,
        crate::stats::shown(result.idle.p50_us),
        result.hung.iter().map(|c| c.after_s).collect::<Vec<_>>()
    );
    Ok(result)
}

/// One bulk statistics call: how many records it returned.
async fn domstats(c: &Client) -> BenchResult<usize> {
    let args = ConnectGetAllDomainStatsArgs {
        doms: Vec::new(),
        stats: 0,
        flags: 0,
    };
    let ret: ConnectGetAllDomainStatsRet = c
        .call(procedure::CONNECT_GET_ALL_DOMAIN_STATS, &args)
        .await
        .map_err(BenchError::rpc("get all domain stats"))?;
    Ok(ret.ret_stats.len())
}

async fn measure(rig: &Rig, params: &Params) -> BenchResult<StatsResult> {
    let c = client::open_within(&rig.daemon.socket, client::CONNECT).await?;
    let mut idle = Vec::new();
    let mut idle_records = 0;
    for _ in 0..params.stats_calls {
        let t0 = Instant::now();
        idle_records = domstats(&c).await?;
        idle.push(t0.elapsed());
    }
    rig.injector.hang(true).await?;
    let dom = client::lookup(&c, &rig.special).await?;
    let (c2, dom2) = (c.clone(), dom.clone());
    let cap = params.hung_cap();
    let suspend =
        tokio::spawn(async move { tokio::time::timeout(cap, client::suspend(&c2, &dom2)).await });
    tokio::time::sleep(IN_FLIGHT).await;
    let mut hung = Vec::new();
    for _ in 0..params.stats_calls.min(3) {
        hung.push(timed(cap, domstats(&c)).await);
    }
    suspend.abort();
    let _ = tokio::time::timeout(Duration::from_secs(60), c.destroy(&dom)).await;
    c.close().await;
    Ok(StatsResult {
        vms: params.stats_n,
        idle: LatencySummary::of(&idle),
        idle_records,
        how: match rig.special_emu {
            Emu::Sim => "qemu-sim `hang on`, then DOMAIN_SUSPEND",
            _ => "qmp-proxy `swallow on`, then DOMAIN_SUSPEND",
        }
        .into(),
        hung,
    })
}

/// Seconds to the microsecond: the cache answers in well under 1 ms.
fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// A bulk call awaited up to `cap`: when it returned, and how many records.
async fn timed(cap: Duration, call: impl Future<Output = BenchResult<usize>>) -> CallOutcome {
    let started = Instant::now();
    match tokio::time::timeout(cap, call).await {
        Ok(Ok(n)) => CallOutcome {
            after_s: Some(micros(started.elapsed())),
            result: format!("{n} records"),
        },
        Ok(Err(e)) => CallOutcome {
            after_s: Some(micros(started.elapsed())),
            result: format!("error: {e}"),
        },
        Err(_) => CallOutcome {
            after_s: None,
            result: format!("no answer within {} s", cap.as_secs()),
        },
    }
}
