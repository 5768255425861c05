//! A reference to one device of a definition, so address assignment can
//! walk every device kind alike: read and set its address, name it in
//! errors, and say how it connects to PCI.

use crate::def::MachineFamily;
use crate::devices::Devices;
use crate::devices::address::Address;
use crate::devices::controller::{ControllerKind, PciModel, UsbModel};
use crate::devices::disk::DiskBus;
use crate::devices::input::InputBus;
use crate::devices::misc::MemballoonModel;
use crate::devices::net::NicModel;
use crate::devices::video::VideoModel;

/// How a device plugs into PCI, as libvirt's connect flags: which kind of
/// slot it needs, and whether it may be placed automatically.
pub(crate) mod conn {
    pub(crate) const PCI_DEVICE: u16 = 1 << 0;
    pub(crate) const PCIE_DEVICE: u16 = 1 << 1;
    pub(crate) const ROOT_PORT: u16 = 1 << 2;
    pub(crate) const PCI_BRIDGE: u16 = 1 << 3;
    pub(crate) const PCIE_TO_PCI_BRIDGE: u16 = 1 << 4;
    pub(crate) const DMI_TO_PCI_BRIDGE: u16 = 1 << 5;
    /// The kinds of connection (one of them must match the bus's).
    pub(crate) const TYPES: u16 = 0xff;
    pub(crate) const ENDPOINT: u16 = PCI_DEVICE | PCIE_DEVICE;
    /// The device may be placed automatically (buses: accept that).
    pub(crate) const AUTOASSIGN: u16 = 1 << 8;
    /// Several such devices may share a slot as functions (root ports).
    pub(crate) const AGGREGATE: u16 = 1 << 9;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dev {
    Controller(usize),
    Interface(usize),
    Sound(usize),
    Disk(usize),
    Balloon,
    Rng(usize),
    Watchdog,
    Video(usize),
    Input(usize),
    Redirdev(usize),
    Channel(usize),
}

impl Dev {
    pub(crate) fn address(self, d: &Devices) -> Option<Address> {
        match self {
            Dev::Controller(i) => d.controllers[i].address,
            Dev::Interface(i) => d.interfaces[i].address,
            Dev::Sound(i) => d.sounds[i].address,
            Dev::Disk(i) => d.disks[i].address,
            Dev::Balloon => d.memballoon.as_ref().and_then(|b| b.address),
            Dev::Rng(i) => d.rngs[i].address,
            Dev::Watchdog => d.watchdog.as_ref().and_then(|w| w.address),
            Dev::Video(i) => d.video[i].address,
            Dev::Input(i) => d.inputs[i].address,
            Dev::Redirdev(i) => d.redirdevs[i].address,
            Dev::Channel(i) => d.channels[i].address,
        }
    }

    pub(crate) fn set_address(self, d: &mut Devices, a: Address) {
        let slot = match self {
            Dev::Controller(i) => &mut d.controllers[i].address,
            Dev::Interface(i) => &mut d.interfaces[i].address,
            Dev::Sound(i) => &mut d.sounds[i].address,
            Dev::Disk(i) => &mut d.disks[i].address,
            Dev::Balloon => match d.memballoon.as_mut() {
                Some(b) => &mut b.address,
                None => return,
            },
            Dev::Rng(i) => &mut d.rngs[i].address,
            Dev::Watchdog => match d.watchdog.as_mut() {
                Some(w) => &mut w.address,
                None => return,
            },
            Dev::Video(i) => &mut d.video[i].address,
            Dev::Input(i) => &mut d.inputs[i].address,
            Dev::Redirdev(i) => &mut d.redirdevs[i].address,
            Dev::Channel(i) => &mut d.channels[i].address,
        };
        *slot = Some(a);
    }

    /// The device as a user recognises it, for error messages.
    pub(crate) fn name(self, d: &Devices) -> String {
        match self {
            Dev::Controller(i) => {
                let c = &d.controllers[i];
                format!(
                    "controller type='{}' index='{}'",
                    c.ctype().as_str(),
                    c.index
                )
            }
            Dev::Interface(i) => format!("interface '{}'", d.interfaces[i].mac),
            Dev::Sound(i) => format!("sound '{}'", d.sounds[i].model.as_str()),
            Dev::Disk(i) => format!("disk '{}'", d.disks[i].target),
            Dev::Balloon => "memballoon".into(),
            Dev::Rng(i) => format!("rng {i}"),
            Dev::Watchdog => "watchdog".into(),
            Dev::Video(i) => format!("video '{}'", d.video[i].model.as_str()),
            Dev::Input(i) => {
                let x = &d.inputs[i];
                format!("input '{}' on {}", x.kind.as_str(), x.bus.as_str())
            }
            Dev::Redirdev(i) => format!("redirdev {i}"),
            Dev::Channel(i) => match &d.channels[i].name {
                Some(n) => format!("channel '{n}'"),
                None => format!("channel {i}"),
            },
        }
    }

