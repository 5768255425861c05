//! The status record of a running domain, and the one policy for writing
//! it.
//!
//! The record (`run/qemu/UUID.json`) is what a restarted daemon re-adopts
//! a QEMU from: pid and start time, monitor socket, state and reason, the
//! live XML, a running job. Every write goes through [`persist`]: a failure
//! is logged with the domain's name, shown by `domcontrol` (state error,
//! reason internal) until a later write succeeds, and returned to the
//! caller, which passes it on where an operation caused it. Background
//! writers, with nobody to return it to, use [`persist_in_background`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::files;
use crate::jobs::blockjob::BlockJobState;
use crate::jobs::stats::CompletedJob;
use crate::lifecycle::host::owner::Owned;
use crate::nics::TapRecord;
use crate::object::def::Def;
use crate::object::{Domain, Inner};
use crate::shared::Shared;
use crate::state::{DomainState, JobOperation, StateReason, paused};
use crate::{Error, Result};

/// An async job recorded in the status file so a restarted daemon can
/// report its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    /// What it does, persisted under the key and in the form (`"save"`)
    /// status records have always used.
    #[serde(rename = "kind")]
    pub(crate) operation: JobOperation,
    /// Target file of a save.
    pub(crate) path: PathBuf,
    /// State to return to if the job fails (the state before it paused).
    pub(crate) resume_running: bool,
    pub(crate) started_ms: u64,
}

/// How far a run had got when its record was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    /// Written before QEMU is spawned (pid 0 until it is) and kept until
    /// the start completes. A restarted daemon kills the QEMU of such a
    /// record, as libvirt kills a domain that was not fully started: the
    /// start was not finished, and nobody can finish it.
    Starting,
    /// The start completed: a restarted daemon re-adopts the QEMU.
    #[default]
    Running,
}

/// What a restarted daemon needs to re-adopt a running QEMU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusRecord {
    pub(crate) version: u32,
    pub(crate) name: String,
    pub(crate) uuid: uuid::Uuid,
    /// Absent in records written before starts were recorded ahead.
    #[serde(default)]
    pub(crate) phase: Phase,
    pub(crate) id: u32,
    /// 0 in a `Starting` record written before the spawn.
    pub(crate) pid: i32,
    /// `/proc/PID/stat` field 22: tells a reused PID from our QEMU.
    pub(crate) pid_start_time: u64,
    pub(crate) monitor: PathBuf,
    pub(crate) state: StateReason,
    pub(crate) persistent: bool,
    /// The live definition (may differ from the persistent one).
    pub(crate) live_xml: String,
    /// A guest/host shutdown was seen: an exit now is a clean shutdown.
    #[serde(default)]
    pub(crate) shutdown_seen: bool,
    #[serde(default)]
    pub(crate) fake_reboot: bool,
    #[serde(default)]
    pub(crate) job: Option<JobRecord>,
    /// A running block job, finished by a restarted daemon.
    #[serde(default)]
    pub(crate) block_job: Option<BlockJobState>,
    /// Statistics of the last async job that ended, not yet read.
    #[serde(default)]
    pub(crate) completed_job: Option<CompletedJob>,
    /// The taps of the run, by interface index: named before the guest
    /// runs, so a restarted daemon removes what is left of them.
    #[serde(default)]
    pub(crate) taps: Vec<Option<TapRecord>>,
    /// Devices asked to unplug that the guest had not released: a
    /// restarted daemon completes those QEMU no longer has.
    #[serde(default)]
    pub(crate) pending_unplug: Vec<String>,
    /// The files given to QEMU's user, with their original owners:
    /// written before the first is changed, so whoever ends the run puts
    /// them back.
    #[serde(default)]
    pub(crate) owned: Vec<Owned>,
}

pub(crate) const STATUS_VERSION: u32 = 1;

