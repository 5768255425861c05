//! The driver's own health, for the daemon's metrics endpoint: monitor
//! round trips and deadlines, the event pipeline's coalescing and
//! overflows, job waits and holds per kind, and the statistics poller.
//!
//! Recorded on the hot paths with relaxed atomics only (no lock, nothing
//! per VM): the per-VM figures (queue depths, oldest job, unresponsive
//! monitors) are gathered from the registry when a snapshot is taken.
//! Every series has a fixed label set (job kinds are a closed list), so
//! the cardinality does not grow with the number of VMs.

use std::time::Duration;

use joblock::{AsyncKind, JobKind, JobObserver, NormalJob};
use telemetry::{Counter, HighWater, Histogram, HistogramSnapshot};

/// The job kinds metrics tell apart, in label order.
pub const JOB_KINDS: &[&str] = &[
    "query",
    "modify",
    "suspend",
    "resume",
    "abort",
    "migration-op",
    "volume",
    "nested",
    "destroy",
    "async-migration-out",
    "async-migration-in",
    "async-save",
    "async-dump",
    "async-snapshot",
    "async-start",
    "async-restore",
    "async-block-job",
    "async-other",
];

fn job_kind_index(k: JobKind) -> usize {
    let label = match k {
        JobKind::Normal(NormalJob::Query) => "query",
        JobKind::Normal(NormalJob::Modify) => "modify",
        JobKind::Normal(NormalJob::Suspend) => "suspend",
        JobKind::Normal(NormalJob::Resume) => "resume",
        JobKind::Normal(NormalJob::Abort) => "abort",
        JobKind::Normal(NormalJob::MigrationOp) => "migration-op",
        JobKind::Normal(NormalJob::Volume) => "volume",
        JobKind::Nested { .. } => "nested",
        JobKind::Destroy => "destroy",
        JobKind::Async(AsyncKind::MigrationOut) => "async-migration-out",
        JobKind::Async(AsyncKind::MigrationIn) => "async-migration-in",
        JobKind::Async(AsyncKind::Save) => "async-save",
        JobKind::Async(AsyncKind::Dump) => "async-dump",
        JobKind::Async(AsyncKind::Snapshot) => "async-snapshot",
        JobKind::Async(AsyncKind::Start) => "async-start",
        JobKind::Async(AsyncKind::Restore) => "async-restore",
        JobKind::Async(AsyncKind::BlockJob) => "async-block-job",
        _ => "async-other",
    };
    JOB_KINDS
        .iter()
        .position(|l| *l == label)
        .unwrap_or(JOB_KINDS.len() - 1)
}

/// Counters and histograms the driver records into.
pub(crate) struct Health {
    /// Every monitor command's round trip (answered or not).
    pub(crate) monitor_rtt: Histogram,
    /// Monitor commands that got no answer within their deadline.
    pub(crate) monitor_timeouts: Counter,
    /// Overflow notices handled (each: events were coalesced in the QMP
    /// queue and the VM was resynchronised).
    pub(crate) event_overflows: Counter,
    /// Events the QMP queues did not deliver one by one.
    pub(crate) events_dropped: Counter,
    /// Guest-triggered events the throttle replaced with a newer one.
    pub(crate) events_coalesced: Counter,
    /// The deepest any VM's QMP event queue has been.
    pub(crate) event_queue_high_water: HighWater,
    pub(crate) stats_rounds: Counter,
    pub(crate) stats_round_failures: Counter,
    pub(crate) stats_round_time: Histogram,
    job_wait: Vec<Histogram>,
    job_hold: Vec<Histogram>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            monitor_rtt: Histogram::default(),
            monitor_timeouts: Counter::default(),
            event_overflows: Counter::default(),
            events_dropped: Counter::default(),
            events_coalesced: Counter::default(),
            event_queue_high_water: HighWater::default(),
            stats_rounds: Counter::default(),
            stats_round_failures: Counter::default(),
            stats_round_time: Histogram::default(),
            job_wait: JOB_KINDS.iter().map(|_| Histogram::default()).collect(),
            job_hold: JOB_KINDS.iter().map(|_| Histogram::default()).collect(),
        }
    }
}

