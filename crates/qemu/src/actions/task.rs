//! The per-run action task: runs the follow-up work QEMU's events asked
//! for, in the order resync, crash, power-off, persist, stopped.

use std::sync::Arc;
use std::time::Duration;

use domain::LifecycleAction;
use qmp::commands::{QueryMigrate, QueryStatus};

use crate::events;
use crate::jobs;
use crate::lifecycle::{power, stop};
use crate::object::Domain;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::state::StopCause;
use crate::store::status;

/// How long a QEMU whose monitor closed unasked may take to exit before
/// the close counts as a broken monitor. QEMU closes its monitor as it
/// exits, and its pidfd may report the exit a moment after the EOF.
const EXIT_AFTER_CLOSE: Duration = Duration::from_secs(1);

/// The task that runs coalesced follow-up actions. Ends when its run stops.
pub(crate) async fn action_loop(s: Arc<Shared>, dom: Arc<Domain>, ctx: Arc<RunCtx>) {
    loop {
        let bits = ctx.actions.wait().await;
        if bits & super::RESYNC != 0 {
            resync(&s, &dom, &ctx).await;
        }
        if bits & super::CRASH != 0 {
            on_crash(&s, &dom, &ctx).await;
        }
        if bits & super::POWEROFF != 0 {
            on_poweroff(&s, &dom, &ctx).await;
        }
        if bits & super::RELEASE != 0 {
            crate::hotplug::release(&s, &dom, &ctx).await;
        }
        if bits & super::PERSIST != 0 {
            let _permit = s.handlers.acquire().await;
            status::persist_in_background(&s, &dom);
        }
        if bits & super::STOPPED != 0 {
            on_stopped(&s, &dom, &ctx).await;
            return;
        }
    }
}

/// QEMU exited or its monitor closed.
async fn on_stopped(s: &Shared, dom: &Arc<Domain>, ctx: &RunCtx) {
    let (process, expected) = match dom.lock().run_of(ctx.generation) {
        // Killed by us, or powered off: the exit is on its way.
        Some(run) => (
            run.process().clone(),
            run.being_killed() || run.shutdown_seen(),
        ),
        None => return,
    };
    let wait = if expected {
        s.cfg.destroy_grace
    } else {
        EXIT_AFTER_CLOSE
    };
    if !process.has_exited() && tokio::time::timeout(wait, process.exited()).await.is_err() {
        // A monitor that broke (protocol error) leaves QEMU running but
        // unmanageable: stop it rather than leak it.
        if expected {
            tracing::debug!(domain = dom.name(), "QEMU slow to exit: killing it");
        } else {
            tracing::warn!(
                domain = dom.name(),
                "monitor closed while QEMU runs: killing it"
            );
        }
        let _ = process.terminate(s.cfg.destroy_grace, true).await;
    }
    let job = jobs::begin_destroy(dom, "cleanup after QEMU exit", s.cfg.job_wait).await;
    if let Err(e) = &job {
        tracing::warn!(domain = dom.name(), error = %e, "cleaning up without the job");
    }
    stop::cleanup(s, dom, ctx.generation, None);
}

/// How many times a resync asks QEMU's state when the state keeps
/// changing while it asks (each change already came from QEMU or a
/// command it answered, so giving up then loses nothing).
const RESYNC_TRIES: u32 = 3;

/// Re-reads state from QEMU after events were coalesced: events are hints,
/// QEMU's state is the truth.
async fn resync(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    if dom.lock().run_of(ctx.generation).is_none() {
        return;
    }
    let t = s.cfg.monitor_timeout;
    for _ in 0..RESYNC_TRIES {
        let seen = dom.lock().state_version();
        match dom.qmp(&QueryStatus, t).await {
            Ok(st) if events::apply_qemu_status(s, dom, ctx, &st.status, seen) => break,
            // The state changed while QEMU answered (a suspend's `stop`
            // right after this query): that answer may be the older one.
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(domain = dom.name(), error = %e, "resync query-status failed");
                break;
            }
        }
    }
    let job_runs = dom.lock().job().is_some();
    if job_runs
        && let Ok(m) = dom.qmp(&QueryMigrate, t).await
        && let Some(st) = m.status
    {
        ctx.update_progress(|p| p.migration = Some(st));
    }
    // A coalesced DEVICE_DELETED may be among the events not seen.
    crate::hotplug::reconcile(s, dom, ctx).await;
}

/// The guest powered off (QEMU stays alive thanks to -no-shutdown): reboot
/// it, keep it, or stop QEMU, as asked.
async fn on_poweroff(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let (fake_reboot, action, process) = {
        let g = dom.lock();
        let action = g
            .live()
            .map_or(LifecycleAction::Destroy, |d| d.on_poweroff());
        match g.run_of(ctx.generation) {
            Some(run) if !run.being_killed() => (run.fake_reboot(), action, run.process().clone()),
            _ => return,
        }
    };
    match (fake_reboot, action) {
        (true, _) | (false, LifecycleAction::Restart) => {
            if let Err(e) = power::restart_guest(s, dom, ctx).await {
                tracing::warn!(domain = dom.name(), error = %e, "fake reboot failed");
            }
        }
        (false, LifecycleAction::Preserve) => {}
        (false, LifecycleAction::Destroy) => {
            // Exit is reported by the event task; the shutdown seen makes
            // it "shutoff (shutdown)".
            let _ = process.terminate(s.cfg.destroy_grace, true).await;
        }
    }
}

/// GUEST_PANICKED: apply on_crash.
async fn on_crash(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let (action, process) = {
        let mut g = dom.lock();
        let action = g.live().map_or(LifecycleAction::Destroy, |d| d.on_crash());
        let process = match action {
            LifecycleAction::Destroy => g.begin_kill(ctx.generation, StopCause::Panicked),
            _ => g.run_of(ctx.generation).map(|r| r.process().clone()),
        };
        match process {
            Some(p) => (action, p),
            None => return,
        }
    };
    match action {
        LifecycleAction::Destroy => {
            let _ = process.terminate(s.cfg.destroy_grace, true).await;
        }
        LifecycleAction::Restart => {
            if let Err(e) = power::restart_guest(s, dom, ctx).await {
                tracing::warn!(domain = dom.name(), error = %e, "restart after crash failed");
            }
        }
        LifecycleAction::Preserve => {}
    }
}
