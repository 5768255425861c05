//! The per-domain statistics cache: the latest sample of the current run,
//! what the last round ran into, and the poller's bookkeeping (one round in
//! flight at most, back-off after a round that timed out).
//!
//! Readers copy an `Arc` out under a short mutex of the domain's own; no
//! reader ever waits for a round, a job or the monitor.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::sample::Sample;

/// How the last round of a domain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundError {
    /// The monitor did not answer within the round's deadline.
    Timeout(Duration),
    /// No monitor, or it closed.
    NoMonitor,
}

impl std::fmt::Display for RoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoundError::Timeout(d) => {
                write!(f, "monitor did not answer within {} ms", d.as_millis())
            }
            RoundError::NoMonitor => f.write_str("no monitor"),
        }
    }
}

#[derive(Default)]
struct SlotState {
    /// The run the sample is of (a new run starts with no sample).
    generation: u64,
    latest: Option<Arc<Sample>>,
    last_error: Option<RoundError>,
    in_flight: bool,
    /// Rounds in a row that timed out.
    timeouts: u32,
    /// No round before this (after timeouts).
    retry_at: Option<Instant>,
}

/// One domain's cache. Lives in the domain object.
#[derive(Default)]
pub(crate) struct Slot {
    st: Mutex<SlotState>,
}

/// A copy of what the cache holds for one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cached {
    pub(crate) sample: Option<Arc<Sample>>,
    pub(crate) last_error: Option<RoundError>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // Plain data, consistent between statements: a panic elsewhere
        // leaves it usable.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the cache holds for run `generation` (nothing for another run).
    pub(crate) fn read(&self, generation: u64) -> Cached {
        let st = self.lock();
        if st.generation != generation {
            return Cached::default();
        }
        Cached {
            sample: st.latest.clone(),
            last_error: st.last_error.clone(),
        }
    }

    /// Claims the next round of run `generation`, unless one is in flight
    /// or the slot backs off after timeouts. A new run clears the slot.
    pub(crate) fn begin(&self, generation: u64, now: Instant) -> bool {
        let mut st = self.lock();
        if st.generation != generation {
            *st = SlotState {
                generation,
                ..SlotState::default()
            };
        }
        if st.in_flight || st.retry_at.is_some_and(|t| now < t) {
            return false;
        }
        st.in_flight = true;
        true
    }

    /// Records the end of the round `begin` claimed. After `n` timeouts in
    /// a row the next round waits `interval × 2^(n-1)` (at most 16
    /// intervals): a hung monitor costs the poller one in-flight slot for
    /// a fraction of the time, however many VMs hang.
    pub(crate) fn finish(
        &self,
        generation: u64,
        result: Result<Sample, RoundError>,
        interval: Duration,
    ) {
        let mut st = self.lock();
        if st.generation != generation {
            return;
        }
        st.in_flight = false;
        match result {
            Ok(s) => {
                st.latest = Some(Arc::new(s));
                st.last_error = None;
                st.timeouts = 0;
                st.retry_at = None;
            }
            Err(e) => {
                if matches!(e, RoundError::Timeout(_)) {
                    st.timeouts = st.timeouts.saturating_add(1);
                    let factor = 1u32 << st.timeouts.saturating_sub(1).min(4);
                    st.retry_at = Some(Instant::now() + interval * factor);
                }
                st.last_error = Some(e);
            }
        }
    }

    /// Whether run `generation` has not had a round yet (the poller
    /// samples new runs at once rather than one interval later).
    pub(crate) fn is_new_run(&self, generation: u64) -> bool {
        self.lock().generation != generation
    }

    /// Whether the last round of the current run timed out.
    pub(crate) fn timed_out(&self) -> bool {
        matches!(self.lock().last_error, Some(RoundError::Timeout(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn sample() -> Sample {
        Sample {
            taken: Instant::now(),
            taken_wall: SystemTime::now(),
            cpu: None,
            rss_kib: None,
            balloon: None,
            vcpus: Vec::new(),
            blocks: Vec::new(),
            iothreads: Vec::new(),
            nets: Vec::new(),
        }
    }

    #[test]
    fn one_round_in_flight_and_per_run() {
        let s = Slot::default();
        let now = Instant::now();
        assert!(s.is_new_run(1));
        assert!(s.begin(1, now));
        assert!(!s.is_new_run(1));
        assert!(!s.begin(1, now), "one round at a time");
        s.finish(1, Ok(sample()), Duration::from_secs(1));
        assert!(s.read(1).sample.is_some());
        assert!(s.read(2).sample.is_none(), "another run sees nothing");
        assert!(s.begin(2, now), "a new run starts clean");
        assert!(s.read(1).sample.is_none(), "the old run's sample is gone");
        s.finish(1, Ok(sample()), Duration::from_secs(1));
        assert!(
            s.read(2).sample.is_none(),
            "a late round of the old run is ignored"
        );
    }

    #[test]
    fn timeouts_back_off_and_keep_the_last_sample() {
        let s = Slot::default();
        let i = Duration::from_secs(1);
        assert!(s.begin(1, Instant::now()));
        s.finish(1, Ok(sample()), i);
        assert!(s.begin(1, Instant::now()));
        s.finish(1, Err(RoundError::Timeout(i)), i);
        assert!(s.timed_out());
        let c = s.read(1);
        assert!(c.sample.is_some(), "the last good sample stays");
        assert_eq!(c.last_error, Some(RoundError::Timeout(i)));
        assert!(!s.begin(1, Instant::now()), "backing off");
        assert!(s.begin(1, Instant::now() + 2 * i));
        s.finish(1, Err(RoundError::Timeout(i)), i);
        assert!(
            !s.begin(1, Instant::now() + i),
            "two timeouts: two intervals"
        );
        assert!(s.begin(1, Instant::now() + 3 * i));
        s.finish(1, Ok(sample()), i);
        assert!(!s.timed_out());
        assert!(s.begin(1, Instant::now()), "an answer ends the back-off");
    }
}
