//! `<interface type='user'>`: QEMU's user-mode (slirp) network, the only
//! backend that needs no host privileges or bridges.

use super::address::{Address, format_address, parse_address};
use super::{format_alias, parse_boot_order};
use crate::error::DomainXmlError;
use crate::parse::skip_alias;
use crate::xml::{XmlElement, XmlWriter};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random address in QEMU/libvirt's 52:54:00 range.
    pub fn generate() -> Self {
        let r = uuid::Uuid::new_v4();
        let b = r.as_bytes();
        MacAddr([0x52, 0x54, 0x00, b[0], b[1], b[2]])
    }

    pub fn parse(s: &str) -> Result<Self, DomainXmlError> {
        let bad = |why: &str| DomainXmlError::invalid("<interface/mac address>", s, why);
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad("expected six ':'-separated hex bytes"));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(bad("expected six ':'-separated hex bytes"));
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad("expected hex digits"))?;
        }
        if out[0] & 1 == 1 {
            return Err(bad("expected a unicast address, found multicast"));
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicModel {
    Virtio,
    E1000,
    E1000e,
    Rtl8139,
}

impl NicModel {
    pub fn as_str(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio",
            NicModel::E1000 => "e1000",
            NicModel::E1000e => "e1000e",
            NicModel::Rtl8139 => "rtl8139",
        }
    }

    /// QEMU device name.
    pub fn qemu_device(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio-net-pci",
            NicModel::E1000 => "e1000",
            NicModel::E1000e => "e1000e",
            NicModel::Rtl8139 => "rtl8139",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceDef {
    /// Generated when absent and kept, so the guest sees a stable MAC.
    pub mac: MacAddr,
    /// `None`: no `<model>`; QEMU's default for x86 (rtl8139) is used, as
    /// libvirt does.
    pub model: Option<NicModel>,
    pub boot_order: Option<u32>,
    pub address: Option<Address>,
}

pub(crate) fn parse_interface(el: &XmlElement) -> Result<InterfaceDef, DomainXmlError> {
    const P: &str = "interface";
    el.check_attrs(P, &["type"])?;
    match el.req_attr(P, "type")? {
        "user" => {}
        other => {
            return Err(DomainXmlError::unsupported_because(
                "interface type",
                other,
                "only 'user' networking is supported",
            ));
        }
    }
    el.check_children(P, &["mac", "model", "boot", "alias", "address"])?;
    skip_alias(el, P)?;
    let mac = match el.child("mac") {
        Some(m) => {
            m.check_attrs("interface/mac", &["address"])?;
            m.check_children("interface/mac", &[])?;
            MacAddr::parse(m.req_attr("interface/mac", "address")?)?
        }
        None => MacAddr::generate(),
    };
    let model = match el.child("model") {
        Some(m) => {
            m.check_attrs("interface/model", &["type"])?;
            m.check_children("interface/model", &[])?;
            Some(match m.req_attr("interface/model", "type")? {
                "virtio" => NicModel::Virtio,
                "e1000" => NicModel::E1000,
                "e1000e" => NicModel::E1000e,
                "rtl8139" => NicModel::Rtl8139,
                o => return Err(DomainXmlError::unsupported("interface model", o)),
            })
        }
        None => None,
    };
    let address = el
        .child("address")
        .map(|a| parse_address(a, P))
        .transpose()?;
    if let Some(Address::Drive(_)) = address {
        return Err(DomainXmlError::unsupported(
            "interface address type",
            "drive",
        ));
    }
    Ok(InterfaceDef {
        mac,
        model,
        boot_order: el
            .child("boot")
            .map(|b| parse_boot_order(b, P))
            .transpose()?,
        address,
    })
}

pub(crate) fn format_interface(w: &mut XmlWriter, n: &InterfaceDef, alias: Option<String>) {
    w.open("interface", &[("type", "user".into())]);
    w.empty("mac", &[("address", n.mac.to_string())]);
    if let Some(m) = n.model {
        w.empty("model", &[("type", m.as_str().into())]);
    }
    if let Some(o) = n.boot_order {
        w.empty("boot", &[("order", o.to_string())]);
    }
    format_alias(w, alias);
    if let Some(a) = &n.address {
        format_address(w, a);
    }
    w.close("interface");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac() {
        let m = MacAddr::parse("52:54:00:AB:cd:0f").unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert!(MacAddr::parse("01:00:00:00:00:00").is_err());
        assert!(MacAddr::parse("52:54:00:00:00").is_err());
        assert!(MacAddr::parse("52:54:00:00:00:zz").is_err());
        let g = MacAddr::generate();
        assert_eq!(&g.0[..3], &[0x52, 0x54, 0x00]);
    }
}
