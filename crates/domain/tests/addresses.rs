//! Automatic addresses, for arbitrary device lists on q35 and i440fx:
//! they never collide, every one names a bus that exists and a slot it
//! has, they stay the same across redefinition (also when a device is
//! added, as `virt-xml --add-device` does), and a q35 guest whose PCI
//! controllers were left to us keeps a free root port for hot-plug.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::collections::HashMap;

use domain::{Address, ControllerKind, DomainDef, MachineFamily, PciModel};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Dev {
    VirtioDisk,
    SataDisk,
    Nic(&'static str),
    Sound(&'static str),
    Video(&'static str),
    Watchdog,
    Rng,
    Scsi,
    Channel,
    UsbTablet,
    VirtioInput,
}

fn dev() -> impl Strategy<Value = Dev> {
    prop_oneof![
        Just(Dev::VirtioDisk),
        Just(Dev::SataDisk),
        prop::sample::select(vec!["virtio", "e1000", "e1000e", "rtl8139"]).prop_map(Dev::Nic),
        prop::sample::select(vec!["ich9", "ich6", "ac97"]).prop_map(Dev::Sound),
        prop::sample::select(vec!["virtio", "vga", "qxl", "bochs", "cirrus", "ramfb"])
            .prop_map(Dev::Video),
        Just(Dev::Watchdog),
        Just(Dev::Rng),
        Just(Dev::Scsi),
        Just(Dev::Channel),
        Just(Dev::UsbTablet),
        Just(Dev::VirtioInput),
    ]
}

/// What a definition already holds of the devices it may only have a
/// few of.
#[derive(Debug, Default)]
struct Counts {
    videos: usize,
    watchdogs: usize,
    /// USB devices: the i440fx controller has two ports and no hub.
    usb: usize,
}

/// The XML of one device; `n` keeps names and MACs unique.
fn device_xml(d: Dev, n: usize, counts: &mut Counts) -> String {
    match d {
        Dev::VirtioDisk => format!(
            "<disk type='file' device='disk'><source file='/d{n}'/><target dev='vd{}'/></disk>",
            (b'a' + n as u8) as char
        ),
        Dev::SataDisk => format!(
            "<disk type='file' device='cdrom'><target dev='sd{}' bus='sata'/></disk>",
            (b'a' + n as u8) as char
        ),
        Dev::Nic(m) => format!(
            "<interface type='user'><mac address='52:54:00:00:00:{n:02x}'/><model type='{m}'/></interface>"
        ),
        Dev::Sound(m) => format!("<sound model='{m}'/>"),
        Dev::Video(m) => {
            counts.videos += 1;
            // A second adapter must be a secondary-capable one.
            let m = if counts.videos > 1 { "virtio" } else { m };
            format!("<video><model type='{m}'/></video>")
        }
        Dev::Watchdog => {
            counts.watchdogs += 1;
            if counts.watchdogs > 1 {
                return String::new();
            }
            "<watchdog model='i6300esb'/>".into()
        }
        Dev::Rng => {
            "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>".into()
        }
        Dev::Scsi => format!("<controller type='scsi' index='{n}' model='virtio-scsi'/>"),
        Dev::Channel => {
            format!("<channel type='pty'><target type='virtio' name='c{n}'/></channel>")
        }
        Dev::UsbTablet => {
            counts.usb += 1;
            if counts.usb > 2 {
                return String::new();
            }
            "<input type='tablet' bus='usb'/>".into()
        }
        Dev::VirtioInput => "<input type='keyboard' bus='virtio'/>".into(),
    }
}

fn domain(machine: &str, root_ports: usize, devs: &[Dev]) -> String {
    let mut counts = Counts::default();
    let mut body: String = (0..root_ports)
        .map(|_| "<controller type='pci' model='pcie-root-port'/>".to_string())
        .collect();
    for (n, d) in devs.iter().enumerate() {
        body.push_str(&device_xml(*d, n, &mut counts));
    }
    format!(
        "<domain type='qemu'><name>p</name><uuid>11111111-2222-4333-8444-555555555555</uuid>\
         <memory unit='MiB'>256</memory><os><type machine='{machine}'>hvm</type></os>\
         <devices>{body}</devices></domain>"
    )
}

/// Every PCI address with the device it belongs to.
fn pci_addresses(d: &DomainDef) -> Vec<(String, domain::PciAddress)> {
    let x = &d.devices;
    let mut v = Vec::new();
    let mut add = |name: String, a: Option<Address>| {
        if let Some(Address::Pci(p)) = a {
            v.push((name, p));
        }
    };
    for c in &x.controllers {
        let model = c.model_name().unwrap_or("");
        add(
            format!("controller {} {} {model}", c.ctype().as_str(), c.index),
            c.address,
        );
    }
    for (i, c) in x.disks.iter().enumerate() {
        add(format!("disk {i}"), c.address);
    }
    for (i, c) in x.interfaces.iter().enumerate() {
        add(format!("nic {i}"), c.address);
    }
    for (i, c) in x.sounds.iter().enumerate() {
        add(format!("sound {i}"), c.address);
    }
    for (i, c) in x.video.iter().enumerate() {
        add(format!("video {i}"), c.address);
    }
    for (i, c) in x.rngs.iter().enumerate() {
        add(format!("rng {i}"), c.address);
    }
    for (i, c) in x.inputs.iter().enumerate() {
        add(format!("input {i}"), c.address);
    }
    add(
        "watchdog".into(),
        x.watchdog.as_ref().and_then(|w| w.address),
    );
    add(
        "balloon".into(),
        x.memballoon.as_ref().and_then(|b| b.address),
    );
    v
}

fn check_addresses(d: &DomainDef) -> Result<(), TestCaseError> {
    let addrs = pci_addresses(d);
    let mut seen: HashMap<(u32, u32, u32), &str> = HashMap::new();
    for (name, a) in &addrs {
        let key = (a.bus, a.slot, a.function);
        if let Some(other) = seen.insert(key, name) {
            return Err(TestCaseError::fail(format!(
                "{other} and {name} share {}",
                a.display()
            )));
        }
        let bus = d
            .devices
            .controllers
            .iter()
            .find(|c| c.pci_model().is_some() && c.index == a.bus);
        let Some(bus) = bus else {
            return Err(TestCaseError::fail(format!("{name}: no bus {}", a.bus)));
        };
        if bus.pci_model() == Some(PciModel::PcieRootPort) && a.slot != 0 {
            return Err(TestCaseError::fail(format!(
                "{name}: root ports have slot 0 only"
            )));
        }
    }
    Ok(())
}

/// Root ports nothing is plugged into.
fn free_root_ports(d: &DomainDef) -> usize {
    let used: Vec<u32> = pci_addresses(d).iter().map(|(_, a)| a.bus).collect();
    d.devices
        .controllers
        .iter()
        .filter(|c| {
            matches!(
                c.kind,
                ControllerKind::Pci {
                    model: PciModel::PcieRootPort,
                    ..
                }
            )
        })
        .filter(|c| !used.contains(&c.index))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn automatic_addresses(
        q35 in any::<bool>(),
        root_ports in 0usize..4,
        devs in prop::collection::vec(dev(), 0..24),
        extra in dev(),
    ) {
        let machine = if q35 { "q35" } else { "pc" };
        let root_ports = if q35 { root_ports } else { 0 };
        let xml = domain(machine, root_ports, &devs);
        let d = DomainDef::parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        check_addresses(&d)?;

        // Deterministic, and a fixed point of define -> dumpxml -> define.
        prop_assert_eq!(&DomainDef::parse(&xml).unwrap(), &d);
        let again = DomainDef::parse(&d.to_xml(None)).unwrap();
        prop_assert_eq!(&again, &d);

        if d.os.family() == MachineFamily::Q35 && root_ports == 0 {
            prop_assert!(free_root_ports(&d) >= 1, "no free root port:\n{}", d.to_xml(None));
        }

        // A device added to the defined XML leaves every address as it was.
        let mut counts = Counts {
            videos: d.devices.video.len(),
            watchdogs: usize::from(d.devices.watchdog.is_some()),
            usb: d.devices.inputs.iter().filter(|i| i.bus.as_str() == "usb").count(),
        };
        let added = device_xml(extra, devs.len() + 1, &mut counts);
        let grown = d.to_xml(None).replace("</devices>", &format!("{added}</devices>"));
        let g = DomainDef::parse(&grown).map_err(|e| TestCaseError::fail(format!("{e}\n{grown}")))?;
        check_addresses(&g)?;
        let before: HashMap<String, domain::PciAddress> = pci_addresses(&d).into_iter().collect();
        for (name, a) in pci_addresses(&g) {
            if let Some(old) = before.get(&name) {
                prop_assert!(old.same_function(&a), "{} moved from {} to {}", name, old.display(), a.display());
            }
        }
    }
}
