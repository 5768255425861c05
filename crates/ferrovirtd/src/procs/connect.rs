//! Connection-level procedures: opening, feature negotiation, and what the
//! daemon says about itself and the host. All answer from memory (or
//! /proc), so they never queue behind other work; only the capabilities
//! document may wait once for the driver's KVM probe.

use rpc::CallContext;

use rpc::protocol::remote::{
    AuthListRet, AuthType, ConnectGetCapabilitiesRet, ConnectGetDomainCapabilitiesArgs,
    ConnectGetDomainCapabilitiesRet, ConnectGetHostnameRet, ConnectGetLibVersionRet,
    ConnectGetMaxVcpusArgs, ConnectGetMaxVcpusRet, ConnectGetSysinfoArgs, ConnectGetSysinfoRet,
    ConnectGetTypeRet, ConnectGetUriRet, ConnectGetVersionRet, ConnectIsSecureRet, ConnectOpenArgs,
    ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet, NodeGetInfoRet, NodeGetSecurityModelRet,
    feature, string_to_chars,
};

use super::Reply;
use crate::dispatch::Daemon;
use crate::wire::vir;
use crate::{flags, host};

/// The libvirt version whose protocol and behaviour we implement (9.0.0),
/// in libvirt's major * 1,000,000 + minor * 1,000 + micro form.
pub(crate) const LIB_VERSION: u64 = 9_000_000;
/// Most vCPUs we let a domain ask for (QEMU's q35 limit).
const MAX_VCPUS: i32 = 288;

pub(crate) async fn auth_list(_: &Daemon, _: &CallContext, _: ()) -> Reply<AuthListRet> {
    Ok(AuthListRet {
        types: vec![AuthType::None],
    })
}

/// `CONNECT_OPEN`: the socket decides read-only access; libvirt's open
/// flags (`VIR_CONNECT_RO`, ...) only matter to the client library.
pub(crate) async fn open(_: &Daemon, _: &CallContext, _: ConnectOpenArgs) -> Reply<()> {
    Ok(())
}

/// `CONNECT_CLOSE` and the close-callback (un)registration: nothing to
/// keep (the connection-closed event is never raised).
pub(crate) async fn accept(_: &Daemon, _: &CallContext, _: ()) -> Reply<()> {
    Ok(())
}

pub(crate) async fn supports_feature(
    _: &Daemon,
    ctx: &CallContext,
    a: ConnectSupportsFeatureArgs,
) -> Reply<ConnectSupportsFeatureRet> {
    if a.feature == feature::PROGRAM_KEEPALIVE {
        ctx.events.enable_keepalive();
    }
    // Descriptors pass on UNIX sockets only (`virDomainOpenGraphicsFD`
    // asks this first). Migration is protocol v3 with parameters, driven
    // by the client or, peer to peer, by the source daemon.
    let supported = match a.feature {
        feature::PROGRAM_KEEPALIVE
        | feature::REMOTE_EVENT_CALLBACK
        | feature::REMOTE_CLOSE_CALLBACK
        | feature::TYPED_PARAM_STRING
        | feature::MIGRATION_V3
        | feature::MIGRATION_P2P
        | feature::MIGRATION_PARAMS
        | feature::MIGRATION_OFFLINE
        | feature::MIGRATE_CHANGE_PROTECTION => true,
        feature::FD_PASSING => ctx.transport.passes_fds(),
        _ => false,
    };
    Ok(ConnectSupportsFeatureRet {
        supported: i32::from(supported),
    })
}

pub(crate) async fn get_type(_: &Daemon, _: &CallContext, _: ()) -> Reply<ConnectGetTypeRet> {
    Ok(ConnectGetTypeRet {
        type_: "QEMU".into(),
    })
}

/// `CONNECT_GET_VERSION`: QEMU's version in libvirt's numeric form, from
/// the driver's probe of the default emulator (made once per binary, and
/// started when the daemon starts); 0 when it cannot be probed.
pub(crate) async fn get_version(d: &Daemon, _: &CallContext, _: ()) -> Reply<ConnectGetVersionRet> {
    let caps = d.driver.emulator_caps(None).await;
    Ok(ConnectGetVersionRet {
        hv_ver: caps.map_or(0, |c| version_number(c.version)),
    })
}

pub(crate) async fn get_lib_version(
    _: &Daemon,
    _: &CallContext,
    _: (),
) -> Reply<ConnectGetLibVersionRet> {
    Ok(ConnectGetLibVersionRet {
        lib_ver: LIB_VERSION,
    })
}

