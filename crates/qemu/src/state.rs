//! libvirt's domain states, state reasons and lifecycle event numbers.
//!
//! These numbers are libvirt's stable ABI (`libvirt-domain.h`): `virsh
//! domstate --reason` and libvirt-python interpret them directly, so they are
//! fixed here once and never invented elsewhere in the driver.

use serde::{Deserialize, Serialize};

/// `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i32)]
pub enum DomainState {
    NoState = 0,
    Running = 1,
    Blocked = 2,
    Paused = 3,
    Shutdown = 4,
    Shutoff = 5,
    Crashed = 6,
    PmSuspended = 7,
}

impl DomainState {
    /// The wire value.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// Whether a QEMU process exists for a domain in this state.
    pub fn is_active(self) -> bool {
        !matches!(self, DomainState::Shutoff | DomainState::NoState)
    }
}

/// `virDomainRunningReason`.
pub mod running {
    pub const UNKNOWN: i32 = 0;
    pub const BOOTED: i32 = 1;
    pub const MIGRATED: i32 = 2;
    pub const RESTORED: i32 = 3;
    pub const UNPAUSED: i32 = 5;
    pub const MIGRATION_CANCELED: i32 = 6;
    pub const SAVE_CANCELED: i32 = 7;
    pub const CRASHED: i32 = 9;
    pub const POSTCOPY: i32 = 10;
}

/// `virDomainPausedReason`.
pub mod paused {
    pub const UNKNOWN: i32 = 0;
    pub const USER: i32 = 1;
    pub const MIGRATION: i32 = 2;
    pub const SAVE: i32 = 3;
    pub const DUMP: i32 = 4;
    pub const IOERROR: i32 = 5;
    pub const WATCHDOG: i32 = 6;
    pub const SHUTTING_DOWN: i32 = 8;
    pub const CRASHED: i32 = 10;
    pub const STARTING_UP: i32 = 11;
    pub const POSTCOPY: i32 = 12;
    pub const POSTCOPY_FAILED: i32 = 13;
}

/// `virDomainShutdownReason`.
pub mod shutdown {
    pub const UNKNOWN: i32 = 0;
    pub const USER: i32 = 1;
}

/// `virDomainShutoffReason`.
pub mod shutoff {
    pub const UNKNOWN: i32 = 0;
    pub const SHUTDOWN: i32 = 1;
    pub const DESTROYED: i32 = 2;
    pub const CRASHED: i32 = 3;
    pub const MIGRATED: i32 = 4;
    pub const SAVED: i32 = 5;
    pub const FAILED: i32 = 6;
    pub const DAEMON: i32 = 8;
}

/// `virDomainCrashedReason`.
pub mod crashed {
    pub const UNKNOWN: i32 = 0;
    pub const PANICKED: i32 = 1;
}

/// A state with its reason, as `virDomainGetState` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    pub state: DomainState,
    pub reason: i32,
}

impl StateReason {
    pub const fn new(state: DomainState, reason: i32) -> Self {
        Self { state, reason }
    }

    pub const fn shutoff(reason: i32) -> Self {
        Self::new(DomainState::Shutoff, reason)
    }
}

/// `virDomainEventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum LifecycleKind {
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Suspended = 3,
    Resumed = 4,
    Stopped = 5,
    Shutdown = 6,
    PmSuspended = 7,
    Crashed = 8,
}

