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
    .into_iter()
    .chain(refused_devices())
    .chain(refused_domain_elements())
    .chain(conflicts())
    .collect()
}

fn disk(attrs: &str, inner: &str) -> String {
    with_devices(&format!("<disk {attrs}>{inner}</disk>"))
}

/// Device elements and values that stay refused, by name.
fn refused_devices() -> Vec<(&'static str, String, ErrorCode)> {
    use ErrorCode::*;
    let src = "<source file='/i'/>";
    let mut v: Vec<(&'static str, String, ErrorCode)> = [
        "hostdev",
        "filesystem",
        "smartcard",
        "hub",
        "panic",
        "shmem",
        "memory",
        "iommu",
        "vsock",
        "lease",
        "parallel",
        "redirfilter",
        "nvram",
        "crypto",
    ]
    .into_iter()
    .map(|e| {
        (
            "refused device element",
            with_devices(&format!("<{e}/>")),
            ConfigUnsupported,
        )
    })
    .collect();
    v.extend([
        ("tpm passthrough", with_devices("<tpm><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>"), ConfigUnsupported),
        ("direct interface", with_devices("<interface type='direct'/>"), ConfigUnsupported),
        ("vhostuser interface", with_devices("<interface type='vhostuser'/>"), ConfigUnsupported),
        ("sdl graphics", with_devices("<graphics type='sdl'/>"), ConfigUnsupported),
        ("egl-headless graphics", with_devices("<graphics type='egl-headless'/>"), ConfigUnsupported),
        ("gl display", with_devices("<graphics type='spice'><gl enable='yes'/></graphics>"), ConfigUnsupported),
        ("3d video", with_devices("<video><model type='virtio'><acceleration accel3d='yes'/></model></video>"), ConfigUnsupported),
        ("sb16 sound", with_devices("<sound model='sb16'/>"), ConfigUnsupported),
        ("usb sound", with_devices("<sound model='usb'/>"), ConfigUnsupported),
        ("evdev input", with_devices("<input type='evdev'/>"), ConfigUnsupported),
        ("ps2 tablet", with_devices("<input type='tablet' bus='ps2'/>"), ConfigUnsupported),
        ("builtin rng", with_devices("<rng model='virtio'><backend model='builtin'/></rng>"), ConfigUnsupported),
        ("rng from a file", with_devices("<rng model='virtio'><backend model='random'>/tmp/x</backend></rng>"), ConfigUnsupported),
        ("guestfwd channel", with_devices("<channel type='pty'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>"), ConfigUnsupported),
        ("fdc controller", with_devices("<controller type='fdc'/>"), ConfigUnsupported),
        ("lsilogic scsi", with_devices("<controller type='scsi' model='lsilogic'/>"), ConfigUnsupported),
        ("pcie expander", with_devices("<controller type='pci' index='1' model='pcie-expander-bus'/>"), ConfigUnsupported),
        ("pci-bridge as root", with_devices("<controller type='pci' index='0' model='pci-bridge'/>"), ConfigUnsupported),
        ("pci root on q35", with_devices("<controller type='pci' index='0' model='pci-root'/>"), ConfigUnsupported),
        ("qusb controller", with_devices("<controller type='usb' model='qusb1'/>"), ConfigUnsupported),
        ("ports on uhci", with_devices("<controller type='usb' model='piix3-uhci' ports='4'/>"), ConfigUnsupported),
        ("network disk type", disk("type='network' device='disk'", "<target dev='vda'/>"), ConfigUnsupported),
        ("volume disk type", disk("type='volume' device='disk'", "<target dev='vda'/>"), ConfigUnsupported),
        ("floppy", disk("type='file' device='floppy'", &format!("{src}<target dev='fda'/>")), ConfigUnsupported),
        ("lun", disk("type='block' device='lun'", "<target dev='sda'/>"), ConfigUnsupported),
        ("usb disk bus", disk("type='file' device='disk'", &format!("{src}<target dev='sda' bus='usb'/>")), ConfigUnsupported),
        ("ccw address", disk("type='file' device='disk'", &format!("{src}<target dev='vda'/><address type='ccw'/>")), ConfigUnsupported),
        ("drive address on virtio", disk("type='file' device='disk'", &format!("{src}<target dev='vda'/><address type='drive'/>")), ConfigUnsupported),
        ("usb hub port", with_devices("<input type='tablet' bus='usb'><address type='usb' bus='0' port='1.2'/></input>"), ConfigUnsupported),
        ("usb device without usb", with_devices("<controller type='usb' model='none'/><input type='tablet' bus='usb'/>"), ConfigUnsupported),
        ("spicevmc not spice agent", with_devices("<channel type='spicevmc'><target type='virtio' name='x.y'/></channel>"), ConfigUnsupported),
        ("tpm 1.2 on crb", with_devices("<tpm model='tpm-crb'><backend type='emulator' version='1.2'/></tpm>"), ConfigUnsupported),
        ("two tpms", with_devices("<tpm><backend type='emulator'/></tpm><tpm><backend type='emulator'/></tpm>"), ConfigUnsupported),
        ("secondary vga", with_devices("<video><model type='virtio'/></video><video><model type='vga'/></video>"), ConfigUnsupported),
        ("bad channel name", with_devices("<channel type='unix'><target type='virtio' name='../x'/></channel>"), XmlDetail),
        ("bad mtu", with_devices("<interface type='user'><mtu size='10'/></interface>"), XmlDetail),
        ("bad ring size", with_devices("<interface type='user'><model type='virtio'/><driver rx_queue_size='300'/></interface>"), XmlDetail),
        ("network without source", with_devices("<interface type='network'/>"), XmlError),
        ("bad passwdValidTo", with_devices("<graphics type='vnc' passwd='x' passwdValidTo='soon'/>"), XmlDetail),
        ("bad sound codec", with_devices("<sound model='ac97'><codec type='duplex'/></sound>"), ConfigUnsupported),
        ("unknown audio", with_devices("<sound model='ich9'><audio id='3'/></sound>"), XmlError),
    ]);
    v
}

