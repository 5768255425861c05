//! Behaviour of the real lock on tokio, with paused time so that deadlines
//! and durations are exact and no test sleeps for real.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use joblock::{
    AllowList, AsyncJob, AsyncKind, DEFAULT_DEADLINE, JobError, JobGuard, JobKind, JobLock,
    NestedJob, NormalJob,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Lets every spawned task run until it blocks (current-thread runtime).
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<&'static str>>>);

impl Log {
    fn push(&self, s: &'static str) {
        self.0.lock().expect("log").push(s);
    }
    fn get(&self) -> Vec<&'static str> {
        self.0.lock().expect("log").clone()
    }
}

/// A task that acquires `job`, logs `name` once granted, and holds the job
/// until told to release it.
struct Holder {
    release: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Holder {
    fn spawn(lock: &JobLock, job: NormalJob, name: &'static str, log: &Log) -> Holder {
        let (release, rx) = oneshot::channel();
        let fut = lock.acquire(job, name, DEFAULT_DEADLINE);
        let log = log.clone();
        let task = tokio::spawn(async move {
            let guard = fut.await.expect("granted within the deadline");
            log.push(name);
            let _ = rx.await;
            drop(guard);
        });
        Holder { release, task }
    }

    async fn release(self) {
        let _ = self.release.send(());
        self.task.await.expect("holder task");
        settle().await;
    }
}

#[test]
fn lock_and_guards_are_send_sync_static() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync::<JobLock>();
    send_static::<JobGuard>();
    send_static::<AsyncJob>();
    send_sync::<JobError>();
    fn send<T: Send>() {}
    send::<NestedJob<'static>>();
}

