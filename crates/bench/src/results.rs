//! What a run measured, typed: the JSON the bench writes and the report
//! renders. Every row names the daemon and the QEMU it ran; a row or case
//! that failed carries its error instead of figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::{ListenerCount, LoadFigures, ProbeResult};
use crate::daemon::{DaemonKind, Emu};
use crate::params::Params;
use crate::stats::{DaemonMemory, LatencySummary, ResourceWindow};

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    /// What was compared.
    pub bench: String,
    /// Version of this layout.
    pub format: u32,
    pub mode: Mode,
    /// The scenario asked for (`all` or one).
    pub scenario: String,
    /// The daemons asked for: `ferrovirtd`, `libvirtd` or `both`.
    pub daemons: String,
    /// The bench's command line.
    pub command: String,
    pub unix_time: u64,
    pub machine: Machine,
    /// The ferrovirtd build measured.
    pub git: Option<String>,
    pub loadavg_end: Vec<f64>,
    pub duration_s: f64,
    /// Seconds per scenario.
    pub scenario_s: BTreeMap<String, f64>,
    pub params: Params,
    pub scenarios: Scenarios,
}

/// A CI run (tiny N, short phases, ferrovirtd with qemu-sim) or a full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    Smoke,
    Full,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Full => "full",
        }
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub kernel: String,
    pub qemu: String,
    pub kvm: bool,
    pub libvirtd: String,
    pub loadavg_start: Vec<f64>,
}

/// The rows of each scenario that ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Scenarios {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<Vec<Row<RpcResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<Vec<Row<FloodResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hung: Option<Vec<Row<HungResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Row<EventsResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Vec<Row<ScaleResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Vec<Row<StorageResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<Vec<Row<NicsResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotplug: Option<Vec<Row<HotplugResult>>>,
    pub stats: Option<Vec<Row<StatsResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Vec<Row<TransferResult>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Vec<Row<MigrationResult>>>,
}

/// One daemon with one kind of QEMU, and what it gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row<T> {
    pub daemon: DaemonKind,
    pub qemu: Emu,
    #[serde(flatten)]
    pub outcome: Outcome<T>,
}

impl<T> Row<T> {
    /// The figures, unless the row failed.
    pub(crate) fn done(&self) -> Option<&T> {
        self.outcome.done()
    }
}

/// Figures, or why there are none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Outcome<T> {
    Failed { error: String },
    Done(T),
}

impl<T> Outcome<T> {
    pub(crate) fn done(&self) -> Option<&T> {
        match self {
            Outcome::Done(figures) => Some(figures),
            Outcome::Failed { .. } => None,
        }
    }
}

/// Starting a set of VMs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct StartFigures {
    pub vms: usize,
    /// Calls in flight.
    pub parallel: usize,
    pub total_s: f64,
    pub per_vm_ms_p50: f64,
    pub per_vm_ms_p99: f64,
}

// ------------------------------------------------------------------ 1. rpc

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RpcResult {
    /// Each step up in N.
    pub starts: Vec<RpcStart>,
    pub cells: Vec<RpcCell>,
    pub daemon_end: Option<DaemonMemory>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RpcStart {
    /// VMs running after this step.
    #[serde(rename = "n")]
    pub running: usize,
    pub start: StartFigures,
}

/// One call, one client count, N VMs: the closed-loop figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RpcCell {
    #[serde(flatten)]
    pub load: LoadFigures,
    pub n_vms: usize,
    pub daemon_after_start: Option<DaemonMemory>,
}

// ---------------------------------------------------------------- 2. flood

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FloodResult {
    pub cases: Vec<Outcome<FloodCase>>,
}

/// The event a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum FloodEvent {
    /// Guest RTC changes (throttled by ferrovirtd before clients).
    RtcChange,
    /// Alternating STOP and RESUME: lifecycle events every daemon delivers.
    StopResume,
}

impl FloodEvent {
    /// The name the injectors take.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FloodEvent::RtcChange => "RTC_CHANGE",
            FloodEvent::StopResume => "STOP_RESUME",
        }
    }
}

/// Whether a client listening to every event is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ListenerMode {
    Live,
    None,
}

