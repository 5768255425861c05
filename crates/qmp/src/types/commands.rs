//! Typed QMP commands.
//!
//! A command is a serialisable struct of its arguments plus a [`Command`]
//! impl naming it and its response type. A command whose arguments serialise
//! to `null` (unit structs) or `{}` is sent without `"arguments"`, as QEMU
//! expects for argument-less commands.
//!
//! `blockdev-add` takes the node options QEMU's schema defines per driver;
//! [`BlockdevOptions`] types the ones a manager needs (a `file` node and a
//! format node over it) and [`BlockdevAdd`] still takes any map. The
//! parameters of `migrate-set-parameters` stay a JSON map: that schema is
//! large and version-dependent.

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use super::stats::*;
use super::{JobStatus, MigrationStatus, RunState, lenient, string_enum};

/// A QMP command.
pub trait Command: Serialize {
    /// QEMU's name of the command.
    const NAME: &'static str;
    /// What a successful reply deserialises into.
    type Response: DeserializeOwned;
}

/// Response of commands that return `{}`. Accepts any value, since nobody
/// should fail a `stop` because QEMU returned something unexpected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty;

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Empty)
    }
}

macro_rules! no_args {
    ($(#[$meta:meta])* $ty:ident = $name:literal => $resp:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            type Response = $resp;
        }
    };
}

macro_rules! command {
    ($ty:ident = $name:literal => $resp:ty) => {
        impl Command for $ty {
            const NAME: &'static str = $name;
            type Response = $resp;
        }
    };
}

/// `qmp_capabilities`: leaves capabilities-negotiation mode. Sent by the
/// client during connect; exposed for completeness.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QmpCapabilities {
    /// Capabilities to enable (e.g. `"oob"`); none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable: Option<Vec<String>>,
}
command!(QmpCapabilities = "qmp_capabilities" => Empty);

no_args!(
    /// `query-status`: the VM's run state.
    QueryStatus = "query-status" => StatusInfo
);

/// Reply of `query-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// True if the guest CPUs run.
    pub running: bool,
    /// The run state.
    pub status: RunState,
    /// Deprecated single-step flag (absent in newer QEMU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singlestep: Option<bool>,
}

no_args!(
    /// `stop`: pause the VM.
    Stop = "stop" => Empty
);
no_args!(
    /// `cont`: resume the VM.
    Cont = "cont" => Empty
);
no_args!(
    /// `system_powerdown`: press the ACPI power button.
    SystemPowerdown = "system_powerdown" => Empty
);
no_args!(
    /// `system_reset`: reset the VM.
    SystemReset = "system_reset" => Empty
);
no_args!(
    /// `quit`: QEMU exits (after the reply and a SHUTDOWN event).
    Quit = "quit" => Empty
);
no_args!(
    /// `query-version`.
    QueryVersion = "query-version" => VersionInfo
);

/// QEMU's version triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionTriple {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Micro.
    pub micro: u64,
}

/// Reply of `query-version`; also the version part of the greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Upstream version.
    pub qemu: VersionTriple,
    /// Distribution package string (may be empty).
    #[serde(default)]
    pub package: String,
}

no_args!(
    /// `query-name`: the `-name` of the VM.
    QueryName = "query-name" => NameInfo
);

/// Reply of `query-name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInfo {
    /// The name, absent if none was given.
    #[serde(default)]
    pub name: Option<String>,
}

no_args!(
    /// `query-jobs`: all jobs (block and others).
    QueryJobs = "query-jobs" => Vec<JobInfo>
);

/// One entry of `query-jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Job type.
    #[serde(rename = "type", default)]
    pub job_type: Option<String>,
    /// Status.
    pub status: JobStatus,
    /// Progress so far.
    #[serde(rename = "current-progress", default)]
    pub current_progress: Option<u64>,
    /// Estimated total progress.
    #[serde(rename = "total-progress", default)]
    pub total_progress: Option<u64>,
    /// Error text if the job failed.
    #[serde(default)]
    pub error: Option<String>,
}

no_args!(
    /// `query-block-jobs`: the block jobs.
    QueryBlockJobs = "query-block-jobs" => Vec<BlockJobInfo>
);

