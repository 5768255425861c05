//! Block jobs — copy (mirror), pull (stream) and commit — as async jobs
//! driven by QEMU's JOB_STATUS_CHANGE events.
//!
//! Starting a job takes the async slot (`AsyncKind::BlockJob`) and hands it
//! to a per-job *supervisor* task that holds it until the job ends. Jobs are
//! started with `auto-finalize` and `auto-dismiss` off, so QEMU parks a
//! finished job at `pending` / `concluded` until the supervisor finalizes
//! and dismisses it: the driver always learns the outcome, also after a
//! daemon restart (the job is in the status record and `query-jobs` still
//! lists it). The supervisor never waits on the job lock for an event: it
//! is woken by the event task through the run's progress watch (requirement
//! 4), and re-reads `query-jobs` on a timer and after event overflows
//! (requirement 3). Its monitor work (finalize, dismiss, node removal) runs
//! in nested jobs. The allow-list is every normal job, because a mirror can
//! sit in READY for days and must not block suspend, shutdown or queries;
//! another async job (save) is refused while a block job runs, as libvirt
//! does. Destroy kills QEMU, which closes the watch and ends the supervisor.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use joblock::{AllowList, AsyncJob, AsyncKind, NormalJob};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::qemu_img;
use crate::def::DiskInfo;
use crate::domain::{Domain, Progress, RunCtx, command};
use crate::driver::Shared;
use crate::state::{EventKind, block_job_type as T, block_status as B};
use crate::{Error, Result, jobs, lifecycle, monitor};

/// Re-read `query-jobs` at least this often: events are hints.
const POLL: Duration = Duration::from_millis(500);

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
    let top = top_node(s, dom, &info).await;
    let state = {
        let _n = job
            .nested(NormalJob::Modify, s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        launch(s, dom, &info, &top, spec, bandwidth).await?
    };
    dom.lock().block_job = Some(state.clone());
    let _ = lifecycle::persist_status(s, dom);
    tokio::spawn(supervise(s.clone(), dom.clone(), ctx, job, state.job_id));
    Ok(())
}

fn check_can_start(dom: &Domain, disk: &str) -> Result<DiskInfo> {
    let g = dom.lock();
    let live = match (&g.live, g.state.state.is_active()) {
        (Some(l), true) => l.clone(),
        _ => return Err(Error::NotRunning),
    };
    let info = live
        .disk(disk)
        .ok_or_else(|| Error::InvalidArg(format!("disk '{disk}' not found in domain")))?;
    if g.block_job.is_some() {
        return Err(Error::OperationInvalid(format!(
            "disk '{}' already in active block job (one block job per domain)",
            info.target
        )));
    }
    if let Some(j) = &g.job {
        return Err(Error::OperationInvalid(format!(
            "domain has an active '{}' job",
            j.kind
        )));
    }
    Ok(info)
}

fn run_ctx(dom: &Domain) -> Result<Arc<RunCtx>> {
    dom.lock()
        .run
        .as_ref()
        .map(|r| r.ctx.clone())
        .ok_or(Error::NotRunning)
}

/// The node QEMU's device for `disk` reads from now (it changes at every
/// pivot); the startup name if QEMU does not say.
async fn top_node(s: &Shared, dom: &Domain, disk: &DiskInfo) -> String {
    let by_qdev = |e: &Value| {
        let q = monitor::str_field(e, "qdev").unwrap_or("");
        let p = format!("/machine/peripheral/{}", disk.alias);
        q == disk.alias || q == p || q.starts_with(&format!("{p}/"))
    };
    if let Ok(Value::Array(list)) = command(dom, s.cfg.monitor_timeout, "query-block", None).await
        && let Some(node) = list
            .iter()
            .find(|e| by_qdev(e))
            .and_then(|e| e.get("inserted"))
            .and_then(|i| monitor::str_field(i, "node-name"))
    {
        return node.to_owned();
    }
    domain::disk_node_names(disk.index).1
}

