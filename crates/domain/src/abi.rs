//! Guest ABI stability: whether a second definition describes the *same*
//! guest as a first one, so that saved guest state (a save image, a
//! migration stream) made under the first can be loaded under the second.
//!
//! What the guest can see must not change: identity (name, uuid), virt
//! type, memory size, vCPU count, machine type, features, CPU, and the set
//! of devices by kind, target/bus and model. Host-side details may change:
//! a disk's source file or format, cache modes, graphics listen address,
//! titles and metadata. That is the point of `virsh save --xml`,
//! `restore --xml` and `save-image-define`: the disk file moved.

use crate::def::DomainDef;
use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

/// The first guest-visible difference found, with both values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported configuration: the new XML changes the guest ABI: \
     {what} cannot change from '{old}' to '{new}'"
)]
pub struct AbiMismatch {
    /// What differs ("name", "memory (KiB)", "disks", ...).
    pub what: &'static str,
    pub old: String,
    pub new: String,
}

impl ToVirError for AbiMismatch {
    /// VIR_ERR_CONFIG_UNSUPPORTED, what libvirt's ABI check reports.
    fn to_vir_error(&self) -> VirError {
        VirError::new(
            ErrorCode::ConfigUnsupported,
            ErrorDomain::Domain,
            self.to_string(),
        )
    }
}

/// Checks that `new` keeps the guest ABI of `old`.
pub fn check_abi_stability(old: &DomainDef, new: &DomainDef) -> Result<(), AbiMismatch> {
    let pairs = [
        ("name", old.name.clone(), new.name.clone()),
        ("uuid", old.uuid.to_string(), new.uuid.to_string()),
        (
            "domain type",
            old.domain_type.as_str().to_owned(),
            new.domain_type.as_str().to_owned(),
        ),
        (
            "memory (KiB)",
            old.memory_kib.to_string(),
            new.memory_kib.to_string(),
        ),
        ("vCPU count", old.vcpus.to_string(), new.vcpus.to_string()),
        ("machine type", machine(old), machine(new)),
        ("features", features(old), features(new)),
        ("CPU", cpu(old), cpu(new)),
    ];
    for (what, o, n) in pairs {
        same(what, o, n)?;
    }
    for (what, f) in DEVICE_LISTS {
        same(what, f(old).join(", "), f(new).join(", "))?;
    }
    Ok(())
}

fn same(what: &'static str, old: String, new: String) -> Result<(), AbiMismatch> {
    if old == new {
        return Ok(());
    }
    Err(AbiMismatch { what, old, new })
}

/// As written; no machine means q35 (see `OsDef::machine`).
fn machine(d: &DomainDef) -> String {
    d.os.machine.clone().unwrap_or_else(|| "q35".to_owned())
}

fn features(d: &DomainDef) -> String {
    let f = &d.features;
    let vmport = f
        .vmport
        .map_or("default", |on| if on { "on" } else { "off" });
    format!(
        "acpi={} apic={} pae={} vmport={vmport}",
        f.acpi, f.apic, f.pae
    )
}

fn cpu(d: &DomainDef) -> String {
    let Some(c) = &d.cpu else {
        return "default".to_owned();
    };
    let mut s = format!("mode={}", c.mode.as_str());
    if let Some(m) = &c.model {
        s.push_str(&format!(" model={m}"));
    }
    if let Some(t) = &c.topology {
        s.push_str(&format!(
            " topology={}/{}/{}/{}",
            t.sockets, t.dies, t.cores, t.threads
        ));
    }
    for f in &c.features {
        s.push_str(&format!(" {}={}", f.name, f.policy.as_str()));
    }
    s
}

type DeviceList = fn(&DomainDef) -> Vec<String>;

/// Each guest-visible device family, described without host-side details.
const DEVICE_LISTS: [(&str, DeviceList); 14] = [
    ("disks", disks),
    ("interfaces", interfaces),
    ("serials", serials),
    ("consoles", consoles),
    ("inputs", inputs),
    ("video devices", videos),
    ("watchdog", watchdog),
    ("memory balloon", balloon),
    ("channels", channels),
    ("sound cards", sounds),
    ("RNGs", rngs),
    ("TPM", tpms),
    ("redirected USB devices", redirdevs),
    // Last: most controllers follow from the devices above (a bridge for
    // a conventional PCI NIC), which name the difference better.
    ("controllers", controllers),
];

fn disks(d: &DomainDef) -> Vec<String> {
    let dev = |d: &crate::DiskDef| match d.device {
        crate::DiskDevice::Disk => "disk",
        crate::DiskDevice::Cdrom => "cdrom",
    };
    d.devices
        .disks
        .iter()
        .map(|k| format!("{} ({} on {})", k.target, dev(k), k.bus.as_str()))
        .collect()
}

fn controllers(d: &DomainDef) -> Vec<String> {
    d.devices
        .controllers
        .iter()
        .map(|c| {
            let model = c.model_name().unwrap_or("default");
            format!("{}{} ({model})", c.ctype().as_str(), c.index)
        })
        .collect()
}

fn interfaces(d: &DomainDef) -> Vec<String> {
    d.devices
        .interfaces
        .iter()
        .map(|i| {
            let model = i.model.map_or("default", |m| m.as_str());
            format!("{} ({model})", i.mac)
        })
        .collect()
}

fn serials(d: &DomainDef) -> Vec<String> {
    let s = d.devices.serials.iter();
    s.map(|s| format!("serial port {}", s.port)).collect()
}

fn consoles(d: &DomainDef) -> Vec<String> {
    let c = d.devices.consoles.iter();
    c.map(|c| format!("console port {}", c.port)).collect()
}