/// One entry of `query-block-jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockJobInfo {
    /// Job type.
    #[serde(rename = "type", default)]
    pub job_type: Option<String>,
    /// Job id.
    pub device: String,
    /// Total work.
    #[serde(default)]
    pub len: Option<u64>,
    /// Work done.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Busy doing I/O.
    #[serde(default)]
    pub busy: Option<bool>,
    /// Paused.
    #[serde(default)]
    pub paused: Option<bool>,
    /// Rate limit in bytes/s.
    #[serde(default)]
    pub speed: Option<u64>,
    /// `ok`, `failed`, `nospace`.
    #[serde(rename = "io-status", default)]
    pub io_status: Option<String>,
    /// Ready to complete.
    #[serde(default)]
    pub ready: Option<bool>,
    /// Job status.
    #[serde(default)]
    pub status: Option<JobStatus>,
    /// Finalises automatically.
    #[serde(rename = "auto-finalize", default)]
    pub auto_finalize: Option<bool>,
    /// Dismisses automatically.
    #[serde(rename = "auto-dismiss", default)]
    pub auto_dismiss: Option<bool>,
    /// Error text.
    #[serde(default)]
    pub error: Option<String>,
}

no_args!(
    /// `query-block`: the block devices and the node each one reads.
    QueryBlock = "query-block" => Vec<BlockInfo>
);

/// One entry of `query-block` (the members a manager uses; QEMU reports
/// many more, which are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Legacy drive name; empty for `-blockdev` devices.
    #[serde(default)]
    pub device: String,
    /// The device's id or QOM path.
    #[serde(default)]
    pub qdev: Option<String>,
    /// The medium, absent for an empty drive.
    #[serde(default)]
    pub inserted: Option<BlockDeviceInfo>,
}

/// The medium of a block device (`BlockDeviceInfo`, in part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceInfo {
    /// The top node the device reads from.
    #[serde(rename = "node-name", default)]
    pub node_name: Option<String>,
    /// The image file name.
    #[serde(default)]
    pub file: Option<String>,
    /// The top node's driver (`qcow2`, `raw`, ...).
    #[serde(default)]
    pub drv: Option<String>,
}

/// `blockdev-add`: the arguments are the blockdev options as QEMU spells
/// them (`{"driver": "qcow2", "node-name": ..., "file": ...}`); build
/// them from [`BlockdevOptions`] where it covers the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct BlockdevAdd(pub Map<String, Value>);
command!(BlockdevAdd = "blockdev-add" => Empty);

/// Typed options of the block nodes a manager adds, tagged by `driver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum BlockdevOptions {
    /// A host file (protocol node).
    File(BlockdevFile),
    /// A raw image over a protocol node.
    Raw(BlockdevFormat),
    /// A qcow2 image over a protocol node.
    Qcow2(BlockdevFormat),
    /// An export of an NBD server (protocol node).
    Nbd(BlockdevNbd),
}

/// Options of a `file` node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevFile {
    /// The node's name.
    pub node_name: String,
    /// The host file.
    pub filename: String,
    /// Open read-only until a writer needs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_read_only: Option<bool>,
    /// `ignore` or `unmap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard: Option<String>,
}

/// Options of a format node (`raw`, `qcow2`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevFormat {
    /// The node's name.
    pub node_name: String,
    /// The protocol node it reads.
    pub file: String,
}

impl From<BlockdevOptions> for BlockdevAdd {
    fn from(o: BlockdevOptions) -> Self {
        // Plain structs of strings and booleans always serialise to an
        // object; anything else would be a bug here, sent as no options
        // (which QEMU refuses) rather than a panic.
        match serde_json::to_value(o) {
            Ok(Value::Object(m)) => BlockdevAdd(m),
            _ => BlockdevAdd::default(),
        }
    }
}

/// `blockdev-del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockdevDel {
    /// Node to delete.
    #[serde(rename = "node-name")]
    pub node_name: String,
}
command!(BlockdevDel = "blockdev-del" => Empty);

/// Sync mode of mirror/backup (kept as text: QEMU's set grows).
pub type SyncMode = String;

/// `blockdev-mirror`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevMirror {
    /// Job id (defaults to the device name in QEMU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Source node or device.
    pub device: String,
    /// Target node.
    pub target: String,
    /// Node to replace on completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// `top`, `full`, `none`, ...
    pub sync: SyncMode,
    /// Rate limit in bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<u64>,
    /// Dirty bitmap granularity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<u32>,
    /// Buffer size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buf_size: Option<u64>,
    /// `report`, `ignore`, `enospc`, `stop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_source_error: Option<String>,
    /// Same, for the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_target_error: Option<String>,
    /// Name of the implicit filter node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_node_name: Option<String>,
    /// `background` or `write-blocking`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_mode: Option<String>,
    /// Finalise automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_finalize: Option<bool>,
    /// Dismiss automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_dismiss: Option<bool>,
}
command!(BlockdevMirror = "blockdev-mirror" => Empty);

