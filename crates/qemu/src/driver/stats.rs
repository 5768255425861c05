//! Statistics and health: answered from the per-VM cache and the driver's
//! counters, never from a job or the monitor (see `crate::stats`); and the
//! one statistics setting that does talk to QEMU, the balloon's period.

use std::time::Duration;

use joblock::NormalJob;
use qmp::commands::QomSet;

use super::Driver;
use crate::jobs;
use crate::object::Domain;
use crate::stats::procfs;
use crate::stats::round::BALLOON_PATH;
use crate::stats::{DomainStats, HealthSnapshot, StatsConfig};
use crate::{Error, Result};

impl Driver {
    /// How the statistics poller runs.
    pub fn stats_config(&self) -> StatsConfig {
        self.s.cfg.stats
    }

    /// The oldest a figure of a VM that answers can be (see
    /// [`StatsConfig::max_age`]).
    pub fn stats_max_age(&self) -> Duration {
        self.s.cfg.stats.max_age(self.s.cfg.monitor_timeout)
    }

    /// A domain's statistics from the cache: no job, no monitor.
    pub fn stats(&self, dom: &Domain) -> DomainStats {
        dom.stats_snapshot(self.stats_max_age())
    }

    /// `virsh dommemstat --period N --live`: how often (seconds; 0 turns it
    /// off) the guest's balloon driver reports memory statistics. A modify
    /// job and one monitor command.
    pub async fn set_memory_stats_period(
        &self,
        dom: &Domain,
        secs: u32,
        owner: &str,
    ) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
        let (active, balloon) = {
            let g = dom.lock();
            (g.is_active(), g.current_def().has_balloon())
        };
        if !active {
            return Err(Error::OperationInvalid("domain is not running".into()));
        }
        if !balloon {
            return Err(Error::OperationInvalid(
                "No memory balloon device configured, can not set the collection period".into(),
            ));
        }
        let cmd = QomSet {
            path: BALLOON_PATH.into(),
            property: "guest-stats-polling-interval".into(),
            value: secs.into(),
        };
        dom.qmp(&cmd, s.cfg.monitor_timeout).await.map(|_| ())
    }

    /// The driver's health now: what it recorded, plus figures gathered
    /// from every domain (a pass over the registry, short locks only).
    pub fn health(&self) -> HealthSnapshot {
        let s = &self.s;
        let mut h = s.health.recorded();
        let max_age = self.stats_max_age();
        for dom in s.registry.all() {
            h.domains += 1;
            let holders = dom.jobs_holders();
            let oldest = holders.iter().map(|j| j.held_for).max();
            h.oldest_job = h.oldest_job.max(oldest);
            if !dom.is_active() {
                continue;
            }
            h.active_domains += 1;
            let mon = dom.lock().monitor();
            if let Some(q) = mon.as_ref().map(|m| m.stats().events) {
                h.event_queue_depth += q.queued_events as u64;
                s.health
                    .event_queue_high_water
                    .record(q.high_water_events as u64);
            }
            if mon.is_none() || dom.monitor_unresponsive() || dom.stats.timed_out() {
                h.unresponsive_monitors += 1;
            }
            if dom.stats_snapshot(max_age).freshness.stale {
                h.stale_stats += 1;
            }
        }
        h.event_queue_high_water = s.health.event_queue_high_water.get();
        h
    }
}

impl Driver {
    /// The QEMU process's CPU time now (read when asked: a system call and
    /// a `/proc` read, no monitor). `None` for an inactive domain.
    pub fn cpu_times(&self, dom: &Domain) -> Option<crate::stats::CpuTimes> {
        let pid = dom.pid()?;
        let t = procfs::process_times(pid)?;
        Some(crate::stats::CpuTimes {
            total_ns: procfs::process_cpu_ns(pid).unwrap_or(t.user_ns + t.system_ns),
            user_ns: t.user_ns,
            system_ns: t.system_ns,
        })
    }
}

impl Driver {
    /// Every domain, sorted by name.
    pub fn all_domains(&self) -> Vec<std::sync::Arc<Domain>> {
        self.s.registry.all()
    }
}
