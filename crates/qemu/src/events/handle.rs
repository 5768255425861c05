//! What each QMP event does to the domain: a transition of its state (see
//! `object::Inner`), a domain event for clients, or progress for a job
//! that waits for it. Synchronous; the short state lock only.

use qmp::{Event, EventItem, EventKind as Q, RunState};

use super::device;
use super::hub::Hub;
use super::throttle::Key;
use crate::actions;
use crate::object::run::{RunCtx, ShutdownBy};
use crate::object::{Domain, Inner};
use crate::shared::Shared;
use crate::state::{
    DomainState, EventKind, StateReason, crashed, detail, io_error_action, paused, running,
    shutdown, watchdog_action,
};

/// Applies one event or overflow.
pub(super) fn item(s: &Shared, dom: &Domain, ctx: &RunCtx, item: EventItem) {
    match item {
        EventItem::Event(ev) => event(s, dom, ctx, ev),
        EventItem::Overflow(o) => {
            s.health.event_overflows.inc();
            s.health.events_dropped.add(o.dropped);
            tracing::debug!(
                domain = dom.name(),
                dropped = o.dropped,
                "event overflow: resync"
            );
            with_run(s, dom, ctx, |g, _, _| {
                g.forget_owed_events();
                0
            });
            // Apply what the coalesced events tell us now; the resync
            // (an action: it needs monitor commands) makes it exact.
            for ev in o.latest {
                event(s, dom, ctx, ev);
            }
            ctx.update_progress(|p| p.overflowed += 1);
            ctx.actions.set(actions::RESYNC);
        }
    }
}

fn event(s: &Shared, dom: &Domain, ctx: &RunCtx, ev: Event) {
    match ev.kind {
        Q::Stop => with_run(s, dom, ctx, |g, dom, hub| g.qemu_stopped(dom, hub)),
        Q::Resume => with_run(s, dom, ctx, |g, dom, hub| g.qemu_resumed(dom, hub)),
        Q::Shutdown(d) => {
            let by = d.guest.map(|guest| {
                if guest {
                    ShutdownBy::Guest
                } else {
                    ShutdownBy::Host
                }
            });
            with_run(s, dom, ctx, |g, dom, hub| g.guest_shutdown(dom, hub, by));
        }
        Q::Reset(_) => with_run(s, dom, ctx, |g, dom, hub| {
            g.guest_reset(dom, hub);
            0
        }),
        Q::GuestPanicked(_) => with_run(s, dom, ctx, |g, dom, hub| g.guest_panicked(dom, hub)),
        Q::BlockIoError(d) => io_error(s, dom, ctx, &d),
        Q::Watchdog(d) => watchdog(s, dom, ctx, &d),
        Q::RtcChange(d) => {
            let ev = EventKind::RtcChange { offset: d.offset };
            guest_value(s, dom, ctx, Key::Rtc, ev);
        }
        Q::BalloonChange(d) => {
            let actual_kib = u64::try_from(d.actual).unwrap_or(0) / 1024;
            let ev = EventKind::BalloonChange { actual_kib };
            guest_value(s, dom, ctx, Key::Balloon, ev);
        }
        Q::Migration(d) => ctx.update_progress(|p| p.migration = Some(d.status)),
        Q::DumpCompleted(d) => ctx.update_progress(|p| p.set_dump(d.result.status, d.error)),
        Q::MigrationPass(d) => {
            let iteration = d.pass.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
            with_run(s, dom, ctx, |g, dom, hub| {
                g.emit(dom, hub, EventKind::MigrationIteration { iteration });
                0
            });
        }
        Q::JobStatusChange(d) => ctx.update_progress(|p| p.set_job(d.id, d.status)),
        Q::DeviceDeleted(d) => crate::hotplug::device_deleted(s, dom, ctx, d),
        Q::DeviceTrayMoved(d) => tray_moved(s, dom, ctx, &d),
        Q::BlockWriteThreshold(d) => write_threshold(s, dom, ctx, &d),
        Q::DeviceUnplugGuestError(d) => crate::hotplug::unplug_failed(s, dom, ctx, d),
        _ => {}
    }
}

/// BLOCK_IO_ERROR: IO_ERROR and IO_ERROR_REASON for the disk it names
/// (throttled per disk: a guest can make QEMU report errors at the rate
/// it issues I/O), then, for action "stop", the pause QEMU is about to
/// make: paused (I/O error) with SUSPENDED/IOERROR, so the STOP that
/// follows finds the domain paused already and is not news (as libvirt
/// orders them: the I/O error events, then the lifecycle event). Under a
/// storm the I/O error events may lag the pause by up to one throttle
/// interval; the pause itself is never delayed.
fn io_error(s: &Shared, dom: &Domain, ctx: &RunCtx, d: &qmp::events::BlockIoErrorData) {
    let found = {
        let g = dom.lock();
        g.run_of(ctx.generation)
            .map(|r| device::io_error_event(g.live().map(|l| &**l), r.pivoted_nodes(), d))
    };
    let Some((key, ev)) = found else { return };
    let pause = matches!(ev, EventKind::IoError { action, .. } if action == io_error_action::PAUSE);
    guest_value(s, dom, ctx, key, ev);
    if pause {
        with_run(s, dom, ctx, |g, dom, hub| {
            g.paused_because(dom, hub, paused::IOERROR, detail::SUSPENDED_IOERROR)
        });
    }
}

