//! `<network>`: the definition of a virtual network.

use virxml::{XmlElement, XmlError, XmlWriter};

use super::{Bandwidth, DnsHost, IpDef};
use crate::addr::MacAddr;
use crate::{Error, Result};

/// Forward modes libvirt knows but this driver does not implement.
const UNSUPPORTED_MODES: &[&str] = &["bridge", "private", "vepa", "passthrough", "hostdev"];

/// Children of `<network>` libvirt knows but this driver does not
/// implement.
const UNSUPPORTED_ELEMENTS: &[&str] = &[
    "portgroup",
    "virtualport",
    "vlan",
    "route",
    "port",
    "metadata",
    "title",
    "description",
    "dnsmasq:options",
];

/// How traffic leaves the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// No `<forward>`: guests reach each other and the host only.
    Isolated,
    /// NAT (masquerade) to the outside.
    Nat,
    /// Routed to the outside without NAT.
    Route,
    /// Routed, and no firewall rules at all.
    Open,
}

impl ForwardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Isolated => "none",
            Self::Nat => "nat",
            Self::Route => "route",
            Self::Open => "open",
        }
    }
}

/// `<forward>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub mode: ForwardMode,
    /// `dev=`: forward only through this host interface.
    pub dev: Option<String>,
    /// `<nat><port start= end=/></nat>`: the source ports NAT uses.
    pub nat_ports: Option<(u16, u16)>,
}

/// `<bridge name= stp= delay=/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeDef {
    /// `None`, or a name with `%d`, until the driver picks one.
    pub name: Option<String>,
    pub stp: bool,
    /// Forward delay in seconds.
    pub delay: u32,
}

/// `<domain name= localOnly=/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName {
    pub name: String,
    pub local_only: Option<bool>,
}

/// A parsed network definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDef {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub forward: Forward,
    pub bridge: BridgeDef,
    pub mtu: Option<u32>,
    /// The bridge's MAC (generated when absent, then kept).
    pub mac: Option<MacAddr>,
    pub domain: Option<DomainName>,
    pub dns_hosts: Vec<DnsHost>,
    pub bandwidth: Option<Bandwidth>,
    pub ip: Option<IpDef>,
}

/// Checks a network name: it becomes a file name.
fn check_name(name: &str) -> std::result::Result<(), XmlError> {
    let bad = |why: &str| XmlError::invalid("network name", name, why);
    if name.is_empty() {
        return Err(XmlError::structure("missing network name element"));
    }
    if name.contains('/') {
        return Err(bad("must not contain '/'"));
    }
    if name.starts_with('.') {
        return Err(bad("must not start with '.'"));
    }
    if name.len() > 200 || name.chars().any(|c| c.is_control()) {
        return Err(bad("too long or contains control characters"));
    }
    Ok(())
}

