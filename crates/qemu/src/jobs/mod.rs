//! Jobs: acquiring the domain's job lock with the driver's deadline and
//! error mapping, and the long jobs built on it.
//!
//! Every modify operation takes a job from the domain's FIFO-fair
//! [`joblock::JobLock`]; a timeout becomes `OperationTimeout` naming the
//! holder, so no waiter starves and every wait has a clear error. Queries
//! take no job: they read the snapshot. The long jobs are `virsh save`
//! ([`save`]), `virsh restore` and managed save ([`restore`]), the save
//! image's header and XML ([`image`]), `virsh dump` ([`dump`]) and block
//! jobs ([`blockjob`]); their statistics are in [`stats`].

pub(crate) mod blockjob;
pub(crate) mod dump;
pub(crate) mod image;
pub(crate) mod migration;
pub(crate) mod qemu_img;
pub(crate) mod restore;
pub(crate) mod save;
pub(crate) mod stats;
pub(crate) mod stream;

use std::time::Duration;

use joblock::{AllowList, AsyncKind, JobError, NormalJob};

use crate::Error;
use crate::object::Domain;

/// Runs save-image file work (reading a header and XML of up to 16 MiB,
/// copying a stream) on the blocking pool, off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("save image task failed: {e}")))?
}

/// The state a restored guest starts in (`--running` / `--paused`): what
/// a save records in its image, and what a restore may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRestore {
    Running,
    Paused,
}

impl AfterRestore {
    /// The state of a guest that was (or is to be) `running`.
    pub fn from_running(running: bool) -> Self {
        if running {
            AfterRestore::Running
        } else {
            AfterRestore::Paused
        }
    }

    pub fn is_running(self) -> bool {
        self == AfterRestore::Running
    }
}

/// Maps a lock failure to the error a client sees.
pub(crate) fn map_err(dom: &Domain, e: JobError) -> Error {
    match e {
        JobError::Timeout { .. } => Error::JobTimeout(e.to_string()),
        JobError::Closed { .. } => Error::NoDomain(format!("no domain with name '{}'", dom.name())),
        JobError::Destroyed { .. } => Error::NotRunning,
    }
}

/// A normal job (query, modify, suspend, ...).
pub(crate) async fn begin(
    dom: &Domain,
    job: NormalJob,
    owner: &str,
    wait: Duration,
) -> crate::Result<joblock::JobGuard> {
    dom.jobs
        .acquire(job, owner, wait)
        .await
        .map_err(|e| map_err(dom, e))
}

/// The destroy job: ahead of every queued waiter, beside any async job.
pub(crate) async fn begin_destroy(
    dom: &Domain,
    owner: &str,
    wait: Duration,
) -> crate::Result<joblock::JobGuard> {
    dom.jobs
        .acquire_destroy(owner, wait)
        .await
        .map_err(|e| map_err(dom, e))
}

/// An async job with its allow-list.
pub(crate) async fn begin_async(
    dom: &Domain,
    kind: AsyncKind,
    allowed: AllowList,
    owner: &str,
    wait: Duration,
) -> crate::Result<joblock::AsyncJob> {
    dom.jobs
        .acquire_async(kind, allowed, owner, wait)
        .await
        .map_err(|e| map_err(dom, e))
}
