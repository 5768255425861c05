//! Start-up: reconciling what the previous daemon left on disk with the
//! processes that are alive.
//!
//! Every start records its intent (a `Starting` status record) before
//! anything outside the daemon exists for it, so whatever instant the
//! previous daemon died at, every QEMU of this root is named by a record
//! (or is not ours to keep). When the driver opens:
//!
//! 1. one pass over /proc finds every process of this root: a QEMU names
//!    its pidfile or monitor socket under the run directory, a capability
//!    probe a file under the probe directory (`emulator::process::Ownership`);
//! 2. a `Running` record: its QEMU is re-adopted ([`readopt`]); any other
//!    process of that domain is killed, so it never has two;
//! 3. a `Starting` record: the start did not complete and nobody can
//!    finish it, so whatever runs for it is killed (as libvirt kills a
//!    domain that was not fully started) and the domain is shut off with
//!    reason "daemon"; a child killed between fork and exec does not look
//!    like QEMU yet, but it holds the run lock, so the driver waits for the
//!    lock to be released, killing what appears;
//! 4. a process no record names (a probe, or a QEMU nobody can vouch for)
//!    is killed and logged;
//! 5. the run directory's files that no live run names are removed.
//!
//! Only then does the driver serve or autostart anything.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::task::JoinSet;

use super::files;
use super::readopt;
use super::status::{Phase, StatusRecord};
use crate::config::Layout;
use crate::emulator::liveness;
use crate::emulator::process::{Owner, Ownership, Process};
use crate::shared::Shared;
use crate::state::StopCause;
use crate::{Error, Result};

/// How long a killed process may take to exit.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long a `Starting` record's run lock may stay held after its QEMU
/// was killed (a child caught between fork and exec execs or exits).
const RELEASE_WAIT: Duration = Duration::from_secs(10);
/// How long a driver waits for the root's lock (a child of a killed daemon
/// caught between fork and exec holds it until its exec).
const DRIVER_LOCK_WAIT: Duration = Duration::from_secs(10);
/// Pace of the polls above.
const POLL: Duration = Duration::from_millis(10);

/// The root's lock, held by an open driver for its whole life (see
/// `Layout::driver_lock`): a second driver on the same root would kill
/// the QEMUs the first one is starting.
#[derive(Debug)]
pub(crate) struct DriverLock {
    _lock: Flock<File>,
}

/// Takes the root's lock, waiting a bounded time for it.
pub(crate) async fn lock_driver(layout: &Layout) -> Result<DriverLock> {
    let path = layout.driver_lock();
    let deadline = tokio::time::Instant::now() + DRIVER_LOCK_WAIT;
    loop {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(DriverLock { _lock: lock }),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err((_, errno)) => {
                return Err(Error::OperationInvalid(format!(
                    "another driver holds {} ({errno}): one daemon per root",
                    path.display()
                )));
            }
        }
    }
}

/// What the previous daemon left: its status records, and the processes
/// of this root that are alive.
pub(crate) struct Survey {
    records: Vec<StatusRecord>,
    owners: Ownership,
    found: Vec<(i32, Owner)>,
}

/// Reads the status records and scans /proc at the same time, each on a
/// blocking thread (thousands of files either way), while the caller
/// loads the definitions.
pub(crate) async fn survey(s: &Arc<Shared>) -> Result<Survey> {
    let owners = Ownership::new(&s.layout.run_dir, &s.layout.caps_dir);
    let reader = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || read_records(&s))
    };
    let scanner = {
        let o = owners.clone();
        tokio::task::spawn_blocking(move || o.scan())
    };
    let (records, found) = tokio::join!(reader, scanner);
    // Either fails only if its thread panicked. Acting on half a survey
    // would kill QEMUs no record seemed to name, so the driver does not
    // open at all.
    let lost = |e: tokio::task::JoinError| Error::Internal(format!("start-up survey failed: {e}"));
    Ok(Survey {
        records: records.map_err(lost)?,
        found: found.map_err(lost)?,
        owners,
    })
}

