//! `virsh save` as an async job driven by QEMU's MIGRATION events.
//!
//! The job holds the async slot for its whole duration, does its monitor
//! work in nested jobs, and *waits for completion on the run's progress
//! watch*, which the event task updates without any job. So events keep
//! flowing while the save runs, the job is woken by the event it waits for
//! (requirement 4), queries answer from the snapshot, suspend and abort
//! follow the allow-list, and destroy still preempts everything.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use joblock::{AllowList, AsyncKind, NormalJob};
use serde_json::json;

use crate::def::Def;
use crate::domain::{AsyncJobInfo, Domain, JobOutcome, RunCtx, command};
use crate::driver::Shared;
use crate::jobstats::{CompletedJob, JobEnd, RamStats};
use crate::lifecycle;
use crate::state::{DomainState, EventKind, LifecycleKind as L, StateReason, StopCause, detail};
use crate::{Error, Result, jobs, monitor};

use super::saveimage;

/// While a save runs, re-read query-migrate at least this often: events
/// are hints (they may be coalesced, or disabled in an old QEMU).
const POLL: Duration = Duration::from_millis(500);

/// Jobs allowed beside a save (libvirt's mask: queries, abort, suspend,
/// migration tuning; destroy is always allowed).
fn allowed() -> AllowList {
    AllowList::DEFAULT
        .with(NormalJob::Suspend)
        .with(NormalJob::MigrationOp)
}

/// The name the save image's descriptor is registered under in QEMU.
const SAVE_FD: &str = "ferrovirt-save";

/// Opens `path` for appending and hands it to QEMU, which then writes the
/// migration stream straight into the file after the header
/// [`saveimage::write_header`] put there. QEMU reports "completed" only
/// after its last write returned, so the file is whole by the time the
/// job sees the event. (Piping through `exec:cat` is not: `cat` may still
/// hold a pipe's worth of stream when QEMU says it is done.)
async fn pass_image_fd(dom: &Domain, path: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("cannot open save image '{}'", path.display()), e))?;
    crate::domain::pass_fd(dom, SAVE_FD, std::os::fd::AsFd::as_fd(&f)).await
}

/// What `virsh save` may change about the image it writes.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// `--xml`: the domain XML to store instead of the live one; it must
    /// describe the same guest (host-side details such as disk sources
    /// may differ).
    pub xml: Option<String>,
    /// `--running` / `--paused`: the state a restore starts the guest in,
    /// instead of the state it was in when saved.
    pub running: Option<bool>,
}

/// The XML the image stores: the live one, or `new` if it keeps its ABI.
fn image_xml(live: &Def, new: Option<&Def>) -> Result<String> {
    match new {
        None => Ok(live.to_xml()),
        Some(new) => {
            live.check_abi(new)?;
            Ok(new.to_xml())
        }
    }
}

pub(crate) async fn save(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    path: &Path,
    opts: &SaveOptions,
) -> Result<()> {
    // Parsed before the job: malformed XML fails as it does for `define`.
    let new_def = opts.xml.as_deref().map(Def::parse).transpose()?;
    let job = jobs::begin_async(dom, AsyncKind::Save, allowed(), "save", s.cfg.job_wait).await?;
    let started = SystemTime::now();
    let (ctx, was_running, xml) = {
        let mut g = dom.lock();
        let st = g.state.state;
        if !matches!(st, DomainState::Running | DomainState::Paused) {
            return Err(Error::OperationInvalid("domain is not running".into()));
        }
        if g.block_job.is_some() {
            return Err(Error::OperationInvalid(
                "domain has an active block job".into(),
            ));
        }
        let ctx = g
            .run
            .as_ref()
            .map(|r| r.ctx.clone())
            .ok_or(Error::NotRunning)?;
        let was_running = st == DomainState::Running;
        let xml = image_xml(g.live.as_ref().unwrap_or(&g.def), new_def.as_ref())?;
        g.job = Some(AsyncJobInfo {
            kind: "save".into(),
            started,
            path: Some(path.to_path_buf()),
            resume_running: was_running,
        });
        (ctx, was_running, xml)
    };
    // The job is on disk before the image exists, so a daemon killed from
    // here on finds the job on restart and removes a partial image rather
    // than leave it behind.
    let _ = lifecycle::persist_status(s, dom);
    // The header goes first (outside the state lock: it fsyncs); QEMU
    // appends its stream after it.
    let image_running = opts.running.unwrap_or(was_running);
    if let Err(e) = saveimage::write_header(path, &xml, image_running) {
        dom.lock().job = None;
        let _ = lifecycle::persist_status(s, dom);
        return Err(e);
    }
    let res = run(s, dom, &job, &ctx, path, was_running).await;
    // Recorded now: the job's time ends here, not after a failed save's
    // resume (and a stopped QEMU's cleanup already dropped `job`).
    dom.lock().completed_job = Some(completed_record(started, &res));
    finish(s, dom, &job, &ctx, path, was_running, &res).await;
    res.map(|_| ())
}

