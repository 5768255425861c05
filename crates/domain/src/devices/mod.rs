//! `<devices>`: parsing and formatting. One file per device family; this
//! file holds the device list and what spans devices (the parse loop, the
//! output order, aliases). Devices a definition implies (root buses,
//! default controllers) are added by [`defaults`], addresses assigned by
//! `crate::addr`, and cross-device rules checked by [`validate`].

pub mod address;
pub mod chardev;
pub mod controller;
pub(crate) mod defaults;
pub mod disk;
pub mod graphics;
pub mod input;
pub mod misc;
pub mod net;
pub mod redirdev;
pub mod rng;
pub mod sound;
pub mod tpm;
pub(crate) mod validate;
pub mod video;

use std::path::PathBuf;

use crate::def::{LiveInfo, MachineFamily};
use crate::error::DomainXmlError;
use crate::values::parse_abs_path;
use crate::xml::{XmlElement, XmlWriter};
use chardev::{ChannelDef, ConsoleDef, SerialDef};
use controller::{ControllerDef, ControllerType};
use disk::DiskDef;
use graphics::GraphicsDef;
use input::InputDef;
use misc::{MemballoonDef, WatchdogDef};
use net::InterfaceDef;
use redirdev::RedirdevDef;
use rng::RngDef;
use sound::{AudioDef, SoundDef};
use tpm::TpmDef;
use video::VideoDef;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Devices {
    pub emulator: Option<PathBuf>,
    pub disks: Vec<DiskDef>,
    pub controllers: Vec<ControllerDef>,
    pub interfaces: Vec<InterfaceDef>,
    pub serials: Vec<SerialDef>,
    pub consoles: Vec<ConsoleDef>,
    pub channels: Vec<ChannelDef>,
    pub inputs: Vec<InputDef>,
    pub tpms: Vec<TpmDef>,
    pub graphics: Vec<GraphicsDef>,
    pub sounds: Vec<SoundDef>,
    pub audios: Vec<AudioDef>,
    pub video: Vec<VideoDef>,
    pub redirdevs: Vec<RedirdevDef>,
    pub watchdog: Option<WatchdogDef>,
    /// Always `Some` after parse: like libvirt, an absent `<memballoon>`
    /// means a virtio balloon (write `model='none'` to have none).
    pub memballoon: Option<MemballoonDef>,
    pub rngs: Vec<RngDef>,
}

impl Devices {
    /// The controller of `ctype` with `index`.
    pub fn controller(&self, ctype: ControllerType, index: u32) -> Option<&ControllerDef> {
        self.controllers
            .iter()
            .find(|c| c.ctype() == ctype && c.index == index)
    }
}

/// Every child `<devices>` may have. Anything else (`hostdev`,
/// `filesystem`, `smartcard`, ...) is refused by name.
const DEVICE_ELEMENTS: &[&str] = &[
    "emulator",
    "disk",
    "controller",
    "interface",
    "serial",
    "console",
    "channel",
    "input",
    "tpm",
    "graphics",
    "sound",
    "audio",
    "video",
    "redirdev",
    "watchdog",
    "memballoon",
    "rng",
];

pub(crate) fn format_alias(w: &mut XmlWriter, alias: Option<String>) {
    if let Some(a) = alias {
        w.empty("alias", &[("name", a)]);
    }
}

/// Parses `<devices>`, adds what the definition implies and checks the
/// rules that span devices. Addresses are assigned by the caller.
pub(crate) fn parse_devices(
    el: &XmlElement,
    family: MachineFamily,
) -> Result<Devices, DomainXmlError> {
    el.check_attrs("devices", &[])?;
    el.check_children("devices", DEVICE_ELEMENTS)?;
    let mut d = Devices::default();
    let mut console_serials = Vec::new();
    for c in el.elements() {
        parse_one(&mut d, c, family, &mut console_serials)?;
    }
    defaults::link_consoles(&mut d, console_serials)?;
    defaults::add_implicit(&mut d, family);
    validate::validate(&d, family)?;
    Ok(d)
}

