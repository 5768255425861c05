//! The job lock as a plain data structure: no locks, no async, no clock.
//!
//! Keeping the policy here, apart from the waking machinery in
//! [`lock`](crate::lock), is what lets us property-test it exhaustively: every
//! operation is a synchronous method, time is passed in, and the caller (the
//! lock, or a test) decides when to call [`State::grant`].
//!
//! # The grant rule
//!
//! Waiters form one queue, in arrival order, except that destroy requests
//! are inserted after the destroy requests already queued and before
//! everything else. [`State::grant`] walks the queue from the head:
//!
//! 1. a waiter that is *parked* (it cannot run until the running async job
//!    ends: an async request, or a normal job missing from the async job's
//!    allow-list) is skipped — it neither runs nor holds up later waiters;
//! 2. otherwise, if it fits beside the current holders it is granted (moved
//!    to the holders, its owner woken) and the walk continues;
//! 3. otherwise the walk stops: no later waiter may overtake it.
//!
//! So a waiter runs only when every earlier waiter still queued is parked.
//! When the async job ends nobody is parked any more and the former parked
//! waiters are, again, ahead of everything that arrived after them: nothing
//! starves.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::HolderInfo;
use crate::kind::{AllowList, AsyncKind, JobId, JobKind, NormalJob};

/// What a request asks for, with what the state machine needs to decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    Normal(NormalJob),
    /// Monitor work of the async job `parent`.
    Nested {
        parent: JobId,
        parent_kind: AsyncKind,
        op: NormalJob,
    },
    Async {
        kind: AsyncKind,
        allowed: AllowList,
    },
    Destroy,
}

impl Want {
    pub(crate) fn kind(&self) -> JobKind {
        match self {
            Want::Normal(op) => JobKind::Normal(*op),
            Want::Nested {
                parent_kind, op, ..
            } => JobKind::Nested {
                op: *op,
                parent: *parent_kind,
            },
            Want::Async { kind, .. } => JobKind::Async(*kind),
            Want::Destroy => JobKind::Destroy,
        }
    }

    /// Takes the normal slot alone.
    fn is_exclusive(&self) -> bool {
        match self {
            Want::Normal(op) => !op.is_shared(),
            Want::Nested { .. } | Want::Destroy => true,
            Want::Async { .. } => false,
        }
    }

    /// Takes the normal slot together with others of its kind.
    fn is_shared(&self) -> bool {
        matches!(self, Want::Normal(op) if op.is_shared())
    }
}

/// A queued or granted request.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: JobId,
    pub(crate) want: Want,
    pub(crate) owner: Arc<str>,
    pub(crate) queued_at: Instant,
    /// Set when granted.
    pub(crate) granted_at: Option<Instant>,
    /// Destroy epoch when queued; compared with the epoch at grant to tell
    /// the owner that a destroy ran while it waited.
    pub(crate) queued_epoch: u64,
    pub(crate) granted_epoch: u64,
}

impl Entry {
    fn info(&self, now: Instant) -> HolderInfo {
        let since = self.granted_at.unwrap_or(self.queued_at);
        HolderInfo {
            id: self.id,
            kind: self.want.kind(),
            owner: self.owner.to_string(),
            since,
            held_for: now.saturating_duration_since(since),
        }
    }

    /// Whether a destroy was granted between this entry's enqueue and grant.
    pub(crate) fn destroyed_while_waiting(&self) -> bool {
        self.granted_epoch != self.queued_epoch
    }
}

#[derive(Debug, Clone, Copy)]
struct AsyncSlot {
    id: JobId,
    allowed: AllowList,
    /// Destroy epoch when the async job started: a later destroy makes its
    /// nested jobs fail.
    epoch: u64,
}

/// Why a request was resolved without being granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Closed(String),
    Destroyed,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Waiting,
    Held,
    Failed(Failure),
    Unknown,
}

/// What a timed-out waiter is told.
#[derive(Debug, Clone)]
pub(crate) struct TimedOut {
    pub(crate) holders: Vec<HolderInfo>,
    pub(crate) waiters_ahead: usize,
}

/// What happened to a request, for the shuttle tests' checks of the real
/// lock's ordering (recorded under the lock's mutex, so in true order).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trace {
    Enqueued(JobId, JobKind),
    Granted(JobId),
    Released(JobId),
    Cancelled(JobId),
    TimedOut(JobId),
    Failed(JobId),
}

/// Appends to [`State::trace`] in test builds; nothing otherwise.
macro_rules! record {
    ($state:expr, $event:expr) => {
        #[cfg(test)]
        $state.trace.push($event);
    };
}

/// The lock's whole state. See the module docs for the grant rule.
#[derive(Debug, Default)]
pub(crate) struct State {
    next_id: u64,
    queue: VecDeque<Entry>,
    held: Vec<Entry>,
    async_job: Option<AsyncSlot>,
    /// Resolved-with-error waiters whose owner has not collected the error.
    failed: HashMap<JobId, Failure>,
    /// Number of destroys granted so far.
    destroy_epoch: u64,
    closed: Option<String>,
    #[cfg(test)]
    pub(crate) trace: Vec<Trace>,
}

