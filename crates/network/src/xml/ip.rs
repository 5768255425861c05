//! `<ip>` with its `<dhcp>`, and the `<dns>` host records.

use std::net::Ipv4Addr;

use virxml::{XmlElement, XmlError, XmlWriter};

use crate::addr::{MacAddr, Subnet, netmask_prefix};
use crate::{Error, Result};

/// How the prefix of an `<ip>` was written, kept so that `net-dumpxml`
/// shows what the user wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMask {
    Prefix(u8),
    Netmask(Ipv4Addr),
    /// Neither: the address's class decides, as in libvirt.
    Natural(u8),
}

/// `<ip>`: the bridge's address and, optionally, DHCP on its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpDef {
    pub address: Ipv4Addr,
    pub mask: IpMask,
    /// `Some` when `<dhcp>` is present (possibly empty).
    pub dhcp_ranges: Option<Vec<DhcpRange>>,
    pub dhcp_hosts: Vec<DhcpHost>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

/// `<dhcp><host mac= name= ip=/>`: a static lease. In a delete request
/// any of the three may be missing (all given ones must match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: Option<MacAddr>,
    pub name: Option<String>,
    pub ip: Option<Ipv4Addr>,
}

/// `<dns><host ip=><hostname>..</hostname></host></dns>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHost {
    pub ip: Ipv4Addr,
    pub hostnames: Vec<String>,
}

fn parse_ip(what: &str, v: &str) -> std::result::Result<Ipv4Addr, XmlError> {
    v.parse::<Ipv4Addr>()
        .map_err(|_| XmlError::invalid(what, v, "expected an IPv4 address"))
}

impl IpDef {
    pub fn subnet(&self) -> Subnet {
        let prefix = match self.mask {
            IpMask::Prefix(p) | IpMask::Natural(p) => p,
            IpMask::Netmask(m) => netmask_prefix(m).unwrap_or(32),
        };
        Subnet {
            addr: self.address,
            prefix: prefix.min(32),
        }
    }

    pub(crate) fn parse(el: &XmlElement, net: &str) -> Result<Self> {
        if let Some(f) = el.attr("family").filter(|f| *f != "ipv4") {
            return Err(XmlError::unsupported_because(
                "network address family",
                f,
                "only IPv4 is implemented",
            )
            .into());
        }
        crate::xml::refuse_known(el, "network/ip", &["tftp"])?;
        if el.attr("localPtr").is_some() {
            return Err(XmlError::unsupported("<network/ip> attribute", "localPtr").into());
        }
        el.check_attrs("network/ip", &["address", "netmask", "prefix", "family"])?;
        el.check_children("network/ip", &["dhcp"])?;
        let address = parse_ip("<ip address>", el.req_attr("network/ip", "address")?)?;
        let mask = parse_mask(el, address)?;
        let mut ip = Self {
            address,
            mask,
            dhcp_ranges: None,
            dhcp_hosts: Vec::new(),
        };
        if let Some(dhcp) = el.child("dhcp") {
            ip.parse_dhcp(dhcp, net)?;
        }
        Ok(ip)
    }

    fn parse_dhcp(&mut self, dhcp: &XmlElement, net: &str) -> Result<()> {
        crate::xml::refuse_known(dhcp, "network/ip/dhcp", &["bootp"])?;
        dhcp.check_attrs("network/ip/dhcp", &[])?;
        dhcp.check_children("network/ip/dhcp", &["range", "host"])?;
        let mut ranges = Vec::new();
        for r in dhcp.children_named("range") {
            let range = DhcpRange::parse(r)?;
            range.check(self.subnet())?;
            ranges.push(range);
        }
        for h in dhcp.children_named("host") {
            self.dhcp_hosts.push(DhcpHost::parse(h, net, false)?);
        }
        self.dhcp_ranges = Some(ranges);
        Ok(())
    }

    /// Whether dnsmasq serves DHCP on this subnet.
    pub fn has_dhcp(&self) -> bool {
        self.dhcp_ranges.as_ref().is_some_and(|r| !r.is_empty()) || !self.dhcp_hosts.is_empty()
    }

    pub(crate) fn format(&self, w: &mut XmlWriter) {
        let mut attrs = vec![("address", self.address.to_string())];
        match self.mask {
            IpMask::Prefix(p) => attrs.push(("prefix", p.to_string())),
            IpMask::Netmask(m) => attrs.push(("netmask", m.to_string())),
            IpMask::Natural(_) => {}
        }
        if self.dhcp_ranges.is_none() && self.dhcp_hosts.is_empty() {
            w.empty("ip", &attrs);
            return;
        }
        w.open("ip", &attrs);
        w.open("dhcp", &[]);
        for r in self.dhcp_ranges.iter().flatten() {
            w.empty(
                "range",
                &[("start", r.start.to_string()), ("end", r.end.to_string())],
            );
        }
        for h in &self.dhcp_hosts {
            w.empty("host", &h.attrs());
        }
        w.close("dhcp");
        w.close("ip");
    }
}

