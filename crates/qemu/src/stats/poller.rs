//! The background poller: every interval, one round per running VM,
//! spread evenly over the interval, at most `max_in_flight` rounds at
//! once.
//!
//! Cost is bounded whatever the VMs do: one round per VM per interval
//! (fewer for VMs backing off after timeouts), at most `max_in_flight`
//! rounds' replies in memory, one task per round in flight. A VM whose
//! monitor hangs holds one in-flight slot for at most one round deadline
//! per back-off period (see [`Slot::finish`](super::cache::Slot::finish)),
//! so hung VMs cannot starve the others.

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
    tokio::spawn(run(Arc::downgrade(s), cfg, s.cfg.monitor_timeout));
}

async fn run(weak: Weak<Shared>, cfg: StatsConfig, monitor_timeout: Duration) {
    let slots = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    loop {
        let start = tokio::time::Instant::now();
        let Some(s) = weak.upgrade() else { return };
        let doms: Vec<(Arc<Domain>, u64)> = s
            .registry
            .all()
            .into_iter()
            .filter_map(|d| d.stats_generation().map(|g| (d, g)))
            .collect();
        let per_slice = doms.len().div_ceil(SLICES as usize).max(1);
        for (k, chunk) in doms.chunks(per_slice).enumerate() {
            let k = u32::try_from(k).unwrap_or(SLICES);
            tokio::time::sleep_until(start + cfg.interval * k / SLICES).await;
            for (dom, generation) in chunk {
                if !dom.stats.begin(*generation, Instant::now()) {
                    continue;
                }
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (s, dom, generation) = (s.clone(), dom.clone(), *generation);
                tokio::spawn(async move {
                    let deadline = cfg.round_deadline(monitor_timeout);
                    one(&s, &dom, generation, deadline, cfg.interval).await;
                    drop(permit);
                });
            }
        }
        drop(s);
        tokio::time::sleep_until(start + cfg.interval).await;
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
