//! `<interface>`: a guest NIC and what it connects to on the host.
//!
//! `user` (QEMU's slirp) needs nothing from the host. `network`, `bridge`
//! and `ethernet` need a tap device the driver creates and hands to QEMU;
//! the definition keeps everything about them (source, target, bandwidth,
//! MTU, link state) so they round-trip, and the argv builder takes the tap
//! descriptors the driver made (see `LaunchParams::taps`).

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, named, named_enum, parse_boot_order, parse_u64, parse_uint, skip_alias,
};
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

named_enum! {
    /// `<interface type>`.
    pub enum InterfaceType {
        Network = "network",
        Bridge = "bridge",
        Ethernet = "ethernet",
        User = "user",
    }
}

named_enum! {
    /// `<model type>` of a NIC.
    pub enum NicModel {
        Virtio = "virtio",
        E1000 = "e1000",
        E1000e = "e1000e",
        Rtl8139 = "rtl8139",
    }
}

impl NicModel {
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

/// One direction of `<bandwidth>`: kB/s (average, peak, floor) and KiB
/// (burst), as libvirt's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BandwidthRate {
    pub average: u64,
    pub peak: Option<u64>,
    pub burst: Option<u64>,
    /// Guaranteed minimum (inbound only).
    pub floor: Option<u64>,
}

/// `<bandwidth>`: shaping the host applies to the tap (inbound = towards
/// the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth {
    pub inbound: Option<BandwidthRate>,
    pub outbound: Option<BandwidthRate>,
}

named_enum! {
    /// `<driver name>` of a NIC: the backend of a virtio NIC's queues.
    pub enum NetDriverName {
        Qemu = "qemu",
        Vhost = "vhost",
    }
}

/// `<driver>` of a virtio NIC (what Nova writes for multiqueue and ring
/// sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetDriver {
    pub name: Option<NetDriverName>,
    pub queues: Option<u32>,
    pub rx_queue_size: Option<u32>,
    pub tx_queue_size: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceDef {
    pub itype: InterfaceType,
    /// `<source network>` or `<source bridge>`.
    pub source: Option<String>,
    /// `<target dev>`: the host-side tap name, when the user chose one.
    pub target_dev: Option<String>,
    /// `<target managed>` of an `ethernet` NIC: `false` (`managed='no'`)
    /// uses a tap that exists already, as it is; otherwise the driver
    /// creates the tap (and it must not exist yet).
    pub target_managed: bool,
    /// Generated when absent and kept, so the guest sees a stable MAC.
    pub mac: MacAddr,
    /// `None`: no `<model>`; QEMU's default for x86 (rtl8139) is used, as
    /// libvirt does.
    pub model: Option<NicModel>,
    /// `<link state>`: `Some(false)` starts with the link down.
    pub link_up: Option<bool>,
    pub bandwidth: Option<Bandwidth>,
    /// `<mtu size>` in bytes.
    pub mtu: Option<u32>,
    pub driver: Option<NetDriver>,
    pub boot_order: Option<u32>,
    pub address: Option<Address>,
    /// N of its device alias `netN` (and netdev `hostnetN`), from the
    /// live XML's `<alias name='netN'/>`: set for a running domain (a
    /// hot-plugged NIC takes the next free number, so a NIC keeps its
    /// name when another one is unplugged). `None`: its position.
    pub alias_index: Option<u32>,
}

impl InterfaceDef {
    /// N of `netN` / `hostnetN` for the NIC at position `i`.
    pub fn alias_number(&self, i: usize) -> u32 {
        self.alias_index
            .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX))
    }

    /// The model QEMU gets.
    pub fn effective_model(&self) -> NicModel {
        self.model.unwrap_or(NicModel::Rtl8139)
    }
}

const P: &str = "interface";
const CHILDREN: &[&str] = &[
    "mac",
    "model",
    "boot",
    "alias",
    "address",
    "source",
    "target",
    "link",
    "bandwidth",
    "mtu",
    "driver",
];