fn parse_mask(el: &XmlElement, address: Ipv4Addr) -> std::result::Result<IpMask, XmlError> {
    match (el.attr("prefix"), el.attr("netmask")) {
        (Some(_), Some(_)) => Err(XmlError::structure(
            "network has prefix='...' and netmask='...' specified, only one is allowed",
        )),
        (Some(p), None) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32)
            .map(IpMask::Prefix)
            .ok_or_else(|| XmlError::invalid("<ip prefix>", p, "expected 0 to 32")),
        (None, Some(m)) => {
            let mask = parse_ip("<ip netmask>", m)?;
            netmask_prefix(mask)
                .map(|_| IpMask::Netmask(mask))
                .ok_or_else(|| XmlError::invalid("<ip netmask>", m, "not a contiguous netmask"))
        }
        (None, None) => {
            let first = address.octets()[0];
            let natural = match first {
                0..=127 => 8,
                128..=191 => 16,
                192..=223 => 24,
                _ => {
                    return Err(XmlError::structure(format!(
                        "no prefix given and none can be derived from address {address}"
                    )));
                }
            };
            Ok(IpMask::Natural(natural))
        }
    }
}

impl DhcpRange {
    fn parse(el: &XmlElement) -> std::result::Result<Self, XmlError> {
        crate::xml::refuse_known(el, "network/ip/dhcp/range", &["lease"])?;
        el.check_attrs("network/ip/dhcp/range", &["start", "end"])?;
        el.check_children("network/ip/dhcp/range", &[])?;
        let start = parse_ip("<range start>", el.req_attr("range", "start")?)?;
        let end = parse_ip("<range end>", el.req_attr("range", "end")?)?;
        Ok(Self { start, end })
    }

    /// libvirt's checks of a DHCP range against its subnet, with its
    /// messages (all VIR_ERR_INTERNAL_ERROR in libvirt).
    pub(crate) fn check(&self, net: Subnet) -> Result<()> {
        let (s, e) = (self.start, self.end);
        let (n, p) = (net.addr, net.prefix);
        if !net.contains(s) || !net.contains(e) {
            return Err(Error::Internal(format!(
                "range {s} - {e} is not entirely within network {n}/{p}"
            )));
        }
        if net.prefix < 31 && s == net.network() {
            return Err(Error::Internal(format!(
                "start of range {s} - {e} in network {n}/{p} is the network address"
            )));
        }
        if net.prefix < 31 && e == net.broadcast() {
            return Err(Error::Internal(format!(
                "end of range {s} - {e} in network {n}/{p} is the broadcast address"
            )));
        }
        if u32::from(s) > u32::from(e) {
            return Err(Error::Internal(format!("range {s} - {e} is reversed ")));
        }
        Ok(())
    }
}

impl DhcpHost {
    /// Parses `<host>`; `partial` allows missing attributes (a delete).
    pub(crate) fn parse(el: &XmlElement, net: &str, partial: bool) -> Result<Self> {
        if el.attr("id").is_some() || el.child("lease").is_some() {
            return Err(XmlError::unsupported_because(
                "<dhcp><host>",
                "id/lease",
                "DHCPv6 identifiers and per-host lease times are not implemented",
            )
            .into());
        }
        el.check_attrs("network/ip/dhcp/host", &["mac", "name", "ip"])?;
        el.check_children("network/ip/dhcp/host", &[])?;
        let mac = el.attr("mac").map(|m| parse_host_mac(m, net)).transpose()?;
        let name = el.attr("name").map(str::to_owned);
        if let Some(n) = &name
            && (!n.starts_with(|c: char| c.is_ascii_alphabetic()) || !valid_hostname(n))
        {
            return Err(XmlError::structure(format!(
                "Cannot use host name '{n}' in network '{net}'"
            ))
            .into());
        }
        if !partial && mac.is_none() && name.is_none() {
            return Err(XmlError::structure(format!(
                "Static host definition in network '{net}' must have mac or name attribute"
            ))
            .into());
        }
        let ip = match el.attr("ip") {
            Some(v) => Some(parse_ip("<host ip>", v)?),
            None if partial => None,
            None => {
                return Err(XmlError::structure(format!(
                    "Missing IP address in static host definition for network '{net}'"
                ))
                .into());
            }
        };
        Ok(Self { mac, name, ip })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = Vec::new();
        if let Some(m) = self.mac {
            a.push(("mac", m.to_string()));
        }
        if let Some(n) = &self.name {
            a.push(("name", n.clone()));
        }
        if let Some(ip) = self.ip {
            a.push(("ip", ip.to_string()));
        }
        a
    }

    /// The element as libvirt quotes it in its update errors.
    pub(crate) fn describe(&self) -> String {
        format!(
            "<host mac='{}' name='{}' ip='{}'/>",
            self.mac.map_or("unknown".into(), |m| m.to_string()),
            self.name.as_deref().unwrap_or("(null)"),
            self.ip.map_or("unknown".into(), |i| i.to_string())
        )
    }
}

