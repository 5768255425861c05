//! Rules that span devices: unique names, ports, ids and boot orders, at
//! most one of what a guest can only have one of, and references between
//! devices (a sound card's audio backend, USB devices and their bus).
//! Address conflicts are checked where addresses are assigned
//! (`crate::addr`), where both devices can be named.

use std::collections::{HashMap, HashSet};

use super::Devices;
use super::controller::{ControllerKind, ControllerType, UsbModel};
use super::graphics::GraphicsDef;
use super::input::InputBus;
use super::video::VideoModel;
use crate::def::MachineFamily;
use crate::error::DomainXmlError;

pub(crate) fn validate(d: &Devices, family: MachineFamily) -> Result<(), DomainXmlError> {
    check_disks(d)?;
    check_controllers(d, family)?;
    check_chardevs(d)?;
    check_boot_orders(d)?;
    check_display(d)?;
    check_sound(d)?;
    check_usb_devices(d)?;
    if d.tpms.len() > 1 {
        return Err(DomainXmlError::unsupported_because(
            "tpm count",
            d.tpms.len().to_string(),
            "at most one TPM is supported",
        ));
    }
    Ok(())
}

fn check_disks(d: &Devices) -> Result<(), DomainXmlError> {
    let mut targets = HashSet::new();
    let mut drive_addrs = HashMap::new();
    for disk in &d.disks {
        if !targets.insert(disk.target.as_str()) {
            return Err(DomainXmlError::structure(format!(
                "target '{}' duplicated for disks",
                disk.target
            )));
        }
        if let Some(a) = disk.drive_address()
            && let Some(other) = drive_addrs.insert((disk.bus, a), disk.target.as_str())
        {
            return Err(DomainXmlError::structure(format!(
                "disks '{other}' and '{}' have the same drive address",
                disk.target
            )));
        }
    }
    Ok(())
}

fn check_controllers(d: &Devices, family: MachineFamily) -> Result<(), DomainXmlError> {
    let mut seen = HashSet::new();
    for c in &d.controllers {
        // An EHCI controller and its UHCI companions share an index.
        let usb2 = c
            .usb_model()
            .filter(|m| m.is_companion() || *m == UsbModel::Ich9Ehci1);
        if !seen.insert((c.ctype(), c.index, usb2)) {
            return Err(DomainXmlError::structure(format!(
                "multiple '{}' controllers with index '{}'",
                c.ctype().as_str(),
                c.index
            )));
        }
    }
    check_usb_masters(d)?;
    if family == MachineFamily::Q35
        && let Some(c) = d.controller(ControllerType::Sata, 0)
        && c.address.is_some_and(|a| {
            a.pci()
                .is_none_or(|p| (p.bus, p.slot, p.function) != (0, 0x1f, 2))
        })
    {
        return Err(DomainXmlError::structure(
            "the primary SATA controller of q35 is at PCI address 0000:00:1f.2",
        ));
    }
    Ok(())
}

/// An EHCI companion needs its master (an ich9-ehci1 of the same index).
fn check_usb_masters(d: &Devices) -> Result<(), DomainXmlError> {
    let usb: Vec<(u32, UsbModel)> = d
        .controllers
        .iter()
        .filter_map(|c| c.usb_model().map(|m| (c.index, m)))
        .collect();
    let mut per_index: HashMap<u32, Vec<UsbModel>> = HashMap::new();
    for (i, m) in &usb {
        per_index.entry(*i).or_default().push(*m);
    }
    for (i, models) in per_index {
        let companions = models.iter().filter(|m| m.is_companion()).count();
        let masters = models.iter().filter(|m| **m == UsbModel::Ich9Ehci1).count();
        if companions > 0 && masters != 1
            || companions + masters != models.len() && models.len() > 1
        {
            return Err(DomainXmlError::structure(format!(
                "USB controllers with index {i} must be one ich9-ehci1 and its ich9-uhciN companions"
            )));
        }
    }
    Ok(())
}

fn check_chardevs(d: &Devices) -> Result<(), DomainXmlError> {
    let mut ports = HashSet::new();
    for s in &d.serials {
        if !ports.insert(s.port) {
            return Err(DomainXmlError::structure(format!(
                "multiple serials with port {}",
                s.port
            )));
        }
    }
    let mut names = HashSet::new();
    for c in &d.channels {
        if let Some(n) = &c.name
            && !names.insert(n.as_str())
        {
            return Err(DomainXmlError::structure(format!(
                "channel name '{n}' used more than once"
            )));
        }
    }
    Ok(())
}

fn check_boot_orders(d: &Devices) -> Result<(), DomainXmlError> {
    let mut boots = HashSet::new();
    let orders = d
        .disks
        .iter()
        .filter_map(|x| x.boot_order)
        .chain(d.interfaces.iter().filter_map(|x| x.boot_order));
    for o in orders {
        if !boots.insert(o) {
            return Err(DomainXmlError::structure(format!(
                "boot order '{o}' used for more than one device"
            )));
        }
    }
    Ok(())
}

fn check_display(d: &Devices) -> Result<(), DomainXmlError> {
    let mut kinds = HashSet::new();
    for g in &d.graphics {
        if !kinds.insert(g.gtype()) {
            return Err(DomainXmlError::unsupported_because(
                "graphics count",
                g.gtype().as_str(),
                "at most one display of each type is supported",
            ));
        }
    }
    if d.graphics.iter().any(|g| matches!(g, GraphicsDef::None)) && d.graphics.len() > 1 {
        return Err(DomainXmlError::structure(
            "<graphics type='none'/> cannot be combined with a display",
        ));
    }
    for (i, v) in d.video.iter().enumerate().skip(1) {
        let secondary = v.model.qemu_devices().1;
        if secondary.is_none() || v.primary == Some(true) {
            return Err(DomainXmlError::unsupported_because(
                "secondary video model",
                v.model.as_str(),
                format!("video {i} can only be a secondary qxl, virtio or bochs adapter"),
            ));
        }
    }
    if d.video.len() > 1 && d.video[0].model == VideoModel::None {
        return Err(DomainXmlError::structure(
            "video model 'none' cannot be combined with other video devices",
        ));
    }
    Ok(())
}

fn check_sound(d: &Devices) -> Result<(), DomainXmlError> {
    let mut ids = HashSet::new();
    for a in &d.audios {
        if !ids.insert(a.id) {
            return Err(DomainXmlError::structure(format!(
                "audio id {} used more than once",
                a.id
            )));
        }
    }
    for s in &d.sounds {
        if let Some(id) = s.audio_id
            && !ids.contains(&id)
        {
            return Err(DomainXmlError::structure(format!(
                "sound card '{}' names audio id {id}, which does not exist",
                s.model.as_str()
            )));
        }
    }
    Ok(())
}

/// USB devices need a USB bus, which `model='none'` removes.
fn check_usb_devices(d: &Devices) -> Result<(), DomainXmlError> {
    let usb_devices =
        d.inputs.iter().filter(|i| i.bus == InputBus::Usb).count() + d.redirdevs.len();
    if usb_devices == 0 {
        return Ok(());
    }
    let has_bus = d
        .controllers
        .iter()
        .any(|c| matches!(&c.kind, ControllerKind::Usb { model, .. } if *model != UsbModel::None));
    if !has_bus {
        return Err(DomainXmlError::unsupported_because(
            "USB devices",
            usb_devices.to_string(),
            "USB is disabled for this domain (usb controller model 'none')",
        ));
    }
    Ok(())
}