/// Whether `name` can be a bridge we create: an interface name (at most 15
/// bytes) that is also a plain nftables identifier, since the bridge names
/// its chains.
pub(crate) fn valid_bridge_name(name: &str) -> bool {
    name.len() <= 15
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl NetworkDef {
    /// Parses a `<network>` document (libvirt's checks included).
    pub fn parse(xml: &str) -> Result<Self> {
        Self::from_element(&virxml::parse_document(xml)?)
    }

    /// Parses an already parsed `<network>` element.
    pub(crate) fn from_element(root: &XmlElement) -> Result<Self> {
        if root.name != "network" {
            return Err(XmlError::structure(format!(
                "unexpected root element <{}>, expecting <network>",
                root.name
            ))
            .into());
        }
        super::refuse_known(root, "network", UNSUPPORTED_ELEMENTS)?;
        if root.attr("ipv6").is_some() || root.attr("trustGuestRxFilters").is_some() {
            return Err(
                XmlError::unsupported("<network> attribute", "ipv6/trustGuestRxFilters").into(),
            );
        }
        root.check_attrs("network", &["connections"])?;
        root.check_children(
            "network",
            &[
                "name",
                "uuid",
                "forward",
                "bridge",
                "mtu",
                "mac",
                "domain",
                "dns",
                "bandwidth",
                "ip",
            ],
        )?;
        let name = root.child_text("name").unwrap_or_default();
        check_name(&name)?;
        let mut def = Self {
            uuid: parse_uuid(root)?,
            forward: parse_forward(root.child("forward"))?,
            bridge: parse_bridge(root.child("bridge"))?,
            mtu: parse_mtu(root.child("mtu"))?,
            mac: parse_mac(root.child("mac"))?,
            domain: parse_domain(root.child("domain"))?,
            dns_hosts: parse_dns(root.child("dns"), &name)?,
            bandwidth: root.child("bandwidth").map(Bandwidth::parse).transpose()?,
            ip: None,
            name,
        };
        let mut ips = root.children_named("ip");
        def.ip = ips.next().map(|e| IpDef::parse(e, &def.name)).transpose()?;
        if ips.next().is_some() {
            return Err(XmlError::unsupported_because(
                "<network>",
                "a second <ip>",
                "one IPv4 address per network is implemented",
            )
            .into());
        }
        def.validate()?;
        Ok(def)
    }

    fn validate(&self) -> Result<()> {
        if let Some(n) = &self.bridge.name {
            let template = n.contains("%d") && valid_bridge_name(&n.replace("%d", "0"));
            if !template && !valid_bridge_name(n) {
                return Err(XmlError::invalid(
                    "<bridge name>",
                    n,
                    "expected at most 15 letters, digits, '-', '_' or '.', starting with a letter",
                )
                .into());
            }
        }
        let routed = matches!(self.forward.mode, ForwardMode::Nat | ForwardMode::Route);
        if routed && self.ip.is_none() {
            return Err(Error::Xml(XmlError::structure(format!(
                "{} forwarding requested, but no IP address provided for network '{}'",
                self.forward.mode.as_str(),
                self.name
            ))));
        }
        if self.forward.nat_ports.is_some() && self.forward.mode != ForwardMode::Nat {
            return Err(
                XmlError::structure("<nat> is only allowed with forward mode 'nat'").into(),
            );
        }
        Ok(())
    }

    /// The bridge name, once the driver has picked one.
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge.name.as_deref().filter(|n| !n.contains("%d"))
    }

    /// The definition as `net-dumpxml` shows it.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("network", &[]);
        w.text_elem("name", &[], &self.name);
        w.text_elem("uuid", &[], &self.uuid.to_string());
        self.format_forward(&mut w);
        let mut battrs = Vec::new();
        if let Some(n) = &self.bridge.name {
            battrs.push(("name", n.clone()));
        }
        battrs.push(("stp", if self.bridge.stp { "on" } else { "off" }.into()));
        battrs.push(("delay", self.bridge.delay.to_string()));
        w.empty("bridge", &battrs);
        if let Some(m) = self.mtu {
            w.empty("mtu", &[("size", m.to_string())]);
        }
        if let Some(m) = self.mac {
            w.empty("mac", &[("address", m.to_string())]);
        }
        if let Some(d) = &self.domain {
            let mut attrs = vec![("name", d.name.clone())];
            if let Some(l) = d.local_only {
                attrs.push(("localOnly", if l { "yes" } else { "no" }.into()));
            }
            w.empty("domain", &attrs);
        }
        if !self.dns_hosts.is_empty() {
            w.open("dns", &[]);
            for h in &self.dns_hosts {
                h.format(&mut w);
            }
            w.close("dns");
        }
        if let Some(b) = &self.bandwidth {
            b.format(&mut w);
        }
        if let Some(ip) = &self.ip {
            ip.format(&mut w);
        }
        w.close("network");
        w.finish()
    }

    fn format_forward(&self, w: &mut XmlWriter) {
        if self.forward.mode == ForwardMode::Isolated {
            return;
        }
        let mut attrs = Vec::new();
        if let Some(d) = &self.forward.dev {
            attrs.push(("dev", d.clone()));
        }
        attrs.push(("mode", self.forward.mode.as_str().into()));
        match self.forward.nat_ports {
            None => w.empty("forward", &attrs),
            Some((start, end)) => {
                w.open("forward", &attrs);
                w.open("nat", &[]);
                w.empty(
                    "port",
                    &[("start", start.to_string()), ("end", end.to_string())],
                );
                w.close("nat");
                w.close("forward");
            }
        }
    }
}

