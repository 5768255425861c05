//! Scenario tests and the property test of the state machine.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn owner(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn t0() -> Instant {
    Instant::now()
}

fn enq(s: &mut State, want: Want) -> JobId {
    s.enqueue(want, owner("test"), t0())
        .expect("lock is open and no destroy ran")
}

fn is_held(s: &State, id: JobId) -> bool {
    s.held.iter().any(|e| e.id == id)
}

const Q: Want = Want::Normal(NormalJob::Query);
const M: Want = Want::Normal(NormalJob::Modify);
const SUSPEND: Want = Want::Normal(NormalJob::Suspend);

fn save(allowed: AllowList) -> Want {
    Want::Async {
        kind: AsyncKind::Save,
        allowed,
    }
}

fn nested(parent: JobId) -> Want {
    Want::Nested {
        parent,
        parent_kind: AsyncKind::Save,
        op: NormalJob::Modify,
    }
}

#[test]
fn queries_share_modify_excludes() {
    let mut s = State::default();
    let q1 = enq(&mut s, Q);
    let q2 = enq(&mut s, Q);
    assert_eq!(s.grant(t0()), vec![q1, q2]);
    let m = enq(&mut s, M);
    let q3 = enq(&mut s, Q);
    // FIFO: q3 would fit beside q1/q2 but must not pass the waiting modify.
    assert_eq!(s.grant(t0()), vec![]);
    s.release(q1);
    s.release(q2);
    assert_eq!(s.grant(t0()), vec![m]);
    s.release(m);
    assert_eq!(s.grant(t0()), vec![q3]);
}

#[test]
fn queries_pass_a_modify_parked_by_the_async_job() {
    let mut s = State::default();
    let a = enq(&mut s, save(AllowList::DEFAULT.with(NormalJob::Suspend)));
    assert_eq!(s.grant(t0()), vec![a]);
    let m = enq(&mut s, M);
    let q = enq(&mut s, Q);
    let sus = enq(&mut s, SUSPEND);
    // m is parked (not allowed); q runs; suspend waits for q only.
    assert_eq!(s.grant(t0()), vec![q]);
    s.release(q);
    assert_eq!(s.grant(t0()), vec![sus]);
    s.release(sus);
    assert_eq!(s.grant(t0()), vec![]);
    assert!(!is_held(&s, m));
    // Async ends: m is at the head again, and a later query queues behind it.
    let q2 = enq(&mut s, Q);
    let n = s.held.len();
    assert_eq!(n, 1);
    s.release(a);
    assert_eq!(s.grant(t0()), vec![m]);
    assert!(!is_held(&s, q2));
    s.release(m);
    assert_eq!(s.grant(t0()), vec![q2]);
}

#[test]
fn second_async_is_parked_and_does_not_block_queries() {
    let mut s = State::default();
    let a = enq(&mut s, save(AllowList::DEFAULT));
    s.grant(t0());
    let b = enq(
        &mut s,
        Want::Async {
            kind: AsyncKind::BlockJob,
            allowed: AllowList::DEFAULT,
        },
    );
    let q = enq(&mut s, Q);
    assert_eq!(s.grant(t0()), vec![q]);
    s.release(q);
    s.release(a);
    assert_eq!(s.grant(t0()), vec![b]);
}

#[test]
fn nested_jobs_interleave_fifo_with_allowed_jobs() {
    let mut s = State::default();
    let a = enq(&mut s, save(AllowList::DEFAULT.with(NormalJob::Suspend)));
    s.grant(t0());
    let n1 = enq(&mut s, nested(a));
    assert_eq!(s.grant(t0()), vec![n1]);
    let sus = enq(&mut s, SUSPEND);
    let n2 = enq(&mut s, nested(a));
    assert_eq!(s.grant(t0()), vec![]);
    s.release(n1);
    assert_eq!(s.grant(t0()), vec![sus]);
    s.release(sus);
    assert_eq!(s.grant(t0()), vec![n2]);
}

