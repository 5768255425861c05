//! The domain object (libvirt's `virDomainObj`): identity, definitions and
//! live state behind a short lock, the per-domain job lock, and the run of
//! its QEMU.
//!
//! The state mutex is a `std::sync::Mutex` held only for field reads and
//! the transitions of [`Inner`] (which include the non-blocking event
//! fan-out), never across `.await`. So every query (info, state, dumpxml,
//! list) answers from a consistent snapshot without taking a job, and the
//! event task updates state while a job runs, even one waiting for that
//! very event.

mod command;
pub(crate) mod def;
pub(crate) mod devices;
mod inner;
pub(crate) mod registry;
pub(crate) mod run;
mod run_state;
mod stats;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use def::Def;
pub(crate) use inner::{Adopted, Inner, Started};

use crate::jobs::stats::CompletedJob;
use crate::state::{
    ControlState, DomainEvent, DomainState, EventKind, JobOperation, StateReason, control_error,
};
use crate::stats::health::Health;

/// A running async job as `domjobinfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncJobInfo {
    pub operation: JobOperation,
    pub started: SystemTime,
    /// The file a save writes.
    pub path: Option<PathBuf>,
    /// The state to return to if it fails: running (else paused).
    pub resume_running: bool,
}

/// How an async job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub operation: JobOperation,
    pub success: bool,
    pub message: String,
}

/// One domain.
pub struct Domain {
    name: String,
    uuid: uuid::Uuid,
    inner: Mutex<Inner>,
    pub(crate) jobs: joblock::JobLock,
    /// Serialises status-file writes and their removal (see
    /// `store::status`), so a late write never resurrects a stopped
    /// domain's file.
    pub(crate) persist_lock: Mutex<()>,
    /// The statistics cache (see `crate::stats`).
    pub(crate) stats: crate::stats::Slot,
    /// Where its monitor commands record their round trips (set when the
    /// domain enters the registry).
    health: OnceLock<Arc<Health>>,
}

/// `virDomainGetInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    pub state: DomainState,
    pub max_mem_kib: u64,
    pub memory_kib: u64,
    pub nr_virt_cpu: u32,
    pub cpu_time_ns: u64,
}

/// `virDomainGetControlInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlInfo {
    pub state: ControlState,
    /// `virDomainControlErrorReason` when `state` is `Error` (see
    /// [`control_error`]), else 0.
    pub details: u32,
    pub state_time_ms: u64,
}

/// A consistent snapshot of a domain for lists and lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSummary {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub id: Option<u32>,
    pub state: StateReason,
    pub persistent: bool,
    pub autostart: bool,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("name", &self.name)
            .field("uuid", &self.uuid)
            .field("state", &self.state())
            .finish()
    }
}

impl Domain {
    pub(crate) fn new(def: Arc<Def>, persistent: bool) -> Arc<Self> {
        Arc::new(Self {
            name: def.name().to_owned(),
            uuid: def.uuid(),
            inner: Mutex::new(Inner::new(def, persistent)),
            jobs: joblock::JobLock::new(),
            persist_lock: Mutex::new(()),
            stats: crate::stats::Slot::default(),
            health: OnceLock::new(),
        })
    }

    /// Records this domain's jobs and monitor commands into `h` (the first
    /// registry it enters wins).
    pub(crate) fn attach_health(&self, h: &Arc<Health>) {
        if self.health.set(h.clone()).is_ok() {
            self.jobs.set_observer(h.clone());
        }
    }

    pub(crate) fn health(&self) -> Option<&Health> {
        self.health.get().map(|h| &**h)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }

