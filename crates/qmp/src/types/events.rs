//! Typed QMP events.
//!
//! Conversion never fails: an event we do not know, or a known event whose
//! data does not have the expected shape (other QEMU version, hostile QEMU),
//! becomes [`EventKind::Unknown`] with the raw data. Events are hints for a
//! resync, so losing type information is acceptable; failing is not.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::commands::DumpCompletedData;
use super::{JobStatus, MigrationStatus, string_enum};

/// When QEMU emitted an event (`gettimeofday` in QEMU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// One event from QEMU.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// QEMU's timestamp; `None` only if QEMU omitted it or sent garbage.
    pub timestamp: Option<Timestamp>,
    /// The event and its data.
    pub kind: EventKind,
}

impl Event {
    /// Builds a typed event from the wire form.
    pub fn from_parts(name: String, data: Value, timestamp: Option<Timestamp>) -> Self {
        Event {
            timestamp,
            kind: EventKind::from_parts(name, data),
        }
    }

    /// QEMU's name of the event (`"SHUTDOWN"`, ...).
    pub fn name(&self) -> &str {
        self.kind.name()
    }
}

string_enum! {
    /// Why the VM shut down or reset (`ShutdownCause`).
    pub enum ShutdownCause {
        /// No shutdown request pending.
        None = "none",
        /// An error prevents further use of the guest.
        HostError = "host-error",
        /// `quit` command.
        HostQmpQuit = "host-qmp-quit",
        /// `system_reset` command.
        HostQmpSystemReset = "host-qmp-system-reset",
        /// A signal to QEMU (SIGTERM, ...).
        HostSignal = "host-signal",
        /// The UI (window closed).
        HostUi = "host-ui",
        /// The guest shut itself down.
        GuestShutdown = "guest-shutdown",
        /// The guest reset itself.
        GuestReset = "guest-reset",
        /// The guest panicked with action poweroff.
        GuestPanic = "guest-panic",
        /// Partial guest reset.
        SubsystemReset = "subsystem-reset",
        /// Snapshot load.
        SnapshotLoad = "snapshot-load",
    }
}

/// Data of `SHUTDOWN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShutdownData {
    /// True if the guest initiated it.
    #[serde(default)]
    pub guest: Option<bool>,
    /// The cause (QEMU >= 4.0).
    #[serde(default)]
    pub reason: Option<ShutdownCause>,
}

/// Data of `RESET`.
pub type ResetData = ShutdownData;

/// Data of `RTC_CHANGE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtcChangeData {
    /// New offset of the guest RTC from the host, in seconds.
    pub offset: i64,
    /// The RTC device (QEMU >= 7.0).
    #[serde(rename = "qom-path", default)]
    pub qom_path: Option<String>,
}

/// Data of `BALLOON_CHANGE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalloonChangeData {
    /// Guest memory now, in bytes.
    pub actual: i64,
}

/// Data of `GUEST_PANICKED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestPanickedData {
    /// What QEMU did: `pause`, `poweroff` or `run`.
    #[serde(default)]
    pub action: Option<String>,
    /// Platform-specific panic information.
    #[serde(default)]
    pub info: Option<Value>,
}

/// Data of `BLOCK_IO_ERROR`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockIoErrorData {
    /// Device name (may be empty for -blockdev setups).
    #[serde(default)]
    pub device: Option<String>,
    /// Node name, if any.
    #[serde(rename = "node-name", default)]
    pub node_name: Option<String>,
    /// `read` or `write`.
    #[serde(default)]
    pub operation: Option<String>,
    /// `ignore`, `report` or `stop`.
    #[serde(default)]
    pub action: Option<String>,
    /// True if the error was ENOSPC.
    #[serde(default)]
    pub nospace: Option<bool>,
    /// Human-readable error text.
    #[serde(default)]
    pub reason: Option<String>,
    /// QOM path of the device, when QEMU sends it (newer QEMUs do).
    #[serde(rename = "qom-path", default)]
    pub qom_path: Option<String>,
}