async fn run(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    job: &joblock::AsyncJob,
    ctx: &Arc<RunCtx>,
    path: &Path,
    was_running: bool,
) -> Result<RamStats> {
    let t = s.cfg.monitor_timeout;
    let wait = s.cfg.job_wait;
    if was_running {
        let _n = job
            .nested(NormalJob::Suspend, wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        if let Some(run) = dom.lock().run_of(ctx.generation) {
            run.pending_pause = Some(crate::state::paused::SAVE);
        }
        command(dom, t, "stop", None).await?;
        mark_paused_for_save(s, dom, ctx);
    }
    ctx.update_progress(|p| p.migration = None);
    let mut progress = ctx.progress.subscribe();
    {
        let _n = job
            .nested(NormalJob::MigrationOp, wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        // Ask for MIGRATION events (real QEMU sends none without it); a
        // QEMU that lacks the capability is still polled.
        let caps = json!({"capabilities": [{"capability": "events", "state": true}]});
        let _ = command(dom, t, "migrate-set-capabilities", Some(caps)).await;
        pass_image_fd(dom, path).await?;
        let uri = format!("fd:{SAVE_FD}");
        command(dom, t, "migrate", Some(json!({"uri": uri}))).await?;
    }
    wait_completed(s, dom, ctx, &mut progress).await?;
    let ram = final_ram(s, dom).await;
    saveimage::mark_complete(path)?;
    // The state is on disk: stop QEMU as "saved".
    let process = {
        let mut g = dom.lock();
        let run = g.run_of(ctx.generation).ok_or(Error::NotRunning)?;
        run.kill_reason = Some(StopCause::Saved);
        run.process.clone()
    };
    let _ = command(dom, t, "quit", None).await;
    let _ = process.terminate(s.cfg.destroy_grace, true).await;
    lifecycle::cleanup(s, dom, ctx.generation, Some(StopCause::Saved));
    Ok(ram)
}

/// What the completed migration moved, read once while QEMU still runs
/// (nothing is known if it does not answer).
async fn final_ram(s: &Shared, dom: &Domain) -> RamStats {
    command(dom, s.cfg.monitor_timeout, "query-migrate", None)
        .await
        .ok()
        .and_then(|v| RamStats::from_query_migrate(&v))
        .unwrap_or_default()
}

fn mark_paused_for_save(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let mut g = dom.lock();
    if g.state.state == DomainState::Running
        && let Some(run) = g.run_of(ctx.generation)
    {
        run.owed_stop += 1;
        let st = StateReason::new(DomainState::Paused, crate::state::paused::SAVE);
        let ev = EventKind::lifecycle(L::Suspended, detail::SUSPENDED_PAUSED);
        g.set_state(dom, &s.hub, st, Some(ev));
    }
}

/// Waits for MIGRATION "completed", woken by the event task; re-reads
/// query-migrate periodically and after overflows.
async fn wait_completed(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    progress: &mut tokio::sync::watch::Receiver<crate::domain::Progress>,
) -> Result<()> {
    let mut seen_overflows = 0;
    loop {
        let (status, closed, overflowed) = {
            let p = progress.borrow_and_update();
            (p.migration.clone(), p.closed, p.overflowed)
        };
        match status.as_deref() {
            Some("completed") => return Ok(()),
            Some("failed") => return Err(Error::Qemu("migration to file failed".into())),
            Some("cancelled") => return Err(Error::Aborted("save job cancelled".into())),
            _ => {}
        }
        if closed {
            return Err(Error::Qemu("QEMU exited during save".into()));
        }
        let changed = tokio::time::timeout(POLL, progress.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            return Err(Error::Qemu("QEMU exited during save".into()));
        }
        if changed.is_err() || overflowed != seen_overflows {
            seen_overflows = overflowed;
            poll_migrate(s, dom, ctx).await;
        }
    }
}

async fn poll_migrate(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    if let Ok(v) = command(dom, s.cfg.monitor_timeout, "query-migrate", None).await
        && let Some(st) = monitor::str_field(&v, "status")
    {
        let st = st.to_owned();
        ctx.update_progress(|p| p.migration = Some(st));
    }
}

async fn finish(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    job: &joblock::AsyncJob,
    ctx: &Arc<RunCtx>,
    path: &Path,
    was_running: bool,
    res: &Result<RamStats>,
) {
    let outcome = JobOutcome {
        kind: "save".into(),
        success: res.is_ok(),
        message: res
            .as_ref()
            .err()
            .map_or_else(String::new, |e| e.to_string()),
    };
    {
        let mut g = dom.lock();
        g.job = None;
        g.last_job = Some(outcome);
    }
    if res.is_ok() {
        return;
    }
    let _ = std::fs::remove_file(path);
    let still_ours = dom.lock().run_of(ctx.generation).is_some();
    if still_ours
        && was_running
        && !job.destroyed()
        && let Ok(_n) = job.nested(NormalJob::Resume, s.cfg.job_wait).await
    {
        let _ = command(dom, s.cfg.monitor_timeout, "migrate_cancel", None).await;
        lifecycle::expect_resume(dom, ctx, crate::state::running::SAVE_CANCELED);
        if command(dom, s.cfg.monitor_timeout, "cont", None)
            .await
            .is_ok()
        {
            lifecycle::mark_running(s, dom, ctx, crate::state::running::SAVE_CANCELED);
        }
    }
    let _ = lifecycle::persist_status(s, dom);
}

/// The `domjobinfo --completed` record of a save that ended with `res`.
fn completed_record(started: SystemTime, res: &Result<RamStats>) -> CompletedJob {
    let (end, ram, error) = match res {
        Ok(ram) => (JobEnd::Completed, *ram, None),
        Err(e @ Error::Aborted(_)) => (JobEnd::Cancelled, RamStats::default(), Some(e)),
        Err(e) => (JobEnd::Failed, RamStats::default(), Some(e)),
    };
    CompletedJob {
        end,
        operation: "save".into(),
        elapsed_ms: crate::jobstats::elapsed_ms(started),
        ram,
        error: error.map(ToString::to_string),
    }
}

/// `domjobabort`: cancels the running save (migrate_cancel); the save
/// sees MIGRATION "cancelled", resumes the guest and fails.
pub(crate) async fn abort(s: &Shared, dom: &Domain) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Abort, "abort job", s.cfg.job_wait).await?;
    if dom.async_job().is_none() {
        return Err(Error::OperationInvalid(
            "no job is active on the domain".into(),
        ));
    }
    command(dom, s.cfg.monitor_timeout, "migrate_cancel", None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_record_follows_the_result() {
        let ram = RamStats {
            total: 10,
            transferred: 10,
            ..RamStats::default()
        };
        let started = SystemTime::now() - Duration::from_millis(1500);
        let ok = completed_record(started, &Ok(ram));
        assert!((1500..60_000).contains(&ok.elapsed_ms), "{}", ok.elapsed_ms);
        assert_eq!((ok.end, ok.ram, ok.error), (JobEnd::Completed, ram, None));
        let aborted = completed_record(started, &Err(Error::Aborted("save job cancelled".into())));
        assert_eq!(aborted.end, JobEnd::Cancelled);
        assert!(aborted.error.is_some_and(|m| m.contains("cancelled")));
        let failed = completed_record(
            started,
            &Err(Error::Qemu("migration to file failed".into())),
        );
        assert_eq!(failed.end, JobEnd::Failed);
        assert_eq!(failed.operation, "save");
    }
}
