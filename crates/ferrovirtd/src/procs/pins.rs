//! vCPU and emulator pinning (`virsh vcpupin`, `virsh emulatorpin`): a
//! pin is a CPU map, a bit per host CPU, lowest CPU in the lowest bit of
//! the first byte.

use domain::CpuSet;
use qemu::{Impact, PinTarget};
use rpc::CallContext;
use rpc::protocol::remote::{
    CPUMAPS_MAX, DomainGetEmulatorPinInfoArgs, DomainGetEmulatorPinInfoRet,
    DomainGetVcpuPinInfoArgs, DomainGetVcpuPinInfoRet, DomainPinEmulatorArgs,
    DomainPinVcpuFlagsArgs,
};
use rpc::xdr::Opaque;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{invalid_arg, vir};

fn impact(api: &str, flags: u32) -> Reply<Impact> {
    flags::check(api, flags, f::AFFECT_LIVE | f::AFFECT_CONFIG)?;
    Ok(Impact {
        live: flags & f::AFFECT_LIVE != 0,
        config: flags & f::AFFECT_CONFIG != 0,
    })
}

/// The CPUs of a map.
fn cpus_of(map: &[u8]) -> CpuSet {
    let bits = (0u32..).zip(map).flat_map(|(i, b)| {
        (0..8u32)
            .filter(move |k| b & (1 << k) != 0)
            .map(move |k| i.saturating_mul(8).saturating_add(k))
    });
    CpuSet::from_cpus(bits)
}

/// `set` as a map of `maplen` bytes (CPUs past it left out).
fn map_of(set: &CpuSet, maplen: usize) -> Vec<u8> {
    let mut map = vec![0u8; maplen];
    for cpu in set.iter() {
        if let Some(b) = usize::try_from(cpu / 8).ok().and_then(|i| map.get_mut(i)) {
            *b |= 1 << (cpu % 8);
        }
    }
    map
}

/// Whether a query asks for the persistent definition: `CONFIG`, or
/// neither flag on a domain that is not running.
fn wants_config(dom: &qemu::Domain, api: &str, flags: u32) -> Reply<bool> {
    let i = impact(api, flags)?;
    if i.live && i.config {
        return Err(invalid_arg(
            "invalid argument: Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
        ));
    }
    Ok(i.config || (!i.live && !dom.is_active()))
}

pub(crate) async fn pin_vcpu_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainPinVcpuFlagsArgs,
) -> Reply<()> {
    let impact = impact("virDomainPinVcpuFlags", a.flags)?;
    let dom = d.domain(&a.dom)?;
    let set = cpus_of(&a.cpumap.0);
    d.driver
        .pin(&dom, PinTarget::Vcpu(a.vcpu), set, impact)
        .await
        .map_err(vir)
}

pub(crate) async fn pin_emulator(
    d: &Daemon,
    _: &CallContext,
    a: DomainPinEmulatorArgs,
) -> Reply<()> {
    let impact = impact("virDomainPinEmulator", a.flags)?;
    let dom = d.domain(&a.dom)?;
    let set = cpus_of(&a.cpumap.0);
    d.driver
        .pin(&dom, PinTarget::Emulator, set, impact)
        .await
        .map_err(vir)
}

pub(crate) async fn get_vcpu_pin_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainGetVcpuPinInfoArgs,
) -> Reply<DomainGetVcpuPinInfoRet> {
    let (n, maplen) = match (usize::try_from(a.ncpumaps), usize::try_from(a.maplen)) {
        (Ok(n), Ok(m)) if n > 0 && m > 0 && n.saturating_mul(m) <= CPUMAPS_MAX => (n, m),
        _ => {
            return Err(invalid_arg(
                "invalid argument: ncpumaps or maplen out of range",
            ));
        }
    };
    let dom = d.domain(&a.dom)?;
    let config = wants_config(&dom, "virDomainGetVcpuPinInfo", a.flags)?;
    let info = d.driver.pin_info(&dom, config).map_err(vir)?;
    let vcpus = &info.vcpus[..info.vcpus.len().min(n)];
    let mut maps = Vec::with_capacity(n * maplen);
    for set in vcpus {
        maps.extend(map_of(set, maplen));
    }
    maps.resize(n * maplen, 0);
    Ok(DomainGetVcpuPinInfoRet {
        cpumaps: Opaque(maps),
        num: i32::try_from(vcpus.len()).unwrap_or(i32::MAX),
    })
}

pub(crate) async fn get_emulator_pin_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainGetEmulatorPinInfoArgs,
) -> Reply<DomainGetEmulatorPinInfoRet> {
    let maplen = match usize::try_from(a.maplen) {
        Ok(m) if m > 0 && m <= CPUMAPS_MAX => m,
        _ => return Err(invalid_arg("invalid argument: maplen out of range")),
    };
    let dom = d.domain(&a.dom)?;
    let config = wants_config(&dom, "virDomainGetEmulatorPinInfo", a.flags)?;
    let info = d.driver.pin_info(&dom, config).map_err(vir)?;
    Ok(DomainGetEmulatorPinInfoRet {
        cpumaps: Opaque(map_of(&info.emulator, maplen)),
        ret: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_sets_convert_both_ways() {
        let set = cpus_of(&[0b0000_0101, 0b1000_0000]);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 2, 15]);
        assert_eq!(map_of(&set, 2), [0b0000_0101, 0b1000_0000]);
        assert_eq!(map_of(&set, 1), [0b0000_0101], "CPUs past the map left out");
        assert!(cpus_of(&[0, 0]).is_empty());
    }
}
