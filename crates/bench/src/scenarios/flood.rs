//! Scenario 2, Event flood: one VM's QMP stream carries events at a target rate
//! while paced probes ask the quiet VMs and the flooded one for their info.
//!
//! Cases: RTC_CHANGE without a listener at each rate; then STOP_RESUME
//! (lifecycle events, which both daemons deliver) with a live listener at
//! the lowest rate; last RTC_CHANGE with a live listener at the highest
//! rate (the case that wedged libvirtd 9.0 in earlier measurements).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::client::{Listener, ProbeResult, StartAs};
use crate::daemon::{DaemonKind, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{FloodCase, FloodEvent, FloodResult, ListenerMode, Outcome};
use crate::stats::{ResourceWindow, Sampler, round1, rss_series, shown};

use super::{Rig, Special, responsive};

/// One flood to run.
#[derive(Debug, Clone, Copy)]
struct Case {
    event: FloodEvent,
    rate: u64,
    listener: ListenerMode,
}

fn cases(params: &Params) -> Vec<Case> {
    let lowest = params.flood_rates.iter().copied().min().unwrap_or(10_000);
    let highest = params.flood_rates.iter().copied().max().unwrap_or(100_000);
    let case = |event, rate, listener| Case {
        event,
        rate,
        listener,
    };
    let mut cases: Vec<Case> = params
        .flood_rates
        .iter()
        .map(|&rate| case(FloodEvent::RtcChange, rate, ListenerMode::None))
        .collect();
    cases.push(case(FloodEvent::StopResume, lowest, ListenerMode::Live));
    cases.push(case(FloodEvent::RtcChange, highest, ListenerMode::Live));
    cases
}

pub(crate) async fn run(
    kind: DaemonKind,
    emu: Emu,
    env: &Env,
    params: &Params,
) -> BenchResult<FloodResult> {
    // The qemu-sim rows are not like for like; in a full run they get a
    // shorter flood to keep the whole run under 15 minutes.
    let mut params = params.clone();
    if emu == Emu::Sim {
        params.flood_s = params.flood_s.min(params.sim_flood_s);
    }
    let tag = format!("flood-{}", emu.label().len());
    let special = || Special {
        emu,
        start_as: StartAs::Paused,
        extra: Vec::new(),
    };
    let cases = cases(&params);
    let mut rig = Rig::start(kind, special(), env, &params, &tag).await?;
    let mut outcomes = Vec::new();
    let mut wedged = false;
    for (index, case) in cases.iter().enumerate() {
        let outcome = match measure(&rig, *case, &params).await {
            Ok(figures) => Outcome::Done(figures),
            Err(error) => Outcome::Failed {
                error: error.to_string(),
            },
        };
        report_case(&rig, emu, *case, &outcome);
        wedged = outcome
            .done()
            .is_none_or(|figures| figures.responsive_after_post_s.is_none());
        outcomes.push(outcome);
        if wedged && index + 1 < cases.len() {
            // A daemon that stopped answering gets a fresh start for the
            // next case.
            rig.daemon.wedged = true;
            rig.daemon.stop().await;
            rig = Rig::start(kind, special(), env, &params, &tag).await?;
        }
    }
    rig.daemon.wedged = wedged;
    rig.daemon.stop().await;
    Ok(FloodResult { cases: outcomes })
}

fn report_case(rig: &Rig, emu: Emu, case: Case, outcome: &Outcome<FloodCase>) {
    let summary = match outcome {
        Outcome::Done(figures) => format!(
            "achieved {} ev/s, CPU {}%, RSS {}→{} MiB, others p99 {}→{} us, flooded p99 {} us, listener {}, responsive {}",
            figures.achieved_ev_s,
            shown(figures.daemon_flood.map(|window| window.cpu_pct_mean)),
            shown(figures.daemon_pre.map(|window| window.rss_mib_end)),
            shown(figures.daemon_flood.map(|window| window.rss_mib_peak)),
            shown(figures.others_pre.latency.p99_us),
            shown(figures.others_flood.latency.p99_us),
            shown(figures.flooded_flood.latency.p99_us),
            figures
                .listener
                .map_or_else(|| "–".into(), |count| count.received.to_string()),
            shown(figures.responsive_after_post_s)
        ),
        Outcome::Failed { error } => format!("FAILED: {error}"),
    };
    eprintln!(
        "  [{}/{}] flood {} {}/s listener={}: {summary}",
        rig.daemon.label(),
        emu.label(),
        case.event.name(),
        case.rate,
        match case.listener {
            ListenerMode::Live => "live",
            ListenerMode::None => "none",
        }
    );
}

/// Probes of the quiet VMs and of the flooded one, side by side.
struct ProbePair {
    others: ProbeResult,
    flooded: ProbeResult,
}

/// The two probes, running.
type RunningPair = (JoinHandle<ProbeResult>, JoinHandle<ProbeResult>);

fn spawn_pair(rig: &Rig, params: &Params, secs: f64) -> RunningPair {
    let duration = Duration::from_secs_f64(secs);
    let others = rig.probe(rig.quiet.clone(), params, duration).spawn();
    let flooded = rig
        .probe(vec![rig.special.clone()], params, duration)
        .spawn();
    (others, flooded)
}

async fn join_pair((others, flooded): RunningPair) -> BenchResult<ProbePair> {
    Ok(ProbePair {
        others: others.await?,
        flooded: flooded.await?,
    })
}

async fn probe_pair(rig: &Rig, params: &Params, secs: f64) -> BenchResult<ProbePair> {
    join_pair(spawn_pair(rig, params, secs)).await
}

/// The flood phase: its probes, and what the injector achieved.
struct FloodPhase {
    probes: ProbePair,
    elapsed_s: f64,
    achieved_ev_s: f64,
    guard_tripped: bool,
    /// Its start and end on the sampler's clock.
    from_s: f64,
    to_s: f64,
}

async fn flood_phase(
    rig: &Rig,
    case: Case,
    params: &Params,
    sampler: &Sampler,
) -> BenchResult<FloodPhase> {
    let injector = &rig.injector;
    let sent_before = injector.sent().await.unwrap_or(0);
    let started = Instant::now();
    let from_s = sampler.now_s();
    injector
        .flood(case.event.name(), case.rate, params.flood_s)
        .await?;
    let probes = spawn_pair(rig, params, params.flood_s);
    let guard_tripped = guard_memory(rig, sampler, started, params.flood_s).await;
    let elapsed_s = started.elapsed().as_secs_f64();
    let sent_after = injector.sent().await.unwrap_or(sent_before);
    let _ = injector.stop_flood().await;
    let to_s = sampler.now_s();
    Ok(FloodPhase {
        probes: join_pair(probes).await?,
        elapsed_s,
        achieved_ev_s: round1(sent_after.saturating_sub(sent_before) as f64 / elapsed_s),
        guard_tripped,
        from_s,
        to_s,
    })
}

/// Watches the sampler until the flood's time is up; stops the flood once
/// the daemon's RSS passed the limit. Whether it did.
async fn guard_memory(rig: &Rig, sampler: &Sampler, started: Instant, secs: f64) -> bool {
    let mut tripped = false;
    while started.elapsed().as_secs_f64() < secs {
        if !tripped && sampler.tripped.load(Ordering::Relaxed) {
            tripped = true;
            let _ = rig.injector.stop_flood().await;
        }
        // The guard's pace.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tripped
}

async fn measure(rig: &Rig, case: Case, params: &Params) -> BenchResult<FloodCase> {
    let daemon = &rig.daemon;
    let pid = daemon
        .pid()
        .ok_or(BenchError::Unsupported("the daemon is not running"))?;
    let listener = match case.listener {
        ListenerMode::Live => Some(Listener::start(&daemon.socket).await?),
        ListenerMode::None => None,
    };
    let sampler = Sampler::start(pid, Duration::from_millis(200), params.rss_limit_mib * 1024);
    let pre = probe_pair(rig, params, params.pre_s).await?;
    let pre_end_s = sampler.now_s();
    let flood = flood_phase(rig, case, params, &sampler).await?;
    let listener_at_flood_end = listener.as_ref().map(Listener::count);
    let post = probe_pair(rig, params, params.post_s).await?;
    let post_end_s = sampler.now_s();
    let responsive_after_post_s = responsive(daemon, &rig.quiet[0], Duration::from_secs(10)).await;
    let listener = match listener {
        Some(listener) => Some(listener.stop().await),
        None => None,
    };
    let samples = sampler.finish();
    Ok(FloodCase {
        event: case.event,
        target_ev_s: case.rate,
        flood_target_s: params.flood_s,
        listener_mode: case.listener,
        flood_s: round1(flood.elapsed_s),
        achieved_ev_s: flood.achieved_ev_s,
        rss_guard_tripped: flood.guard_tripped,
        daemon_pre: ResourceWindow::of(&samples, 0.0, pre_end_s),
        daemon_flood: ResourceWindow::of(&samples, flood.from_s, flood.to_s),
        daemon_post: ResourceWindow::of(&samples, flood.to_s, post_end_s),
        rss_series: rss_series(&samples, 60),
        others_pre: pre.others,
        others_flood: flood.probes.others,
        others_post: post.others,
        flooded_pre: pre.flooded,
        flooded_flood: flood.probes.flooded,
        flooded_post: post.flooded,
        listener,
        listener_at_flood_end,
        responsive_after_post_s,
    })
}