/// One flood: the daemon before, during and after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FloodCase {
    pub event: FloodEvent,
    pub target_ev_s: u64,
    pub flood_target_s: f64,
    pub listener_mode: ListenerMode,
    pub flood_s: f64,
    pub achieved_ev_s: f64,
    /// The flood was stopped early: the daemon's RSS passed the limit.
    pub rss_guard_tripped: bool,
    pub daemon_pre: Option<ResourceWindow>,
    pub daemon_flood: Option<ResourceWindow>,
    pub daemon_post: Option<ResourceWindow>,
    /// `(seconds, RSS MiB)`.
    pub rss_series: Vec<(f64, f64)>,
    pub others_pre: ProbeResult,
    pub others_flood: ProbeResult,
    pub others_post: ProbeResult,
    pub flooded_pre: ProbeResult,
    pub flooded_flood: ProbeResult,
    pub flooded_post: ProbeResult,
    pub listener: Option<ListenerCount>,
    pub listener_at_flood_end: Option<ListenerCount>,
    /// A fresh connection's GET_INFO after the post phase; `None`: no
    /// answer within 10 s.
    pub responsive_after_post_s: Option<f64>,
}

impl FloodCase {
    /// Highest RSS during and after the flood.
    pub(crate) fn rss_peak(&self) -> Option<f64> {
        let peaks = [self.daemon_flood, self.daemon_post];
        peaks
            .iter()
            .flatten()
            .map(|window| window.rss_mib_peak)
            .reduce(f64::max)
    }
}

// ----------------------------------------------------------------- 3. hung

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HungResult {
    /// How the monitor was made to hang.
    pub how: String,
    pub others_base: ProbeResult,
    pub others_stuck: ProbeResult,
    pub stuck_vm_info: ProbeResult,
    pub others_after: ProbeResult,
    /// The call put in flight on the hung monitor.
    pub inflight: CallOutcome,
    pub stuck_phase_s: f64,
    pub destroy: CallOutcome,
    pub daemon_window: Option<ResourceWindow>,
}

/// When a call returned (`None`: not within the bench's cap) and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CallOutcome {
    pub after_s: Option<f64>,
    pub result: String,
}

// --------------------------------------------------------------- 4. events

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventsResult {
    pub how: String,
    pub idle: EventLatency,
    pub during_job: EventLatency,
    /// What the job held during the second set of samples was.
    pub job: String,
    pub job_still_in_flight_after_samples: bool,
}

/// QEMU event to client callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventLatency {
    #[serde(flatten)]
    pub latency: LatencySummary,
    pub from_command_sent: LatencySummary,
    pub missed_callbacks: usize,
}

// ---------------------------------------------------------------- 5. scale

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScaleResult {
    pub rows: Vec<ScaleStep>,
}

/// One N of the scale scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScaleStep {
    /// VMs started.
    #[serde(rename = "n")]
    pub vms: usize,
    pub requested_n: usize,
    /// Why `n` is below `requested_n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_by: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome<ScaleFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScaleFigures {
    pub start: StartFigures,
    pub daemon_idle: Option<DaemonMemory>,
    pub daemon_after_start: Option<DaemonMemory>,
    pub daemon_fds: usize,
    pub sim_pss_kib_avg: f64,
    pub restart: Restart,
    pub daemon_after_restart: Option<DaemonMemory>,
    /// The statistics poller with every VM running (absent in runs made
    /// before the poller existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poller: Option<PollerCost>,
}

/// What the statistics poller costs at scale: the daemon over two poller
/// intervals with N VMs running, and one domstats over all of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PollerCost {
    pub interval_s: f64,
    pub window: Option<ResourceWindow>,
    /// One CONNECT_GET_ALL_DOMAIN_STATS (all groups) over every VM.
    pub domstats: CallOutcome,
    pub domstats_records: usize,
}

// ---------------------------------------------------------------- 6. stats

/// Scenario 6: bulk statistics over N VMs, idle and with one VM's monitor
/// hung while a call holds its job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatsResult {
    pub vms: usize,
    /// CONNECT_GET_ALL_DOMAIN_STATS (all groups) with every VM idle.
    pub idle: LatencySummary,
    pub idle_records: usize,
    /// How the monitor was made to hang.
    pub how: String,
    /// Each call while the monitor hangs and DOMAIN_SUSPEND waits on it.
    pub hung: Vec<CallOutcome>,
}

/// SIGKILL and restart of the daemon with N VMs running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Restart {
    pub listening_s: f64,
    /// Until every VM is reported running; `None`: not within 300 s.
    pub all_running_s: Option<f64>,
    pub running_seen: usize,
    pub get_state_running: usize,
}

