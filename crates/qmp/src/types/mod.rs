//! Typed QMP commands and events.
//!
//! QEMU adds enum values and fields between versions, and a hostile QEMU can
//! send anything, so the types here are lenient: enums carry an
//! `Other(String)` fallback instead of failing, and most fields are optional.

pub mod commands;
pub mod events;
pub mod stats;

/// Field deserializers for numbers QEMU reports as statistics: a value of
/// the wrong type (another QEMU version, a hostile QEMU) reads as absent
/// instead of failing the whole reply, since one odd counter must not hide
/// the status beside it.
pub(crate) mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// An unsigned integer, or `None`.
    pub(crate) fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Value::deserialize(d)?.as_u64())
    }

    /// A number, or `None`.
    pub(crate) fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Value::deserialize(d)?.as_f64())
    }
}

/// Defines a string enum with a catch-all `Other(String)` variant: parsing
/// never fails on a value a newer QEMU introduced.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know (newer QEMU).
            Other(String),
        }

        impl $name {
            /// QEMU's spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(s) => s.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::from(s.as_ref()))
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// A VM run state (`RunState` in QEMU's schema).
    pub enum RunState {
        /// QEMU is running on a debugger.
        Debug = "debug",
        /// Waiting for an incoming migration.
        Inmigrate = "inmigrate",
        /// An internal error prevents further guest execution.
        InternalError = "internal-error",
        /// Paused after an I/O error with `werror=stop`.
        IoError = "io-error",
        /// Paused by `stop`.
        Paused = "paused",
        /// Paused after a successful outgoing migration.
        Postmigrate = "postmigrate",
        /// Started with `-S`, never run.
        Prelaunch = "prelaunch",
        /// Paused to finish a migration.
        FinishMigrate = "finish-migrate",
        /// Paused to restore VM state.
        RestoreVm = "restore-vm",
        /// Running.
        Running = "running",
        /// Paused to save VM state.
        SaveVm = "save-vm",
        /// Shut down, kept alive by `-no-shutdown`.
        Shutdown = "shutdown",
        /// Suspended (ACPI S3).
        Suspended = "suspended",
        /// Paused by the watchdog action.
        Watchdog = "watchdog",
        /// Paused after a guest panic.
        GuestPanicked = "guest-panicked",
        /// Paused for a COLO checkpoint.
        Colo = "colo",
        /// Waiting in `--preconfig`.
        Preconfig = "preconfig",
    }
}

string_enum! {
    /// State of a job (`JobStatus`).
    pub enum JobStatus {
        /// Erroneous state, should not appear.
        Undefined = "undefined",
        /// Created, not started.
        Created = "created",
        /// Running.
        Running = "running",
        /// Paused.
        Paused = "paused",
        /// Ready to complete (mirror).
        Ready = "ready",
        /// Ready but paused.
        Standby = "standby",
        /// Waiting for other jobs of its transaction.
        Waiting = "waiting",
        /// Waiting for `job-finalize`.
        Pending = "pending",
        /// Being aborted.
        Aborting = "aborting",
        /// Finished, waiting for `job-dismiss`.
        Concluded = "concluded",
        /// Gone.
        Null = "null",
    }
}

string_enum! {
    /// Status of a migration (`MigrationStatus`).
    pub enum MigrationStatus {
        /// No migration started.
        None = "none",
        /// Setting up.
        Setup = "setup",
        /// Being cancelled.
        Cancelling = "cancelling",
        /// Cancelled.
        Cancelled = "cancelled",
        /// In progress.
        Active = "active",
        /// Postcopy in progress.
        PostcopyActive = "postcopy-active",
        /// Postcopy paused.
        PostcopyPaused = "postcopy-paused",
        /// Postcopy recovering.
        PostcopyRecover = "postcopy-recover",
        /// Completed.
        Completed = "completed",
        /// Failed.
        Failed = "failed",
        /// COLO mode.
        Colo = "colo",
        /// Paused before switchover (pause-before-switchover capability).
        PreSwitchover = "pre-switchover",
        /// Migrating device state.
        Device = "device",
        /// Waiting for unplug of devices.
        WaitUnplug = "wait-unplug",
    }
}

impl MigrationStatus {
    /// Past the switch to post-copy (running, paused or recovering): the
    /// destination has run the guest.
    pub fn is_postcopy(&self) -> bool {
        matches!(
            self,
            MigrationStatus::PostcopyActive
                | MigrationStatus::PostcopyPaused
                | MigrationStatus::PostcopyRecover
        )
    }
}
