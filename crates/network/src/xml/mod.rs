//! libvirt's network XML: parse what clients write, validate it as libvirt
//! does, format what `net-dumpxml` shows.
//!
//! IPv4 networks in the modes libvirt backs with a bridge of its own
//! (`nat`, `route`, `open`, isolated) are implemented. Everything else
//! libvirt knows (bridge/passthrough/hostdev forwarding, IPv6, port groups,
//! virtual ports, TFTP/BOOTP, ...) is refused by name with
//! VIR_ERR_CONFIG_UNSUPPORTED, never half-accepted: a network whose
//! configuration we ignored would route guests differently from what was
//! asked.

mod bandwidth;
mod ip;
mod network;

pub use bandwidth::{Bandwidth, Rate};
pub use ip::{DhcpHost, DhcpRange, DnsHost, IpDef, IpMask};
pub(crate) use network::valid_bridge_name;
pub use network::{BridgeDef, DomainName, Forward, ForwardMode, NetworkDef};

use virxml::XmlError;

/// Refuses an element libvirt knows but this driver does not implement.
pub(crate) fn refuse_known(
    el: &virxml::XmlElement,
    path: &str,
    known_unsupported: &[&str],
) -> Result<(), XmlError> {
    for c in el.elements() {
        if known_unsupported.contains(&c.name.as_str()) {
            return Err(XmlError::unsupported_because(
                "network element",
                format!("{path}/{}", c.name),
                "not implemented by this driver",
            ));
        }
    }
    Ok(())
}
