//! The domain object: identity, definitions and live state behind a short
//! lock, plus the per-domain job lock, job-progress watch and action set.
//!
//! The state mutex is a `std::sync::Mutex` held only for field reads and
//! writes (and the non-blocking event fan-out), never across `.await`, so
//! every query (info, state, dumpxml, list) answers from a consistent
//! snapshot without taking a job (requirement 5) and event handlers update
//! state while a job runs (requirement 4).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::actions::Actions;
use crate::def::Def;
use crate::process::Process;
use crate::state::{DomainEvent, DomainState, EventKind, StateReason, shutoff};
use crate::subscribers::Hub;

/// Who asked the guest to shut down, for the SHUTDOWN event detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownBy {
    Guest,
    Host,
}

/// What one run (one QEMU process) shares with its event and action
/// tasks. Per run, not per domain, so a task of an earlier run can never
/// consume or publish anything for a later one.
pub(crate) struct RunCtx {
    pub generation: u64,
    pub actions: Actions,
    pub progress: watch::Sender<Progress>,
    /// Guest-triggered value events waiting for their delivery slot.
    pub throttle: crate::throttle::Throttle,
}

impl RunCtx {
    pub(crate) fn new(generation: u64) -> Arc<Self> {
        Arc::new(Self {
            generation,
            actions: Actions::default(),
            progress: watch::Sender::new(Progress::default()),
            throttle: Default::default(),
        })
    }

    pub(crate) fn update_progress(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(|p| {
            f(p);
            p.seq = p.seq.wrapping_add(1);
        });
    }
}

/// A running QEMU as the driver tracks it.
pub(crate) struct Run {
    pub ctx: Arc<RunCtx>,
    pub process: Arc<Process>,
    pub start_time: u64,
    pub socket: PathBuf,
    /// None while starting (before the QMP handshake).
    pub monitor: Option<qmp::Monitor>,
    /// A monitor command timed out; cleared by the next answered one.
    pub unresponsive: bool,
    pub shutdown_seen: Option<ShutdownBy>,
    /// `virsh reboot`: on the guest's SHUTDOWN, reset + cont instead of stop.
    pub fake_reboot: bool,
    /// We are killing it, and why: decides the reason of its exit.
    pub kill_reason: Option<crate::state::StopCause>,
    /// Reason to use for the next STOP event (set by the op that stops).
    pub pending_pause: Option<i32>,
    /// Reason to use for the next RESUME event (set by the op that resumes).
    pub pending_resume: Option<i32>,
    /// STOP / RESUME events QEMU still owes us for state changes the command
    /// path already applied (its reply came back before the event task had
    /// handled the event). The event, when it comes, is consumed instead of
    /// applied again: applying it late, after a later command changed the
    /// state back, would emit a spurious transition and briefly report a
    /// wrong state. Reset on overflow, where the resync restores the truth.
    pub owed_stop: u32,
    pub owed_resume: u32,
    /// (node name, disk target) of the nodes block jobs pivoted disks
    /// onto, so an I/O error QEMU reports on such a node names its disk.
    /// At most two nodes per disk (see [`Run::note_pivot`]).
    pub pivoted_nodes: Vec<(String, String)>,
}

impl Run {
    /// Disk `target` now runs on `nodes` (replacing an earlier pivot's).
    pub(crate) fn note_pivot(&mut self, target: &str, nodes: &[String]) {
        self.pivoted_nodes.retain(|(_, t)| t != target);
        self.pivoted_nodes
            .extend(nodes.iter().map(|n| (n.clone(), target.to_owned())));
    }
}

/// A running async job as `domjobinfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncJobInfo {
    pub kind: String,
    pub started: SystemTime,
    pub path: Option<PathBuf>,
    pub resume_running: bool,
}

pub(crate) struct Inner {
    /// The persistent (next boot) definition, or the transient one.
    pub def: Arc<Def>,
    /// The definition QEMU runs with, while active.
    pub live: Option<Arc<Def>>,
    pub persistent: bool,
    pub autostart: bool,
    pub state: StateReason,
    pub state_since: Instant,
    pub id: Option<u32>,
    pub run: Option<Run>,
    /// Bumped on every start: tasks of an older run see they are stale.
    pub generation: u64,
    pub job: Option<AsyncJobInfo>,
    /// Outcome of the last async job (for `domjobinfo --completed` and for
    /// reporting the outcome of a job that ran across a daemon restart).
    pub last_job: Option<JobOutcome>,
    /// Statistics of the last async job that ended (`domjobinfo
    /// --completed`): one record, replaced by the next, dropped when read.
    pub completed_job: Option<crate::jobstats::CompletedJob>,
    /// The running block job (copy, pull, commit), if any.
    pub block_job: Option<crate::jobs::blockjob::BlockJobState>,
    /// The domain is no longer in the registry (undefined transient).
    pub removed: bool,
}

