//! `virsh dump` as an async job: the guest's state (a migration stream
//! into the file, as `save` writes it) or its memory alone
//! (`dump-guest-memory`, run detached and ended by `DUMP_COMPLETED`).
//!
//! Like save, the job waits on the run's progress watch, which the event
//! task updates without any job: events keep flowing, queries answer from
//! the snapshot, and destroy still preempts it. Unlike save, the guest
//! goes on afterwards: resumed if it ran, reset with `--reset`, or
//! stopped as crashed with `--crash`. A dump a daemon restart interrupted
//! is settled by [`readopt`].

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use joblock::{AllowList, AsyncKind, NormalJob};
use qmp::commands::{
    Cont, DumpFormat, DumpGuestMemory, DumpStatus, Migrate, MigrateCancel, MigrateSetCapabilities,
    QueryDump, QueryMigrate, QueryStatus, Quit, Stop, SystemReset,
};
use qmp::{MigrationStatus, RunState};
use tokio::sync::watch;

use super::save::{final_ram, settled};
use super::stats::{CompletedJob, RamStats};
use super::stream::{Until, wait_for};
use crate::lifecycle::{power, stop};
use crate::object::run::{Progress, RunCtx};
use crate::object::{AsyncJobInfo, Domain, JobOutcome};
use crate::shared::Shared;
use crate::state::{StopCause, paused, running};
use crate::store::status::{self, JobRecord};
use crate::{Error, Result, jobs};

/// The async job a dump is.
const KIND: AsyncKind = AsyncKind::Dump;

/// While a dump runs, re-read QEMU's progress at least this often: events
/// are hints (they may be coalesced).
const POLL: Duration = Duration::from_millis(500);

/// The name the dump file's descriptor is registered under in QEMU.
const DUMP_FD: &str = "ferrovirt-dump";

/// Jobs allowed beside a dump (libvirt's mask: queries, abort, suspend,
/// migration tuning; destroy is always allowed).
fn allowed() -> AllowList {
    AllowList::DEFAULT
        .with(NormalJob::Suspend)
        .with(NormalJob::MigrationOp)
}

/// What a memory-only dump writes (`virDomainCoreDumpFormat`, with
/// libvirt's "raw" being an ELF core for a memory-only dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryDumpFormat {
    Elf,
    KdumpZlib,
    KdumpLzo,
    KdumpSnappy,
    WinDmp,
}

impl MemoryDumpFormat {
    fn qemu(self) -> DumpFormat {
        match self {
            MemoryDumpFormat::Elf => DumpFormat::Elf,
            MemoryDumpFormat::KdumpZlib => DumpFormat::KdumpZlib,
            MemoryDumpFormat::KdumpLzo => DumpFormat::KdumpLzo,
            MemoryDumpFormat::KdumpSnappy => DumpFormat::KdumpSnappy,
            MemoryDumpFormat::WinDmp => DumpFormat::WinDmp,
        }
    }
}

/// What the dump file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpContent {
    /// The whole guest state as a migration stream (libvirt's default).
    State,
    /// Guest memory only (`--memory-only`), in a core format.
    Memory(MemoryDumpFormat),
}

/// What becomes of the guest once its dump is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AfterDump {
    /// It goes on as before (resumed if it was paused for the dump).
    #[default]
    Continue,
    /// `--crash`: it stops, as crashed.
    Crash,
    /// `--reset`: it resets.
    Reset,
}

/// How `virsh dump` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    pub content: DumpContent,
    /// `--live`: the guest keeps running while its state is written
    /// (QEMU still pauses it briefly at the end).
    pub live: bool,
    pub after: AfterDump,
}

/// One dump in progress: what its steps share.
struct DumpJob<'a> {
    s: &'a Arc<Shared>,
    dom: &'a Arc<Domain>,
    job: joblock::AsyncJob,
    ctx: Arc<RunCtx>,
    path: &'a Path,
    opts: DumpOptions,
    was_running: bool,
}

pub(crate) async fn dump(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    path: &Path,
    opts: DumpOptions,
) -> Result<()> {
    let job = jobs::begin_async(dom, KIND, allowed(), "dump", s.cfg.job_wait).await?;
    let started = SystemTime::now();
    let (ctx, was_running) = begin(dom, path, started)?;
    // Recorded before the file exists: a daemon killed from here on finds
    // the job on restart and settles it (see `readopt`).
    if let Err(e) = status::persist(s, dom) {
        dom.lock().end_job(None);
        return Err(e);
    }
    let d = DumpJob {
        s,
        dom,
        job,
        ctx,
        path,
        opts,
        was_running,
    };
    let res = d.run().await;
    dom.lock()
        .set_completed_job(CompletedJob::ended(KIND.into(), started, &res));
    d.finish(&res).await;
    res.map(|_| ())
}

