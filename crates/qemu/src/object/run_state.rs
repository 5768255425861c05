//! Run-state transitions of a domain: pause and resume (by our commands and
//! by QEMU's events), guest shutdown, reset and panic, and convergence to
//! the state QEMU reports. Methods of [`Inner`], called under the domain's
//! state lock; each emits its lifecycle event inside it.
//!
//! Transitions driven by QEMU's events return the follow-up actions they
//! need (bits of [`crate::actions`]); the event task records them. The
//! caller has checked that the event belongs to the current run.

use super::Domain;
use super::inner::{Inner, lifecycle};
use super::run::ShutdownBy;
use crate::actions;
use crate::events::hub::Hub;
use crate::state::{
    DomainState, EventKind, LifecycleKind as L, StateReason, crashed, detail, paused, running,
    shutdown,
};

impl Inner {
    // ----- what our commands change -------------------------------------

    /// The next STOP is ours, for `reason`.
    pub(crate) fn expect_pause(&mut self, generation: u64, reason: Option<i32>) {
        if let Some(run) = self.run_mut(generation) {
            run.pending_pause = reason;
        }
    }

    /// The next RESUME is ours, for `reason`.
    pub(crate) fn expect_resume(&mut self, generation: u64, reason: i32) {
        if let Some(run) = self.run_mut(generation) {
            run.pending_resume = Some(reason);
        }
    }

    /// A `stop` we sent succeeded: paused for `reason` now, unless the
    /// STOP event got here first (then its handler applied it); the event
    /// still owed is consumed when it comes. Returns whether it changed.
    pub(crate) fn paused_by_command(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        reason: i32,
    ) -> bool {
        if self.state.state != DomainState::Running {
            return false;
        }
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.owed_stop += 1;
        let st = StateReason::new(DomainState::Paused, reason);
        let ev = lifecycle(L::Suspended, detail::SUSPENDED_PAUSED);
        self.set_state(dom, hub, st, Some(ev));
        true
    }

    /// A `cont` we sent succeeded: running for `reason` now, unless the
    /// RESUME event got here first. Returns whether it changed.
    pub(crate) fn resumed_by_command(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        reason: i32,
    ) -> bool {
        if self.state.state == DomainState::Running {
            return false;
        }
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.pending_pause = None;
        run.pending_resume = None;
        run.owed_resume += 1;
        let st = StateReason::new(DomainState::Running, reason);
        let ev = lifecycle(L::Resumed, resumed_detail(reason));
        self.set_state(dom, hub, st, Some(ev));
        true
    }

    /// An incoming migration completed and the guest stays paused
    /// (`--suspend`): paused by the user from now on, as libvirt reports it.
    pub(crate) fn kept_paused(&mut self, dom: &Domain, hub: &Hub, generation: u64) {
        if self.run_of(generation).is_none() || self.state.state != DomainState::Paused {
            return;
        }
        let st = StateReason::new(DomainState::Paused, paused::USER);
        let ev = lifecycle(L::Suspended, detail::SUSPENDED_PAUSED);
        self.set_state(dom, hub, st, Some(ev));
    }

    /// A post-copy migration ended on this side of run `generation`:
    /// completed, the destination's guest runs as migrated (RESUMED
    /// "migrated"); failed, the guest is paused "post-copy failed" on
    /// both sides, as its memory is split between them.
    pub(crate) fn postcopy_ended(&mut self, dom: &Domain, hub: &Hub, generation: u64, ok: bool) {
        if self.run_of(generation).is_none() || !self.state.state.is_active() {
            return;
        }
        let (st, ev) = if ok {
            if self.state != StateReason::new(DomainState::Running, running::POSTCOPY) {
                return;
            }
            let st = StateReason::new(DomainState::Running, running::MIGRATED);
            (st, lifecycle(L::Resumed, detail::RESUMED_MIGRATED))
        } else {
            let st = StateReason::new(DomainState::Paused, paused::POSTCOPY_FAILED);
            (
                st,
                lifecycle(L::Suspended, detail::SUSPENDED_POSTCOPY_FAILED),
            )
        };
        self.set_state(dom, hub, st, Some(ev));
    }

