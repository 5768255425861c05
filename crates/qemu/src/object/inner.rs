//! The domain's state and its transitions.
//!
//! Every change of a domain's lifecycle state goes through a method here,
//! called with the domain's state lock held, and each method emits the
//! lifecycle event its change implies *inside* that lock. So the order in
//! which subscribers see a VM's events is the order its state changed,
//! and no caller can change the state without the event or the event
//! without the state. The fields are private to the domain object.
//!
//! Here: the definition, a run's beginning and end, and jobs. The run-state
//! transitions (pause, resume, shutdown, reset, panic) are in
//! `object::run_state`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::def::Def;
use super::run::{Run, RunCtx, RunStart, ShutdownBy};
use super::{AsyncJobInfo, Domain, JobOutcome};
use crate::emulator::process::Process;
use crate::events::hub::Hub;
use crate::jobs::blockjob::BlockJobState;
use crate::jobs::stats::CompletedJob;
use crate::lifecycle::host::owner::Owned;
use crate::state::{
    DomainState, EventKind, LifecycleKind as L, StateReason, StopCause, detail, paused, running,
    shutoff,
};
use crate::{Error, Result};

/// A domain's definitions and live state, behind its short lock.
pub(crate) struct Inner {
    /// The persistent (next boot) definition, or the transient one.
    pub(super) def: Arc<Def>,
    /// The definition QEMU runs with, while active.
    pub(super) live: Option<Arc<Def>>,
    pub(super) persistent: bool,
    pub(super) autostart: bool,
    pub(super) state: StateReason,
    pub(super) state_since: Instant,
    /// Bumped on every change of `state` (see [`Inner::put_state`]): a run
    /// state QEMU reported before a change is older than it, and a resync
    /// that asked before must not apply it (see [`Inner::state_version`]).
    pub(super) state_version: u64,
    pub(super) id: Option<u32>,
    pub(super) run: Option<Run>,
    /// Bumped on every start: tasks of an older run see they are stale.
    pub(super) generation: u64,
    pub(super) job: Option<AsyncJobInfo>,
    /// Outcome of the last async job (also of one that ran across a
    /// daemon restart).
    pub(super) last_job: Option<JobOutcome>,
    /// Statistics of the last async job that ended (`domjobinfo
    /// --completed`): one record, replaced by the next, dropped when read.
    pub(super) completed_job: Option<CompletedJob>,
    /// The running block job (copy, pull, commit), if any.
    pub(super) block_job: Option<BlockJobState>,
    /// The domain is no longer in the registry (undefined transient).
    pub(super) removed: bool,
    /// The last write of the status file failed: a restarted daemon would
    /// not find what changed since. Cleared by the next good write.
    pub(super) status_write_failed: bool,
}

/// How a run came to be: its STARTED event's detail and first state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    Booted,
    Restored,
    /// An incoming migration: QEMU waits for the guest's state.
    Migrated,
}

/// What ends with a run: for the cleanup outside the lock.
pub(crate) struct StoppedRun {
    pub(crate) run: Run,
    pub(crate) id: Option<u32>,
    /// A transient domain: forget it.
    pub(crate) transient: bool,
}

/// What a re-adopted run carries over from its status record.
pub(crate) struct Adopted {
    pub(crate) state: StateReason,
    pub(crate) persistent: bool,
    pub(crate) completed_job: Option<CompletedJob>,
    pub(crate) shutdown_seen: bool,
    pub(crate) fake_reboot: bool,
    pub(crate) monitor: Option<qmp::Monitor>,
    pub(crate) pending_unplug: Vec<String>,
}

impl Inner {
    pub(super) fn new(def: Arc<Def>, persistent: bool) -> Self {
        Self {
            def,
            live: None,
            persistent,
            autostart: false,
            state: StateReason::shutoff(shutoff::UNKNOWN),
            state_since: Instant::now(),
            state_version: 0,
            id: None,
            run: None,
            generation: 0,
            job: None,
            last_job: None,
            completed_job: None,
            block_job: None,
            removed: false,
            status_write_failed: false,
        }
    }

    // ----- reads -------------------------------------------------------

    pub(crate) fn state(&self) -> StateReason {
        self.state
    }