/// Domain-level elements and values that stay refused.
fn refused_domain_elements() -> Vec<(&'static str, String, ErrorCode)> {
    use ErrorCode::*;
    let m256 = "<memory unit='MiB'>256</memory>";
    let top = |x: &str| mem(&format!("{m256}{x}"));
    let os = |x: &str| with_top(m256, &format!("<type machine='q35'>hvm</type>{x}"));
    vec![
        (
            "numatune",
            top("<numatune><memory mode='strict' nodeset='0'/></numatune>"),
            ConfigUnsupported,
        ),
        (
            "maxMemory",
            top("<maxMemory slots='4' unit='GiB'>8</maxMemory>"),
            ConfigUnsupported,
        ),
        (
            "vcpus list",
            top("<vcpus><vcpu id='0' enabled='yes'/></vcpus>"),
            ConfigUnsupported,
        ),
        (
            "launchSecurity",
            top("<launchSecurity type='sev'/>"),
            ConfigUnsupported,
        ),
        ("genid", top("<genid/>"), ConfigUnsupported),
        (
            "cpu cache",
            top("<cpu mode='host-passthrough'><cache mode='passthrough'/></cpu>"),
            ConfigUnsupported,
        ),
        (
            "hugepages per node",
            top(
                "<memoryBacking><hugepages><page size='2048' unit='KiB' nodeset='0'/></hugepages></memoryBacking>",
            ),
            ConfigUnsupported,
        ),
        (
            "odd huge page size",
            top(
                "<memoryBacking><hugepages><page size='4' unit='KiB'/></hugepages></memoryBacking>",
            ),
            ConfigUnsupported,
        ),
        (
            "discard without file",
            top("<memoryBacking><discard/></memoryBacking>"),
            ConfigUnsupported,
        ),
        (
            "min_guarantee",
            top("<memtune><min_guarantee unit='MiB'>64</min_guarantee></memtune>"),
            ConfigUnsupported,
        ),
        (
            "vcpusched",
            top("<cputune><vcpusched vcpus='0' scheduler='fifo' priority='1'/></cputune>"),
            ConfigUnsupported,
        ),
        (
            "bad quota",
            top("<cputune><quota>10</quota></cputune>"),
            XmlDetail,
        ),
        (
            "bad blkio weight",
            top("<blkiotune><weight>5</weight></blkiotune>"),
            XmlDetail,
        ),
        (
            "bad partition",
            top("<resource><partition>machine</partition></resource>"),
            XmlDetail,
        ),
        (
            "pin beyond vcpus",
            top("<vcpu>2</vcpu><cputune><vcpupin vcpu='2' cpuset='0'/></cputune>"),
            XmlDetail,
        ),
        (
            "undefined iothread",
            with_devices(
                "<disk type='file' device='disk'><driver name='qemu' iothread='3'/><source file='/i'/><target dev='vda'/></disk>",
            ),
            XmlError,
        ),
        (
            "fwcfg sysinfo",
            top("<sysinfo type='fwcfg'/>"),
            ConfigUnsupported,
        ),
        (
            "unknown sysinfo entry",
            top("<sysinfo type='smbios'><bios><entry name='colour'>red</entry></bios></sysinfo>"),
            ConfigUnsupported,
        ),
        (
            "smbios host",
            os("<smbios mode='host'/>"),
            ConfigUnsupported,
        ),
        (
            "timezone clock",
            top("<clock offset='timezone' timezone='Europe/Paris'/>"),
            ConfigUnsupported,
        ),
        (
            "localtime basis",
            top("<clock offset='variable' basis='localtime' adjustment='10'/>"),
            ConfigUnsupported,
        ),
        (
            "no pit",
            top("<clock><timer name='pit' present='no'/></clock>"),
            ConfigUnsupported,
        ),
        (
            "tsc timer",
            top("<clock><timer name='tsc' frequency='1000'/></clock>"),
            ConfigUnsupported,
        ),
        (
            "smm tseg",
            top("<features><smm state='on'><tseg unit='MiB'>48</tseg></smm></features>"),
            ConfigUnsupported,
        ),
        (
            "unknown hyperv feature",
            top("<features><hyperv><xmm_input state='on'/></hyperv></features>"),
            ConfigUnsupported,
        ),
        (
            "short spinlocks",
            top("<features><hyperv><spinlocks state='on' retries='10'/></hyperv></features>"),
            XmlDetail,
        ),
        (
            "gic",
            top("<features><gic version='3'/></features>"),
            ConfigUnsupported,
        ),
        (
            "secure boot on pc",
            with_top(
                m256,
                "<type machine='pc'>hvm</type><loader readonly='yes' secure='yes' type='pflash'>/c.fd</loader>",
            ),
            ConfigUnsupported,
        ),
        (
            "secure boot without smm",
            os("<loader readonly='yes' secure='yes' type='pflash'>/c.fd</loader>"),
            ConfigUnsupported,
        ),
        ("nvram without uefi", os("<nvram>/n.fd</nvram>"), XmlError),
        (
            "firmware features without efi",
            os("<firmware><feature enabled='yes' name='secure-boot'/></firmware>"),
            XmlError,
        ),
        (
            "unknown firmware feature",
            with_top(
                m256,
                "<type>hvm</type><firmware><feature enabled='yes' name='amd-sev'/></firmware>",
            )
            .replace("<os>", "<os firmware='efi'>"),
            ConfigUnsupported,
        ),
        (
            "apparmor label",
            top("<seclabel type='dynamic' model='apparmor'/>"),
            ConfigUnsupported,
        ),
        (
            "numa cpus beyond vcpus",
            top(
                "<vcpu>2</vcpu><cpu><numa><cell id='0' cpus='0-2' memory='256' unit='MiB'/></numa></cpu>",
            ),
            XmlDetail,
        ),
        (
            "numa overlap",
            top(
                "<vcpu>2</vcpu><cpu><numa><cell id='0' cpus='0-1' memory='128' unit='MiB'/><cell id='1' cpus='1' memory='128' unit='MiB'/></numa></cpu>",
            ),
            XmlError,
        ),
        (
            "vcpu current above max",
            top("<vcpu current='3'>2</vcpu>"),
            XmlDetail,
        ),
    ]
}

