//! Block jobs — copy (mirror), pull (stream) and commit — as async jobs
//! driven by QEMU's JOB_STATUS_CHANGE events.
//!
//! Starting a job takes the async slot (`AsyncKind::BlockJob`) and hands it
//! to a per-job *supervisor* task ([`supervise`]) that holds it until the
//! job ends. Jobs are started with `auto-finalize` and `auto-dismiss` off,
//! so QEMU parks a finished job at `pending` / `concluded` until the
//! supervisor finalizes and dismisses it: the driver always learns the
//! outcome, also after a daemon restart (the job is in the status record
//! and `query-jobs` still lists it). The supervisor never waits on the job
//! lock for an event: it is woken by the event task through the run's
//! progress watch, and re-reads `query-jobs` on a timer and after event
//! overflows (events are hints; QEMU's state is the truth). Its monitor
//! work (finalize, dismiss, node removal) runs in nested jobs. The
//! allow-list is every normal job, because a mirror can sit in READY for
//! days and must not block suspend, shutdown or queries; another async job
//! (save) is refused while a block job runs, as libvirt does. Destroy kills
//! QEMU, which closes the watch and ends the supervisor.

mod launch;
mod supervise;

pub(crate) use launch::top_node;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use joblock::{AllowList, AsyncKind, NormalJob};
use qmp::commands::{BlockJobCancel, BlockJobSetSpeed, JobComplete, QueryJobs};
use serde::{Deserialize, Serialize};

use crate::object::Domain;
use crate::object::def::DiskInfo;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result, jobs};

/// How long a synchronous abort/pivot waits for the job to wind up.
const SYNC_ABORT_WAIT: Duration = Duration::from_secs(300);

/// What the user asked the end of the job to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    /// Run to completion (pull, non-active commit) or stay READY.
    None,
    /// `job-complete`: switch the disk to the new image.
    Pivot,
    /// Cancel (a READY copy keeps a consistent destination).
    Abort,
}

/// A running block job as the driver tracks it (and persists it in the
/// status record, so a restarted daemon can finish it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobState {
    /// QEMU's job id.
    pub job_id: String,
    /// Disk target (`vda`).
    pub disk: String,
    /// Disk source when the job started (the legacy event's path).
    pub path: String,
    /// `virDomainBlockJobType`.
    pub job_type: i32,
    pub ready: bool,
    pub intent: Intent,
    /// The image the disk uses after a pivot, and whether it is qcow2.
    pub pivot_to: Option<(PathBuf, bool)>,
    /// Nodes this job added (copy destination), removed unless it pivots.
    pub added_nodes: Vec<String>,
    /// Nodes of the old top image, removed after a pivot.
    pub old_nodes: Vec<String>,
    /// Bytes per second; 0 = unlimited.
    pub bandwidth: u64,
    /// QEMU was asked to start the job. A copy is recorded before its
    /// destination is created (false until then), so a daemon killed in
    /// between finds the file named and removes it.
    #[serde(default = "launched_before_recorded_ahead")]
    pub launched: bool,
    /// The file this job created (a copy's destination, unless reused),
    /// removed if the job never started.
    #[serde(default)]
    pub created: Option<PathBuf>,
}

/// A record written before copies were recorded ahead of their launch
/// names a job QEMU was asked to start.
fn launched_before_recorded_ahead() -> bool {
    true
}

/// `virsh blockcopy` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub dest: PathBuf,
    /// "raw" / "qcow2"; `None`: same as the source.
    pub format: Option<String>,
    pub shallow: bool,
    pub reuse_external: bool,
}

/// Which block job to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockJobSpec {
    Copy(CopySpec),
    Pull {
        base: Option<PathBuf>,
    },
    Commit {
        base: Option<PathBuf>,
        top: Option<PathBuf>,
        active: bool,
    },
}

/// How `virDomainBlockJobAbort` ends a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AbortOptions {
    /// Switch the disk to the job's image (a READY copy or active commit)
    /// instead of cancelling.
    pub pivot: bool,
    /// Return once QEMU was asked, without waiting for the job to end.
    pub asynchronous: bool,
}