fn parse_uuid(root: &XmlElement) -> std::result::Result<uuid::Uuid, XmlError> {
    match root.child_text("uuid") {
        Some(u) => uuid::Uuid::parse_str(&u)
            .map_err(|_| XmlError::invalid("network <uuid>", &u, "malformed uuid")),
        None => Ok(uuid::Uuid::new_v4()),
    }
}

fn parse_forward(el: Option<&XmlElement>) -> Result<Forward> {
    let Some(el) = el else {
        return Ok(Forward {
            mode: ForwardMode::Isolated,
            dev: None,
            nat_ports: None,
        });
    };
    super::refuse_known(
        el,
        "network/forward",
        &["interface", "pf", "address", "driver"],
    )?;
    if el.attr("managed").is_some() {
        return Err(XmlError::unsupported("<forward> attribute", "managed").into());
    }
    el.check_attrs("network/forward", &["mode", "dev"])?;
    el.check_children("network/forward", &["nat"])?;
    let mode = match el.attr("mode").unwrap_or("nat") {
        "nat" => ForwardMode::Nat,
        "route" => ForwardMode::Route,
        "open" => ForwardMode::Open,
        m if UNSUPPORTED_MODES.contains(&m) => {
            return Err(XmlError::unsupported_because(
                "forward mode",
                m,
                "only 'nat', 'route', 'open' and isolated networks are implemented",
            )
            .into());
        }
        m => {
            return Err(Error::ConfigUnsupported(format!(
                "unknown forwarding type '{m}'"
            )));
        }
    };
    let dev = el.attr("dev").map(str::to_owned);
    if let Some(d) = &dev
        && (d.is_empty() || d.len() > 15 || d.contains(['"', '/', ' ']))
    {
        return Err(XmlError::invalid("<forward dev>", d, "not an interface name").into());
    }
    let nat_ports = el.child("nat").map(parse_nat).transpose()?.flatten();
    Ok(Forward {
        mode,
        dev,
        nat_ports,
    })
}

fn parse_nat(el: &XmlElement) -> std::result::Result<Option<(u16, u16)>, XmlError> {
    if el.child("address").is_some() || el.attr("ipv6").is_some() {
        return Err(XmlError::unsupported_because(
            "<forward><nat>",
            "address/ipv6",
            "only <port> is implemented",
        ));
    }
    el.check_attrs("network/forward/nat", &[])?;
    el.check_children("network/forward/nat", &["port"])?;
    let Some(p) = el.child("port") else {
        return Ok(None);
    };
    p.check_attrs("network/forward/nat/port", &["start", "end"])?;
    let port = |k: &str| -> std::result::Result<u16, XmlError> {
        let v = p.req_attr("nat/port", k)?;
        v.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| XmlError::invalid(format!("<nat><port {k}>"), v, "expected 1 to 65535"))
    };
    let (start, end) = (port("start")?, port("end")?);
    if start > end {
        return Err(XmlError::invalid(
            "<nat><port>",
            format!("{start}-{end}"),
            "start is after end",
        ));
    }
    Ok(Some((start, end)))
}

