//! Guest NICs backed by host taps: `<interface type='network'|'bridge'|'ethernet'>`.
//!
//! The network driver creates each tap (on `/dev/net/tun`, with a vnet
//! header) and attaches it to its bridge; QEMU inherits the open
//! descriptor (`-netdev tap,fd=N`), so QEMU never needs the privilege to
//! create or attach taps itself. Taps are not persistent: once QEMU has
//! its copy the daemon closes its own, and the kernel removes a tap when
//! QEMU exits, however it exits.
//!
//! A start creates its taps after claiming the domain and before writing
//! its intent record, which names them; bandwidth (which may create an
//! ifb device, and that one outlives everything) is applied only once the
//! record names the tap. A daemon killed before the record is written
//! takes the only descriptors with it, and the taps go too.
//!
//! [`create`] and [`release`] work on one interface too, for a NIC
//! plugged into a running guest.

use std::os::fd::{AsFd, BorrowedFd};

use domain::{DomainDef, InterfaceDef, InterfaceType};
use network::{NetworkDriver, Tap, TapAttach, TapOptions};
use serde::{Deserialize, Serialize};

use crate::shared::Shared;
use crate::{Error, Result};

/// A tap the driver created for one interface of a run, as the status
/// record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TapRecord {
    pub(crate) name: String,
    /// Tells this tap from a later one the kernel gives the same name.
    pub(crate) ifindex: u32,
    /// The driver made it (an unmanaged tap is someone else's, and stays).
    #[serde(default = "made_here")]
    pub(crate) created: bool,
}

fn made_here() -> bool {
    true
}

/// The taps of a start, by interface index, with their descriptors until
/// QEMU holds copies, and whether the driver made each.
#[derive(Debug, Default)]
pub(crate) struct Taps(Vec<Option<(Tap, bool)>>);