    /// The short state lock. Never hold the guard across `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock would be a bug in our own
        // short critical sections; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn id(&self) -> Option<u32> {
        self.lock().id
    }

    pub fn state(&self) -> StateReason {
        self.lock().state
    }

    pub fn is_active(&self) -> bool {
        self.lock().is_active()
    }

    pub fn is_persistent(&self) -> bool {
        self.lock().persistent
    }

    pub fn summary(&self) -> DomainSummary {
        let g = self.lock();
        DomainSummary {
            name: self.name.clone(),
            uuid: self.uuid,
            id: g.id,
            state: g.state,
            persistent: g.persistent,
            autostart: g.autostart,
        }
    }

    /// `virDomainGetInfo` from the snapshot plus /proc (no job, no monitor).
    pub fn info(&self) -> DomainInfo {
        let (state, def, pid) = {
            let g = self.lock();
            let pid = g.run.as_ref().map(|r| r.process().pid());
            (g.state.state, g.current_def(), pid)
        };
        let cpu = pid
            .and_then(crate::emulator::process::cpu_time_ns)
            .unwrap_or(0);
        DomainInfo {
            state,
            max_mem_kib: def.max_memory_kib(),
            memory_kib: def.current_memory_kib(),
            nr_virt_cpu: def.vcpus(),
            cpu_time_ns: cpu,
        }
    }

    /// `virDomainGetControlInfo`: a monitor that stopped answering, or a
    /// status file that could not be written, is an error until it
    /// recovers; otherwise whether a job runs.
    pub fn control_info(&self) -> ControlInfo {
        let g = self.lock();
        let ms = u64::try_from(g.state_since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let unresponsive = g.run.as_ref().is_some_and(|r| r.unresponsive());
        let (state, details) = if unresponsive {
            (ControlState::Error, control_error::MONITOR)
        } else if g.status_write_failed {
            (ControlState::Error, control_error::INTERNAL)
        } else if g.job.is_some() {
            (ControlState::Job, control_error::NONE)
        } else {
            (ControlState::Ok, control_error::NONE)
        };
        ControlInfo {
            state,
            details,
            state_time_ms: ms,
        }
    }

    /// Who holds the job lock now (for diagnostics and tests).
    pub fn jobs_holders(&self) -> Vec<joblock::HolderInfo> {
        self.jobs.holders()
    }

    /// Whether the last monitor command timed out.
    pub fn monitor_unresponsive(&self) -> bool {
        self.lock().run.as_ref().is_some_and(|r| r.unresponsive())
    }

    /// The running QEMU's pid.
    pub fn pid(&self) -> Option<i32> {
        self.lock().run.as_ref().map(|r| r.process().pid())
    }

    pub fn autostart(&self) -> bool {
        self.lock().autostart
    }

    /// The definition a client sees: live while running unless `inactive`.
    pub(crate) fn def_for_xml(&self, inactive: bool) -> Arc<Def> {
        let g = self.lock();
        match (&g.live, inactive) {
            (Some(live), false) => live.clone(),
            _ => g.def.clone(),
        }
    }

    /// The files a running domain's QEMU has open for its disks, kernel and
    /// initrd (from the live definition); empty when it does not run.
    pub fn files_in_use(&self) -> Vec<PathBuf> {
        let g = self.lock();
        match &g.live {
            Some(live) if g.state.state.is_active() => live.disk_paths(),
            _ => Vec::new(),
        }
    }

    /// The running async job, if any.
    pub fn async_job(&self) -> Option<AsyncJobInfo> {
        self.lock().job.clone()
    }

    pub fn last_job(&self) -> Option<JobOutcome> {
        self.lock().last_job.clone()
    }

    /// The completed-job statistics; taken (gone for the next reader)
    /// unless `keep`.
    pub(crate) fn read_completed_job(&self, keep: bool) -> Option<CompletedJob> {
        self.lock().read_completed_job(keep)
    }

    /// An event about this domain, with its id as of now.
    fn event(&self, id: Option<u32>, kind: EventKind) -> DomainEvent {
        DomainEvent {
            name: self.name.clone(),
            uuid: self.uuid,
            id: id.and_then(|i| i32::try_from(i).ok()).unwrap_or(-1),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::stats::{JobEnd, RamStats};

    fn domain() -> Arc<Domain> {
        let xml = "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory>\
                   <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";
        Domain::new(Arc::new(Def::parse(xml).expect("valid XML")), true)
    }

    fn record(end: JobEnd) -> CompletedJob {
        CompletedJob {
            end,
            operation: JobOperation::Save,
            elapsed_ms: 5,
            ram: RamStats::default(),
            error: None,
            downtime_ms: None,
        }
    }

    #[test]
    fn completed_job_kept_or_taken_once() {
        let dom = domain();
        assert_eq!(dom.read_completed_job(false), None);
        dom.lock().set_completed_job(record(JobEnd::Completed));
        assert!(dom.read_completed_job(true).is_some());
        assert!(dom.read_completed_job(true).is_some(), "keep leaves it");
        assert!(dom.read_completed_job(false).is_some());
        assert_eq!(dom.read_completed_job(false), None, "read discards it");
        assert_eq!(dom.read_completed_job(true), None);
    }

    #[test]
    fn a_failed_status_write_shows_until_the_next_good_one() {
        let dom = domain();
        assert_eq!(dom.control_info().state, ControlState::Ok);
        dom.lock().note_status_write(false);
        let c = dom.control_info();
        assert_eq!((c.state, c.details), (ControlState::Error, 3));
        dom.lock().note_status_write(true);
        assert_eq!(dom.control_info().state, ControlState::Ok);
    }
}
