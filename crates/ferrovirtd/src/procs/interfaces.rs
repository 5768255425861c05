//! Guest NICs seen from the host: `domifaddr` (from the DHCP leases of the
//! NIC's network, or from the host's ARP table). A snapshot of the
//! domain's NICs and of the network's leases: no job, no monitor.

use qemu::LiveNic;
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainInterface, DomainInterfaceAddressesArgs, DomainInterfaceAddressesRet, DomainIpAddr,
};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags;
use crate::wire::{invalid_arg, vir};

/// `virDomainInterfaceAddressesSource`.
const SRC_LEASE: u32 = 0;
const SRC_AGENT: u32 = 1;
const SRC_ARP: u32 = 2;

/// `VIR_IP_ADDR_TYPE_IPV4`.
const IPV4: i32 = 0;

/// `virsh domifaddr DOM [--source lease|arp]`.
pub(crate) async fn interface_addresses(
    d: &Daemon,
    _: &CallContext,
    a: DomainInterfaceAddressesArgs,
) -> Reply<DomainInterfaceAddressesRet> {
    flags::check("virDomainInterfaceAddresses", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    let nics = d.driver.live_nics(&dom).map_err(vir)?;
    let ifaces = match a.source {
        SRC_LEASE => from_leases(d, &nics),
        SRC_ARP => from_arp(
            &nics,
            &std::fs::read_to_string("/proc/net/arp").unwrap_or_default(),
        ),
        SRC_AGENT => {
            return Err(VirError::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Qemu,
                "Operation not supported: this daemon has no guest agent channel; use --source lease or arp",
            ));
        }
        s => return Err(invalid_arg(format!("Unknown IP address data source {s}"))),
    };
    Ok(DomainInterfaceAddressesRet { ifaces })
}

/// One entry per NIC of a `type='network'` interface that holds a lease,
/// as libvirt lists them.
fn from_leases(d: &Daemon, nics: &[LiveNic]) -> Vec<DomainInterface> {
    nics.iter()
        .filter_map(|n| {
            let net = d.network.lookup_by_name(n.network.as_deref()?).ok()?;
            let leases = d.network.dhcp_leases(&net, Some(&n.mac)).ok()?;
            let addrs: Vec<DomainIpAddr> = leases
                .into_iter()
                .map(|l| DomainIpAddr {
                    type_: l.addr_type,
                    addr: l.ipaddr,
                    prefix: l.prefix,
                })
                .collect();
            entry(n, addrs)
        })
        .collect()
}

/// The host's ARP table (`/proc/net/arp`: IP, HW type, flags, HW address,
/// mask, device) matched against the NICs' MAC addresses.
fn from_arp(nics: &[LiveNic], table: &str) -> Vec<DomainInterface> {
    let rows: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Flags 0x0: an incomplete entry, no address known.
            (f.get(2) != Some(&"0x0")).then_some(())?;
            Some((*f.first()?, *f.get(3)?))
        })
        .collect();
    nics.iter()
        .filter_map(|n| {
            let addrs = rows
                .iter()
                .filter(|(_, mac)| mac.eq_ignore_ascii_case(&n.mac))
                .map(|(ip, _)| DomainIpAddr {
                    type_: IPV4,
                    addr: (*ip).to_owned(),
                    prefix: 0,
                })
                .collect();
            entry(n, addrs)
        })
        .collect()
}

fn entry(n: &LiveNic, addrs: Vec<DomainIpAddr>) -> Option<DomainInterface> {
    if addrs.is_empty() {
        return None;
    }
    Some(DomainInterface {
        name: n.tap.clone().unwrap_or_default(),
        hwaddr: Some(n.mac.clone()),
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(tap: &str, mac: &str) -> LiveNic {
        LiveNic {
            tap: Some(tap.into()),
            mac: mac.into(),
            network: None,
        }
    }

    #[test]
    fn arp_rows_match_by_mac_and_skip_incomplete_entries() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.0.0.5         0x1         0x2         52:54:00:AA:00:01     *        br0\n\
                     10.0.0.6         0x1         0x0         52:54:00:aa:00:02     *        br0\n\
                     10.0.0.7         0x1         0x2         52:54:00:aa:00:03     *        br0\n";
        let nics = [
            nic("vnet0", "52:54:00:aa:00:01"),
            nic("vnet1", "52:54:00:aa:00:02"),
        ];
        let got = from_arp(&nics, table);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].name, "vnet0");
        assert_eq!(got[0].addrs[0].addr, "10.0.0.5");
        assert!(from_arp(&nics, "garbage\n1 2\n").is_empty());
    }
}