/// `block-commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockCommit {
    /// Job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Device or node whose chain is committed.
    pub device: String,
    /// Base node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_node: Option<String>,
    /// Base image, by file name (the image the chain is committed into).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Top node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_node: Option<String>,
    /// Top image, by file name (the active layer when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<String>,
    /// Backing file string to write into the overlay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    /// Rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<u64>,
    /// Error policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// Name of the implicit filter node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_node_name: Option<String>,
    /// Finalise automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_finalize: Option<bool>,
    /// Dismiss automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_dismiss: Option<bool>,
}
command!(BlockCommit = "block-commit" => Empty);

/// `block-stream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockStream {
    /// Job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Device or node to stream into.
    pub device: String,
    /// Base image, by file name (streaming stops above it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Base node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_node: Option<String>,
    /// Bottom node (QEMU >= 6.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottom: Option<String>,
    /// Backing file string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    /// Rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<u64>,
    /// Error policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// Name of the implicit filter node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_node_name: Option<String>,
    /// Finalise automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_finalize: Option<bool>,
    /// Dismiss automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_dismiss: Option<bool>,
}
command!(BlockStream = "block-stream" => Empty);

/// `blockdev-snapshot`: installs `overlay` on top of `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockdevSnapshot {
    /// Existing node.
    pub node: String,
    /// New overlay node (already added, without backing).
    pub overlay: String,
}
command!(BlockdevSnapshot = "blockdev-snapshot" => Empty);

macro_rules! job_id_command {
    ($(#[$meta:meta])* $ty:ident = $name:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub struct $ty {
            /// The job id.
            pub id: String,
        }
        command!($ty = $name => Empty);
    };
}
job_id_command!(
    /// `job-complete`: pivot a ready job.
    JobComplete = "job-complete"
);
job_id_command!(
    /// `job-cancel`.
    JobCancel = "job-cancel"
);
job_id_command!(
    /// `job-dismiss`: remove a concluded job.
    JobDismiss = "job-dismiss"
);
job_id_command!(
    /// `job-finalize`: finalise a pending job.
    JobFinalize = "job-finalize"
);

/// `block-job-set-speed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockJobSetSpeed {
    /// Job id.
    pub device: String,
    /// New rate limit in bytes/s (0 = unlimited).
    pub speed: u64,
}
command!(BlockJobSetSpeed = "block-job-set-speed" => Empty);

/// `block-job-complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockJobComplete {
    /// Job id.
    pub device: String,
}
command!(BlockJobComplete = "block-job-complete" => Empty);

/// `block-job-cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockJobCancel {
    /// Job id.
    pub device: String,
    /// Cancel even a ready mirror without pivoting / cancel a paused job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}
command!(BlockJobCancel = "block-job-cancel" => Empty);

/// `migrate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Migrate {
    /// Destination (`tcp:`, `unix:`, `fd:NAME`, `exec:`).
    pub uri: String,
    /// Deprecated block migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blk: Option<bool>,
    /// Deprecated incremental block migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inc: Option<bool>,
    /// Resume a paused postcopy migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<bool>,
}
command!(Migrate = "migrate" => Empty);

no_args!(
    /// `migrate_cancel`.
    MigrateCancel = "migrate_cancel" => Empty
);
no_args!(
    /// `migrate-start-postcopy`: switch a migration with the
    /// `postcopy-ram` capability to post-copy.
    MigrateStartPostcopy = "migrate-start-postcopy" => Empty
);
no_args!(
    /// `query-migrate`.
    QueryMigrate = "query-migrate" => MigrationInfo
);