/// Reconciles the run directory with the processes alive (see the
/// module's doc), from `survey`; returns once every record is settled.
pub(crate) async fn reconcile(s: &Arc<Shared>, survey: Survey) {
    let Survey {
        records,
        owners,
        found,
    } = survey;
    let (mut by_domain, probes) = group(found);
    let mut set = JoinSet::new();
    for pid in probes {
        let o = owners.clone();
        set.spawn(
            async move { kill(&o, pid, Owner::Probe, "a probe the previous daemon left").await },
        );
    }
    // Every record's files first: a run found over releases a shared
    // file only when no run still alive holds it.
    for rec in &records {
        s.owned.hold(rec.uuid, rec.owned.clone());
    }
    for rec in records {
        s.next_id
            .fetch_max(rec.id.saturating_add(1), Ordering::Relaxed);
        let pids = by_domain.remove(&rec.uuid).unwrap_or_default();
        let (s, o) = (s.clone(), owners.clone());
        set.spawn(async move { settle(&s, &o, rec, pids).await });
    }
    for (uuid, pids) in by_domain {
        for pid in pids {
            let o = owners.clone();
            let why = "no definition or status record names it";
            set.spawn(async move { kill(&o, pid, Owner::Domain(uuid), why).await });
        }
    }
    while set.join_next().await.is_some() {}
    crate::jobs::migration::sweep_precreated(&s.layout.migration_dir);
    sweep_run_dir(s);
    sweep_probe_dir(&s.layout);
}

/// Every status record, bad ones logged and removed (a QEMU only a bad
/// record named is then killed as unnamed).
fn read_records(s: &Shared) -> Vec<StatusRecord> {
    let paths = files::list_with_ext(&s.layout.run_dir, "json").unwrap_or_default();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        match files::read_bounded(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| StatusRecord::parse(&t))
        {
            Ok(r) => out.push(r),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "removing bad status file");
                if let Err(e) = files::remove(&path) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove it");
                }
            }
        }
    }
    out
}

/// The scan's processes by domain, and the probes.
fn group(found: Vec<(i32, Owner)>) -> (HashMap<uuid::Uuid, Vec<i32>>, Vec<i32>) {
    let mut by_domain: HashMap<uuid::Uuid, Vec<i32>> = HashMap::new();
    let mut probes = Vec::new();
    for (pid, owner) in found {
        match owner {
            Owner::Domain(u) => by_domain.entry(u).or_default().push(pid),
            Owner::Probe => probes.push(pid),
        }
    }
    (by_domain, probes)
}

/// Settles one record, given the processes the scan found for its domain.
async fn settle(s: &Arc<Shared>, o: &Ownership, rec: StatusRecord, pids: Vec<i32>) {
    match rec.phase {
        Phase::Running => adopt_or_bury(s, o, rec, pids).await,
        Phase::Starting => undo_start(s, o, rec, pids).await,
    }
}

/// A completed start: adopt its recorded QEMU, kill any other.
async fn adopt_or_bury(s: &Arc<Shared>, o: &Ownership, rec: StatusRecord, pids: Vec<i32>) {
    let owner = Owner::Domain(rec.uuid);
    let Some((dom, live)) = readopt::domain_for(s, &rec) else {
        // Nothing to attach it to: never leave an unmanaged QEMU behind.
        kill_all(
            o,
            owner,
            with_recorded(&rec, pids),
            "its record names no domain",
        )
        .await;
        readopt::forget_files(s, &rec);
        return;
    };
    match readopt::find_alive(&rec) {
        Some(process) => {
            let others: Vec<i32> = pids.into_iter().filter(|p| *p != rec.pid).collect();
            kill_all(o, owner, others, "a second QEMU of a running domain").await;
            readopt::adopt(s, &dom, &live, &rec, process).await;
        }
        None => {
            kill_all(o, owner, pids, "its domain's recorded QEMU is gone").await;
            readopt::mark_dead(s, &dom, &rec, None);
        }
    }
}

