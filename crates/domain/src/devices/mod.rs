//! `<devices>`: parsing, cross-device validation and formatting. One file
//! per device family; this file holds what spans devices (aliases, implicit
//! controllers, duplicate checks).

pub mod address;
pub mod chardev;
pub mod controller;
pub mod disk;
pub mod graphics;
pub mod misc;
pub mod net;

use crate::def::{LiveInfo, MachineFamily};
use crate::error::DomainXmlError;
use crate::parse::{parse_abs_path, parse_uint};
use crate::xml::{XmlElement, XmlWriter};
use address::Address;
use chardev::{ConsoleDef, SerialDef};
use controller::{ControllerDef, ControllerType};
use disk::{DiskBus, DiskDef};
use graphics::{AudioDef, GraphicsDef, InputDef, VideoDef};
use misc::{MemballoonDef, MemballoonModel, WatchdogDef};
use net::InterfaceDef;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    pub emulator: Option<PathBuf>,
    pub disks: Vec<DiskDef>,
    pub controllers: Vec<ControllerDef>,
    pub interfaces: Vec<InterfaceDef>,
    pub serials: Vec<SerialDef>,
    pub consoles: Vec<ConsoleDef>,
    pub inputs: Vec<InputDef>,
    pub graphics: Vec<GraphicsDef>,
    pub audios: Vec<AudioDef>,
    pub video: Vec<VideoDef>,
    pub watchdog: Option<WatchdogDef>,
    /// Always `Some` after parse: like libvirt, an absent `<memballoon>`
    /// means a virtio balloon (write `model='none'` to have none).
    pub memballoon: Option<MemballoonDef>,
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            emulator: None,
            disks: Vec::new(),
            controllers: Vec::new(),
            interfaces: Vec::new(),
            serials: Vec::new(),
            consoles: Vec::new(),
            inputs: Vec::new(),
            graphics: Vec::new(),
            audios: Vec::new(),
            video: Vec::new(),
            watchdog: None,
            memballoon: Some(default_balloon()),
        }
    }
}

fn default_balloon() -> MemballoonDef {
    MemballoonDef {
        model: MemballoonModel::Virtio,
        stats_period: None,
        address: None,
    }
}

pub(crate) fn parse_boot_order(el: &XmlElement, path: &str) -> Result<u32, DomainXmlError> {
    let p = format!("{path}/boot");
    el.check_attrs(&p, &["order"])?;
    el.check_children(&p, &[])?;
    let n = parse_uint(&format!("<{p} order>"), el.req_attr(&p, "order")?)?;
    if n == 0 {
        return Err(DomainXmlError::invalid(
            format!("<{p} order>"),
            "0",
            "boot order starts at 1",
        ));
    }
    Ok(n)
}

pub(crate) fn format_alias(w: &mut XmlWriter, alias: Option<String>) {
    if let Some(a) = alias {
        w.empty("alias", &[("name", a)]);
    }
}

pub(crate) fn parse_devices(
    el: &XmlElement,
    family: MachineFamily,
) -> Result<Devices, DomainXmlError> {
    el.check_attrs("devices", &[])?;
    let mut d = Devices {
        memballoon: None,
        ..Devices::default()
    };
    let mut console_sources = Vec::new();
    for c in el.elements() {
        match c.name.as_str() {
            "emulator" => {
                c.check_attrs("devices/emulator", &[])?;
                c.check_children("devices/emulator", &[])?;
                if d.emulator.is_some() {
                    return Err(DomainXmlError::structure("more than one <emulator>"));
                }
                d.emulator = Some(parse_abs_path("<emulator>", c.text().trim())?);
            }
            "disk" => d.disks.push(disk::parse_disk(c, family)?),
            "controller" => {
                let ctrl = controller::parse_controller(c, family, |t| {
                    d.controllers
                        .iter()
                        .filter(|x| x.ctype == t)
                        .map(|x| x.index + 1)
                        .max()
                        .unwrap_or(0)
                })?;
                d.controllers.push(ctrl);
            }
            "interface" => d.interfaces.push(net::parse_interface(c)?),
            "serial" => {
                let next = d.serials.iter().map(|s| s.port + 1).max().unwrap_or(0);
                d.serials.push(chardev::parse_serial(c, next)?);
            }
            "console" => {
                let (con, src) = chardev::parse_console(c)?;
                d.consoles.push(con);
                console_sources.push(src);
            }
            "input" => d.inputs.push(graphics::parse_input(c)?),
            "graphics" => d.graphics.push(graphics::parse_graphics(c)?),
            "audio" => d.audios.push(graphics::parse_audio(c)?),
            "video" => d.video.push(graphics::parse_video(c)?),
            "watchdog" => {
                if d.watchdog.is_some() {
                    return Err(DomainXmlError::unsupported_because(
                        "watchdog count",
                        "2",
                        "at most one watchdog is supported",
                    ));
                }
                d.watchdog = Some(misc::parse_watchdog(c)?);
            }
            "memballoon" => {
                if d.memballoon.is_some() {
                    return Err(DomainXmlError::structure("more than one <memballoon>"));
                }
                d.memballoon = Some(misc::parse_memballoon(c)?);
            }
            other => return Err(DomainXmlError::UnknownElement(format!("devices/{other}"))),
        }
    }
    if d.memballoon.is_none() {
        d.memballoon = Some(default_balloon());
    }
    link_consoles(&mut d, console_sources)?;
    add_implicit_controllers(&mut d);
    validate(&d)?;
    Ok(d)
}

