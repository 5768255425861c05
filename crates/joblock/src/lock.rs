//! The async wrapper: [`State`] behind a short mutex, and wake-ups by
//! explicit hand-off.
//!
//! Every change to the state (enqueue, release, cancel, timeout, allow-list
//! change, close) runs [`State::grant`] in the same critical section and then,
//! *after* unlocking, wakes exactly the waiters that call resolved. A waiter
//! parks its [`Waker`] under the same mutex in which it finds itself still
//! waiting, so a grant can never slip between "checked" and "parked" (no lost
//! wake-up), and no waiter is woken to find it must sleep again (no thundering
//! herd). The mutex is never held across an `.await` and never around user
//! code.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{HolderInfo, JobError};
use crate::guard::{AsyncJob, JobGuard};
use crate::kind::{AllowList, AsyncKind, JobId, JobKind, NormalJob};
use crate::state::{Failure, State, Status, Want};
use crate::sync::{Deadline, Mutex};

/// The deadline libvirt applies to every job wait; a good default for ours.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The per-domain job lock. See the [crate docs](crate) for the semantics.
///
/// Cheap to clone (all clones are the same lock). Guards keep the lock alive
/// on their own, so they can move into spawned tasks.
#[derive(Clone, Default)]
pub struct JobLock {
    inner: Arc<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    shared: Mutex<Shared>,
    /// Told of every grant and release (set once; see
    /// [`JobLock::set_observer`]).
    observer: std::sync::OnceLock<Arc<dyn JobObserver>>,
}

/// Learns how long each job waited for the lock and how long it held it,
/// for the daemon's metrics. Called outside the lock's mutex, from the
/// task that acquired or dropped the job; it must not block.
pub trait JobObserver: Send + Sync {
    /// `kind` was granted after waiting `waited`.
    fn granted(&self, kind: JobKind, waited: Duration);
    /// `kind` was released after being held `held`.
    fn released(&self, kind: JobKind, held: Duration);
}

#[derive(Default)]
struct Shared {
    state: State,
    /// Wakers of pending acquire futures, by request.
    wakers: HashMap<JobId, Waker>,
}

impl Inner {
    /// Runs `f` under the mutex.
    ///
    /// A poisoned mutex is recovered: the state machine's methods do not
    /// panic half-way through a change, and no user code runs under the
    /// mutex, so the state is consistent whatever panicked.
    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Runs a change, grants what it allows, and wakes the resolved waiters
    /// once the mutex is released.
    fn mutate<R>(&self, f: impl FnOnce(&mut Shared, Instant) -> R) -> R {
        let now = Instant::now();
        let (out, wake) = self.with(|sh| {
            let out = f(sh, now);
            let resolved = sh.state.grant(now);
            let wake: Vec<Waker> = resolved
                .iter()
                .filter_map(|id| sh.wakers.remove(id))
                .collect();
            (out, wake)
        });
        for waker in wake {
            waker.wake();
        }
        out
    }

    /// Reports a release to the observer, if any.
    pub(crate) fn observe_release(&self, kind: JobKind, held: Duration) {
        if let Some(o) = self.observer.get() {
            o.released(kind, held);
        }
    }

    pub(crate) fn release(&self, id: JobId) {
        let released = self.mutate(|sh, _| sh.state.release(id));
        debug_assert!(released, "guard {id} released a job it did not hold");
        tracing::trace!(job = %id, "job released");
    }

    pub(crate) fn set_allowed(&self, id: JobId, allowed: AllowList) {
        self.mutate(|sh, _| sh.state.set_allowed(id, allowed));
    }

    pub(crate) fn allowed(&self, id: JobId) -> AllowList {
        self.with(|sh| sh.state.allowed(id))
            .unwrap_or(AllowList::NONE)
    }

    pub(crate) fn async_destroyed(&self, id: JobId) -> bool {
        self.with(|sh| sh.state.async_destroyed(id))
    }

    /// Queues `want` and waits for it. Nothing happens until the returned
    /// future is first polled; dropping it at any point withdraws the
    /// request (see [`Acquire`]'s `Drop`).
    pub(crate) async fn acquire(
        self: Arc<Self>,
        want: Want,
        owner: Arc<str>,
        deadline: Duration,
    ) -> Result<Granted, JobError> {
        let wanted = want.kind();
        let started = Instant::now();
        let id = self
            .mutate(|sh, now| sh.state.enqueue(want, owner, now))
            .map_err(|f| failure_error(f, wanted))?;
        tracing::trace!(job = %id, %wanted, "job queued");
        Acquire {
            inner: self,
            id,
            wanted,
            deadline: Deadline::after(deadline),
            started,
            done: false,
        }
        .await
    }
}

