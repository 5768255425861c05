//! The per-domain job lock: FIFO-fair, with deadlines, queries beside long
//! jobs, and destroy first.
//!
//! # Why not libvirt's
//!
//! libvirt wakes job waiters by broadcast on a condition variable, so whoever
//! the scheduler favours wins and a waiter can lose every race until its 30 s
//! deadline ("cannot acquire state change lock", with no word on who holds
//! it). Monitoring clients see that error all the time while a migration or
//! block job runs. This lock keeps one queue, hands the lock to the waiters it
//! grants explicitly, lets queries run beside async jobs, and says in its
//! timeout error who holds the lock and for how long.
//!
//! # Model
//!
//! Two slots, as in libvirt:
//!
//! * the **normal slot**, held by [`NormalJob::Query`] jobs together or by
//!   one exclusive job ([`NormalJob::Modify`] and the other tagged
//!   modifications, a nested job, or destroy);
//! * the **async slot**, held by at most one [`AsyncJob`] (migration, save,
//!   block job, ...). Starting one needs both slots free; once started it
//!   holds only the async slot, does its monitor work in
//!   [nested jobs](AsyncJob::nested) (exclusive on the normal slot), and lets
//!   the normal jobs of its [`AllowList`] run in between.
//!
//! Destroy queues ahead of everything but earlier destroys and ignores the
//! allow-list; the caller kills QEMU first so that holders fail fast.
//!
//! # The grant rule
//!
//! A waiter is granted when it fits beside the holders and every earlier
//! waiter still queued is *parked* — unable to run until the running async job
//! ends, because it is another async job or is missing from the allow-list.
//! Parked waiters thus never hold up queries, and regain their place at the
//! head as soon as the async job ends. See the state machine
//! (`src/state.rs`) for the details; the rule is property-tested.
//!
//! # Destroy, and domains that are gone
//!
//! Destroy takes only the normal slot, so it runs beside a running async
//! job (a migration waiting for an event holds nothing else). Once a destroy
//! has been granted, that async job's nested jobs fail with
//! [`JobError::Destroyed`] and [`AsyncJob::destroyed`] tells its owner to
//! wind up. Other waiters queued behind a destroy are *not* failed — one of
//! them may be the `start` that wants the domain down — but their guards say
//! [`JobGuard::destroyed_while_waiting`], and as in libvirt a granted job must
//! check the domain's state before acting. When the domain object itself goes
//! away (undefine, a transient domain stopping), the driver calls
//! [`JobLock::close`]: every waiter and every later acquire fails with
//! [`JobError::Closed`] and the reason given.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use joblock::{AllowList, AsyncKind, JobLock, NormalJob, DEFAULT_DEADLINE};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), joblock::JobError> {
//! let lock = JobLock::new();
//! let save = lock
//!     .acquire_async(AsyncKind::Save, AllowList::DEFAULT, "remote DOMAIN_SAVE from client 3", DEFAULT_DEADLINE)
//!     .await?;
//! {
//!     let _monitor = save.nested(NormalJob::Modify, DEFAULT_DEADLINE).await?;
//!     // ... "stop", "migrate" to file ...
//! }
//! // A stats client is not held up by the save:
//! let stats = lock.acquire(NormalJob::Query, "remote DOMAIN_GET_INFO from client 5", DEFAULT_DEADLINE).await?;
//! drop(stats);
//! // A modification is, and says so:
//! let err = lock
//!     .acquire(NormalJob::Modify, "client 7", Duration::ZERO)
//!     .await
//!     .unwrap_err();
//! assert!(err.to_string().contains("held by async job save"));
//! # Ok(()) }
//! ```

mod error;
mod guard;
mod kind;
mod lock;
mod state;
mod sync;

#[cfg(test)]
mod shuttle_tests;

pub use error::{HolderInfo, JobError};
pub use guard::{AsyncJob, JobGuard, NestedJob};
pub use kind::{AllowList, AsyncKind, JobId, JobKind, NormalJob};
pub use lock::{DEFAULT_DEADLINE, JobLock, JobObserver};