impl LifecycleKind {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// Detail numbers of each lifecycle event type (`virDomainEvent*DetailType`).
pub mod detail {
    pub const DEFINED_ADDED: i32 = 0;
    pub const DEFINED_UPDATED: i32 = 1;
    pub const UNDEFINED_REMOVED: i32 = 0;
    pub const STARTED_BOOTED: i32 = 0;
    pub const STARTED_MIGRATED: i32 = 1;
    pub const STARTED_RESTORED: i32 = 2;
    pub const SUSPENDED_PAUSED: i32 = 0;
    pub const SUSPENDED_MIGRATED: i32 = 1;
    pub const SUSPENDED_IOERROR: i32 = 2;
    pub const SUSPENDED_WATCHDOG: i32 = 3;
    pub const SUSPENDED_API_ERROR: i32 = 6;
    pub const SUSPENDED_POSTCOPY: i32 = 7;
    pub const SUSPENDED_POSTCOPY_FAILED: i32 = 8;
    pub const RESUMED_UNPAUSED: i32 = 0;
    pub const RESUMED_MIGRATED: i32 = 1;
    pub const RESUMED_POSTCOPY: i32 = 3;
    pub const STOPPED_SHUTDOWN: i32 = 0;
    pub const STOPPED_DESTROYED: i32 = 1;
    pub const STOPPED_CRASHED: i32 = 2;
    pub const STOPPED_MIGRATED: i32 = 3;
    pub const STOPPED_SAVED: i32 = 4;
    pub const STOPPED_FAILED: i32 = 5;
    pub const SHUTDOWN_FINISHED: i32 = 0;
    pub const SHUTDOWN_GUEST: i32 = 1;
    pub const SHUTDOWN_HOST: i32 = 2;
    pub const CRASHED_PANICKED: i32 = 0;
}

/// What happened to a domain, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `VIR_DOMAIN_EVENT_ID_LIFECYCLE` with its type and detail.
    Lifecycle { kind: LifecycleKind, detail: i32 },
    /// `VIR_DOMAIN_EVENT_ID_REBOOT`.
    Reboot,
    /// `VIR_DOMAIN_EVENT_ID_RTC_CHANGE`: guest RTC offset from the host,
    /// seconds (throttled per VM, see `throttle`).
    RtcChange { offset: i64 },
    /// `VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE`: guest memory now, KiB
    /// (throttled per VM).
    BalloonChange { actual_kib: u64 },
    /// `VIR_DOMAIN_EVENT_ID_IO_ERROR` and `..._IO_ERROR_REASON`: one QMP
    /// BLOCK_IO_ERROR raises both, as in libvirt (throttled per disk).
    IoError {
        /// The disk's source path in the live definition ("" if unknown).
        src_path: String,
        /// The disk's device alias (`virtio-disk0`; "" if unknown).
        dev_alias: String,
        /// `virDomainEventIOErrorAction`.
        action: i32,
        /// "enospc" or "" (see `events::device::io_error_reason`).
        reason: String,
    },
    /// `VIR_DOMAIN_EVENT_ID_WATCHDOG`: the guest's watchdog fired
    /// (`virDomainEventWatchdogAction`; throttled per VM).
    Watchdog { action: i32 },
    /// `VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2` (disk target) and `..._BLOCK_JOB`
    /// (disk path): a block job became ready or ended.
    /// `VIR_DOMAIN_EVENT_ID_BLOCK_THRESHOLD`: a write went `excess` bytes
    /// past `threshold` of disk `dev` (its target) backed by `path`.
    BlockThreshold {
        dev: String,
        path: String,
        threshold: u64,
        excess: u64,
    },
    /// `VIR_DOMAIN_EVENT_ID_TRAY_CHANGE`: a CD-ROM's tray opened (reason
    /// 0) or closed (1).
    TrayChange { alias: String, reason: i32 },
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_ADDED`: a device was plugged in (its
    /// alias, `virtio-disk1`).
    DeviceAdded { alias: String },
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`: the guest released a device
    /// and it is gone from the live definition.
    DeviceRemoved { alias: String },
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED`: the guest refused to
    /// release a device (QEMU's DEVICE_UNPLUG_GUEST_ERROR).
    DeviceRemovalFailed { alias: String },
    /// `VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION`: an outgoing migration
    /// began pass `iteration` over guest memory (QEMU's MIGRATION_PASS).
    MigrationIteration { iteration: i32 },
    /// `VIR_DOMAIN_EVENT_ID_JOB_COMPLETED`: a migration completed, with
    /// its statistics (as `domjobinfo --completed` reports them).
    JobCompleted { stats: crate::JobStats },
    BlockJob {
        /// `<target dev>`, e.g. "vda".
        disk: String,
        /// The disk's source path (what the legacy event reports).
        path: String,
        /// `virDomainBlockJobType`.
        job_type: i32,
        /// `virConnectDomainEventBlockStatus`.
        status: i32,
    },
}

/// `virDomainEventIOErrorAction`.
pub mod io_error_action {
    pub const NONE: i32 = 0;
    pub const PAUSE: i32 = 1;
    pub const REPORT: i32 = 2;
}

/// `virDomainEventWatchdogAction`.
pub mod watchdog_action {
    pub const NONE: i32 = 0;
    pub const PAUSE: i32 = 1;
    pub const RESET: i32 = 2;
    pub const POWEROFF: i32 = 3;
    pub const SHUTDOWN: i32 = 4;
    pub const DEBUG: i32 = 5;
    pub const INJECTNMI: i32 = 6;
}

/// `virDomainBlockJobType`.
pub mod block_job_type {
    pub const PULL: i32 = 1;
    pub const COPY: i32 = 2;
    pub const COMMIT: i32 = 3;
    pub const ACTIVE_COMMIT: i32 = 4;
}

/// `virConnectDomainEventBlockStatus`.
pub mod block_status {
    pub const COMPLETED: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const CANCELED: i32 = 2;
    pub const READY: i32 = 3;
}

/// One event about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    pub name: String,
    pub uuid: uuid::Uuid,
    /// The domain id while running, -1 otherwise (as libvirt reports it).
    pub id: i32,
    pub kind: EventKind,
}

impl EventKind {
    pub const fn lifecycle(kind: LifecycleKind, detail: i32) -> Self {
        EventKind::Lifecycle { kind, detail }
    }
}

/// Why a QEMU process ended: decides the shutoff reason and the STOPPED
/// event detail, as libvirt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopCause {
    /// The guest (or `shutdown`) powered off.
    Shutdown,
    /// `destroy`.
    Destroyed,
    /// on_crash=destroy after a guest panic.
    Panicked,
    /// QEMU exited without being asked to (or its monitor broke).
    Failed,
    /// `save` finished.
    Saved,
    /// `dump --crash`: the guest's memory was written, then it stopped as
    /// crashed.
    Dumped,
    /// The guest runs on another host now (outgoing migration confirmed).
    Migrated,
    /// Start did not complete: no STARTED was emitted, so no STOPPED either.
    StartFailed,
    /// A restarted daemon killed it: its start had not completed when the
    /// previous daemon stopped (libvirt's "daemon" shutoff reason).
    Daemon,
}

impl StopCause {
    pub fn shutoff_reason(self) -> i32 {
        match self {
            StopCause::Shutdown => shutoff::SHUTDOWN,
            StopCause::Destroyed => shutoff::DESTROYED,
            StopCause::Panicked | StopCause::Failed | StopCause::Dumped => shutoff::CRASHED,
            StopCause::Saved => shutoff::SAVED,
            StopCause::Migrated => shutoff::MIGRATED,
            StopCause::StartFailed => shutoff::FAILED,
            StopCause::Daemon => shutoff::DAEMON,
        }
    }

    pub fn stopped_detail(self) -> Option<i32> {
        match self {
            StopCause::Shutdown => Some(detail::STOPPED_SHUTDOWN),
            StopCause::Destroyed => Some(detail::STOPPED_DESTROYED),
            StopCause::Panicked | StopCause::Dumped => Some(detail::STOPPED_CRASHED),
            StopCause::Failed => Some(detail::STOPPED_FAILED),
            StopCause::Saved => Some(detail::STOPPED_SAVED),
            StopCause::Migrated => Some(detail::STOPPED_MIGRATED),
            StopCause::StartFailed | StopCause::Daemon => None,
        }
    }
}

/// `virDomainControlState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ControlState {
    Ok = 0,
    Job = 1,
    Occupied = 2,
    Error = 3,
}

/// `virDomainControlErrorReason`: why `domcontrol` reports an error.
pub mod control_error {
    pub const NONE: u32 = 0;
    pub const UNKNOWN: u32 = 1;
    /// The monitor stopped answering.
    pub const MONITOR: u32 = 2;
    /// The daemon's own failure (a status file it could not write).
    pub const INTERNAL: u32 = 3;
}

/// `virDomainJobType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum JobType {
    None = 0,
    Bounded = 1,
    Unbounded = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5,
}