/// RAM statistics of a migration (subset; the rest stays in `extra`).
/// A counter of the wrong type reads as absent (see [`lenient`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationRamStats {
    /// Bytes transferred.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub transferred: Option<u64>,
    /// Bytes remaining.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub remaining: Option<u64>,
    /// Total RAM.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub total: Option<u64>,
    /// Pages found to hold one repeated byte.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub duplicate: Option<u64>,
    /// Pages sent whole.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub normal: Option<u64>,
    /// Bytes of the pages sent whole.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub normal_bytes: Option<u64>,
    /// Passes over guest memory.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub dirty_sync_count: Option<u64>,
    /// Guest page size in bytes.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub page_size: Option<u64>,
    /// Throughput in Mbit/s.
    #[serde(default, deserialize_with = "lenient::f64")]
    pub mbps: Option<f64>,
    /// Dirty page rate.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub dirty_pages_rate: Option<u64>,
    /// Everything else QEMU reported.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Reply of `query-migrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationInfo {
    /// Absent when no migration ever ran.
    #[serde(default)]
    pub status: Option<MigrationStatus>,
    /// RAM statistics.
    #[serde(default)]
    pub ram: Option<MigrationRamStats>,
    /// Milliseconds since the start.
    #[serde(rename = "total-time", default)]
    pub total_time: Option<u64>,
    /// Expected downtime in ms.
    #[serde(rename = "expected-downtime", default)]
    pub expected_downtime: Option<u64>,
    /// Actual downtime in ms.
    #[serde(default)]
    pub downtime: Option<u64>,
    /// Setup time in ms.
    #[serde(rename = "setup-time", default)]
    pub setup_time: Option<u64>,
    /// Error text when failed.
    #[serde(rename = "error-desc", default)]
    pub error_desc: Option<String>,
    /// Everything else QEMU reported.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One capability for `migrate-set-capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCapabilityStatus {
    /// Capability name (`postcopy-ram`, `events`, ...).
    pub capability: String,
    /// On or off.
    pub state: bool,
}

/// `migrate-set-capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrateSetCapabilities {
    /// The capabilities to set.
    pub capabilities: Vec<MigrationCapabilityStatus>,
}
command!(MigrateSetCapabilities = "migrate-set-capabilities" => Empty);

/// `migrate-set-parameters`: parameters as QEMU spells them
/// (`{"max-bandwidth": ..., "downtime-limit": ...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct MigrateSetParameters(pub Map<String, Value>);
command!(MigrateSetParameters = "migrate-set-parameters" => Empty);

no_args!(
    /// `query-migrate-parameters`.
    QueryMigrateParameters = "query-migrate-parameters" => MigrationParameters
);

/// Reply of `query-migrate-parameters` (subset; the rest in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationParameters {
    /// Bytes per second.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub max_bandwidth: Option<u64>,
    /// Milliseconds.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub downtime_limit: Option<u64>,
    /// Everything else QEMU reported.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `migrate-incoming` (QEMU started with `-incoming defer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateIncoming {
    /// Where to listen / read from.
    pub uri: String,
}
command!(MigrateIncoming = "migrate-incoming" => Empty);

/// `getfd`: receive a file descriptor under a name. Must be sent with
/// [`crate::Monitor::execute_with_fd`], which attaches the descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Getfd {
    /// Name to register the fd under.
    pub fdname: String,
}
command!(Getfd = "getfd" => Empty);

/// `closefd`: close a descriptor received by `getfd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closefd {
    /// The name given to `getfd`.
    pub fdname: String,
}
command!(Closefd = "closefd" => Empty);

/// `add-fd`: add the attached descriptor to a descriptor set; QEMU then
/// opens `/dev/fdset/ID` (wherever it takes a file name) as a duplicate
/// of it. Must be sent with [`crate::Monitor::execute_with_fd`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AddFd {
    /// The set to add to; a new one when absent.
    #[serde(rename = "fdset-id", skip_serializing_if = "Option::is_none")]
    pub fdset_id: Option<u64>,
    /// Free text shown by `query-fdsets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

/// What `add-fd` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFdInfo {
    /// The set the descriptor is in.
    #[serde(rename = "fdset-id")]
    pub fdset_id: u64,
    /// Its number inside QEMU.
    pub fd: i64,
}
command!(AddFd = "add-fd" => AddFdInfo);

/// `remove-fd`: remove a descriptor set (or one descriptor of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveFd {
    /// The set.
    #[serde(rename = "fdset-id")]
    pub fdset_id: u64,
    /// One descriptor of the set; the whole set when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
}
command!(RemoveFd = "remove-fd" => Empty);

