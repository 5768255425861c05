//! Copying the guest's disks with it (`--copy-storage-all`,
//! `--copy-storage-inc`), for hosts that do not share storage.
//!
//! The source's begin cookie names each disk copied, its size and format
//! (and, for an incremental copy, its backing image). The destination's
//! prepare creates the images that are missing (and remembers those, to
//! remove them if the migration fails), starts QEMU waiting for the
//! stream, and exports each disk writable on an NBD server of that QEMU,
//! on a port of the migration range; its cookie says where. The source's
//! perform mirrors each disk into its export (`blockdev-mirror` onto an
//! `nbd` node), waits for every mirror to be READY, then migrates the
//! memory. With the guest paused for the last pass, cancelling a READY
//! mirror finishes writing what is left and leaves the export consistent;
//! the nbd nodes go, and the destination stops its NBD server before the
//! guest runs there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qmp::JobStatus;
use qmp::commands::{
    BlockExportAdd, BlockJobCancel, BlockdevAdd, BlockdevDel, BlockdevMirror, BlockdevNbd,
    BlockdevOptions, FlatSocketAddress, InetSocketAddress, LegacySocketAddress, NbdServerStart,
    NbdServerStop, QueryJobs,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::jobs::qemu_img;
use crate::jobs::stats::DiskStats;
use crate::object::Domain;
use crate::object::def::{Def, DiskInfo};
use crate::object::run::Progress;
use crate::shared::Shared;
use crate::store::files;
use crate::{Error, Result};

/// Which of the guest's disks a migration copies, and how much of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CopyStorage {
    /// The storage is shared: nothing is copied.
    #[default]
    None,
    /// `--copy-storage-all`: each disk's whole content.
    All,
    /// `--copy-storage-inc`: each disk's top image only; the destination
    /// has the backing images.
    Incremental,
}

/// A disk the source copies, as its begin cookie announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CookieDisk {
    /// `<target dev>`.
    pub(crate) target: String,
    /// Virtual size in bytes.
    pub(crate) capacity: u64,
    /// `raw` or `qcow2`.
    pub(crate) format: String,
    /// The top image's backing image and its format, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) backing: Option<(PathBuf, String)>,
}

/// Where the destination's NBD server listens (prepare's cookie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NbdServer {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// QEMU's job ids of the disk copies start with this.
const JOB_PREFIX: &str = "migration-";

/// How often the waits below re-read QEMU's jobs.
const POLL: Duration = Duration::from_millis(500);

/// The disks of `def` a migration copies: every writable disk with an
/// image, or those `selected` names (by target); naming another is an
/// error.
pub(crate) fn selected(def: &Def, selected: &[String]) -> Result<Vec<DiskInfo>> {
    let disks = def.writable_disks();
    if let Some(bad) = selected
        .iter()
        .find(|t| !disks.iter().any(|d| &d.target == *t))
    {
        return Err(Error::InvalidArg(format!(
            "disk '{bad}' cannot be copied: not a writable disk of the domain"
        )));
    }
    Ok(disks
        .into_iter()
        .filter(|d| selected.is_empty() || selected.contains(&d.target))
        .collect())
}

/// Begin: what the destination needs to know of each disk copied.
pub(crate) async fn announce(disks: &[DiskInfo]) -> Result<Vec<CookieDisk>> {
    let mut out = Vec::with_capacity(disks.len());
    for d in disks {
        let src = d
            .source
            .as_deref()
            .ok_or_else(|| Error::OperationInvalid(format!("disk '{}' has no image", d.target)))?;
        let chain = qemu_img::chain(src).await?;
        let top = chain
            .first()
            .ok_or_else(|| Error::Internal("qemu-img reported no image".into()))?;
        out.push(CookieDisk {
            target: d.target.clone(),
            capacity: top.virtual_size,
            format: top.format.clone(),
            backing: chain.get(1).map(|b| (b.file.clone(), b.format.clone())),
        });
    }
    Ok(out)
}

/// Images the destination created for a migration: removed when it is
/// dropped, unless the migration succeeded ([`Precreated::keep`]), so
/// every way a migration can fail (or be forgotten) takes them away. They
/// are recorded on disk (`migration_dir/UUID.json`) before the first is
/// created, so a daemon killed meanwhile removes them when it comes back
/// ([`sweep`]).
#[derive(Debug, Default)]
pub(crate) struct Precreated {
    pub(crate) paths: Vec<PathBuf>,
    /// The record naming them, while there is one.
    record: Option<PathBuf>,
}

impl Drop for Precreated {
    fn drop(&mut self) {
        self.remove();
    }
}

impl Precreated {
    /// The guest runs on them now: they stay.
    pub(crate) fn keep(&mut self) {
        self.paths.clear();
        self.forget_record();
    }

