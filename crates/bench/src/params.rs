//! The knobs of a run, recorded with its results.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Parameters that differ between smoke and full runs (or were set on the
/// command line). Field names are the JSON's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Params {
    /// VM counts of the rpc scenario.
    pub rpc_n: Vec<usize>,
    /// Seconds per rpc cell.
    pub cell_s: f64,
    /// Flood phase seconds.
    pub flood_s: f64,
    /// Flood phase seconds of the qemu-sim rows.
    pub sim_flood_s: f64,
    /// Flood rates, events/s.
    pub flood_rates: Vec<u64>,
    /// Seconds probed before and after a flood.
    pub pre_s: f64,
    pub post_s: f64,
    /// Quiet VMs beside the special one.
    pub quiet_vms: usize,
    /// Calls per second of a paced probe.
    pub probe_rate_per_s: f64,
    /// How long the in-flight call on a hung monitor is awaited.
    pub hung_cap_s: u64,
    /// How long probes run while the monitor hangs.
    pub hung_window_s: u64,
    /// Samples of event latency, idle and during a job.
    pub event_samples: usize,
    /// VM counts of the scale scenario.
    pub scale_n: Vec<usize>,
    /// The scale scenario's QEMUs run as this account (ferrovirtd's
    /// `user`); as the daemon's user when absent.
    #[serde(default)]
    pub scale_qemu_user: Option<String>,
    /// VMs of the stats scenario.
    #[serde(default)]
    pub stats_n: usize,
    /// Bulk statistics calls per phase of the stats scenario.
    #[serde(default)]
    pub stats_calls: usize,
    /// ferrovirtd's monitor deadline.
    pub ferrovirtd_monitor_timeout_s: u64,
    /// A flood stops when the daemon's RSS passes this.
    pub rss_limit_mib: u64,
    /// Volumes the storage scenario creates, lists and deletes (absent in
    /// results written before it existed).
    #[serde(default)]
    pub storage_volumes: usize,
    /// Files the storage scenario refreshes a pool with.
    #[serde(default)]
    pub storage_files: usize,
    /// MiB the transfer scenario uploads into a volume and downloads.
    #[serde(default)]
    pub transfer_mib: u64,
    /// Start/stop cycles of the nics scenario.
    #[serde(default)]
    pub nics_rounds: usize,
    /// Attach + detach round trips of the hotplug scenario.
    #[serde(default)]
    pub hotplug_rounds: usize,
    /// Live migrations of the migration scenario.
    #[serde(default)]
    pub migration_rounds: usize,
}

impl Params {
    pub(crate) fn cell(&self) -> Duration {
        Duration::from_secs_f64(self.cell_s)
    }

    pub(crate) fn hung_cap(&self) -> Duration {
        Duration::from_secs(self.hung_cap_s)
    }

    pub(crate) fn hung_window(&self) -> Duration {
        Duration::from_secs(self.hung_window_s)
    }

    /// A paced probe's period.
    pub(crate) fn probe_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.probe_rate_per_s)
    }
}