#[test]
fn destroy_jumps_the_queue_and_fails_nested_waiters() {
    let mut s = State::default();
    let a = enq(&mut s, save(AllowList::DEFAULT));
    s.grant(t0());
    let n1 = enq(&mut s, nested(a));
    s.grant(t0());
    let n2 = enq(&mut s, nested(a));
    let q = enq(&mut s, Q);
    let d1 = enq(&mut s, Want::Destroy);
    let d2 = enq(&mut s, Want::Destroy);
    let order: Vec<JobId> = s.queue.iter().map(|e| e.id).collect();
    assert_eq!(order, vec![d1, d2, n2, q]);
    s.release(n1);
    let resolved = s.grant(t0());
    assert!(resolved.contains(&d1) && resolved.contains(&n2));
    assert_eq!(s.take_status(n2), Status::Failed(Failure::Destroyed));
    assert!(s.async_destroyed(a));
    assert_eq!(
        s.enqueue(nested(a), owner("x"), t0()),
        Err(Failure::Destroyed)
    );
    s.release(d1);
    assert_eq!(s.grant(t0()), vec![d2]);
    s.release(d2);
    assert_eq!(s.grant(t0()), vec![q]);
    let e = s.held_entry(q).expect("q is held");
    assert!(e.destroyed_while_waiting());
}

#[test]
fn close_fails_waiters_and_later_requests() {
    let mut s = State::default();
    let m = enq(&mut s, M);
    s.grant(t0());
    let q = enq(&mut s, Q);
    assert_eq!(s.close("domain undefined".into()), vec![q]);
    assert_eq!(
        s.take_status(q),
        Status::Failed(Failure::Closed("domain undefined".into()))
    );
    assert!(s.enqueue(Q, owner("x"), t0()).is_err());
    assert!(s.release(m));
}

#[test]
fn timeout_reports_holders_and_position() {
    let mut s = State::default();
    let now = t0();
    let a = s
        .enqueue(save(AllowList::NONE), owner("remote DOMAIN_SAVE"), now)
        .expect("open");
    s.grant(now);
    let m1 = enq(&mut s, M);
    let m2 = enq(&mut s, M);
    let later = now + Duration::from_secs(41);
    let t = s.time_out(m2, later).expect("m2 waits");
    assert_eq!(t.waiters_ahead, 1);
    assert_eq!(t.holders.len(), 1);
    assert_eq!(t.holders[0].id, a);
    assert_eq!(t.holders[0].held_for, Duration::from_secs(41));
    assert!(s.time_out(m2, later).is_none());
    assert_eq!(s.cancel(m1), Status::Waiting);
}

#[test]
fn cancel_of_granted_request_releases_it() {
    let mut s = State::default();
    let m = enq(&mut s, M);
    let q = enq(&mut s, Q);
    s.grant(t0());
    // m was granted "concurrently" with its future being dropped.
    assert_eq!(s.cancel(m), Status::Held);
    assert_eq!(s.grant(t0()), vec![q]);
}

// ---------------------------------------------------------------------------
// Property test
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Normal(NormalJob),
    Nested(NormalJob),
    Async(usize, u8),
    Destroy,
    Grant,
    Release(usize),
    TimeOut(usize),
    Cancel(usize),
    SetAllowed(u8),
    Close,
}

fn allow_list(bits: u8) -> AllowList {
    NormalJob::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, j)| j)
        .collect()
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let normal = prop::sample::select(NormalJob::ALL.to_vec());
    prop_oneof![
        40 => normal.clone().prop_map(Op::Normal),
        15 => normal.prop_map(Op::Nested),
        10 => (0..AsyncKind::ALL.len(), any::<u8>()).prop_map(|(k, a)| Op::Async(k, a)),
        8 => Just(Op::Destroy),
        30 => Just(Op::Grant),
        35 => any::<usize>().prop_map(Op::Release),
        10 => any::<usize>().prop_map(Op::TimeOut),
        10 => any::<usize>().prop_map(Op::Cancel),
        8 => any::<u8>().prop_map(Op::SetAllowed),
        // Closing ends the interesting part of a run: keep it rare.
        1 => Just(Op::Close),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Queued,
    Granted,
    Failed,
    TimedOut,
    Cancelled,
}

struct Harness {
    s: State,
    now: Instant,
    /// Grant after every change, as the lock does; otherwise only on
    /// `Op::Grant`, which exercises states the lock never leaves behind.
    eager: bool,
    fates: HashMap<JobId, Fate>,
}

impl Harness {
    fn new(eager: bool) -> Self {
        Harness {
            s: State::default(),
            now: Instant::now(),
            eager,
            fates: HashMap::new(),
        }
    }

    fn enqueue(&mut self, want: Want) {
        let expect_destroyed = matches!(want, Want::Nested { .. }) && {
            let slot = self
                .s
                .async_job
                .expect("nested only generated beside async");
            slot.epoch != self.s.destroy_epoch
        };
        let closed = self.s.closed.is_some();
        match self.s.enqueue(want, owner("prop"), self.now) {
            Ok(id) => {
                assert!(
                    !closed && !expect_destroyed,
                    "request accepted when it should fail"
                );
                self.fates.insert(id, Fate::Queued);
            }
            Err(Failure::Closed(_)) => assert!(closed),
            Err(Failure::Destroyed) => assert!(expect_destroyed),
        }
    }

