//! Concurrency model tests of the real lock under shuttle.
//!
//! In `cfg(test)` builds the lock's mutex is shuttle's and its deadlines are
//! countdowns of yields (see [`crate::sync`]), so shuttle explores random
//! interleavings of the real `JobLock` code: enqueue, grant, hand-off, waker
//! parking, timeouts and dropped acquire futures. Every test checks that all
//! tasks finish (shuttle fails a run in which every task is blocked), that
//! the holders the tasks observe are compatible, that the grant order recorded
//! under the lock's mutex obeys the FIFO rule, and that the lock ends clean:
//! no holder, no waiter, no parked waker, no uncollected failure.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use shuttle::future::{block_on, spawn, yield_now};
use shuttle::sync::Mutex;

use crate::kind::{AllowList, AsyncKind, JobId, JobKind, NormalJob};
use crate::state::Trace;
use crate::{JobError, JobLock};

/// Iterations per test: enough to hit the rare interleavings (grant racing a
/// drop, timeout racing a grant) many times, small enough for CI.
const ITERATIONS: usize = 2000;

/// Under shuttle, a deadline of a second or more never passes.
const FOREVER: Duration = Duration::from_secs(3600);

/// Under shuttle, passes after a few yields.
fn short() -> Duration {
    Duration::from_millis(3)
}

/// Polls `fut`, giving up (and dropping it) after `yields` pending polls:
/// the way a `select!` or a dropped task cancels an acquire.
async fn give_up_after<F: Future>(fut: F, yields: usize) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut left = yields;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if left == 0 {
            return Poll::Ready(None);
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// What the tasks see from inside their critical sections. Counters are
/// raised after a grant and lowered before the release, so they
/// under-approximate the real holders: any overlap observed here is real.
#[derive(Default)]
struct Occupancy {
    queries: usize,
    exclusive: usize,
    /// An async job is running.
    async_on: bool,
    /// A job not in the allow-list is running.
    disallowed: usize,
}

type Shared = Arc<Mutex<Occupancy>>;

fn occ(o: &Shared) -> shuttle::sync::MutexGuard<'_, Occupancy> {
    o.lock().expect("no test task panics while holding it")
}

/// Enters a critical section for `job`, asserting compatibility.
fn enter(o: &Shared, job: NormalJob, allowed: AllowList) {
    let mut o = occ(o);
    assert_eq!(o.exclusive, 0, "{job} granted beside an exclusive job");
    if job.is_shared() {
        o.queries += 1;
    } else {
        assert_eq!(o.queries, 0, "{job} granted beside queries");
        o.exclusive += 1;
    }
    if !allowed.contains(job) {
        assert!(
            !o.async_on,
            "{job} granted beside an async job that does not allow it"
        );
        o.disallowed += 1;
    }
}

fn leave(o: &Shared, job: NormalJob, allowed: AllowList) {
    let mut o = occ(o);
    if job.is_shared() {
        o.queries -= 1;
    } else {
        o.exclusive -= 1;
    }
    if !allowed.contains(job) {
        o.disallowed -= 1;
    }
}

/// Replays the lock's own trace against the grant rule: a request is granted
/// only when every request queued ahead of it (destroys first, then arrival
/// order) is parked by the running async job, whose allow-list is `allowed`.
fn check_trace(trace: &[Trace], allowed: AllowList) {
    let mut queue: Vec<(JobId, JobKind)> = Vec::new();
    let mut kinds = std::collections::HashMap::new();
    let mut running_async: Option<JobId> = None;
    let parked = |kind: &JobKind, running: Option<JobId>| {
        running.is_some()
            && match kind {
                JobKind::Async(_) => true,
                JobKind::Normal(op) => !allowed.contains(*op),
                JobKind::Nested { .. } | JobKind::Destroy => false,
            }
    };
    let remove = |queue: &mut Vec<(JobId, JobKind)>, id: &JobId| {
        queue.retain(|(q, _)| q != id);
    };
    for t in trace {
        match t {
            Trace::Enqueued(id, kind) => {
                kinds.insert(*id, *kind);
                if *kind == JobKind::Destroy {
                    let at = queue
                        .iter()
                        .position(|(_, k)| *k != JobKind::Destroy)
                        .unwrap_or(queue.len());
                    queue.insert(at, (*id, *kind));
                } else {
                    queue.push((*id, *kind));
                }
            }
            Trace::Granted(id) => {
                let pos = queue
                    .iter()
                    .position(|(q, _)| q == id)
                    .expect("granted request was queued");
                for (ahead, kind) in &queue[..pos] {
                    assert!(
                        parked(kind, running_async),
                        "{id} granted past {ahead} ({kind}); trace: {trace:?}"
                    );
                }
                queue.remove(pos);
                if matches!(kinds.get(id), Some(JobKind::Async(_))) {
                    running_async = Some(*id);
                }
            }
            Trace::Released(id) => {
                if running_async == Some(*id) {
                    running_async = None;
                }
            }
            Trace::Cancelled(id) | Trace::TimedOut(id) | Trace::Failed(id) => {
                remove(&mut queue, id);
            }
        }
    }
    assert!(queue.is_empty(), "requests left queued: {queue:?}");
}