/// Consoles are views of serials; a console without its serial creates it
/// (libvirt's compatibility behaviour for `<console type='pty'/>` alone).
fn link_consoles(d: &mut Devices, sources: Vec<chardev::ChrSource>) -> Result<(), DomainXmlError> {
    if d.consoles.len() > 1 {
        return Err(DomainXmlError::unsupported_because(
            "console count",
            d.consoles.len().to_string(),
            "only one serial console is supported",
        ));
    }
    for (c, src) in d.consoles.iter().zip(sources) {
        if !d.serials.iter().any(|s| s.port == c.port) {
            if d.serials.is_empty() && c.port == 0 {
                d.serials.push(SerialDef {
                    source: src,
                    port: 0,
                });
            } else {
                return Err(DomainXmlError::structure(format!(
                    "console port {} has no matching <serial>",
                    c.port
                )));
            }
        }
    }
    Ok(())
}

fn add_implicit_controllers(d: &mut Devices) {
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
        if !d
            .controllers
            .iter()
            .any(|c| c.ctype == ctype && c.index == index)
        {
            d.controllers.push(ControllerDef {
                ctype,
                index,
                model: (ctype == ControllerType::Scsi).then(|| "virtio-scsi".to_string()),
                address: None,
            });
        }
    }
}

fn validate(d: &Devices) -> Result<(), DomainXmlError> {
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
            && let Some(other) = drive_addrs.insert((disk.bus.as_str(), a), disk.target.as_str())
        {
            return Err(DomainXmlError::structure(format!(
                "disks '{other}' and '{}' have the same drive address",
                disk.target
            )));
        }
    }
    let mut ctrls = HashSet::new();
    for c in &d.controllers {
        if !ctrls.insert((c.ctype, c.index)) {
            return Err(DomainXmlError::structure(format!(
                "multiple '{}' controllers with index '{}'",
                c.ctype.as_str(),
                c.index
            )));
        }
    }
    let mut ports = HashSet::new();
    for s in &d.serials {
        if !ports.insert(s.port) {
            return Err(DomainXmlError::structure(format!(
                "multiple serials with port {}",
                s.port
            )));
        }
    }
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
    let mut pci = HashSet::new();
    for a in all_pci_addresses(d) {
        if !pci.insert((a.slot, a.function)) {
            return Err(DomainXmlError::structure(format!(
                "PCI address slot 0x{:02x} function {} used by more than one device",
                a.slot, a.function
            )));
        }
    }
    if d.graphics.len() > 1 {
        return Err(DomainXmlError::unsupported_because(
            "graphics count",
            d.graphics.len().to_string(),
            "at most one <graphics> is supported",
        ));
    }
    if d.video.len() > 1 {
        return Err(DomainXmlError::unsupported_because(
            "video count",
            d.video.len().to_string(),
            "at most one <video> is supported",
        ));
    }
    let mut audio_ids = HashSet::new();
    for a in &d.audios {
        if !audio_ids.insert(a.id) {
            return Err(DomainXmlError::structure(format!(
                "audio id {} used more than once",
                a.id
            )));
        }
    }
    Ok(())
}

fn all_pci_addresses(d: &Devices) -> impl Iterator<Item = address::PciAddress> + '_ {
    let a = d.disks.iter().filter_map(|x| x.address);
    let b = d.controllers.iter().filter_map(|x| x.address);
    let c = d.interfaces.iter().filter_map(|x| x.address);
    let e = d.video.iter().filter_map(|x| x.address);
    let f = d.watchdog.iter().filter_map(|x| x.address);
    let g = d.memballoon.iter().filter_map(|x| x.address);
    a.chain(b)
        .chain(c)
        .chain(e)
        .chain(f)
        .chain(g)
        .filter_map(|x: Address| x.pci().copied())
}

pub(crate) fn format_devices(
    w: &mut XmlWriter,
    d: &Devices,
    family: MachineFamily,
    live: Option<&LiveInfo>,
) {
    let alias = |a: String| live.map(|_| a);
    w.open("devices", &[]);
    if let Some(e) = &d.emulator {
        w.text_elem("emulator", &[], &e.to_string_lossy());
    }
    for x in &d.disks {
        disk::format_disk(w, x, alias(x.alias()));
    }
    for x in &d.controllers {
        controller::format_controller(w, x, alias(x.alias(family)));
    }
    for (i, x) in d.interfaces.iter().enumerate() {
        net::format_interface(w, x, alias(format!("net{i}")));
    }
    let pty_of = |i: usize| -> Option<&str> {
        live.and_then(|l| l.serial_ptys.get(i))
            .and_then(|p| p.as_deref())
    };
    for (i, x) in d.serials.iter().enumerate() {
        chardev::format_serial(w, x, live.map(|_| (format!("serial{i}"), pty_of(i))));
    }
    for c in &d.consoles {
        if let Some(i) = d.serials.iter().position(|s| s.port == c.port) {
            chardev::format_console(
                w,
                c,
                &d.serials[i],
                live.map(|_| (format!("serial{i}"), pty_of(i))),
            );
        }
    }
    for (i, x) in d.inputs.iter().enumerate() {
        graphics::format_input(w, x, alias(format!("input{i}")));
    }
    for x in &d.graphics {
        graphics::format_graphics(w, x, live.and_then(|l| l.vnc_port));
    }
    for x in &d.audios {
        graphics::format_audio(w, x);
    }
    for (i, x) in d.video.iter().enumerate() {
        graphics::format_video(w, x, alias(format!("video{i}")));
    }
    if let Some(x) = &d.watchdog {
        misc::format_watchdog(w, x, alias("watchdog0".into()));
    }
    if let Some(x) = &d.memballoon {
        misc::format_memballoon(w, x, alias("balloon0".into()));
    }
    w.close("devices");
}
