//! Throttling of guest-triggered value events (RTC_CHANGE, BALLOON_CHANGE).
//!
//! A buggy or compromised QEMU can send these at any rate (real QEMU limits
//! them to one per second; a flood of them is what wedged libvirtd in the
//! anchors' measurements). Each carries a value whose newest state is all a
//! client needs, so per VM and kind at most one is delivered per
//! [`INTERVAL`]; in between, the newest value waits in a one-slot buffer
//! and is delivered when the interval ends. Memory: one slot per kind,
//! whatever the rate; delivery: in each VM's order, never more than
//! 1/[`INTERVAL`] per kind to any client.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::EventKind;

/// Minimum spacing of two delivered events of one kind for one VM.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The kinds throttled, as slot indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rtc = 0,
    Balloon = 1,
}

#[derive(Default)]
struct Slot {
    last: Option<Instant>,
    pending: Option<EventKind>,
}

/// Per-run throttle state.
#[derive(Default)]
pub struct Throttle {
    slots: Mutex<[Slot; 2]>,
}

impl Throttle {
    fn slots(&self) -> std::sync::MutexGuard<'_, [Slot; 2]> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers an event; returns it if it may be delivered now, otherwise
    /// keeps it (replacing an older pending one) for [`Throttle::due`].
    pub fn offer(&self, kind: Kind, ev: EventKind, now: Instant) -> Option<EventKind> {
        let mut slots = self.slots();
        let slot = &mut slots[kind as usize];
        match slot.last {
            Some(t) if now.duration_since(t) < INTERVAL => {
                slot.pending = Some(ev);
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
    pub fn due(&self, now: Instant) -> Vec<EventKind> {
        let mut out = Vec::new();
        for slot in self.slots().iter_mut() {
            let ready = slot.last.is_none_or(|t| now.duration_since(t) >= INTERVAL);
            if ready && let Some(ev) = slot.pending.take() {
                slot.last = Some(now);
                out.push(ev);
            }
        }
        out
    }

    /// When the next pending event becomes due, if any is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots()
            .iter()
            .filter(|s| s.pending.is_some())
            .map(|s| s.last.map_or_else(Instant::now, |t| t + INTERVAL))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtc(offset: i64) -> EventKind {
        EventKind::RtcChange { offset }
    }

    #[test]
    fn a_flood_delivers_the_first_then_only_the_newest_per_interval() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.offer(Kind::Rtc, rtc(0), t0), Some(rtc(0)));
        for i in 1..100_000 {
            assert_eq!(
                t.offer(
                    Kind::Rtc,
                    rtc(i),
                    t0 + Duration::from_micros(i as u64 % 90_000)
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
        assert!(t.offer(Kind::Rtc, rtc(1), t0).is_some());
        let b = EventKind::BalloonChange { actual_kib: 1024 };
        assert_eq!(t.offer(Kind::Balloon, b.clone(), t0), Some(b));
    }

    #[test]
    fn a_quiet_vm_is_never_delayed() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert!(t.offer(Kind::Rtc, rtc(1), t0).is_some());
        assert!(t.offer(Kind::Rtc, rtc(2), t0 + INTERVAL).is_some());
    }
}