fn failure_error(f: Failure, wanted: JobKind) -> JobError {
    match f {
        Failure::Closed(reason) => JobError::Closed { wanted, reason },
        Failure::Destroyed => JobError::Destroyed { wanted },
    }
}

/// What a successful acquire hands to the guard.
pub(crate) struct Granted {
    pub(crate) inner: Arc<Inner>,
    pub(crate) id: JobId,
    pub(crate) kind: JobKind,
    pub(crate) owner: Arc<str>,
    pub(crate) since: Instant,
    pub(crate) destroyed_while_waiting: bool,
}

/// Waits for request `id` to be granted, failed or timed out.
///
/// Cancellation safety lives in its `Drop`: whatever the request's status
/// when the future is dropped — queued, granted but not yet observed, failed
/// — it is withdrawn under the mutex, and a grant it had is passed on.
struct Acquire {
    inner: Arc<Inner>,
    id: JobId,
    wanted: JobKind,
    deadline: Deadline,
    started: Instant,
    /// Set once the outcome has been handed out; the request is then the
    /// guard's (or nobody's) business.
    done: bool,
}

impl Future for Acquire {
    type Output = Result<Granted, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Poll the timer first so that its waker is registered before we look
        // at the state; a grant found below wins over an expired deadline.
        let expired = this.deadline.poll_expired(cx);
        let id = this.id;
        let wanted = this.wanted;
        let inner = &this.inner;
        let outcome = inner.mutate(|sh, now| match sh.state.take_status(id) {
            Status::Held => {
                sh.wakers.remove(&id);
                #[allow(
                    clippy::expect_used,
                    reason = "a state-machine invariant, checked one line up"
                )]
                let entry = sh
                    .state
                    .held_entry(id)
                    .expect("take_status said Held, and nothing ran in between");
                Poll::Ready(Ok((
                    entry.owner.clone(),
                    entry.granted_at.unwrap_or(now),
                    entry.destroyed_while_waiting(),
                )))
            }
            Status::Failed(f) => {
                sh.wakers.remove(&id);
                Poll::Ready(Err(failure_error(f, wanted)))
            }
            Status::Waiting if expired => {
                sh.wakers.remove(&id);
                #[allow(
                    clippy::expect_used,
                    reason = "a state-machine invariant, checked one line up"
                )]
                let t = sh
                    .state
                    .time_out(id, now)
                    .expect("take_status said Waiting, and nothing ran in between");
                Poll::Ready(Err(JobError::Timeout {
                    wanted,
                    waited: now.saturating_duration_since(this.started),
                    holders: t.holders,
                    waiters_ahead: t.waiters_ahead,
                }))
            }
            Status::Waiting => {
                let waker = cx.waker();
                sh.wakers
                    .entry(id)
                    .and_modify(|w| {
                        if !w.will_wake(waker) {
                            w.clone_from(waker);
                        }
                    })
                    .or_insert_with(|| waker.clone());
                Poll::Pending
            }
            Status::Unknown => {
                unreachable!("job {id} vanished from the lock while its acquire future was pending")
            }
        });
        match outcome {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.done = true;
                Poll::Ready(match result {
                    Ok((owner, since, destroyed_while_waiting)) => {
                        if let Some(o) = this.inner.observer.get() {
                            o.granted(wanted, since.saturating_duration_since(this.started));
                        }
                        tracing::debug!(
                            job = %id, %wanted, %owner,
                            waited_ms = since.saturating_duration_since(this.started).as_millis() as u64,
                            "job granted"
                        );
                        Ok(Granted {
                            inner: this.inner.clone(),
                            id,
                            kind: wanted,
                            owner,
                            since,
                            destroyed_while_waiting,
                        })
                    }
                    Err(e) => {
                        if matches!(e, JobError::Timeout { .. }) {
                            tracing::warn!(job = %id, "{e}");
                        } else {
                            tracing::debug!(job = %id, "{e}");
                        }
                        Err(e)
                    }
                })
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.id;
        let was = self.inner.mutate(|sh, _| {
            sh.wakers.remove(&id);
            sh.state.cancel(id)
        });
        tracing::trace!(job = %id, status = ?was, "job request withdrawn");
    }
}

