//! Job acquisition with the driver's deadline and error mapping, and the
//! async jobs built on it.
//!
//! Every modify operation takes a job from the domain's FIFO-fair
//! [`joblock::JobLock`]; a timeout becomes `OperationTimeout` naming the
//! holder (requirement 5). Queries take no job: they read the snapshot.

pub mod blockjob;
pub mod image_xml;
pub mod qemu_img;
pub mod restore_image;
pub mod save;
pub mod saveimage;

use std::time::Duration;

use joblock::{AllowList, AsyncKind, JobError, NormalJob};

use crate::Error;
use crate::domain::Domain;

/// Runs save-image file work (reading a header and XML of up to 16 MiB,
/// copying a stream) on the blocking pool, off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("save image task failed: {e}")))?
}

/// Maps a lock failure to the error a client sees.
pub fn map_err(dom: &Domain, e: JobError) -> Error {
    match e {
        JobError::Timeout { .. } => Error::JobTimeout(e.to_string()),
        JobError::Closed { .. } => Error::NoDomain(format!("no domain with name '{}'", dom.name())),
        JobError::Destroyed { .. } => Error::NotRunning,
    }
}

/// A normal job (query, modify, suspend, ...).
pub async fn begin(
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
pub async fn begin_destroy(
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
pub async fn begin_async(
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
