//! Typed QMP commands.
//!
//! A command is a serialisable struct of its arguments plus a [`Command`]
//! impl naming it and its response type. A command whose arguments serialise
//! to `null` (unit structs) or `{}` is sent without `"arguments"`, as QEMU
//! expects for argument-less commands.
//!
//! Arguments the driver builds dynamically (`blockdev-add`,
//! `migrate-set-parameters`) are JSON maps rather than structs: their schema
//! is large and version-dependent, and the driver already speaks QEMU's
//! option names.

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{JobStatus, MigrationStatus, RunState};

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
    /// `query-block`: block devices. The reply is large and version
    /// dependent, so it is left as JSON.
    QueryBlock = "query-block" => Value
);

/// `blockdev-add`: the arguments are the blockdev options as QEMU spells
/// them (`{"driver": "qcow2", "node-name": ..., "file": ...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct BlockdevAdd(pub Map<String, Value>);
command!(BlockdevAdd = "blockdev-add" => Empty);

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
    /// Top node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_node: Option<String>,
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
    /// `query-migrate`.
    QueryMigrate = "query-migrate" => MigrationInfo
);

/// RAM statistics of a migration (subset; the rest stays in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRamStats {
    /// Bytes transferred.
    #[serde(default)]
    pub transferred: Option<u64>,
    /// Bytes remaining.
    #[serde(default)]
    pub remaining: Option<u64>,
    /// Total RAM.
    #[serde(default)]
    pub total: Option<u64>,
    /// Throughput in Mbit/s.
    #[serde(default)]
    pub mbps: Option<f64>,
    /// Dirty page rate.
    #[serde(rename = "dirty-pages-rate", default)]
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

/// `device_del`: request unplug; completion is the `DEVICE_DELETED` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceDel {
    /// Device id or QOM path.
    pub id: String,
}
command!(DeviceDel = "device_del" => Empty);

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
            json!({"status": "active", "ram": {"transferred": 5, "normal": 3}, "x": 1}),
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
}