impl StatusRecord {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail; fall back to empty
        // (which a loader rejects) rather than panic.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let rec: StatusRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if rec.version != STATUS_VERSION {
            return Err(format!("unsupported status version {}", rec.version));
        }
        let spawned = rec.pid > 1;
        let unspawned = rec.pid == 0 && rec.phase == Phase::Starting;
        if !spawned && !unspawned {
            return Err(format!("invalid pid {}", rec.pid));
        }
        Ok(rec)
    }

    /// The record written before QEMU is spawned: domain `dom` is to run
    /// `live` as domain `id`, its monitor at `monitor`.
    pub(crate) fn intent(
        dom: &Domain,
        persistent: bool,
        id: u32,
        live: &Def,
        monitor: PathBuf,
        taps: Vec<Option<TapRecord>>,
        owned: Vec<Owned>,
    ) -> Self {
        Self {
            version: STATUS_VERSION,
            name: dom.name().to_owned(),
            uuid: dom.uuid(),
            phase: Phase::Starting,
            id,
            pid: 0,
            pid_start_time: 0,
            monitor,
            state: StateReason::new(DomainState::Paused, paused::STARTING_UP),
            persistent,
            live_xml: live.to_xml(),
            shutdown_seen: false,
            fake_reboot: false,
            job: None,
            block_job: None,
            completed_job: None,
            taps,
            pending_unplug: Vec::new(),
            owned,
        }
    }

    /// The record of `dom`'s current run (without its XML, which is
    /// formatted outside the lock); `None` when it is not running.
    fn of(dom: &Domain, g: &Inner) -> Option<Self> {
        let run = g.run()?;
        let starting = g.state() == StateReason::new(DomainState::Paused, paused::STARTING_UP);
        Some(Self {
            version: STATUS_VERSION,
            name: dom.name().to_owned(),
            uuid: dom.uuid(),
            phase: if starting {
                Phase::Starting
            } else {
                Phase::Running
            },
            id: g.id().unwrap_or(0),
            pid: run.process().pid(),
            pid_start_time: run.start_time(),
            monitor: run.socket().clone(),
            state: g.state(),
            persistent: g.persistent(),
            live_xml: String::new(),
            shutdown_seen: run.shutdown_seen(),
            fake_reboot: run.fake_reboot(),
            job: g.job().map(|j| JobRecord {
                operation: j.operation,
                path: j.path.clone().unwrap_or_default(),
                resume_running: j.resume_running,
                started_ms: j
                    .started
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }),
            block_job: g.block_job().cloned(),
            completed_job: g.completed_job().cloned(),
            taps: run.taps().to_vec(),
            pending_unplug: run.pending_unplug().to_vec(),
            owned: run.owned().to_vec(),
        })
    }
}

/// Writes the status record of `dom`'s current run (nothing if it is not
/// running), under the one policy of this module. The per-domain persist
/// lock orders writes against [`remove`], so a late write never
/// resurrects a stopped domain's file.
pub(crate) fn persist(s: &Shared, dom: &Domain) -> Result<()> {
    persist_unless(s, dom, None)
}

/// [`persist`], skipped when the record would say exactly what `on_disk`
/// (the file as last read) says: re-adopting an unchanged run after a
/// restart writes and syncs nothing.
fn persist_unless(s: &Shared, dom: &Domain, on_disk: Option<&StatusRecord>) -> Result<()> {
    let _p = dom.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
    let (mut rec, live) = {
        let g = dom.lock();
        let Some(rec) = StatusRecord::of(dom, &g) else {
            return Ok(());
        };
        (rec, g.current_def())
    };
    rec.live_xml = live.to_xml();
    if on_disk == Some(&rec) {
        return Ok(());
    }
    let path = s.layout.status(&dom.uuid());
    let res = files::atomic_write(&path, &rec.to_bytes())
        .map_err(|e| Error::io(format!("cannot write status file {}", path.display()), e));
    note_outcome(dom, &res);
    res
}

/// [`persist_in_background`] for a re-adopted run whose file said
/// `on_disk`: written only if something changed.
pub(crate) fn persist_adopted(s: &Shared, dom: &Domain, on_disk: &StatusRecord) {
    let _logged_and_shown_by_domcontrol = persist_unless(s, dom, Some(on_disk));
}

/// Writes the intent record `rec` of a start, before anything outside
/// the daemon exists for it (see [`StatusRecord::intent`]), under the
/// same policy as [`persist`].
pub(crate) fn record_intent(s: &Shared, dom: &Domain, rec: &StatusRecord) -> Result<()> {
    let _p = dom.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
    let path = s.layout.status(&dom.uuid());
    let res = files::atomic_write(&path, &rec.to_bytes())
        .map_err(|e| Error::io(format!("cannot write status file {}", path.display()), e));
    note_outcome(dom, &res);
    res
}

/// [`persist`] for writers nobody waits for (the action task, a block
/// job's supervisor, re-adoption): the failure is logged and shown by
/// `domcontrol`, and there is no caller to return it to.
pub(crate) fn persist_in_background(s: &Shared, dom: &Domain) {
    let _logged_and_shown_by_domcontrol = persist(s, dom);
}

/// Logs a change of the write outcome (the first failure needs a human;
/// repeats while it keeps failing would only flood the log) and records
/// it for `domcontrol`.
fn note_outcome(dom: &Domain, res: &Result<()>) {
    let was_failing = {
        let mut g = dom.lock();
        let was = g.status_write_failed();
        g.note_status_write(res.is_ok());
        was
    };
    match (res, was_failing) {
        (Err(e), false) => tracing::error!(
            domain = dom.name(),
            error = %e,
            "cannot write the status file: a restarted daemon would not see this domain's latest state"
        ),
        (Err(e), true) => {
            tracing::debug!(domain = dom.name(), error = %e, "status file still not written")
        }
        (Ok(()), true) => tracing::info!(domain = dom.name(), "status file written again"),
        (Ok(()), false) => {}
    }
}