#[tokio::test(start_paused = true)]
async fn deadline_error_names_holder_and_duration() {
    let lock = JobLock::new();
    let _save = lock
        .acquire_async(
            AsyncKind::Save,
            AllowList::DEFAULT,
            "remote DOMAIN_SAVE from client 3",
            DEFAULT_DEADLINE,
        )
        .await
        .expect("free lock");
    tokio::time::advance(Duration::from_secs(11)).await;
    let err = lock
        .acquire(
            NormalJob::Suspend,
            "remote DOMAIN_SUSPEND from client 7",
            DEFAULT_DEADLINE,
        )
        .await
        .expect_err("suspend is not allowed beside this save");
    assert_eq!(
        err.to_string(),
        "cannot acquire job lock for suspend within 30s: held by async job save \
         (owner 'remote DOMAIN_SAVE from client 3') for 41s"
    );
    match err {
        JobError::Timeout {
            waited, holders, ..
        } => {
            assert_eq!(waited, Duration::from_secs(30));
            assert_eq!(holders.len(), 1);
            assert_eq!(holders[0].kind, JobKind::Async(AsyncKind::Save));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(lock.waiting(), 0, "the timed-out waiter left the queue");
}

#[tokio::test(start_paused = true)]
async fn queries_run_beside_async_job_while_modify_waits() {
    let lock = JobLock::new();
    let log = Log::default();
    let migration = lock
        .acquire_async(
            AsyncKind::MigrationOut,
            AllowList::DEFAULT,
            "migrate",
            DEFAULT_DEADLINE,
        )
        .await
        .expect("free lock");
    let modify = Holder::spawn(&lock, NormalJob::Modify, "modify", &log);
    settle().await;
    assert_eq!(lock.waiting(), 1);
    for _ in 0..3 {
        // Queued after the modify, granted at once: the modify is parked.
        let q = lock
            .acquire(NormalJob::Query, "stats", Duration::ZERO)
            .await
            .expect("queries never wait behind a migration");
        assert_eq!(lock.holders().len(), 2);
        drop(q);
    }
    assert!(log.get().is_empty(), "modify ran beside the migration");
    // domjobinfo from any client sees the migration.
    let info = lock.async_job().expect("migration runs");
    assert_eq!(info.owner, "migrate");
    drop(migration);
    settle().await;
    assert_eq!(log.get(), vec!["modify"]);
    modify.release().await;
}

#[tokio::test(start_paused = true)]
async fn modify_queued_before_queries_blocks_them_without_async_job() {
    let lock = JobLock::new();
    let log = Log::default();
    let q1 = Holder::spawn(&lock, NormalJob::Query, "q1", &log);
    settle().await;
    let m = Holder::spawn(&lock, NormalJob::Modify, "m", &log);
    settle().await;
    let q2 = Holder::spawn(&lock, NormalJob::Query, "q2", &log);
    settle().await;
    assert_eq!(log.get(), vec!["q1"], "q2 must not pass the queued modify");
    q1.release().await;
    assert_eq!(log.get(), vec!["q1", "m"]);
    m.release().await;
    assert_eq!(log.get(), vec!["q1", "m", "q2"]);
    q2.release().await;
}

#[tokio::test(start_paused = true)]
async fn destroy_jumps_the_queue() {
    let lock = JobLock::new();
    let log = Log::default();
    let busy = Holder::spawn(&lock, NormalJob::Modify, "busy", &log);
    settle().await;
    let q = Holder::spawn(&lock, NormalJob::Query, "q", &log);
    let m = Holder::spawn(&lock, NormalJob::Modify, "m", &log);
    settle().await;
    let destroy = {
        let fut = lock.acquire_destroy("remote DOMAIN_DESTROY", Duration::from_secs(5));
        let log = log.clone();
        tokio::spawn(async move {
            let g = fut.await.expect("holders release within the deadline");
            log.push("destroy");
            g
        })
    };
    settle().await;
    assert_eq!(lock.waiting(), 3);
    // QEMU was killed; the busy job's monitor command fails and it releases.
    busy.release().await;
    let d = destroy.await.expect("destroy task");
    assert_eq!(log.get(), vec!["busy", "destroy"]);
    drop(d);
    settle().await;
    assert_eq!(log.get(), vec!["busy", "destroy", "q"]);
    q.release().await;
    assert_eq!(log.get(), vec!["busy", "destroy", "q", "m"]);
    m.release().await;
}

#[tokio::test(start_paused = true)]
async fn destroy_times_out_naming_a_stuck_holder() {
    let lock = JobLock::new();
    let _stuck = lock
        .acquire(NormalJob::Modify, "hung monitor command", DEFAULT_DEADLINE)
        .await
        .expect("free lock");
    let q = lock.acquire(NormalJob::Query, "q", DEFAULT_DEADLINE);
    let q = tokio::spawn(q);
    settle().await;
    let err = lock
        .acquire_destroy("destroy", Duration::from_secs(10))
        .await
        .expect_err("holder never releases");
    assert!(
        err.to_string()
            .starts_with("cannot acquire job lock for destroy within 10s: held by modify (owner 'hung monitor command') for 10s"),
        "{err}"
    );
    // Destroy was ahead of the query: no waiters ahead of it.
    assert!(matches!(
        err,
        JobError::Timeout {
            waiters_ahead: 0,
            ..
        }
    ));
    q.abort();
}

#[tokio::test(start_paused = true)]
async fn dropping_an_acquire_future_hands_the_grant_on() {
    let lock = JobLock::new();
    let log = Log::default();
    let first = lock
        .acquire(NormalJob::Modify, "first", DEFAULT_DEADLINE)
        .await
        .expect("free lock");
    // Waiter dropped while queued.
    let dropped_while_queued =
        tokio::spawn(lock.acquire(NormalJob::Modify, "w1", DEFAULT_DEADLINE));
    settle().await;
    // Waiter dropped after it was granted but before it ran.
    let dropped_after_grant = tokio::spawn(lock.acquire(NormalJob::Modify, "w2", DEFAULT_DEADLINE));
    settle().await;
    let last = Holder::spawn(&lock, NormalJob::Modify, "w3", &log);
    settle().await;
    assert_eq!(lock.waiting(), 3);
    dropped_while_queued.abort();
    settle().await;
    assert_eq!(lock.waiting(), 2);
    // Releasing grants w2 and wakes it; abort it before it can run.
    drop(first);
    assert_eq!(lock.holders()[0].owner, "w2");
    dropped_after_grant.abort();
    settle().await;
    assert_eq!(
        log.get(),
        vec!["w3"],
        "the grant w2 never saw was passed on"
    );
    last.release().await;
    assert!(lock.holders().is_empty());
    assert_eq!(lock.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn async_job_nested_jobs_and_allowed_suspend_interleave() {
    let lock = JobLock::new();
    let log = Log::default();
    let migration = lock
        .acquire_async(
            AsyncKind::MigrationOut,
            AllowList::DEFAULT.with(NormalJob::Suspend),
            "remote DOMAIN_MIGRATE_PERFORM3 from client 1",
            DEFAULT_DEADLINE,
        )
        .await
        .expect("free lock");
    let n1 = migration
        .nested(NormalJob::MigrationOp, DEFAULT_DEADLINE)
        .await
        .expect("nested job beside its own async job");
    assert_eq!(
        n1.kind(),
        JobKind::Nested {
            op: NormalJob::MigrationOp,
            parent: AsyncKind::MigrationOut
        }
    );
    let suspend = Holder::spawn(&lock, NormalJob::Suspend, "suspend", &log);
    let modify = Holder::spawn(&lock, NormalJob::Modify, "modify", &log);
    settle().await;
    {
        // The next nested job queues behind the suspend.
        let mut n2_fut = pin!(migration.nested(NormalJob::MigrationOp, DEFAULT_DEADLINE));
        assert!(
            tokio::time::timeout(Duration::from_millis(1), &mut n2_fut)
                .await
                .is_err()
        );
        drop(n1);
        settle().await;
        assert_eq!(log.get(), vec!["suspend"]);
        assert!(
            tokio::time::timeout(Duration::from_millis(1), &mut n2_fut)
                .await
                .is_err(),
            "nested job ran beside the suspend"
        );
        suspend.release().await;
        let n2 = n2_fut.await.expect("nested job after the suspend");
        drop(n2);
    }
    // Widening the allow-list lets the parked modify in at once.
    migration.set_allowed(migration.allowed().with(NormalJob::Modify));
    settle().await;
    assert_eq!(log.get(), vec!["suspend", "modify"]);
    assert_eq!(
        migration.info().kind,
        JobKind::Async(AsyncKind::MigrationOut)
    );
    modify.release().await;
    drop(migration);
    assert!(lock.holders().is_empty());
}

#[tokio::test(start_paused = true)]
async fn after_async_job_ends_the_waiting_modify_goes_before_later_queries() {
    let lock = JobLock::new();
    let log = Log::default();
    let save = lock
        .acquire_async(
            AsyncKind::Save,
            AllowList::DEFAULT,
            "save",
            DEFAULT_DEADLINE,
        )
        .await
        .expect("free lock");
    let q1 = Holder::spawn(&lock, NormalJob::Query, "q1", &log);
    settle().await;
    let m = Holder::spawn(&lock, NormalJob::Modify, "m", &log);
    settle().await;
    let q2 = Holder::spawn(&lock, NormalJob::Query, "q2", &log);
    settle().await;
    assert_eq!(
        log.get(),
        vec!["q1", "q2"],
        "queries pass the parked modify"
    );
    q2.release().await;
    drop(save);
    settle().await;
    // The modify is no longer parked: it waits only for q1, and a query
    // arriving now queues behind it.
    let q3 = Holder::spawn(&lock, NormalJob::Query, "q3", &log);
    settle().await;
    assert_eq!(log.get(), vec!["q1", "q2"]);
    q1.release().await;
    assert_eq!(log.get(), vec!["q1", "q2", "m"]);
    m.release().await;
    assert_eq!(log.get(), vec!["q1", "q2", "m", "q3"]);
    q3.release().await;
}

#[tokio::test(start_paused = true)]
async fn nested_jobs_fail_after_destroy() {
    let lock = JobLock::new();
    let job = lock
        .acquire_async(
            AsyncKind::BlockJob,
            AllowList::DEFAULT,
            "blockcopy",
            DEFAULT_DEADLINE,
        )
        .await
        .expect("free lock");
    let d = lock
        .acquire_destroy("destroy", DEFAULT_DEADLINE)
        .await
        .expect("destroy runs beside an async job");
    drop(d);
    assert!(job.destroyed());
    let err = job
        .nested(NormalJob::Modify, DEFAULT_DEADLINE)
        .await
        .expect_err("QEMU is gone");
    assert!(matches!(err, JobError::Destroyed { .. }), "{err}");
    let later = lock
        .acquire(NormalJob::Query, "q", DEFAULT_DEADLINE)
        .await
        .expect("free normal slot");
    assert!(!later.destroyed_while_waiting());
}

#[tokio::test(start_paused = true)]
async fn close_fails_waiters_and_later_acquires() {
    let lock = JobLock::new();
    let holder = lock
        .acquire(NormalJob::Modify, "undefine", DEFAULT_DEADLINE)
        .await
        .expect("free lock");
    let waiter = tokio::spawn(lock.acquire(NormalJob::Query, "q", DEFAULT_DEADLINE));
    settle().await;
    lock.close("domain 'vm1' was undefined");
    let err = waiter
        .await
        .expect("task")
        .expect_err("closed while waiting");
    assert_eq!(
        err.to_string(),
        "cannot acquire job lock for query: domain 'vm1' was undefined"
    );
    assert!(matches!(
        lock.acquire_destroy("d", DEFAULT_DEADLINE).await,
        Err(JobError::Closed { .. })
    ));
    drop(holder);
    assert!(lock.holders().is_empty());
}

#[tokio::test(start_paused = true)]
async fn guards_move_into_spawned_tasks() {
    let lock = JobLock::new();
    let job = lock
        .acquire_async(AsyncKind::Dump, AllowList::NONE, "dump", DEFAULT_DEADLINE)
        .await
        .expect("free lock");
    let task = tokio::spawn(async move {
        let n = job
            .nested(NormalJob::Modify, DEFAULT_DEADLINE)
            .await
            .expect("nested");
        n.id()
    });
    let id = task.await.expect("task");
    assert!(id.get() > 0);
    assert!(
        lock.holders().is_empty(),
        "the guard dropped in the task released"
    );
}

#[tokio::test(start_paused = true)]
async fn zero_deadline_is_a_try_lock() {
    let lock = JobLock::new();
    let g = lock
        .acquire(NormalJob::Modify, "a", Duration::ZERO)
        .await
        .expect("free lock");
    let err = lock
        .acquire(NormalJob::Query, "b", Duration::ZERO)
        .await
        .expect_err("held");
    assert!(
        err.to_string().starts_with(
            "cannot acquire job lock for query within 0ms: held by modify (owner 'a')"
        ),
        "{err}"
    );
    drop(g);
    assert_eq!(lock.waiting(), 0);
}

/// Records what an observer is told.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, JobKind, Duration)>>);

impl joblock::JobObserver for Seen {
    fn granted(&self, kind: JobKind, waited: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(("granted".into(), kind, waited));
    }
    fn released(&self, kind: JobKind, held: Duration) {
        self.0.lock().unwrap().push(("released".into(), kind, held));
    }
}

#[tokio::test(start_paused = true)]
async fn an_observer_learns_each_wait_and_hold() {
    let lock = JobLock::new();
    let seen = Arc::new(Seen::default());
    lock.set_observer(seen.clone());
    let first = lock
        .acquire(NormalJob::Modify, "first", DEFAULT_DEADLINE)
        .await
        .unwrap();
    let l2 = lock.clone();
    let second = tokio::spawn(async move {
        let g = l2
            .acquire(NormalJob::Query, "second", DEFAULT_DEADLINE)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(g);
    });
    settle().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first);
    second.await.unwrap();
    let seen = seen.0.lock().unwrap().clone();
    let modify = JobKind::Normal(NormalJob::Modify);
    let query = JobKind::Normal(NormalJob::Query);
    assert_eq!(
        seen,
        vec![
            ("granted".into(), modify, Duration::ZERO),
            ("released".into(), modify, Duration::from_millis(100)),
            ("granted".into(), query, Duration::from_millis(100)),
            ("released".into(), query, Duration::from_millis(30)),
        ]
    );
}