fn parse_bridge(el: Option<&XmlElement>) -> Result<BridgeDef> {
    let Some(el) = el else {
        return Ok(BridgeDef {
            name: None,
            stp: true,
            delay: 0,
        });
    };
    if el.attr("macTableManager").is_some() || el.attr("zone").is_some() {
        return Err(XmlError::unsupported("<bridge> attribute", "macTableManager/zone").into());
    }
    el.check_attrs("network/bridge", &["name", "stp", "delay"])?;
    el.check_children("network/bridge", &[])?;
    let stp = match el.attr("stp") {
        None | Some("on") => true,
        Some("off") => false,
        Some(v) => {
            return Err(XmlError::invalid("<bridge stp>", v, "expected 'on' or 'off'").into());
        }
    };
    let delay =
        match el.attr("delay") {
            None => 0,
            Some(v) => v.parse::<u32>().ok().filter(|d| *d <= 30).ok_or_else(|| {
                XmlError::invalid("<bridge delay>", v, "expected 0 to 30 seconds")
            })?,
        };
    Ok(BridgeDef {
        name: el.attr("name").filter(|n| !n.is_empty()).map(str::to_owned),
        stp,
        delay,
    })
}

fn parse_mtu(el: Option<&XmlElement>) -> std::result::Result<Option<u32>, XmlError> {
    let Some(el) = el else { return Ok(None) };
    el.check_attrs("network/mtu", &["size"])?;
    let v = el.req_attr("network/mtu", "size")?;
    v.parse::<u32>()
        .ok()
        .filter(|m| (68..=65535).contains(m))
        .map(Some)
        .ok_or_else(|| XmlError::invalid("<mtu size>", v, "expected 68 to 65535"))
}

fn parse_mac(el: Option<&XmlElement>) -> std::result::Result<Option<MacAddr>, XmlError> {
    let Some(el) = el else { return Ok(None) };
    el.check_attrs("network/mac", &["address"])?;
    let v = el.req_attr("network/mac", "address")?;
    let mac: MacAddr = v.parse().map_err(|()| {
        XmlError::structure(format!("Invalid bridge mac address '{v}' in network"))
    })?;
    if mac.is_multicast() {
        return Err(XmlError::structure(format!(
            "Invalid multicast bridge mac address '{v}' in network"
        )));
    }
    Ok(Some(mac))
}

fn parse_domain(el: Option<&XmlElement>) -> std::result::Result<Option<DomainName>, XmlError> {
    let Some(el) = el else { return Ok(None) };
    if el.attr("register").is_some() {
        return Err(XmlError::unsupported("<domain> attribute", "register"));
    }
    el.check_attrs("network/domain", &["name", "localOnly"])?;
    let name = el.req_attr("network/domain", "name")?.to_owned();
    if !super::ip::valid_hostname(&name) {
        return Err(XmlError::invalid(
            "<domain name>",
            name,
            "not a valid domain name",
        ));
    }
    let local_only = match el.attr("localOnly") {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(v) => {
            return Err(XmlError::invalid(
                "<domain localOnly>",
                v,
                "expected 'yes' or 'no'",
            ));
        }
    };
    Ok(Some(DomainName { name, local_only }))
}

