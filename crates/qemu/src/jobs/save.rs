//! `virsh save` as an async job driven by QEMU's MIGRATION events.
//!
//! The job holds the async slot for its whole duration, does its monitor
//! work in nested jobs, and *waits for completion on the run's progress
//! watch*, which the event task updates without any job. So events keep
//! flowing while the save runs, the job is woken by the event it waits
//! for, queries answer from the snapshot, suspend and abort follow the
//! allow-list, and destroy still preempts everything. A save that a daemon
//! restart interrupted is finished (or undone) by [`readopt`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use joblock::{AllowList, AsyncKind, NormalJob};
use qmp::MigrationStatus;
use qmp::commands::{
    Cont, Migrate, MigrateCancel, MigrateSetCapabilities, QueryMigrate, Quit, Stop,
};

use super::AfterRestore;
use super::image::header;
use super::stats::{CompletedJob, JobEnd, RamStats, elapsed_ms};
use super::stream::{Until, wait_for};
use crate::lifecycle::{power, stop};
use crate::object::def::Def;
use crate::object::run::RunCtx;
use crate::object::{AsyncJobInfo, Domain, JobOutcome};
use crate::shared::Shared;
use crate::state::{StopCause, paused, running};
use crate::store::status::{self, JobRecord};
use crate::{Error, Result, jobs};

/// The async job a save is.
const KIND: AsyncKind = AsyncKind::Save;

/// Jobs allowed beside a save (libvirt's mask: queries, abort, suspend,
/// migration tuning; destroy is always allowed).
fn allowed() -> AllowList {
    AllowList::DEFAULT
        .with(NormalJob::Suspend)
        .with(NormalJob::MigrationOp)
}

/// The name the save image's descriptor is registered under in QEMU.
const SAVE_FD: &str = "ferrovirt-save";

/// What `virsh save` may change about the image it writes.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// `--xml`: the domain XML to store instead of the live one; it must
    /// describe the same guest (host-side details such as disk sources
    /// may differ).
    pub xml: Option<String>,
    /// `--running` / `--paused`: the state a restore starts the guest in,
    /// instead of the state it was in when saved.
    pub after_restore: Option<AfterRestore>,
}

/// One save in progress: what its steps share.
struct SaveJob<'a> {
    s: &'a Arc<Shared>,
    dom: &'a Arc<Domain>,
    job: joblock::AsyncJob,
    ctx: Arc<RunCtx>,
    path: &'a Path,
    was_running: bool,
}

pub(crate) async fn save(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    path: &Path,
    opts: &SaveOptions,
) -> Result<()> {
    // Parsed before the job: malformed XML fails as it does for `define`.
    let new_def = opts.xml.as_deref().map(Def::parse).transpose()?;
    let job = jobs::begin_async(dom, KIND, allowed(), "save", s.cfg.job_wait).await?;
    let started = SystemTime::now();
    let (ctx, was_running, xml) = begin(dom, path, started, new_def.as_ref())?;
    // The job is on disk before the image exists, so a daemon killed from
    // here on finds the job on restart and removes a partial image rather
    // than leave it behind; without that record the save does not begin.
    if let Err(e) = status::persist(s, dom) {
        dom.lock().end_job(None);
        return Err(e);
    }
    // The header goes first (outside the state lock: it fsyncs); QEMU
    // appends its stream after it.
    let image_running = opts.after_restore.map_or(was_running, |a| a.is_running());
    if let Err(e) = header::write_header(path, &xml, image_running) {
        dom.lock().end_job(None);
        status::persist_in_background(s, dom);
        return Err(e);
    }
    let save = SaveJob {
        s,
        dom,
        job,
        ctx,
        path,
        was_running,
    };
    let res = save.run().await;
    // Recorded now: the job's time ends here, not after a failed save's
    // resume (and a stopped QEMU's cleanup already dropped the job).
    dom.lock()
        .set_completed_job(CompletedJob::ended(KIND.into(), started, &res));
    save.finish(&res).await;
    res.map(|_| ())
}