    fn nested_alive(&self, parent: JobId) -> bool {
        self.s
            .held
            .iter()
            .chain(self.s.queue.iter())
            .any(|e| matches!(e.want, Want::Nested { parent: p, .. } if p == parent))
    }

    /// Releases `id`, honouring what the guards' lifetimes guarantee: an
    /// async job ends only after its nested jobs (held ones are released,
    /// queued ones withdrawn, as their owner would).
    fn release(&mut self, id: JobId) {
        let is_async = self
            .s
            .held_entry(id)
            .is_some_and(|e| matches!(e.want, Want::Async { .. }));
        if is_async {
            let nested: Vec<(JobId, bool)> = self
                .s
                .held
                .iter()
                .map(|e| (e, true))
                .chain(self.s.queue.iter().map(|e| (e, false)))
                .filter(|(e, _)| matches!(e.want, Want::Nested { parent, .. } if parent == id))
                .map(|(e, held)| (e.id, held))
                .collect();
            for (n, held) in nested {
                if held {
                    assert!(self.s.release(n));
                } else {
                    assert_eq!(self.s.cancel(n), Status::Waiting);
                    self.fates.insert(n, Fate::Cancelled);
                }
            }
        }
        assert!(self.s.release(id));
    }

    fn apply(&mut self, op: &Op) {
        self.now += Duration::from_millis(1);
        match op {
            Op::Normal(j) => self.enqueue(Want::Normal(*j)),
            Op::Nested(j) => {
                if let Some(slot) = self.s.async_job {
                    let parent_kind = match self.s.held_entry(slot.id).map(|e| &e.want) {
                        Some(Want::Async { kind, .. }) => *kind,
                        other => panic!("async slot without async holder: {other:?}"),
                    };
                    self.enqueue(Want::Nested {
                        parent: slot.id,
                        parent_kind,
                        op: *j,
                    });
                }
            }
            Op::Async(k, a) => self.enqueue(Want::Async {
                kind: AsyncKind::ALL[*k],
                allowed: allow_list(*a),
            }),
            Op::Destroy => self.enqueue(Want::Destroy),
            Op::Grant => self.grant(),
            Op::Release(i) => {
                if !self.s.held.is_empty() {
                    let id = self.s.held[i % self.s.held.len()].id;
                    self.release(id);
                }
            }
            Op::TimeOut(i) => {
                if !self.s.queue.is_empty() {
                    let id = self.s.queue[i % self.s.queue.len()].id;
                    let t = self.s.time_out(id, self.now).expect("queued");
                    assert!(t.waiters_ahead < self.s.queue.len() + 1);
                    self.fates.insert(id, Fate::TimedOut);
                }
            }
            Op::Cancel(i) => {
                let ids: Vec<JobId> = self
                    .s
                    .queue
                    .iter()
                    .chain(self.s.held.iter())
                    .map(|e| e.id)
                    .filter(|id| {
                        // Cancelling a held async job with live nested jobs is
                        // what the borrow checker rules out.
                        !(self.s.async_job.is_some_and(|s| s.id == *id) && self.nested_alive(*id))
                    })
                    .collect();
                if !ids.is_empty() {
                    let id = ids[i % ids.len()];
                    match self.s.cancel(id) {
                        Status::Waiting => {
                            self.fates.insert(id, Fate::Cancelled);
                        }
                        Status::Held => {}
                        other => panic!("cancel of live request {id} returned {other:?}"),
                    }
                }
            }
            Op::SetAllowed(a) => {
                if let Some(slot) = self.s.async_job {
                    assert!(self.s.set_allowed(slot.id, allow_list(*a)));
                }
            }
            Op::Close => {
                let failed = self.s.close("gone".into());
                self.collect(&failed);
            }
        }
        if self.eager && !matches!(op, Op::Grant) {
            self.grant();
        }
        self.check_invariants();
    }

    /// Hands failures to their "waiters", as the acquire futures do.
    fn collect(&mut self, ids: &[JobId]) {
        for id in ids {
            match self.s.take_status(*id) {
                Status::Held => {
                    self.fates.insert(*id, Fate::Granted);
                }
                Status::Failed(_) => {
                    self.fates.insert(*id, Fate::Failed);
                }
                other => panic!("resolved request {id} is {other:?}"),
            }
        }
    }