impl State {
    /// Queues a request. Fails at once if the lock is closed, or if a nested
    /// job is asked for after a destroy ended its async job's QEMU.
    ///
    /// Call [`grant`](Self::grant) afterwards.
    pub(crate) fn enqueue(
        &mut self,
        want: Want,
        owner: Arc<str>,
        now: Instant,
    ) -> Result<JobId, Failure> {
        if let Some(reason) = &self.closed {
            return Err(Failure::Closed(reason.clone()));
        }
        if let Want::Nested { parent, .. } = &want {
            match self.async_job {
                Some(slot) if slot.id == *parent => {
                    if slot.epoch != self.destroy_epoch {
                        return Err(Failure::Destroyed);
                    }
                }
                // The API hands out nested jobs only through a live async
                // guard, which keeps its slot; this is unreachable, and the
                // closest truthful answer is that the job is over.
                _ => {
                    debug_assert!(false, "nested job for an async job that is not running");
                    return Err(Failure::Destroyed);
                }
            }
        }
        let id = JobId(self.next_id);
        self.next_id += 1;
        let is_destroy = want == Want::Destroy;
        let entry = Entry {
            id,
            want,
            owner,
            queued_at: now,
            granted_at: None,
            queued_epoch: self.destroy_epoch,
            granted_epoch: self.destroy_epoch,
        };
        record!(self, Trace::Enqueued(id, entry.want.kind()));
        if is_destroy {
            // Behind earlier destroys (they are equivalent; FIFO among them),
            // ahead of everything else.
            let at = self
                .queue
                .iter()
                .position(|e| e.want != Want::Destroy)
                .unwrap_or(self.queue.len());
            self.queue.insert(at, entry);
        } else {
            self.queue.push_back(entry);
        }
        Ok(id)
    }

    /// Whether `want` cannot run before the running async job ends (or
    /// widens its allow-list). Parked waiters do not hold up later ones.
    pub(crate) fn is_parked(&self, want: &Want) -> bool {
        let Some(slot) = &self.async_job else {
            return false;
        };
        match want {
            Want::Destroy | Want::Nested { .. } => false,
            Want::Async { .. } => true,
            Want::Normal(op) => !slot.allowed.contains(*op),
        }
    }

    /// Whether `want` fits beside the current holders (ignoring the queue).
    pub(crate) fn fits(&self, want: &Want) -> bool {
        let exclusive = self.held.iter().any(|e| e.want.is_exclusive());
        let shared = self.held.iter().any(|e| e.want.is_shared());
        match want {
            Want::Normal(op) if op.is_shared() => {
                !exclusive && self.async_job.is_none_or(|s| s.allowed.contains(*op))
            }
            Want::Normal(op) => {
                !exclusive && !shared && self.async_job.is_none_or(|s| s.allowed.contains(*op))
            }
            Want::Destroy => !exclusive && !shared,
            Want::Nested { parent, .. } => {
                !exclusive && !shared && self.async_job.is_some_and(|s| s.id == *parent)
            }
            Want::Async { .. } => self.async_job.is_none() && !exclusive && !shared,
        }
    }