impl MigrateSetCapabilities {
    /// Turns on the `events` capability only: QEMU sends no MIGRATION
    /// events without it.
    pub fn events() -> Self {
        Self {
            capabilities: vec![MigrationCapabilityStatus {
                capability: "events".into(),
                state: true,
            }],
        }
    }
}

no_args!(
    /// `query-chardev`: the character devices and their host side.
    QueryChardev = "query-chardev" => Vec<ChardevInfo>
);

/// One entry of `query-chardev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChardevInfo {
    /// The chardev id.
    pub label: String,
    /// Its host side, e.g. `pty:/dev/pts/3` or `unix:/run/x.sock,server=on`.
    #[serde(default)]
    pub filename: String,
    /// A front end (device) has it open.
    #[serde(rename = "frontend-open", default)]
    pub frontend_open: bool,
}

no_args!(
    /// `query-machines`: the machine types this binary emulates.
    QueryMachines = "query-machines" => Vec<MachineInfo>
);

/// One entry of `query-machines`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MachineInfo {
    /// Versioned name (`pc-q35-7.2`).
    pub name: String,
    /// Unversioned alias (`q35`).
    #[serde(default)]
    pub alias: Option<String>,
    /// The machine used without `-machine`.
    #[serde(default)]
    pub is_default: bool,
    /// Most vCPUs the machine takes.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub cpu_max: Option<u64>,
    /// vCPUs can be hot-plugged.
    #[serde(default)]
    pub hotpluggable_cpus: bool,
    /// Scheduled for removal.
    #[serde(default)]
    pub deprecated: bool,
    /// QOM type of the CPU used without `-cpu`.
    #[serde(default)]
    pub default_cpu_type: Option<String>,
    /// Id of the default RAM backend.
    #[serde(default)]
    pub default_ram_id: Option<String>,
}

no_args!(
    /// `query-cpu-definitions`: the named CPU models and, for each, what
    /// the current accelerator lacks to run it.
    QueryCpuDefinitions = "query-cpu-definitions" => Vec<CpuDefinitionInfo>
);

/// One entry of `query-cpu-definitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuDefinitionInfo {
    /// Model name (`Skylake-Client`).
    pub name: String,
    /// Its QOM type (`Skylake-Client-x86_64-cpu`).
    #[serde(default)]
    pub typename: String,
    /// Features the accelerator cannot provide; empty: the model runs
    /// here. Absent when QEMU cannot tell.
    #[serde(default)]
    pub unavailable_features: Option<Vec<String>>,
    /// The model it is an alias of, for versionless names.
    #[serde(default)]
    pub alias_of: Option<String>,
    /// The same on every QEMU version and accelerator.
    #[serde(rename = "static", default)]
    pub is_static: bool,
    /// Safe to migrate.
    #[serde(default)]
    pub migration_safe: Option<bool>,
    /// Scheduled for removal.
    #[serde(default)]
    pub deprecated: bool,
}

string_enum! {
    /// How far `query-cpu-model-expansion` expands (`CpuModelExpansionType`).
    pub enum CpuModelExpansionType {
        /// Into a static base model plus properties.
        Static = "static",
        /// Into the model with every property.
        Full = "full",
    }
}

/// A CPU model and properties changed from it (`CpuModelInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuModelInfo {
    /// Model name (`host`, `base`, `Skylake-Client`).
    pub name: String,
    /// Properties (mostly boolean features) and their values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub props: Option<Map<String, Value>>,
}

/// `query-cpu-model-expansion`: what a model is on this host and
/// accelerator (`host` only makes sense under KVM).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryCpuModelExpansion {
    /// Static or full.
    #[serde(rename = "type")]
    pub expansion: CpuModelExpansionType,
    /// The model to expand.
    pub model: CpuModelInfo,
}
command!(QueryCpuModelExpansion = "query-cpu-model-expansion" => CpuModelExpansionInfo);

/// Reply of `query-cpu-model-expansion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuModelExpansionInfo {
    /// The expanded model.
    pub model: CpuModelInfo,
}

no_args!(
    /// `query-kvm`: whether KVM is built in and in use.
    QueryKvm = "query-kvm" => KvmInfo
);

/// Reply of `query-kvm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmInfo {
    /// This QEMU runs guests under KVM.
    #[serde(default)]
    pub enabled: bool,
    /// KVM is built in and the host offers it.
    #[serde(default)]
    pub present: bool,
}

