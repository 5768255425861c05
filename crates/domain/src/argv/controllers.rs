//! Controllers that are devices of their own: PCI root ports and bridges,
//! USB, extra SATA, virtio-scsi and virtio-serial. The PCI roots, the
//! i440fx IDE and q35's AHCI (sata index 0) are part of the machine.

use super::{Args, Ctx};
use crate::def::MachineFamily;
use crate::devices::controller::{
    ControllerDef, ControllerDriver, ControllerKind, PciModel, PciOpts,
};
use crate::error::DomainXmlError;

pub(super) fn controllers(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    // PCI buses first, in index order: a bus exists before what plugs in.
    let mut pci: Vec<&ControllerDef> = cx
        .def
        .devices
        .controllers
        .iter()
        .filter(|c| c.pci_model().is_some())
        .collect();
    pci.sort_by_key(|c| c.index);
    for c in pci {
        pci_controller(cx, a, c)?;
    }
    for c in &cx.def.devices.controllers {
        match &c.kind {
            ControllerKind::Usb { .. } => usb(cx, a, c)?,
            ControllerKind::Sata if !(c.index == 0 && cx.family == MachineFamily::Q35) => {
                a.device(format!(
                    "ich9-ahci,id=sata{}{}",
                    c.index,
                    cx.pci_opts(c.address.as_ref())
                ));
            }
            ControllerKind::Scsi { .. } | ControllerKind::VirtioSerial { .. } => {
                if let Some(dev) = virtio_controller(cx, c)? {
                    a.device(dev);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The `-device` options of a virtio-scsi or virtio-serial controller
/// (the kinds that plug into a running guest); none for the others.
pub(crate) fn virtio_controller(
    cx: &Ctx<'_>,
    c: &ControllerDef,
) -> Result<Option<String>, DomainXmlError> {
    Ok(Some(match &c.kind {
        ControllerKind::Scsi { driver, .. } => {
            cx.require_device("virtio-scsi-pci", "scsi controller model", "virtio-scsi")?;
            let d = driver_opts(driver, "num_queues");
            format!(
                "virtio-scsi-pci,id=scsi{}{d}{}",
                c.index,
                cx.pci_opts(c.address.as_ref())
            )
        }
        ControllerKind::VirtioSerial {
            ports,
            vectors,
            driver,
        } => {
            let mut s = format!("virtio-serial-pci,id=virtio-serial{}", c.index);
            if let Some(p) = ports {
                s.push_str(&format!(",max_ports={p}"));
            }
            if let Some(v) = vectors {
                s.push_str(&format!(",vectors={v}"));
            }
            s.push_str(&driver_opts(driver, "num_queues"));
            format!("{s}{}", cx.pci_opts(c.address.as_ref()))
        }
        _ => return Ok(None),
    }))
}

fn driver_opts(d: &ControllerDriver, queues_key: &str) -> String {
    let mut s = String::new();
    if let Some(q) = d.queues {
        s.push_str(&format!(",{queues_key}={q}"));
    }
    if let Some(i) = d.iothread {
        s.push_str(&format!(",iothread=iothread{i}"));
    }
    s
}

fn pci_controller(cx: &Ctx<'_>, a: &mut Args, c: &ControllerDef) -> Result<(), DomainXmlError> {
    let ControllerKind::Pci { model, opts } = &c.kind else {
        return Ok(());
    };
    if model.is_root() {
        return Ok(());
    }
    let dev = opts
        .model_name
        .clone()
        .or_else(|| model.qemu_devices().first().map(|s| s.to_string()))
        .unwrap_or_default();
    cx.require_device(&dev, "pci controller model", model.as_str())?;
    let mut s = dev;
    s.push_str(&pci_target(*model, opts));
    s.push_str(&format!(",id=pci.{}", c.index));
    s.push_str(&cx.pci_opts(c.address.as_ref()));
    a.device(s);
    Ok(())
}

fn pci_target(model: PciModel, o: &PciOpts) -> String {
    let mut s = String::new();
    match model {
        PciModel::PcieRootPort => {
            if let Some(p) = o.port {
                s.push_str(&format!(",port=0x{p:x}"));
            }
            if let Some(c) = o.chassis {
                s.push_str(&format!(",chassis={c}"));
            }
            if o.hotplug == Some(false) {
                s.push_str(",hotplug=off");
            }
        }
        PciModel::PciBridge => {
            if let Some(n) = o.chassis_nr {
                s.push_str(&format!(",chassis_nr={n}"));
            }
        }
        _ => {}
    }
    s
}

/// The QEMU id of USB controller `index` and its bus name.
pub(super) fn usb_bus(index: u32) -> String {
    if index == 0 {
        "usb.0".into()
    } else {
        format!("usb{index}.0")
    }
}

fn usb(cx: &Ctx<'_>, a: &mut Args, c: &ControllerDef) -> Result<(), DomainXmlError> {
    let ControllerKind::Usb {
        model,
        ports,
        master_startport,
    } = &c.kind
    else {
        return Ok(());
    };
    let Some(dev) = model.qemu_device() else {
        return Ok(());
    };
    cx.require_device(dev, "usb controller model", model.as_str())?;
    let mut s = dev.to_string();
    if model.is_companion() {
        let bus = usb_bus(c.index);
        let master = bus.trim_end_matches(".0");
        s.push_str(&format!(
            ",masterbus={master}.0,firstport={}",
            master_startport.unwrap_or(0)
        ));
    } else {
        if let Some(p) = ports.filter(|_| model.is_xhci()) {
            s.push_str(&format!(",p2={p},p3={p}"));
        }
        s.push_str(&format!(",id={}", c.alias(cx.family)));
    }
    s.push_str(&cx.pci_opts(c.address.as_ref()));
    a.device(s);
    Ok(())
}