pub(crate) fn parse_interface(el: &XmlElement) -> Result<InterfaceDef, DomainXmlError> {
    el.check_attrs(P, &["type"])?;
    el.check_children(P, CHILDREN)?;
    check_singletons(el, P, CHILDREN)?;
    skip_alias(el, P)?;
    let alias_index = el
        .child("alias")
        .and_then(|a| a.attr("name"))
        .and_then(|n| n.strip_prefix("net"))
        .and_then(|n| n.parse::<u32>().ok());
    let itype = named(
        "interface type",
        el.req_attr(P, "type")?,
        InterfaceType::from_name,
    )?;
    Ok(InterfaceDef {
        itype,
        source: parse_source(el, itype)?,
        target_dev: parse_target(el)?,
        target_managed: parse_target_managed(el, itype)?,
        mac: parse_mac(el)?,
        model: parse_model(el)?,
        link_up: parse_link(el)?,
        bandwidth: el.child("bandwidth").map(parse_bandwidth).transpose()?,
        mtu: parse_mtu(el)?,
        driver: el.child("driver").map(parse_driver).transpose()?,
        boot_order: el
            .child("boot")
            .map(|b| parse_boot_order(b, P))
            .transpose()?,
        address: parse_device_address(el, P, &["pci"])?,
        alias_index,
    })
}

fn parse_source(el: &XmlElement, itype: InterfaceType) -> Result<Option<String>, DomainXmlError> {
    let key = match itype {
        InterfaceType::Network => "network",
        InterfaceType::Bridge => "bridge",
        InterfaceType::Ethernet | InterfaceType::User => {
            if el.child("source").is_some() {
                return Err(DomainXmlError::unsupported_because(
                    "<interface/source>",
                    itype.as_str(),
                    format!("an interface of type '{}' has no source", itype.as_str()),
                ));
            }
            return Ok(None);
        }
    };
    let s = el.child("source").ok_or_else(|| {
        DomainXmlError::structure(format!(
            "<interface type='{}'> needs <source {key}=...>",
            itype.as_str()
        ))
    })?;
    s.check_attrs("interface/source", &[key])?;
    s.check_children("interface/source", &[])?;
    let name = s.req_attr("interface/source", key)?;
    check_ifname(&format!("<interface/source {key}>"), name, 64)?;
    Ok(Some(name.to_string()))
}

/// A name the kernel (a bridge, a tap) or libvirt (a network) accepts.
fn check_ifname(what: &str, name: &str, max: usize) -> Result<(), DomainXmlError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DomainXmlError::invalid(
            what,
            name,
            format!("expected 1..{max} characters of A-Za-z0-9-_.:"),
        ))
    }
}

/// `<target dev>`. Names starting with `vnet` are the ones libvirt
/// generates and drops on define, so a live XML fed back gets a fresh one.
fn parse_target(el: &XmlElement) -> Result<Option<String>, DomainXmlError> {
    let Some(t) = el.child("target") else {
        return Ok(None);
    };
    t.check_attrs("interface/target", &["dev", "managed"])?;
    t.check_children("interface/target", &[])?;
    let Some(dev) = t.attr("dev") else {
        return Ok(None);
    };
    check_ifname("<interface/target dev>", dev, 15)?;
    Ok((!dev.starts_with("vnet")).then(|| dev.to_string()))
}

fn parse_target_managed(el: &XmlElement, itype: InterfaceType) -> Result<bool, DomainXmlError> {
    let Some(m) = el.child("target").and_then(|t| t.attr("managed")) else {
        return Ok(true);
    };
    let managed = match m {
        "yes" => true,
        "no" => false,
        other => {
            return Err(DomainXmlError::invalid(
                "<interface/target managed>",
                other,
                "expected yes or no",
            ));
        }
    };
    if !managed && itype != InterfaceType::Ethernet {
        return Err(DomainXmlError::unsupported_because(
            "interface target managed",
            "no",
            "only an ethernet interface can use an existing tap",
        ));
    }
    if !managed && el.child("target").and_then(|t| t.attr("dev")).is_none() {
        return Err(DomainXmlError::invalid(
            "<interface/target managed>",
            "no",
            "an unmanaged tap must be named by <target dev>",
        ));
    }
    Ok(managed)
}

/// A lone `<interface>` (`virDomainUpdateDeviceFlags`' XML): the interface
/// and the MAC address it names, if it names one (when it does not, the
/// returned definition has a generated one).
pub fn parse_interface_xml(xml: &str) -> Result<(InterfaceDef, Option<MacAddr>), DomainXmlError> {
    let el = virxml::parse_document(xml)?;
    if el.local_name() != "interface" {
        return Err(DomainXmlError::InvalidArgument(format!(
            "expected an <interface> element, found <{}>",
            el.local_name()
        )));
    }
    let n = parse_interface(&el)?;
    let named = el.child("mac").is_some().then_some(n.mac);
    Ok((n, named))
}