/// `virDomainGetBlockJobInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockJobInfo {
    pub job_type: i32,
    /// Bytes per second.
    pub bandwidth: u64,
    pub cur: u64,
    pub end: u64,
}

/// Starts a block job on `disk` (target or source path).
pub(crate) async fn start(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    disk: &str,
    spec: BlockJobSpec,
    bandwidth: u64,
) -> Result<()> {
    let info = check_can_start(dom, disk)?;
    let job = jobs::begin_async(
        dom,
        AsyncKind::BlockJob,
        AllowList::ALL,
        "block job",
        s.cfg.job_wait,
    )
    .await?;
    // Re-check under the job: another start may have won the race.
    let info = {
        let again = check_can_start(dom, disk)?;
        if again != info {
            return Err(Error::OperationInvalid("disk changed during start".into()));
        }
        again
    };
    let ctx = run_ctx(dom)?;
    let state = {
        let _n = job
            .nested(NormalJob::Modify, s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        launch::launch(s, dom, &info, spec, bandwidth).await?
    };
    dom.lock().set_block_job(state.clone());
    status::persist_in_background(s, dom);
    tokio::spawn(supervise::supervise(
        s.clone(),
        dom.clone(),
        ctx,
        job,
        state.job_id,
    ));
    Ok(())
}

fn check_can_start(dom: &Domain, disk: &str) -> Result<DiskInfo> {
    let g = dom.lock();
    let live = match (g.live(), g.is_active()) {
        (Some(l), true) => l.clone(),
        _ => return Err(Error::NotRunning),
    };
    let info = live
        .disk(disk)
        .ok_or_else(|| Error::InvalidArg(format!("disk '{disk}' not found in domain")))?;
    if g.block_job().is_some() {
        return Err(Error::OperationInvalid(format!(
            "disk '{}' already in active block job (one block job per domain)",
            info.target
        )));
    }
    if let Some(j) = g.job() {
        return Err(Error::OperationInvalid(format!(
            "domain has an active '{}' job",
            j.operation
        )));
    }
    Ok(info)
}

fn run_ctx(dom: &Domain) -> Result<Arc<RunCtx>> {
    dom.lock()
        .run()
        .map(|r| r.ctx().clone())
        .ok_or(Error::NotRunning)
}

/// The running block job on `disk` (target or path), if any.
fn job_on(dom: &Domain, disk: &str) -> Option<BlockJobState> {
    let g = dom.lock();
    let b = g.block_job()?;
    let same = b.disk == disk
        || b.path == disk
        || g.live()
            .and_then(|l| l.disk(disk))
            .is_some_and(|d| d.target == b.disk);
    same.then(|| b.clone())
}

fn no_job(disk: &str) -> Error {
    Error::OperationInvalid(format!("disk '{disk}' does not have an active block job"))
}

/// `virDomainBlockJobAbort`: cancel, or pivot a READY copy / active commit.
/// Unless `asynchronous`, returns once the job has ended.
pub(crate) async fn abort(s: &Shared, dom: &Domain, disk: &str, opts: AbortOptions) -> Result<()> {
    let ctx = run_ctx(dom)?;
    // Subscribed before the command, so the job's end cannot be missed.
    let mut rx = ctx.progress.subscribe();
    {
        let _j = jobs::begin(dom, NormalJob::Abort, "block job abort", s.cfg.job_wait).await?;
        let st = job_on(dom, disk).ok_or_else(|| no_job(disk))?;
        if opts.pivot && (!st.ready || st.pivot_to.is_none()) {
            return Err(Error::OperationInvalid(format!(
                "block job '{}' not ready for pivot yet",
                st.disk
            )));
        }
        let intent = if opts.pivot {
            Intent::Pivot
        } else {
            Intent::Abort
        };
        dom.lock().update_block_job(|b| b.intent = intent);
        status::persist_in_background(s, dom);
        if let Err(e) = end_command(s, dom, &st, opts.pivot).await {
            dom.lock().update_block_job(|b| b.intent = Intent::None);
            return Err(e);
        }
    }
    if opts.asynchronous {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + SYNC_ABORT_WAIT;
    while job_on(dom, disk).is_some() {
        let changed = tokio::time::timeout_at(deadline, rx.changed()).await;
        match changed {
            Err(_) => return Err(Error::Qemu("block job did not end in time".into())),
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// `job-complete` (pivot) or `block-job-cancel`.
async fn end_command(s: &Shared, dom: &Domain, st: &BlockJobState, pivot: bool) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    if pivot {
        let cmd = JobComplete {
            id: st.job_id.clone(),
        };
        dom.qmp(&cmd, t).await?;
    } else {
        let cmd = BlockJobCancel {
            device: st.job_id.clone(),
            force: Some(!st.ready),
        };
        dom.qmp(&cmd, t).await?;
    }
    Ok(())
}

/// `virDomainBlockJobSetSpeed` (bytes per second).
pub(crate) async fn set_speed(s: &Shared, dom: &Domain, disk: &str, bytes: u64) -> Result<()> {
    let _j = jobs::begin(dom, NormalJob::Modify, "block job speed", s.cfg.job_wait).await?;
    let st = job_on(dom, disk).ok_or_else(|| no_job(disk))?;
    let cmd = BlockJobSetSpeed {
        device: st.job_id,
        speed: bytes,
    };
    dom.qmp(&cmd, s.cfg.monitor_timeout).await?;
    dom.lock().update_block_job(|b| b.bandwidth = bytes);
    Ok(())
}

/// `virDomainGetBlockJobInfo`: no job taken (query-jobs is read-only), so
/// it answers while the block job — or anything else — holds the domain.
pub(crate) async fn info(s: &Shared, dom: &Domain, disk: &str) -> Result<Option<BlockJobInfo>> {
    if !dom.is_active() {
        return Err(Error::NotRunning);
    }
    let Some(st) = job_on(dom, disk) else {
        return Ok(None);
    };
    let mut out = BlockJobInfo {
        job_type: st.job_type,
        bandwidth: st.bandwidth,
        cur: 0,
        end: 0,
    };
    if let Ok(list) = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await
        && let Some(j) = list.iter().find(|j| j.id == st.job_id)
    {
        out.cur = j.current_progress.unwrap_or(0);
        out.end = j.total_progress.unwrap_or(0);
    }
    // A READY job is in sync by definition (QEMU may still count, or
    // report 0/0 for an empty image): show 100 %, as libvirt does.
    if st.ready {
        out.end = out.end.max(1);
        out.cur = out.end;
    }
    Ok(Some(out))
}

/// Re-adopts a block job found in a status record after a daemon restart:
/// takes the async slot again and supervises it to its end. A job recorded
/// but never started in QEMU (the daemon died during its launch) is undone
/// instead: its nodes and a destination it created are removed.
pub(crate) fn readopt(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &Arc<RunCtx>, st: BlockJobState) {
    let job_id = st.job_id.clone();
    dom.lock().set_block_job(st.clone());
    let (s, dom, ctx) = (s.clone(), dom.clone(), ctx.clone());
    tokio::spawn(async move {
        if !st.launched && exists_in_qemu(&s, &dom, &job_id).await == Some(false) {
            tracing::info!(
                domain = dom.name(),
                job = %job_id,
                "block job recorded but never started: undoing its launch"
            );
            launch::abandon(&s, &dom, &st).await;
            return;
        }
        let job = jobs::begin_async(
            &dom,
            AsyncKind::BlockJob,
            AllowList::ALL,
            "block job (re-adopted)",
            s.cfg.job_wait,
        )
        .await;
        match job {
            Ok(job) => supervise::supervise(s, dom, ctx, job, job_id).await,
            Err(e) => tracing::warn!(domain = dom.name(), error = %e, "cannot re-adopt block job"),
        }
    });
}

/// Whether QEMU lists job `id` (`None` when it cannot be asked).
async fn exists_in_qemu(s: &Shared, dom: &Domain, id: &str) -> Option<bool> {
    let list = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await.ok()?;
    Some(list.iter().any(|j| j.id == id))
}

/// A recorded block job whose QEMU was gone when the daemon came back:
/// a destination created for a job that never started is removed.
pub(crate) fn found_dead(st: &BlockJobState) {
    if !st.launched {
        launch::remove_created(st);
    }
}