/// `virDomainJobOperation`: what an async job does, from the driver's
/// job to the wire. Persisted by its name (`"save"`), the form status
/// records have always used; a number is read too, and a name this
/// version does not know reads as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum JobOperation {
    Unknown = 0,
    Start = 1,
    Save = 2,
    Restore = 3,
    MigrationIn = 4,
    MigrationOut = 5,
    Snapshot = 6,
    SnapshotRevert = 7,
    Dump = 8,
    Backup = 9,
    SnapshotDelete = 10,
}

impl JobOperation {
    const ALL: [JobOperation; 11] = [
        JobOperation::Unknown,
        JobOperation::Start,
        JobOperation::Save,
        JobOperation::Restore,
        JobOperation::MigrationIn,
        JobOperation::MigrationOut,
        JobOperation::Snapshot,
        JobOperation::SnapshotRevert,
        JobOperation::Dump,
        JobOperation::Backup,
        JobOperation::SnapshotDelete,
    ];

    /// The wire value.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The name it is persisted under.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOperation::Unknown => "unknown",
            JobOperation::Start => "start",
            JobOperation::Save => "save",
            JobOperation::Restore => "restore",
            JobOperation::MigrationIn => "migration-in",
            JobOperation::MigrationOut => "migration-out",
            JobOperation::Snapshot => "snapshot",
            JobOperation::SnapshotRevert => "snapshot-revert",
            JobOperation::Dump => "dump",
            JobOperation::Backup => "backup",
            JobOperation::SnapshotDelete => "snapshot-delete",
        }
    }

    fn from_name(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == name)
            .unwrap_or(JobOperation::Unknown)
    }

    fn from_number(n: i64) -> Self {
        Self::ALL
            .into_iter()
            .find(|o| i64::from(o.as_i32()) == n)
            .unwrap_or(JobOperation::Unknown)
    }
}

