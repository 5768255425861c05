//! Throttling of guest-triggered events (RTC_CHANGE, BALLOON_CHANGE,
//! WATCHDOG, BLOCK_IO_ERROR).
//!
//! A buggy or compromised QEMU can send these at any rate, and a guest can
//! make QEMU send BLOCK_IO_ERROR at the rate it issues failing I/O (QEMU
//! 7.2 does not rate-limit that one at all; a flood of such events is what
//! wedged libvirtd in the anchors' measurements). The newest event of a
//! [`Key`] is all a client needs (the newest value; for an I/O error or a
//! watchdog, that it is still happening and with which action), so per VM
//! and key at most one is delivered per [`INTERVAL`]; in between, the
//! newest waits in a one-slot buffer and is delivered when the interval
//! ends. I/O errors are keyed per disk, so a storm on one disk never hides
//! the first error of another.
//!
//! Memory: one slot per key, whatever the rate. Keys are made by the
//! driver from its own definition (a disk's index), never from strings
//! QEMU sends, so there are at most "disks + 4" of them per run. Delivery:
//! in each VM's order, never more than 1/[`INTERVAL`] per key to any client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use telemetry::Counter;

use crate::state::EventKind;

/// Minimum spacing of two delivered events of one key for one VM.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// What throttled events are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Rtc,
    Balloon,
    Watchdog,
    /// BLOCK_IO_ERROR of the disk at this index of the live definition;
    /// `None` for errors on a node or device no disk maps to (they share
    /// one slot, so unknown names cannot create slots).
    IoError(Option<usize>),
    /// DEVICE_TRAY_MOVED of the disk at this index of the live definition
    /// (a guest can open and close a tray as fast as it likes; the newest
    /// position is what counts).
    Tray(usize),
}

#[derive(Default)]
struct Slot {
    last: Option<Instant>,
    pending: Option<EventKind>,
}

/// Per-run throttle state.
#[derive(Default)]
pub(crate) struct Throttle {
    slots: Mutex<HashMap<Key, Slot>>,
}

impl Throttle {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers an event; returns it if it may be delivered now, otherwise
    /// keeps it (replacing an older pending one of its key, counted in
    /// `coalesced`) for [`Throttle::due`].
    pub(crate) fn offer(
        &self,
        key: Key,
        ev: EventKind,
        now: Instant,
        coalesced: &Counter,
    ) -> Option<EventKind> {
        let mut slots = self.slots();
        let slot = slots.entry(key).or_default();
        match slot.last {
            Some(t) if now.duration_since(t) < INTERVAL => {
                if slot.pending.replace(ev).is_some() {
                    coalesced.inc();
                }
                None
            }
            _ => {
                slot.last = Some(now);
                slot.pending = None;
                Some(ev)
            }
        }
    }

    /// Pending events whose interval has ended, now delivered.
    pub(crate) fn due(&self, now: Instant) -> Vec<EventKind> {
        let mut out = Vec::new();
        for slot in self.slots().values_mut() {
            let ready = slot.last.is_none_or(|t| now.duration_since(t) >= INTERVAL);
            if ready && let Some(ev) = slot.pending.take() {
                slot.last = Some(now);
                out.push(ev);
            }
        }
        out
    }

    /// When the next pending event becomes due, if any is pending.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.slots()
            .values()
            .filter(|s| s.pending.is_some())
            .map(|s| s.last.map_or_else(Instant::now, |t| t + INTERVAL))
            .min()
    }

    /// Number of keys seen (each holds at most one pending event).
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtc(offset: i64) -> EventKind {
        EventKind::RtcChange { offset }
    }

    fn io(disk: &str, action: i32) -> EventKind {
        EventKind::IoError {
            src_path: format!("/{disk}.img"),
            dev_alias: disk.to_owned(),
            action,
            reason: String::new(),
        }
    }

    #[test]
    fn a_flood_delivers_the_first_then_only_the_newest_per_interval() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(
            t.offer(Key::Rtc, rtc(0), t0, &Counter::default()),
            Some(rtc(0))
        );
        for i in 1..100_000 {
            assert_eq!(
                t.offer(
                    Key::Rtc,
                    rtc(i),
                    t0 + Duration::from_micros(i as u64 % 90_000),
                    &Counter::default()
                ),
                None
            );
        }
        assert_eq!(t.next_due(), Some(t0 + INTERVAL));
        assert!(t.due(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(t.due(t0 + INTERVAL), vec![rtc(99_999)]);
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn kinds_are_independent() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert!(t.offer(Key::Rtc, rtc(1), t0, &Counter::default()).is_some());
        let b = EventKind::BalloonChange { actual_kib: 1024 };
        assert_eq!(
            t.offer(Key::Balloon, b.clone(), t0, &Counter::default()),
            Some(b)
        );
        let w = EventKind::Watchdog { action: 1 };
        assert_eq!(
            t.offer(Key::Watchdog, w.clone(), t0, &Counter::default()),
            Some(w)
        );
    }

    #[test]
    fn io_errors_are_throttled_per_disk() {
        let t = Throttle::default();
        let t0 = Instant::now();
        // A storm on disk 0 ...
        assert_eq!(
            t.offer(Key::IoError(Some(0)), io("vda", 2), t0, &Counter::default()),
            Some(io("vda", 2))
        );
        for i in 1..50_000u64 {
            let at = t0 + Duration::from_micros(i % 90_000);
            assert_eq!(
                t.offer(Key::IoError(Some(0)), io("vda", 2), at, &Counter::default()),
                None
            );
        }
        // ... does not delay the first error of disk 1, nor of an unknown
        // disk, and does not share their slots.
        let at = t0 + Duration::from_millis(10);
        assert_eq!(
            t.offer(Key::IoError(Some(1)), io("vdb", 1), at, &Counter::default()),
            Some(io("vdb", 1))
        );
        assert_eq!(
            t.offer(Key::IoError(None), io("", 0), at, &Counter::default()),
            Some(io("", 0))
        );
        assert_eq!(
            t.offer(Key::IoError(Some(1)), io("vdb", 2), at, &Counter::default()),
            None
        );
        // Each disk gets its newest pending error when its interval ends.
        assert_eq!(t.due(t0 + INTERVAL), vec![io("vda", 2)]);
        assert_eq!(t.due(at + INTERVAL), vec![io("vdb", 2)]);
        assert_eq!(t.next_due(), None);
        // Bounded: one slot per key however many events came.
        assert_eq!(t.slot_count(), 3);
    }

    #[test]
    fn a_quiet_vm_is_never_delayed() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert!(t.offer(Key::Rtc, rtc(1), t0, &Counter::default()).is_some());
        assert!(
            t.offer(Key::Rtc, rtc(2), t0 + INTERVAL, &Counter::default())
                .is_some()
        );
    }
}
