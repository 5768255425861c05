//! The ports incoming migrations listen on: taken from the configured
//! range, one per incoming migration, held until its finish.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Error, Result};

/// The configured range and the ports this daemon has handed out.
pub(crate) struct Ports {
    min: u16,
    max: u16,
    taken: Mutex<BTreeSet<u16>>,
}

/// A port held for one incoming migration; given back when dropped.
pub(crate) struct PortLease {
    ports: Arc<Ports>,
    pub(crate) port: u16,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.ports.lock().remove(&self.port);
    }
}

impl Ports {
    pub(crate) fn new(min: u16, max: u16) -> Arc<Self> {
        Arc::new(Self {
            min,
            max,
            taken: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u16>> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first port of the range that this daemon has not handed out
    /// and that nothing else listens on at `addr` (checked by binding it:
    /// another process may still take it before QEMU does, and QEMU's
    /// `migrate-incoming` then fails the prepare).
    pub(crate) fn reserve(self: &Arc<Self>, addr: &str) -> Result<PortLease> {
        let mut taken = self.lock();
        for port in self.min..=self.max {
            if taken.contains(&port) || !bindable(addr, port) {
                continue;
            }
            taken.insert(port);
            return Ok(PortLease {
                ports: self.clone(),
                port,
            });
        }
        Err(Error::OperationFailed(format!(
            "no free migration port in {}-{}",
            self.min, self.max
        )))
    }
}

fn bindable(addr: &str, port: u16) -> bool {
    let host = addr.trim_start_matches('[').trim_end_matches(']');
    std::net::TcpListener::bind((host, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_bounded_and_given_back() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = busy.local_addr().unwrap().port();
        // A range whose first port is in use elsewhere.
        let ports = Ports::new(p, p.saturating_add(2));
        let a = ports.reserve("127.0.0.1").unwrap();
        assert_ne!(a.port, p, "a port another process listens on");
        let b = ports.reserve("127.0.0.1").unwrap();
        assert_ne!(a.port, b.port);
        assert!(ports.reserve("127.0.0.1").is_err(), "range exhausted");
        let freed = b.port;
        drop(b);
        assert_eq!(ports.reserve("127.0.0.1").unwrap().port, freed);
    }
}
