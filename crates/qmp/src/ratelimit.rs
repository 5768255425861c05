//! Log rate limiting.
//!
//! A hostile or broken QEMU can produce a stream of bad replies; logging
//! each one would turn a misbehaving VM into a disk-filling log flood for
//! the whole host. [`LogLimiter`] lets one message through per interval and
//! reports how many were suppressed in between.

use std::time::{Duration, Instant};

/// Allows one log line per `interval`, counting the rest.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Records an occurrence. Returns `Some(suppressed_since_last_log)` when
    /// this one should be logged.
    pub(crate) fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_within_interval() {
        let mut l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.hit(), Some(0));
        for _ in 0..1000 {
            assert_eq!(l.hit(), None);
        }
        let mut l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.hit(), Some(0));
        assert_eq!(l.hit(), Some(0));
    }
}