    /// How the device connects to PCI (0: it does not). `pcie` is the
    /// flags of a PCI Express capable device on this machine; virtio
    /// devices are those too (QEMU's virtio devices are transitional).
    pub(crate) fn pci_flags(self, d: &Devices, family: MachineFamily) -> u16 {
        use conn::*;
        let pci = PCI_DEVICE | AUTOASSIGN;
        let pcie = match family {
            MachineFamily::Q35 => PCIE_DEVICE | AUTOASSIGN,
            MachineFamily::I440fx => pci,
        };
        match self {
            Dev::Controller(i) => controller_flags(&d.controllers[i].kind, pci, pcie),
            Dev::Interface(i) => match d.interfaces[i].effective_model() {
                NicModel::Virtio | NicModel::E1000e => pcie,
                NicModel::E1000 | NicModel::Rtl8139 => pci,
            },
            Dev::Sound(_) => pci,
            Dev::Watchdog if d.watchdog.is_some() => pci,
            Dev::Disk(i) if d.disks[i].bus == DiskBus::Virtio => pcie,
            Dev::Balloon => match &d.memballoon {
                Some(b) if b.model == MemballoonModel::Virtio => pcie,
                _ => 0,
            },
            Dev::Rng(_) => pcie,
            Dev::Video(i) => match d.video[i].model {
                VideoModel::Virtio | VideoModel::Bochs => pcie,
                VideoModel::Ramfb | VideoModel::None => 0,
                _ => pci,
            },
            Dev::Input(i) if d.inputs[i].bus == InputBus::Virtio => pcie,
            Dev::Disk(_) | Dev::Input(_) | Dev::Redirdev(_) | Dev::Channel(_) | Dev::Watchdog => 0,
        }
    }
}

fn controller_flags(kind: &ControllerKind, pci: u16, pcie: u16) -> u16 {
    use conn::*;
    match kind {
        ControllerKind::Pci { model, .. } => match model {
            PciModel::PciRoot | PciModel::PcieRoot => 0,
            PciModel::PciBridge => PCI_BRIDGE,
            PciModel::DmiToPciBridge => DMI_TO_PCI_BRIDGE,
            PciModel::PcieRootPort => ROOT_PORT | AGGREGATE,
            PciModel::PcieToPciBridge => PCIE_TO_PCI_BRIDGE,
        },
        ControllerKind::Usb { model, .. } => match model {
            UsbModel::None => 0,
            UsbModel::QemuXhci | UsbModel::NecXhci => pcie,
            _ => pci,
        },
        ControllerKind::Scsi { .. } | ControllerKind::VirtioSerial { .. } => pcie,
        ControllerKind::Sata | ControllerKind::Ide => pci,
    }
}

/// Every device of `d`, in the order libvirt assigns PCI slots: PCI
/// controllers, NICs, sound cards, other controllers, virtio disks, the
/// balloon, RNGs, the watchdog, video, virtio inputs.
pub(crate) fn pci_order(d: &Devices) -> Vec<Dev> {
    let is_pci = |i: &usize| d.controllers[*i].pci_model().is_some();
    let ctrls = 0..d.controllers.len();
    let mut v: Vec<Dev> = ctrls.clone().filter(is_pci).map(Dev::Controller).collect();
    v.extend((0..d.interfaces.len()).map(Dev::Interface));
    v.extend((0..d.sounds.len()).map(Dev::Sound));
    v.extend(ctrls.filter(|i| !is_pci(i)).map(Dev::Controller));
    v.extend((0..d.disks.len()).map(Dev::Disk));
    v.push(Dev::Balloon);
    v.extend((0..d.rngs.len()).map(Dev::Rng));
    v.push(Dev::Watchdog);
    v.extend((0..d.video.len()).map(Dev::Video));
    v.extend((0..d.inputs.len()).map(Dev::Input));
    v
}
