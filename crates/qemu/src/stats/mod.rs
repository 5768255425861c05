//! Guest statistics that never wait: a per-VM cache that a bounded
//! background poller refreshes, so a statistics call never takes a job
//! and never waits on a monitor.
//!
//! - [`poller`]: every `interval`, one QMP round per running VM
//!   ([`round`]: block counters, block node sizes, balloon, vCPU threads,
//!   I/O threads, sent together under one deadline, then `/proc`), spread
//!   over the interval, at most `max_in_flight` at once.
//! - [`cache`]: per VM, the latest [`Sample`] of its current run and how
//!   the last round ended; VMs whose rounds time out back off.
//! - [`health`]: the driver's own counters and histograms for the metrics
//!   endpoint.
//!
//! **How stale a figure can be.** A VM that answers is sampled once per
//! `interval`, and a round takes at most its deadline
//! (`min(interval, monitor deadline)`), so its figures are at most
//! `interval + deadline` old: [`StatsConfig::max_age`]. Anything older, or
//! a VM whose last round did not get an answer, is reported stale
//! ([`Freshness`]), with the last figures it had. CPU times of
//! `virDomainGetInfo` are not from this cache: they are read when asked.

mod cache;
pub(crate) mod health;
pub(crate) mod poller;
pub(crate) mod procfs;
pub(crate) mod round;
mod sample;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cache::RoundError;
pub(crate) use cache::Slot;
pub use health::{HealthSnapshot, JOB_KINDS};
pub use sample::{
    Balloon, Block, BlockCounters, CpuTimes, GuestMemory, Iothread, MAX_BACKING, MAX_IOTHREADS,
    Net, Sample, Vcpu,
};

use crate::state::StateReason;

/// How the poller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsConfig {
    /// Time between two rounds of one VM; zero turns the poller off.
    pub interval: Duration,
    /// Rounds in flight at once, over all VMs.
    pub max_in_flight: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            max_in_flight: 32,
        }
    }
}

impl StatsConfig {
    /// The deadline of one round.
    pub fn round_deadline(&self, monitor_timeout: Duration) -> Duration {
        self.interval.min(monitor_timeout)
    }

    /// The oldest a figure of a VM that answers can be: one interval plus
    /// one round. Older figures are reported stale.
    pub fn max_age(&self, monitor_timeout: Duration) -> Duration {
        self.interval + self.round_deadline(monitor_timeout)
    }
}

/// How fresh a running domain's statistics are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Freshness {
    /// Age of the sample, if there is one.
    pub age: Option<Duration>,
    /// Older than [`StatsConfig::max_age`], or the last round failed, or
    /// no round succeeded yet in this run.
    pub stale: bool,
    /// Why it is stale.
    pub reason: Option<String>,
}

/// One disk of the definition, as statistics name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskDesc {
    pub target: String,
    pub source: Option<PathBuf>,
    pub qcow2: bool,
    pub cdrom: bool,
}

/// What statistics calls need of one domain: its definition's devices,
/// its state, and its cached sample with its freshness. Taken without a
/// job and without the monitor.
#[derive(Debug, Clone)]
pub struct DomainStats {
    pub state: StateReason,
    pub active: bool,
    pub max_mem_kib: u64,
    pub cur_mem_kib: u64,
    pub vcpus: u32,
    pub disks: Vec<DiskDesc>,
    /// MAC addresses of the NICs, in definition order.
    pub nics: Vec<String>,
    pub has_balloon: bool,
    pub pid: Option<i32>,
    pub sample: Option<Arc<Sample>>,
    pub freshness: Freshness,
}

/// Freshness of what the cache holds.
pub(crate) fn freshness(
    sample: Option<&Sample>,
    error: Option<&RoundError>,
    max_age: Duration,
    now: Instant,
) -> Freshness {
    let age = sample.map(|s| now.saturating_duration_since(s.taken));
    let reason = match (error, age) {
        (Some(e), _) => Some(e.to_string()),
        (None, None) => Some("no statistics yet".to_owned()),
        (None, Some(a)) if a > max_age => Some(format!("older than {} ms", max_age.as_millis())),
        _ => None,
    };
    Freshness {
        age,
        stale: reason.is_some(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_bound_is_one_interval_and_one_round() {
        let c = StatsConfig {
            interval: Duration::from_secs(10),
            max_in_flight: 1,
        };
        assert_eq!(c.max_age(Duration::from_secs(30)), Duration::from_secs(20));
        assert_eq!(c.max_age(Duration::from_secs(5)), Duration::from_secs(15));
    }

    #[test]
    fn freshness_says_why() {
        let max = Duration::from_secs(2);
        let now = Instant::now();
        let none = freshness(None, None, max, now);
        assert!(none.stale && none.age.is_none());
        let timeout = RoundError::Timeout(Duration::from_secs(1));
        let f = freshness(None, Some(&timeout), max, now);
        assert_eq!(
            f.reason.as_deref(),
            Some("monitor did not answer within 1000 ms")
        );
    }
}