/// How an async job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub kind: String,
    pub success: bool,
    pub message: String,
}

/// Progress of jobs driven by QEMU events, published by the event task and
/// observed by the job that waits for it (never needing the job lock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bumped on every change.
    pub seq: u64,
    /// Latest MIGRATION event status ("active", "completed", "failed", ...).
    pub migration: Option<String>,
    /// Latest JOB_STATUS_CHANGE per job id; bounded to [`MAX_TRACKED`].
    pub jobs: Vec<(String, String)>,
    /// Latest BLOCK_JOB_* per device; bounded to [`MAX_TRACKED`].
    pub block_jobs: Vec<(String, String)>,
    /// Recent DEVICE_DELETED ids; bounded to [`MAX_TRACKED`].
    pub deleted_devices: Vec<String>,
    /// The monitor is gone: no more progress will come.
    pub closed: bool,
    /// Events were coalesced; a job should re-query QEMU.
    pub overflowed: u64,
}

/// QEMU names the keys, so a hostile QEMU could invent endless ones: keep
/// only the most recent few.
pub const MAX_TRACKED: usize = 16;

impl Progress {
    pub fn set_keyed(list: &mut Vec<(String, String)>, key: String, value: String) {
        list.retain(|(k, _)| *k != key);
        if list.len() >= MAX_TRACKED {
            list.remove(0);
        }
        list.push((key, value));
    }

    pub fn push_device(&mut self, dev: String) {
        if self.deleted_devices.len() >= MAX_TRACKED {
            self.deleted_devices.remove(0);
        }
        self.deleted_devices.push(dev);
    }
}

/// One domain.
pub struct Domain {
    name: String,
    uuid: uuid::Uuid,
    inner: Mutex<Inner>,
    pub(crate) jobs: joblock::JobLock,
    /// Serialises status-file writes and their removal (see persist_status).
    pub(crate) persist_lock: Mutex<()>,
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

/// `virDomainControlState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ControlState {
    Ok = 0,
    Job = 1,
    Occupied = 2,
    Error = 3,
}

