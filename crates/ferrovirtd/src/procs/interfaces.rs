//! Guest NICs seen from the host: `domifaddr` (from the DHCP leases of the
//! NIC's network, or from the host's ARP table), a snapshot of the
//! domain's NICs and of the network's leases (no job, no monitor); and
//! `update-device` of an interface's link state and `domiftune` (modify
//! jobs).

use qemu::LiveNic;
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainAttachDeviceFlagsArgs, DomainGetInterfaceParametersArgs, DomainGetInterfaceParametersRet,
    DomainInterface, DomainInterfaceAddressesArgs, DomainInterfaceAddressesRet, DomainIpAddr,
    DomainSetInterfaceParametersArgs, TypedParam, TypedParamValue,
};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
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

/// `VIR_DOMAIN_DEVICE_MODIFY_FORCE`.
const DEVICE_MODIFY_FORCE: u32 = 4;

/// `virsh update-device DOM FILE [--live] [--config]` with an
/// `<interface>` whose link state changes (`domif-setlink`); the device
/// procedures send interfaces here.
pub(crate) async fn update_link(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainAttachDeviceFlagsArgs,
) -> Reply<()> {
    flags::check(
        "virDomainUpdateDeviceFlags",
        a.flags,
        f::AFFECT_LIVE | f::AFFECT_CONFIG | DEVICE_MODIFY_FORCE,
    )?;
    let dom = d.domain(&a.dom)?;
    let owner = format!("remote DOMAIN_UPDATE_DEVICE_FLAGS from {}", ctx.client);
    d.driver
        .update_interface_link(&dom, &a.xml, affect(&dom, a.flags), &owner)
        .await
        .map_err(vir)
}

/// `VIR_DOMAIN_AFFECT_*`: with neither bit, the running domain when it
/// runs, else its definition.
fn affect(dom: &qemu::Domain, flags: u32) -> qemu::Impact {
    match flags & (f::AFFECT_LIVE | f::AFFECT_CONFIG) {
        0 => qemu::Impact {
            live: dom.is_active(),
            config: !dom.is_active(),
        },
        b => qemu::Impact {
            live: b & f::AFFECT_LIVE != 0,
            config: b & f::AFFECT_CONFIG != 0,
        },
    }
}

/// `VIR_DOMAIN_BANDWIDTH_*` parameters, in libvirt's order.
const BANDWIDTH_PARAMS: [&str; 7] = [
    "inbound.average",
    "inbound.peak",
    "inbound.burst",
    "inbound.floor",
    "outbound.average",
    "outbound.peak",
    "outbound.burst",
];

/// `virsh domiftune DOM DEV`: the NIC's bandwidth, every parameter (0 for
/// what is not set); with `nparams` 0, only how many there are.
pub(crate) async fn get_interface_parameters(
    d: &Daemon,
    _: &CallContext,
    a: DomainGetInterfaceParametersArgs,
) -> Reply<DomainGetInterfaceParametersRet> {
    flags::check(
        "virDomainGetInterfaceParameters",
        a.flags,
        f::AFFECT_LIVE | f::AFFECT_CONFIG | f::TYPED_PARAM_STRING_OKAY,
    )?;
    let dom = d.domain(&a.dom)?;
    let config = !affect(&dom, a.flags).live;
    let bw = d
        .driver
        .interface_bandwidth(&dom, &a.device, config)
        .map_err(vir)?
        .unwrap_or_default();
    if a.nparams == 0 {
        return Ok(DomainGetInterfaceParametersRet {
            params: Vec::new(),
            nparams: 7,
        });
    }
    let (i, o) = (
        bw.inbound.unwrap_or_default(),
        bw.outbound.unwrap_or_default(),
    );
    let values = [
        i.average,
        i.peak.unwrap_or(0),
        i.burst.unwrap_or(0),
        i.floor.unwrap_or(0),
        o.average,
        o.peak.unwrap_or(0),
        o.burst.unwrap_or(0),
    ];
    let want = usize::try_from(a.nparams).unwrap_or(0);
    let params: Vec<TypedParam> = BANDWIDTH_PARAMS
        .iter()
        .zip(values)
        .take(want)
        .map(|(k, v)| TypedParam {
            field: (*k).to_owned(),
            value: TypedParamValue::UInt(u32::try_from(v).unwrap_or(u32::MAX)),
        })
        .collect();
    Ok(DomainGetInterfaceParametersRet {
        nparams: i32::try_from(params.len()).unwrap_or(0),
        params,
    })
}

/// `virsh domiftune DOM DEV --inbound A,P,B --outbound A,P,B`: shapes the
/// running guest's tap at once and/or changes the definition.
pub(crate) async fn set_interface_parameters(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainSetInterfaceParametersArgs,
) -> Reply<()> {
    flags::check(
        "virDomainSetInterfaceParameters",
        a.flags,
        f::AFFECT_LIVE | f::AFFECT_CONFIG,
    )?;
    let change = bandwidth_change(&a.params)?;
    let dom = d.domain(&a.dom)?;
    let owner = format!("remote DOMAIN_SET_INTERFACE_PARAMETERS from {}", ctx.client);
    d.driver
        .set_interface_bandwidth(&dom, &a.device, change, affect(&dom, a.flags), &owner)
        .await
        .map_err(vir)
}

/// The typed parameters of `domiftune` as a change of the bandwidth.
fn bandwidth_change(params: &[TypedParam]) -> Result<qemu::BandwidthChange, VirError> {
    let mut c = qemu::BandwidthChange::default();
    for p in params {
        let TypedParamValue::UInt(v) = p.value else {
            return Err(invalid_arg(format!(
                "invalid argument: parameter '{}' must be an unsigned int",
                p.field
            )));
        };
        let v = Some(u64::from(v));
        let (dir, key) = p
            .field
            .split_once('.')
            .ok_or_else(|| unknown_param(&p.field))?;
        let r = match dir {
            "inbound" => c.inbound.get_or_insert_default(),
            "outbound" => c.outbound.get_or_insert_default(),
            _ => return Err(unknown_param(&p.field)),
        };
        match key {
            "average" => r.average = v,
            "peak" => r.peak = v,
            "burst" => r.burst = v,
            "floor" if dir == "inbound" => r.floor = v,
            _ => return Err(unknown_param(&p.field)),
        }
    }
    Ok(c)
}

fn unknown_param(field: &str) -> VirError {
    VirError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Qemu,
        format!("invalid argument: parameter '{field}' not supported"),
    )
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

    #[test]
    fn domiftune_parameters_become_a_bandwidth_change() {
        let p = |k: &str, v: u32| TypedParam {
            field: k.into(),
            value: TypedParamValue::UInt(v),
        };
        let c = bandwidth_change(&[p("inbound.average", 100), p("outbound.burst", 7)]).unwrap();
        assert_eq!(c.inbound.unwrap().average, Some(100));
        assert_eq!(c.outbound.unwrap().burst, Some(7));
        assert!(bandwidth_change(&[p("outbound.floor", 1)]).is_err());
        assert!(bandwidth_change(&[p("sideways.average", 1)]).is_err());
        let ull = TypedParam {
            field: "inbound.average".into(),
            value: TypedParamValue::ULLong(1),
        };
        assert!(bandwidth_change(&[ull]).is_err());
    }

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
