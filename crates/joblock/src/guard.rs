//! RAII guards: holding one is holding the job; dropping it releases the
//! job and hands the lock on to the next eligible waiters.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{HolderInfo, JobError};
use crate::kind::{AllowList, AsyncKind, JobId, JobKind, NormalJob};
use crate::lock::{Granted, Inner};
use crate::state::Want;

/// A granted normal or destroy job. Releases on drop.
///
/// `Send + 'static`: it owns a handle on the lock, so it can move into a
/// spawned task.
#[must_use = "the job is released as soon as the guard is dropped"]
pub struct JobGuard {
    inner: Arc<Inner>,
    id: JobId,
    kind: JobKind,
    owner: Arc<str>,
    since: Instant,
    destroyed_while_waiting: bool,
}

impl JobGuard {
    pub(crate) fn new(g: Granted) -> Self {
        JobGuard {
            inner: g.inner,
            id: g.id,
            kind: g.kind,
            owner: g.owner,
            since: g.since,
            destroyed_while_waiting: g.destroyed_while_waiting,
        }
    }

    /// The job's identity.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// What the job is.
    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// Who asked for it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// When it was granted.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// The job as [`JobLock::holders`](crate::JobLock::holders) shows it.
    pub fn info(&self) -> HolderInfo {
        HolderInfo {
            id: self.id,
            kind: self.kind,
            owner: self.owner.to_string(),
            since: self.since,
            held_for: Instant::now().saturating_duration_since(self.since),
        }
    }

    /// Whether a destroy ran between this job's request and its grant.
    ///
    /// The lock does not fail such jobs itself — a waiter queued behind a
    /// destroy may be `start`, which wants exactly that — but a job that needs
    /// the QEMU it saw before queuing should check this (or the domain's
    /// state) and bail out.
    pub fn destroyed_while_waiting(&self) -> bool {
        self.destroyed_while_waiting
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.inner.release(self.id);
        let held = Instant::now().saturating_duration_since(self.since);
        self.inner.observe_release(self.kind, held);
    }
}

impl fmt::Debug for JobGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobGuard")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("owner", &self.owner)
            .finish()
    }
}

/// A running async job. Releases the async slot on drop.
///
/// Its owner does monitor work in [`nested`](Self::nested) jobs, which
/// borrow it: the async job cannot end while one of its nested jobs is held
/// or being acquired, which the state machine relies on.
#[must_use = "the async job ends as soon as the guard is dropped"]
pub struct AsyncJob {
    guard: JobGuard,
    kind: AsyncKind,
}

impl AsyncJob {
    pub(crate) fn new(guard: JobGuard, kind: AsyncKind) -> Self {
        AsyncJob { guard, kind }
    }

    /// The job's identity.
    pub fn id(&self) -> JobId {
        self.guard.id
    }

    /// Which async job this is.
    pub fn kind(&self) -> AsyncKind {
        self.kind
    }

    /// Who started it.
    pub fn owner(&self) -> &str {
        self.guard.owner()
    }

    /// When it started.
    pub fn started_at(&self) -> Instant {
        self.guard.since
    }

    /// Kind, owner, start and duration, for `domjobinfo`.
    pub fn info(&self) -> HolderInfo {
        self.guard.info()
    }

    /// Waits up to `deadline` for a nested job: the normal slot, exclusively,
    /// for this async job's monitor work.
    ///
    /// Nested jobs are always allowed beside their own async job and queue
    /// FIFO with the allowed normal jobs, so those interleave between nested
    /// jobs and neither side starves. Fails with [`JobError::Destroyed`] once
    /// a destroy has run during this async job: its QEMU is gone.
    pub fn nested(
        &self,
        op: NormalJob,
        deadline: Duration,
    ) -> impl Future<Output = Result<NestedJob<'_>, JobError>> + Send + '_ {
        let fut = self.guard.inner.clone().acquire(
            Want::Nested {
                parent: self.guard.id,
                parent_kind: self.kind,
                op,
            },
            self.guard.owner.clone(),
            deadline,
        );
        async move {
            fut.await.map(|g| NestedJob {
                guard: JobGuard::new(g),
                _parent: PhantomData,
            })
        }
    }

    /// Replaces the allow-list. Jobs already granted beside the async job
    /// keep running; the new list governs grants from now on. Widening it
    /// may grant waiters at once.
    pub fn set_allowed(&self, allowed: AllowList) {
        self.guard.inner.set_allowed(self.guard.id, allowed);
    }

    /// The current allow-list.
    pub fn allowed(&self) -> AllowList {
        self.guard.inner.allowed(self.guard.id)
    }

    /// Whether a destroy has run since this async job started. The job should
    /// then wind up: its QEMU is gone and its nested jobs fail.
    pub fn destroyed(&self) -> bool {
        self.guard.inner.async_destroyed(self.guard.id)
    }
}

impl fmt::Debug for AsyncJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncJob")
            .field("id", &self.guard.id)
            .field("kind", &self.kind)
            .field("owner", &self.guard.owner)
            .finish()
    }
}

/// A nested job of an async job. Releases on drop; cannot outlive its
/// [`AsyncJob`]. Derefs to the underlying [`JobGuard`] for its details.
#[must_use = "the nested job is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct NestedJob<'a> {
    guard: JobGuard,
    _parent: PhantomData<&'a AsyncJob>,
}

impl Deref for NestedJob<'_> {
    type Target = JobGuard;

    fn deref(&self) -> &JobGuard {
        &self.guard
    }
}
