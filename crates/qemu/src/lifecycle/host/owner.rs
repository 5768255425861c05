//! Dynamic ownership: while a guest runs, the files its QEMU opens by path
//! (disk images and block devices, kernel, initrd, the UEFI variable
//! store, serial and channel files and logs) belong to QEMU's user, as
//! libvirt's `dynamic_ownership` gives them to its `qemu` user. Only the
//! owner changes; modes are left alone.
//!
//! Intent first: each file's original owner and mode are taken before
//! anything changes and written to the run's status record before the
//! first `chown`, so the owners are restored after a destroy, after QEMU
//! dies, and by a restarted daemon when a run ended while it was down. A
//! file several running guests share (a read-only installer image, a
//! shareable disk) keeps the first guest's original and is restored when
//! the last of them stops.
//!
//! Directories are never changed: a file QEMU's user cannot reach fails
//! the start with libvirt's message, before anything was changed.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use domain::{ChrSource, DomainDef};
use serde::{Deserialize, Serialize};

use crate::object::Domain;
use crate::object::Inner;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// A file given to QEMU's user for a run, with what it was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owned {
    pub(crate) path: PathBuf,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The permission bits; `None` for a file the run creates (a serial
    /// log, a variable store copied from its template), which goes back to
    /// the daemon's user with the mode it was created with.
    pub(crate) mode: Option<u32>,
    /// A layer below a disk's top image (its backing chain): QEMU reads
    /// it for as long as the run lasts (a commit or a shallow copy's pivot
    /// may still need it), so only the run's end gives it back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) backing: bool,
}

/// Deepest backing chain followed (libvirt's own bound is larger, but a
/// chain this deep is a loop or a mistake).
const MAX_CHAIN: usize = 64;

/// The files `def`'s QEMU opens by path, and who owns each now (nothing is
/// changed). A file QEMU's user could not reach through its directories
/// fails with libvirt's error.
pub(crate) fn plan(def: &DomainDef, creds: &confine::Creds) -> Result<Vec<Owned>> {
    let mut out: Vec<Owned> = Vec::new();
    let tops = paths(def);
    let layers = def
        .disk_paths()
        .into_iter()
        .flat_map(backing_chain)
        .collect::<Vec<_>>();
    let all = tops
        .into_iter()
        .map(|p| (p, false))
        .chain(layers.into_iter().map(|p| (p, true)));
    for (path, backing) in all {
        if out.iter().any(|o| o.path == path) {
            continue;
        }
        check_reachable(&path, creds)?;
        out.push(Owned {
            backing,
            ..current(path)?
        });
    }
    Ok(out)
}

/// The images below `top` (its backing file, that one's, …), read from
/// their qcow2 headers; stops at a raw image, a missing file or a loop.
fn backing_chain(top: &Path) -> Vec<PathBuf> {
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut at = top.to_path_buf();
    while chain.len() < MAX_CHAIN {
        let next = storage::probe::probe(&at)
            .ok()
            .and_then(|p| p.qcow2)
            .and_then(|h| h.backing);
        match next {
            Some(b) if b != top && !chain.contains(&b) => {
                chain.push(b.clone());
                at = b;
            }
            _ => break,
        }
    }
    chain
}

fn paths(def: &DomainDef) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = def
        .disk_paths()
        .into_iter()
        .map(Path::to_path_buf)
        .collect();
    if let Some((nvram, _)) = def.nvram() {
        v.push(nvram.to_path_buf());
    }
    // Serials and channels: file sources and `<log file>`s.
    let d = &def.devices;
    let chardevs = d
        .serials
        .iter()
        .map(|s| (&s.source, &s.log))
        .chain(d.channels.iter().map(|c| (&c.source, &c.log)));
    for (source, log) in chardevs {
        if let ChrSource::File { path, .. } = source {
            v.push(path.clone());
        }
        if let Some(log) = log {
            v.push(log.file.clone());
        }
    }
    v
}