fn parse_mac(el: &XmlElement) -> Result<MacAddr, DomainXmlError> {
    match el.child("mac") {
        Some(m) => {
            m.check_attrs("interface/mac", &["address"])?;
            m.check_children("interface/mac", &[])?;
            MacAddr::parse(m.req_attr("interface/mac", "address")?)
        }
        None => Ok(MacAddr::generate()),
    }
}

fn parse_model(el: &XmlElement) -> Result<Option<NicModel>, DomainXmlError> {
    let Some(m) = el.child("model") else {
        return Ok(None);
    };
    m.check_attrs("interface/model", &["type"])?;
    m.check_children("interface/model", &[])?;
    named(
        "interface model",
        m.req_attr("interface/model", "type")?,
        NicModel::from_name,
    )
    .map(Some)
}

fn parse_link(el: &XmlElement) -> Result<Option<bool>, DomainXmlError> {
    let Some(l) = el.child("link") else {
        return Ok(None);
    };
    l.check_attrs("interface/link", &["state"])?;
    l.check_children("interface/link", &[])?;
    match l.req_attr("interface/link", "state")? {
        "up" => Ok(Some(true)),
        "down" => Ok(Some(false)),
        o => Err(DomainXmlError::invalid(
            "<interface/link state>",
            o,
            "expected 'up' or 'down'",
        )),
    }
}

fn parse_mtu(el: &XmlElement) -> Result<Option<u32>, DomainXmlError> {
    let Some(m) = el.child("mtu") else {
        return Ok(None);
    };
    m.check_attrs("interface/mtu", &["size"])?;
    m.check_children("interface/mtu", &[])?;
    let size = parse_uint("<interface/mtu size>", m.req_attr("interface/mtu", "size")?)?;
    if !(68..=65535).contains(&size) {
        return Err(DomainXmlError::invalid(
            "<interface/mtu size>",
            size.to_string(),
            "must be 68..65535",
        ));
    }
    Ok(Some(size))
}

fn parse_driver(el: &XmlElement) -> Result<NetDriver, DomainXmlError> {
    const D: &str = "interface/driver";
    el.check_attrs(D, &["name", "queues", "rx_queue_size", "tx_queue_size"])?;
    el.check_children(D, &[])?;
    let d = NetDriver {
        name: crate::values::named_attr(el, D, "name", NetDriverName::from_name)?,
        queues: crate::values::uint_attr(el, D, "queues")?,
        rx_queue_size: crate::values::uint_attr(el, D, "rx_queue_size")?,
        tx_queue_size: crate::values::uint_attr(el, D, "tx_queue_size")?,
    };
    if d.queues.is_some_and(|q| q == 0 || q > 256) {
        return Err(DomainXmlError::invalid(
            "<interface/driver queues>",
            d.queues.unwrap_or(0).to_string(),
            "must be 1..256",
        ));
    }
    for (k, v) in [
        ("rx_queue_size", d.rx_queue_size),
        ("tx_queue_size", d.tx_queue_size),
    ] {
        if v.is_some_and(|n| !(256..=1024).contains(&n) || !n.is_power_of_two()) {
            return Err(DomainXmlError::invalid(
                format!("<interface/driver {k}>"),
                v.unwrap_or(0).to_string(),
                "must be a power of two between 256 and 1024",
            ));
        }
    }
    Ok(d)
}

fn parse_bandwidth(el: &XmlElement) -> Result<Bandwidth, DomainXmlError> {
    const B: &str = "interface/bandwidth";
    el.check_attrs(B, &[])?;
    el.check_children(B, &["inbound", "outbound"])?;
    check_singletons(el, B, &["inbound", "outbound"])?;
    Ok(Bandwidth {
        inbound: el
            .child("inbound")
            .map(|r| parse_rate(r, true))
            .transpose()?,
        outbound: el
            .child("outbound")
            .map(|r| parse_rate(r, false))
            .transpose()?,
    })
}

fn parse_rate(el: &XmlElement, inbound: bool) -> Result<BandwidthRate, DomainXmlError> {
    let path = format!("interface/bandwidth/{}", el.name);
    let keys: &[&str] = if inbound {
        &["average", "peak", "burst", "floor"]
    } else {
        &["average", "peak", "burst"]
    };
    el.check_attrs(&path, keys)?;
    el.check_children(&path, &[])?;
    let num = |k: &str| {
        el.attr(k)
            .map(|v| parse_u64(&format!("<{path} {k}>"), v))
            .transpose()
    };
    let average = num("average")?.ok_or_else(|| {
        DomainXmlError::structure(format!("missing attribute 'average' of <{path}>"))
    })?;
    Ok(BandwidthRate {
        average,
        peak: num("peak")?,
        burst: num("burst")?,
        floor: num("floor")?,
    })
}