fn parse_one(
    d: &mut Devices,
    c: &XmlElement,
    family: MachineFamily,
    console_serials: &mut Vec<SerialDef>,
) -> Result<(), DomainXmlError> {
    match c.name.as_str() {
        "emulator" => parse_emulator(d, c)?,
        "disk" => d.disks.push(disk::parse_disk(c, family)?),
        "controller" => {
            let next = |t: ControllerType, companion: bool| {
                let used = d.controllers.iter().filter(|x| x.ctype() == t);
                let last = used.map(|x| x.index).max();
                match (last, companion) {
                    (Some(i), true) => i,
                    (Some(i), false) => i + 1,
                    (None, _) => 0,
                }
            };
            let ctrl = controller::parse_controller(c, family, next)?;
            d.controllers.push(ctrl);
        }
        "interface" => {
            let mut n = net::parse_interface(c)?;
            // An alias number that is the NIC's position says nothing more.
            if n.alias_index == u32::try_from(d.interfaces.len()).ok() {
                n.alias_index = None;
            }
            d.interfaces.push(n);
        }
        "serial" => {
            let next = d.serials.iter().map(|s| s.port + 1).max().unwrap_or(0);
            d.serials.push(chardev::parse_serial(c, next)?);
        }
        "console" => {
            let (con, serial) = chardev::parse_console(c)?;
            d.consoles.push(con);
            console_serials.push(serial);
        }
        "channel" => d.channels.push(chardev::parse_channel(c)?),
        "input" => {
            let mut x = input::parse_input(c)?;
            if x.alias_index == u32::try_from(d.inputs.len()).ok() {
                x.alias_index = None;
            }
            d.inputs.push(x);
        }
        "tpm" => d.tpms.push(tpm::parse_tpm(c)?),
        "graphics" => d.graphics.push(graphics::parse_graphics(c)?),
        "sound" => d.sounds.push(sound::parse_sound(c)?),
        "audio" => d.audios.push(sound::parse_audio(c)?),
        "video" => d.video.push(video::parse_video(c)?),
        "redirdev" => d.redirdevs.push(redirdev::parse_redirdev(c)?),
        "watchdog" => parse_watchdog(d, c)?,
        "memballoon" => {
            if d.memballoon.is_some() {
                return Err(DomainXmlError::structure("more than one <memballoon>"));
            }
            d.memballoon = Some(misc::parse_memballoon(c)?);
        }
        "rng" => {
            let mut x = rng::parse_rng(c)?;
            if x.alias_index == u32::try_from(d.rngs.len()).ok() {
                x.alias_index = None;
            }
            d.rngs.push(x);
        }
        other => return Err(DomainXmlError::unknown_element(format!("devices/{other}"))),
    }
    Ok(())
}

fn parse_emulator(d: &mut Devices, c: &XmlElement) -> Result<(), DomainXmlError> {
    c.check_attrs("devices/emulator", &[])?;
    c.check_children("devices/emulator", &[])?;
    if d.emulator.is_some() {
        return Err(DomainXmlError::structure("more than one <emulator>"));
    }
    d.emulator = Some(parse_abs_path("<emulator>", c.text().trim())?);
    Ok(())
}

fn parse_watchdog(d: &mut Devices, c: &XmlElement) -> Result<(), DomainXmlError> {
    if d.watchdog.is_some() {
        return Err(DomainXmlError::unsupported_because(
            "watchdog count",
            "2",
            "at most one watchdog is supported",
        ));
    }
    d.watchdog = Some(misc::parse_watchdog(c)?);
    Ok(())
}

/// The number of the live XML's `<alias name='PREFIXN'/>` of `el`.
pub(crate) fn alias_number_of(el: &XmlElement, prefix: &str) -> Option<u32> {
    el.child("alias")
        .and_then(|a| a.attr("name"))
        .and_then(|n| n.strip_prefix(prefix))
        .and_then(|n| n.parse::<u32>().ok())
}