/// Checks the domain can be dumped and records the job; returns the run
/// and whether the guest ran.
fn begin(dom: &Domain, path: &Path, started: SystemTime) -> Result<(Arc<RunCtx>, bool)> {
    let mut g = dom.lock();
    let (ctx, was_running) = g.live_job_run()?;
    g.begin_job(AsyncJobInfo {
        operation: KIND.into(),
        started,
        path: Some(path.to_path_buf()),
        resume_running: was_running,
    });
    Ok((ctx, was_running))
}

impl DumpJob<'_> {
    fn t(&self) -> Duration {
        self.s.cfg.monitor_timeout
    }

    async fn nested(&self, kind: NormalJob) -> Result<joblock::NestedJob<'_>> {
        self.job
            .nested(kind, self.s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(self.dom, e))
    }

    /// Pauses the guest unless `--live`, writes the file, then crashes or
    /// resets the guest if asked.
    async fn run(&self) -> Result<RamStats> {
        let generation = self.ctx.generation;
        if self.was_running && !self.opts.live {
            let _n = self.nested(NormalJob::Suspend).await?;
            self.dom.lock().expect_pause(generation, Some(paused::DUMP));
            self.dom.qmp(&Stop, self.t()).await?;
            self.dom
                .lock()
                .paused_by_command(self.dom, &self.s.hub, generation, paused::DUMP);
        }
        let file = create_file(self.path)?;
        // Subscribed before the dump starts, so its end cannot be missed.
        let mut progress = self.ctx.progress.subscribe();
        let ram = match self.opts.content {
            DumpContent::State => {
                self.ctx.update_progress(|p| p.migration = None);
                self.start_migration(&file).await?;
                drop(file);
                let until = Until {
                    stall: Some(self.s.cfg.migration.stall_timeout),
                    ..Until::default()
                };
                let (s, dom, ctx) = (self.s, self.dom, &self.ctx);
                wait_for(s, dom, ctx, &mut progress, "dump", until).await?;
                final_ram(self.s, self.dom).await
            }
            DumpContent::Memory(format) => {
                // Marked active before QEMU starts it: `domjobabort` reads
                // this to refuse what QEMU cannot cancel.
                self.ctx
                    .update_progress(|p| p.set_dump(DumpStatus::Active, None));
                self.start_memory_dump(&file, format).await?;
                drop(file);
                wait_dumped(self.s, self.dom, &self.ctx, &mut progress).await?
            }
        };
        match self.opts.after {
            AfterDump::Continue => {}
            AfterDump::Crash => self.crash().await,
            AfterDump::Reset => {
                let _n = self.nested(NormalJob::Modify).await?;
                self.dom.qmp(&SystemReset, self.t()).await?;
            }
        }
        Ok(ram)
    }

    /// Hands QEMU the file and migrates the guest's state into it.
    async fn start_migration(&self, file: &std::fs::File) -> Result<()> {
        let _n = self.nested(NormalJob::MigrationOp).await?;
        if let Err(e) = self
            .dom
            .qmp(&MigrateSetCapabilities::events(), self.t())
            .await
        {
            tracing::debug!(domain = self.dom.name(), error = %e, "no migration events");
        }
        self.dom
            .pass_fd(DUMP_FD, std::os::fd::AsFd::as_fd(file))
            .await?;
        let migrate = Migrate {
            uri: format!("fd:{DUMP_FD}"),
            ..Migrate::default()
        };
        self.dom.qmp(&migrate, self.t()).await?;
        Ok(())
    }

    /// Hands QEMU the file and starts a detached memory dump into it.
    async fn start_memory_dump(
        &self,
        file: &std::fs::File,
        format: MemoryDumpFormat,
    ) -> Result<()> {
        let _n = self.nested(NormalJob::MigrationOp).await?;
        self.dom
            .pass_fd(DUMP_FD, std::os::fd::AsFd::as_fd(file))
            .await?;
        let cmd = DumpGuestMemory {
            paging: false,
            protocol: format!("fd:{DUMP_FD}"),
            detach: Some(true),
            format: Some(format.qemu()),
        };
        self.dom.qmp(&cmd, self.t()).await?;
        Ok(())
    }

    /// `--crash`: the dump is written; QEMU stops and the domain is shut
    /// off as crashed.
    async fn crash(&self) {
        let (s, dom, generation) = (self.s, self.dom, self.ctx.generation);
        let Some(process) = dom.lock().begin_kill(generation, StopCause::Dumped) else {
            return;
        };
        // Best effort: the SIGTERM that follows stops it either way.
        let _ = dom.qmp(&Quit, self.t()).await;
        let _ = process.terminate(s.cfg.destroy_grace, true).await;
        stop::cleanup(s, dom, generation, Some(StopCause::Dumped));
    }

    /// Reports the outcome; a failed dump removes its file. A guest that
    /// ran before runs again (unless it crashed as asked), whether the dump
    /// paused it or QEMU did at the end of a live one.
    async fn finish(&self, res: &Result<RamStats>) {
        let outcome = JobOutcome {
            operation: KIND.into(),
            success: res.is_ok(),
            message: res
                .as_ref()
                .err()
                .map_or_else(String::new, ToString::to_string),
        };
        self.dom.lock().end_job(Some(outcome));
        if res.is_err() {
            let _ = std::fs::remove_file(self.path);
            // The migration may be over already; cancelling is harmless.
            if self.opts.content == DumpContent::State {
                let _ = self.dom.qmp(&MigrateCancel, self.t()).await;
            }
        }
        let crashed = res.is_ok() && self.opts.after == AfterDump::Crash;
        let still_ours = self.dom.lock().run_of(self.ctx.generation).is_some();
        if still_ours
            && self.was_running
            && !crashed
            && !self.job.destroyed()
            && let Ok(_n) = self.nested(NormalJob::Resume).await
        {
            self.resume().await;
        }
        status::persist_in_background(self.s, self.dom);
    }

    async fn resume(&self) {
        let (s, dom, ctx) = (self.s, self.dom, &self.ctx);
        if self.opts.content == DumpContent::State {
            migration_settled(s, dom).await;
        }
        dom.lock().expect_resume(ctx.generation, running::UNPAUSED);
        match dom.qmp(&Cont, s.cfg.monitor_timeout).await {
            Ok(_) => power::resumed(s, dom, ctx, running::UNPAUSED),
            Err(e) => {
                tracing::warn!(domain = dom.name(), error = %e, "cannot resume after the dump");
            }
        }
    }
}

