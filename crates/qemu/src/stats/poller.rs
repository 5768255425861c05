//! The background poller: every interval, one round per running VM,
//! spread evenly over the interval, at most `max_in_flight` rounds at
//! once.
//!
//! Cost is bounded whatever the VMs do: one round per VM per interval
//! (fewer for VMs backing off after timeouts), at most `max_in_flight`
//! rounds in flight, one task per round in flight. Transient memory is at
//! most `max_in_flight` rounds' replies, each reply bounded by the QMP
//! line limit: a hostile QEMU can make its round large, never unbounded.
//! A VM whose monitor hangs holds one in-flight slot for at most one round
//! deadline per back-off period (see
//! [`Slot::finish`](super::cache::Slot::finish)), so hung VMs cannot starve
//! the others. A VM that started since the pass began is sampled at the
//! next slice, not one interval later.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::StatsConfig;
use super::round::round;
use crate::object::Domain;
use crate::shared::Shared;

/// The interval is cut into this many slices; each slice starts the rounds
/// of its share of the VMs.
const SLICES: u32 = 20;

/// Starts the poller; it ends once the driver is gone.
pub(crate) fn spawn(s: &Arc<Shared>) {
    let cfg = s.cfg.stats;
    if cfg.interval.is_zero() {
        return;
    }
    let deadline = cfg.round_deadline(s.cfg.monitor_timeout);
    tokio::spawn(run(Arc::downgrade(s), cfg, deadline));
}

/// What every round of the poller shares.
struct Poller {
    slots: Arc<Semaphore>,
    interval: Duration,
    deadline: Duration,
}

async fn run(weak: Weak<Shared>, cfg: StatsConfig, deadline: Duration) {
    let p = Poller {
        slots: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
        interval: cfg.interval,
        deadline,
    };
    loop {
        let start = tokio::time::Instant::now();
        let Some(s) = weak.upgrade() else { return };
        let doms = running(&s);
        let per_slice = doms.len().div_ceil(SLICES as usize).max(1);
        let mut chunks = doms.chunks(per_slice);
        for k in 0..SLICES {
            tokio::time::sleep_until(start + cfg.interval * k / SLICES).await;
            for (dom, generation) in chunks.next().unwrap_or_default() {
                p.launch(&s, dom, *generation).await;
            }
            for (dom, generation) in running(&s) {
                if dom.stats.is_new_run(generation) {
                    p.launch(&s, &dom, generation).await;
                }
            }
        }
        drop(s);
        tokio::time::sleep_until(start + cfg.interval).await;
    }
}

/// The running VMs with a monitor, and their run.
fn running(s: &Shared) -> Vec<(Arc<Domain>, u64)> {
    s.registry
        .all()
        .into_iter()
        .filter_map(|d| d.stats_generation().map(|g| (d, g)))
        .collect()
}

impl Poller {
    /// Starts a round of `dom`'s run `generation`, unless one is in flight
    /// or the VM backs off; waits for an in-flight slot.
    async fn launch(&self, s: &Arc<Shared>, dom: &Arc<Domain>, generation: u64) {
        if !dom.stats.begin(generation, Instant::now()) {
            return;
        }
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let (s, dom) = (s.clone(), dom.clone());
        let (deadline, interval) = (self.deadline, self.interval);
        tokio::spawn(async move {
            one(&s, &dom, generation, deadline, interval).await;
            drop(permit);
        });
    }
}

async fn one(s: &Shared, dom: &Domain, generation: u64, deadline: Duration, interval: Duration) {
    let t0 = Instant::now();
    let r = round(&s.health, dom, generation, deadline).await;
    s.health.stats_rounds.inc();
    s.health.stats_round_time.observe(t0.elapsed());
    if r.is_err() {
        s.health.stats_round_failures.inc();
    }
    dom.stats.finish(generation, r, interval);
}