    /// Counts the changes of the state: equal before and after a
    /// `query-status`, no state was decided while QEMU answered, so its
    /// answer is current.
    pub(crate) fn state_version(&self) -> u64 {
        self.state_version
    }

    /// The one place `state` changes.
    pub(super) fn put_state(&mut self, st: StateReason) {
        self.state = st;
        self.state_since = Instant::now();
        self.state_version = self.state_version.wrapping_add(1);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state.state.is_active()
    }

    pub(crate) fn id(&self) -> Option<u32> {
        self.id
    }

    pub(crate) fn persistent(&self) -> bool {
        self.persistent
    }

    pub(crate) fn def(&self) -> &Arc<Def> {
        &self.def
    }

    pub(crate) fn live(&self) -> Option<&Arc<Def>> {
        self.live.as_ref()
    }

    /// The live definition while running, else the persistent one.
    pub(crate) fn current_def(&self) -> Arc<Def> {
        self.live.clone().unwrap_or_else(|| self.def.clone())
    }

    pub(crate) fn run(&self) -> Option<&Run> {
        self.run.as_ref()
    }

    /// The run of `generation`, if it is still the current one.
    pub(crate) fn run_of(&self, generation: u64) -> Option<&Run> {
        self.run.as_ref().filter(|r| r.ctx.generation == generation)
    }

    pub(super) fn run_mut(&mut self, generation: u64) -> Option<&mut Run> {
        self.run.as_mut().filter(|r| r.ctx.generation == generation)
    }

    pub(crate) fn monitor(&self) -> Option<qmp::Monitor> {
        self.run.as_ref().and_then(|r| r.monitor.clone())
    }

    /// The context of the current run, if the domain can take a command.
    pub(crate) fn active_ctx(&self) -> Result<Arc<RunCtx>> {
        match &self.run {
            Some(run) if self.is_active() => Ok(run.ctx.clone()),
            _ => Err(Error::NotRunning),
        }
    }

    pub(crate) fn job(&self) -> Option<&AsyncJobInfo> {
        self.job.as_ref()
    }

    pub(crate) fn block_job(&self) -> Option<&BlockJobState> {
        self.block_job.as_ref()
    }

    pub(crate) fn completed_job(&self) -> Option<&CompletedJob> {
        self.completed_job.as_ref()
    }

    pub(crate) fn status_write_failed(&self) -> bool {
        self.status_write_failed
    }

    // ----- events ------------------------------------------------------

    /// Emits an event that changes no state (RTC, reboot, block job, ...).
    pub(crate) fn emit(&self, dom: &Domain, hub: &Hub, kind: EventKind) {
        hub.emit(&dom.event(self.id, kind));
    }

    /// The one place the state changes: with its event, if any, emitted
    /// while the caller holds the lock.
    pub(super) fn set_state(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        st: StateReason,
        ev: Option<EventKind>,
    ) {
        if self.state != st {
            self.put_state(st);
        }
        if let Some(kind) = ev {
            self.emit(dom, hub, kind);
        }
    }

    // ----- definition --------------------------------------------------

    /// A persistent domain was just created from a definition.
    pub(crate) fn created(&self, dom: &Domain, hub: &Hub) {
        self.emit(dom, hub, lifecycle(L::Defined, detail::DEFINED_ADDED));
    }

    /// `def` replaces the definition and makes the domain persistent.
    pub(crate) fn define(&mut self, dom: &Domain, hub: &Hub, def: Arc<Def>) {
        let det = if self.persistent {
            detail::DEFINED_UPDATED
        } else {
            detail::DEFINED_ADDED
        };
        self.def = def;
        self.persistent = true;
        self.emit(dom, hub, lifecycle(L::Defined, det));
    }

    /// The definition is gone: a running domain becomes transient, an
    /// inactive one is removed. Returns whether it is running.
    pub(crate) fn undefine(&mut self, dom: &Domain, hub: &Hub) -> bool {
        self.persistent = false;
        self.autostart = false;
        self.emit(dom, hub, lifecycle(L::Undefined, detail::UNDEFINED_REMOVED));
        let active = self.is_active();
        if !active {
            self.removed = true;
        }
        active
    }

