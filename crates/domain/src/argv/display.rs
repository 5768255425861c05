//! Audio backends, the display server (VNC, SPICE or none), video
//! adapters and sound cards.

use std::net::IpAddr;

use super::{Args, Ctx};
use crate::devices::graphics::{DisplayDef, GraphicsDef};
use crate::devices::sound::{AudioType, CodecType};
use crate::devices::video::{VideoDef, VideoModel};
use crate::error::DomainXmlError;

pub(super) fn audio(cx: &Ctx<'_>, a: &mut Args) {
    for au in &cx.def.devices.audios {
        let driver = match au.atype {
            AudioType::None => "none",
            AudioType::Spice => "spice",
        };
        a.opt("-audiodev", format!("{driver},id=audio{}", au.id));
    }
}

fn host(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

pub(super) fn graphics(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let g = &cx.def.devices.graphics;
    if g.is_empty() || g.iter().all(|x| matches!(x, GraphicsDef::None)) {
        a.opt("-display", "none");
        return Ok(());
    }
    for x in g {
        match x {
            GraphicsDef::Vnc(d) => vnc(cx, a, d),
            GraphicsDef::Spice(d) => spice(cx, a, d)?,
            GraphicsDef::None => {}
        }
    }
    Ok(())
}

fn vnc(cx: &Ctx<'_>, a: &mut Args, d: &DisplayDef) {
    let h = host(&d.listen);
    let mut v = match d.port {
        Some(p) => format!("{h}:{}", p - 5900),
        // QEMU picks the first free display from 0 up to 100, so no port
        // is reserved (and raced for) by the driver.
        None => format!("{h}:0,to=100"),
    };
    if d.password.is_some() {
        // The password itself is set over QMP (see startup_actions).
        v.push_str(",password=on");
    }
    if let Some(au) = cx.def.devices.audios.first() {
        v.push_str(&format!(",audiodev=audio{}", au.id));
    }
    a.opt("-vnc", v);
    if let Some(k) = &d.keymap {
        a.opt("-k", k.clone());
    }
}

fn spice(cx: &Ctx<'_>, a: &mut Args, d: &DisplayDef) -> Result<(), DomainXmlError> {
    if !cx.caps.commands.is_empty() && !cx.caps.has_command("query-spice") {
        return Err(DomainXmlError::unsupported_because(
            "graphics type",
            "spice",
            "this QEMU binary was built without SPICE",
        ));
    }
    let port = d.port.or(cx.launch.spice_port).ok_or_else(|| {
        DomainXmlError::InvalidArgument("no port was chosen for the SPICE display".into())
    })?;
    let mut s = format!("port={port},addr={}", d.listen);
    if d.password.is_none() {
        s.push_str(",disable-ticketing=on");
    }
    if let Some(c) = &d.image_compression {
        s.push_str(&format!(",image-compression={c}"));
    }
    s.push_str(",seamless-migration=on");
    a.opt("-spice", s);
    Ok(())
}

pub(super) fn video(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    for (i, v) in cx.def.devices.video.iter().enumerate() {
        let (primary, secondary) = v.model.qemu_devices();
        let Some(dev) = (if i == 0 { primary } else { secondary }) else {
            continue;
        };
        cx.require_device(dev, "video model", v.model.as_str())?;
        let mut s = format!("{dev},id=video{i}{}", video_props(v));
        s.push_str(&cx.pci_opts(v.address.as_ref()));
        a.device(s);
    }
    Ok(())
}

fn video_props(v: &VideoDef) -> String {
    let heads = v
        .heads
        .map(|h| format!(",max_outputs={h}"))
        .unwrap_or_default();
    let mib = |kib: Option<u32>| kib.map(|k| k.div_ceil(1024));
    match v.model {
        VideoModel::Qxl => {
            let mut s = heads;
            if let Some(r) = v.ram {
                s.push_str(&format!(",ram_size={}", u64::from(r) * 1024));
            }
            if let Some(vr) = v.vram {
                s.push_str(&format!(",vram_size={}", u64::from(vr) * 1024));
            }
            if let Some(g) = mib(v.vgamem) {
                s.push_str(&format!(",vgamem_mb={g}"));
            }
            s
        }
        VideoModel::Vga => mib(v.vram)
            .map(|m| format!(",vgamem_mb={m}"))
            .unwrap_or_default(),
        VideoModel::Bochs => v
            .vram
            .map(|k| format!(",vgamem={}", u64::from(k) * 1024))
            .unwrap_or_default(),
        VideoModel::Virtio => heads,
        VideoModel::Cirrus | VideoModel::Ramfb | VideoModel::None => String::new(),
    }
}

pub(super) fn sound(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let audios = &cx.def.devices.audios;
    for (i, s) in cx.def.devices.sounds.iter().enumerate() {
        let dev = s.model.qemu_device();
        cx.require_device(dev, "sound model", s.model.as_str())?;
        let audio = s.audio_id.or(audios.first().map(|x| x.id));
        let audiodev = audio
            .map(|id| format!(",audiodev=audio{id}"))
            .unwrap_or_default();
        let pci = cx.pci_opts(s.address.as_ref());
        if !s.model.is_hda() {
            a.device(format!("{dev},id=sound{i}{audiodev}{pci}"));
            continue;
        }
        a.device(format!("{dev},id=sound{i}{pci}"));
        let codecs = if s.codecs.is_empty() {
            vec![CodecType::Duplex]
        } else {
            s.codecs.clone()
        };
        for (c, codec) in codecs.iter().enumerate() {
            a.device(format!(
                "{},id=sound{i}-codec{c},bus=sound{i}.0,cad={c}{audiodev}",
                codec.qemu_device()
            ));
        }
    }
    Ok(())
}
