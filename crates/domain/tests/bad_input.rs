//! Invalid definitions, each with the libvirt error code a client gets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use domain::{DomainDef, DomainXmlError, XmlError};
use virterror::{ErrorCode, ErrorDomain, ToVirError};

/// A valid domain with `devices` spliced in.
fn with_devices(devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>t</name><memory unit='MiB'>256</memory>\
         <os><type>hvm</type></os><devices>{devices}</devices></domain>"
    )
}

/// A valid domain with `top` spliced in after <name>.
fn with_top(top: &str, os: &str) -> String {
    format!("<domain type='kvm'><name>t</name>{top}<os>{os}</os></domain>")
}

fn mem(m: &str) -> String {
    with_top(m, "<type>hvm</type>")
}

const DISK: &str = "<disk type='file' device='disk'><source file='/i.img'/><target dev='vda' bus='virtio'/></disk>";

fn cases() -> Vec<(&'static str, String, ErrorCode)> {
    use ErrorCode::*;
    let m256 = "<memory unit='MiB'>256</memory>";
    vec![
        ("malformed", "<domain type='kvm'><name>t</name>".into(), XmlError),
        ("not xml", "hello".into(), XmlError),
        ("empty", "".into(), XmlError),
        ("doctype", "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain/>".into(), XmlError),
        ("wrong root", "<network><name>x</name></network>".into(), XmlError),
        ("unknown top element", with_top(&format!("{m256}<numatune><memory mode='strict' nodeset='0'/></numatune>"), "<type>hvm</type>"), ConfigUnsupported),
        ("unknown device element", with_devices("<smartcard mode='host'/>"), ConfigUnsupported),
        ("unknown attribute", with_devices("<disk type='file' device='disk' snapshot='no'><source file='/i'/><target dev='vda'/></disk>"), ConfigUnsupported),
        ("bad unit", mem("<memory unit='KiBB'>1</memory>"), XmlDetail),
        ("memory overflow", mem("<memory unit='EiB'>16</memory>"), XmlDetail),
        ("memory too large", mem("<memory unit='TiB'>64</memory>"), XmlDetail),
        ("memory too small", mem("<memory unit='KiB'>1024</memory>"), XmlDetail),
        ("memory not a number", mem("<memory>lots</memory>"), XmlDetail),
        ("missing memory", with_top("", "<type>hvm</type>"), XmlError),
        ("missing name", format!("<domain type='kvm'>{m256}<os><type>hvm</type></os></domain>"), NoName),
        ("empty name", format!("<domain type='kvm'><name> </name>{m256}<os><type>hvm</type></os></domain>"), NoName),
        ("name with slash", format!("<domain type='kvm'><name>a/b</name>{m256}<os><type>hvm</type></os></domain>"), XmlError),
        ("bad uuid", mem(&format!("<uuid>not-a-uuid</uuid>{m256}")), XmlDetail),
        ("short uuid", mem(&format!("<uuid>c7a5fdbd-cdaf-9455-926a-d65c16db180</uuid>{m256}")), XmlDetail),
        ("vcpu 0", mem(&format!("{m256}<vcpu>0</vcpu>")), XmlDetail),
        ("vcpu huge", mem(&format!("{m256}<vcpu>100000</vcpu>")), XmlDetail),
        ("unknown domain type", format!("<domain type='xen'><name>t</name>{m256}<os><type>hvm</type></os></domain>"), ConfigUnsupported),
        ("missing domain type", format!("<domain><name>t</name>{m256}<os><type>hvm</type></os></domain>"), XmlError),
        ("unknown os type", with_top(m256, "<type>linux</type>"), OsType),
        ("unsupported arch", with_top(m256, "<type arch='aarch64'>hvm</type>"), ConfigUnsupported),
        ("unsupported machine", with_top(m256, "<type machine='microvm'>hvm</type>"), ConfigUnsupported),
        ("qcow2 uefi loader", with_top(m256, "<type>hvm</type><loader readonly='yes' type='pflash' format='qcow2'>/x.fd</loader>"), ConfigUnsupported),
        ("unknown disk bus", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='vda' bus='usb'/></disk>"), ConfigUnsupported),
        ("network disk", with_devices("<disk type='network' device='disk'><target dev='vda'/></disk>"), ConfigUnsupported),
        ("bad disk target", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='xvda'/></disk>"), XmlDetail),
        ("duplicate disk target", with_devices(&format!("{DISK}{DISK}")), XmlError),
        ("disk without source", with_devices("<disk type='file' device='disk'><target dev='vda'/></disk>"), NoSource),
        ("relative disk path", with_devices("<disk type='file' device='disk'><source file='i.img'/><target dev='vda'/></disk>"), XmlDetail),
        ("qed format", with_devices("<disk type='file' device='disk'><driver name='qemu' type='qed'/><source file='/i'/><target dev='vda'/></disk>"), ConfigUnsupported),
        ("ide on q35", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='hda' bus='ide'/></disk>"), ConfigUnsupported),
        ("readonly sata disk", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='sda' bus='sata'/><readonly/></disk>"), ConfigUnsupported),
        ("virtio cdrom", with_devices("<disk type='file' device='cdrom'><target dev='vdc' bus='virtio'/></disk>"), ConfigUnsupported),
        ("vnc on 0.0.0.0", with_devices("<graphics type='vnc' listen='0.0.0.0'/>"), ConfigUnsupported),
        ("vnc listen element public", with_devices("<graphics type='vnc'><listen type='address' address='192.0.2.1'/></graphics>"), ConfigUnsupported),
        ("spice over tls", with_devices("<graphics type='spice' tlsPort='5902'/>"), ConfigUnsupported),
        ("unknown interface type", with_devices("<interface type='direct'><source dev='eth0' mode='vepa'/></interface>"), ConfigUnsupported),
        ("multicast mac", with_devices("<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>"), XmlDetail),
        ("bad nic model", with_devices("<interface type='user'><model type='ne2k_pci'/></interface>"), ConfigUnsupported),
        ("unsupported watchdog model", with_devices("<watchdog model='ib700' action='reset'/>"), ConfigUnsupported),
        ("bad watchdog action", with_devices("<watchdog model='i6300esb' action='explode'/>"), ConfigUnsupported),
        ("bad video model", with_devices("<video><model type='vmvga'/></video>"), ConfigUnsupported),
        ("bad memballoon", with_devices("<memballoon model='xen'/>"), ConfigUnsupported),
        ("virtio console", with_devices("<console type='pty'><target type='virtio'/></console>"), ConfigUnsupported),
        ("serial tcp", with_devices("<serial type='tcp'><source mode='bind' host='0' service='1'/></serial>"), ConfigUnsupported),
        ("file serial without path", with_devices("<serial type='file'/>"), XmlError),
        ("rename-restart", mem(&format!("{m256}<on_poweroff>rename-restart</on_poweroff>")), ConfigUnsupported),
        ("coredump-destroy", mem(&format!("{m256}<on_crash>coredump-destroy</on_crash>")), ConfigUnsupported),
        ("on_reboot preserve", mem(&format!("{m256}<on_reboot>preserve</on_reboot>")), ConfigUnsupported),
        ("bad cpu mode", mem(&format!("{m256}<cpu mode='host-fancy'/>")), ConfigUnsupported),
        ("topology mismatch", mem(&format!("{m256}<vcpu>4</vcpu><cpu><topology sockets='1' cores='2' threads='1'/></cpu>")), XmlDetail),
        ("hyperv mode", mem(&format!("{m256}<features><hyperv mode='exotic'/></features>")), ConfigUnsupported),
        ("seclabel dynamic", mem(&format!("{m256}<seclabel type='dynamic' model='selinux'/>")), ConfigUnsupported),
        ("boot order and os boot", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='vda'/><boot order='1'/></disk>").replace("<type>hvm</type>", "<type>hvm</type><boot dev='hd'/>"), XmlError),
        ("duplicate boot order", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='vda'/><boot order='1'/></disk><disk type='file' device='disk'><source file='/j'/><target dev='vdb'/><boot order='1'/></disk>"), XmlError),
        ("pci domain address", with_devices("<disk type='file' device='disk'><source file='/i'/><target dev='vda'/><address type='pci' domain='1' bus='0' slot='1' function='0'/></disk>"), ConfigUnsupported),
        ("pcie switch port", with_devices("<controller type='pci' index='1' model='pcie-switch-upstream-port'/>"), ConfigUnsupported),
        ("unknown namespace element", mem(&format!("{m256}<foo:bar xmlns:foo='urn:x'/>")), ConfigUnsupported),
        ("title with newline", mem(&format!("<title>a\nb</title>{m256}")), XmlError),
        ("duplicate element", mem(&format!("{m256}{m256}")), XmlError),
        ("initrd without kernel", with_top(m256, "<type>hvm</type><initrd>/i</initrd>"), XmlError),
    ]
}

#[test]
fn bad_inputs_have_libvirt_codes() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (what, xml, code) in cases {
        match DomainDef::parse(&xml) {
            Ok(_) => failures.push(format!("{what}: accepted\n{xml}")),
            Err(e) => {
                let v = e.to_vir_error();
                assert_eq!(v.domain, ErrorDomain::Domain);
                if v.code != code {
                    failures.push(format!("{what}: got {:?} ({e}), expected {code:?}", v.code));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_offender() {
    let e = DomainDef::parse(&with_devices("<hostdev mode='subsystem' type='pci'/>")).unwrap_err();
    assert_eq!(
        e,
        DomainXmlError::Xml(XmlError::UnknownElement("devices/hostdev".into()))
    );
    assert!(e.to_string().contains("devices/hostdev"), "{e}");
    let e = DomainDef::parse(&with_devices("<graphics type='vnc' listen='0.0.0.0'/>")).unwrap_err();
    assert!(e.to_string().contains("0.0.0.0"), "{e}");
    let e = DomainDef::parse(&with_devices("<interface type='direct'/>")).unwrap_err();
    assert!(e.to_string().contains("interface type 'direct'"), "{e}");
}

#[test]
fn defaults_and_generation() {
    let d = DomainDef::parse(&with_devices(
        "<interface type='user'/><console type='pty'/>",
    ))
    .unwrap();
    assert_eq!(d.memory_kib, 256 * 1024);
    assert_eq!(d.current_memory_kib, d.memory_kib);
    assert_eq!(d.vcpus, 1);
    assert_eq!(
        d.emulator(),
        std::path::Path::new("/usr/bin/qemu-system-x86_64")
    );
    assert_eq!(&d.devices.interfaces[0].mac.0[..3], &[0x52, 0x54, 0x00]);
    assert_eq!(d.devices.serials.len(), 1, "console creates its serial");
    assert!(d.devices.memballoon.is_some(), "virtio balloon by default");
    // Generated UUID and MAC survive a round trip.
    let again = DomainDef::parse(&d.to_xml(None)).unwrap();
    assert_eq!(again, d);
    let other = DomainDef::parse(&with_devices("")).unwrap();
    assert_ne!(other.uuid, d.uuid);
}

#[test]
fn driver_helpers() {
    let xml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/pc-sata-cdrom.xml"
    ))
    .unwrap();
    let d = DomainDef::parse(&xml).unwrap();
    let paths: Vec<String> = d
        .disk_paths()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/var/lib/ferrovirt/images/installer.qcow2",
            "/var/lib/ferrovirt/iso/debian-12.iso"
        ]
    );
    assert_eq!(d.disk_alias(1).as_deref(), Some("sata0-0-0"));
    assert_eq!(d.disk_node_names(2), None, "empty cdrom has no nodes");
    assert_eq!(
        d.disk_node_names(0),
        Some(("libvirt-1-storage".into(), "libvirt-1-format".into()))
    );
}

#[test]
fn argv_errors() {
    use domain::{Accel, EmulatorCaps, LaunchParams, build_argv};
    let launch = |accel| LaunchParams {
        qmp_socket: "/q".into(),
        pidfile: "/p".into(),
        domain_run_dir: "/r".into(),
        accel,
        daemonize: false,
        ..LaunchParams::default()
    };
    let d = DomainDef::parse(&mem(
        "<memory unit='MiB'>256</memory><cpu mode='host-passthrough'/>",
    ))
    .unwrap();
    let caps = EmulatorCaps {
        version: (7, 2, 0),
        machines: vec![],
        kvm: false,
        ..EmulatorCaps::default()
    };
    let e = build_argv(&d, &caps, &launch(Accel::Kvm)).unwrap_err();
    assert_eq!(e.to_vir_error().code, ErrorCode::InvalidArg);
    let e = build_argv(&d, &caps, &launch(Accel::Tcg)).unwrap_err();
    assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
    let d = DomainDef::parse(
        &mem("<memory unit='MiB'>256</memory><vcpu>260</vcpu>")
            .replace("<type>hvm", "<type machine='pc'>hvm"),
    )
    .unwrap();
    let e = build_argv(&d, &caps, &launch(Accel::Tcg)).unwrap_err();
    assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
}