/// Checks the domain can be saved and records the job; returns the run,
/// whether the guest ran, and the XML the image stores.
fn begin(
    dom: &Domain,
    path: &Path,
    started: SystemTime,
    new_def: Option<&Def>,
) -> Result<(Arc<RunCtx>, bool, String)> {
    let mut g = dom.lock();
    let (ctx, was_running) = g.live_job_run()?;
    let xml = image_xml(&g.current_def(), new_def)?;
    g.begin_job(AsyncJobInfo {
        operation: KIND.into(),
        started,
        path: Some(path.to_path_buf()),
        resume_running: was_running,
    });
    Ok((ctx, was_running, xml))
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

impl SaveJob<'_> {
    fn t(&self) -> Duration {
        self.s.cfg.monitor_timeout
    }

    async fn nested(&self, kind: NormalJob) -> Result<joblock::NestedJob<'_>> {
        self.job
            .nested(kind, self.s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(self.dom, e))
    }

    /// Pause, migrate into the image, wait for completion, stop QEMU.
    async fn run(&self) -> Result<RamStats> {
        let (s, dom, generation) = (self.s, self.dom, self.ctx.generation);
        if self.was_running {
            let _n = self.nested(NormalJob::Suspend).await?;
            dom.lock().expect_pause(generation, Some(paused::SAVE));
            dom.qmp(&Stop, self.t()).await?;
            dom.lock()
                .paused_by_command(dom, &s.hub, generation, paused::SAVE);
        }
        self.ctx.update_progress(|p| p.migration = None);
        // Subscribed before `migrate`, so its events cannot be missed.
        let mut progress = self.ctx.progress.subscribe();
        self.start_migration().await?;
        let until = Until {
            stall: Some(s.cfg.migration.stall_timeout),
            ..Until::default()
        };
        wait_for(s, dom, &self.ctx, &mut progress, "save", until).await?;
        let ram = final_ram(s, dom).await;
        header::mark_complete(self.path)?;
        // The state is on disk: stop QEMU as "saved".
        let process = dom
            .lock()
            .begin_kill(generation, StopCause::Saved)
            .ok_or(Error::NotRunning)?;
        // Best effort: the SIGTERM that follows stops it either way.
        let _ = dom.qmp(&Quit, self.t()).await;
        let _ = process.terminate(s.cfg.destroy_grace, true).await;
        stop::cleanup(s, dom, generation, Some(StopCause::Saved));
        Ok(ram)
    }

    /// Hands QEMU the image and starts the migration into it.
    async fn start_migration(&self) -> Result<()> {
        let _n = self.nested(NormalJob::MigrationOp).await?;
        // Ask for MIGRATION events; a QEMU without them is still polled.
        if let Err(e) = self
            .dom
            .qmp(&MigrateSetCapabilities::events(), self.t())
            .await
        {
            tracing::debug!(domain = self.dom.name(), error = %e, "no migration events");
        }
        pass_image_fd(self.dom, self.path).await?;
        let migrate = Migrate {
            uri: format!("fd:{SAVE_FD}"),
            ..Migrate::default()
        };
        self.dom.qmp(&migrate, self.t()).await?;
        Ok(())
    }

    /// Reports the outcome; a failed save removes its image and resumes
    /// a guest that ran before.
    async fn finish(&self, res: &Result<RamStats>) {
        let (s, dom) = (self.s, self.dom);
        let outcome = JobOutcome {
            operation: KIND.into(),
            success: res.is_ok(),
            message: res
                .as_ref()
                .err()
                .map_or_else(String::new, ToString::to_string),
        };
        dom.lock().end_job(Some(outcome));
        if res.is_ok() {
            return;
        }
        let _ = std::fs::remove_file(self.path);
        let still_ours = dom.lock().run_of(self.ctx.generation).is_some();
        if still_ours && !self.job.destroyed() {
            // The migration may be over already (or stalled on a hung
            // disk); cancelling is harmless, and stops it writing.
            let _ = dom.qmp(&MigrateCancel, self.t()).await;
        }
        if still_ours
            && self.was_running
            && !self.job.destroyed()
            && let Ok(_n) = self.nested(NormalJob::Resume).await
        {
            dom.lock()
                .expect_resume(self.ctx.generation, running::SAVE_CANCELED);
            if dom.qmp(&Cont, self.t()).await.is_ok() {
                power::resumed(s, dom, &self.ctx, running::SAVE_CANCELED);
            }
        }
        status::persist_in_background(s, dom);
    }
}

/// Opens `path` for appending and hands it to QEMU, which then writes the
/// migration stream straight into the file after the header
/// [`header::write_header`] put there. QEMU reports "completed" only
/// after its last write returned, so the file is whole by the time the
/// job sees the event. (Piping through `exec:cat` is not: `cat` may still
/// hold a pipe's worth of stream when QEMU says it is done.)
async fn pass_image_fd(dom: &Domain, path: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("cannot open save image '{}'", path.display()), e))?;
    dom.pass_fd(SAVE_FD, std::os::fd::AsFd::as_fd(&f)).await
}

/// What the completed migration moved, read once while QEMU still runs
/// (nothing is known if it does not answer).
pub(crate) async fn final_ram(s: &Shared, dom: &Domain) -> RamStats {
    dom.qmp(&QueryMigrate, s.cfg.monitor_timeout)
        .await
        .ok()
        .and_then(|m| RamStats::from_query_migrate(&m))
        .unwrap_or_default()
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
    dom.qmp(&MigrateCancel, s.cfg.monitor_timeout).await?;
    Ok(())
}

