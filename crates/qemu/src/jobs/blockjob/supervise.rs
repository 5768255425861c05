//! The supervisor of one block job: holds the async job until QEMU's job
//! ends, woken by JOB_STATUS_CHANGE on the progress watch; finalizes and
//! dismisses it, then applies the outcome.

use std::sync::Arc;
use std::time::Duration;

use joblock::{AsyncJob, NormalJob};
use qmp::JobStatus;
use qmp::commands::{JobDismiss, JobFinalize, QueryJobs};

use super::launch::del_nodes;
use super::{BlockJobState, Intent};
use crate::lifecycle::host::owner;
use crate::object::Domain;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::state::{EventKind, block_status as B};
use crate::store::status;

/// Re-read `query-jobs` at least this often: events are hints.
const POLL: Duration = Duration::from_millis(500);

/// How the QEMU job ended, as seen by the supervisor.
enum End {
    /// Concluded (and dismissed); `error` from query-jobs.
    Concluded { error: Option<String> },
    /// QEMU or the monitor went away (destroy, crash).
    Gone,
}

/// Holds the async job until QEMU's job ends, woken by JOB_STATUS_CHANGE.
pub(super) async fn supervise(
    s: Arc<Shared>,
    dom: Arc<Domain>,
    ctx: Arc<RunCtx>,
    job: AsyncJob,
    job_id: String,
) {
    let mut rx = ctx.progress.subscribe();
    // Poll once at once: after a restart, events may have been missed.
    poll_jobs(&s, &dom, &ctx).await;
    let mut seen_overflow = rx.borrow().overflowed;
    let end = loop {
        let (status, closed, overflowed) = {
            let p = rx.borrow_and_update();
            (p.job(&job_id).cloned(), p.closed, p.overflowed)
        };
        if closed || job.destroyed() {
            break End::Gone;
        }
        match status {
            Some(JobStatus::Ready) => on_ready(&s, &dom),
            Some(JobStatus::Pending) => finalize(&s, &dom, &job, &job_id).await,
            Some(JobStatus::Concluded) => {
                let error = job_error(&s, &dom, &job_id).await;
                dismiss(&s, &dom, &job, &job_id).await;
                break End::Concluded { error };
            }
            Some(JobStatus::Null) => break End::Concluded { error: None },
            _ => {}
        }
        let changed = tokio::time::timeout(POLL, rx.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            break End::Gone;
        }
        if changed.is_err() || overflowed != seen_overflow {
            seen_overflow = overflowed;
            poll_jobs(&s, &dom, &ctx).await;
        }
    };
    finish(&s, &dom, &ctx, &job, end).await;
}

/// `job-finalize` of a pending job (a failed one is retried on the next
/// wake-up, since the job stays pending).
async fn finalize(s: &Shared, dom: &Domain, job: &AsyncJob, id: &str) {
    if let Ok(_n) = job.nested(NormalJob::Modify, s.cfg.job_wait).await {
        let cmd = JobFinalize { id: id.to_owned() };
        let _ = dom.qmp(&cmd, s.cfg.monitor_timeout).await;
    }
}

/// `job-dismiss` of a concluded job: best effort, QEMU keeps a concluded
/// job only until it exits.
async fn dismiss(s: &Shared, dom: &Domain, job: &AsyncJob, id: &str) {
    if let Ok(_n) = job.nested(NormalJob::Modify, s.cfg.job_wait).await {
        let cmd = JobDismiss { id: id.to_owned() };
        let _ = dom.qmp(&cmd, s.cfg.monitor_timeout).await;
    }
}

/// Re-reads every job's status from QEMU into the progress watch; a job
/// of ours that QEMU no longer lists is recorded as "null" (dismissed).
async fn poll_jobs(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let Ok(list) = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await else {
        return;
    };
    let ours = dom.lock().block_job().map(|b| b.job_id.clone());
    ctx.update_progress(|p| {
        if let Some(id) = ours
            && !list.iter().any(|j| j.id == id)
        {
            p.set_job(id, JobStatus::Null);
        }
        for j in list {
            p.set_job(j.id, j.status);
        }
    });
}

async fn job_error(s: &Shared, dom: &Domain, id: &str) -> Option<String> {
    let list = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await.ok()?;
    list.into_iter().find(|j| j.id == id).and_then(|j| j.error)
}

/// First READY: record it and tell clients (virsh --wait waits for it).
fn on_ready(s: &Shared, dom: &Domain) {
    {
        let mut g = dom.lock();
        let Some(mut b) = g.block_job().filter(|b| !b.ready).cloned() else {
            return;
        };
        b.ready = true;
        g.update_block_job(|cur| cur.ready = true);
        g.emit(dom, &s.hub, event_of(&b, B::READY));
    }
    status::persist_in_background(s, dom);
}

fn event_of(b: &BlockJobState, status: i32) -> EventKind {
    EventKind::BlockJob {
        disk: b.disk.clone(),
        path: b.path.clone(),
        job_type: b.job_type,
        status,
    }
}

/// Applies the outcome: pivot the live definition, drop unused nodes, emit
/// the final event, forget the job and wake synchronous aborts.
async fn finish(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx, job: &AsyncJob, end: End) {
    let Some(st) = dom.lock().block_job().cloned() else {
        return;
    };
    let status = match (&end, st.intent) {
        (End::Gone, _) => B::FAILED,
        (End::Concluded { .. }, Intent::Abort) => B::CANCELED,
        (End::Concluded { error: Some(_) }, _) => B::FAILED,
        (End::Concluded { error: None }, _) => B::COMPLETED,
    };
    if let (B::FAILED, End::Concluded { error: Some(e) }) = (status, &end) {
        // The client learns it from the BLOCK_JOB event; QEMU's reason is
        // only here.
        tracing::info!(domain = dom.name(), job = %st.job_id, error = %e, "block job failed");
    }
    let pivoted = status == B::COMPLETED && st.intent == Intent::Pivot;
    if !matches!(end, End::Gone)
        && let Ok(_n) = job.nested(NormalJob::Modify, s.cfg.job_wait).await
    {
        let unused = if pivoted {
            &st.old_nodes
        } else {
            &st.added_nodes
        };
        del_nodes(s, dom, unused).await;
    }
    let pivot_to = st
        .pivot_to
        .as_ref()
        .filter(|_| pivoted)
        .map(|(path, qcow2)| (path.as_path(), *qcow2));
    dom.lock().end_block_job(
        dom,
        &s.hub,
        ctx.generation,
        &st,
        pivot_to,
        event_of(&st, status),
    );
    status::persist_in_background(s, dom);
    // The file QEMU no longer holds (a copy's destination it did not
    // pivot to, or the source it left) goes back to its owner.
    owner::settle(s, dom, ctx.generation);
    // Wake synchronous abort/pivot callers waiting on the watch.
    ctx.update_progress(|_| {});
}
