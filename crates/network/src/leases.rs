//! `virNetworkGetDHCPLeases`, read from dnsmasq's own lease file.

use std::net::Ipv4Addr;

use crate::addr::MacAddr;
use crate::driver::NetworkDriver;
use crate::host::dnsmasq::Files;
use crate::network::Network;
use crate::{Error, Result};

/// `virIPAddrType::VIR_IP_ADDR_TYPE_IPV4`.
pub const IP_ADDR_TYPE_IPV4: i32 = 0;

/// `virNetworkDHCPLease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLease {
    /// The network's bridge.
    pub iface: String,
    /// Seconds since the epoch; 0 for a lease that never expires.
    pub expirytime: i64,
    /// `virIPAddrType`.
    pub addr_type: i32,
    pub mac: String,
    /// IPv6 only; always `None` here.
    pub iaid: Option<String>,
    pub ipaddr: String,
    pub prefix: u32,
    pub hostname: Option<String>,
    pub clientid: Option<String>,
}

/// Parses dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENTID` per
/// line, `*` for a missing hostname or client id. Expired leases are
/// dropped (`now` in seconds since the epoch).
pub(crate) fn parse(text: &str, now: i64, iface: &str, prefix: u32) -> Vec<DhcpLease> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let expiry: i64 = f.first()?.parse().ok()?;
            let mac: MacAddr = f.get(1)?.parse().ok()?;
            let ip: Ipv4Addr = f.get(2)?.parse().ok()?;
            if expiry != 0 && expiry < now {
                return None;
            }
            let opt = |s: Option<&&str>| s.filter(|v| **v != "*").map(|v| (*v).to_owned());
            Some(DhcpLease {
                iface: iface.to_owned(),
                expirytime: expiry,
                addr_type: IP_ADDR_TYPE_IPV4,
                mac: mac.to_string(),
                iaid: None,
                ipaddr: ip.to_string(),
                prefix,
                hostname: opt(f.get(3)),
                clientid: opt(f.get(4)),
            })
        })
        .collect()
}

impl NetworkDriver {
    /// The current DHCP leases of a running network, optionally only
    /// those of one MAC address.
    pub fn dhcp_leases(&self, net: &Network, mac: Option<&str>) -> Result<Vec<DhcpLease>> {
        let want = mac
            .map(|m| {
                m.parse::<MacAddr>()
                    .map_err(|()| Error::InvalidArg(format!("Invalid MAC address '{m}'")))
            })
            .transpose()?;
        let def = {
            let g = net.lock();
            let Some(l) = g.live.as_ref() else {
                return Err(Error::OperationInvalid("network is not active".into()));
            };
            l.def.clone()
        };
        let Some(ip) = &def.ip else {
            return Ok(Vec::new());
        };
        let path = Files::new(&self.s.layout, &def.name).leases;
        let text = match durable::read_bounded(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let bridge = def.bridge_name().unwrap_or_default();
        let mut leases = parse(&text, now, bridge, u32::from(ip.subnet().prefix));
        if let Some(m) = want {
            let m = m.to_string();
            leases.retain(|l| l.mac == m);
        }
        Ok(leases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_file() {
        let text = "1700000100 52:54:00:aa:bb:cc 10.0.0.20 guest1 01:52:54:00:aa:bb:cc\n\
                    1600000000 52:54:00:00:00:01 10.0.0.21 old *\n\
                    0 52:54:00:00:00:02 10.0.0.22 * *\n\
                    duid 00:01:00:01\n\
                    garbage line\n";
        let l = parse(text, 1_700_000_000, "virbr0", 24);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].hostname.as_deref(), Some("guest1"));
        assert_eq!(l[0].clientid.as_deref(), Some("01:52:54:00:aa:bb:cc"));
        assert_eq!(
            (l[0].prefix, l[0].iface.as_str(), l[0].addr_type),
            (24, "virbr0", 0)
        );
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[1].expirytime, 0);
    }
}