/// Data of `JOB_STATUS_CHANGE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatusChangeData {
    /// The job id.
    pub id: String,
    /// Its new status.
    pub status: JobStatus,
}

/// Data of `BLOCK_JOB_COMPLETED`, `BLOCK_JOB_CANCELLED`, `BLOCK_JOB_READY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockJobData {
    /// Job type (`commit`, `stream`, `mirror`, `backup`, ...).
    #[serde(rename = "type", default)]
    pub job_type: Option<String>,
    /// The job id (called `device` for historical reasons).
    pub device: String,
    /// Total work.
    #[serde(default)]
    pub len: Option<u64>,
    /// Work done.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Rate limit in bytes/s.
    #[serde(default)]
    pub speed: Option<u64>,
    /// Error text (`BLOCK_JOB_COMPLETED` only, when it failed).
    #[serde(default)]
    pub error: Option<String>,
}

/// Data of `BLOCK_JOB_ERROR`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockJobErrorData {
    /// The job id.
    pub device: String,
    /// `read` or `write`.
    #[serde(default)]
    pub operation: Option<String>,
    /// `ignore`, `report` or `stop`.
    #[serde(default)]
    pub action: Option<String>,
}

/// Data of `BLOCK_JOB_PENDING`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockJobPendingData {
    /// Job type.
    #[serde(rename = "type", default)]
    pub job_type: Option<String>,
    /// The job id.
    pub id: String,
}

/// Data of `MIGRATION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationData {
    /// The new status.
    pub status: MigrationStatus,
}

/// Data of `MIGRATION_PASS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPassData {
    /// The RAM pass number.
    #[serde(default)]
    pub pass: Option<u64>,
}

/// Data of `DEVICE_DELETED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDeletedData {
    /// The device id, if it had one.
    #[serde(default)]
    pub device: Option<String>,
    /// The device's QOM path.
    #[serde(default)]
    pub path: Option<String>,
}

/// Data of `DEVICE_TRAY_MOVED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTrayMovedData {
    /// The block backend's name (empty with -blockdev).
    #[serde(default)]
    pub device: Option<String>,
    /// The device's qdev id.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "tray-open")]
    pub tray_open: bool,
}

/// Data of `BLOCK_WRITE_THRESHOLD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockWriteThresholdData {
    #[serde(rename = "node-name")]
    pub node_name: String,
    #[serde(rename = "amount-exceeded")]
    pub amount_exceeded: u64,
    #[serde(rename = "write-threshold")]
    pub write_threshold: u64,
}

/// Data of `WATCHDOG`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchdogData {
    /// `reset`, `shutdown`, `poweroff`, `pause`, `debug`, `none`, `inject-nmi`.
    #[serde(default)]
    pub action: Option<String>,
}