/// The owner of `path` now; a missing file is one the run creates.
fn current(path: PathBuf) -> Result<Owned> {
    match std::fs::metadata(&path) {
        Ok(m) => Ok(Owned {
            uid: m.uid(),
            gid: m.gid(),
            mode: Some(m.mode() & 0o7777),
            path,
            backing: false,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Owned {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            mode: None,
            path,
            backing: false,
        }),
        Err(e) => Err(Error::io(format!("cannot stat {}", path.display()), e)),
    }
}

/// Whether QEMU's user may search every directory above `path`.
fn check_reachable(path: &Path, c: &confine::Creds) -> Result<()> {
    for dir in path.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(dir) else {
            continue;
        };
        let bit = if m.uid() == c.uid {
            0o100
        } else if m.gid() == c.gid || c.groups.contains(&m.gid()) {
            0o010
        } else {
            0o001
        };
        if m.permissions().mode() & bit == 0 {
            return Err(Error::io(
                format!(
                    "Cannot access storage file '{}' (as uid:{}, gid:{})",
                    path.display(),
                    c.uid,
                    c.gid
                ),
                io::Error::from_raw_os_error(libc::EACCES),
            ));
        }
    }
    Ok(())
}

/// Gives QEMU's user the files of `list` (creating the missing ones,
/// mode 0600). On failure the files already changed are restored.
pub(crate) fn apply(list: &[Owned], c: &confine::Creds) -> Result<()> {
    for (i, o) in list.iter().enumerate() {
        if let Err(e) = give(o, c) {
            restore_files(&list[..i]);
            return Err(e);
        }
    }
    Ok(())
}

fn give(o: &Owned, c: &confine::Creds) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if o.mode.is_none() && !o.path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&o.path)
            .map_err(|e| Error::io(format!("cannot create {}", o.path.display()), e))?;
    }
    std::os::unix::fs::chown(&o.path, Some(c.uid), Some(c.gid)).map_err(|e| {
        Error::io(
            format!(
                "unable to set user and group to '{}:{}' on '{}'",
                c.uid,
                c.gid,
                o.path.display()
            ),
            e,
        )
    })
}

/// Puts back the owner (and mode) of each file; a failure is logged.
pub(crate) fn restore_files(list: &[Owned]) {
    for o in list {
        let res = std::os::unix::fs::chown(&o.path, Some(o.uid), Some(o.gid)).and_then(|()| {
            o.mode.map_or(Ok(()), |m| {
                std::fs::set_permissions(&o.path, std::fs::Permissions::from_mode(m))
            })
        });
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                file = %o.path.display(),
                error = %e,
                "cannot restore the owner of a file QEMU's user was given"
            ),
        }
    }
}

/// Gives QEMU's user `path`, which run `generation` of `dom` opens from
/// now on (a disk plugged, a medium inserted). Intent first: the original
/// is in the run and in its status record before the owner changes.
/// Nothing happens where QEMU keeps the daemon's user. Until [`given`],
/// [`settle`] leaves the file alone even though the live definition does
/// not name it yet.
///
/// The layers below it (its backing chain) are given with it: QEMU opens
/// them too. They stay QEMU's user's while a disk of the run reads them
/// (see [`in_use`]), so a plug that fails or a disk unplugged gives back
/// the layers no other disk of the run needs.
pub(crate) fn give_live(s: &Shared, dom: &Domain, generation: u64, path: &Path) -> Result<()> {
    let c = &s.cfg.confinement;
    let Some(creds) = c.creds.as_ref().filter(|_| c.dynamic_ownership) else {
        return Ok(());
    };
    let mut files = vec![path.to_path_buf()];
    files.extend(backing_chain(path));
    let _one = s.owned.one_change();
    let mut now = Vec::with_capacity(files.len());
    for f in files {
        check_reachable(&f, creds)?;
        now.push(current(f)?);
    }
    let held = s.owned.hold(dom.uuid(), now);
    let mut added = Vec::new();
    for original in &held {
        if dom.lock().add_owned(generation, original.clone()) {
            added.push(original.clone());
        } else if dom.lock().run_of(generation).is_none() {
            // The run is over: nothing of this call stays held for it.
            s.owned.release(dom.uuid(), &held);
            return Err(Error::NotRunning);
        }
        // Else the run holds it already (its own disk twice, a layer
        // another disk shares). A layer is not a plug in flight: only
        // the disks above it keep it.
        if original.path != path {
            given(dom, generation, &original.path);
        }
    }
    if added.is_empty() {
        return Ok(());
    }
    let res = status::persist(s, dom).and_then(|()| apply(&added, creds));
    if res.is_err() {
        given(dom, generation, path);
        let layers = layers_in_use(dom, generation);
        for o in &added {
            take_back_held(s, dom, generation, &o.path, &layers);
        }
    }
    res
}

