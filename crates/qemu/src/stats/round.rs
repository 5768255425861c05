//! One statistics round of one running domain: the QMP queries, sent
//! together (the monitor pipelines them) with one deadline, then `/proc`.

use std::future::Future;
use std::time::{Duration, Instant};

use qmp::QmpError;
use qmp::commands::{
    BalloonGuestStats, QomGet, QueryBalloon, QueryBlockstats, QueryCpusFast, QueryIothreads,
    QueryNamedBlockNodes,
};

use super::cache::RoundError;
use super::health::Health;
use super::sample::{self, Replies, Sample};
use crate::object::Domain;

/// The balloon device `argv` creates.
pub(crate) const BALLOON_PATH: &str = "/machine/peripheral/balloon0";

/// Runs `fut` (a monitor command) and records its round trip.
async fn timed<T>(
    health: &Health,
    fut: impl Future<Output = Result<T, QmpError>>,
) -> Result<T, QmpError> {
    let t0 = Instant::now();
    let r = fut.await;
    let timed_out = matches!(r, Err(QmpError::Timeout { .. }));
    health.monitor_command(t0.elapsed(), timed_out);
    r
}

/// A query that is only sent when `send` is true.
async fn maybe<T>(
    send: bool,
    fut: impl Future<Output = Result<T, QmpError>>,
) -> Option<Result<T, QmpError>> {
    if send { Some(fut.await) } else { None }
}

/// The round of run `generation`.
pub(crate) async fn round(
    health: &Health,
    dom: &Domain,
    generation: u64,
    deadline: Duration,
) -> Result<Sample, RoundError> {
    let (mon, pid, def, pivoted, taps) = {
        let g = dom.lock();
        let run = g.run_of(generation).ok_or(RoundError::NoMonitor)?;
        let mon = run.monitor().cloned().ok_or(RoundError::NoMonitor)?;
        let pivoted = run.pivoted_nodes().to_vec();
        let taps = run.taps().to_vec();
        (mon, run.process().pid(), g.current_def(), pivoted, taps)
    };
    let balloon = def.has_balloon();
    let guest_stats = QomGet {
        path: BALLOON_PATH.into(),
        property: "guest-stats".into(),
    };
    let nodes = QueryNamedBlockNodes { flat: Some(true) };
    let blockstats = QueryBlockstats::default();
    let (bs, nodes, bal, guest, cpus, iot) = tokio::join!(
        timed(health, mon.execute_timeout(&blockstats, deadline)),
        timed(health, mon.execute_timeout(&nodes, deadline)),
        maybe(
            balloon,
            timed(health, mon.execute_timeout(&QueryBalloon, deadline))
        ),
        maybe(
            balloon,
            timed(health, mon.execute_timeout(&guest_stats, deadline))
        ),
        timed(health, mon.execute_timeout(&QueryCpusFast, deadline)),
        timed(health, mon.execute_timeout(&QueryIothreads, deadline)),
    );
    let lost = |r: Option<&QmpError>| match r {
        Some(QmpError::Timeout { .. }) => Some(RoundError::Timeout(deadline)),
        Some(QmpError::Closed(_)) => Some(RoundError::NoMonitor),
        _ => None,
    };
    let failure = [
        lost(bs.as_ref().err()),
        lost(nodes.as_ref().err()),
        lost(cpus.as_ref().err()),
        lost(iot.as_ref().err()),
    ]
    .into_iter()
    .flatten()
    .next();
    if let Some(e) = failure {
        return Err(e);
    }
    let replies = Replies {
        blockstats: bs.unwrap_or_default(),
        nodes: nodes.unwrap_or_default(),
        balloon_bytes: bal.and_then(Result::ok).and_then(|b| b.actual),
        guest: guest
            .and_then(Result::ok)
            .and_then(|v| serde_json::from_value::<BalloonGuestStats>(v).ok()),
        cpus: cpus.unwrap_or_default(),
        iothreads: iot.unwrap_or_default(),
    };
    let mut sample = sample::build(&def, &pivoted, pid, replies);
    sample.nets = sample::nets(&taps, def.nic_macs().len());
    Ok(sample)
}
