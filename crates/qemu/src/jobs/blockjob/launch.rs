//! Starting a block job in QEMU: the copy destination's nodes, then
//! `blockdev-mirror`, `block-stream` or `block-commit` with `auto-finalize`
//! and `auto-dismiss` off.

use std::path::PathBuf;

use qmp::commands::{
    BlockCommit, BlockStream, BlockdevAdd, BlockdevDel, BlockdevFile, BlockdevFormat,
    BlockdevMirror, BlockdevOptions, QueryBlock,
};

use super::{BlockJobSpec, BlockJobState, CopySpec, Intent};
use crate::jobs::qemu_img;
use crate::lifecycle::host::owner;
use crate::object::Domain;
use crate::object::def::DiskInfo;
use crate::shared::Shared;
use crate::state::block_job_type as T;
use crate::store::status;
use crate::{Error, Result};

/// The command that starts the job.
enum StartCommand {
    Mirror(BlockdevMirror),
    Stream(BlockStream),
    Commit(BlockCommit),
}

/// What every start command names: the job, the node it works on, and
/// the rate limit.
struct JobArgs {
    job_id: String,
    device: String,
    speed: Option<u64>,
}

/// Sends the QMP commands that start the job; returns its state.
pub(super) async fn launch(
    s: &Shared,
    dom: &Domain,
    disk: &DiskInfo,
    spec: BlockJobSpec,
    bandwidth: u64,
) -> Result<BlockJobState> {
    let top = top_node(s, dom, disk).await;
    let mut st = initial_state(disk, &top, bandwidth);
    let job = JobArgs {
        job_id: st.job_id.clone(),
        device: top,
        speed: (bandwidth > 0).then_some(bandwidth),
    };
    let cmd = match spec {
        BlockJobSpec::Copy(c) => copy(s, dom, disk, c, job, &mut st).await?,
        BlockJobSpec::Pull { base } => StartCommand::Stream(BlockStream {
            job_id: Some(job.job_id),
            device: job.device,
            base: base.map(|b| b.to_string_lossy().into_owned()),
            speed: job.speed,
            auto_finalize: Some(false),
            auto_dismiss: Some(false),
            ..BlockStream::default()
        }),
        BlockJobSpec::Commit { base, top, active } => {
            commit(disk, base, top, active, job, &mut st).await?
        }
    };
    if let Err(e) = send(s, dom, &cmd).await {
        abandon(s, dom, &st).await;
        return Err(e);
    }
    st.launched = true;
    Ok(st)
}

/// Undoes a launch that did not start the job: the nodes it added and a
/// destination it created are removed, and the job is forgotten (nothing
/// was reported started, so nothing is reported ended).
pub(super) async fn abandon(s: &Shared, dom: &Domain, st: &BlockJobState) {
    del_nodes(s, dom, &st.added_nodes).await;
    remove_created(st);
    if dom.lock().forget_block_job(&st.job_id) {
        status::persist_in_background(s, dom);
    }
    let generation = dom.lock().run().map(|r| r.ctx().generation);
    if let Some(generation) = generation {
        owner::settle(s, dom, generation);
    }
}

/// Removes the file a job created, if it did.
pub(super) fn remove_created(st: &BlockJobState) {
    if let Some(path) = &st.created
        && let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove a block job's destination");
    }
}

/// Records a job before it creates anything (see `BlockJobState::launched`).
fn record(s: &Shared, dom: &Domain, st: &BlockJobState) -> Result<()> {
    dom.lock().set_block_job(st.clone());
    let res = status::persist(s, dom);
    if res.is_err() {
        dom.lock().forget_block_job(&st.job_id);
    }
    res
}

/// The state of a job on `disk` whose device reads node `top`: a pull
/// until the spec says otherwise.
fn initial_state(disk: &DiskInfo, top: &str, bandwidth: u64) -> BlockJobState {
    BlockJobState {
        job_id: format!("fv-{}", disk.target),
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
        launched: false,
        created: None,
    }
}

/// A copy: recorded first, then the destination and its nodes, then a
/// mirror onto them.
async fn copy(
    s: &Shared,
    dom: &Domain,
    disk: &DiskInfo,
    c: CopySpec,
    job: JobArgs,
    st: &mut BlockJobState,
) -> Result<StartCommand> {
    let format = c
        .format
        .clone()
        .unwrap_or_else(|| disk.format.as_str().to_owned());
    let qcow2 = is_qcow2(&format)?;
    if !c.reuse_external && c.dest.exists() {
        return Err(Error::OperationInvalid(format!(
            "destination '{}' exists (use --reuse-external)",
            c.dest.display()
        )));
    }
    let nodes = copy_nodes();
    st.job_type = T::COPY;
    st.pivot_to = Some((c.dest.clone(), qcow2));
    st.added_nodes = nodes.to_vec();
    st.created = (!c.reuse_external).then(|| c.dest.clone());
    // On disk before the destination exists: a daemon killed from here on
    // finds the file named, and removes it if the job never started.
    record(s, dom, st)?;
    if let Err(e) = add_copy_target(s, dom, disk, &c, &format, &nodes).await {
        abandon(s, dom, st).await;
        return Err(e);
    }
    let mirror = BlockdevMirror {
        job_id: Some(job.job_id),
        device: job.device,
        target: nodes[0].clone(),
        sync: if c.shallow { "top" } else { "full" }.into(),
        speed: job.speed,
        auto_finalize: Some(false),
        auto_dismiss: Some(false),
        ..BlockdevMirror::default()
    };
    Ok(StartCommand::Mirror(mirror))
}