/// The lock is back to empty and leaked nothing.
fn assert_clean(lock: &JobLock, allowed: AllowList) {
    lock.inspect(|s, wakers| {
        assert_eq!(s.waiting(), 0, "waiters left");
        assert!(
            s.holders(tokio::time::Instant::now()).is_empty(),
            "holders left"
        );
        assert_eq!(wakers, 0, "parked wakers leaked");
        assert_eq!(s.uncollected_failures(), 0, "failures never collected");
        check_trace(&s.trace, allowed);
    });
}

/// Exclusive jobs only: they enter in exactly the order they were queued,
/// whatever times out or is dropped in between.
#[test]
fn exclusive_jobs_fifo_with_timeouts_and_drops() {
    shuttle::check_random(
        || {
            block_on(async {
                let lock = JobLock::new();
                let o: Shared = Arc::default();
                let order = Arc::new(Mutex::new(Vec::<JobId>::new()));
                let mut tasks = Vec::new();
                for i in 0..5 {
                    let (lock, o, order) = (lock.clone(), o.clone(), order.clone());
                    tasks.push(spawn(async move {
                        let fut = lock.acquire(
                            NormalJob::Modify,
                            format!("task {i}"),
                            if i == 2 { short() } else { FOREVER },
                        );
                        let res = if i == 3 {
                            give_up_after(fut, 2).await
                        } else {
                            Some(fut.await)
                        };
                        match res {
                            Some(Ok(g)) => {
                                enter(&o, NormalJob::Modify, AllowList::ALL);
                                order.lock().expect("no panic").push(g.id());
                                yield_now().await;
                                leave(&o, NormalJob::Modify, AllowList::ALL);
                            }
                            Some(Err(JobError::Timeout { .. })) | None => {}
                            Some(Err(e)) => panic!("unexpected {e}"),
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("task finished");
                }
                let order = order.lock().expect("no panic");
                assert!(order.windows(2).all(|w| w[0] < w[1]), "not FIFO: {order:?}");
                assert_clean(&lock, AllowList::NONE);
            });
        },
        ITERATIONS,
    );
}

/// Queries, modifications and a destroy: mutual exclusion, destroy first,
/// FIFO otherwise.
#[test]
fn queries_modify_and_destroy() {
    shuttle::check_random(
        || {
            block_on(async {
                let lock = JobLock::new();
                let o: Shared = Arc::default();
                let mut tasks = Vec::new();
                let jobs = [
                    (Some(NormalJob::Query), FOREVER, false),
                    (Some(NormalJob::Modify), FOREVER, false),
                    (Some(NormalJob::Query), short(), false),
                    (None, FOREVER, false), // destroy
                    (Some(NormalJob::Suspend), FOREVER, true),
                ];
                for (i, (job, deadline, drop_early)) in jobs.into_iter().enumerate() {
                    let (lock, o) = (lock.clone(), o.clone());
                    tasks.push(spawn(async move {
                        let owner = format!("task {i}");
                        // Destroy is checked as an exclusive job.
                        let as_job = job.unwrap_or(NormalJob::Modify);
                        let fut = async move {
                            match job {
                                Some(j) => lock.acquire(j, owner, deadline).await,
                                None => lock.acquire_destroy(owner, deadline).await,
                            }
                        };
                        let res = if drop_early {
                            give_up_after(fut, 1).await
                        } else {
                            Some(fut.await)
                        };
                        if let Some(Ok(_g)) = res {
                            enter(&o, as_job, AllowList::ALL);
                            yield_now().await;
                            leave(&o, as_job, AllowList::ALL);
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("task finished");
                }
                assert_clean(&lock, AllowList::NONE);
            });
        },
        ITERATIONS,
    );
}

/// An async job doing nested jobs while an allowed suspend and queries
/// interleave and a disallowed modify waits for the end; with or without a
/// destroy cutting the async job short.
fn async_scenario(with_destroy: bool) {
    let allowed = AllowList::DEFAULT.with(NormalJob::Suspend);
    shuttle::check_random(
        move || {
            block_on(async move {
                let lock = JobLock::new();
                let o: Shared = Arc::default();
                let mut tasks = Vec::new();
                {
                    let (lock, o) = (lock.clone(), o.clone());
                    tasks.push(spawn(async move {
                        let job = lock
                            .acquire_async(AsyncKind::MigrationOut, allowed, "migrate", FOREVER)
                            .await
                            .expect("no deadline, lock open");
                        {
                            let mut occ = occ(&o);
                            assert_eq!(occ.disallowed, 0, "async job started beside a modify");
                            occ.async_on = true;
                        }
                        for step in 0..2 {
                            match job.nested(NormalJob::Modify, FOREVER).await {
                                Ok(n) => {
                                    assert!(matches!(n.kind(), JobKind::Nested { .. }));
                                    enter(&o, NormalJob::MigrationOp, AllowList::ALL);
                                    yield_now().await;
                                    leave(&o, NormalJob::MigrationOp, AllowList::ALL);
                                }
                                Err(JobError::Destroyed { .. }) => {
                                    assert!(with_destroy);
                                    assert!(job.destroyed());
                                    break;
                                }
                                Err(e) => panic!("nested step {step}: {e}"),
                            }
                        }
                        occ(&o).async_on = false;
                    }));
                }
                let jobs = [
                    (NormalJob::Query, FOREVER),
                    (NormalJob::Suspend, FOREVER),
                    (NormalJob::Modify, FOREVER),
                    (NormalJob::Query, short()),
                ];
                for (i, (job, deadline)) in jobs.into_iter().enumerate() {
                    let (lock, o) = (lock.clone(), o.clone());
                    tasks.push(spawn(async move {
                        if let Ok(_g) = lock.acquire(job, format!("task {i}"), deadline).await {
                            enter(&o, job, allowed);
                            yield_now().await;
                            leave(&o, job, allowed);
                        }
                    }));
                }
                if with_destroy {
                    let (lock, o) = (lock.clone(), o.clone());
                    tasks.push(spawn(async move {
                        let _g = lock
                            .acquire_destroy("destroy", FOREVER)
                            .await
                            .expect("no deadline, lock open");
                        // Destroy is exclusive on the normal slot and ignores
                        // the allow-list.
                        enter(&o, NormalJob::Abort, AllowList::ALL);
                        yield_now().await;
                        leave(&o, NormalJob::Abort, AllowList::ALL);
                    }));
                }
                for t in tasks {
                    t.await.expect("task finished");
                }
                assert_clean(&lock, allowed);
            });
        },
        ITERATIONS,
    );
}

#[test]
fn async_job_nested_and_allowed_jobs() {
    async_scenario(false);
}

#[test]
fn async_job_cut_short_by_destroy() {
    async_scenario(true);
}

/// A waiter that times out or is dropped while it blocks later waiters hands
/// them the lock at once: here the query holder waits for the later query,
/// so a missed re-grant is a deadlock shuttle reports.
#[test]
fn withdrawn_waiter_unblocks_later_waiters() {
    shuttle::check_random(
        || {
            block_on(async {
                let lock = JobLock::new();
                let o: Shared = Arc::default();
                let first = lock
                    .acquire(NormalJob::Query, "first", FOREVER)
                    .await
                    .expect("free lock");
                enter(&o, NormalJob::Query, AllowList::ALL);
                let modify = |name: &'static str, deadline, give_up: bool| {
                    let (lock, o) = (lock.clone(), o.clone());
                    spawn(async move {
                        let fut = lock.acquire(NormalJob::Modify, name, deadline);
                        let r = if give_up {
                            give_up_after(fut, 2).await
                        } else {
                            Some(fut.await)
                        };
                        // Granted only after `first` ended, if at all.
                        if let Some(Ok(_g)) = r {
                            enter(&o, NormalJob::Modify, AllowList::ALL);
                            leave(&o, NormalJob::Modify, AllowList::ALL);
                        }
                    })
                };
                let timing_out = modify("m1", short(), false);
                let dropped = modify("m2", FOREVER, true);
                let later = {
                    let (lock, o) = (lock.clone(), o.clone());
                    spawn(async move {
                        let _g = lock
                            .acquire(NormalJob::Query, "later", FOREVER)
                            .await
                            .expect("no deadline");
                        enter(&o, NormalJob::Query, AllowList::ALL);
                        leave(&o, NormalJob::Query, AllowList::ALL);
                    })
                };
                later.await.expect("later query granted beside the first");
                leave(&o, NormalJob::Query, AllowList::ALL);
                drop(first);
                timing_out.await.expect("finished");
                dropped.await.expect("finished");
                assert_clean(&lock, AllowList::NONE);
            });
        },
        ITERATIONS,
    );
}

/// Closing the lock wakes every waiter with an error; holders finish.
#[test]
fn close_wakes_all_waiters() {
    shuttle::check_random(
        || {
            block_on(async {
                let lock = JobLock::new();
                let holder = lock
                    .acquire(NormalJob::Modify, "holder", FOREVER)
                    .await
                    .expect("free lock");
                let mut tasks = Vec::new();
                for i in 0..3 {
                    let lock = lock.clone();
                    tasks.push(spawn(async move {
                        let r = if i == 0 {
                            lock.acquire_destroy("d", FOREVER).await
                        } else {
                            lock.acquire(NormalJob::Query, format!("q{i}"), FOREVER)
                                .await
                        };
                        match r {
                            Ok(_) | Err(JobError::Closed { .. }) => {}
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }));
                }
                let closer = {
                    let lock = lock.clone();
                    spawn(async move {
                        yield_now().await;
                        lock.close("domain undefined");
                    })
                };
                yield_now().await;
                drop(holder);
                closer.await.expect("closer finished");
                for t in tasks {
                    t.await.expect("task finished");
                }
                assert_clean(&lock, AllowList::NONE);
            });
        },
        ITERATIONS,
    );
}
