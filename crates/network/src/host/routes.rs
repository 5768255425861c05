//! The host's IPv4 routes, read from `/proc/net/route` (the calling
//! thread's network namespace), to refuse a subnet that is already in use.

use std::net::Ipv4Addr;

use crate::addr::Subnet;
use crate::{Error, Result};

/// One route: the interface and its destination subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub iface: String,
    pub dest: Subnet,
}

/// Parses the text of `/proc/net/route` (addresses in host byte order
/// written as little-endian hex).
pub(crate) fn parse(text: &str) -> Vec<Route> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, mask) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
            let prefix = crate::addr::netmask_prefix(mask)?;
            Some(Route {
                iface: (*iface).to_owned(),
                dest: Subnet::new(dest, prefix)?,
            })
        })
        .collect()
}

pub(crate) fn read() -> Result<Vec<Route>> {
    let text = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| Error::io("cannot read /proc/net/route", e))?;
    Ok(parse(&text))
}

/// The first route, other than a default route and other than through
/// `own_bridge`, whose destination overlaps `subnet`.
pub(crate) fn collision<'a>(
    routes: &'a [Route],
    subnet: Subnet,
    own_bridge: &str,
) -> Option<&'a Route> {
    routes
        .iter()
        .find(|r| r.dest.prefix > 0 && r.iface != own_bridge && r.dest.overlaps(subnet))
}

/// libvirt's error for a subnet already routed elsewhere.
pub(crate) fn in_use(iface: &str) -> Error {
    Error::Internal(format!("Network is already in use by interface {iface}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        virbr0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn parses_and_finds_collisions() {
        let r = parse(TABLE);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].dest.to_string(), "192.168.2.0/24");
        let mine = Subnet::new(Ipv4Addr::new(192, 168, 122, 1), 24).unwrap();
        // the default route never counts; our own bridge does not either
        assert!(collision(&r, mine, "virbr0").is_none());
        assert_eq!(collision(&r, mine, "virbr1").unwrap().iface, "virbr0");
        let wide = Subnet::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap();
        assert_eq!(collision(&r, wide, "x").unwrap().iface, "eth0");
        assert_eq!(
            in_use("eth0").to_string(),
            "internal error: Network is already in use by interface eth0"
        );
    }
}
