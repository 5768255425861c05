//! Scenario 3, Hung monitor: one VM's monitor stops answering and DOMAIN_SUSPEND
//! (which needs the monitor) is put in flight on it; probes ask the other
//! VMs and the hung one; then the hung VM is destroyed.

use std::time::{Duration, Instant};

use rpc::Client;
use rpc::protocol::remote::NonnullDomain;

use crate::client::{self, StartAs};
use crate::daemon::{DaemonKind, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{CallOutcome, HungResult};
use crate::stats::{ResourceWindow, Sampler, round1, round3, shown};

use super::{Rig, Special};

/// Time the in-flight call is given to reach the hung monitor before the
/// probes of the stuck phase start.
const IN_FLIGHT: Duration = Duration::from_millis(200);
/// How long destroy of the hung VM may take.
const DESTROY_CAP: Duration = Duration::from_secs(60);

pub(crate) async fn run(
    kind: DaemonKind,
    emu: Emu,
    env: &Env,
    params: &Params,
) -> BenchResult<HungResult> {
    // Running, so that suspend really needs the monitor.
    let special = Special {
        emu,
        start_as: StartAs::Running,
        extra: Vec::new(),
    };
    let rig = Rig::start(kind, special, env, params, "hung").await?;
    let result = measure(&rig, params).await;
    rig.daemon.stop().await;
    let result = result?;
    eprintln!(
        "  [{}/{}] hung: in-flight {} s ({}) destroy {} s ({}) others p99 {} -> {} us",
        kind.name(),
        emu.label(),
        shown(result.inflight.after_s),
        result.inflight.result,
        shown(result.destroy.after_s),
        result.destroy.result,
        shown(result.others_base.latency.p99_us),
        shown(result.others_stuck.latency.p99_us)
    );
    Ok(result)
}

async fn measure(rig: &Rig, params: &Params) -> BenchResult<HungResult> {
    let daemon = &rig.daemon;
    let pid = daemon
        .pid()
        .ok_or(BenchError::Unsupported("the daemon is not running"))?;
    let sampler = Sampler::start(pid, Duration::from_millis(200), u64::MAX);
    let others_base = rig
        .probe(rig.quiet.clone(), params, Duration::from_secs(3))
        .spawn()
        .await?;
    rig.injector.hang(true).await?;
    let client = client::open_within(&daemon.socket, client::CONNECT).await?;
    let dom = client::lookup(&client, &rig.special).await?;
    let called = Instant::now();
    let inflight = spawn_suspend(&client, &dom, params.hung_cap());
    tokio::time::sleep(IN_FLIGHT).await;
    let others_stuck = rig.probe(rig.quiet.clone(), params, params.hung_window());
    let stuck_vm = rig.probe(vec![rig.special.clone()], params, params.hung_window());
    let (others_stuck, stuck_vm) = (others_stuck.spawn(), stuck_vm.spawn());
    let (others_stuck, stuck_vm_info) = (others_stuck.await?, stuck_vm.await?);
    let inflight = inflight.await?;
    let stuck_phase_s = round1(called.elapsed().as_secs_f64());
    // Destroy the hung VM, its monitor still silent.
    let destroy = timed(DESTROY_CAP, client.destroy(&dom)).await;
    let others_after = rig
        .probe(rig.quiet.clone(), params, Duration::from_secs(2))
        .spawn()
        .await?;
    client.close().await;
    let samples = sampler.finish();
    Ok(HungResult {
        how: match rig.special_emu {
            Emu::Sim => "qemu-sim `hang on`, then DOMAIN_SUSPEND",
            _ => "qmp-proxy `swallow on`, then DOMAIN_SUSPEND",
        }
        .into(),
        others_base,
        others_stuck,
        stuck_vm_info,
        others_after,
        inflight,
        stuck_phase_s,
        destroy,
        daemon_window: ResourceWindow::of(&samples, 0.0, f64::MAX),
    })
}

/// DOMAIN_SUSPEND on its own task, awaited up to `cap`.
fn spawn_suspend(
    client: &Client,
    dom: &NonnullDomain,
    cap: Duration,
) -> tokio::task::JoinHandle<CallOutcome> {
    let (client, dom) = (client.clone(), dom.clone());
    tokio::spawn(async move {
        timed(cap, async {
            client::suspend(&client, &dom)
                .await
                .map_err(|error| error.to_string())
        })
        .await
    })
}

/// Runs `call` up to `cap`: when it returned and with what.
async fn timed<E: std::fmt::Display>(
    cap: Duration,
    call: impl Future<Output = Result<(), E>>,
) -> CallOutcome {
    let started = Instant::now();
    let outcome = tokio::time::timeout(cap, call).await;
    let after_s = Some(round3(started.elapsed().as_secs_f64()));
    match outcome {
        Ok(Ok(())) => CallOutcome {
            after_s,
            result: "ok".into(),
        },
        Ok(Err(error)) => CallOutcome {
            after_s,
            result: format!("error: {error}"),
        },
        Err(_) => CallOutcome {
            after_s: None,
            result: format!("no answer within {} s", cap.as_secs()),
        },
    }
}
