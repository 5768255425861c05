//! Devices a definition implies, added at define time as libvirt does, so
//! that dumpxml shows the guest's real hardware and a second define of the
//! same XML changes nothing: the machine's root bus, its builtin disk
//! controller, a USB controller, the PS/2 inputs, a balloon, the
//! controllers disks and channels need, an audio backend for sound cards,
//! and the video model's defaults.

use super::Devices;
use super::chardev::{ChrSource, SerialDef};
use super::controller::{
    ControllerDef, ControllerKind, ControllerType, PciModel, PciOpts, ScsiModel, default_usb_model,
};
use super::disk::DiskBus;
use super::graphics::GraphicsDef;
use super::input::{InputBus, InputDef, InputType};
use super::misc::{MemballoonDef, MemballoonModel};
use super::sound::{AudioDef, AudioType};
use crate::def::MachineFamily;
use crate::error::DomainXmlError;

/// Consoles are views of serials; a console without its serial creates it
/// (libvirt's compatibility behaviour for `<console type='pty'/>` alone).
pub(crate) fn link_consoles(
    d: &mut Devices,
    sources: Vec<SerialDef>,
) -> Result<(), DomainXmlError> {
    if d.consoles.len() > 1 {
        return Err(DomainXmlError::unsupported_because(
            "console count",
            d.consoles.len().to_string(),
            "only one serial console is supported",
        ));
    }
    for (c, serial) in d.consoles.iter().zip(sources) {
        if d.serials.iter().any(|s| s.port == c.port) {
            continue;
        }
        if d.serials.is_empty() && c.port == 0 {
            d.serials.push(serial);
        } else {
            return Err(DomainXmlError::structure(format!(
                "console port {} has no matching <serial>",
                c.port
            )));
        }
    }
    Ok(())
}

pub(crate) fn add_implicit(d: &mut Devices, family: MachineFamily) {
    add_machine_controllers(d, family);
    add_disk_controllers(d);
    if d.channels.iter().any(|c| c.source != ChrSource::Null) {
        ensure_controller(d, ControllerType::VirtioSerial, 0);
    }
    add_ps2_inputs(d);
    if d.memballoon.is_none() {
        d.memballoon = Some(MemballoonDef {
            model: MemballoonModel::Virtio,
            stats_period: None,
            autodeflate: None,
            free_page_reporting: None,
            address: None,
        });
    }
    add_audio(d);
    for (i, v) in d.video.iter_mut().enumerate() {
        v.fill_defaults(i == 0);
    }
}

/// The root bus, the builtin disk controller (AHCI on q35, IDE on i440fx)
/// and USB controller 0 (`model='none'` keeps USB out).
fn add_machine_controllers(d: &mut Devices, family: MachineFamily) {
    let (root, disk) = match family {
        MachineFamily::Q35 => (PciModel::PcieRoot, ControllerKind::Sata),
        MachineFamily::I440fx => (PciModel::PciRoot, ControllerKind::Ide),
    };
    if d.controller(ControllerType::Pci, 0).is_none() {
        let opts = PciOpts::default();
        insert(
            d,
            ControllerDef::new(ControllerKind::Pci { model: root, opts }, 0),
        );
    }
    if d.controller(disk_type(&disk), 0).is_none() {
        insert(d, ControllerDef::new(disk, 0));
    }
    if d.controller(ControllerType::Usb, 0).is_none() {
        let kind = ControllerKind::Usb {
            model: default_usb_model(family),
            ports: None,
            master_startport: None,
        };
        insert(d, ControllerDef::new(kind, 0));
    }
}

fn disk_type(k: &ControllerKind) -> ControllerType {
    ControllerDef::new(k.clone(), 0).ctype()
}

/// Controllers the disks' drive addresses name.
fn add_disk_controllers(d: &mut Devices) {
    let mut needed: Vec<(ControllerType, u32)> = Vec::new();
    for disk in &d.disks {
        let ctype = match disk.bus {
            DiskBus::Virtio => continue,
            DiskBus::Sata => ControllerType::Sata,
            DiskBus::Scsi => ControllerType::Scsi,
            DiskBus::Ide => ControllerType::Ide,
        };
        let idx = disk.drive_address().map(|a| a.controller).unwrap_or(0);
        if !needed.contains(&(ctype, idx)) {
            needed.push((ctype, idx));
        }
    }
    for (ctype, index) in needed {
        ensure_controller(d, ctype, index);
    }
}

fn ensure_controller(d: &mut Devices, ctype: ControllerType, index: u32) {
    if d.controller(ctype, index).is_some() {
        return;
    }
    let kind = match ctype {
        ControllerType::Sata => ControllerKind::Sata,
        ControllerType::Ide => ControllerKind::Ide,
        ControllerType::Scsi => ControllerKind::Scsi {
            model: ScsiModel::VirtioScsi,
            driver: Default::default(),
        },
        ControllerType::VirtioSerial => ControllerKind::VirtioSerial {
            ports: None,
            vectors: None,
            driver: Default::default(),
        },
        // Never needed implicitly beyond index 0 (see add_machine_controllers).
        ControllerType::Pci | ControllerType::Usb => return,
    };
    insert(d, ControllerDef::new(kind, index));
}

/// Keeps controllers grouped by type and sorted by index within a type,
/// as libvirt lists them; a new type goes last.
fn insert(d: &mut Devices, c: ControllerDef) {
    let t = c.ctype();
    let pos = d
        .controllers
        .iter()
        .rposition(|x| x.ctype() == t && x.index < c.index)
        .map(|p| p + 1)
        .or_else(|| d.controllers.iter().position(|x| x.ctype() == t))
        .unwrap_or(d.controllers.len());
    d.controllers.insert(pos, c);
}

/// Every x86 machine has a PS/2 mouse and keyboard; libvirt lists them.
fn add_ps2_inputs(d: &mut Devices) {
    for kind in [InputType::Mouse, InputType::Keyboard] {
        let present = d
            .inputs
            .iter()
            .any(|i| i.bus == InputBus::Ps2 && i.kind == kind);
        if !present {
            d.inputs.push(InputDef {
                kind,
                bus: InputBus::Ps2,
                address: None,
                alias_index: None,
            });
        }
    }
}

/// A sound card plays through an audio backend: SPICE's when the guest has
/// a SPICE display, else a silent one.
fn add_audio(d: &mut Devices) {
    if d.sounds.is_empty() || !d.audios.is_empty() {
        return;
    }
    let spice = d
        .graphics
        .iter()
        .any(|g| matches!(g, GraphicsDef::Spice(_)));
    d.audios.push(AudioDef {
        id: 1,
        atype: if spice {
            AudioType::Spice
        } else {
            AudioType::None
        },
    });
}