/// DEVICE_TRAY_MOVED of one of our disks: TRAY_CHANGE (throttled per
/// disk), reason open (0) or close (1).
fn tray_moved(s: &Shared, dom: &Domain, ctx: &RunCtx, d: &qmp::events::DeviceTrayMovedData) {
    let disk = {
        let g = dom.lock();
        let live = g.live().cloned();
        live.and_then(|l| l.disk_of_qmp(d.id.as_deref(), None, None))
    };
    let Some(disk) = disk else { return };
    let ev = EventKind::TrayChange {
        alias: disk.alias,
        reason: if d.tray_open { 0 } else { 1 },
    };
    guest_value(s, dom, ctx, Key::Tray(disk.index), ev);
}

/// BLOCK_WRITE_THRESHOLD on a node of one of our disks: BLOCK_THRESHOLD
/// (one per threshold set: QEMU clears it as it fires).
fn write_threshold(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    d: &qmp::events::BlockWriteThresholdData,
) {
    with_run(s, dom, ctx, |g, dom, hub| {
        let live = g.live().cloned();
        if let Some(disk) = live.and_then(|l| l.disk_of_qmp(None, Some(&d.node_name), None)) {
            let ev = EventKind::BlockThreshold {
                dev: disk.target,
                path: disk
                    .source
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                threshold: d.write_threshold,
                excess: d.amount_exceeded,
            };
            g.emit(dom, hub, ev);
        }
        0
    });
}

/// WATCHDOG: the WATCHDOG event (throttled per VM), then for action
/// "pause" the pause QEMU is about to make, as for an I/O error. The other
/// actions are carried out by QEMU and reported by their own events
/// (RESET, SHUTDOWN, ...).
fn watchdog(s: &Shared, dom: &Domain, ctx: &RunCtx, d: &qmp::events::WatchdogData) {
    let ev = device::watchdog_event(d);
    let pause = matches!(ev, EventKind::Watchdog { action } if action == watchdog_action::PAUSE);
    guest_value(s, dom, ctx, Key::Watchdog, ev);
    if pause {
        with_run(s, dom, ctx, |g, dom, hub| {
            g.paused_because(dom, hub, paused::WATCHDOG, detail::SUSPENDED_WATCHDOG)
        });
    }
}

/// Delivers a guest-triggered event now, or leaves it to the throttle's
/// slot (delivered by [`flush_due`] when its interval ends).
fn guest_value(s: &Shared, dom: &Domain, ctx: &RunCtx, key: Key, ev: EventKind) {
    let now = std::time::Instant::now();
    if let Some(ev) = ctx.throttle.offer(key, ev, now, &s.health.events_coalesced) {
        with_run(s, dom, ctx, |g, dom, hub| {
            g.emit(dom, hub, ev);
            0
        });
    }
}

/// Delivers throttled events whose interval has ended.
pub(super) fn flush_due(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    for ev in ctx.throttle.due(std::time::Instant::now()) {
        with_run(s, dom, ctx, |g, dom, hub| {
            g.emit(dom, hub, ev);
            0
        });
    }
}

/// Runs transition `f` under the short lock if `ctx` is still the domain's
/// current run (a late event of an earlier run must not touch a later
/// one), and records the follow-up actions it asks for.
fn with_run(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    f: impl FnOnce(&mut Inner, &Domain, &Hub) -> u32,
) {
    let mut g = dom.lock();
    if g.run_of(ctx.generation).is_none() {
        return;
    }
    let follow_up = f(&mut g, dom, &s.hub);
    if follow_up != 0 {
        ctx.actions.set(follow_up);
    }
}

/// The libvirt state that QEMU's run state (query-status) implies.
pub(crate) fn state_of_qemu_status(status: &RunState) -> StateReason {
    use DomainState::*;
    match status {
        RunState::Running => StateReason::new(Running, running::UNKNOWN),
        RunState::IoError => StateReason::new(Paused, paused::IOERROR),
        RunState::Watchdog => StateReason::new(Paused, paused::WATCHDOG),
        RunState::Shutdown => StateReason::new(Shutdown, shutdown::UNKNOWN),
        RunState::GuestPanicked => StateReason::new(Crashed, crashed::PANICKED),
        RunState::Suspended => StateReason::new(PmSuspended, 0),
        RunState::Postmigrate | RunState::FinishMigrate => {
            StateReason::new(Paused, paused::MIGRATION)
        }
        _ => StateReason::new(Paused, paused::UNKNOWN),
    }
}

/// Moves the domain to what QEMU says it is (after coalesced events or a
/// daemon restart), emitting the lifecycle events the difference implies.
/// `seen` is the state version read before QEMU was asked: if the state
/// changed since (a command's `stop` or `cont`, an event), QEMU's answer
/// may predate that change and is not applied; false then.
pub(crate) fn apply_qemu_status(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    status: &RunState,
    seen: u64,
) -> bool {
    let truth = state_of_qemu_status(status);
    let mut current = true;
    with_run(s, dom, ctx, |g, dom, hub| {
        let follow_up = g.converge_since(dom, hub, truth, seen);
        current = follow_up.is_some();
        follow_up.unwrap_or(0)
    });
    current
}
