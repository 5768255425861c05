//! The ferrovirt QEMU driver: domain registry, lifecycle, jobs, the event
//! pipeline, QEMU processes, persistence and restart.
//!
//! Entry point: [`Driver::open`]. See `docs/ARCHITECTURE.md` (qemu section)
//! for how the requirements in `DESIGN.md` map onto the modules.

pub mod actions;
pub mod caps;
pub mod config;
pub mod def;
pub mod device_events;
pub mod domain;
pub mod driver;
pub mod error;
pub mod events;
pub mod jobs;
pub mod jobstats;
pub mod lifecycle;
mod limits;
pub mod monitor;
pub mod persist;
pub mod process;
pub mod registry;
pub mod restore;
pub mod state;
pub mod subscribers;
pub mod throttle;

pub use config::{DriverConfig, default_root};
pub use domain::{
    AsyncJobInfo, ControlInfo, ControlState, Domain, DomainInfo, DomainSummary, JobOutcome,
    Progress,
};
pub use driver::{Driver, JobStats, JobType, ListFilter};
pub use error::{Error, Result};
pub use jobstats::{CompletedJob, JobEnd, RamStats};
pub use limits::raise_nofile;
pub use state::{DomainEvent, DomainState, EventKind, LifecycleKind, StateReason, StopCause};
pub use subscribers::{Listener, Subscription, SubscriptionEnd};
