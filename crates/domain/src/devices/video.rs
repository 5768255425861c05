//! `<video>`: the guest's display adapter.

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, named, named_enum, skip_alias, uint_attr, yes_no, yes_no_attr,
};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<video><model type>`.
    pub enum VideoModel {
        Vga = "vga",
        Cirrus = "cirrus",
        Qxl = "qxl",
        Virtio = "virtio",
        Bochs = "bochs",
        Ramfb = "ramfb",
        None = "none",
    }
}

impl VideoModel {
    /// The QEMU device as the primary adapter, and as a secondary one
    /// (`None` where QEMU has no secondary variant).
    pub fn qemu_devices(self) -> (Option<&'static str>, Option<&'static str>) {
        match self {
            VideoModel::Vga => (Some("VGA"), None),
            VideoModel::Cirrus => (Some("cirrus-vga"), None),
            VideoModel::Qxl => (Some("qxl-vga"), Some("qxl")),
            VideoModel::Virtio => (Some("virtio-vga"), Some("virtio-gpu-pci")),
            VideoModel::Bochs => (Some("bochs-display"), Some("bochs-display")),
            VideoModel::Ramfb => (Some("ramfb"), None),
            VideoModel::None => (None, None),
        }
    }

    /// Whether the adapter sits on PCI (everything but ramfb and none).
    pub fn is_pci(self) -> bool {
        !matches!(self, VideoModel::Ramfb | VideoModel::None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoDef {
    pub model: VideoModel,
    /// KiB, as libvirt's attributes.
    pub vram: Option<u32>,
    pub ram: Option<u32>,
    pub vgamem: Option<u32>,
    pub heads: Option<u32>,
    pub primary: Option<bool>,
    pub address: Option<Address>,
}

impl VideoDef {
    /// libvirt's defaults for the model, filled in at define time so
    /// dumpxml shows what the guest gets.
    pub(crate) fn fill_defaults(&mut self, primary: bool) {
        let (vram, ram, vgamem) = match self.model {
            VideoModel::Qxl => (Some(65536), Some(65536), Some(16384)),
            VideoModel::Vga | VideoModel::Cirrus | VideoModel::Bochs => (Some(16384), None, None),
            _ => (None, None, None),
        };
        if self.model == VideoModel::None {
            return;
        }
        self.vram = self.vram.or(vram);
        self.ram = self.ram.or(ram);
        self.vgamem = self.vgamem.or(vgamem);
        self.heads = self.heads.or(Some(1));
        if primary {
            self.primary = Some(true);
        }
    }
}

const P: &str = "video";

pub(crate) fn parse_video(el: &XmlElement) -> Result<VideoDef, DomainXmlError> {
    el.check_attrs(P, &[])?;
    el.check_children(P, &["model", "alias", "address"])?;
    check_singletons(el, P, &["model", "alias", "address"])?;
    skip_alias(el, P)?;
    let m = el
        .child("model")
        .ok_or_else(|| DomainXmlError::structure("missing <model> of <video>"))?;
    const M: &str = "video/model";
    m.check_attrs(M, &["type", "heads", "primary", "vram", "ram", "vgamem"])?;
    m.check_children(M, &["acceleration"])?;
    if let Some(a) = m.child("acceleration") {
        a.check_attrs("video/model/acceleration", &["accel3d", "accel2d"])?;
        a.check_children("video/model/acceleration", &[])?;
        let on = |k| yes_no_attr(a, "video/model/acceleration", k);
        if on("accel3d")? == Some(true) || on("accel2d")? == Some(true) {
            return Err(DomainXmlError::unsupported_because(
                "video acceleration",
                "yes",
                "accelerated (OpenGL) video is not supported",
            ));
        }
    }
    let model = named("video model", m.req_attr(M, "type")?, VideoModel::from_name)?;
    let v = VideoDef {
        model,
        vram: uint_attr(m, M, "vram")?,
        ram: uint_attr(m, M, "ram")?,
        vgamem: uint_attr(m, M, "vgamem")?,
        heads: uint_attr(m, M, "heads")?,
        primary: yes_no_attr(m, M, "primary")?,
        address: parse_device_address(el, P, &["pci"])?,
    };
    check_video(&v)?;
    Ok(v)
}

fn check_video(v: &VideoDef) -> Result<(), DomainXmlError> {
    if !v.model.is_pci() && v.address.is_some() {
        return Err(DomainXmlError::structure(format!(
            "video model '{}' takes no address",
            v.model.as_str()
        )));
    }
    if v.model == VideoModel::None && (v.heads.is_some() || v.vram.is_some()) {
        return Err(DomainXmlError::structure(
            "video model 'none' takes no heads or memory sizes",
        ));
    }
    if v.heads.is_some_and(|h| h == 0 || h > 16) {
        return Err(DomainXmlError::invalid(
            "<video/model heads>",
            v.heads.unwrap_or(0).to_string(),
            "must be 1..16",
        ));
    }
    for (k, val) in [("vram", v.vram), ("ram", v.ram), ("vgamem", v.vgamem)] {
        if val.is_some_and(|n| n > 1 << 20) {
            return Err(DomainXmlError::invalid(
                format!("<video/model {k}>"),
                val.unwrap_or(0).to_string(),
                "must be at most 1 GiB (1048576 KiB)",
            ));
        }
    }
    Ok(())
}

pub(crate) fn format_video(w: &mut XmlWriter, v: &VideoDef, alias: Option<String>) {
    w.open("video", &[]);
    let mut attrs = vec![("type", v.model.as_str().to_string())];
    for (k, val) in [
        ("ram", v.ram),
        ("vram", v.vram),
        ("vgamem", v.vgamem),
        ("heads", v.heads),
    ] {
        if let Some(n) = val {
            attrs.push((k, n.to_string()));
        }
    }
    if let Some(p) = v.primary {
        attrs.push(("primary", yes_no(p)));
    }
    w.empty("model", &attrs);
    if v.model != VideoModel::None {
        format_alias(w, alias);
    }
    if let Some(a) = &v.address {
        format_address(w, a);
    }
    w.close("video");
}