/// A QMP event with typed data.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `SHUTDOWN`: QEMU is shutting down (or the guest stopped, with -no-shutdown).
    Shutdown(ShutdownData),
    /// `POWERDOWN`: ACPI power button pressed by `system_powerdown`.
    Powerdown,
    /// `RESET`: the VM reset.
    Reset(ResetData),
    /// `STOP`: the VM paused.
    Stop,
    /// `RESUME`: the VM runs.
    Resume,
    /// `RTC_CHANGE`.
    RtcChange(RtcChangeData),
    /// `BALLOON_CHANGE`.
    BalloonChange(BalloonChangeData),
    /// `GUEST_PANICKED`.
    GuestPanicked(GuestPanickedData),
    /// `BLOCK_IO_ERROR`.
    BlockIoError(BlockIoErrorData),
    /// `JOB_STATUS_CHANGE`.
    JobStatusChange(JobStatusChangeData),
    /// `BLOCK_JOB_COMPLETED`.
    BlockJobCompleted(BlockJobData),
    /// `BLOCK_JOB_CANCELLED`.
    BlockJobCancelled(BlockJobData),
    /// `BLOCK_JOB_ERROR`.
    BlockJobError(BlockJobErrorData),
    /// `BLOCK_JOB_READY`.
    BlockJobReady(BlockJobData),
    /// `BLOCK_JOB_PENDING`.
    BlockJobPending(BlockJobPendingData),
    /// `MIGRATION`.
    Migration(MigrationData),
    /// `MIGRATION_PASS`.
    MigrationPass(MigrationPassData),
    /// `DEVICE_DELETED`.
    DeviceDeleted(DeviceDeletedData),
    /// `DEVICE_UNPLUG_GUEST_ERROR`: the guest refused an unplug request
    /// (same data as `DEVICE_DELETED`).
    DeviceUnplugGuestError(DeviceDeletedData),
    /// `DEVICE_TRAY_MOVED`: a removable-media device's tray opened or
    /// closed.
    DeviceTrayMoved(DeviceTrayMovedData),
    /// `BLOCK_WRITE_THRESHOLD`: a write went past a node's threshold
    /// (which QEMU then clears).
    BlockWriteThreshold(BlockWriteThresholdData),
    /// `WATCHDOG`.
    Watchdog(WatchdogData),
    /// `DUMP_COMPLETED`: a detached `dump-guest-memory` ended.
    DumpCompleted(DumpCompletedData),
    /// Any other event, or a known one whose data did not parse.
    Unknown {
        /// The event name.
        name: String,
        /// The raw data (`Null` if none, or if it was dropped as too large
        /// while coalescing).
        data: Value,
    },
}

impl EventKind {
    /// Types an event; never fails (see the module doc).
    pub fn from_parts(name: String, data: Value) -> Self {
        fn typed<T: for<'de> Deserialize<'de>>(data: &Value) -> Option<T> {
            // Old QEMUs send some events without data; treat that as `{}`
            // so all-optional structs still parse.
            if data.is_null() {
                T::deserialize(&Value::Object(serde_json::Map::new())).ok()
            } else {
                T::deserialize(data).ok()
            }
        }
        let kind = match name.as_str() {
            "SHUTDOWN" => typed(&data).map(EventKind::Shutdown),
            "POWERDOWN" => Some(EventKind::Powerdown),
            "RESET" => typed(&data).map(EventKind::Reset),
            "STOP" => Some(EventKind::Stop),
            "RESUME" => Some(EventKind::Resume),
            "RTC_CHANGE" => typed(&data).map(EventKind::RtcChange),
            "BALLOON_CHANGE" => typed(&data).map(EventKind::BalloonChange),
            "GUEST_PANICKED" => typed(&data).map(EventKind::GuestPanicked),
            "BLOCK_IO_ERROR" => typed(&data).map(EventKind::BlockIoError),
            "JOB_STATUS_CHANGE" => typed(&data).map(EventKind::JobStatusChange),
            "BLOCK_JOB_COMPLETED" => typed(&data).map(EventKind::BlockJobCompleted),
            "BLOCK_JOB_CANCELLED" => typed(&data).map(EventKind::BlockJobCancelled),
            "BLOCK_JOB_ERROR" => typed(&data).map(EventKind::BlockJobError),
            "BLOCK_JOB_READY" => typed(&data).map(EventKind::BlockJobReady),
            "BLOCK_JOB_PENDING" => typed(&data).map(EventKind::BlockJobPending),
            "MIGRATION" => typed(&data).map(EventKind::Migration),
            "MIGRATION_PASS" => typed(&data).map(EventKind::MigrationPass),
            "DEVICE_DELETED" => typed(&data).map(EventKind::DeviceDeleted),
            "DEVICE_UNPLUG_GUEST_ERROR" => typed(&data).map(EventKind::DeviceUnplugGuestError),
            "DEVICE_TRAY_MOVED" => typed(&data).map(EventKind::DeviceTrayMoved),
            "BLOCK_WRITE_THRESHOLD" => typed(&data).map(EventKind::BlockWriteThreshold),
            "WATCHDOG" => typed(&data).map(EventKind::Watchdog),
            "DUMP_COMPLETED" => typed(&data).map(EventKind::DumpCompleted),
            _ => None,
        };
        kind.unwrap_or(EventKind::Unknown { name, data })
    }