impl JobObserver for Health {
    fn granted(&self, kind: JobKind, waited: Duration) {
        if let Some(h) = self.job_wait.get(job_kind_index(kind)) {
            h.observe(waited);
        }
    }

    fn released(&self, kind: JobKind, held: Duration) {
        if let Some(h) = self.job_hold.get(job_kind_index(kind)) {
            h.observe(held);
        }
    }
}

impl Health {
    /// Records one monitor command: how long it took, and whether it ran
    /// past its deadline.
    pub(crate) fn monitor_command(&self, took: Duration, timed_out: bool) {
        self.monitor_rtt.observe(took);
        if timed_out {
            self.monitor_timeouts.inc();
        }
    }
}

/// The driver's health at one moment (see [`crate::Driver::health`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    pub domains: usize,
    pub active_domains: usize,
    pub monitor_rtt: HistogramSnapshot,
    pub monitor_timeouts: u64,
    /// Running VMs whose monitor missed its last deadline (a command of
    /// the driver's or a statistics round).
    pub unresponsive_monitors: usize,
    /// Events queued in all VMs' QMP queues now.
    pub event_queue_depth: u64,
    pub event_queue_high_water: u64,
    pub event_overflows: u64,
    pub events_dropped: u64,
    pub events_coalesced: u64,
    /// Per job kind (see [`JOB_KINDS`]): how long jobs waited for the
    /// lock, and how long they held it.
    pub job_wait: Vec<(&'static str, HistogramSnapshot)>,
    pub job_hold: Vec<(&'static str, HistogramSnapshot)>,
    /// How long the longest-held job now has been held.
    pub oldest_job: Option<Duration>,
    pub stats_rounds: u64,
    pub stats_round_failures: u64,
    pub stats_round_time: HistogramSnapshot,
    /// Running VMs whose statistics are stale now.
    pub stale_stats: usize,
}

impl Health {
    /// The recorded part of a snapshot; the caller fills in the per-VM
    /// figures it gathers from the registry.
    pub(crate) fn recorded(&self) -> HealthSnapshot {
        let per_kind = |v: &[Histogram]| {
            JOB_KINDS
                .iter()
                .zip(v)
                .map(|(k, h)| (*k, h.snapshot()))
                .collect()
        };
        HealthSnapshot {
            domains: 0,
            active_domains: 0,
            monitor_rtt: self.monitor_rtt.snapshot(),
            monitor_timeouts: self.monitor_timeouts.get(),
            unresponsive_monitors: 0,
            event_queue_depth: 0,
            event_queue_high_water: self.event_queue_high_water.get(),
            event_overflows: self.event_overflows.get(),
            events_dropped: self.events_dropped.get(),
            events_coalesced: self.events_coalesced.get(),
            job_wait: per_kind(&self.job_wait),
            job_hold: per_kind(&self.job_hold),
            oldest_job: None,
            stats_rounds: self.stats_rounds.get(),
            stats_round_failures: self.stats_round_failures.get(),
            stats_round_time: self.stats_round_time.snapshot(),
            stale_stats: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_kind_has_its_own_series() {
        let h = Health::default();
        h.granted(JobKind::Destroy, Duration::from_millis(1));
        h.released(JobKind::Async(AsyncKind::Save), Duration::from_secs(2));
        h.released(JobKind::Normal(NormalJob::Modify), Duration::from_secs(2));
        let s = h.recorded();
        let count = |v: &[(&str, HistogramSnapshot)], k: &str| {
            v.iter().find(|(l, _)| *l == k).map(|(_, s)| s.count)
        };
        assert_eq!(count(&s.job_wait, "destroy"), Some(1));
        assert_eq!(count(&s.job_hold, "async-save"), Some(1));
        assert_eq!(count(&s.job_hold, "modify"), Some(1));
        assert_eq!(count(&s.job_hold, "query"), Some(0));
        assert_eq!(s.job_wait.len(), JOB_KINDS.len());
    }
}
