//! One run of a domain: one QEMU process, the bookkeeping of its state
//! changes, and what its event and action tasks share.
//!
//! The fields are private to the domain object: only the transitions of
//! [`super::Inner`] change them, under the domain's state lock.

use std::path::PathBuf;
use std::sync::Arc;

use qmp::commands::DumpStatus;
use qmp::{JobStatus, MigrationStatus};
use tokio::sync::watch;

use crate::actions::Actions;
use crate::emulator::process::Process;
use crate::events::throttle::Throttle;
use crate::lifecycle::host::owner::Owned;
use crate::nics::TapRecord;
use crate::state::StopCause;

/// Who asked the guest to shut down, for the SHUTDOWN event detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownBy {
    Guest,
    Host,
}

/// What one run (one QEMU process) shares with its event and action
/// tasks. Per run, not per domain, so a task of an earlier run can never
/// consume or publish anything for a later one.
pub(crate) struct RunCtx {
    pub(crate) generation: u64,
    pub(crate) actions: Actions,
    /// Job progress: the event task publishes, a job waiting for an event
    /// observes (never needing the job lock). A job subscribes *before* it
    /// sends the command whose events it waits for, so none is missed.
    pub(crate) progress: watch::Sender<Progress>,
    /// Guest-triggered value events waiting for their delivery slot.
    pub(crate) throttle: Throttle,
}

impl RunCtx {
    pub(super) fn new(generation: u64) -> Arc<Self> {
        Arc::new(Self {
            generation,
            actions: Actions::default(),
            progress: watch::Sender::new(Progress::default()),
            throttle: Throttle::default(),
        })
    }

    pub(crate) fn update_progress(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(|p| {
            f(p);
            p.seq = p.seq.wrapping_add(1);
        });
    }
}

/// The process a new run starts with.
pub(crate) struct RunStart {
    pub(crate) process: Arc<Process>,
    /// `/proc/PID/stat` start time: tells our QEMU from a reused PID.
    pub(crate) start_time: u64,
    pub(crate) socket: PathBuf,
    /// The taps QEMU holds, by interface index.
    pub(crate) taps: Vec<Option<TapRecord>>,
    /// The files given to QEMU's user for the run, with their originals.
    pub(crate) owned: Vec<Owned>,
}

/// A running QEMU as the driver tracks it.
pub(crate) struct Run {
    pub(super) ctx: Arc<RunCtx>,
    pub(super) process: Arc<Process>,
    pub(super) start_time: u64,
    pub(super) socket: PathBuf,
    pub(super) taps: Vec<Option<TapRecord>>,
    pub(super) owned: Vec<Owned>,
    /// None while starting (before the QMP handshake), or for an adopted
    /// QEMU whose monitor did not answer.
    pub(super) monitor: Option<qmp::Monitor>,
    /// A monitor command timed out; cleared by the next answered one.
    pub(super) unresponsive: bool,
    pub(super) shutdown_seen: Option<ShutdownBy>,
    /// `virsh reboot`: on the guest's SHUTDOWN, reset + cont instead of stop.
    pub(super) fake_reboot: bool,
    /// We are killing it, and why: decides the reason of its exit.
    pub(super) kill_reason: Option<StopCause>,
    /// Reason to use for the next STOP event (set by the op that stops).
    pub(super) pending_pause: Option<i32>,
    /// Reason to use for the next RESUME event (set by the op that resumes).
    pub(super) pending_resume: Option<i32>,
    /// STOP / RESUME events QEMU still owes us for state changes the command
    /// path already applied (its reply came back before the event task had
    /// handled the event). The event, when it comes, is consumed instead of
    /// applied again: applying it late, after a later command changed the
    /// state back, would emit a spurious transition and briefly report a
    /// wrong state. Reset on overflow, where the resync restores the truth.
    pub(super) owed_stop: u32,
    pub(super) owed_resume: u32,
    /// The RESUME of the `cont` that ends a start was handled before the
    /// start completed (it is not news then: STARTED reports it). If it
    /// was not, it is owed when the start completes.
    pub(super) resumed_while_starting: bool,
    /// (node name, disk target) of the nodes block jobs pivoted disks
    /// onto, so an I/O error QEMU reports on such a node names its disk.
    /// At most two nodes per disk (see [`Run::note_pivot`]).
    pub(super) pivoted_nodes: Vec<(String, String)>,
    /// Aliases of devices QEMU was asked to unplug (`device_del`) that the
    /// guest has not released yet; at most one per device of the live
    /// definition. Kept in the status record.
    pub(super) pending_unplug: Vec<String>,
    /// Block nodes of unplugged disks, for the action task to delete
    /// (`blockdev-del`); at most two per disk the definition had.
    pub(super) released_nodes: Vec<String>,
    /// Network backends of unplugged NICs, for the action task to delete
    /// (`netdev_del`); at most one per NIC the definition had.
    pub(super) released_netdevs: Vec<String>,
    /// Taps of unplugged NICs, for the action task to release once their
    /// backends are deleted; at most one per NIC the definition had.
    pub(super) released_taps: Vec<TapRecord>,
    /// Backend objects of other unplugged devices (an rng's), for the
    /// action task to delete (`object-del`); at most one per device the
    /// definition had.
    pub(super) released_objects: Vec<String>,
    /// Files given to QEMU's user for a device being plugged that the
    /// live definition does not name yet: kept from being given back
    /// meanwhile. At most one per plug in flight (one per job).
    pub(super) giving: Vec<PathBuf>,
}