fn parse_host_mac(m: &str, net: &str) -> std::result::Result<MacAddr, XmlError> {
    let mac: MacAddr = m.parse().map_err(|()| {
        XmlError::structure(format!("Cannot parse MAC address '{m}' in network '{net}'"))
    })?;
    if mac.is_multicast() {
        return Err(XmlError::structure(format!(
            "expected unicast mac address, found multicast '{m}' in network '{net}'"
        )));
    }
    Ok(mac)
}

/// A name dnsmasq can hand out and resolve: labels of letters, digits and
/// hyphens. It also keeps the hosts files dnsmasq reads line-safe.
pub(crate) fn valid_hostname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl DnsHost {
    /// Parses `<host>` of `<dns>`; `partial` allows a missing address or
    /// missing names (a delete).
    pub(crate) fn parse(el: &XmlElement, net: &str, partial: bool) -> Result<Self> {
        el.check_attrs("network/dns/host", &["ip"])?;
        el.check_children("network/dns/host", &["hostname"])?;
        let ip = match el.attr("ip") {
            Some(v) => parse_ip("<dns><host ip>", v)?,
            None if partial => Ipv4Addr::UNSPECIFIED,
            None => {
                return Err(XmlError::structure(format!(
                    "Missing IP address in network '{net}' DNS HOST record"
                ))
                .into());
            }
        };
        let mut hostnames = Vec::new();
        for h in el.children_named("hostname") {
            let n = h.text().trim().to_owned();
            if !valid_hostname(&n) {
                return Err(
                    XmlError::invalid("<dns><host><hostname>", n, "not a valid host name").into(),
                );
            }
            hostnames.push(n);
        }
        if hostnames.is_empty() && !partial {
            return Err(XmlError::structure(format!(
                "Missing hostname in network '{net}' DNS HOST record"
            ))
            .into());
        }
        Ok(Self { ip, hostnames })
    }

    pub(crate) fn format(&self, w: &mut XmlWriter) {
        w.open("host", &[("ip", self.ip.to_string())]);
        for h in &self.hostnames {
            w.text_elem("hostname", &[], h);
        }
        w.close("host");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virterror::ErrorCode;

    fn ip(xml: &str) -> Result<IpDef> {
        IpDef::parse(&virxml::parse_document(xml).unwrap(), "n")
    }

    #[test]
    fn ranges_are_checked_like_libvirt() {
        let ok = ip("<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.254'/></dhcp></ip>")
            .unwrap();
        assert!(ok.has_dhcp());
        for (bad, msg) in [
            (
                "10.0.1.2' end='10.0.1.9",
                "is not entirely within network 10.0.0.1/24",
            ),
            ("10.0.0.0' end='10.0.0.9", "is the network address"),
            ("10.0.0.2' end='10.0.0.255", "is the broadcast address"),
            ("10.0.0.9' end='10.0.0.2", "is reversed"),
        ] {
            let e = ip(&format!(
                "<ip address='10.0.0.1' netmask='255.255.255.0'><dhcp><range start='{bad}'/></dhcp></ip>"
            ))
            .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InternalError);
            assert!(e.to_string().contains(msg), "{e}");
        }
    }

    #[test]
    fn hosts_and_masks() {
        let d = ip("<ip address='192.168.1.1'><dhcp><host mac='52:54:00:00:00:01' name='vm1' ip='192.168.1.9'/></dhcp></ip>")
            .unwrap();
        assert_eq!(d.mask, IpMask::Natural(24));
        assert_eq!(d.dhcp_hosts[0].name.as_deref(), Some("vm1"));
        for bad in [
            "<ip address='10.0.0.1' prefix='24' netmask='255.0.0.0'/>",
            "<ip address='10.0.0.1' netmask='255.0.255.0'/>",
            "<ip address='10.0.0.1' prefix='40'/>",
            "<ip address='10.0.0.1'><dhcp><host ip='10.0.0.5'/></dhcp></ip>",
            "<ip address='10.0.0.1'><dhcp><host mac='01:00:00:00:00:01' ip='10.0.0.5'/></dhcp></ip>",
            "<ip address='10.0.0.1'><dhcp><host name='9x' ip='10.0.0.5'/></dhcp></ip>",
            "<ip address='10.0.0.1'><dhcp><host name='a'/></dhcp></ip>",
        ] {
            assert!(ip(bad).is_err(), "{bad}");
        }
        for unsupported in [
            "<ip family='ipv6' address='fd00::1' prefix='64'/>",
            "<ip address='10.0.0.1'><tftp root='/x'/></ip>",
            "<ip address='10.0.0.1'><dhcp><bootp file='x'/></dhcp></ip>",
        ] {
            assert_eq!(
                ip(unsupported).unwrap_err().code(),
                ErrorCode::ConfigUnsupported,
                "{unsupported}"
            );
        }
    }
}