impl JobLock {
    /// A free lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports every later grant and release of this lock to `observer`.
    /// Only the first observer set is kept.
    pub fn set_observer(&self, observer: Arc<dyn JobObserver>) {
        let _ = self.inner.observer.set(observer);
    }

    /// Waits up to `deadline` for the normal job `job`.
    ///
    /// `owner` says who asks, e.g. "remote DOMAIN_SUSPEND from client 7"; it
    /// appears in other waiters' timeout errors and in [`holders`](Self::holders).
    /// The request takes its place in the queue when the returned future is
    /// first polled; the future is cancellation-safe (dropping it withdraws
    /// the request, or releases the job if it was granted meanwhile).
    ///
    /// A granted job only means no conflicting job runs: the caller must still
    /// check that the domain is in the state it needs (it may have been
    /// destroyed or shut down while we waited; see
    /// [`JobGuard::destroyed_while_waiting`]).
    pub fn acquire(
        &self,
        job: NormalJob,
        owner: impl Into<String>,
        deadline: Duration,
    ) -> impl Future<Output = Result<JobGuard, JobError>> + Send + 'static {
        let fut = self
            .inner
            .clone()
            .acquire(Want::Normal(job), owner.into().into(), deadline);
        async move { fut.await.map(JobGuard::new) }
    }

    /// Waits up to `deadline` for the async slot (and a moment of a free
    /// normal slot) to start the async job `kind`, during which the normal
    /// jobs in `allowed` (plus destroy and its own nested jobs) may run.
    pub fn acquire_async(
        &self,
        kind: AsyncKind,
        allowed: AllowList,
        owner: impl Into<String>,
        deadline: Duration,
    ) -> impl Future<Output = Result<AsyncJob, JobError>> + Send + 'static {
        let fut = self.inner.clone().acquire(
            Want::Async { kind, allowed },
            owner.into().into(),
            deadline,
        );
        async move { fut.await.map(|g| AsyncJob::new(JobGuard::new(g), kind)) }
    }

    /// Waits up to `deadline` for the exclusive destroy job.
    ///
    /// The request goes ahead of every queued waiter except earlier destroys,
    /// and runs beside any async job. Kill QEMU *before* calling this: that
    /// fails the monitor commands of whatever jobs hold the lock, which is
    /// what makes them release it soon.
    pub fn acquire_destroy(
        &self,
        owner: impl Into<String>,
        deadline: Duration,
    ) -> impl Future<Output = Result<JobGuard, JobError>> + Send + 'static {
        let fut = self
            .inner
            .clone()
            .acquire(Want::Destroy, owner.into().into(), deadline);
        async move { fut.await.map(JobGuard::new) }
    }

    /// Who holds the lock now: the async job first, then the others in grant
    /// order. For error messages and `domjobinfo`.
    pub fn holders(&self) -> Vec<HolderInfo> {
        let now = Instant::now();
        self.inner.with(|sh| sh.state.holders(now))
    }

    /// The running async job, if any: what `domjobinfo` from any client shows.
    pub fn async_job(&self) -> Option<HolderInfo> {
        self.holders()
            .into_iter()
            .find(|h| matches!(h.kind, JobKind::Async(_)))
    }

    /// Number of queued waiters.
    pub fn waiting(&self) -> usize {
        self.inner.with(|sh| sh.state.waiting())
    }

    /// Marks the domain gone (undefined, or a transient domain that stopped):
    /// every queued waiter fails with [`JobError::Closed`] carrying `reason`,
    /// and so does every later acquire. Current holders are not affected.
    /// Irreversible: a domain defined again gets a new lock.
    pub fn close(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.inner
            .mutate(|sh, _| {
                let failed = sh.state.close(reason);
                // mutate() only wakes what grant() resolves; these were resolved
                // by close() and need waking too.
                failed
                    .iter()
                    .filter_map(|id| sh.wakers.remove(id))
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .for_each(Waker::wake);
    }

    /// Runs `f` on the state machine and the number of parked wakers, for
    /// tests' post-conditions.
    #[cfg(test)]
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&State, usize) -> R) -> R {
        self.inner.with(|sh| f(&sh.state, sh.wakers.len()))
    }
}

impl fmt::Debug for JobLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobLock")
            .field("holders", &self.holders())
            .field("waiting", &self.waiting())
            .finish()
    }
}