    pub(crate) fn set_autostart(&mut self, on: bool) {
        self.autostart = on;
    }

    /// The domain leaves the registry (a transient one that never ran).
    pub(crate) fn forget(&mut self) {
        self.removed = true;
    }

    // ----- a run begins ------------------------------------------------

    /// Refuses to start a removed or running domain.
    pub(crate) fn check_can_start(&self, name: &str) -> Result<()> {
        if self.removed {
            return Err(Error::NoDomain(format!("no domain with name '{name}'")));
        }
        if self.is_active() {
            return Err(Error::AlreadyActive);
        }
        Ok(())
    }

    /// A QEMU was spawned for `def` as domain `id`: paused (starting up)
    /// until [`Inner::boot_complete`]; no event yet.
    pub(crate) fn start_run(&mut self, id: u32, def: &Def, start: RunStart) -> Arc<RunCtx> {
        let ctx = self.new_run(id, def, start);
        self.put_state(StateReason::new(DomainState::Paused, paused::STARTING_UP));
        ctx
    }

    /// A QEMU that outlived a daemon restart is tracked again, in the
    /// state its status record names (events it sent meanwhile are
    /// replayed by the resync that follows).
    pub(crate) fn adopt_run(
        &mut self,
        id: u32,
        live: &Def,
        start: RunStart,
        rec: Adopted,
    ) -> Arc<RunCtx> {
        let ctx = self.new_run(id, live, start);
        self.persistent = rec.persistent;
        self.completed_job = rec.completed_job;
        self.put_state(rec.state);
        if let Some(run) = self.run.as_mut() {
            run.unresponsive = rec.monitor.is_none();
            run.monitor = rec.monitor;
            run.shutdown_seen = rec.shutdown_seen.then_some(ShutdownBy::Guest);
            run.fake_reboot = rec.fake_reboot;
            run.pending_unplug = rec.pending_unplug;
        }
        ctx
    }

    fn new_run(&mut self, id: u32, def: &Def, start: RunStart) -> Arc<RunCtx> {
        self.generation += 1;
        let ctx = RunCtx::new(self.generation);
        self.id = Some(id);
        self.live = Some(Arc::new(def.live(id)));
        self.run = Some(Run::new(ctx.clone(), start));
        ctx
    }

    /// The monitor of run `generation` answered its greeting; false if the
    /// run is already gone.
    pub(crate) fn attach_monitor(&mut self, generation: u64, mon: qmp::Monitor) -> bool {
        match self.run_mut(generation) {
            Some(run) => {
                run.monitor = Some(mon);
                true
            }
            None => false,
        }
    }

    /// Start completed: STARTED (booted, restored or migrated), then
    /// SUSPENDED if it stays paused (an incoming migration's guest waits
    /// paused for its state without one). False if the run is already
    /// gone. Without `paused`, the `cont` that ended the start owes its
    /// RESUME unless it came.
    pub(crate) fn boot_complete(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        paused: bool,
        how: Started,
    ) -> bool {
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        if !paused && !run.resumed_while_starting {
            run.owed_resume += 1;
        }
        let (det, reason) = match how {
            Started::Booted => (detail::STARTED_BOOTED, running::BOOTED),
            Started::Restored => (detail::STARTED_RESTORED, running::RESTORED),
            Started::Migrated => (detail::STARTED_MIGRATED, running::MIGRATED),
        };
        let started = lifecycle(L::Started, det);
        if paused && how == Started::Migrated {
            let st = StateReason::new(DomainState::Paused, paused::MIGRATION);
            self.set_state(dom, hub, st, Some(started));
        } else if paused {
            let st = StateReason::new(DomainState::Paused, paused::USER);
            self.set_state(dom, hub, st, Some(started));
            self.emit(dom, hub, lifecycle(L::Suspended, detail::SUSPENDED_PAUSED));
        } else {
            let st = StateReason::new(DomainState::Running, reason);
            self.set_state(dom, hub, st, Some(started));
        }
        true
    }

    /// The pty paths QEMU allocated for the serials of run `generation`.
    pub(crate) fn set_serial_ptys(&mut self, generation: u64, ptys: Vec<Option<String>>) {
        if self.run_of(generation).is_some()
            && let Some(live) = self.live.clone()
            && !live.has_ptys(&ptys)
        {
            self.live = Some(Arc::new(live.with_ptys(ptys)));
        }
    }