/// `qom-list-types`: the QOM types, optionally those implementing a type
/// (`device` lists every device model the binary has).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QomListTypes {
    /// Only types implementing this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implements: Option<String>,
    /// Include abstract types (QEMU's default: no).
    #[serde(rename = "abstract", skip_serializing_if = "Option::is_none")]
    pub include_abstract: Option<bool>,
}
command!(QomListTypes = "qom-list-types" => Vec<ObjectTypeInfo>);

/// One entry of `qom-list-types`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectTypeInfo {
    /// Type name (`virtio-rng-pci`).
    pub name: String,
    /// Cannot be instantiated.
    #[serde(rename = "abstract", default)]
    pub is_abstract: bool,
    /// Parent type.
    #[serde(default)]
    pub parent: Option<String>,
}

/// `device_del`: request unplug; completion is the `DEVICE_DELETED` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceDel {
    /// Device id or QOM path.
    pub id: String,
}
command!(DeviceDel = "device_del" => Empty);

/// `device_add`: plug a device; its properties as `-device` takes them
/// (`driver`, `id`, `bus`, ...), typed as QEMU types them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct DeviceAdd(pub Map<String, Value>);
command!(DeviceAdd = "device_add" => Empty);

/// `blockdev-open-tray`: opens the tray of removable-media device `id`;
/// `force` opens it even if the guest locked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockdevOpenTray {
    pub id: String,
    pub force: bool,
}
command!(BlockdevOpenTray = "blockdev-open-tray" => Empty);

/// `blockdev-close-tray`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockdevCloseTray {
    pub id: String,
}
command!(BlockdevCloseTray = "blockdev-close-tray" => Empty);

/// `blockdev-remove-medium`: takes the medium out of device `id` (its
/// tray must be open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockdevRemoveMedium {
    pub id: String,
}
command!(BlockdevRemoveMedium = "blockdev-remove-medium" => Empty);

/// `blockdev-insert-medium`: puts node `node_name` into device `id` (its
/// tray open and empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockdevInsertMedium {
    pub id: String,
    #[serde(rename = "node-name")]
    pub node_name: String,
}
command!(BlockdevInsertMedium = "blockdev-insert-medium" => Empty);

/// `balloon`: the guest's target memory size, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balloon {
    pub value: u64,
}
command!(Balloon = "balloon" => Empty);

/// `block_resize`: grows (or shrinks) the image under node `node_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockResize {
    #[serde(rename = "node-name")]
    pub node_name: String,
    /// New size in bytes.
    pub size: u64,
}
command!(BlockResize = "block_resize" => Empty);

/// `block-set-write-threshold`: one `BLOCK_WRITE_THRESHOLD` event when a
/// write goes past `write_threshold` bytes of node `node_name` (0 off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockSetWriteThreshold {
    #[serde(rename = "node-name")]
    pub node_name: String,
    #[serde(rename = "write-threshold")]
    pub write_threshold: u64,
}
command!(BlockSetWriteThreshold = "block-set-write-threshold" => Empty);

/// `netdev_add`: a host network backend (`type`, `id`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct NetdevAdd(pub Map<String, Value>);
command!(NetdevAdd = "netdev_add" => Empty);

/// `object-add`: a backend object (`qom-type`, `id`, its properties).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ObjectAdd(pub Map<String, Value>);
command!(ObjectAdd = "object-add" => Empty);

/// `object-del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectDel {
    pub id: String,
}
command!(ObjectDel = "object-del" => Empty);

/// `watchdog-set-action`: what an expired watchdog does (`reset`,
/// `shutdown`, `poweroff`, `pause`, `debug`, `none`, `inject-nmi`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchdogSetAction {
    pub action: String,
}
command!(WatchdogSetAction = "watchdog-set-action" => Empty);

/// `netdev_del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetdevDel {
    pub id: String,
}
command!(NetdevDel = "netdev_del" => Empty);

/// `qom-list`: the properties (children included) of the object at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QomList {
    pub path: String,
}
command!(QomList = "qom-list" => Vec<ObjectPropertyInfo>);

/// One entry of `qom-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPropertyInfo {
    pub name: String,
    /// `child<...>` for a child object, `link<...>`, or a value type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `human-monitor-command`: run an HMP command, returning its text output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HumanMonitorCommand {
    /// The HMP command line.
    #[serde(rename = "command-line")]
    pub command_line: String,
    /// CPU to use as the current CPU.
    #[serde(rename = "cpu-index", skip_serializing_if = "Option::is_none")]
    pub cpu_index: Option<i64>,
}
command!(HumanMonitorCommand = "human-monitor-command" => String);