    /// Removes them (best effort: one that is gone already is fine), then
    /// their record.
    pub(crate) fn remove(&mut self) {
        remove_images(&self.paths);
        self.paths.clear();
        self.forget_record();
    }

    fn forget_record(&mut self) {
        if let Some(r) = self.record.take()
            && let Err(e) = files::remove(&r)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %r.display(), error = %e, "cannot remove a migration record");
        }
    }
}

fn remove_images(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %p.display(), error = %e, "cannot remove a pre-created image");
        }
    }
}

/// Driver open: images of incoming migrations the previous daemon never
/// finished (their QEMUs are killed as interrupted incoming migrations)
/// are removed, with their records.
pub(crate) fn sweep(dir: &Path) {
    for record in files::list_with_ext(dir, "json").unwrap_or_default() {
        let paths: Vec<PathBuf> = files::read_bounded(&record)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        tracing::info!(images = ?paths, "removing images of an interrupted incoming migration");
        remove_images(&paths);
        if let Err(e) = files::remove(&record) {
            tracing::warn!(file = %record.display(), error = %e, "cannot remove a migration record");
        }
    }
}

/// Prepare: creates each image of `disks` that does not exist, with the
/// size and format the source announced (an incremental copy: over the
/// same backing image, which must exist here). They are recorded in
/// `dir` (as `uuid`'s) before the first is created.
pub(crate) async fn precreate(
    (dir, uuid): (&Path, uuid::Uuid),
    disks: &[DiskInfo],
    announced: &[CookieDisk],
    mode: CopyStorage,
    made: &mut Precreated,
) -> Result<()> {
    let missing: Vec<(&DiskInfo, &Path)> = disks
        .iter()
        .filter_map(|d| d.source.as_deref().map(|p| (d, p)))
        .filter(|(_, p)| !p.exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let record = dir.join(format!("{uuid}.json"));
    let names: Vec<&Path> = missing.iter().map(|(_, p)| *p).collect();
    let json = serde_json::to_vec(&names).unwrap_or_default();
    files::atomic_write(&record, &json)
        .map_err(|e| Error::io(format!("cannot record '{}'", record.display()), e))?;
    made.record = Some(record);
    for (d, path) in missing {
        let a = announced
            .iter()
            .find(|a| a.target == d.target)
            .ok_or_else(|| {
                Error::OperationFailed(format!(
                    "the source did not describe disk '{}' to copy",
                    d.target
                ))
            })?;
        let backing = backing_layer(mode, a, &d.target)?;
        made.paths.push(path.to_owned());
        qemu_img::create(path, d.format.as_str(), a.capacity, backing.as_ref()).await?;
    }
    Ok(())
}

/// The backing image an incremental copy's new image sits on (it must
/// exist here); none for a full copy.
fn backing_layer(
    mode: CopyStorage,
    a: &CookieDisk,
    target: &str,
) -> Result<Option<qemu_img::Layer>> {
    let (CopyStorage::Incremental, Some((file, format))) = (mode, &a.backing) else {
        return Ok(None);
    };
    if !file.exists() {
        return Err(Error::OperationInvalid(format!(
            "backing image '{}' of disk '{target}' is missing here",
            file.display()
        )));
    }
    Ok(Some(qemu_img::Layer {
        file: file.clone(),
        format: format.clone(),
        virtual_size: a.capacity,
    }))
}

/// The export name of a disk: its device alias.
fn export_name(d: &DiskInfo) -> String {
    d.alias.clone()
}

/// Prepare, with QEMU started: its NBD server on `listen:port`, one
/// writable export per disk copied.
pub(crate) async fn serve(
    s: &Shared,
    dom: &Domain,
    disks: &[DiskInfo],
    listen: &str,
    port: u16,
) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    let start = NbdServerStart {
        addr: LegacySocketAddress::Inet(InetSocketAddress {
            host: listen.to_owned(),
            port: port.to_string(),
        }),
    };
    dom.qmp(&start, t).await?;
    for d in disks {
        let export = BlockExportAdd {
            export_type: "nbd".into(),
            id: format!("migration-{}", d.target),
            node_name: d.format_node.clone(),
            name: export_name(d),
            writable: true,
        };
        dom.qmp(&export, t).await?;
    }
    Ok(())
}

/// Finish: the NBD server (and its exports) stop before the guest runs.
pub(crate) async fn stop_serving(s: &Shared, dom: &Domain) -> Result<()> {
    dom.qmp(&NbdServerStop, s.cfg.monitor_timeout).await?;
    Ok(())
}

/// One disk being mirrored to the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirror {
    pub(crate) target: String,
    /// QEMU's job id.
    pub(crate) job: String,
    /// The nbd node written to.
    pub(crate) node: String,
    /// QEMU was asked to start the job.
    pub(crate) started: bool,
}