/// Removes `dom`'s status file once its run is over.
pub(crate) fn remove(s: &Shared, dom: &Domain) {
    let _p = dom.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
    let status = s.layout.status(&dom.uuid());
    match files::remove(&status) {
        Ok(()) => dom.lock().note_status_write(true),
        // Harmless for the next start (the record names a dead pid and a
        // restarted daemon removes it), but the file system needs a look.
        Err(e) => tracing::warn!(domain = dom.name(), error = %e, "cannot remove status file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::stats::{JobEnd, RamStats};
    use crate::state::DomainState;

    #[test]
    fn status_roundtrip_and_garbage_rejected() {
        let rec = StatusRecord {
            version: STATUS_VERSION,
            name: "vm".into(),
            uuid: uuid::Uuid::new_v4(),
            phase: Phase::Running,
            id: 3,
            pid: 1234,
            pid_start_time: 99,
            monitor: "/run/x.qmp".into(),
            state: StateReason::new(DomainState::Running, 1),
            persistent: true,
            live_xml: "<domain/>".into(),
            shutdown_seen: false,
            fake_reboot: false,
            job: None,
            block_job: None,
            pending_unplug: vec!["virtio-disk1".into()],
            owned: vec![
                Owned {
                    path: "/srv/vm.img".into(),
                    uid: 7,
                    gid: 8,
                    mode: Some(0o640),
                    backing: false,
                },
                Owned {
                    path: "/srv/base.qcow2".into(),
                    uid: 0,
                    gid: 0,
                    mode: Some(0o600),
                    backing: true,
                },
            ],
            completed_job: Some(CompletedJob {
                end: JobEnd::Cancelled,
                operation: JobOperation::Save,
                elapsed_ms: 42,
                ram: RamStats {
                    total: 8,
                    bps: Some(1),
                    ..RamStats::default()
                },
                error: Some("save job cancelled".into()),
                downtime_ms: None,
            }),
            taps: vec![
                None,
                Some(TapRecord {
                    name: "vnet3".into(),
                    ifindex: 17,
                    created: true,
                }),
            ],
        };
        let text = String::from_utf8(rec.to_bytes()).unwrap();
        assert_eq!(StatusRecord::parse(&text).unwrap(), rec);
        assert!(StatusRecord::parse("{garbage").is_err());
        assert!(StatusRecord::parse("").is_err());
    }

    /// A status file written before completed-job statistics existed.
    const OLD_STATUS: &str = r#"{
  "version": 1, "name": "vm", "uuid": "5f1c3c2e-8c4e-4a53-9d0e-3b7a7f1b2c3d",
  "id": 3, "pid": 1234, "pid_start_time": 99, "monitor": "/run/x.qmp",
  "state": {"state": "Running", "reason": 1}, "persistent": true,
  "live_xml": "<domain/>", "shutdown_seen": false, "fake_reboot": false,
  "job": null, "block_job": null
}"#;

    #[test]
    fn old_status_file_without_completed_job_loads() {
        let rec = StatusRecord::parse(OLD_STATUS).expect("old record loads");
        assert_eq!(rec.completed_job, None);
        assert!(rec.taps.is_empty(), "no taps recorded");
        assert_eq!(rec.id, 3);
        assert_eq!(rec.phase, Phase::Running, "written after a completed start");
    }

    #[test]
    fn only_a_starting_record_may_lack_a_pid() {
        let unspawned = OLD_STATUS
            .replace(r#""pid": 1234"#, r#""pid": 0"#)
            .replace(r#""version": 1,"#, r#""version": 1, "phase": "starting","#);
        let rec = StatusRecord::parse(&unspawned).expect("intent loads");
        assert_eq!((rec.phase, rec.pid), (Phase::Starting, 0));
        let running = OLD_STATUS.replace(r#""pid": 1234"#, r#""pid": 0"#);
        assert!(StatusRecord::parse(&running).is_err(), "a run has a pid");
        let bad = unspawned.replace(r#""pid": 0"#, r#""pid": -4"#);
        assert!(StatusRecord::parse(&bad).is_err());
    }

    #[test]
    fn completed_job_with_only_the_first_fields_loads() {
        let done = r#"{"end": "Completed", "operation": "save", "elapsed_ms": 7}"#;
        let text = OLD_STATUS.replace(
            r#""block_job": null"#,
            &format!(r#""block_job": null, "completed_job": {done}"#),
        );
        let rec = StatusRecord::parse(&text).expect("record loads");
        let c = rec.completed_job.expect("completed job");
        assert_eq!((c.end, c.elapsed_ms), (JobEnd::Completed, 7));
        assert_eq!((c.ram, c.error), (RamStats::default(), None));
    }

    #[test]
    fn a_save_recorded_by_name_loads_and_is_written_the_same_way() {
        let job = r#"{"kind": "save", "path": "/s.img", "resume_running": true, "started_ms": 5}"#;
        let text = OLD_STATUS.replace(r#""job": null"#, &format!(r#""job": {job}"#));
        let rec = StatusRecord::parse(&text).expect("record loads");
        let j = rec.job.expect("job");
        assert_eq!(j.operation, JobOperation::Save);
        assert_eq!(j.path, PathBuf::from("/s.img"));
        // Written back in the same form, and read again.
        let again = String::from_utf8(
            StatusRecord {
                job: Some(j.clone()),
                ..rec
            }
            .to_bytes(),
        )
        .expect("utf-8");
        assert!(again.contains(r#""kind": "save""#), "{again}");
        assert_eq!(StatusRecord::parse(&again).expect("loads").job, Some(j));
    }
}
