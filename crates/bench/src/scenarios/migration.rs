//! Live migration between two ferrovirtd daemons, inside a network
//! namespace the bench creates: an idle diskless guest (real QEMU, sitting
//! in its firmware) moved back and forth with `virsh migrate --live`,
//! timing each migration end to end (the client's five calls) and reading
//! the guest's downtime QEMU measured from the destination's
//! completed-job statistics.
//!
//! ferrovirtd only: the libvirt harness runs one libvirtd in the host's
//! network namespace without a TCP listener, and libvirt refuses to
//! migrate between two daemons that report the same host UUID.

use std::process::Command;
use std::time::{Duration, Instant};

use rpc::Client;
use rpc::protocol::remote::{
    DomainFlagsArgs, DomainGetJobStatsRet, TypedParamValue, procedure as p,
};
use testkit::netns::NetNs;

use crate::client::{self, StartAs};
use crate::daemon::{Daemon, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::MigrationResult;
use crate::stats::LatencySummary;

const PORTS: [u16; 2] = [16611, 16612];

/// `VIR_DOMAIN_JOB_STATS_COMPLETED`.
const JOB_STATS_COMPLETED: u32 = 1;

pub(crate) async fn run(env: &Env, params: &Params) -> BenchResult<MigrationResult> {
    let ns = NetNs::new("benchmig")?;
    let config = |port: u16, first: u16| {
        format!(
            "default_network = false\nnetwork_autostart = false\n\
             listen_tcp = \"127.0.0.1:{port}\"\nauth_tcp = \"none\"\n\
             migration_address = \"127.0.0.1\"\n\
             migration_port_min = {first}\nmigration_port_max = {}\n",
            first + 7
        )
    };
    let a = Daemon::start_ferrovirtd_in(env, "migra", Some(ns.name()), &config(PORTS[0], 49152))?;
    let b = match Daemon::start_ferrovirtd_in(
        env,
        "migrb",
        Some(ns.name()),
        &config(PORTS[1], 49160),
    ) {
        Ok(b) => b,
        Err(e) => {
            a.stop().await;
            return Err(e);
        }
    };
    let result = measure(&ns, [&a, &b], params.migration_rounds).await;
    a.stop().await;
    b.stop().await;
    drop(ns);
    result
}

async fn measure(ns: &NetNs, daemons: [&Daemon; 2], rounds: usize) -> BenchResult<MigrationResult> {
    let clients = [
        client::open_within(&daemons[0].socket, client::CONNECT).await?,
        client::open_within(&daemons[1].socket, client::CONNECT).await?,
    ];
    let name = format!("{}mig", super::run_tag());
    let xml = daemons[0].domain_xml(&name, Emu::Real, &[])?;
    client::define_start(&clients[0], &xml, StartAs::Running).await?;
    let (mut total, mut downtime) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (from, to) = (round % 2, (round + 1) % 2);
        let took = migrate(ns, &name, PORTS[from], PORTS[to]).await?;
        total.push(took);
        downtime.push(downtime_of(&clients[to], &name).await?);
    }
    let r = MigrationResult {
        rounds,
        total: LatencySummary::of(&total),
        downtime: LatencySummary::of(&downtime),
    };
    eprintln!(
        "  [ferrovirtd] migration: total p50 {:?} us, downtime p50 {:?} us",
        r.total.p50_us, r.downtime.p50_us
    );
    for c in clients {
        c.close().await;
    }
    Ok(r)
}

/// `virsh migrate --live` from the daemon on port `from` to the one on
/// `to`, timed.
async fn migrate(ns: &NetNs, name: &str, from: u16, to: u16) -> BenchResult<Duration> {
    let src = format!("qemu+tcp://127.0.0.1:{from}/system");
    let dst = format!("qemu+tcp://127.0.0.1:{to}/system");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "virsh", "-c", &src])
        .args(["migrate", "--live", name, &dst]);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| BenchError::Refused {
            what: "virsh migrate".into(),
            answer: e.to_string(),
        })?
        .map_err(BenchError::io("run virsh migrate"))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(BenchError::Refused {
            what: "virsh migrate".into(),
            answer: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(took)
}

/// The downtime the destination's completed incoming migration reports
/// (the source's QEMU measured it; the source's cookie carries it).
async fn downtime_of(client: &Client, name: &str) -> BenchResult<Duration> {
    let dom = client::lookup(client, name).await?;
    let stats: DomainGetJobStatsRet = client
        .call(
            p::DOMAIN_GET_JOB_STATS,
            &DomainFlagsArgs {
                dom,
                flags: JOB_STATS_COMPLETED,
            },
        )
        .await
        .map_err(BenchError::rpc("completed job statistics"))?;
    stats
        .params
        .iter()
        .find_map(|p| match (&*p.field, &p.value) {
            ("downtime", TypedParamValue::ULLong(ms)) => Some(Duration::from_millis(*ms)),
            _ => None,
        })
        .ok_or_else(|| BenchError::Refused {
            what: "completed job statistics".into(),
            answer: "no downtime reported".into(),
        })
}