/// Perform: mirrors each disk into the destination's export; each mirror
/// is added to `mirrors` before QEMU is asked for it, for the caller to
/// cancel on failure.
pub(crate) async fn start_mirrors(
    s: &Shared,
    dom: &Domain,
    disks: &[DiskInfo],
    nbd: &NbdServer,
    mode: CopyStorage,
    speed: Option<u64>,
    mirrors: &mut Vec<Mirror>,
) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    for d in disks {
        let m = Mirror {
            target: d.target.clone(),
            job: format!("{JOB_PREFIX}{}", d.target),
            node: format!("migration-{}-storage", d.target),
            started: false,
        };
        mirrors.push(m.clone());
        let node = BlockdevOptions::Nbd(BlockdevNbd {
            node_name: m.node.clone(),
            server: FlatSocketAddress::Inet(InetSocketAddress {
                host: nbd.host.clone(),
                port: nbd.port.to_string(),
            }),
            export: export_name(d),
        });
        dom.qmp(&BlockdevAdd::from(node), t).await?;
        let mirror = BlockdevMirror {
            job_id: Some(m.job.clone()),
            device: crate::jobs::blockjob::top_node(s, dom, d).await,
            target: m.node.clone(),
            sync: match mode {
                CopyStorage::Incremental => "top",
                _ => "full",
            }
            .into(),
            speed,
            ..BlockdevMirror::default()
        };
        if let Some(last) = mirrors.last_mut() {
            last.started = true;
        }
        dom.qmp(&mirror, t).await?;
    }
    Ok(())
}

/// A mirror's job as `query-jobs` shows it.
struct JobNow {
    /// `Null`: QEMU no longer lists it.
    status: JobStatus,
    error: Option<String>,
}

/// `mirrors`' jobs now, and the bytes copied, summed.
async fn read_jobs(s: &Shared, dom: &Domain, mirrors: &[Mirror]) -> Result<(Vec<JobNow>, u64)> {
    let list = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await?;
    let mut done = 0;
    let now = mirrors
        .iter()
        .map(|m| match list.iter().find(|j| j.id == m.job) {
            Some(j) => {
                done += j.current_progress.unwrap_or(0);
                JobNow {
                    status: j.status.clone(),
                    error: j.error.clone(),
                }
            }
            None => JobNow {
                status: JobStatus::Null,
                error: None,
            },
        })
        .collect();
    Ok((now, done))
}

/// The disk copies QEMU runs (by the job ids this module gives them).
async fn running_copies(s: &Shared, dom: &Domain) -> Vec<Mirror> {
    let Ok(list) = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|j| j.id.strip_prefix(JOB_PREFIX))
        .map(|target| Mirror {
            target: target.to_owned(),
            job: format!("{JOB_PREFIX}{target}"),
            node: format!("{JOB_PREFIX}{target}-storage"),
            started: true,
        })
        .collect()
}

/// `domjobabort` of an outgoing migration: its disk copies are cancelled
/// too (the wait for them then fails as cancelled).
pub(crate) async fn cancel_copies(s: &Shared, dom: &Domain) {
    let t = s.cfg.monitor_timeout;
    for m in running_copies(s, dom).await {
        let cancel = BlockJobCancel {
            device: m.job,
            force: Some(true),
        };
        let _ = dom.qmp(&cancel, t).await;
    }
}

/// An outgoing migration interrupted by a daemon restart: the disk copies
/// it left in QEMU end (cancelled without force when the guest's state
/// was sent, so the destination's images stay consistent) and their
/// nodes go.
pub(crate) async fn end_leftover_copies(s: &Shared, dom: &Domain, sent: bool) {
    let mirrors = running_copies(s, dom).await;
    if mirrors.is_empty() {
        return;
    }
    let t = s.cfg.monitor_timeout;
    if let Err(e) = end_mirrors(s, dom, &mirrors, sent, t).await {
        tracing::warn!(domain = dom.name(), error = %e, "disk copies left by the previous daemon");
    }
}

/// The disk copies' progress, summed over QEMU's mirror jobs (none when
/// there are none).
pub(crate) async fn progress(s: &Shared, dom: &Domain) -> Option<DiskStats> {
    let list = dom.qmp(&QueryJobs, s.cfg.monitor_timeout).await.ok()?;
    let mut copies = list
        .iter()
        .filter(|j| j.id.starts_with(JOB_PREFIX))
        .peekable();
    copies.peek()?;
    let (processed, total) = copies.fold((0u64, 0u64), |(p, t), j| {
        (
            p.saturating_add(j.current_progress.unwrap_or(0)),
            t.saturating_add(j.total_progress.unwrap_or(0)),
        )
    });
    Some(DiskStats {
        total,
        processed,
        remaining: total.saturating_sub(processed),
    })
}