pub(crate) fn format_interface(
    w: &mut XmlWriter,
    n: &InterfaceDef,
    alias: Option<String>,
    live_tap: Option<&str>,
) {
    w.open("interface", &[("type", n.itype.as_str().into())]);
    w.empty("mac", &[("address", n.mac.to_string())]);
    if let Some(s) = &n.source {
        let key = match n.itype {
            InterfaceType::Bridge => "bridge",
            _ => "network",
        };
        w.empty("source", &[(key, s.clone())]);
    }
    if let Some(b) = &n.bandwidth {
        format_bandwidth(w, b);
    }
    if let Some(dev) = n.target_dev.as_deref().or(live_tap) {
        let mut attrs = vec![("dev", dev.to_string())];
        if !n.target_managed {
            attrs.push(("managed", "no".into()));
        }
        w.empty("target", &attrs);
    }
    if let Some(m) = n.model {
        w.empty("model", &[("type", m.as_str().into())]);
    }
    if let Some(d) = &n.driver {
        format_driver(w, d);
    }
    if let Some(up) = n.link_up {
        w.empty("link", &[("state", if up { "up" } else { "down" }.into())]);
    }
    if let Some(m) = n.mtu {
        w.empty("mtu", &[("size", m.to_string())]);
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

fn format_driver(w: &mut XmlWriter, d: &NetDriver) {
    let mut a = Vec::new();
    if let Some(n) = d.name {
        a.push(("name", n.as_str().to_string()));
    }
    for (k, v) in [
        ("queues", d.queues),
        ("rx_queue_size", d.rx_queue_size),
        ("tx_queue_size", d.tx_queue_size),
    ] {
        if let Some(v) = v {
            a.push((k, v.to_string()));
        }
    }
    w.empty("driver", &a);
}

fn format_bandwidth(w: &mut XmlWriter, b: &Bandwidth) {
    w.open("bandwidth", &[]);
    for (name, rate) in [("inbound", b.inbound), ("outbound", b.outbound)] {
        let Some(r) = rate else { continue };
        let mut a = vec![("average", r.average.to_string())];
        for (k, v) in [("peak", r.peak), ("burst", r.burst), ("floor", r.floor)] {
            if let Some(v) = v {
                a.push((k, v.to_string()));
            }
        }
        w.empty(name, &a);
    }
    w.close("bandwidth");
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

    #[test]
    fn host_sides_are_kept() {
        let el = virxml::parse_document(
            "<interface type='bridge'><source bridge='br0'/><target dev='tap7'/>\
             <link state='down'/><mtu size='1450'/>\
             <bandwidth><inbound average='1000' burst='64'/></bandwidth></interface>",
        )
        .unwrap();
        let n = parse_interface(&el).unwrap();
        assert_eq!(n.source.as_deref(), Some("br0"));
        assert_eq!(n.target_dev.as_deref(), Some("tap7"));
        assert_eq!(n.link_up, Some(false));
        assert_eq!(n.mtu, Some(1450));
        assert_eq!(
            n.bandwidth.and_then(|b| b.inbound).map(|r| r.burst),
            Some(Some(64))
        );
        let vnet = virxml::parse_document(
            "<interface type='network'><source network='default'/><target dev='vnet3'/></interface>",
        )
        .unwrap();
        assert_eq!(parse_interface(&vnet).unwrap().target_dev, None);
        let bad = virxml::parse_document("<interface type='network'/>").unwrap();
        assert!(parse_interface(&bad).is_err());
    }

    #[test]
    fn unmanaged_taps_are_named_ethernet_ones() {
        let parse = |x: &str| parse_interface(&virxml::parse_document(x).unwrap());
        let n = parse("<interface type='ethernet'><target dev='mytap' managed='no'/></interface>")
            .unwrap();
        assert!(!n.target_managed);
        let mut w = XmlWriter::new();
        format_interface(&mut w, &n, None, None);
        assert!(w.finish().contains("<target dev='mytap' managed='no'/>"));
        assert!(
            parse("<interface type='ethernet'><target dev='t'/></interface>")
                .unwrap()
                .target_managed
        );
        assert!(parse("<interface type='ethernet'><target managed='no'/></interface>").is_err());
        assert!(parse("<interface type='bridge'><source bridge='b'/><target dev='t' managed='no'/></interface>").is_err());
        assert!(
            parse("<interface type='ethernet'><target dev='t' managed='maybe'/></interface>")
                .is_err()
        );
    }
}