    /// QEMU's name of the event.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Shutdown(_) => "SHUTDOWN",
            EventKind::Powerdown => "POWERDOWN",
            EventKind::Reset(_) => "RESET",
            EventKind::Stop => "STOP",
            EventKind::Resume => "RESUME",
            EventKind::RtcChange(_) => "RTC_CHANGE",
            EventKind::BalloonChange(_) => "BALLOON_CHANGE",
            EventKind::GuestPanicked(_) => "GUEST_PANICKED",
            EventKind::BlockIoError(_) => "BLOCK_IO_ERROR",
            EventKind::JobStatusChange(_) => "JOB_STATUS_CHANGE",
            EventKind::BlockJobCompleted(_) => "BLOCK_JOB_COMPLETED",
            EventKind::BlockJobCancelled(_) => "BLOCK_JOB_CANCELLED",
            EventKind::BlockJobError(_) => "BLOCK_JOB_ERROR",
            EventKind::BlockJobReady(_) => "BLOCK_JOB_READY",
            EventKind::BlockJobPending(_) => "BLOCK_JOB_PENDING",
            EventKind::Migration(_) => "MIGRATION",
            EventKind::MigrationPass(_) => "MIGRATION_PASS",
            EventKind::DeviceDeleted(_) => "DEVICE_DELETED",
            EventKind::DeviceUnplugGuestError(_) => "DEVICE_UNPLUG_GUEST_ERROR",
            EventKind::DeviceTrayMoved(_) => "DEVICE_TRAY_MOVED",
            EventKind::BlockWriteThreshold(_) => "BLOCK_WRITE_THRESHOLD",
            EventKind::Watchdog(_) => "WATCHDOG",
            EventKind::DumpCompleted(_) => "DUMP_COMPLETED",
            EventKind::Unknown { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_known_events() {
        let k = EventKind::from_parts(
            "SHUTDOWN".into(),
            json!({"guest": false, "reason": "host-qmp-quit"}),
        );
        assert_eq!(
            k,
            EventKind::Shutdown(ShutdownData {
                guest: Some(false),
                reason: Some(ShutdownCause::HostQmpQuit)
            })
        );
        let k = EventKind::from_parts(
            "JOB_STATUS_CHANGE".into(),
            json!({"id": "j1", "status": "brand-new"}),
        );
        assert!(
            matches!(k, EventKind::JobStatusChange(JobStatusChangeData { status: JobStatus::Other(s), .. }) if s == "brand-new")
        );
        let k = EventKind::from_parts(
            "BLOCK_JOB_COMPLETED".into(),
            json!({"type": "mirror", "device": "j", "len": 10, "offset": 10, "speed": 0}),
        );
        assert!(
            matches!(k, EventKind::BlockJobCompleted(BlockJobData { ref device, len: Some(10), .. }) if device == "j")
        );
        assert_eq!(
            EventKind::from_parts("STOP".into(), Value::Null),
            EventKind::Stop
        );
        assert_eq!(k.name(), "BLOCK_JOB_COMPLETED");
    }

    #[test]
    fn bad_data_becomes_unknown() {
        let k = EventKind::from_parts("RTC_CHANGE".into(), json!({"offset": "soon"}));
        assert!(matches!(k, EventKind::Unknown { ref name, .. } if name == "RTC_CHANGE"));
        assert_eq!(k.name(), "RTC_CHANGE");
        let k = EventKind::from_parts("SHUTDOWN".into(), json!([1, 2]));
        assert!(matches!(k, EventKind::Unknown { .. }));
        let k = EventKind::from_parts("NEW_THING".into(), json!({"x": 1}));
        assert_eq!(
            k,
            EventKind::Unknown {
                name: "NEW_THING".into(),
                data: json!({"x": 1})
            }
        );
    }
}