/// Two devices at one address: an error naming both.
fn conflicts() -> Vec<(&'static str, String, ErrorCode)> {
    use ErrorCode::*;
    let pci = "<address type='pci' domain='0' bus='0' slot='5' function='0'/>";
    vec![
        ("pci conflict", with_devices(&format!(
            "<disk type='file' device='disk'><source file='/i'/><target dev='vda'/>{pci}</disk>             <interface type='user'><mac address='52:54:00:00:00:01'/>{pci}</interface>"
        )).replace("<type>hvm</type>", "<type machine='pc'>hvm</type>"), XmlError),
        ("chipset conflict", with_devices(
            "<disk type='file' device='disk'><source file='/i'/><target dev='vda'/>             <address type='pci' domain='0' bus='0' slot='0x1f' function='0'/></disk>"
        ), XmlError),
        ("usb port conflict", with_devices(
            "<input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>             <input type='mouse' bus='usb'><address type='usb' bus='0' port='1'/></input>"
        ), XmlError),
        ("missing usb port", with_devices(
            "<input type='tablet' bus='usb'><address type='usb' bus='0' port='9'/></input>"
        ), XmlError),
        ("virtio-serial conflict", with_devices(
            "<channel type='pty'><target type='virtio' name='a'/><address type='virtio-serial' controller='0' bus='0' port='1'/></channel>             <channel type='pty'><target type='virtio' name='b'/><address type='virtio-serial' controller='0' bus='0' port='1'/></channel>"
        ), XmlError),
        ("bridge below its bus", with_devices(
            "<controller type='pci' index='1' model='pcie-root-port'/>             <controller type='pci' index='2' model='pcie-to-pci-bridge'><address type='pci' bus='3' slot='0'/></controller>             <controller type='pci' index='3' model='pcie-root-port'/>"
        ), ConfigUnsupported),
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
fn address_conflicts_name_both_devices() {
    let pci = "<address type='pci' domain='0' bus='0' slot='5' function='0'/>";
    let xml = with_devices(&format!(
        "<disk type='file' device='disk'><source file='/i'/><target dev='vda'/>{pci}</disk>\
         <interface type='user'><mac address='52:54:00:00:00:01'/>{pci}</interface>"
    ))
    .replace("<type>hvm</type>", "<type machine='pc'>hvm</type>");
    let e = DomainDef::parse(&xml).unwrap_err().to_string();
    assert!(
        e.contains("disk 'vda'") && e.contains("interface '52:54:00:00:00:01'"),
        "{e}"
    );
    assert!(e.contains("0000:00:05.0"), "{e}");
    let chipset = with_devices(
        "<disk type='file' device='disk'><source file='/i'/><target dev='vda'/>\
         <address type='pci' domain='0' bus='0' slot='0x1f' function='0'/></disk>",
    );
    let e = DomainDef::parse(&chipset).unwrap_err().to_string();
    assert!(e.contains("disk 'vda'") && e.contains("ICH9 LPC"), "{e}");
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
        pidfile: Some("/p".into()),
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
    // What parses but cannot start: each names what is missing.
    let refused = [
        (
            "<interface type='user'><model type='virtio'/><driver queues='4'/></interface>",
            "multiqueue",
        ),
        (
            "<interface type='network'><source network='default'/></interface>",
            "the driver made no tap for this interface",
        ),
        (
            "<interface type='bridge'><source bridge='br0'/></interface>",
            "the driver made no tap for this interface",
        ),
        (
            "<interface type='user'><model type='e1000'/><mtu size='1400'/></interface>",
            "only virtio NICs take an MTU",
        ),
    ];
    for (dev, why) in refused {
        let d = DomainDef::parse(&with_devices(dev)).unwrap();
        let e = build_argv(&d, &caps, &launch(Accel::Tcg)).unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported, "{dev}");
        assert!(e.to_string().contains(why), "{dev}: {e}");
    }
    // A tap: vhost when the host has it, unless the driver says qemu; an
    // explicit vhost on a host without it is refused.
    let tapped = |driver: &str, vhost_net: bool| {
        let d = DomainDef::parse(&with_devices(&format!(
            "<interface type='network'><source network='n'/><model type='virtio'/>{driver}</interface>"
        )))
        .unwrap();
        let l = LaunchParams {
            taps: vec![Some(9)],
            vhost_net,
            ..launch(Accel::Tcg)
        };
        build_argv(&d, &caps, &l).map(|a| a.join(" "))
    };
    assert!(
        tapped("", true)
            .unwrap()
            .contains("tap,fd=9,id=hostnet0,vhost=on")
    );
    let plain = tapped("", false).unwrap();
    assert!(
        plain.contains("tap,fd=9,id=hostnet0") && !plain.contains("vhost"),
        "{plain}"
    );
    let q = tapped("<driver name='qemu'/>", true).unwrap();
    assert!(!q.contains("vhost"), "{q}");
    let e = tapped("<driver name='vhost'/>", false).unwrap_err();
    assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
    assert!(e.to_string().contains("/dev/vhost-net"), "{e}");
    let vpindex = DomainDef::parse(&mem(
        "<memory unit='MiB'>256</memory><features><hyperv><vpindex state='on'/></hyperv></features>",
    ))
    .unwrap();
    let e = build_argv(&vpindex, &caps, &launch(Accel::Tcg)).unwrap_err();
    assert!(
        e.to_string().contains("vpindex") && e.to_string().contains("KVM"),
        "{e}"
    );

    // A device model the emulator lacks is named, with what needs it.
    let lacking = EmulatorCaps {
        device_types: ["virtio-blk-pci".to_string()].into(),
        ..caps
    };
    let q35 = DomainDef::parse(&with_devices("")).unwrap();
    let e = build_argv(&q35, &lacking, &launch(Accel::Tcg)).unwrap_err();
    assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
    assert_eq!(
        e.to_string(),
        "unsupported configuration: pci controller model 'pcie-root-port' is not supported: \
         this QEMU binary does not have that device"
    );
    let sound = DomainDef::parse(&with_devices("<sound model='ich9'/>")).unwrap();
    let all_but_hda = EmulatorCaps {
        device_types: caps_with_everything_but("ich9-intel-hda"),
        ..lacking
    };
    let e = build_argv(&sound, &all_but_hda, &launch(Accel::Tcg)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported configuration: sound model 'ich9' is not supported: \
         this QEMU binary does not have the device 'ich9-intel-hda'"
    );
}

/// The device models real QEMU 7.2 has that these tests need, but one.
fn caps_with_everything_but(missing: &str) -> std::collections::BTreeSet<String> {
    [
        "pcie-root-port",
        "qemu-xhci",
        "ich9-ahci",
        "virtio-balloon-pci",
        "ich9-intel-hda",
        "hda-duplex",
        "usb-tablet",
        "VGA",
        "virtio-blk-pci",
    ]
    .into_iter()
    .filter(|d| *d != missing)
    .map(str::to_string)
    .collect()
}