/// QEMU reports a migration completed before its migration thread has
/// left the finish-migrate state, and refuses `cont` until it has: wait
/// for that (polling, bounded by the monitor deadline) before resuming.
async fn migration_settled(s: &Shared, dom: &Domain) {
    let deadline = tokio::time::Instant::now() + s.cfg.monitor_timeout;
    while tokio::time::Instant::now() < deadline {
        match dom.qmp(&QueryStatus, s.cfg.monitor_timeout).await {
            Ok(st) if st.status == RunState::FinishMigrate => {
                tokio::time::sleep(SETTLE_POLL).await;
            }
            _ => return,
        }
    }
}

/// How often [`migration_settled`] asks.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// Creates (or truncates) the dump file, readable by its owner only: a
/// guest's memory can hold anything.
fn create_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create dump file '{}'", path.display()), e))
}

/// Waits for the detached dump's end, woken by DUMP_COMPLETED on the
/// progress watch; re-reads query-dump periodically and after overflows.
/// Returns the bytes written, as memory statistics.
async fn wait_dumped(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    progress: &mut watch::Receiver<Progress>,
) -> Result<RamStats> {
    let mut seen_overflows = 0;
    loop {
        let (dump, closed, overflowed) = {
            let p = progress.borrow_and_update();
            (p.dump.clone(), p.closed, p.overflowed)
        };
        match dump {
            Some((DumpStatus::Completed, _)) => return Ok(memory_written(s, dom).await),
            Some((DumpStatus::Failed, why)) => {
                let why = why.unwrap_or_else(|| "no reason given".into());
                return Err(Error::Qemu(format!("memory dump failed: {why}")));
            }
            _ => {}
        }
        if closed {
            return Err(Error::Qemu("QEMU exited during dump".into()));
        }
        let changed = tokio::time::timeout(POLL, progress.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            return Err(Error::Qemu("QEMU exited during dump".into()));
        }
        if changed.is_err() || overflowed != seen_overflows {
            seen_overflows = overflowed;
            poll_dump(s, dom, ctx).await;
        }
    }
}

/// Re-reads the dump's status into the progress watch. "none" is not
/// news: QEMU answers it before the dump thread has begun.
async fn poll_dump(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    if let Ok(q) = dom.qmp(&QueryDump, s.cfg.monitor_timeout).await
        && matches!(q.status, DumpStatus::Completed | DumpStatus::Failed)
    {
        ctx.update_progress(|p| p.set_dump(q.status, None));
    }
}