pub(crate) async fn get_hostname(
    _: &Daemon,
    _: &CallContext,
    _: (),
) -> Reply<ConnectGetHostnameRet> {
    Ok(ConnectGetHostnameRet {
        hostname: host::hostname(),
    })
}

pub(crate) async fn get_uri(d: &Daemon, _: &CallContext, _: ()) -> Reply<ConnectGetUriRet> {
    Ok(ConnectGetUriRet { uri: d.uri.clone() })
}

pub(crate) async fn get_sysinfo(
    _: &Daemon,
    _: &CallContext,
    a: ConnectGetSysinfoArgs,
) -> Reply<ConnectGetSysinfoRet> {
    flags::check("virConnectGetSysinfo", a.flags, 0)?;
    Ok(ConnectGetSysinfoRet {
        sysinfo: "<sysinfo type='smbios'/>\n".into(),
    })
}

/// `CONNECT_GET_MAX_VCPUS`: the one guest type we run, whatever `type`
/// names.
pub(crate) async fn get_max_vcpus(
    _: &Daemon,
    _: &CallContext,
    _: ConnectGetMaxVcpusArgs,
) -> Reply<ConnectGetMaxVcpusRet> {
    Ok(ConnectGetMaxVcpusRet {
        max_vcpus: MAX_VCPUS,
    })
}

/// Only UNIX sockets are served.
pub(crate) async fn is_secure(_: &Daemon, _: &CallContext, _: ()) -> Reply<ConnectIsSecureRet> {
    Ok(ConnectIsSecureRet { secure: 1 })
}

pub(crate) async fn node_get_info(_: &Daemon, _: &CallContext, _: ()) -> Reply<NodeGetInfoRet> {
    Ok(host::node_info())
}

/// No security driver: an empty model, as libvirtd reports with
/// `security_driver = "none"`; virsh then shows no security labels.
pub(crate) async fn node_get_security_model(
    _: &Daemon,
    _: &CallContext,
    _: (),
) -> Reply<NodeGetSecurityModelRet> {
    Ok(NodeGetSecurityModelRet {
        model: string_to_chars(""),
        doi: string_to_chars(""),
    })
}

/// `CONNECT_GET_CAPABILITIES`: the first call waits for the driver's KVM
/// probe and the default emulator's (a few seconds at most, once per
/// daemon). The machine list is the emulator's own; without a probe the
/// document still names the two machine aliases.
pub(crate) async fn get_capabilities(
    d: &Daemon,
    _: &CallContext,
    _: (),
) -> Reply<ConnectGetCapabilitiesRet> {
    let caps = d.driver.emulator_caps(None).await.ok();
    Ok(ConnectGetCapabilitiesRet {
        capabilities: host::capabilities_xml(
            ::domain::DEFAULT_EMULATOR,
            d.driver.kvm_available().await,
            caps.as_deref(),
        ),
    })
}

/// `CONNECT_GET_DOMAIN_CAPABILITIES` (`virsh domcapabilities`): what a
/// domain of the emulator, machine and virtualization type asked for can
/// be given, from the driver's probe of that emulator. As in libvirt, the
/// virtualization type defaults to kvm where KVM runs guests, the arch
/// must be one the emulator serves, and kvm without KVM is an error.
pub(crate) async fn get_domain_capabilities(
    d: &Daemon,
    _: &CallContext,
    a: ConnectGetDomainCapabilitiesArgs,
) -> Reply<ConnectGetDomainCapabilitiesRet> {
    flags::check("virConnectGetDomainCapabilities", a.flags, 0)?;
    let (emulator, virttype) = super::cpu::hypervisor(
        d,
        a.emulatorbin.as_deref(),
        a.arch.as_deref(),
        a.virttype.as_deref(),
    )
    .await?;
    let capabilities = d
        .driver
        .domain_capabilities(emulator, a.machine.as_deref(), virttype)
        .await
        .map_err(vir)?;
    Ok(ConnectGetDomainCapabilitiesRet { capabilities })
}

/// A version in libvirt's numeric form: major * 1,000,000 + minor * 1,000
/// + micro.
fn version_number((major, minor, micro): (u32, u32, u32)) -> u64 {
    u64::from(major) * 1_000_000 + u64::from(minor) * 1_000 + u64::from(micro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_version_in_libvirt_form() {
        assert_eq!(version_number((7, 2, 22)), 7_002_022);
        assert_eq!(version_number((10, 0, 0)), 10_000_000);
    }
}
