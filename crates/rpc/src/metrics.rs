//! What the server counts about its clients and calls, for the daemon's
//! metrics endpoint: connected clients, clients dropped for not reading,
//! output queue depths, and call latency per procedure.
//!
//! Recorded with relaxed atomics on the hot paths, no lock. Latency is
//! one histogram per REMOTE procedure number (a fixed array), so the
//! series are bounded by the protocol, not by clients or domains.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use telemetry::{Counter, HighWater, Histogram, HistogramSnapshot};

use crate::protocol::remote::PROCEDURES;

/// The server's counters.
#[derive(Debug)]
pub struct ServerMetrics {
    clients: AtomicI64,
    /// Connections accepted since start.
    pub connections: Counter,
    /// Connections closed at once because `max_clients` were connected.
    pub rejected: Counter,
    /// Clients disconnected because their output queue was full (they did
    /// not read).
    pub dropped_slow: Counter,
    /// Messages waiting in all clients' output queues now.
    queued: AtomicI64,
    /// The deepest one client's output queue has been (messages).
    pub queue_high_water: HighWater,
    /// Calls answered since start.
    pub calls: Counter,
    /// Latency of calls, by procedure number (index).
    latency: Box<[Histogram]>,
    /// Calls of a number libvirt 9.0 does not define.
    pub unknown_calls: Counter,
    max_procedure: usize,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let max = PROCEDURES
            .iter()
            .map(|(n, _)| usize::try_from(*n).unwrap_or(0))
            .max()
            .unwrap_or(0);
        Self {
            clients: AtomicI64::new(0),
            connections: Counter::default(),
            rejected: Counter::default(),
            dropped_slow: Counter::default(),
            queued: AtomicI64::new(0),
            queue_high_water: HighWater::default(),
            calls: Counter::default(),
            latency: (0..=max).map(|_| Histogram::default()).collect(),
            unknown_calls: Counter::default(),
            max_procedure: max,
        }
    }
}

impl ServerMetrics {
    pub(crate) fn connected(&self) {
        self.connections.inc();
        self.clients.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }

    /// A message entered a client's queue, now `depth` deep.
    pub(crate) fn enqueued(&self, depth: usize) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queue_high_water.record(depth as u64);
    }

    /// `n` messages left a client's queue (written or discarded).
    pub(crate) fn dequeued(&self, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// A call of `procedure` was answered after `took`.
    pub(crate) fn call(&self, procedure: i32, took: Duration) {
        self.calls.inc();
        let slot = usize::try_from(procedure)
            .ok()
            .filter(|i| *i <= self.max_procedure)
            .and_then(|i| self.latency.get(i));
        match slot {
            Some(h) => h.observe(took),
            None => self.unknown_calls.inc(),
        }
    }

    /// Clients connected now.
    pub fn clients(&self) -> u64 {
        u64::try_from(self.clients.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Messages queued to all clients now.
    pub fn queued_messages(&self) -> u64 {
        u64::try_from(self.queued.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Latency of every procedure called at least once: (number, histogram).
    pub fn call_latency(&self) -> Vec<(i32, HistogramSnapshot)> {
        self.latency
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count() > 0)
            .filter_map(|(i, h)| Some((i32::try_from(i).ok()?, h.snapshot())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_clients_queues_and_calls() {
        let m = ServerMetrics::default();
        m.connected();
        m.connected();
        m.disconnected();
        assert_eq!(m.clients(), 1);
        m.enqueued(1);
        m.enqueued(2);
        m.dequeued(1);
        assert_eq!(m.queued_messages(), 1);
        assert_eq!(m.queue_high_water.get(), 2);
        m.call(16, Duration::from_micros(80));
        m.call(16, Duration::from_micros(90));
        m.call(99_999, Duration::from_micros(1));
        m.call(-3, Duration::from_micros(1));
        let l = m.call_latency();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].0, l[0].1.count), (16, 2));
        assert_eq!(m.unknown_calls.get(), 2);
        assert_eq!(m.calls.get(), 4);
    }
}
