//! Scenario 4, Event latency: QEMU raises STOP/RESUME on a running VM and the
//! lifecycle callback on a registered client is timed, idle and while a
//! job on the same VM waits for its monitor.

use std::path::Path;
use std::time::Duration;

use rpc::Client;
use rpc::protocol::remote::NonnullDomain;
use tokio::time::Instant;

use crate::client::{self, LifecycleStream, StartAs};
use crate::control::{Injector, Qmp};
use crate::daemon::{DaemonKind, Emu, Env};
use crate::error::BenchResult;
use crate::params::Params;
use crate::results::{EventLatency, EventsResult};
use crate::stats::{LatencySummary, shown};

use super::{Rig, Special};

/// Time the held job is given to reach the monitor before sampling.
const IN_FLIGHT: Duration = Duration::from_millis(300);
/// How long one callback may take to arrive before it counts as missed.
const CALLBACK: Duration = Duration::from_secs(5);
/// The pace of the samples.
const BETWEEN_SAMPLES: Duration = Duration::from_millis(10);

pub(crate) async fn run(
    kind: DaemonKind,
    emu: Emu,
    env: &Env,
    params: &Params,
) -> BenchResult<EventsResult> {
    let qmp_path = env
        .work
        .join(format!("evq-{}-{}.sock", kind.name(), emu.label().len()));
    let _ = std::fs::remove_file(&qmp_path);
    let extra = match emu {
        Emu::Sim => Vec::new(),
        _ => vec![
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp_path.display()),
        ],
    };
    let mut params = params.clone();
    params.quiet_vms = 1;
    let special = Special {
        emu,
        start_as: StartAs::Running,
        extra,
    };
    let rig = Rig::start(kind, special, env, &params, "events").await?;
    let result = measure(&rig, &qmp_path, &params).await;
    rig.daemon.stop().await;
    let _ = std::fs::remove_file(&qmp_path);
    let result = result?;
    eprintln!(
        "  [{}/{}] events: idle p50 {} p99 {} us; during job p50 {} p99 {} us",
        kind.name(),
        emu.label(),
        shown(result.idle.latency.p50_us),
        shown(result.idle.latency.p99_us),
        shown(result.during_job.latency.p50_us),
        shown(result.during_job.latency.p99_us)
    );
    Ok(result)
}

/// How an event is raised in QEMU.
enum Source {
    /// Our own QMP monitor on the real QEMU: `stop` / `cont`.
    Qmp(Qmp),
    /// qemu-sim's control socket: `event STOP` / `event RESUME`.
    Sim(Injector),
}

impl Source {
    fn describe(&self) -> &'static str {
        match self {
            Source::Qmp(_) => {
                "stop/cont on a second QMP monitor of the same QEMU; latency = callback receipt - our own receipt of the QMP event"
            }
            Source::Sim(_) => {
                "qemu-sim control `event STOP|RESUME`; latency = callback receipt - control command sent"
            }
        }
    }

    /// Makes QEMU stop (or continue); returns when the command was sent
    /// and when QEMU's event was seen (the same for qemu-sim).
    async fn toggle(&mut self, running: bool) -> BenchResult<(Instant, Instant)> {
        let (command, event) = if running {
            ("stop", "STOP")
        } else {
            ("cont", "RESUME")
        };
        match self {
            Source::Qmp(qmp) => qmp.exec_until_event(command, event).await,
            Source::Sim(injector) => {
                let sent = Instant::now();
                injector.raise_event(event).await?;
                Ok((sent, sent))
            }
        }
    }
}

/// The VM the events are raised on.
struct Target<'a> {
    client: &'a Client,
    dom: &'a NonnullDomain,
    name: &'a str,
}

async fn measure(rig: &Rig, qmp_path: &Path, params: &Params) -> BenchResult<EventsResult> {
    let daemon = &rig.daemon;
    let mut stream = LifecycleStream::start(&daemon.socket).await?;
    let mut source = match &rig.injector {
        Injector::Sim(_) => Source::Sim(rig.injector.clone()),
        Injector::Proxy(_) => Source::Qmp(Qmp::connect(qmp_path, Duration::from_secs(10)).await?),
    };
    let client = client::open_within(&daemon.socket, client::CONNECT).await?;
    let dom = client::lookup(&client, &rig.special).await?;
    let target = Target {
        client: &client,
        dom: &dom,
        name: &rig.special,
    };
    let samples = params.event_samples;
    let idle = sample(
        &mut source,
        &mut stream,
        &target,
        samples,
        Duration::from_secs(60),
    )
    .await?;
    // A job held on the same VM: DOMAIN_SUSPEND whose monitor reply never
    // comes (sim `hang on` / proxy `swallow on`).
    rig.injector.hang(true).await?;
    let job = {
        let (client, dom) = (client.clone(), dom.clone());
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), client::suspend(&client, &dom)).await
        })
    };
    tokio::time::sleep(IN_FLIGHT).await;
    stream.drain();
    // Stay well inside ferrovirtd's monitor deadline.
    let budget =
        Duration::from_secs_f64((params.ferrovirtd_monitor_timeout_s as f64 - 1.5).max(1.0));
    let during_job = sample(&mut source, &mut stream, &target, samples, budget).await?;
    let job_still_in_flight = !job.is_finished();
    rig.injector.hang(false).await?;
    if daemon.kind == DaemonKind::Libvirtd {
        // The swallowed reply never comes: destroy frees the job.
        let _ = tokio::time::timeout(Duration::from_secs(30), client.destroy(&dom)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), job).await;
    stream.stop().await;
    client.close().await;
    Ok(EventsResult {
        how: source.describe().into(),
        idle,
        during_job,
        job: "DOMAIN_SUSPEND in flight whose monitor reply is withheld (hang/swallow) — a held modify job, not an async job (the bench does not drive DOMAIN_SAVE yet)".into(),
        job_still_in_flight_after_samples: job_still_in_flight,
    })
}

/// Up to `count` STOP/RESUME round trips within `budget`, timed from
/// QEMU's event (and from the command) to the client's callback.
async fn sample(
    source: &mut Source,
    stream: &mut LifecycleStream,
    target: &Target<'_>,
    count: usize,
    budget: Duration,
) -> BenchResult<EventLatency> {
    let mut from_event = Vec::new();
    let mut from_command = Vec::new();
    let mut missed = 0;
    let end = Instant::now() + budget;
    // The state QEMU is in decides the next event.
    let mut running = match source {
        Source::Qmp(qmp) => qmp.running().await?,
        Source::Sim(_) => {
            let state = client::state(target.client, target.dom).await;
            state.unwrap_or(client::STATE_RUNNING) == client::STATE_RUNNING
        }
    };
    for _ in 0..count {
        if Instant::now() > end {
            break;
        }
        let want = if running {
            client::EVENT_SUSPENDED
        } else {
            client::EVENT_RESUMED
        };
        let (sent, seen) = source.toggle(running).await?;
        running = !running;
        match stream.wait_for(target.name, want, CALLBACK).await {
            Some(callback) => {
                from_event.push(callback.saturating_duration_since(seen));
                from_command.push(callback.saturating_duration_since(sent));
            }
            None => missed += 1,
        }
        tokio::time::sleep(BETWEEN_SAMPLES).await;
        stream.drain();
    }
    Ok(EventLatency {
        latency: LatencySummary::of(&from_event),
        from_command_sent: LatencySummary::of(&from_command),
        missed_callbacks: missed,
    })
}
