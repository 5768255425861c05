//! Coalesced per-VM follow-up actions.
//!
//! Event handlers never take the job lock: a handler waiting for a job
//! while the job waits for the handler's event would deadlock. Work that
//! does need a job (cleanup after QEMU exits, applying `on_poweroff`, fake
//! reboot, resync after an event overflow) or may block (persisting the
//! status file) is recorded as a bit in a small set. One action task per
//! running VM ([`task`]) takes the bits and runs them. Setting the same bit
//! twice before it runs runs it once: the "queue" is a `u32`, bounded by
//! construction no matter how many events arrive.

pub(crate) mod task;

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::Notify;

/// QEMU exited or its monitor closed: clean up and mark shutoff.
pub(crate) const STOPPED: u32 = 1 << 0;
/// The guest powered off (SHUTDOWN event with -no-shutdown): apply
/// `on_poweroff` or fake reboot.
pub(crate) const POWEROFF: u32 = 1 << 1;
/// Events were coalesced: re-read state from QEMU.
pub(crate) const RESYNC: u32 = 1 << 2;
/// The live state changed: rewrite the status file.
pub(crate) const PERSIST: u32 = 1 << 3;
/// The guest crashed (GUEST_PANICKED): apply `on_crash`.
pub(crate) const CRASH: u32 = 1 << 4;
/// Devices were unplugged: delete their block nodes, then persist.
pub(crate) const RELEASE: u32 = 1 << 5;

/// A set of pending actions plus a wakeup.
#[derive(Default)]
pub(crate) struct Actions {
    bits: AtomicU32,
    notify: Notify,
}

impl Actions {
    /// Records `bits` as pending and wakes the action task.
    pub(crate) fn set(&self, bits: u32) {
        if self.bits.fetch_or(bits, Ordering::AcqRel) & bits != bits {
            self.notify.notify_one();
        }
    }

    /// Takes every pending action at once.
    pub(crate) fn take(&self) -> u32 {
        self.bits.swap(0, Ordering::AcqRel)
    }

    /// Waits until some action is pending, then takes them all.
    /// `notify_one` stores a permit, so a `set` between `take` and
    /// `notified` is never lost.
    pub(crate) async fn wait(&self) -> u32 {
        loop {
            let b = self.take();
            if b != 0 {
                return b;
            }
            self.notify.notified().await;
        }
    }

    #[cfg(test)]
    /// Pending actions without taking them.
    pub(crate) fn pending(&self) -> u32 {
        self.bits.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn coalesces_and_never_loses_a_wakeup() {
        let a = Actions::default();
        for _ in 0..100_000 {
            a.set(PERSIST);
        }
        a.set(RESYNC);
        assert_eq!(a.wait().await, PERSIST | RESYNC);
        assert_eq!(a.pending(), 0);
        let a = std::sync::Arc::new(a);
        let a2 = a.clone();
        let t = tokio::spawn(async move { a2.wait().await });
        tokio::task::yield_now().await;
        a.set(STOPPED);
        assert_eq!(t.await.unwrap(), STOPPED);
    }
}