/// `virDomainGetControlInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlInfo {
    pub state: ControlState,
    /// `VIR_DOMAIN_CONTROL_ERROR_REASON_MONITOR` = 1 when unresponsive.
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
            inner: Mutex::new(Inner {
                def,
                live: None,
                persistent,
                autostart: false,
                state: StateReason::shutoff(shutoff::UNKNOWN),
                state_since: Instant::now(),
                id: None,
                run: None,
                generation: 0,
                job: None,
                last_job: None,
                completed_job: None,
                block_job: None,
                removed: false,
            }),
            jobs: joblock::JobLock::new(),
            persist_lock: Mutex::new(()),
        })
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
        self.lock().state.state.is_active()
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
            let def = g.live.clone().unwrap_or_else(|| g.def.clone());
            (g.state.state, def, g.run.as_ref().map(|r| r.process.pid()))
        };
        let cpu = pid.and_then(crate::process::cpu_time_ns).unwrap_or(0);
        DomainInfo {
            state,
            max_mem_kib: def.max_memory_kib(),
            memory_kib: def.current_memory_kib(),
            nr_virt_cpu: def.vcpus(),
            cpu_time_ns: cpu,
        }
    }

    pub fn control_info(&self) -> ControlInfo {
        let g = self.lock();
        let ms = g.state_since.elapsed().as_millis() as u64;
        let unresponsive = g.run.as_ref().is_some_and(|r| r.unresponsive);
        let (state, details) = if unresponsive {
            (ControlState::Error, 1)
        } else if g.job.is_some() {
            (ControlState::Job, 0)
        } else {
            (ControlState::Ok, 0)
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
        self.lock().run.as_ref().is_some_and(|r| r.unresponsive)
    }

    /// The running QEMU's pid.
    pub fn pid(&self) -> Option<i32> {
        self.lock().run.as_ref().map(|r| r.process.pid())
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

    /// The running async job, if any.
    pub fn async_job(&self) -> Option<AsyncJobInfo> {
        self.lock().job.clone()
    }

    pub fn last_job(&self) -> Option<JobOutcome> {
        self.lock().last_job.clone()
    }

    /// The completed-job statistics; taken (gone for the next reader)
    /// unless `keep`.
    pub(crate) fn read_completed_job(&self, keep: bool) -> Option<crate::jobstats::CompletedJob> {
        let mut g = self.lock();
        if keep {
            g.completed_job.clone()
        } else {
            g.completed_job.take()
        }
    }

    /// A receiver for job progress driven by events of the current run.
    pub fn watch_progress(&self) -> Option<watch::Receiver<Progress>> {
        self.lock().run.as_ref().map(|r| r.ctx.progress.subscribe())
    }

    pub(crate) fn event(&self, g: &Inner, kind: EventKind) -> DomainEvent {
        DomainEvent {
            name: self.name.clone(),
            uuid: self.uuid,
            id: g.id.map_or(-1, |i| i as i32),
            kind,
        }
    }
}

impl Inner {
    /// Changes state and emits `ev` while the caller holds the lock, so the
    /// emission order is the state-change order.
    pub(crate) fn set_state(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        st: StateReason,
        ev: Option<EventKind>,
    ) {
        if self.state != st {
            self.state = st;
            self.state_since = Instant::now();
        }
        if let Some(kind) = ev {
            hub.emit(&dom.event(self, kind));
        }
    }

    pub(crate) fn emit(&self, dom: &Domain, hub: &Hub, kind: EventKind) {
        hub.emit(&dom.event(self, kind));
    }

    /// The run of `generation`, if it is still the current one.
    pub(crate) fn run_of(&mut self, generation: u64) -> Option<&mut Run> {
        self.run.as_mut().filter(|r| r.ctx.generation == generation)
    }

    pub(crate) fn monitor(&self) -> Option<qmp::Monitor> {
        self.run.as_ref().and_then(|r| r.monitor.clone())
    }
}

/// A monitor command's deadline plus the bookkeeping a timeout implies.
pub(crate) async fn command(
    dom: &Domain,
    timeout: Duration,
    name: &str,
    args: Option<serde_json::Value>,
) -> crate::Result<serde_json::Value> {
    let mon = dom.lock().monitor().ok_or(crate::Error::NotRunning)?;
    let res = mon.execute_raw(name, args, Some(timeout)).await;
    let timed_out = matches!(res, Err(qmp::QmpError::Timeout { .. }));
    if let Some(run) = dom.lock().run.as_mut() {
        run.unresponsive = timed_out;
        // A command that timed out may still run later, so state may have
        // diverged: resync. The resync's own query-status then acts as a
        // health probe (one per monitor deadline) that clears the mark
        // once QEMU answers again.
        if timed_out {
            run.ctx.actions.set(crate::actions::RESYNC);
        }
    }
    if timed_out {
        tracing::warn!(
            domain = dom.name(),
            command = name,
            "QEMU monitor unresponsive"
        );
    }
    res.map_err(crate::Error::from_qmp)
}

/// Hands `fd` to QEMU under `fdname` (`getfd`), for a later `fd:` URI.
pub(crate) async fn pass_fd(
    dom: &Domain,
    fdname: &str,
    fd: std::os::fd::BorrowedFd<'_>,
) -> crate::Result<()> {
    let mon = dom.lock().monitor().ok_or(crate::Error::NotRunning)?;
    let cmd = qmp::commands::Getfd {
        fdname: fdname.to_owned(),
    };
    mon.execute_with_fd(&cmd, fd)
        .await
        .map(|_| ())
        .map_err(crate::Error::from_qmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobstats::{CompletedJob, JobEnd, RamStats};

    fn domain() -> Arc<Domain> {
        let xml = "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory>\
                   <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";
        Domain::new(Arc::new(Def::parse(xml).expect("valid XML")), true)
    }

    fn record(end: JobEnd) -> CompletedJob {
        CompletedJob {
            end,
            operation: "save".into(),
            elapsed_ms: 5,
            ram: RamStats::default(),
            error: None,
        }
    }

    #[test]
    fn completed_job_kept_or_taken_once() {
        let dom = domain();
        assert_eq!(dom.read_completed_job(false), None);
        dom.lock().completed_job = Some(record(JobEnd::Completed));
        assert!(dom.read_completed_job(true).is_some());
        assert!(dom.read_completed_job(true).is_some(), "keep leaves it");
        assert!(dom.read_completed_job(false).is_some());
        assert_eq!(dom.read_completed_job(false), None, "read discards it");
        assert_eq!(dom.read_completed_job(true), None);
    }
}