    /// `virsh reboot` (on) or `virsh shutdown` (off): what the guest's
    /// next power-off means.
    pub(crate) fn set_fake_reboot(&mut self, generation: u64, on: bool) {
        if let Some(run) = self.run_mut(generation) {
            run.fake_reboot = on;
        }
    }

    /// The guest was reset and continued after a power-off: it runs again.
    pub(crate) fn rebooted(&mut self, generation: u64) {
        if let Some(run) = self.run_mut(generation) {
            run.fake_reboot = false;
            run.shutdown_seen = None;
        }
    }

    /// Records whether the last monitor command timed out; returns whether
    /// the monitor was unresponsive before it.
    pub(crate) fn note_command(&mut self, timed_out: bool) -> bool {
        match self.run.as_mut() {
            Some(run) => std::mem::replace(&mut run.unresponsive, timed_out),
            None => false,
        }
    }

    /// Records whether the last status-file write succeeded.
    pub(crate) fn note_status_write(&mut self, ok: bool) {
        self.status_write_failed = !ok;
    }

    // ----- what QEMU's events change -----------------------------------

    /// Events were coalesced: owed STOP/RESUME events may be among those
    /// dropped, so forget them (the resync restores the truth).
    pub(crate) fn forget_owed_events(&mut self) {
        if let Some(r) = self.run.as_mut() {
            r.owed_stop = 0;
            r.owed_resume = 0;
        }
    }

    /// STOP: paused for the reason the command that stopped it gave.
    pub(crate) fn qemu_stopped(&mut self, dom: &Domain, hub: &Hub) -> u32 {
        if let Some(r) = self.run.as_mut()
            && r.owed_stop > 0
        {
            r.owed_stop -= 1;
            return 0;
        }
        if self.state.state != DomainState::Running {
            return 0;
        }
        let reason = self
            .run
            .as_mut()
            .and_then(|r| r.pending_pause.take())
            .unwrap_or(paused::UNKNOWN);
        let ev = lifecycle(L::Suspended, suspended_detail(reason));
        let st = StateReason::new(DomainState::Paused, reason);
        self.set_state(dom, hub, st, Some(ev));
        actions::PERSIST
    }

    /// RESUME: running again (not while starting up: that `cont` is ours
    /// and reported as STARTED).
    pub(crate) fn qemu_resumed(&mut self, dom: &Domain, hub: &Hub) -> u32 {
        if let Some(r) = self.run.as_mut()
            && r.owed_resume > 0
        {
            r.owed_resume -= 1;
            return 0;
        }
        let st = self.state;
        if st == StateReason::new(DomainState::Paused, paused::STARTING_UP) {
            // The `cont` that ends a start: STARTED will say it.
            if let Some(r) = self.run.as_mut() {
                r.resumed_while_starting = true;
            }
            return 0;
        }
        let resumable = st.state == DomainState::Paused || st.state == DomainState::Shutdown;
        if !resumable {
            return 0;
        }
        let reason = match self.run.as_mut() {
            Some(r) => {
                r.pending_pause = None;
                r.pending_resume.take().unwrap_or(running::UNPAUSED)
            }
            None => running::UNPAUSED,
        };
        let ev = lifecycle(L::Resumed, resumed_detail(reason));
        let st = StateReason::new(DomainState::Running, reason);
        self.set_state(dom, hub, st, Some(ev));
        actions::PERSIST
    }

    /// SHUTDOWN: the guest powered off (or was asked to, `by`). Always
    /// schedules the power-off handling; the state changes once.
    pub(crate) fn guest_shutdown(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        by: Option<ShutdownBy>,
    ) -> u32 {
        let Some(run) = self.run.as_mut() else {
            return 0;
        };
        // Our own SIGTERM/quit makes QEMU report a host shutdown: not news.
        if run.kill_reason.is_some() {
            return 0;
        }
        let repeated = run.shutdown_seen.is_some();
        run.shutdown_seen = Some(by.unwrap_or(ShutdownBy::Guest));
        // As libvirt: even a fake reboot passes through "shutdown" (so the
        // STOP that -no-shutdown sends next is not taken for a pause); the
        // reset + cont that follow bring it back to running with RESUMED.
        if repeated {
            return actions::POWEROFF;
        }
        let det = match by {
            Some(ShutdownBy::Guest) => detail::SHUTDOWN_GUEST,
            Some(ShutdownBy::Host) => detail::SHUTDOWN_HOST,
            None => detail::SHUTDOWN_FINISHED,
        };
        let st = StateReason::new(DomainState::Shutdown, shutdown::UNKNOWN);
        self.set_state(dom, hub, st, Some(lifecycle(L::Shutdown, det)));
        actions::POWEROFF | actions::PERSIST
    }