    /// Updates the live definition of run `generation` with what only the
    /// run knows (its run directory, display ports).
    pub(crate) fn update_live(&mut self, generation: u64, f: impl FnOnce(&Def) -> Def) {
        if self.run_of(generation).is_some()
            && let Some(live) = self.live.clone()
        {
            self.live = Some(Arc::new(f(&live)));
        }
    }

    /// Run `generation` now also holds `file` (given to QEMU's user while
    /// it runs); false when that run is over or already holds it.
    /// The file is marked as being given until [`Inner::given`].
    pub(crate) fn add_owned(&mut self, generation: u64, file: Owned) -> bool {
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.giving.push(file.path.clone());
        if run.owned.iter().any(|o| o.path == file.path) {
            return false;
        }
        run.owned.push(file);
        true
    }

    /// The plug that was given `path` is over (its device is in the live
    /// definition, or the plug failed).
    pub(crate) fn given(&mut self, generation: u64, path: &Path) {
        if let Some(run) = self.run_mut(generation)
            && let Some(i) = run.giving.iter().position(|p| p == path)
        {
            run.giving.remove(i);
        }
    }

    /// Run `generation` no longer holds `path`: its record, to restore.
    pub(crate) fn remove_owned(&mut self, generation: u64, path: &Path) -> Option<Owned> {
        let run = self.run_mut(generation)?;
        let i = run.owned.iter().position(|o| o.path == path)?;
        Some(run.owned.remove(i))
    }

    // ----- a run ends --------------------------------------------------

    /// Run `generation` is over (its QEMU gone or being killed): shutoff
    /// with the reason `cause` (else the run's own: killed for a reason,
    /// shut down, or failed) and its STOPPED event. None if that run was
    /// already stopped, by whoever got here first.
    pub(crate) fn stop_run(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        cause: Option<StopCause>,
    ) -> Option<StoppedRun> {
        self.run_of(generation)?;
        let run = self.run.take()?;
        let cause = cause.unwrap_or_else(|| run.end_cause());
        let id = self.id.take();
        self.live = None;
        self.job = None;
        let ev = cause.stopped_detail().map(|d| lifecycle(L::Stopped, d));
        self.set_state(dom, hub, StateReason::shutoff(cause.shutoff_reason()), ev);
        let transient = !self.persistent;
        if transient {
            self.removed = true;
        }
        Some(StoppedRun { run, id, transient })
    }

    /// The QEMU of a status record was gone when the daemon came back (or
    /// was killed because its start had not completed): shutoff, without an
    /// event (nobody saw it run), with the outcome of a job it ran.
    /// Returns whether the domain is transient and so to be forgotten.
    pub(crate) fn found_dead(
        &mut self,
        cause: StopCause,
        completed_job: Option<CompletedJob>,
        last_job: Option<JobOutcome>,
        was_persistent: bool,
    ) -> bool {
        self.put_state(StateReason::shutoff(cause.shutoff_reason()));
        self.completed_job = completed_job;
        if last_job.is_some() {
            self.last_job = last_job;
        }
        if !was_persistent && !self.persistent {
            self.removed = true;
        }
        self.removed
    }

    /// What an async job on the running guest (save, dump, outgoing
    /// migration) checks before it begins: the guest runs or is paused and
    /// no block job runs. Returns its run and whether it was running.
    pub(crate) fn live_job_run(&self) -> Result<(Arc<RunCtx>, bool)> {
        let st = self.state().state;
        if !matches!(st, DomainState::Running | DomainState::Paused) {
            return Err(Error::OperationInvalid("domain is not running".into()));
        }
        if self.block_job().is_some() {
            return Err(Error::OperationInvalid(
                "domain has an active block job".into(),
            ));
        }
        Ok((self.active_ctx()?, st == DomainState::Running))
    }

    /// We are about to kill run `generation`'s QEMU because of `cause`
    /// (an earlier reason wins). Returns the process, if the run is current.
    pub(crate) fn begin_kill(&mut self, generation: u64, cause: StopCause) -> Option<Arc<Process>> {
        let run = self.run_mut(generation)?;
        run.kill_reason.get_or_insert(cause);
        Some(run.process.clone())
    }