/// A commit of `upper` (the active layer when absent) into `base` (the
/// bottom of the chain when absent); the active layer needs `active`.
async fn commit(
    disk: &DiskInfo,
    base: Option<PathBuf>,
    upper: Option<PathBuf>,
    active: bool,
    job: JobArgs,
    st: &mut BlockJobState,
) -> Result<StartCommand> {
    let src = disk.source.clone().unwrap_or_default();
    let is_active = upper.as_deref().is_none_or(|t| t == src);
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
    if is_active {
        st.job_type = T::ACTIVE_COMMIT;
        st.pivot_to = Some((base_layer.file.clone(), base_layer.format == "qcow2"));
    } else {
        st.job_type = T::COMMIT;
    }
    Ok(StartCommand::Commit(BlockCommit {
        job_id: Some(job.job_id),
        device: job.device,
        base: Some(base_layer.file.to_string_lossy().into_owned()),
        top: upper
            .filter(|_| !is_active)
            .map(|t| t.to_string_lossy().into_owned()),
        speed: job.speed,
        auto_finalize: Some(false),
        auto_dismiss: Some(false),
        ..BlockCommit::default()
    }))
}

async fn send(s: &Shared, dom: &Domain, cmd: &StartCommand) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    match cmd {
        StartCommand::Mirror(c) => dom.qmp(c, t).await.map(drop),
        StartCommand::Stream(c) => dom.qmp(c, t).await.map(drop),
        StartCommand::Commit(c) => dom.qmp(c, t).await.map(drop),
    }
}

/// The node QEMU's device for `disk` reads from now (it changes at every
/// pivot); the startup name if QEMU does not say.
pub(crate) async fn top_node(s: &Shared, dom: &Domain, disk: &DiskInfo) -> String {
    let p = format!("/machine/peripheral/{}", disk.alias);
    let by_qdev = |q: &str| q == disk.alias || q == p || q.starts_with(&format!("{p}/"));
    if let Ok(list) = dom.qmp(&QueryBlock, s.cfg.monitor_timeout).await
        && let Some(node) = list
            .into_iter()
            .find(|b| b.qdev.as_deref().is_some_and(by_qdev))
            .and_then(|b| b.inserted)
            .and_then(|i| i.node_name)
    {
        return node;
    }
    disk.format_node.clone()
}

/// Whether a destination format is qcow2 (else raw; others refused).
fn is_qcow2(format: &str) -> Result<bool> {
    match format {
        "qcow2" => Ok(true),
        "raw" => Ok(false),
        _ => Err(Error::ConfigUnsupported(format!(
            "unsupported destination format '{format}'"
        ))),
    }
}

/// The [format, storage] node names of a copy destination.
fn copy_nodes() -> [String; 2] {
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    [format!("fv{seq}-format"), format!("fv{seq}-storage")]
}

/// Creates (unless reused) and opens the copy destination as `nodes`
/// ([format, storage]).
async fn add_copy_target(
    s: &Shared,
    dom: &Domain,
    disk: &DiskInfo,
    c: &CopySpec,
    format: &str,
    nodes: &[String; 2],
) -> Result<()> {
    if c.reuse_external {
        std::fs::metadata(&c.dest).map_err(|e| {
            Error::io(
                format!("cannot access destination '{}'", c.dest.display()),
                e,
            )
        })?;
    } else {
        create_dest(disk, c, format).await?;
    }
    // QEMU opens the destination by name, as its own user.
    let generation = dom.lock().active_ctx()?.generation;
    // The job, recorded already, names it from here on.
    owner::give_live(s, dom, generation, &c.dest)?;
    owner::given(dom, generation, &c.dest);
    let [fmt_node, storage] = nodes.clone();
    let qcow2 = format == "qcow2";
    let t = s.cfg.monitor_timeout;
    let file = BlockdevOptions::File(BlockdevFile {
        node_name: storage.clone(),
        filename: c.dest.to_string_lossy().into_owned(),
        auto_read_only: Some(true),
        discard: Some("unmap".into()),
    });
    dom.qmp(&BlockdevAdd::from(file), t).await?;
    let over = BlockdevFormat {
        node_name: fmt_node.clone(),
        file: storage.clone(),
    };
    let top = if qcow2 {
        BlockdevOptions::Qcow2(over)
    } else {
        BlockdevOptions::Raw(over)
    };
    dom.qmp(&BlockdevAdd::from(top), t).await?;
    Ok(())
}

async fn create_dest(disk: &DiskInfo, c: &CopySpec, format: &str) -> Result<()> {
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

/// Best-effort `blockdev-del` of `nodes`, in order (format before storage):
/// a node left behind costs nothing but its name.
pub(super) async fn del_nodes(s: &Shared, dom: &Domain, nodes: &[String]) {
    for n in nodes {
        let cmd = BlockdevDel {
            node_name: n.clone(),
        };
        let _ = dom.qmp(&cmd, s.cfg.monitor_timeout).await;
    }
}
