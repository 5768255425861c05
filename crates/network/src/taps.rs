//! The guest-NIC side of the driver, for the QEMU driver: taps on a
//! network's bridge (or a named host bridge), their bandwidth and their
//! counters.

use crate::addr::MacAddr;
use crate::driver::NetworkDriver;
use crate::host::tap::{self, InterfaceStats, Tap};
use crate::host::{link, tc};
use crate::xml::Bandwidth;
use crate::{Error, Result};

/// Where a tap is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapAttach {
    /// The bridge of this (running) network.
    Network(String),
    /// A bridge the host manages (`<interface type='bridge'>`).
    Bridge(String),
    /// Nowhere (`<interface type='ethernet'>`).
    None,
}

/// What tap to create.
#[derive(Debug, Clone)]
pub struct TapOptions {
    /// The tap's name; `None` picks the first free `vnetN`.
    pub name: Option<String>,
    /// The guest's MAC address (the tap gets it with 0xFE first).
    pub mac: MacAddr,
    pub attach: TapAttach,
    pub bandwidth: Option<Bandwidth>,
}

impl NetworkDriver {
    /// Creates a tap, attaches it, applies its bandwidth, and returns it
    /// with its open descriptor. On failure nothing is left.
    pub async fn create_tap(&self, opts: &TapOptions) -> Result<Tap> {
        let bridge = match &opts.attach {
            TapAttach::Network(n) => {
                let net = self.lookup_by_name(n)?;
                if !net.is_active() {
                    return Err(Error::OperationInvalid(format!(
                        "network '{n}' is not active"
                    )));
                }
                net.bridge_name()
            }
            TapAttach::Bridge(b) => {
                // Checked before the tap exists, so a missing bridge
                // leaves no trace on the host, not even for a moment.
                let h = link::connect()?;
                if !link::get(&h, b).await?.is_some_and(|l| link::is_bridge(&l)) {
                    return Err(Error::OperationInvalid(format!(
                        "bridge '{b}' does not exist"
                    )));
                }
                Some(b.clone())
            }
            TapAttach::None => None,
        };
        let t = tap::create(opts.name.as_deref(), opts.mac, bridge.as_deref()).await?;
        if let Some(bw) = opts.bandwidth.filter(|b| !b.is_empty())
            && let Err(e) = self.s.tc.apply(&t.name, t.ifindex, &bw).await
        {
            drop(t);
            return Err(e);
        }
        Ok(t)
    }

    /// Opens an existing tap someone else made and owns
    /// (`<target dev='x' managed='no'/>`), changing nothing of it.
    pub async fn open_tap(&self, name: &str) -> Result<Tap> {
        tap::open_existing(name).await
    }

    /// Removes a tap (and the ifb device its bandwidth may use).
    pub async fn remove_tap(&self, name: &str) -> Result<()> {
        let h = link::connect()?;
        if let Some(l) = link::get(&h, name).await? {
            link::delete(&h, &tc::ifb_name(l.index)).await?;
        }
        tap::remove(name).await
    }

    /// Removes what is left of the tap `name` that had index `ifindex`:
    /// the tap itself only while that name still has that index (a tap
    /// goes when QEMU closes it, and the kernel may give its name to the
    /// next tap of another guest), and the ifb device of its bandwidth
    /// (indexes are never reused while the namespace lives).
    pub async fn release_tap(&self, name: &str, ifindex: u32) -> Result<()> {
        let h = link::connect()?;
        if link::get(&h, name)
            .await?
            .is_some_and(|l| l.index == ifindex)
        {
            tap::remove(name).await?;
        }
        link::delete(&h, &tc::ifb_name(ifindex)).await
    }

    /// Replaces (`Some`) or removes (`None`) the limits of a tap.
    pub async fn set_tap_bandwidth(&self, name: &str, bw: Option<&Bandwidth>) -> Result<()> {
        let h = link::connect()?;
        let l = link::get(&h, name).await?.ok_or_else(|| {
            Error::InvalidArg(format!("invalid path, '{name}' is not a known interface"))
        })?;
        match bw.filter(|b| !b.is_empty()) {
            Some(b) => self.s.tc.apply(name, l.index, b).await,
            None => self.s.tc.clear(name, l.index).await,
        }
    }

    /// The counters of a tap, from the guest's side (`domifstat`).
    pub fn tap_stats(&self, name: &str) -> Result<InterfaceStats> {
        tap_counters(name)
    }
}

/// The counters of tap `name`, from the guest's side: read from sysfs,
/// no driver state needed (the statistics poller reads them).
pub fn tap_counters(name: &str) -> Result<InterfaceStats> {
    tap::stats(name)
}