fn inputs(d: &DomainDef) -> Vec<String> {
    let i = d.devices.inputs.iter();
    i.map(|i| format!("{} on {}", i.kind.as_str(), i.bus.as_str()))
        .collect()
}

fn videos(d: &DomainDef) -> Vec<String> {
    let v = d.devices.video.iter();
    v.map(|v| v.model.as_str().to_owned()).collect()
}

fn channels(d: &DomainDef) -> Vec<String> {
    let c = d.devices.channels.iter();
    c.map(|c| c.name.clone().unwrap_or_default()).collect()
}

fn sounds(d: &DomainDef) -> Vec<String> {
    let s = d.devices.sounds.iter();
    s.map(|s| s.model.as_str().to_owned()).collect()
}

fn rngs(d: &DomainDef) -> Vec<String> {
    let r = d.devices.rngs.iter();
    r.map(|r| r.model.as_str().to_owned()).collect()
}

fn tpms(d: &DomainDef) -> Vec<String> {
    let t = d.devices.tpms.iter();
    t.map(|t| format!("{} {}", t.model.as_str(), t.version.as_str()))
        .collect()
}

fn redirdevs(d: &DomainDef) -> Vec<String> {
    vec!["usb".to_owned(); d.devices.redirdevs.len()]
}

fn watchdog(d: &DomainDef) -> Vec<String> {
    let w = d.devices.watchdog.iter();
    w.map(|w| w.model.clone()).collect()
}

fn balloon(d: &DomainDef) -> Vec<String> {
    let b = d.devices.memballoon.iter();
    b.map(|b| b.model.as_str().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "<domain type='qemu'><name>vm</name>\
        <uuid>0b0c5a5e-5b8e-4c1f-9a43-2d7b5d1b3c11</uuid>\
        <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
        <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
        <source file='/old/a.qcow2'/><target dev='vda' bus='virtio'/></disk>\
        <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>\
        </devices></domain>";

    fn def(xml: &str) -> DomainDef {
        DomainDef::parse(xml).expect("valid test XML")
    }

    fn check(edit: impl Fn(&str) -> String) -> Result<(), AbiMismatch> {
        check_abi_stability(&def(BASE), &def(&edit(BASE)))
    }

    #[test]
    fn host_side_changes_keep_the_abi() {
        let moved = |x: &str| {
            x.replace("/old/a.qcow2", "/new/place/a.raw")
                .replace("type='qcow2'", "type='raw' cache='none'")
        };
        assert_eq!(check(moved), Ok(()));
        // A live XML (with id and aliases) of the same guest is the same.
        let live = def(BASE).to_xml(Some(&crate::LiveInfo {
            id: 7,
            ..crate::LiveInfo::default()
        }));
        assert_eq!(check_abi_stability(&def(BASE), &def(&live)), Ok(()));
    }

    fn mismatch(edit: impl Fn(&str) -> String) -> AbiMismatch {
        check(edit).expect_err("an ABI change")
    }

    #[test]
    fn identity_changes_are_named() {
        let e = mismatch(|x| x.replace("<name>vm</name>", "<name>other</name>"));
        assert_eq!(
            (e.what, e.old.as_str(), e.new.as_str()),
            ("name", "vm", "other")
        );
        assert!(
            e.to_string()
                .contains("name cannot change from 'vm' to 'other'")
        );
        let e = mismatch(|x| x.replace("2d7b5d1b3c11", "2d7b5d1b3c12"));
        assert_eq!(e.what, "uuid");
        assert!(e.to_string().contains("2d7b5d1b3c12"), "{e}");
    }

    #[test]
    fn size_and_machine_changes_are_named() {
        let e = mismatch(|x| x.replace("'MiB'>64<", "'MiB'>128<"));
        assert_eq!(
            (e.what, e.old.as_str(), e.new.as_str()),
            ("memory (KiB)", "65536", "131072")
        );
        let e = mismatch(|x| x.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>"));
        assert_eq!(
            (e.what, e.old.as_str(), e.new.as_str()),
            ("vCPU count", "1", "2")
        );
        let e = mismatch(|x| x.replace("machine='q35'", "machine='pc'"));
        assert_eq!(e.what, "machine type");
        let e = mismatch(|x| x.replace("type='qemu'", "type='kvm'"));
        assert_eq!(e.what, "domain type");
    }

    #[test]
    fn device_set_changes_are_named() {
        let extra = "<disk type='file' device='disk'><source file='/b.img'/>\
                     <target dev='vdb' bus='virtio'/></disk></devices>";
        let e = mismatch(|x| x.replace("</devices>", extra));
        assert_eq!(e.what, "disks");
        assert_eq!(e.old, "vda (disk on virtio)");
        assert_eq!(e.new, "vda (disk on virtio), vdb (disk on virtio)");
        let e = mismatch(|x| x.replace("dev='vda' bus='virtio'", "dev='sda' bus='sata'"));
        assert_eq!(e.what, "disks");
        assert!(e.to_string().contains("'sda (disk on sata)'"), "{e}");
        let e = mismatch(|x| x.replace("12:34:56", "12:34:57"));
        assert_eq!(e.what, "interfaces");
        let e = mismatch(|x| x.replace("<model type='virtio'/>", "<model type='e1000'/>"));
        assert_eq!(e.what, "interfaces");
        let e = mismatch(|x| x.replace("</devices>", "<memballoon model='none'/></devices>"));
        assert_eq!(e.what, "memory balloon");
    }

    #[test]
    fn reported_as_config_unsupported() {
        let e = mismatch(|x| x.replace("<vcpu>1</vcpu>", "<vcpu>4</vcpu>"));
        let v = e.to_vir_error();
        assert_eq!(v.code, ErrorCode::ConfigUnsupported);
        assert_eq!(v.code.as_i32(), 67);
    }
}