/// The memory dump's size, for `domjobinfo --completed`.
async fn memory_written(s: &Shared, dom: &Domain) -> RamStats {
    match dom.qmp(&QueryDump, s.cfg.monitor_timeout).await {
        Ok(q) => memory_stats(q.completed, q.total),
        Err(_) => RamStats::default(),
    }
}

/// Memory statistics from a dump's counters.
pub(crate) fn memory_stats(completed: Option<u64>, total: Option<u64>) -> RamStats {
    let total = total.unwrap_or(0);
    let done = completed.unwrap_or(0).min(total);
    RamStats {
        total,
        transferred: done,
        remaining: total - done,
        ..RamStats::default()
    }
}

/// `domjobinfo` of a running dump: query-dump's counters while a memory
/// dump runs, `None` for a state dump (query-migrate tells).
pub(crate) async fn progress_stats(s: &Shared, dom: &Domain) -> Option<RamStats> {
    let q = dom.qmp(&QueryDump, s.cfg.monitor_timeout).await.ok()?;
    (q.status != DumpStatus::None).then(|| memory_stats(q.completed, q.total))
}

/// `domjobabort` of a memory dump: QEMU cannot cancel one, so refuse
/// rather than report an abort that does not happen (as libvirt does).
pub(crate) fn check_abortable(dom: &Domain) -> Result<()> {
    let memory_dump_active = dom
        .lock()
        .active_ctx()
        .is_ok_and(|ctx| matches!(ctx.progress.borrow().dump, Some((DumpStatus::Active, _))));
    if memory_dump_active {
        return Err(Error::OperationInvalid(
            "cannot abort memory-only dump".into(),
        ));
    }
    Ok(())
}

/// Settles a dump that ran across a daemon restart. Its file is kept only
/// if QEMU says the dump completed; otherwise a state dump is cancelled
/// and the file removed. A guest that ran before runs again. (Whether
/// `--crash` or `--reset` was asked is not recorded: the guest is left
/// running.)
pub(crate) async fn readopt(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx, job: &JobRecord) {
    let t = s.cfg.monitor_timeout;
    let migrated = dom.qmp(&QueryMigrate, t).await.ok().and_then(|m| m.status);
    let dumped = dom.qmp(&QueryDump, t).await.ok().map(|q| q.status);
    let completed =
        migrated == Some(MigrationStatus::Completed) || dumped == Some(DumpStatus::Completed);
    if !completed {
        let _ = dom.qmp(&MigrateCancel, t).await;
        remove_partial(&job.path);
    }
    if job.resume_running {
        dom.lock().expect_resume(ctx.generation, running::UNPAUSED);
        if dom.qmp(&Cont, t).await.is_ok() {
            power::resumed(s, dom, ctx, running::UNPAUSED);
        }
    }
    let message = if completed {
        String::new()
    } else {
        "interrupted by daemon restart".to_owned()
    };
    let (outcome, done) = settled(job, completed, message, None);
    let mut g = dom.lock();
    g.set_completed_job(done);
    g.end_job(Some(outcome));
}

/// Settles a dump whose QEMU was gone when the daemon came back: failed,
/// its file removed (nothing says it was whole).
pub(crate) fn found_dead(job: &JobRecord) -> (JobOutcome, CompletedJob) {
    remove_partial(&job.path);
    settled(
        job,
        false,
        "QEMU exited while the daemon was down".into(),
        None,
    )
}

fn remove_partial(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove a partial dump file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::stats::JobEnd;

    #[test]
    fn memory_stats_never_underflow() {
        let r = memory_stats(Some(30), Some(100));
        assert_eq!((r.total, r.transferred, r.remaining), (100, 30, 70));
        let r = memory_stats(Some(300), Some(100));
        assert_eq!((r.total, r.transferred, r.remaining), (100, 100, 0));
        let r = memory_stats(None, None);
        assert_eq!((r.total, r.transferred, r.remaining), (0, 0, 0));
    }

    #[test]
    fn completed_record_follows_the_result() {
        let ok = CompletedJob::ended(
            KIND.into(),
            SystemTime::now(),
            &Ok(memory_stats(Some(5), Some(5))),
        );
        assert_eq!(
            (ok.end, ok.ram.total, ok.error),
            (JobEnd::Completed, 5, None)
        );
        let failed = CompletedJob::ended(
            KIND.into(),
            SystemTime::now(),
            &Err(Error::Qemu("memory dump failed: x".into())),
        );
        assert_eq!(failed.end, JobEnd::Failed);
        assert_eq!(failed.operation, crate::state::JobOperation::Dump);
    }
}
