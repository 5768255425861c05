//! Links over rtnetlink: bridges, their IPv4 address, taps' place on a
//! bridge, and lookups. Each call opens its own netlink socket in the
//! caller's network namespace and closes it when done.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoKind, LinkAttribute, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use crate::addr::{MacAddr, Subnet};
use crate::error::netlink;
use crate::{Error, Result};

/// The alias every bridge this driver creates carries, followed by the
/// network's name. A bridge without it is never removed by the driver,
/// whatever a stale status record says.
pub(crate) const ALIAS_PREFIX: &str = "ferrovirt network ";

/// What the kernel says about one link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
}

impl Link {
    /// Whether this link is the bridge the driver made for `network`.
    pub(crate) fn is_ours(&self, network: &str) -> bool {
        self.alias.as_deref() == Some(&format!("{ALIAS_PREFIX}{network}"))
    }
}

/// A netlink handle; the connection task ends when the handle is dropped.
pub(crate) fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::io("cannot open a netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

fn to_link(m: LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        alias: None,
        kind: None,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::IfAlias(a) => link.alias = Some(a),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn is_no_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == libc::ENODEV)
}

/// The link called `name`, if any.
pub(crate) async fn get(h: &Handle, name: &str) -> Result<Option<Link>> {
    let mut s = h.link().get().match_name(name).execute();
    match s.try_next().await {
        Ok(m) => Ok(m.map(to_link)),
        Err(e) if is_no_device(&e) => Ok(None),
        Err(e) => Err(netlink(format!("cannot look up interface {name}"), e)),
    }
}

/// Every link of this namespace.
pub(crate) async fn all(h: &Handle) -> Result<Vec<Link>> {
    h.link()
        .get()
        .execute()
        .map_ok(to_link)
        .try_collect()
        .await
        .map_err(|e| netlink("cannot list interfaces", e))
}

/// How to make a network's bridge.
#[derive(Debug, Clone)]
pub(crate) struct BridgeSpec<'a> {
    pub name: &'a str,
    pub network: &'a str,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub stp: bool,
    /// Forward delay, seconds.
    pub delay: u32,
}

/// Creates the bridge (down), marked with our alias; returns its index.
pub(crate) async fn create_bridge(h: &Handle, spec: &BridgeSpec<'_>) -> Result<u32> {
    // The kernel applies the forward delay before the STP state, so a
    // delay below STP's minimum is accepted (as libvirt sets it).
    let stp = if spec.stp {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    };
    let mut b = LinkBridge::new(spec.name)
        .down()
        .forward_delay(spec.delay.saturating_mul(100))
        .stp_state(stp);
    if let Some(m) = spec.mac {
        b = b.address(m.octets().to_vec());
    }
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    h.link()
        .add(b.build())
        .execute()
        .await
        .map_err(|e| netlink(format!("Unable to create bridge {}", spec.name), e))?;
    let index = get(h, spec.name)
        .await?
        .map(|l| l.index)
        .ok_or_else(|| Error::Helper(format!("bridge {} vanished after creation", spec.name)))?;
    // The kernel takes an alias only on an existing link.
    let alias = LinkUnspec::new_with_index(index)
        .alias(format!("{ALIAS_PREFIX}{}", spec.network))
        .build();
    h.link()
        .set(alias)
        .execute()
        .await
        .map_err(|e| netlink(format!("cannot mark bridge {}", spec.name), e))?;
    Ok(index)
}

/// Adds `subnet.addr/prefix` (with its broadcast) to the link.
pub(crate) async fn add_ipv4(h: &Handle, index: u32, subnet: Subnet) -> Result<()> {
    h.address()
        .add(index, subnet.addr.into(), subnet.prefix)
        .execute()
        .await
        .map_err(|e| {
            netlink(
                format!("cannot add address {}/{}", subnet.addr, subnet.prefix),
                e,
            )
        })
}

pub(crate) async fn set_up(h: &Handle, index: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| netlink("cannot bring the interface up", e))
}

/// Attaches the link to the bridge `master`.
pub(crate) async fn set_master(h: &Handle, index: u32, master: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index).controller(master).build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| netlink("cannot attach the interface to its bridge", e))
}

pub(crate) async fn set_mac(h: &Handle, index: u32, mac: MacAddr) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index)
        .address(mac.octets().to_vec())
        .build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| netlink(format!("cannot set MAC address {mac}"), e))
}

pub(crate) async fn set_mtu(h: &Handle, index: u32, mtu: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| netlink(format!("cannot set MTU {mtu}"), e))
}

/// Deletes the link called `name`; a missing link is not an error.
pub(crate) async fn delete(h: &Handle, name: &str) -> Result<()> {
    let Some(link) = get(h, name).await? else {
        return Ok(());
    };
    match h.link().del(link.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_no_device(&e) => Ok(()),
        Err(e) => Err(netlink(format!("cannot delete interface {name}"), e)),
    }
}

/// The kind name the kernel reports for bridges.
pub(crate) fn is_bridge(link: &Link) -> bool {
    link.kind.as_deref() == Some(&InfoKind::Bridge.to_string())
}