/// The plug [`give_live`] gave `path` for is over: from now on the live
/// definition says whether QEMU holds it.
pub(crate) fn given(dom: &Domain, generation: u64, path: &Path) {
    dom.lock().given(generation, path);
}

/// Puts back the owner of each file run `generation` of `dom` holds that
/// its live definition no longer names (a disk unplugged, a medium
/// ejected or replaced, a block copy's destination not pivoted to, the
/// source a pivot left), then records that it holds them no more.
pub(crate) fn settle(s: &Shared, dom: &Domain, generation: u64) {
    let _one = s.owned.one_change();
    let layers = layers_in_use(dom, generation);
    let stale: Vec<PathBuf> = {
        let g = dom.lock();
        let Some(used) = in_use(&g, generation, &layers) else {
            return;
        };
        g.run_of(generation)
            .map(|run| run.owned())
            .unwrap_or_default()
            .iter()
            .filter(|o| !used.contains(&o.path))
            .map(|o| o.path.clone())
            .collect()
    };
    for path in &stale {
        take_back_held(s, dom, generation, path, &layers);
    }
}

/// The layers below the disks run `generation` opens now or is being
/// given, read from their headers outside the domain's lock; under
/// [`Holdings::one_change`], so no plug gives a disk meanwhile.
fn layers_in_use(dom: &Domain, generation: u64) -> HashSet<PathBuf> {
    let tops: Vec<PathBuf> = {
        let g = dom.lock();
        match (g.run_of(generation), g.live()) {
            (Some(run), Some(live)) => live
                .domain()
                .disk_paths()
                .into_iter()
                .map(Path::to_path_buf)
                .chain(run.giving().iter().cloned())
                .collect(),
            _ => Vec::new(),
        }
    };
    tops.iter().flat_map(|t| backing_chain(t)).collect()
}

/// The files run `generation` needs now: those its live definition names,
/// a block copy's destination (QEMU's before it is the disk's), those
/// given for a plug in flight, the backing layers given at start, and
/// `layers` (see [`layers_in_use`]). `None` when that run is over.
fn in_use(g: &Inner, generation: u64, layers: &HashSet<PathBuf>) -> Option<HashSet<PathBuf>> {
    let (run, live) = (g.run_of(generation)?, g.live()?);
    let copying = g.block_job().and_then(|j| j.pivot_to.clone()).map(|p| p.0);
    let from_start = run
        .owned()
        .iter()
        .filter(|o| o.backing)
        .map(|o| o.path.clone());
    Some(
        paths(live.domain())
            .into_iter()
            .chain(copying)
            .chain(run.giving().iter().cloned())
            .chain(from_start)
            .chain(layers.iter().cloned())
            .collect(),
    )
}

/// Restores `path` (unless another running guest holds it), then drops it
/// from the run and its record: a crash in between restores it again.
/// Under [`Holdings::one_change`]; nothing when the run needs the file
/// again (a plug of it began meanwhile).
fn take_back_held(
    s: &Shared,
    dom: &Domain,
    generation: u64,
    path: &Path,
    layers: &HashSet<PathBuf>,
) {
    let o = {
        let g = dom.lock();
        if in_use(&g, generation, layers).is_none_or(|used| used.contains(path)) {
            return;
        }
        g.run_of(generation)
            .and_then(|r| r.owned().iter().find(|o| o.path == path).cloned())
    };
    let Some(o) = o else {
        return;
    };
    s.owned.release(dom.uuid(), std::slice::from_ref(&o));
    dom.lock().remove_owned(generation, path);
    status::persist_in_background(s, dom);
}

/// Which running guests hold each file given to QEMU's user, and what the
/// file was before the first of them: a shared file is restored once, to
/// its real original, when its last guest stops. Bounded by the files of
/// the running guests.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    files: Mutex<HashMap<PathBuf, Holding>>,
    /// Held across one file's change while its guest runs (given or given
    /// back), so a give and a give-back of the same file never interleave.
    changing: Mutex<()>,
}

#[derive(Debug)]
struct Holding {
    original: Owned,
    holders: HashSet<uuid::Uuid>,
}