impl Run {
    /// The one constructor: a fresh run, nothing pending, no monitor yet.
    pub(super) fn new(ctx: Arc<RunCtx>, start: RunStart) -> Self {
        Self {
            ctx,
            process: start.process,
            start_time: start.start_time,
            socket: start.socket,
            taps: start.taps,
            owned: start.owned,
            monitor: None,
            unresponsive: false,
            shutdown_seen: None,
            fake_reboot: false,
            kill_reason: None,
            pending_pause: None,
            pending_resume: None,
            owed_stop: 0,
            owed_resume: 0,
            resumed_while_starting: false,
            pivoted_nodes: Vec::new(),
            pending_unplug: Vec::new(),
            released_nodes: Vec::new(),
            released_netdevs: Vec::new(),
            released_taps: Vec::new(),
            released_objects: Vec::new(),
            giving: Vec::new(),
        }
    }

    pub(crate) fn ctx(&self) -> &Arc<RunCtx> {
        &self.ctx
    }

    pub(crate) fn process(&self) -> &Arc<Process> {
        &self.process
    }

    pub(crate) fn start_time(&self) -> u64 {
        self.start_time
    }

    pub(crate) fn socket(&self) -> &PathBuf {
        &self.socket
    }

    /// The taps QEMU holds, by interface index.
    pub(crate) fn taps(&self) -> &[Option<TapRecord>] {
        &self.taps
    }

    /// The files given to QEMU's user for the run, with their originals.
    pub(crate) fn owned(&self) -> &[Owned] {
        &self.owned
    }

    /// Files given for a plug still in flight (see [`Run::giving`]).
    pub(crate) fn giving(&self) -> &[PathBuf] {
        &self.giving
    }

    pub(crate) fn monitor(&self) -> Option<&qmp::Monitor> {
        self.monitor.as_ref()
    }

    pub(crate) fn unresponsive(&self) -> bool {
        self.unresponsive
    }

    pub(crate) fn shutdown_seen(&self) -> bool {
        self.shutdown_seen.is_some()
    }

    pub(crate) fn fake_reboot(&self) -> bool {
        self.fake_reboot
    }

    pub(crate) fn being_killed(&self) -> bool {
        self.kill_reason.is_some()
    }

    pub(crate) fn pending_unplug(&self) -> &[String] {
        &self.pending_unplug
    }

    pub(crate) fn pivoted_nodes(&self) -> &[(String, String)] {
        &self.pivoted_nodes
    }

    /// Disk `target` now runs on `nodes` (replacing an earlier pivot's).
    pub(super) fn note_pivot(&mut self, target: &str, nodes: &[String]) {
        self.pivoted_nodes.retain(|(_, t)| t != target);
        self.pivoted_nodes
            .extend(nodes.iter().map(|n| (n.clone(), target.to_owned())));
    }

