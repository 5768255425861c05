//! A migration under an event flood (ferrovirtd alone): the migrating VM
//! is a qemu-sim VM (its migration takes `-sim-job-ms`, whatever the
//! bandwidth; it can inject events, real QEMU cannot) sending RTC_CHANGE
//! at a fixed rate while it migrates, beside quiet qemu-sim VMs on the
//! source daemon. Paced GET_INFO probes on the migrating VM and on the
//! quiet ones, idle and during the flooded migration; then a second
//! flooded migration, back, whose source VM is destroyed part-way, timed.
//!
//! The destination's qemu-sim gets the same command line, control socket
//! path included: it takes that path over, and the source's qemu-sim
//! unlinks the path when it exits. So the bench gives each control socket
//! a name of its own: the source's is renamed before the migration, the
//! destination's linked to a second name once it is bound (a UNIX socket
//! is reached through any link to it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testkit::netns::NetNs;

use crate::client::{self, Op, Probe, ProbeResult, StartAs};
use crate::control::Injector;
use crate::daemon::{Daemon, Emu};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::MigrationFlood;
use crate::stats::round3;

use super::{migrate, uri};

/// Events per second sent by the migrating VM.
const RATE: u64 = 10_000;
/// How long each qemu-sim migration lasts.
const JOB: Duration = Duration::from_secs(6);
/// Probing before the flood.
const IDLE: Duration = Duration::from_secs(3);
/// How long a destroyed migration's destination may take to clear.
const CLEAR: Duration = Duration::from_secs(30);

/// The VMs of the measurement.
struct Vms {
    quiet: Vec<String>,
    migrating: String,
    /// The control socket path on the migrating VM's command line.
    control: PathBuf,
}

pub(super) async fn measure(
    ns: &NetNs,
    daemons: [&Daemon; 2],
    ports: [u16; 2],
    params: &Params,
) -> BenchResult<MigrationFlood> {
    let vms = start(daemons[0], params).await?;
    let injector = aside(&vms.control, "src").await?;
    injector.wait_ready(Duration::from_secs(10)).await?;
    let socket = &daemons[0].socket;
    let (idle_migrating, idle_others) = probes(socket, &vms, params, IDLE).await?;

    // Flooded migration, there.
    injector
        .flood("RTC_CHANGE", RATE, 2.0 * JOB.as_secs_f64())
        .await?;
    let arriving = tokio::spawn(link_when_bound(vms.control.clone(), "dst"));
    let counter = Counter::start(injector.clone());
    let probing = spawn_probes(socket, &vms, params, JOB - Duration::from_secs(1));
    let took = migrate(
        ns.name(),
        &vms.migrating,
        &uri(ports[0]),
        &uri(ports[1]),
        &[],
    )
    .await;
    let (sent, flood_s) = counter.stop();
    let during = join(probing).await?;
    let took = took?;

    // Flooded migration, back, its source destroyed part-way.
    let injector = arriving.await??;
    injector.wait_ready(Duration::from_secs(10)).await?;
    injector
        .flood("RTC_CHANGE", RATE, 2.0 * JOB.as_secs_f64())
        .await?;
    let (destroy, cleared) = destroy_midway(ns, daemons, ports, &vms.migrating).await?;
    let figures = MigrationFlood {
        target_ev_s: RATE,
        achieved_ev_s: (sent as f64 / flood_s.max(1e-3)).round(),
        sim_job_s: JOB.as_secs_f64(),
        migrate_s: round3(took.as_secs_f64()),
        idle_migrating,
        idle_others,
        during_migrating: during.0,
        during_others: during.1,
        destroy_ms: round3(destroy.as_secs_f64() * 1e3),
        destination_cleared_s: cleared.map(|d| round3(d.as_secs_f64())),
    };
    eprintln!(
        "  [ferrovirtd] migration under a {RATE} ev/s flood: achieved {} ev/s, migrate {} s; \
         GET_INFO p50/p99 us: migrating VM idle {:?}/{:?} during {:?}/{:?}, others idle {:?}/{:?} \
         during {:?}/{:?}; destroy mid-migration {} ms, destination cleared in {:?} s",
        figures.achieved_ev_s,
        figures.migrate_s,
        figures.idle_migrating.latency.p50_us,
        figures.idle_migrating.latency.p99_us,
        figures.during_migrating.latency.p50_us,
        figures.during_migrating.latency.p99_us,
        figures.idle_others.latency.p50_us,
        figures.idle_others.latency.p99_us,
        figures.during_others.latency.p50_us,
        figures.during_others.latency.p99_us,
        figures.destroy_ms,
        figures.destination_cleared_s,
    );
    Ok(figures)
}

/// The quiet VMs (paused) and the migrating one (running) on `daemon`.
async fn start(daemon: &Daemon, params: &Params) -> BenchResult<Vms> {
    let quiet = super::super::vm_names("mq", 0, params.quiet_vms.max(1));
    super::super::start_vms(daemon, &quiet, Emu::Sim, &[], StartAs::Paused, 4).await?;
    let migrating = format!("{}mf", super::super::run_tag());
    let control = daemon.sim_ctl(&migrating);
    let extra = [
        "-sim-control".to_owned(),
        control.display().to_string(),
        "-sim-job-ms".to_owned(),
        JOB.as_millis().to_string(),
    ];
    let names = std::slice::from_ref(&migrating);
    super::super::start_vms(daemon, names, Emu::Sim, &extra, StartAs::Running, 1).await?;
    Ok(Vms {
        quiet,
        migrating,
        control,
    })
}