/// `screendump`: writes the display of a graphic console to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Screendump {
    /// Where QEMU writes the image.
    pub filename: String,
    /// The video device (its id); the first console when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The head of that device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<u32>,
    /// `ppm` (the default) or `png` (QEMU 7.1 and later, built with PNG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}
command!(Screendump = "screendump" => Empty);

/// `add_client`: hands QEMU a connected socket (received with `getfd`
/// under `fdname`) as a new client of a display server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddClient {
    /// `vnc`, `spice`, `@dbus-display` or `qmp`.
    pub protocol: String,
    /// The name given to `getfd`.
    pub fdname: String,
    /// Let the client in without authenticating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipauth: Option<bool>,
}
command!(AddClient = "add_client" => Empty);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argument_shapes() {
        assert_eq!(serde_json::to_value(Stop).unwrap(), Value::Null);
        assert_eq!(
            serde_json::to_value(BlockJobCancel {
                device: "j".into(),
                force: None
            })
            .unwrap(),
            json!({"device": "j"})
        );
        let m = BlockdevMirror {
            job_id: Some("j".into()),
            device: "d".into(),
            target: "t".into(),
            sync: "full".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"job-id": "j", "device": "d", "target": "t", "sync": "full"})
        );
        let mut map = Map::new();
        map.insert("driver".into(), json!("null-co"));
        assert_eq!(
            serde_json::to_value(BlockdevAdd(map)).unwrap(),
            json!({"driver": "null-co"})
        );
        assert_eq!(
            serde_json::to_value(HumanMonitorCommand {
                command_line: "info".into(),
                cpu_index: None
            })
            .unwrap(),
            json!({"command-line": "info"})
        );
    }

    #[test]
    fn response_shapes() {
        let s: StatusInfo = serde_json::from_value(
            json!({"running": false, "singlestep": false, "status": "prelaunch"}),
        )
        .unwrap();
        assert_eq!(s.status, RunState::Prelaunch);
        let s: StatusInfo =
            serde_json::from_value(json!({"running": true, "status": "brand-new-state"})).unwrap();
        assert_eq!(s.status, RunState::Other("brand-new-state".into()));
        let _: Empty = serde_json::from_value(json!({"anything": [1]})).unwrap();
        let m: MigrationInfo = serde_json::from_value(json!({})).unwrap();
        assert_eq!(m.status, None);
        let m: MigrationInfo = serde_json::from_value(
            json!({"status": "active", "ram": {"transferred": 5, "skipped": 3}, "x": 1}),
        )
        .unwrap();
        assert_eq!(m.status, Some(MigrationStatus::Active));
        assert_eq!(m.ram.map(|r| r.extra.len()), Some(1));
        let v: VersionInfo = serde_json::from_value(
            json!({"qemu": {"major": 7, "minor": 2, "micro": 22}, "package": "Debian"}),
        )
        .unwrap();
        assert_eq!(v.qemu.major, 7);
    }

    #[test]
    fn typed_probe_replies_keep_unknown_values() {
        let m: Vec<MachineInfo> = serde_json::from_value(json!([
            {"hotpluggable-cpus": true, "name": "pc-q35-7.2", "alias": "q35",
             "numa-mem-supported": false, "default-cpu-type": "qemu64-x86_64-cpu",
             "cpu-max": 288, "deprecated": false, "default-ram-id": "pc.ram",
             "acpi": true},
            {"name": "none", "cpu-max": "many", "deprecated": false}
        ]))
        .unwrap();
        assert_eq!(m[0].alias.as_deref(), Some("q35"));
        assert_eq!(m[0].cpu_max, Some(288));
        assert_eq!(m[0].default_cpu_type.as_deref(), Some("qemu64-x86_64-cpu"));
        assert_eq!(m[1].cpu_max, None, "a count of the wrong type is unknown");
        let c: Vec<CpuDefinitionInfo> = serde_json::from_value(json!([
            {"name": "qemu64", "typename": "qemu64-x86_64-cpu", "static": false,
             "unavailable-features": ["pni"], "alias-of": "qemu64-v1",
             "migration-safe": true, "deprecated": false, "new-member": 1}
        ]))
        .unwrap();
        assert_eq!(
            c[0].unavailable_features.as_deref(),
            Some(&["pni".to_owned()][..])
        );
        assert_eq!(c[0].alias_of.as_deref(), Some("qemu64-v1"));
        let k: KvmInfo =
            serde_json::from_value(json!({"enabled": false, "present": true})).unwrap();
        assert!(k.present && !k.enabled);
        let t: Vec<ObjectTypeInfo> = serde_json::from_value(json!([
            {"name": "tpm-crb", "parent": "device"}, {"name": "pci-device", "abstract": true}
        ]))
        .unwrap();
        assert_eq!((t[0].is_abstract, t[1].is_abstract), (false, true));
        let e: CpuModelExpansionInfo =
            serde_json::from_value(json!({"model": {"name": "base", "props": {"avx": true}}}))
                .unwrap();
        assert_eq!(e.model.props.map(|p| p.len()), Some(1));
        let b: Vec<BlockInfo> = serde_json::from_value(json!([
            {"device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
             "type": "unknown", "removable": false, "locked": false,
             "inserted": {"node-name": "libvirt-1-format", "file": "/a.img", "drv": "raw", "ro": false}},
            {"device": "ide1-cd0", "type": "unknown", "removable": true, "locked": false}
        ]))
        .unwrap();
        assert_eq!(
            b[0].inserted.as_ref().and_then(|i| i.node_name.as_deref()),
            Some("libvirt-1-format")
        );
        assert_eq!(b[1].inserted, None);
        let ch: Vec<ChardevInfo> = serde_json::from_value(json!([
            {"frontend-open": true, "filename": "pty:/dev/pts/3", "label": "charserial0"}
        ]))
        .unwrap();
        assert_eq!(ch[0].filename, "pty:/dev/pts/3");
    }

    #[test]
    fn odd_migration_counters_do_not_hide_the_status() {
        let m: MigrationInfo = serde_json::from_value(json!({
            "status": "brand-new-phase",
            "ram": {"total": -1, "transferred": "x", "mbps": "fast", "page-size": 4096,
                    "dirty-sync-count": 2, "normal-bytes": 8192}
        }))
        .unwrap();
        assert_eq!(
            m.status,
            Some(MigrationStatus::Other("brand-new-phase".into()))
        );
        let ram = m.ram.unwrap();
        assert_eq!((ram.total, ram.transferred, ram.mbps), (None, None, None));
        assert_eq!(ram.page_size, Some(4096));
        assert_eq!(ram.dirty_sync_count, Some(2));
        assert_eq!(ram.normal_bytes, Some(8192));
    }

    #[test]
    fn typed_argument_shapes() {
        let file = BlockdevAdd::from(BlockdevOptions::File(BlockdevFile {
            node_name: "n-storage".into(),
            filename: "/d.img".into(),
            auto_read_only: Some(true),
            discard: Some("unmap".into()),
        }));
        assert_eq!(
            serde_json::to_value(&file).unwrap(),
            json!({"driver": "file", "node-name": "n-storage", "filename": "/d.img",
                   "auto-read-only": true, "discard": "unmap"})
        );
        let fmt = BlockdevAdd::from(BlockdevOptions::Qcow2(BlockdevFormat {
            node_name: "n-format".into(),
            file: "n-storage".into(),
        }));
        assert_eq!(
            serde_json::to_value(&fmt).unwrap(),
            json!({"driver": "qcow2", "node-name": "n-format", "file": "n-storage"})
        );
        let commit = BlockCommit {
            job_id: Some("j".into()),
            device: "top".into(),
            base: Some("/base.img".into()),
            auto_finalize: Some(false),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&commit).unwrap(),
            json!({"job-id": "j", "device": "top", "base": "/base.img", "auto-finalize": false})
        );
        let x = QueryCpuModelExpansion {
            expansion: CpuModelExpansionType::Static,
            model: CpuModelInfo {
                name: "host".into(),
                props: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&x).unwrap(),
            json!({"type": "static", "model": {"name": "host"}})
        );
        let q = QomListTypes {
            implements: Some("device".into()),
            include_abstract: Some(false),
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"implements": "device", "abstract": false})
        );
        assert_eq!(
            serde_json::to_value(MigrateSetCapabilities::events()).unwrap(),
            json!({"capabilities": [{"capability": "events", "state": true}]})
        );
    }
}

mod setup;
pub use setup::*;
mod dump;
pub use dump::*;
mod nbd;
pub use nbd::*;
