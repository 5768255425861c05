//! The ferrovirt QEMU driver: domains, their lifecycle and long jobs, the
//! event pipeline, QEMU processes, persistence and restart.
//!
//! Entry point: [`Driver::open`]. Data flows one way, from the facade down
//! to QEMU; no module reaches back up:
//!
//! | module | what it is |
//! |---|---|
//! | `driver` | the public API: [`Driver`] |
//! | `lifecycle` | start, stop (destroy, cleanup), power operations |
//! | `jobs` | the job lock's use, save, restore, save images, block jobs, job statistics |
//! | `actions` | coalesced follow-up work of a run, and the task that runs it |
//! | `events` | the per-VM event task, device events, throttling, the event hub |
//! | `object` | the domain object: its state and transitions, its run, the registry, the live definition |
//! | `emulator` | QEMU processes, monitor connections, emulator capabilities, the KVM probe |
//! | `store` | crash-safe files, the status record and its write policy, re-adoption at start-up |
//! | `nics` | taps of guest NICs, made by the network driver and inherited by QEMU |
//! | `stats` | guest statistics from a per-VM cache a bounded poller refreshes; the driver's health |
//! | [`state`] | libvirt's numbers: states, reasons, events, job types |
//!
//! `docs/ARCHITECTURE.md` (qemu section) describes how they work together.

mod actions;
mod config;
mod driver;
mod emulator;
mod error;
mod events;
mod hotplug;
mod jobs;
mod lifecycle;
mod limits;
mod live;
mod nics;
mod object;
mod shared;
pub mod state;
mod stats;
mod store;

pub use config::{
    Confinement, DEFAULT_SANDBOX, DriverConfig, Layout, PausePoint, StartStage, default_root,
};
pub use confine::{Creds, MAX_GROUPS};
pub use domain::{EmulatorCaps, parse_copy_dest};
pub use driver::{
    BandwidthChange, CpuTarget, Driver, ListFilter, LiveNic, RateChange, Screenshot, StatePolicy,
    UndefineOptions,
};
pub use emulator::chardev::{OpenChardev, TtyLock};
pub use error::{Error, Result};
pub use events::hub::{Listener, Subscription, SubscriptionEnd};
pub use hotplug::{Impact, PinInfo, PinTarget};
pub use jobs::AfterRestore;
pub use jobs::blockjob::{
    AbortOptions, BlockJobInfo, BlockJobSpec, BlockJobState, CopySpec, Intent,
};
pub use jobs::dump::{AfterDump, DumpContent, DumpOptions, MemoryDumpFormat};
pub use jobs::migration::{CopyStorage, MigrateFlags, MigrationConfig, MigrationParams};
pub use jobs::save::SaveOptions;
pub use jobs::stats::{CompletedJob, DiskStats, JobEnd, JobStats, RamStats};
pub use lifecycle::StartOptions;
pub use limits::raise_nofile;
pub use object::def::{Chardev, ChardevEndpoint};
pub use object::{AsyncJobInfo, ControlInfo, Domain, DomainInfo, DomainSummary, JobOutcome};
pub use qmp::MigrationStatus;
pub use state::{
    ControlState, DomainEvent, DomainState, EventKind, JobOperation, JobType, LifecycleKind,
    StateReason, StopCause,
};
pub use stats::{
    Balloon, Block, BlockCounters, CpuTimes, DiskDesc, DomainStats, Freshness, GuestMemory,
    HealthSnapshot, Iothread, JOB_KINDS, MAX_BACKING, MAX_IOTHREADS, Net, RoundError, Sample,
    StatsConfig, Vcpu,
};

/// Process lookups for tests and tools.
pub mod process {
    pub use crate::emulator::process::{cpu_time_ns, env_pidfile, pids_with_arg};
    pub use crate::stats::procfs::affinity_map;
}

/// Whether KVM runs guests here, for tests that choose an accelerator the
/// way the driver does.
pub mod caps {
    pub use crate::emulator::kvm::kvm_works;
}