/// Waits (30 s at most) for a control socket at `path`.
async fn bound(path: &Path) -> BenchResult<()> {
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!("control socket {}", path.display()),
                after: limit,
            });
        }
        // The polling pace.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Moves the control socket at `path` to `path.SUFFIX`; its injector.
async fn aside(path: &Path, suffix: &str) -> BenchResult<Injector> {
    bound(path).await?;
    let moved = path.with_extension(suffix);
    std::fs::rename(path, &moved)
        .map_err(BenchError::io(format!("move {} aside", path.display())))?;
    Ok(Injector::Sim(moved))
}

/// Links the control socket bound next at `path` (after [`aside`] moved
/// the last one) to `path.SUFFIX`; its injector.
async fn link_when_bound(path: PathBuf, suffix: &'static str) -> BenchResult<Injector> {
    bound(&path).await?;
    let linked = path.with_extension(suffix);
    std::fs::hard_link(&path, &linked)
        .map_err(BenchError::io(format!("link {}", path.display())))?;
    Ok(Injector::Sim(linked))
}

/// Events the injector reports sent, sampled until stopped (the source's
/// qemu-sim exits when its migration completes, so the last sample is
/// what it sent).
struct Counter {
    sent: Arc<AtomicU64>,
    /// Microseconds from the start to the last sample.
    at_us: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    fn start(injector: Injector) -> Counter {
        let (sent, at_us) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, a) = (sent.clone(), at_us.clone());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let first = injector.sent().await.unwrap_or(0);
            while let Ok(now) = injector.sent().await {
                s.store(now.saturating_sub(first), Ordering::Relaxed);
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                a.store(micros, Ordering::Relaxed);
                // The sampling pace.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Counter { sent, at_us, task }
    }

    /// Events sent, and over how many seconds.
    fn stop(self) -> (u64, f64) {
        self.task.abort();
        let secs = self.at_us.load(Ordering::Relaxed) as f64 / 1e6;
        (self.sent.load(Ordering::Relaxed), secs)
    }
}

type Running = (
    tokio::task::JoinHandle<ProbeResult>,
    tokio::task::JoinHandle<ProbeResult>,
);

fn probe(socket: &Path, names: Vec<String>, params: &Params, duration: Duration) -> Probe {
    Probe {
        socket: socket.to_path_buf(),
        names,
        op: Op::Info,
        period: params.probe_period(),
        duration,
        grace: Duration::from_secs(5),
    }
}

/// Probes of the migrating VM and of the quiet ones, running.
fn spawn_probes(socket: &Path, vms: &Vms, params: &Params, duration: Duration) -> Running {
    let migrating = probe(socket, vec![vms.migrating.clone()], params, duration).spawn();
    let others = probe(socket, vms.quiet.clone(), params, duration).spawn();
    (migrating, others)
}

async fn join((migrating, others): Running) -> BenchResult<(ProbeResult, ProbeResult)> {
    Ok((migrating.await?, others.await?))
}

async fn probes(
    socket: &Path,
    vms: &Vms,
    params: &Params,
    duration: Duration,
) -> BenchResult<(ProbeResult, ProbeResult)> {
    join(spawn_probes(socket, vms, params, duration)).await
}

/// Migrates `name` back (second daemon to first) and destroys it on the
/// second once the first shows the incoming domain: how long the destroy
/// took, and how long until the first daemon no longer lists the domain
/// as active (`None`: not within the deadline).
async fn destroy_midway(
    ns: &NetNs,
    daemons: [&Daemon; 2],
    ports: [u16; 2],
    name: &str,
) -> BenchResult<(Duration, Option<Duration>)> {
    let source = client::open_within(&daemons[1].socket, client::CONNECT).await?;
    let target = client::open_within(&daemons[0].socket, client::CONNECT).await?;
    let dom = client::lookup(&source, name).await?;
    let back = {
        let (ns, name) = (ns.name().to_owned(), name.to_owned());
        let (from, to) = (uri(ports[1]), uri(ports[0]));
        tokio::spawn(async move { migrate(&ns, &name, &from, &to, &[]).await })
    };
    let arrived = wait_active(&target, name, true, Duration::from_secs(30)).await;
    if arrived.is_none() {
        back.abort();
        return Err(BenchError::Timeout {
            what: "the incoming domain of the migration back".into(),
            after: Duration::from_secs(30),
        });
    }
    let started = Instant::now();
    source
        .destroy(&dom)
        .await
        .map_err(BenchError::rpc("destroy during migration"))?;
    let destroy = started.elapsed();
    let cleared = wait_active(&target, name, false, CLEAR).await;
    if back.await?.is_ok() {
        return Err(BenchError::Refused {
            what: "virsh migrate".into(),
            answer: "succeeded although its source was destroyed".into(),
        });
    }
    source.close().await;
    target.close().await;
    Ok((destroy, cleared))
}

/// Polls until `name` is (or is no longer) an active domain of `client`;
/// how long that took, or `None` after `limit`.
async fn wait_active(
    client: &rpc::Client,
    name: &str,
    active: bool,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let found = client::lookup(client, name).await;
        let is_active = match found {
            Ok(dom) => client::state(client, &dom)
                .await
                .is_ok_and(|s| s != STATE_SHUTOFF),
            Err(_) => false,
        };
        if is_active == active {
            return Some(started.elapsed());
        }
        // The polling pace.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `VIR_DOMAIN_SHUTOFF`.
const STATE_SHUTOFF: i32 = 5;