    /// Why the run ends, when it ends now without an explicit cause.
    pub(super) fn end_cause(&self) -> StopCause {
        self.kill_reason
            .or(self.shutdown_seen.map(|_| StopCause::Shutdown))
            .unwrap_or(StopCause::Failed)
    }
}

/// Progress of jobs driven by QEMU events, published by the event task and
/// observed by the job that waits for it (never needing the job lock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bumped on every change.
    pub(crate) seq: u64,
    /// Latest MIGRATION event status (or query-migrate's, when polled).
    pub(crate) migration: Option<MigrationStatus>,
    /// Latest JOB_STATUS_CHANGE per job id; bounded to [`MAX_TRACKED`].
    pub(crate) jobs: Vec<(String, JobStatus)>,
    /// Recent DEVICE_DELETED ids, for a job waiting for an unplug; bounded
    /// to [`MAX_TRACKED`].
    pub(crate) deleted_devices: Vec<String>,
    /// Latest status of a detached memory dump (DUMP_COMPLETED, or
    /// query-dump's when polled), and QEMU's reason when it failed
    /// (cut to [`MAX_REASON`] bytes).
    pub(crate) dump: Option<(DumpStatus, Option<String>)>,
    /// The monitor is gone: no more progress will come.
    pub(crate) closed: bool,
    /// Events were coalesced; a job should re-query QEMU.
    pub(crate) overflowed: u64,
}

/// QEMU names the keys, so a hostile QEMU could invent endless ones: keep
/// only the most recent few.
pub(crate) const MAX_TRACKED: usize = 16;

/// The longest failure reason from QEMU kept in [`Progress`].
pub(crate) const MAX_REASON: usize = 512;

impl Progress {
    /// Records the status of QEMU job `id` (oldest entry dropped past
    /// [`MAX_TRACKED`]).
    pub(crate) fn set_job(&mut self, id: String, status: JobStatus) {
        self.jobs.retain(|(k, _)| *k != id);
        if self.jobs.len() >= MAX_TRACKED {
            self.jobs.remove(0);
        }
        self.jobs.push((id, status));
    }

    /// The last status seen of QEMU job `id`.
    pub(crate) fn job(&self, id: &str) -> Option<&JobStatus> {
        self.jobs.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    /// Records a dump's status and, when it failed, QEMU's reason.
    pub(crate) fn set_dump(&mut self, status: DumpStatus, error: Option<String>) {
        let error = error.map(|mut e| {
            if e.len() > MAX_REASON {
                let mut cut = MAX_REASON;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.truncate(cut);
            }
            e
        });
        self.dump = Some((status, error));
    }

    pub(crate) fn push_device(&mut self, dev: String) {
        if self.deleted_devices.len() >= MAX_TRACKED {
            self.deleted_devices.remove(0);
        }
        self.deleted_devices.push(dev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_keeps_few_and_the_latest() {
        let mut p = Progress::default();
        for i in 0..100 {
            p.set_job(format!("j{i}"), JobStatus::Running);
            p.push_device(format!("d{i}"));
        }
        p.set_job("j99".into(), JobStatus::Concluded);
        assert_eq!(p.jobs.len(), MAX_TRACKED);
        assert_eq!(p.deleted_devices.len(), MAX_TRACKED);
        assert_eq!(p.job("j99"), Some(&JobStatus::Concluded));
        assert_eq!(p.job("j0"), None);
    }

    #[test]
    fn a_dump_failure_reason_is_cut_to_the_bound() {
        let mut p = Progress::default();
        p.set_dump(DumpStatus::Failed, Some("é".repeat(MAX_REASON)));
        let (status, reason) = p.dump.clone().unwrap();
        assert_eq!(status, DumpStatus::Failed);
        let reason = reason.unwrap();
        assert!(reason.len() <= MAX_REASON && reason.len() > MAX_REASON - 2);
        p.set_dump(DumpStatus::Completed, None);
        assert_eq!(p.dump, Some((DumpStatus::Completed, None)));
    }
}