/// Sends the QMP commands that start the job; returns its state.
async fn launch(
    s: &Shared,
    dom: &Domain,
    disk: &DiskInfo,
    top: &str,
    spec: BlockJobSpec,
    bandwidth: u64,
) -> Result<BlockJobState> {
    let job_id = format!("fv-{}", disk.target);
    let mut st = BlockJobState {
        job_id: job_id.clone(),
        disk: disk.target.clone(),
        path: disk
            .source
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        job_type: T::PULL,
        ready: false,
        intent: Intent::None,
        pivot_to: None,
        added_nodes: Vec::new(),
        old_nodes: vec![top.to_owned(), top.replace("-format", "-storage")],
        bandwidth,
    };
    let mut args = json!({
        "job-id": job_id, "device": top,
        "auto-finalize": false, "auto-dismiss": false,
    });
    if bandwidth > 0 {
        args["speed"] = json!(bandwidth);
    }
    let t = s.cfg.monitor_timeout;
    let cmd = match spec {
        BlockJobSpec::Copy(c) => {
            let (nodes, qcow2) = add_copy_target(s, dom, disk, &c).await?;
            args["target"] = json!(nodes[0]);
            args["sync"] = json!(if c.shallow { "top" } else { "full" });
            st.job_type = T::COPY;
            st.pivot_to = Some((c.dest, qcow2));
            st.added_nodes = nodes;
            "blockdev-mirror"
        }
        BlockJobSpec::Pull { base } => {
            if let Some(b) = base {
                args["base"] = json!(b.to_string_lossy());
            }
            "block-stream"
        }
        BlockJobSpec::Commit { base, top, active } => {
            let src = disk.source.clone().unwrap_or_default();
            let is_active = top.as_deref().is_none_or(|t| t == src);
            if is_active && !active {
                return Err(Error::OperationInvalid(
                    "commit of the active layer requires --active".into(),
                ));
            }
            let chain = qemu_img::chain(&src).await?;
            let base_layer = match &base {
                Some(b) => chain.iter().find(|l| l.file == *b).cloned(),
                None => chain.last().cloned(),
            }
            .filter(|l| l.file != src)
            .ok_or_else(|| Error::InvalidArg("no base image to commit into".into()))?;
            args["base"] = json!(base_layer.file.to_string_lossy());
            if let Some(t) = top.filter(|_| !is_active) {
                args["top"] = json!(t.to_string_lossy());
            }
            st.job_type = if is_active {
                T::ACTIVE_COMMIT
            } else {
                T::COMMIT
            };
            if is_active {
                st.pivot_to = Some((base_layer.file, base_layer.format == "qcow2"));
            }
            "block-commit"
        }
    };
    if let Err(e) = command(dom, t, cmd, Some(args)).await {
        del_nodes(s, dom, &st.added_nodes).await;
        return Err(e);
    }
    Ok(st)
}

/// Creates (unless reused) and opens the copy destination; returns its
/// [format, storage] node names and whether it is qcow2.
async fn add_copy_target(
    s: &Shared,
    dom: &Domain,
    disk: &DiskInfo,
    c: &CopySpec,
) -> Result<(Vec<String>, bool)> {
    let format = c.format.clone().unwrap_or_else(|| disk.format.to_owned());
    if !matches!(format.as_str(), "raw" | "qcow2") {
        return Err(Error::ConfigUnsupported(format!(
            "unsupported destination format '{format}'"
        )));
    }
    if c.reuse_external {
        std::fs::metadata(&c.dest).map_err(|e| {
            Error::io(
                format!("cannot access destination '{}'", c.dest.display()),
                e,
            )
        })?;
    } else {
        create_dest(disk, c, &format).await?;
    }
    let seq = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let storage = format!("fv{seq}-storage");
    let fmt_node = format!("fv{seq}-format");
    let t = s.cfg.monitor_timeout;
    let file = json!({"driver": "file", "filename": c.dest.to_string_lossy(),
        "node-name": storage, "auto-read-only": true, "discard": "unmap"});
    command(dom, t, "blockdev-add", Some(file)).await?;
    let f = json!({"driver": format, "file": storage, "node-name": fmt_node});
    if let Err(e) = command(dom, t, "blockdev-add", Some(f)).await {
        del_nodes(s, dom, std::slice::from_ref(&storage)).await;
        return Err(e);
    }
    Ok((vec![fmt_node, storage], format == "qcow2"))
}

async fn create_dest(disk: &DiskInfo, c: &CopySpec, format: &str) -> Result<()> {
    if c.dest.exists() {
        return Err(Error::OperationInvalid(format!(
            "destination '{}' exists (use --reuse-external)",
            c.dest.display()
        )));
    }
    let src = disk
        .source
        .as_deref()
        .ok_or_else(|| Error::OperationInvalid("disk has no source".into()))?;
    let chain = qemu_img::chain(src).await?;
    let top = chain
        .first()
        .ok_or_else(|| Error::Internal("qemu-img reported no image".into()))?;
    let backing = if c.shallow {
        if format != "qcow2" {
            return Err(Error::ConfigUnsupported(
                "a shallow copy needs a qcow2 destination".into(),
            ));
        }
        chain.get(1)
    } else {
        None
    };
    qemu_img::create(&c.dest, format, top.virtual_size, backing).await
}

/// Best-effort `blockdev-del` of `nodes`, in order (format before storage).
async fn del_nodes(s: &Shared, dom: &Domain, nodes: &[String]) {
    for n in nodes {
        let args = json!({"node-name": n});
        let _ = command(dom, s.cfg.monitor_timeout, "blockdev-del", Some(args)).await;
    }
}