/// A start that did not complete: kill whatever runs for it, wait for its
/// run lock, shut the domain off (forgetting a transient one).
async fn undo_start(s: &Shared, o: &Ownership, rec: StatusRecord, pids: Vec<i32>) {
    let owner = Owner::Domain(rec.uuid);
    let why = "its start had not completed when the previous daemon stopped";
    kill_all(o, owner, with_recorded(&rec, pids), why).await;
    let released = wait_released(s, o, rec.uuid).await;
    if !released {
        tracing::error!(
            domain = %rec.name,
            "a process of an unfinished start still holds the domain's run lock: starts will be refused until it exits"
        );
    }
    match readopt::domain_for(s, &rec) {
        Some((dom, _)) => readopt::mark_dead(s, &dom, &rec, Some(StopCause::Daemon)),
        None => readopt::forget_files(s, &rec),
    }
}

/// `pids` plus the record's own pid, if it has one.
fn with_recorded(rec: &StatusRecord, mut pids: Vec<i32>) -> Vec<i32> {
    if rec.pid > 1 && !pids.contains(&rec.pid) {
        pids.push(rec.pid);
    }
    pids
}

/// Waits until no process holds the run lock or pidfile of `uuid`,
/// killing what the scan finds for it meanwhile; false at the deadline.
async fn wait_released(s: &Shared, o: &Ownership, uuid: uuid::Uuid) -> bool {
    let (lock, pidfile) = (s.layout.run_lock(&uuid), s.layout.pidfile(&uuid));
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    loop {
        if !liveness::run_lock_held(&lock) && liveness::pidfile_holder(&pidfile).is_none() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        let owner = Owner::Domain(uuid);
        let late: Vec<i32> = o
            .scan()
            .into_iter()
            .filter(|(_, w)| *w == owner)
            .map(|(pid, _)| pid)
            .collect();
        kill_all(o, owner, late, "it appeared for an unfinished start").await;
        tokio::time::sleep(POLL).await;
    }
}

async fn kill_all(o: &Ownership, owner: Owner, pids: Vec<i32>, why: &str) {
    for pid in pids {
        kill(o, pid, owner, why).await;
    }
}

/// SIGKILLs `pid` if it still belongs to `owner` (checked after its pidfd
/// is open, so a recycled pid is never hit) and waits for it to exit.
async fn kill(o: &Ownership, pid: i32, owner: Owner, why: &str) {
    let Ok(p) = Process::open(pid, false) else {
        return;
    };
    if o.of_pid(pid) != Some(owner) {
        return;
    }
    tracing::warn!(pid, owner = ?owner, "killing a process of this root: {why}");
    if let Err(e) = p.signal(libc::SIGKILL) {
        tracing::error!(pid, error = %e, "cannot kill it");
        return;
    }
    if tokio::time::timeout(KILL_WAIT, p.exited()).await.is_err() {
        tracing::error!(pid, "still alive {KILL_WAIT:?} after SIGKILL");
    }
}

/// Removes the run directory's files no live run names: monitor sockets
/// and pidfiles of domains that do not run, run locks of domains the
/// driver does not know; never a file a live process holds.
fn sweep_run_dir(s: &Shared) {
    let Ok(rd) = std::fs::read_dir(&s.layout.run_dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let Ok(uuid) = stem.to_string_lossy().parse::<uuid::Uuid>() else {
            continue;
        };
        let dom = s.registry.by_uuid(&uuid);
        let stale = match ext.to_string_lossy().as_ref() {
            "qmp" | "pid" => {
                !dom.is_some_and(|d| d.is_active())
                    && liveness::pidfile_holder(&s.layout.pidfile(&uuid)).is_none()
            }
            "lock" => dom.is_none() && !liveness::run_lock_held(&path),
            _ => false,
        };
        if stale && let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a stale run file");
        }
    }
}

/// Removes the sockets and images of probes (all killed by now); keeps
/// their log.
fn sweep_probe_dir(layout: &Layout) {
    let Ok(rd) = std::fs::read_dir(&layout.caps_dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let probe_file = path.extension().is_some_and(|e| e == "qmp" || e == "img");
        if probe_file {
            let _ = std::fs::remove_file(&path);
        }
    }
}