    /// The kill did not happen (QEMU survived a graceful SIGTERM).
    pub(crate) fn cancel_kill(&mut self, generation: u64) {
        if let Some(run) = self.run_mut(generation) {
            run.kill_reason = None;
        }
    }

    // ----- jobs --------------------------------------------------------

    /// An async job (save) begins.
    pub(crate) fn begin_job(&mut self, info: AsyncJobInfo) {
        self.job = Some(info);
    }

    /// The async job ended, with `outcome` if it is to be reported.
    pub(crate) fn end_job(&mut self, outcome: Option<JobOutcome>) {
        self.job = None;
        if outcome.is_some() {
            self.last_job = outcome;
        }
    }

    /// The statistics of the async job that just ended.
    pub(crate) fn set_completed_job(&mut self, done: CompletedJob) {
        self.completed_job = Some(done);
    }

    /// `domjobinfo --completed`: the record, taken unless `keep`.
    pub(crate) fn read_completed_job(&mut self, keep: bool) -> Option<CompletedJob> {
        if keep {
            self.completed_job.clone()
        } else {
            self.completed_job.take()
        }
    }

    pub(crate) fn set_block_job(&mut self, st: BlockJobState) {
        self.block_job = Some(st);
    }

    /// Forgets block job `id` without an event: its launch was undone, so
    /// it was never reported started. Returns whether it was recorded.
    pub(crate) fn forget_block_job(&mut self, id: &str) -> bool {
        let ours = self.block_job.as_ref().is_some_and(|b| b.job_id == id);
        if ours {
            self.block_job = None;
        }
        ours
    }

    /// Changes the running block job, if there is one.
    pub(crate) fn update_block_job(&mut self, f: impl FnOnce(&mut BlockJobState)) {
        if let Some(b) = self.block_job.as_mut() {
            f(b);
        }
    }

    /// The block job `st` of run `generation` ended with event `ev`; with
    /// `pivot_to`, disk `st.disk` now reads that image (on the nodes the
    /// job added).
    pub(crate) fn end_block_job(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        st: &BlockJobState,
        pivot_to: Option<(&Path, bool)>,
        ev: EventKind,
    ) {
        if let (Some((path, qcow2)), Some(live)) = (pivot_to, self.live.clone()) {
            self.live = Some(Arc::new(live.with_disk_source(&st.disk, path, qcow2)));
            if let Some(run) = self.run_mut(generation) {
                run.note_pivot(&st.disk, &st.added_nodes);
            }
        }
        self.block_job = None;
        self.emit(dom, hub, ev);
    }
}