/// How the QEMU job ended, as seen by the supervisor.
enum End {
    /// Concluded (and dismissed); `error` from query-jobs.
    Concluded { error: Option<String> },
    /// QEMU or the monitor went away (destroy, crash).
    Gone,
}

/// Holds the async job until QEMU's job ends, woken by JOB_STATUS_CHANGE.
pub(crate) async fn supervise(
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
            (job_status(&p, &job_id), p.closed, p.overflowed)
        };
        if closed || job.destroyed() {
            break End::Gone;
        }
        match status.as_deref() {
            Some("ready") => on_ready(&s, &dom),
            Some("pending") => {
                if let Ok(_n) = job.nested(NormalJob::Modify, s.cfg.job_wait).await {
                    let a = json!({"id": job_id});
                    let _ = command(&dom, s.cfg.monitor_timeout, "job-finalize", Some(a)).await;
                }
            }
            Some("concluded") => {
                let error = job_error(&s, &dom, &job_id).await;
                if let Ok(_n) = job.nested(NormalJob::Modify, s.cfg.job_wait).await {
                    let a = json!({"id": job_id});
                    let _ = command(&dom, s.cfg.monitor_timeout, "job-dismiss", Some(a)).await;
                }
                break End::Concluded { error };
            }
            Some("null") => break End::Concluded { error: None },
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

fn job_status(p: &Progress, id: &str) -> Option<String> {
    p.jobs.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
}

/// Re-reads every job's status from QEMU into the progress watch; a job
/// of ours that QEMU no longer lists is recorded as "null" (dismissed).
async fn poll_jobs(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let Ok(Value::Array(list)) = command(dom, s.cfg.monitor_timeout, "query-jobs", None).await
    else {
        return;
    };
    let ours = dom.lock().block_job.as_ref().map(|b| b.job_id.clone());
    ctx.update_progress(|p| {
        for j in &list {
            if let (Some(id), Some(st)) =
                (monitor::str_field(j, "id"), monitor::str_field(j, "status"))
            {
                Progress::set_keyed(&mut p.jobs, id.to_owned(), st.to_owned());
            }
        }
        if let Some(id) = ours
            && !list
                .iter()
                .any(|j| monitor::str_field(j, "id") == Some(&id))
        {
            Progress::set_keyed(&mut p.jobs, id, "null".to_owned());
        }
    });
}

async fn job_error(s: &Shared, dom: &Domain, id: &str) -> Option<String> {
    let Ok(Value::Array(list)) = command(dom, s.cfg.monitor_timeout, "query-jobs", None).await
    else {
        return None;
    };
    list.iter()
        .find(|j| monitor::str_field(j, "id") == Some(id))
        .and_then(|j| monitor::str_field(j, "error"))
        .map(str::to_owned)
}

/// First READY: record it and tell clients (virsh --wait waits for it).
fn on_ready(s: &Shared, dom: &Domain) {
    let mut g = dom.lock();
    let Some(b) = g.block_job.as_mut().filter(|b| !b.ready) else {
        return;
    };
    b.ready = true;
    let ev = event_of(b, B::READY);
    g.emit(dom, &s.hub, ev);
    drop(g);
    let _ = lifecycle::persist_status(s, dom);
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
    let Some(st) = dom.lock().block_job.clone() else {
        return;
    };
    let status = match (&end, st.intent) {
        (End::Gone, _) => B::FAILED,
        (End::Concluded { .. }, Intent::Abort) => B::CANCELED,
        (End::Concluded { error: Some(_) }, _) => B::FAILED,
        (End::Concluded { error: None }, _) => B::COMPLETED,
    };
    if let (B::FAILED, End::Concluded { error: Some(e) }) = (status, &end) {
        tracing::warn!(domain = dom.name(), job = %st.job_id, error = %e, "block job failed");
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
    {
        let mut g = dom.lock();
        if pivoted && let (Some(live), Some((path, qcow2))) = (g.live.clone(), &st.pivot_to) {
            g.live = Some(Arc::new(live.with_disk_source(&st.disk, path, *qcow2)));
            if let Some(run) = g.run_of(ctx.generation) {
                run.note_pivot(&st.disk, &st.added_nodes);
            }
        }
        g.block_job = None;
        g.emit(dom, &s.hub, event_of(&st, status));
    }
    let _ = lifecycle::persist_status(s, dom);
    // Wake synchronous abort/pivot callers waiting on the watch.
    ctx.update_progress(|_| {});
}

/// The running block job on `disk` (target or path), if any.
fn job_on(dom: &Domain, disk: &str) -> Option<BlockJobState> {
    let g = dom.lock();
    let b = g.block_job.as_ref()?;
    let same = b.disk == disk
        || b.path == disk
        || g.live
            .as_ref()
            .and_then(|l| l.disk(disk))
            .is_some_and(|d| d.target == b.disk);
    same.then(|| b.clone())
}

fn no_job(disk: &str) -> Error {
    Error::OperationInvalid(format!("disk '{disk}' does not have an active block job"))
}

/// `virDomainBlockJobAbort`: cancel, or pivot a READY copy / active commit.
/// Unless `asynchronous`, returns once the job has ended.
pub(crate) async fn abort(
    s: &Shared,
    dom: &Domain,
    disk: &str,
    pivot: bool,
    asynchronous: bool,
) -> Result<()> {
    let ctx = run_ctx(dom)?;
    let mut rx = ctx.progress.subscribe();
    {
        let _j = jobs::begin(dom, NormalJob::Abort, "block job abort", s.cfg.job_wait).await?;
        let st = job_on(dom, disk).ok_or_else(|| no_job(disk))?;
        if pivot && (!st.ready || st.pivot_to.is_none()) {
            return Err(Error::OperationInvalid(format!(
                "block job '{}' not ready for pivot yet",
                st.disk
            )));
        }
        if let Some(b) = dom.lock().block_job.as_mut() {
            b.intent = if pivot { Intent::Pivot } else { Intent::Abort };
        }
        let _ = lifecycle::persist_status(s, dom);
        let t = s.cfg.monitor_timeout;
        let res = if pivot {
            command(dom, t, "job-complete", Some(json!({"id": st.job_id}))).await
        } else {
            let a = json!({"device": st.job_id, "force": !st.ready});
            command(dom, t, "block-job-cancel", Some(a)).await
        };
        if let Err(e) = res {
            if let Some(b) = dom.lock().block_job.as_mut() {
                b.intent = Intent::None;
            }
            return Err(e);
        }
    }
    if asynchronous {
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

/// `virDomainBlockJobSetSpeed` (bytes per second).
pub(crate) async fn set_speed(s: &Shared, dom: &Domain, disk: &str, bytes: u64) -> Result<()> {
    let _j = jobs::begin(dom, NormalJob::Modify, "block job speed", s.cfg.job_wait).await?;
    let st = job_on(dom, disk).ok_or_else(|| no_job(disk))?;
    let a = json!({"device": st.job_id, "speed": bytes});
    command(dom, s.cfg.monitor_timeout, "block-job-set-speed", Some(a)).await?;
    if let Some(b) = dom.lock().block_job.as_mut() {
        b.bandwidth = bytes;
    }
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
    if let Ok(Value::Array(list)) = command(dom, s.cfg.monitor_timeout, "query-jobs", None).await
        && let Some(j) = list
            .iter()
            .find(|j| monitor::str_field(j, "id") == Some(&st.job_id))
    {
        out.cur = monitor::u64_field(j, "current-progress").unwrap_or(0);
        out.end = monitor::u64_field(j, "total-progress").unwrap_or(0);
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
/// takes the async slot again and supervises it to its end.
pub(crate) fn readopt(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &Arc<RunCtx>, st: BlockJobState) {
    let job_id = st.job_id.clone();
    dom.lock().block_job = Some(st);
    let (s, dom, ctx) = (s.clone(), dom.clone(), ctx.clone());
    tokio::spawn(async move {
        let job = jobs::begin_async(
            &dom,
            AsyncKind::BlockJob,
            AllowList::ALL,
            "block job (re-adopted)",
            s.cfg.job_wait,
        )
        .await;
        match job {
            Ok(job) => supervise(s, dom, ctx, job, job_id).await,
            Err(e) => tracing::warn!(domain = dom.name(), error = %e, "cannot re-adopt block job"),
        }
    });
}

/// The destination of `virDomainBlockCopy`: `<disk type='file'>` with
/// `<source file=.../>` and an optional `<driver type=.../>`.
pub fn parse_copy_dest(xml: &str) -> Result<(PathBuf, Option<String>)> {
    let bad = |why: &str| Error::InvalidArg(format!("invalid block copy destination: {why}"));
    let el = domain::xml::parse_document(xml).map_err(|e| bad(&e.to_string()))?;
    if el.local_name() != "disk" {
        return Err(bad("expected <disk>"));
    }
    if el.attr("type").is_some_and(|t| t != "file") {
        return Err(Error::ConfigUnsupported(
            "block copy destination must be a file".into(),
        ));
    }
    let child = |n: &str| el.elements().find(|e| e.local_name() == n);
    let file = child("source")
        .and_then(|s| s.attr("file"))
        .filter(|f| f.starts_with('/'))
        .ok_or_else(|| bad("missing absolute <source file>"))?;
    let format = child("driver")
        .and_then(|d| d.attr("type"))
        .map(str::to_owned);
    Ok((PathBuf::from(file), format))
}
