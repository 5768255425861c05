//! Connection-level procedures: opening, feature negotiation, and what the
//! daemon says about itself and the host.

use bytes::Bytes;
use rpc::CallContext;
use rpc::protocol::remote::{
    AuthListRet, AuthType, ConnectGetCapabilitiesRet, ConnectGetHostnameRet,
    ConnectGetLibVersionRet, ConnectGetMaxVcpusRet, ConnectGetSysinfoRet, ConnectGetTypeRet,
    ConnectGetUriRet, ConnectGetVersionRet, ConnectIsSecureRet, ConnectOpenArgs,
    ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet, NodeGetInfoRet, NodeGetSecurityModelRet,
    feature, model_chars, procedure as p, string_to_chars,
};
use rpc::server::{decode_args, encode_ret, unsupported_procedure};
use virterror::VirError;

use crate::dispatch::Daemon;
use crate::host;

/// The libvirt version whose protocol and behaviour we implement (9.0.0),
/// in libvirt's major * 1,000,000 + minor * 1,000 + micro form.
pub(crate) const LIB_VERSION: u64 = 9_000_000;
/// The emulator reported by GET_CAPABILITIES and used when a definition
/// names none.
pub(crate) const DEFAULT_EMULATOR: &str = "/usr/bin/qemu-system-x86_64";
/// Most vCPUs we let a domain ask for (QEMU's q35 limit).
const MAX_VCPUS: i32 = 288;

pub(crate) fn call(
    d: &Daemon,
    ctx: &CallContext,
    proc_: i32,
    args: &[u8],
) -> Result<Bytes, VirError> {
    match proc_ {
        p::AUTH_LIST => encode_ret(&AuthListRet {
            types: vec![AuthType::None],
        }),
        p::CONNECT_OPEN => {
            let _: ConnectOpenArgs = decode_args(proc_, args)?;
            Ok(Bytes::new())
        }
        p::CONNECT_CLOSE
        | p::CONNECT_REGISTER_CLOSE_CALLBACK
        | p::CONNECT_UNREGISTER_CLOSE_CALLBACK => Ok(Bytes::new()),
        p::CONNECT_SUPPORTS_FEATURE => {
            let a: ConnectSupportsFeatureArgs = decode_args(proc_, args)?;
            let supported = supports(a.feature);
            if a.feature == feature::PROGRAM_KEEPALIVE {
                ctx.events.enable_keepalive();
            }
            encode_ret(&ConnectSupportsFeatureRet {
                supported: i32::from(supported),
            })
        }
        p::CONNECT_GET_TYPE => encode_ret(&ConnectGetTypeRet {
            type_: "QEMU".into(),
        }),
        p::CONNECT_GET_LIB_VERSION => encode_ret(&ConnectGetLibVersionRet {
            lib_ver: LIB_VERSION,
        }),
        p::CONNECT_GET_HOSTNAME => encode_ret(&ConnectGetHostnameRet {
            hostname: host::hostname(),
        }),
        p::CONNECT_GET_URI => encode_ret(&ConnectGetUriRet { uri: d.uri.clone() }),
        p::CONNECT_GET_SYSINFO => encode_ret(&ConnectGetSysinfoRet {
            sysinfo: "<sysinfo type='smbios'/>\n".into(),
        }),
        p::CONNECT_GET_MAX_VCPUS => encode_ret(&ConnectGetMaxVcpusRet {
            max_vcpus: MAX_VCPUS,
        }),
        p::CONNECT_IS_SECURE => encode_ret(&ConnectIsSecureRet { secure: 1 }),
        p::NODE_GET_INFO => {
            let n = host::node_info();
            encode_ret(&NodeGetInfoRet {
                model: model_chars(&n.model),
                memory: n.memory_kib,
                cpus: n.cpus,
                mhz: n.mhz,
                nodes: n.nodes,
                sockets: n.sockets,
                cores: n.cores,
                threads: n.threads,
            })
        }
        // No security driver: an empty model, as libvirtd reports with
        // security_driver = "none"; virsh then shows no security labels.
        p::NODE_GET_SECURITY_MODEL => encode_ret(&NodeGetSecurityModelRet {
            model: string_to_chars(""),
            doi: string_to_chars(""),
        }),
        _ => Err(unsupported_procedure(proc_)),
    }
}

/// `CONNECT_GET_CAPABILITIES`: async, because the first call waits for the
/// driver's KVM probe (a few seconds at most, once per daemon).
pub(crate) async fn capabilities(d: &Daemon) -> Result<Bytes, VirError> {
    encode_ret(&ConnectGetCapabilitiesRet {
        capabilities: host::capabilities_xml(DEFAULT_EMULATOR, d.driver.kvm_available().await),
    })
}

/// `CONNECT_GET_VERSION`: QEMU's version in libvirt's numeric form, from
/// the driver's probe of the default emulator (once per binary; the first
/// call may wait for it); 0 when it cannot be probed.
pub(crate) async fn version(d: &Daemon) -> Result<Bytes, VirError> {
    let caps = d.driver.emulator_caps(None).await;
    let hv_ver = caps.map_or(0, |c| version_number(c.version));
    encode_ret(&ConnectGetVersionRet { hv_ver })
}

/// A version in libvirt's numeric form: major * 1,000,000 + minor * 1,000
/// + micro.
fn version_number((major, minor, micro): (u32, u32, u32)) -> u64 {
    u64::from(major) * 1_000_000 + u64::from(minor) * 1_000 + u64::from(micro)
}

fn supports(f: i32) -> bool {
    matches!(
        f,
        feature::PROGRAM_KEEPALIVE
            | feature::REMOTE_EVENT_CALLBACK
            | feature::REMOTE_CLOSE_CALLBACK
            | feature::TYPED_PARAM_STRING
    )
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
