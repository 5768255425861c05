//! What the statistics poller and the statistics calls read of a domain.

use std::time::{Duration, Instant};

use super::Domain;
use crate::stats::{DomainStats, freshness};

impl Domain {
    /// The run the poller should sample: running, with a monitor.
    pub(crate) fn stats_generation(&self) -> Option<u64> {
        let g = self.lock();
        let run = g.run()?;
        run.monitor()?;
        Some(run.ctx().generation)
    }

    /// Everything a statistics call reports about this domain: no job, no
    /// monitor. `max_age` is the poller's freshness bound.
    pub(crate) fn stats_snapshot(&self, max_age: Duration) -> DomainStats {
        let (state, def, run) = {
            let g = self.lock();
            let run = g.run().map(|r| (r.ctx().generation, r.process().pid()));
            (g.state, g.current_def(), run)
        };
        let cached = run
            .map(|(generation, _)| self.stats.read(generation))
            .unwrap_or_default();
        let fresh = match run {
            Some(_) => freshness(
                cached.sample.as_deref(),
                cached.last_error.as_ref(),
                max_age,
                Instant::now(),
            ),
            None => crate::stats::Freshness::default(),
        };
        DomainStats {
            state,
            active: state.state.is_active(),
            max_mem_kib: def.max_memory_kib(),
            cur_mem_kib: def.current_memory_kib(),
            vcpus: def.vcpus(),
            disks: def.disk_descs(),
            nics: def.nic_macs(),
            has_balloon: def.has_balloon(),
            pid: run.map(|(_, pid)| pid),
            sample: cached.sample,
            freshness: fresh,
        }
    }
}
