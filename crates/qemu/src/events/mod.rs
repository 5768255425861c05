//! The event pipeline: QEMU's events, in QEMU's order, applied to the
//! domain without any job.
//!
//! One task per running VM owns its `qmp::Events` stream (bounded and
//! coalescing in the qmp crate). Handlers ([`handle`]) are synchronous and
//! take only the domain's short state lock, so they run while any job, even
//! one that waits for these very events, holds the job lock: an event
//! handler that needed the job lock would deadlock against such a job. Work
//! that needs a job is deferred to the coalesced per-run action set
//! ([`crate::actions`]). Handling is bounded globally by a semaphore (a
//! batch at a time) so 10,000 VMs share a fixed amount of handler work, and
//! the task yields between batches so a flooding VM cannot monopolise a
//! worker or delay other VMs.
//!
//! Guest-triggered events pass a per-run [`throttle`]; [`device`] maps
//! QEMU's block and watchdog events to libvirt's; [`hub`] fans every
//! domain event out to subscribers and listeners.

pub(crate) mod device;
mod handle;
pub(crate) mod hub;
pub(crate) mod throttle;

use std::sync::Arc;
use std::time::Duration;

use qmp::EventItem;

pub(crate) use handle::apply_qemu_status;

use crate::actions;
use crate::emulator::process::Process;
use crate::object::Domain;
use crate::object::run::RunCtx;
use crate::shared::Shared;

/// Events handled per semaphore permit before yielding.
const BATCH: usize = 64;

/// How long to keep draining events after the process exited while its
/// socket is still open (some child inherited it): bounded, then give up.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// Starts the event task and the action task of one run.
pub(crate) fn spawn_run_tasks(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    ctx: &Arc<RunCtx>,
    events: Option<qmp::Events>,
    process: Arc<Process>,
) {
    tokio::spawn(event_loop(
        s.clone(),
        dom.clone(),
        ctx.clone(),
        events,
        process,
    ));
    tokio::spawn(actions::task::action_loop(
        s.clone(),
        dom.clone(),
        ctx.clone(),
    ));
}

async fn event_loop(
    s: Arc<Shared>,
    dom: Arc<Domain>,
    ctx: Arc<RunCtx>,
    events: Option<qmp::Events>,
    process: Arc<Process>,
) {
    if let Some(mut events) = events {
        pump(&s, &dom, &ctx, &mut events, &process).await;
    } else {
        // No monitor (adopted QEMU whose monitor never answered): only the
        // pidfd tells us about its exit.
        process.exited().await;
    }
    ctx.update_progress(|p| p.closed = true);
    ctx.actions.set(actions::STOPPED);
}

/// Handles events until the monitor closes or the process is gone.
async fn pump(s: &Shared, dom: &Domain, ctx: &RunCtx, events: &mut qmp::Events, process: &Process) {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let flush_at = ctx.throttle.next_due().map(tokio::time::Instant::from_std);
        let n = tokio::select! {
            biased;
            n = events.recv_many(&mut batch, BATCH) => n,
            _ = process.exited() => {
                drain_after_exit(s, dom, ctx, events).await;
                return;
            }
            _ = sleep_until_opt(flush_at), if flush_at.is_some() => {
                handle::flush_due(s, dom, ctx);
                continue;
            }
        };
        if n == 0 {
            return;
        }
        handle_batch(s, dom, ctx, &mut batch).await;
        tokio::task::yield_now().await;
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

async fn drain_after_exit(s: &Shared, dom: &Domain, ctx: &RunCtx, events: &mut qmp::Events) {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        match tokio::time::timeout(DRAIN_AFTER_EXIT, events.recv_many(&mut batch, BATCH)).await {
            Ok(n) if n > 0 => handle_batch(s, dom, ctx, &mut batch).await,
            _ => return,
        }
    }
}

async fn handle_batch(s: &Shared, dom: &Domain, ctx: &RunCtx, batch: &mut Vec<EventItem>) {
    // Closed only at driver teardown; then just stop handling.
    let Ok(_permit) = s.handlers.acquire().await else {
        return;
    };
    for item in batch.drain(..) {
        handle::item(s, dom, ctx, item);
    }
}