// ---------------------------------------------------------------- storage

/// Calls made one after another: how long all took, and each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TimedCalls {
    pub calls: usize,
    pub total_s: f64,
    pub latency: LatencySummary,
}

/// The storage scenario: many small volumes, then many files to refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StorageResult {
    pub volumes: usize,
    pub create: TimedCalls,
    /// List-all-volumes with `volumes` volumes.
    pub list: LatencySummary,
    pub delete: TimedCalls,
    /// Files dropped into the pool's directory.
    pub files: usize,
    /// Pool refresh with `files` files.
    pub refresh: LatencySummary,
    /// List-all-volumes after that refresh.
    pub list_files: LatencySummary,
}

// ---------------------------------------------------------------- transfer

/// One `virsh vol-upload` or `vol-download`, and the daemon meanwhile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TransferPhase {
    pub seconds: f64,
    pub mib_per_s: f64,
    /// The daemon's CPU time (user + system) during the transfer.
    pub cpu_s: f64,
    pub cpu_s_per_gib: f64,
    pub rss_mib_start: f64,
    pub rss_mib_peak: f64,
}

/// The transfer scenario: one volume up, then down, through the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TransferResult {
    pub size_mib: u64,
    pub upload: TransferPhase,
    pub download: TransferPhase,
}

// ---------------------------------------------------------------- nics

/// The guest networking scenario (ferrovirtd alone, in a namespace).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NicsResult {
    /// Start/stop cycles of each kind.
    pub rounds: usize,
    /// A network with DHCP: bridge, dnsmasq, rules.
    pub network_start: LatencySummary,
    pub network_stop: LatencySummary,
    /// A diskless guest without a NIC, and with one on the network.
    pub guest_start_plain: LatencySummary,
    pub guest_destroy_plain: LatencySummary,
    pub guest_start_nic: LatencySummary,
    pub guest_destroy_nic: LatencySummary,
}

// ---------------------------------------------------------------- hotplug

/// Disk hot-plug on a booted real guest: `attach-device --live` of a
/// virtio disk, then `detach-device --live` (which waits for the guest to
/// release it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HotplugResult {
    pub rounds: usize,
    pub attach: LatencySummary,
    pub detach: LatencySummary,
    pub round_trip: LatencySummary,
    /// Detaches that returned with the removal still pending (the guest
    /// had not released the disk within the daemon's wait).
    pub pending: usize,
}

// ---------------------------------------------------------------- migration

/// Live migration between two daemons of one kind, in a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MigrationResult {
    /// Migrations, alternating direction.
    pub rounds: usize,
    /// `virsh migrate --live`, end to end.
    pub total: LatencySummary,
    /// The guest's downtime QEMU measured.
    pub downtime: LatencySummary,
    /// A migration under an event flood (absent in results written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<Outcome<MigrationFlood>>,
    /// The tiny test guest, idle and rewriting memory (absent in results
    /// written before they existed).
    #[serde(default)]
    pub guests: Vec<MigrationGuest>,
}

/// Migrations of one guest, alternating direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MigrationGuest {
    /// What the guest does.
    pub guest: String,
    /// Migrations that completed.
    pub rounds: usize,
    pub total: LatencySummary,
    pub downtime: LatencySummary,
    /// Why the rounds stopped short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A qemu-sim VM migrating while it floods the source daemon with events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MigrationFlood {
    /// RTC_CHANGE events per second asked of the migrating VM.
    pub target_ev_s: u64,
    /// What it sent while it migrated.
    pub achieved_ev_s: f64,
    /// How long qemu-sim's migration lasts (its `-sim-job-ms`).
    pub sim_job_s: f64,
    /// `virsh migrate --live` under the flood, end to end.
    pub migrate_s: f64,
    /// GET_INFO on the migrating VM and on the quiet ones, before.
    pub idle_migrating: ProbeResult,
    pub idle_others: ProbeResult,
    /// The same during the flooded migration.
    pub during_migrating: ProbeResult,
    pub during_others: ProbeResult,
    /// `destroy` of a flooding VM on a migration's source, part-way.
    pub destroy_ms: f64,
    /// Until the destination no longer ran the domain (`None`: not
    /// within 30 s).
    pub destination_cleared_s: Option<f64>,
}