    /// Grants, checking FIFO order and maximality of the result.
    fn grant(&mut self) {
        let before: Vec<(JobId, Want)> = self
            .s
            .queue
            .iter()
            .map(|e| (e.id, e.want.clone()))
            .collect();
        let resolved = self.s.grant(self.now);
        for id in &resolved {
            if !is_held(&self.s, *id) {
                continue;
            }
            let pos = before
                .iter()
                .position(|(b, _)| b == id)
                .expect("granted request was queued");
            // FIFO: every earlier waiter still queued is parked.
            for (earlier, want) in &before[..pos] {
                if self.s.queue.iter().any(|e| e.id == *earlier) {
                    assert!(
                        self.s.is_parked(want),
                        "{id} granted past unparked earlier waiter {earlier} ({want:?})"
                    );
                }
            }
            // Beside an async job, only what it allowed at grant time.
            let entry = self.s.held_entry(*id).expect("held");
            if let (Want::Normal(op), Some(slot)) = (&entry.want, self.s.async_job) {
                assert!(slot.allowed.contains(*op), "{op} granted beside async job");
            }
        }
        self.collect(&resolved);
        // Maximal: the first waiter that is not parked does not fit.
        if let Some(first) = self.s.queue.iter().find(|e| !self.s.is_parked(&e.want)) {
            assert!(
                !self.s.fits(&first.want),
                "waiter {} could have been granted",
                first.id
            );
        }
        assert!(self.s.grant(self.now).is_empty(), "grant is not idempotent");
    }

    fn check_invariants(&self) {
        let s = &self.s;
        let exclusive = s.held.iter().filter(|e| e.want.is_exclusive()).count();
        let shared = s.held.iter().filter(|e| e.want.is_shared()).count();
        assert!(exclusive <= 1, "two exclusive holders: {:?}", s.held);
        assert!(exclusive == 0 || shared == 0, "exclusive beside shared");
        let asyncs: Vec<JobId> = s
            .held
            .iter()
            .filter(|e| matches!(e.want, Want::Async { .. }))
            .map(|e| e.id)
            .collect();
        assert!(asyncs.len() <= 1, "two async jobs");
        assert_eq!(asyncs.first().copied(), s.async_job.map(|a| a.id));
        for e in s.held.iter().chain(s.queue.iter()) {
            if let Want::Nested { parent, .. } = e.want {
                assert_eq!(Some(parent), s.async_job.map(|a| a.id), "orphan nested job");
            }
        }
        // Queue shape: destroys first; arrival order within each part.
        let first_other = s
            .queue
            .iter()
            .position(|e| e.want != Want::Destroy)
            .unwrap_or(s.queue.len());
        assert!(
            s.queue
                .iter()
                .skip(first_other)
                .all(|e| e.want != Want::Destroy),
            "destroy queued behind a non-destroy waiter"
        );
        let ids: Vec<JobId> = s.queue.iter().map(|e| e.id).collect();
        assert!(ids[..first_other].windows(2).all(|w| w[0] < w[1]));
        assert!(ids[first_other..].windows(2).all(|w| w[0] < w[1]));
        for e in &s.queue {
            assert!(!is_held(s, e.id), "{} both queued and held", e.id);
        }
        if s.closed.is_some() {
            assert!(s.queue.is_empty());
        }
    }

    /// Releases everything, repeatedly: the queue must drain.
    fn drain(&mut self) {
        let limit = 2 * self.fates.len() + 4;
        for _ in 0..limit {
            self.grant();
            self.check_invariants();
            if s_empty(&self.s) {
                break;
            }
            let ids: Vec<JobId> = self
                .s
                .held
                .iter()
                .filter(|e| !(matches!(e.want, Want::Async { .. }) && self.nested_alive(e.id)))
                .map(|e| e.id)
                .collect();
            for id in ids {
                assert!(self.s.release(id));
            }
            self.check_invariants();
        }
        assert!(s_empty(&self.s), "queue did not drain: {:?}", self.s.queue);
        for (id, fate) in &self.fates {
            assert_ne!(*fate, Fate::Queued, "{id} never resolved");
        }
        assert_eq!(self.s.uncollected_failures(), 0);
    }
}

fn s_empty(s: &State) -> bool {
    s.queue.is_empty() && s.held.is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn state_machine_invariants(eager in any::<bool>(), ops in prop::collection::vec(op_strategy(), 1..80)) {
        let mut h = Harness::new(eager);
        for op in &ops {
            h.apply(op);
        }
        h.drain();
    }
}