/// What formatting needs besides the devices.
pub(crate) struct FormatCtx<'a> {
    pub family: MachineFamily,
    pub live: Option<&'a LiveInfo>,
    pub secure: bool,
}

impl FormatCtx<'_> {
    fn alias(&self, a: impl FnOnce() -> String) -> Option<String> {
        self.live.map(|_| a())
    }
}

/// Writes `<devices>` in libvirt's order.
pub(crate) fn format_devices(w: &mut XmlWriter, d: &Devices, cx: &FormatCtx<'_>) {
    w.open("devices", &[]);
    if let Some(e) = &d.emulator {
        w.text_elem("emulator", &[], &e.to_string_lossy());
    }
    for x in &d.disks {
        disk::format_disk(w, x, cx.alias(|| x.alias()));
    }
    for x in &d.controllers {
        controller::format_controller(w, x, cx.alias(|| x.alias(cx.family)));
    }
    for (i, x) in d.interfaces.iter().enumerate() {
        let tap = cx
            .live
            .and_then(|l| l.taps.get(i))
            .and_then(|t| t.as_deref());
        net::format_interface(w, x, cx.alias(|| format!("net{}", x.alias_number(i))), tap);
    }
    format_chardevs(w, d, cx);
    for (i, x) in d.inputs.iter().enumerate() {
        input::format_input(w, x, cx.alias(|| format!("input{}", x.alias_number(i))));
    }
    for x in &d.tpms {
        tpm::format_tpm(w, x, cx.alias(|| "tpm0".into()));
    }
    format_display(w, d, cx);
    for (i, x) in d.redirdevs.iter().enumerate() {
        redirdev::format_redirdev(w, x, cx.alias(|| format!("redir{i}")));
    }
    if let Some(x) = &d.watchdog {
        misc::format_watchdog(w, x, cx.alias(|| "watchdog0".into()));
    }
    if let Some(x) = &d.memballoon {
        misc::format_memballoon(w, x, cx.alias(|| "balloon0".into()));
    }
    for (i, x) in d.rngs.iter().enumerate() {
        rng::format_rng(w, x, cx.alias(|| format!("rng{}", x.alias_number(i))));
    }
    w.close("devices");
}

fn format_chardevs(w: &mut XmlWriter, d: &Devices, cx: &FormatCtx<'_>) {
    let pty_of = |i: usize| -> Option<&str> {
        cx.live
            .and_then(|l| l.serial_ptys.get(i))
            .and_then(|p| p.as_deref())
    };
    for (i, x) in d.serials.iter().enumerate() {
        chardev::format_serial(w, x, cx.live.map(|_| (format!("serial{i}"), pty_of(i))));
    }
    for c in &d.consoles {
        if let Some(i) = d.serials.iter().position(|s| s.port == c.port) {
            let live = cx.live.map(|_| (format!("serial{i}"), pty_of(i)));
            chardev::format_console(w, c, &d.serials[i], live);
        }
    }
    for (i, x) in d.channels.iter().enumerate() {
        let live = cx.live.map(|l| {
            let path = l.run_dir.as_deref().map(|dir| {
                chardev::channel_socket(dir, i, x)
                    .to_string_lossy()
                    .into_owned()
            });
            (format!("channel{i}"), path)
        });
        chardev::format_channel(w, x, live);
    }
}

fn format_display(w: &mut XmlWriter, d: &Devices, cx: &FormatCtx<'_>) {
    for x in &d.graphics {
        let port = cx.live.and_then(|l| match x {
            GraphicsDef::Vnc(_) => l.vnc_port,
            GraphicsDef::Spice(_) => l.spice_port,
            GraphicsDef::None => None,
        });
        graphics::format_graphics(w, x, port, cx.secure);
    }
    for (i, x) in d.sounds.iter().enumerate() {
        sound::format_sound(w, x, cx.alias(|| format!("sound{i}")));
    }
    for x in &d.audios {
        sound::format_audio(w, x);
    }
    for (i, x) in d.video.iter().enumerate() {
        video::format_video(w, x, cx.alias(|| format!("video{i}")));
    }
}