fn parse_dns(el: Option<&XmlElement>, net: &str) -> Result<Vec<DnsHost>> {
    let Some(el) = el else { return Ok(Vec::new()) };
    super::refuse_known(el, "network/dns", &["txt", "srv", "forwarder"])?;
    if el.attr("forwardPlainNames").is_some() || el.attr("enable").is_some_and(|e| e != "yes") {
        return Err(XmlError::unsupported("<dns> attribute", "forwardPlainNames/enable").into());
    }
    el.check_attrs("network/dns", &["enable"])?;
    el.check_children("network/dns", &["host"])?;
    el.children_named("host")
        .map(|h| DnsHost::parse(h, net, false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use virterror::ErrorCode;

    const DEFAULT: &str = "<network><name>default</name>\
        <uuid>7c8dbd43-6bf1-4a6c-a7d5-2d4c1c4e0b4d</uuid>\
        <forward mode='nat'/><bridge name='virbr0' stp='on' delay='0'/>\
        <mac address='52:54:00:0a:0b:0c'/><domain name='example'/>\
        <dns><host ip='192.168.122.7'><hostname>db</hostname><hostname>db.example</hostname></host></dns>\
        <bandwidth><inbound average='1000'/></bandwidth>\
        <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
        <range start='192.168.122.2' end='192.168.122.254'/>\
        <host mac='52:54:00:00:00:07' name='db' ip='192.168.122.7'/></dhcp></ip></network>";

    fn code(xml: &str) -> ErrorCode {
        NetworkDef::parse(xml).unwrap_err().code()
    }

    #[test]
    fn round_trip() {
        let d = NetworkDef::parse(DEFAULT).unwrap();
        assert_eq!(d.forward.mode, ForwardMode::Nat);
        assert_eq!(d.bridge_name(), Some("virbr0"));
        assert_eq!(d.ip.as_ref().unwrap().subnet().prefix, 24);
        let xml = d.to_xml();
        assert!(xml.contains("<forward mode='nat'/>"), "{xml}");
        assert!(
            xml.contains("<bridge name='virbr0' stp='on' delay='0'/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<ip address='192.168.122.1' netmask='255.255.255.0'>"),
            "{xml}"
        );
        assert!(xml.contains("<hostname>db.example</hostname>"), "{xml}");
        assert_eq!(NetworkDef::parse(&xml).unwrap(), d);
    }

    #[test]
    fn isolated_and_generated_parts() {
        let d =
            NetworkDef::parse("<network><name>iso</name><bridge name='br%d'/></network>").unwrap();
        assert_eq!(d.forward.mode, ForwardMode::Isolated);
        assert_eq!(d.bridge_name(), None);
        assert!(!d.to_xml().contains("<forward"));
        let nat = NetworkDef::parse(
            "<network><name>n</name><forward><nat><port start='1024' end='65535'/></nat></forward>\
             <ip address='10.1.0.1' prefix='16'/></network>",
        )
        .unwrap();
        assert_eq!(nat.forward.nat_ports, Some((1024, 65535)));
        assert!(nat.to_xml().contains("<port start='1024' end='65535'/>"));
    }

    #[test]
    fn bad_networks_get_libvirt_codes() {
        assert_eq!(
            code("<network><name>a</name><forward mode='bogus'/></network>"),
            ErrorCode::ConfigUnsupported
        );
        let e = NetworkDef::parse("<network><name>a</name><forward mode='bogus'/></network>")
            .unwrap_err();
        assert!(e.to_string().contains("unknown forwarding type"), "{e}");
        for unsupported in ["bridge", "passthrough", "hostdev", "private", "vepa"] {
            let xml = format!("<network><name>a</name><forward mode='{unsupported}'/></network>");
            assert_eq!(code(&xml), ErrorCode::ConfigUnsupported, "{unsupported}");
        }
        assert_eq!(
            code("<network><name>a</name><portgroup name='x'/></network>"),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<network><name>a</name><frobnicate/></network>"),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<network><name>a</name><bridge name='x' zone='z'/></network>"),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<network><name>a</name><dns><srv service='x' protocol='tcp'/></dns></network>"),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<network><name>a</name><forward mode='nat'/></network>"),
            ErrorCode::XmlError
        );
        assert_eq!(
            code("<network><uuid>x</uuid></network>"),
            ErrorCode::XmlError
        );
        assert_eq!(
            code("<network><name>a/b</name></network>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<network><name>a</name><bridge name='this-name-is-too-long'/></network>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<network><name>a</name><mtu size='5'/></network>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<network><name>a</name><mac address='01:00:00:00:00:00'/></network>"),
            ErrorCode::XmlError
        );
        assert_eq!(code("<pool/>"), ErrorCode::XmlError);
        assert_eq!(code("<network"), ErrorCode::XmlError);
        assert_eq!(
            code(
                "<network><name>a</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.3'/></dhcp></ip></network>"
            ),
            ErrorCode::InternalError
        );
        assert_eq!(
            code(
                "<network><name>a</name><ip address='10.0.0.1'/><ip address='10.1.0.1'/></network>"
            ),
            ErrorCode::ConfigUnsupported
        );
    }
}