impl Holdings {
    /// Serialises the changes made while guests run (see `changing`).
    pub(crate) fn one_change(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `uuid`'s run holds `list`, and returns the list with
    /// each original that another running guest already recorded (the
    /// file is already QEMU's user's, so its owner now is not original).
    pub(crate) fn hold(&self, uuid: uuid::Uuid, list: Vec<Owned>) -> Vec<Owned> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        list.into_iter()
            .map(|o| {
                let h = files.entry(o.path.clone()).or_insert_with(|| Holding {
                    original: o,
                    holders: HashSet::new(),
                });
                h.holders.insert(uuid);
                h.original.clone()
            })
            .collect()
    }

    /// `uuid`'s run is over: restores the files of `list` no other
    /// running guest holds.
    pub(crate) fn release(&self, uuid: uuid::Uuid, list: &[Owned]) {
        let last: Vec<Owned> = {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            list.iter()
                .filter(|o| match files.get_mut(&o.path) {
                    Some(h) => {
                        h.holders.remove(&uuid);
                        if h.holders.is_empty() {
                            files.remove(&o.path);
                            true
                        } else {
                            false
                        }
                    }
                    None => true,
                })
                .cloned()
                .collect()
        };
        restore_files(&last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> confine::Creds {
        confine::Creds {
            uid: 4242,
            gid: 4343,
            groups: vec![4343],
        }
    }

    fn owner(p: &Path) -> (u32, u32, u32) {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }

    /// A qcow2 overlay's backing files are given too, marked as layers; a
    /// raw base ends the chain.
    #[test]
    fn the_backing_chain_of_a_disk_is_found_from_its_headers() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.raw");
        let mid = dir.path().join("mid.qcow2");
        let top = dir.path().join("top.qcow2");
        let img = |args: &[&str]| {
            let ok = std::process::Command::new("qemu-img")
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "qemu-img {args:?}");
        };
        img(&["create", "-q", "-f", "raw", base.to_str().unwrap(), "1M"]);
        img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            mid.to_str().unwrap(),
        ]);
        img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            mid.to_str().unwrap(),
            "-F",
            "qcow2",
            top.to_str().unwrap(),
        ]);
        assert_eq!(backing_chain(&top), vec![mid.clone(), base.clone()]);
        assert_eq!(backing_chain(&base), Vec::<PathBuf>::new());
    }

    #[test]
    fn files_are_given_and_restored_and_created_ones_go_back_to_the_daemon() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let disk = dir.path().join("disk.img");
        std::fs::write(&disk, b"x").unwrap();
        std::os::unix::fs::chown(&disk, Some(7), Some(8)).unwrap();
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o640)).unwrap();
        let log = dir.path().join("serial.log");
        let list = vec![
            current(disk.clone()).unwrap(),
            current(log.clone()).unwrap(),
        ];
        assert_eq!(list[1].mode, None, "missing: created by the run");
        apply(&list, &creds()).unwrap();
        assert_eq!(
            owner(&disk),
            (4242, 4343, 0o640),
            "owner changes, mode stays"
        );
        assert_eq!(owner(&log), (4242, 4343, 0o600));
        restore_files(&list);
        assert_eq!(owner(&disk), (7, 8, 0o640));
        assert_eq!(owner(&log).0, 0);
    }

    #[test]
    fn a_shared_file_keeps_its_first_original_until_its_last_holder_stops() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let iso = dir.path().join("install.iso");
        std::fs::write(&iso, b"x").unwrap();
        std::os::unix::fs::chown(&iso, Some(7), Some(8)).unwrap();
        let h = Holdings::default();
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let first = h.hold(a, vec![current(iso.clone()).unwrap()]);
        apply(&first, &creds()).unwrap();
        // The second guest sees the file as QEMU's user's, but records the
        // first guest's original.
        let second = h.hold(b, vec![current(iso.clone()).unwrap()]);
        assert_eq!((second[0].uid, second[0].gid), (7, 8));
        h.release(a, &first);
        assert_eq!(owner(&iso).0, 4242, "still used by the second guest");
        h.release(b, &second);
        assert_eq!((owner(&iso).0, owner(&iso).1), (7, 8));
    }

    #[test]
    fn an_unreachable_file_fails_with_libvirts_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let disk = dir.path().join("disk.img");
        let e = check_reachable(&disk, &creds()).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "Cannot access storage file '{}' (as uid:4242, gid:4343)",
                disk.display()
            )),
            "{e}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        check_reachable(&disk, &creds()).unwrap();
    }
}