/// Finishes a save that ran across a daemon restart: if QEMU completed
/// the migration, the image is marked complete and QEMU stopped as saved
/// (what the old daemon would have done); otherwise the migration is
/// cancelled, the guest resumed if it ran, and the partial image removed.
/// Either way the outcome is reported as the save's.
pub(crate) async fn readopt(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx, job: &JobRecord) {
    let reply = dom.qmp(&QueryMigrate, s.cfg.monitor_timeout).await.ok();
    let status = reply.as_ref().and_then(|m| m.status.clone());
    let ram = reply.as_ref().and_then(RamStats::from_query_migrate);
    // The image is complete only once its header says so.
    let completed =
        status == Some(MigrationStatus::Completed) && header::mark_complete(&job.path).is_ok();
    let (success, message) = if completed {
        stop_saved(s, dom, ctx).await;
        (true, String::new())
    } else {
        undo_interrupted(s, dom, ctx, job).await;
        let what = status.as_ref().map_or("unknown", MigrationStatus::as_str);
        (
            false,
            format!("interrupted by daemon restart (migration {what})"),
        )
    };
    let (outcome, done) = settled(job, success, message, ram);
    let mut g = dom.lock();
    g.set_completed_job(done);
    g.end_job(Some(outcome));
}

/// Settles a save whose QEMU was gone when the daemon came back: complete
/// if its image says so (QEMU had been stopped as saved, the daemon was
/// killed before it cleaned up), else failed, its partial image removed.
pub(crate) fn found_dead(job: &JobRecord) -> (JobOutcome, CompletedJob) {
    if header::read_header(&job.path).is_ok() {
        return settled(job, true, String::new(), None);
    }
    if let Err(e) = std::fs::remove_file(&job.path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %job.path.display(), error = %e, "cannot remove a partial save image");
    }
    let message = "QEMU exited while the daemon was down".to_owned();
    settled(job, false, message, None)
}

/// The outcome and statistics of a save or dump that ran across a
/// restart: `ram` counts only if it succeeded.
pub(crate) fn settled(
    job: &JobRecord,
    success: bool,
    message: String,
    ram: Option<RamStats>,
) -> (JobOutcome, CompletedJob) {
    let done = CompletedJob {
        end: if success {
            JobEnd::Completed
        } else {
            JobEnd::Failed
        },
        operation: job.operation,
        elapsed_ms: elapsed_ms(SystemTime::UNIX_EPOCH).saturating_sub(job.started_ms),
        ram: ram.filter(|_| success).unwrap_or_default(),
        error: (!success).then(|| message.clone()),
        downtime_ms: None,
    };
    let outcome = JobOutcome {
        operation: job.operation,
        success,
        message,
    };
    (outcome, done)
}

/// The saved state reached the file: stop QEMU as "saved".
async fn stop_saved(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx) {
    let Some(process) = dom.lock().begin_kill(ctx.generation, StopCause::Saved) else {
        return;
    };
    let _ = process.terminate(s.cfg.destroy_grace, true).await;
    stop::cleanup(s, dom, ctx.generation, Some(StopCause::Saved));
}

/// The save did not finish: the guest goes back to how it was.
async fn undo_interrupted(s: &Shared, dom: &Domain, ctx: &RunCtx, job: &JobRecord) {
    let t = s.cfg.monitor_timeout;
    // The migration may be gone with the old daemon; cancelling is harmless.
    let _ = dom.qmp(&MigrateCancel, t).await;
    dom.lock()
        .expect_resume(ctx.generation, running::SAVE_CANCELED);
    if job.resume_running && dom.qmp(&Cont, t).await.is_ok() {
        power::resumed(s, dom, ctx, running::SAVE_CANCELED);
    }
    let _ = std::fs::remove_file(&job.path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JobOperation;

    #[test]
    fn completed_record_follows_the_result() {
        let ram = RamStats {
            total: 10,
            transferred: 10,
            ..RamStats::default()
        };
        let started = SystemTime::now() - Duration::from_millis(1500);
        let ok = CompletedJob::ended(KIND.into(), started, &Ok(ram));
        assert!((1500..60_000).contains(&ok.elapsed_ms), "{}", ok.elapsed_ms);
        assert_eq!((ok.end, ok.ram, ok.error), (JobEnd::Completed, ram, None));
        let aborted = CompletedJob::ended(
            KIND.into(),
            started,
            &Err(Error::Aborted("save job cancelled".into())),
        );
        assert_eq!(aborted.end, JobEnd::Cancelled);
        assert!(aborted.error.is_some_and(|m| m.contains("cancelled")));
        let failed = CompletedJob::ended(
            KIND.into(),
            started,
            &Err(Error::Qemu("migration to file failed".into())),
        );
        assert_eq!(failed.end, JobEnd::Failed);
        assert_eq!(failed.operation, JobOperation::Save);
    }
}
