//! The only primitives the lock uses, switched for shuttle's in unit tests.
//!
//! The lock needs exactly two things from its environment: a mutex around the
//! state machine and a deadline timer. Wake-ups are plain [`std::task::Waker`]s
//! stored under that mutex, which both tokio and shuttle's executor provide.
//! In `cfg(test)` builds of this crate (its unit tests) the mutex is
//! shuttle's, so that every lock/unlock is a scheduling point shuttle can
//! permute, and the timer is a countdown of yields, so that shuttle decides
//! when a deadline passes relative to everything else. Integration tests under
//! `tests/` and every dependent crate link the normal build: std's mutex and
//! tokio's timer (which honours tokio's paused time).

#[cfg(not(test))]
use std::future::Future;
#[cfg(not(test))]
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

#[cfg(not(test))]
pub(crate) use std::sync::Mutex;

#[cfg(test)]
pub(crate) use shuttle::sync::Mutex;

/// A deadline that can be polled: `poll_expired` registers the task's waker
/// for the expiry and says whether it has passed.
pub(crate) struct Deadline {
    #[cfg(not(test))]
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    #[cfg(test)]
    yields_left: Option<u64>,
}

impl Deadline {
    /// A deadline `after` from now. One too far away to represent never
    /// passes.
    ///
    /// Under shuttle, a deadline below one second passes after as many
    /// polls-with-yield as it has milliseconds; one of a second or more never
    /// passes, so that tests can say "wait for ever" and still have shuttle
    /// detect a deadlock instead of spinning.
    pub(crate) fn after(after: Duration) -> Self {
        #[cfg(not(test))]
        {
            let sleep = tokio::time::Instant::now()
                .checked_add(after)
                .map(|at| Box::pin(tokio::time::sleep_until(at)));
            Deadline { sleep }
        }
        #[cfg(test)]
        {
            let yields_left = (after < Duration::from_secs(1)).then_some(after.as_millis() as u64);
            Deadline { yields_left }
        }
    }

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        #[cfg(not(test))]
        {
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
                None => false,
            }
        }
        #[cfg(test)]
        {
            match &mut self.yields_left {
                Some(0) => true,
                Some(n) => {
                    *n -= 1;
                    // Be polled again soon: that poll is a yield point where
                    // shuttle may run anyone else first.
                    cx.waker().wake_by_ref();
                    false
                }
                None => false,
            }
        }
    }
}