impl Taps {
    /// The descriptor numbers QEMU finds the taps at, by interface index
    /// (for QEMU's argv): [`Taps::inherited`] handed over in order, the
    /// first at `first`.
    pub(crate) fn fds_from(&self, first: i32) -> Vec<Option<i32>> {
        let mut next = first;
        self.0
            .iter()
            .map(|t| {
                t.as_ref().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }

    /// The descriptors QEMU must inherit.
    pub(crate) fn inherited(&self) -> Vec<BorrowedFd<'_>> {
        self.0.iter().flatten().map(|(t, _)| t.fd.as_fd()).collect()
    }

    pub(crate) fn records(&self) -> Vec<Option<TapRecord>> {
        self.0
            .iter()
            .map(|t| {
                t.as_ref().map(|(t, created)| TapRecord {
                    name: t.name.clone(),
                    ifindex: t.ifindex,
                    created: *created,
                })
            })
            .collect()
    }
}

/// Whether an interface needs a tap.
fn needs_tap(n: &InterfaceDef) -> bool {
    n.itype != InterfaceType::User
}

/// The network driver, or libvirt's error for a daemon without one.
fn network(s: &Shared) -> Result<&NetworkDriver> {
    s.network.as_ref().ok_or_else(|| {
        Error::ConfigUnsupported(
            "interfaces of type 'network', 'bridge' or 'ethernet' need the network driver, which this daemon runs without".into(),
        )
    })
}

/// Where the tap of `n` goes, and its name: a name libvirt would generate
/// itself (`vnet…`, `vif…`) is not kept for `network` and `bridge`.
fn options(n: &InterfaceDef) -> Result<TapOptions> {
    let source = || {
        n.source.clone().ok_or_else(|| {
            Error::ConfigUnsupported(format!(
                "interface of type '{}' needs a <source>",
                n.itype.as_str()
            ))
        })
    };
    let attach = match n.itype {
        InterfaceType::Network => TapAttach::Network(source()?),
        InterfaceType::Bridge => TapAttach::Bridge(source()?),
        _ => TapAttach::None,
    };
    let generated = |d: &str| d.starts_with("vnet") || d.starts_with("vif");
    let name = n
        .target_dev
        .clone()
        .filter(|d| n.itype == InterfaceType::Ethernet || !generated(d));
    Ok(TapOptions {
        name,
        mac: network::MacAddr(n.mac.0),
        attach,
        bandwidth: None,
    })
}

/// A floor is a share of a network's QoS, which networks here do not
/// shape: refused rather than kept without effect.
pub(crate) fn no_floor() -> Error {
    Error::ConfigUnsupported(
        "interface bandwidth floor: the network has no QoS to guarantee it from".into(),
    )
}

/// Refuses, before anything is made, what a start could only store
/// without effect: a bandwidth floor, and bandwidth on a user-mode NIC
/// (which has no host device to shape) or on an unmanaged tap (which is
/// not the driver's to shape).
pub(crate) fn check(def: &DomainDef) -> Result<()> {
    for n in &def.devices.interfaces {
        let Some(bw) = n.bandwidth else {
            continue;
        };
        if bw.inbound.and_then(|r| r.floor).is_some_and(|f| f > 0) {
            return Err(no_floor());
        }
        if !needs_tap(n) {
            return Err(Error::ConfigUnsupported(
                "interface bandwidth on user-mode networking, which has no host device to shape"
                    .into(),
            ));
        }
        if !n.target_managed {
            return Err(Error::ConfigUnsupported(
                "interface bandwidth on an unmanaged tap, which the driver does not shape".into(),
            ));
        }
    }
    Ok(())
}

/// Creates the tap of one interface (`None` for a user-mode NIC), with no
/// bandwidth yet (see [`apply_bandwidth`]); or opens the existing tap of
/// an unmanaged one. With whether the driver made it.
pub(crate) async fn create_one(s: &Shared, n: &InterfaceDef) -> Result<Option<(Tap, bool)>> {
    if !needs_tap(n) {
        return Ok(None);
    }
    let net = network(s)?;
    let res = match (&n.target_dev, n.target_managed) {
        (Some(name), false) => net.open_tap(name).await.map(|t| (t, false)),
        _ => net.create_tap(&options(n)?).await.map(|t| (t, true)),
    };
    res.map(Some).map_err(Error::Network)
}

/// Creates the taps of every interface of `def`. On failure none is left.
pub(crate) async fn create(s: &Shared, def: &DomainDef) -> Result<Taps> {
    let mut taps = Vec::with_capacity(def.devices.interfaces.len());
    for n in &def.devices.interfaces {
        match create_one(s, n).await {
            Ok(t) => taps.push(t),
            Err(e) => {
                release(s, &Taps(taps).records());
                return Err(e);
            }
        }
    }
    Ok(Taps(taps))
}

/// Applies each interface's `<bandwidth>` to its tap.
pub(crate) async fn apply_bandwidth(
    s: &Shared,
    def: &DomainDef,
    taps: &[Option<TapRecord>],
) -> Result<()> {
    for (n, t) in def.devices.interfaces.iter().zip(taps) {
        if let (Some(bw), Some(t)) = (n.bandwidth, t.as_ref().filter(|t| t.created)) {
            set_bandwidth(s, &t.name, Some(bw)).await?;
        }
    }
    Ok(())
}

/// Replaces (`Some`) or removes the limits of tap `name`.
pub(crate) async fn set_bandwidth(
    s: &Shared,
    name: &str,
    bw: Option<domain::Bandwidth>,
) -> Result<()> {
    let bw = bw.map(to_network_bandwidth);
    network(s)?
        .set_tap_bandwidth(name, bw.as_ref())
        .await
        .map_err(Error::Network)
}

fn to_network_bandwidth(b: domain::Bandwidth) -> network::Bandwidth {
    let rate = |r: domain::BandwidthRate| network::Rate {
        average: r.average,
        peak: r.peak,
        burst: r.burst,
    };
    network::Bandwidth {
        inbound: b.inbound.map(rate),
        outbound: b.outbound.map(rate),
    }
}

/// Removes what is left of `taps` once their QEMU is gone (or never ran),
/// in the background: a tap still named as recorded, and the ifb device
/// of its bandwidth.
pub(crate) fn release(s: &Shared, taps: &[Option<TapRecord>]) {
    let taps: Vec<TapRecord> = taps
        .iter()
        .flatten()
        .filter(|t| t.created)
        .cloned()
        .collect();
    if taps.is_empty() {
        return;
    }
    let (Some(net), Ok(rt)) = (s.network.clone(), tokio::runtime::Handle::try_current()) else {
        return;
    };
    rt.spawn(async move {
        for t in taps {
            if let Err(e) = net.release_tap(&t.name, t.ifindex).await {
                tracing::warn!(tap = %t.name, error = %e, "cannot remove a guest's tap");
            }
        }
    });
}