impl From<joblock::AsyncKind> for JobOperation {
    /// The operation libvirt reports for the driver's async jobs (block
    /// jobs have none).
    fn from(kind: joblock::AsyncKind) -> Self {
        use joblock::AsyncKind as K;
        match kind {
            K::MigrationOut => JobOperation::MigrationOut,
            K::MigrationIn => JobOperation::MigrationIn,
            K::Save => JobOperation::Save,
            K::Dump => JobOperation::Dump,
            K::Snapshot => JobOperation::Snapshot,
            K::Start => JobOperation::Start,
            K::Restore => JobOperation::Restore,
            _ => JobOperation::Unknown,
        }
    }
}

impl std::fmt::Display for JobOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobOperation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobOperation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Name(String),
            Number(i64),
        }
        Ok(match Form::deserialize(d)? {
            Form::Name(n) => JobOperation::from_name(&n),
            Form::Number(n) => JobOperation::from_number(n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_libvirt_abi() {
        assert_eq!(DomainState::Running.as_i32(), 1);
        assert_eq!(DomainState::Paused.as_i32(), 3);
        assert_eq!(DomainState::Shutdown.as_i32(), 4);
        assert_eq!(DomainState::Shutoff.as_i32(), 5);
        assert_eq!(DomainState::Crashed.as_i32(), 6);
        assert_eq!(paused::STARTING_UP, 11);
        assert_eq!(shutoff::DAEMON, 8);
        assert_eq!(LifecycleKind::Stopped.as_i32(), 5);
        assert_eq!(LifecycleKind::Crashed.as_i32(), 8);
        assert_eq!(detail::STOPPED_SAVED, 4);
        assert_eq!(paused::IOERROR, 5);
        assert_eq!(paused::WATCHDOG, 6);
        assert_eq!(detail::SUSPENDED_IOERROR, 2);
        assert_eq!(detail::SUSPENDED_WATCHDOG, 3);
        assert_eq!(io_error_action::REPORT, 2);
        assert_eq!(watchdog_action::INJECTNMI, 6);
    }

    #[test]
    fn job_operations_match_libvirt_and_read_any_form() {
        assert_eq!(JobOperation::Save.as_i32(), 2);
        assert_eq!(JobOperation::Restore.as_i32(), 3);
        assert_eq!(JobOperation::SnapshotDelete.as_i32(), 10);
        assert_eq!(
            JobOperation::from(joblock::AsyncKind::Save),
            JobOperation::Save
        );
        assert_eq!(
            JobOperation::from(joblock::AsyncKind::BlockJob),
            JobOperation::Unknown
        );
        let read = |j: &str| serde_json::from_str::<JobOperation>(j).unwrap();
        assert_eq!(read(r#""save""#), JobOperation::Save);
        assert_eq!(read(r#""migration-out""#), JobOperation::MigrationOut);
        assert_eq!(read("3"), JobOperation::Restore);
        assert_eq!(read(r#""teleport""#), JobOperation::Unknown);
        assert_eq!(read("99"), JobOperation::Unknown);
        assert!(serde_json::from_str::<JobOperation>("[1]").is_err());
        for op in JobOperation::ALL {
            let text = serde_json::to_string(&op).unwrap();
            assert_eq!(read(&text), op, "{text}");
        }
        assert_eq!(control_error::MONITOR, 2);
        assert_eq!(ControlState::Error as i32, 3);
        assert_eq!(JobType::Cancelled as i32, 5);
    }
}