/// Why a copy ended before it was READY.
fn copy_ended(target: &str, job: &JobNow) -> Error {
    match &job.error {
        Some(e) if !e.to_ascii_lowercase().contains("cancel") => Error::OperationFailed(format!(
            "copying disk '{target}' to the destination failed: {e}"
        )),
        _ => Error::Aborted(format!(
            "migration job: copying disk '{target}' was cancelled"
        )),
    }
}

/// Waits until every mirror is READY (its disk copied, writes now sent as
/// they happen). A mirror that ends, QEMU exiting, or no byte copied for
/// `stall` fails the wait.
pub(crate) async fn wait_ready(
    s: &Shared,
    dom: &Domain,
    progress: &mut watch::Receiver<Progress>,
    mirrors: &[Mirror],
    stall: Duration,
) -> Result<()> {
    let mut watch = crate::jobs::stream::StallWatch::new(stall, Instant::now());
    loop {
        if progress.borrow_and_update().closed {
            return Err(Error::OperationFailed(
                "QEMU exited while copying disks".into(),
            ));
        }
        let (jobs, done) = read_jobs(s, dom, mirrors).await?;
        if jobs.iter().all(|j| j.status == JobStatus::Ready) {
            return Ok(());
        }
        if let Some((m, j)) = mirrors.iter().zip(&jobs).find(|(_, j)| ended(&j.status)) {
            return Err(copy_ended(&m.target, j));
        }
        if watch.stalled(done, Instant::now()) {
            return Err(Error::OperationFailed(format!(
                "copying disks to the destination made no progress for {} s",
                stall.as_secs()
            )));
        }
        // Woken by JOB_STATUS_CHANGE, or re-read after POLL.
        let _ = tokio::time::timeout(POLL, progress.changed()).await;
    }
}

fn ended(st: &JobStatus) -> bool {
    matches!(
        st,
        JobStatus::Aborting | JobStatus::Concluded | JobStatus::Null | JobStatus::Undefined
    )
}

/// Ends the mirrors and removes their nodes. `complete`: the guest is
/// paused and its memory sent, so each READY mirror is cancelled without
/// force (QEMU writes what is left: the destination's disks are
/// consistent) and must end well; otherwise they are cancelled at once.
/// Waits at most `deadline` for QEMU to drop the jobs.
pub(crate) async fn end_mirrors(
    s: &Shared,
    dom: &Domain,
    mirrors: &[Mirror],
    complete: bool,
    deadline: Duration,
) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    let mut failure = None;
    for m in mirrors.iter().filter(|m| m.started) {
        let cancel = BlockJobCancel {
            device: m.job.clone(),
            force: (!complete).then_some(true),
        };
        if let Err(e) = dom.qmp(&cancel, t).await {
            failure.get_or_insert(e);
        }
    }
    let until = Instant::now() + deadline;
    loop {
        let (jobs, _) = read_jobs(s, dom, mirrors).await?;
        if jobs.iter().all(|j| j.status == JobStatus::Null) {
            break;
        }
        if Instant::now() >= until {
            failure.get_or_insert(Error::OperationFailed(
                "the disk copies did not end in time".into(),
            ));
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for m in mirrors {
        let del = BlockdevDel {
            node_name: m.node.clone(),
        };
        let _ = dom.qmp(&del, t).await;
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_images_are_removed_unless_kept_and_records_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.img");
        let record = dir.path().join("r.json");
        let made = |paths: Vec<PathBuf>| {
            std::fs::write(&a, b"x").unwrap();
            std::fs::write(&record, b"[]").unwrap();
            Precreated {
                paths,
                record: Some(record.clone()),
            }
        };
        let mut m = made(vec![a.clone(), dir.path().join("never-made.img")]);
        m.remove();
        assert!(!a.exists() && !record.exists());
        assert!(m.paths.is_empty());
        // Dropped: removed; kept: the image stays, its record goes.
        drop(made(vec![a.clone()]));
        assert!(!a.exists() && !record.exists());
        let mut kept = made(vec![a.clone()]);
        kept.keep();
        drop(kept);
        assert!(a.exists() && !record.exists());
        // A record a killed daemon left: its images go with it.
        let json = serde_json::to_vec(&[&a]).unwrap();
        std::fs::write(&record, json).unwrap();
        sweep(dir.path());
        assert!(!a.exists() && !record.exists());
    }

    #[test]
    fn a_job_that_ended_is_not_a_copy_under_way() {
        assert!(ended(&JobStatus::Concluded));
        assert!(ended(&JobStatus::Null));
        assert!(!ended(&JobStatus::Running));
        assert!(!ended(&JobStatus::Ready));
    }
}
