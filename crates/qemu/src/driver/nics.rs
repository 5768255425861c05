//! The NICs of a running domain as the host sees them: which tap backs
//! each one, for `domifstat`, `domifaddr` and the interface statistics.

use super::Driver;
use crate::object::Domain;
use crate::{Error, Result};

/// A NIC of a running domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNic {
    /// The host tap; `None` for user-mode networking.
    pub tap: Option<String>,
    /// The guest's MAC address, lower case.
    pub mac: String,
    /// `<source network>` of a `type='network'` NIC.
    pub network: Option<String>,
}

impl LiveNic {
    /// Whether `path` names this NIC, as `domifstat` takes it: the tap's
    /// name or the MAC address (any case).
    pub fn is_named(&self, path: &str) -> bool {
        self.tap.as_deref() == Some(path) || self.mac.eq_ignore_ascii_case(path)
    }
}

impl Driver {
    /// The NICs of running domain `dom`, in definition order. A snapshot:
    /// no job, no monitor.
    pub fn live_nics(&self, dom: &Domain) -> Result<Vec<LiveNic>> {
        let g = dom.lock();
        let run = g.run().ok_or(Error::NotRunning)?;
        let def = g.current_def();
        let taps = run.taps();
        Ok(def
            .domain()
            .devices
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, n)| LiveNic {
                tap: taps.get(i).cloned().flatten().map(|t| t.name),
                mac: n.mac.to_string(),
                network: (n.itype == domain::InterfaceType::Network)
                    .then(|| n.source.clone())
                    .flatten(),
            })
            .collect())
    }
}