    /// Grants every waiter the rule allows (see the module docs) and
    /// returns the requests resolved by this call — granted, or failed
    /// because a granted destroy ended their async job — whose owners must be
    /// woken. Idempotent: a second call without another change returns
    /// nothing.
    pub(crate) fn grant(&mut self, now: Instant) -> Vec<JobId> {
        let mut resolved = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.is_parked(&self.queue[i].want) {
                i += 1;
                continue;
            }
            if !self.fits(&self.queue[i].want) {
                break;
            }
            let Some(mut entry) = self.queue.remove(i) else {
                break;
            };
            entry.granted_at = Some(now);
            entry.granted_epoch = self.destroy_epoch;
            let id = entry.id;
            let was_destroy = match &entry.want {
                Want::Async { allowed, .. } => {
                    self.async_job = Some(AsyncSlot {
                        id,
                        allowed: *allowed,
                        epoch: self.destroy_epoch,
                    });
                    false
                }
                Want::Destroy => true,
                _ => false,
            };
            self.held.push(entry);
            resolved.push(id);
            record!(self, Trace::Granted(id));
            if was_destroy {
                self.destroy_epoch += 1;
                self.fail_nested_waiters(&mut resolved);
                i = 0;
            }
        }
        resolved
    }

    /// A granted destroy killed the QEMU the async job drives: its queued
    /// nested jobs fail instead of running against a dead process.
    fn fail_nested_waiters(&mut self, resolved: &mut Vec<JobId>) {
        let mut failed = Vec::new();
        self.queue.retain(|e| {
            let nested = matches!(e.want, Want::Nested { .. });
            if nested {
                failed.push(e.id);
            }
            !nested
        });
        for id in failed {
            self.failed.insert(id, Failure::Destroyed);
            resolved.push(id);
            record!(self, Trace::Failed(id));
        }
    }

    /// Ends a held job. Returns whether `id` was held.
    ///
    /// Precondition (guaranteed by the guards' lifetimes): an async job is
    /// released only after its nested jobs, held or queued, are gone.
    /// Call [`grant`](Self::grant) afterwards.
    pub(crate) fn release(&mut self, id: JobId) -> bool {
        let Some(pos) = self.held.iter().position(|e| e.id == id) else {
            return false;
        };
        let entry = self.held.swap_remove(pos);
        if matches!(entry.want, Want::Async { .. }) {
            debug_assert!(
                !self
                    .held
                    .iter()
                    .chain(self.queue.iter())
                    .any(|e| matches!(e.want, Want::Nested { parent, .. } if parent == id)),
                "async job released while its nested jobs are alive"
            );
            self.async_job = None;
        }
        record!(self, Trace::Released(id));
        true
    }

    /// Withdraws a request whatever its status: a waiter leaves the queue, a
    /// holder releases, a failure is forgotten. This is what makes dropping
    /// an acquire future safe even if it was granted or failed concurrently.
    /// Returns the status it had. Call [`grant`](Self::grant) afterwards.
    pub(crate) fn cancel(&mut self, id: JobId) -> Status {
        if let Some(pos) = self.queue.iter().position(|e| e.id == id) {
            self.queue.remove(pos);
            record!(self, Trace::Cancelled(id));
            Status::Waiting
        } else if self.release(id) {
            Status::Held
        } else if let Some(f) = self.failed.remove(&id) {
            Status::Failed(f)
        } else {
            Status::Unknown
        }
    }

    /// Where `id` stands. A failure is handed over (and forgotten) by this
    /// call; a grant stays until released.
    pub(crate) fn take_status(&mut self, id: JobId) -> Status {
        if self.held.iter().any(|e| e.id == id) {
            Status::Held
        } else if self.queue.iter().any(|e| e.id == id) {
            Status::Waiting
        } else if let Some(f) = self.failed.remove(&id) {
            Status::Failed(f)
        } else {
            Status::Unknown
        }
    }

    /// The deadline of waiter `id` passed: withdraws it and says who was in
    /// the way. `None` if it is no longer waiting (it was granted or failed
    /// first, which wins). Call [`grant`](Self::grant) afterwards.
    pub(crate) fn time_out(&mut self, id: JobId, now: Instant) -> Option<TimedOut> {
        let pos = self.queue.iter().position(|e| e.id == id)?;
        let holders = self.holders(now);
        self.queue.remove(pos);
        record!(self, Trace::TimedOut(id));
        Some(TimedOut {
            holders,
            waiters_ahead: pos,
        })
    }

    /// Changes the running async job's allow-list. Holders already granted
    /// keep running (the async job's owner asked for them to be allowed);
    /// the new list applies to grants from now on. Returns whether `id` is
    /// the running async job. Call [`grant`](Self::grant) afterwards.
    pub(crate) fn set_allowed(&mut self, id: JobId, allowed: AllowList) -> bool {
        match &mut self.async_job {
            Some(slot) if slot.id == id => {
                slot.allowed = allowed;
                true
            }
            _ => false,
        }
    }

    /// The running async job's allow-list, if `id` is the running async job.
    pub(crate) fn allowed(&self, id: JobId) -> Option<AllowList> {
        self.async_job.filter(|s| s.id == id).map(|s| s.allowed)
    }

    /// Whether a destroy was granted after the async job `id` started.
    pub(crate) fn async_destroyed(&self, id: JobId) -> bool {
        self.async_job
            .is_some_and(|s| s.id == id && s.epoch != self.destroy_epoch)
    }

    /// The domain is gone: every waiter fails now, every later request fails
    /// at once. Holders keep their guards and release normally. Returns the
    /// waiters to wake.
    pub(crate) fn close(&mut self, reason: String) -> Vec<JobId> {
        let ids: Vec<JobId> = self.queue.drain(..).map(|e| e.id).collect();
        for id in &ids {
            self.failed.insert(*id, Failure::Closed(reason.clone()));
            record!(self, Trace::Failed(*id));
        }
        if self.closed.is_none() {
            self.closed = Some(reason);
        }
        ids
    }

    /// Snapshot of the holders: the async job first, then by grant order.
    pub(crate) fn holders(&self, now: Instant) -> Vec<HolderInfo> {
        let mut held: Vec<&Entry> = self.held.iter().collect();
        held.sort_by_key(|e| (!matches!(e.want, Want::Async { .. }), e.granted_at, e.id));
        held.into_iter().map(|e| e.info(now)).collect()
    }

    /// The held entry `id`.
    pub(crate) fn held_entry(&self, id: JobId) -> Option<&Entry> {
        self.held.iter().find(|e| e.id == id)
    }

    /// Number of queued waiters.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Number of failures not yet collected by their waiters.
    #[cfg(test)]
    pub(crate) fn uncollected_failures(&self) -> usize {
        self.failed.len()
    }
}

#[cfg(test)]
mod tests;