    /// RESET: a guest reboot (QEMU's reset while starting up is not one).
    pub(crate) fn guest_reset(&self, dom: &Domain, hub: &Hub) {
        if self.state != StateReason::new(DomainState::Paused, paused::STARTING_UP) {
            self.emit(dom, hub, EventKind::Reboot);
        }
    }

    /// GUEST_PANICKED: crashed, then on_crash applies.
    pub(crate) fn guest_panicked(&mut self, dom: &Domain, hub: &Hub) -> u32 {
        if self.state.state == DomainState::Crashed {
            return 0;
        }
        let st = StateReason::new(DomainState::Crashed, crashed::PANICKED);
        let ev = lifecycle(L::Crashed, detail::CRASHED_PANICKED);
        self.set_state(dom, hub, st, Some(ev));
        actions::CRASH | actions::PERSIST
    }

    /// QEMU is about to pause (or just paused) for `reason` (an I/O error,
    /// a watchdog): SUSPENDED with `det`, or, if STOP came first with no
    /// reason, the reason filled in.
    pub(crate) fn paused_because(&mut self, dom: &Domain, hub: &Hub, reason: i32, det: i32) -> u32 {
        match self.state.state {
            DomainState::Running => {
                let st = StateReason::new(DomainState::Paused, reason);
                self.set_state(dom, hub, st, Some(lifecycle(L::Suspended, det)));
            }
            DomainState::Paused if self.state.reason == paused::UNKNOWN => {
                self.state.reason = reason;
            }
            _ => return 0,
        }
        actions::PERSIST
    }

    /// [`Inner::converge`] to what QEMU answered when the state version
    /// was `seen`; `None` (nothing changed) if the state changed since,
    /// as that answer may predate the change.
    pub(crate) fn converge_since(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        truth: StateReason,
        seen: u64,
    ) -> Option<u32> {
        (self.state_version() == seen).then(|| self.converge(dom, hub, truth))
    }

    /// Moves to the state QEMU reports (`truth`, after coalesced events or
    /// a daemon restart), emitting the events the difference implies.
    pub(crate) fn converge(&mut self, dom: &Domain, hub: &Hub, truth: StateReason) -> u32 {
        let cur = self.state;
        if cur.state == truth.state {
            return 0;
        }
        match truth.state {
            DomainState::Running => self.qemu_resumed(dom, hub),
            DomainState::Paused if cur.state == DomainState::Running => {
                if let Some(r) = self.run.as_mut() {
                    r.pending_pause.get_or_insert(truth.reason);
                }
                self.qemu_stopped(dom, hub)
            }
            DomainState::Shutdown => self.guest_shutdown(dom, hub, None),
            DomainState::Crashed => self.guest_panicked(dom, hub),
            _ => {
                self.put_state(truth);
                actions::PERSIST
            }
        }
    }
}

fn suspended_detail(reason: i32) -> i32 {
    match reason {
        paused::IOERROR => detail::SUSPENDED_IOERROR,
        paused::WATCHDOG => detail::SUSPENDED_WATCHDOG,
        paused::MIGRATION => detail::SUSPENDED_MIGRATED,
        paused::POSTCOPY => detail::SUSPENDED_POSTCOPY,
        paused::POSTCOPY_FAILED => detail::SUSPENDED_POSTCOPY_FAILED,
        _ => detail::SUSPENDED_PAUSED,
    }
}

/// The RESUMED detail of a resume for `reason`: a migration's end (on
/// either host) is "migrated", the destination's run during post-copy
/// "post-copy", everything else "unpaused".
fn resumed_detail(reason: i32) -> i32 {
    match reason {
        running::MIGRATED | running::MIGRATION_CANCELED => detail::RESUMED_MIGRATED,
        running::POSTCOPY => detail::RESUMED_POSTCOPY,
        _ => detail::RESUMED_UNPAUSED,
    }
}