pub(super) fn lifecycle(kind: L, det: i32) -> EventKind {
    EventKind::lifecycle(kind, det)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions;
    use crate::emulator::process::Process;

    fn domain() -> Arc<Domain> {
        let xml = "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory>\
                   <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";
        Domain::new(Arc::new(Def::parse(xml).expect("valid XML")), true)
    }

    /// A run whose "QEMU" is this test process (nothing signals it).
    fn started(dom: &Domain) -> u64 {
        let me = i32::try_from(std::process::id()).expect("pid");
        let start = RunStart {
            process: Arc::new(Process::open(me, false).expect("pidfd")),
            start_time: 0,
            socket: "/nonexistent.qmp".into(),
            taps: Vec::new(),
            owned: Vec::new(),
        };
        let def = dom.lock().def().clone();
        dom.lock().start_run(1, &def, start).generation
    }

    fn running(reason: i32) -> StateReason {
        StateReason::new(DomainState::Running, reason)
    }

    fn paused_for(reason: i32) -> StateReason {
        StateReason::new(DomainState::Paused, reason)
    }

    #[tokio::test]
    async fn the_start_resume_handled_late_does_not_undo_a_suspend() {
        let (dom, hub) = (domain(), Hub::new(16));
        let mut sub = hub.subscribe();
        let generation = started(&dom);
        let mut g = dom.lock();
        assert!(g.boot_complete(&dom, &hub, generation, false, Started::Booted));
        assert_eq!(g.state(), running(running::BOOTED));
        // `virsh suspend` before the event task got to the start's RESUME.
        g.expect_pause(generation, Some(paused::USER));
        assert!(g.paused_by_command(&dom, &hub, generation, paused::USER));
        assert_eq!(g.qemu_resumed(&dom, &hub), 0, "the start's RESUME is owed");
        assert_eq!(g.qemu_stopped(&dom, &hub), 0, "the suspend's STOP is owed");
        assert_eq!(g.state(), paused_for(paused::USER));
        // A later RESUME is news again.
        assert_eq!(g.qemu_resumed(&dom, &hub), actions::PERSIST);
        assert_eq!(g.state(), running(running::UNPAUSED));
        drop(g);
        let kinds: Vec<_> = std::iter::from_fn(|| sub.try_recv().ok().flatten())
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                lifecycle(L::Started, detail::STARTED_BOOTED),
                lifecycle(L::Suspended, detail::SUSPENDED_PAUSED),
                lifecycle(L::Resumed, detail::RESUMED_UNPAUSED),
            ]
        );
    }

    #[tokio::test]
    async fn a_status_asked_before_a_suspend_does_not_undo_it() {
        let (dom, hub) = (domain(), Hub::new(16));
        let generation = started(&dom);
        let mut g = dom.lock();
        assert!(g.boot_complete(&dom, &hub, generation, false, Started::Booted));
        // A resync asks QEMU (running) ...
        let seen = g.state_version();
        // ... a suspend's `stop` and its state land before the answer.
        g.expect_pause(generation, Some(paused::USER));
        assert!(g.paused_by_command(&dom, &hub, generation, paused::USER));
        assert_eq!(g.converge_since(&dom, &hub, running(0), seen), None);
        assert_eq!(g.state(), paused_for(paused::USER));
        // Asked again: current, and the same state changes nothing.
        let seen = g.state_version();
        assert_eq!(
            g.converge_since(&dom, &hub, paused_for(paused::UNKNOWN), seen),
            Some(0)
        );
        assert_eq!(g.state_version(), seen, "no change, no new version");
        // A current answer that differs is applied.
        let crashed = StateReason::new(DomainState::Crashed, crate::state::crashed::PANICKED);
        assert!(g.converge_since(&dom, &hub, crashed, seen).is_some());
        assert_eq!(g.state(), crashed);
        assert_ne!(g.state_version(), seen);
    }

    #[tokio::test]
    async fn the_start_resume_handled_early_is_not_owed() {
        let (dom, hub) = (domain(), Hub::new(16));
        let generation = started(&dom);
        let mut g = dom.lock();
        assert_eq!(g.qemu_resumed(&dom, &hub), 0, "starting up: not news");
        assert!(g.boot_complete(&dom, &hub, generation, false, Started::Booted));
        g.expect_pause(generation, Some(paused::USER));
        assert_eq!(g.qemu_stopped(&dom, &hub), actions::PERSIST);
        assert_eq!(g.state(), paused_for(paused::USER));
        assert_eq!(g.qemu_resumed(&dom, &hub), actions::PERSIST);
        assert_eq!(g.state(), running(running::UNPAUSED));
    }

    #[tokio::test]
    async fn a_stopped_run_ends_once_with_its_cause() {
        let (dom, hub) = (domain(), Hub::new(16));
        let mut sub = hub.subscribe();
        let generation = started(&dom);
        let mut g = dom.lock();
        assert!(g.boot_complete(&dom, &hub, generation, true, Started::Booted));
        assert!(g.begin_kill(generation, StopCause::Destroyed).is_some());
        let stopped = g.stop_run(&dom, &hub, generation, None).expect("stopped");
        assert!(!stopped.transient);
        assert_eq!(stopped.id, Some(1));
        assert!(
            g.stop_run(&dom, &hub, generation, None).is_none(),
            "only once"
        );
        assert_eq!(g.state(), StateReason::shutoff(shutoff::DESTROYED));
        assert_eq!(g.id(), None);
        drop(g);
        let last = std::iter::from_fn(|| sub.try_recv().ok().flatten()).last();
        assert_eq!(
            last.map(|e| e.kind),
            Some(lifecycle(L::Stopped, detail::STOPPED_DESTROYED))
        );
    }
}
