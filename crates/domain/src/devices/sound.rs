//! `<sound>` (an emulated sound card) and `<audio>` (the host backend it
//! plays through).

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{named, named_enum, parse_uint, skip_alias, uint_attr};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<sound model>`.
    pub enum SoundModel {
        Ac97 = "ac97",
        Ich6 = "ich6",
        Ich9 = "ich9",
    }
}

impl SoundModel {
    /// The card's QEMU device.
    pub fn qemu_device(self) -> &'static str {
        match self {
            SoundModel::Ac97 => "AC97",
            SoundModel::Ich6 => "intel-hda",
            SoundModel::Ich9 => "ich9-intel-hda",
        }
    }

    /// HDA cards need a codec device.
    pub fn is_hda(self) -> bool {
        matches!(self, SoundModel::Ich6 | SoundModel::Ich9)
    }
}

named_enum! {
    /// `<codec type>` of an HDA card.
    pub enum CodecType {
        Duplex = "duplex",
        Micro = "micro",
        Output = "output",
    }
}

impl CodecType {
    pub fn qemu_device(self) -> &'static str {
        match self {
            CodecType::Duplex => "hda-duplex",
            CodecType::Micro => "hda-micro",
            CodecType::Output => "hda-output",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundDef {
    pub model: SoundModel,
    /// HDA codecs; none means one duplex codec.
    pub codecs: Vec<CodecType>,
    /// `<audio id>`: the backend it plays through (the first when absent).
    pub audio_id: Option<u32>,
    pub address: Option<Address>,
}

named_enum! {
    /// `<audio type>`.
    pub enum AudioType {
        None = "none",
        Spice = "spice",
    }
}

/// `<audio>`: libvirt adds one whenever there is sound; `none` is silent,
/// `spice` plays to the SPICE client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDef {
    pub id: u32,
    pub atype: AudioType,
}

const P: &str = "sound";

pub(crate) fn parse_sound(el: &XmlElement) -> Result<SoundDef, DomainXmlError> {
    el.check_attrs(P, &["model"])?;
    el.check_children(P, &["codec", "audio", "alias", "address"])?;
    skip_alias(el, P)?;
    let model = named(
        "sound model",
        el.req_attr(P, "model")?,
        SoundModel::from_name,
    )?;
    let mut codecs = Vec::new();
    for c in el.children_named("codec") {
        c.check_attrs("sound/codec", &["type"])?;
        c.check_children("sound/codec", &[])?;
        codecs.push(named(
            "sound codec type",
            c.req_attr("sound/codec", "type")?,
            CodecType::from_name,
        )?);
    }
    if !codecs.is_empty() && !model.is_hda() {
        return Err(DomainXmlError::unsupported_because(
            "<sound/codec>",
            model.as_str(),
            "only ich6 and ich9 cards have codecs",
        ));
    }
    let audio_id = match el.child("audio") {
        Some(a) => {
            a.check_attrs("sound/audio", &["id"])?;
            a.check_children("sound/audio", &[])?;
            uint_attr(a, "sound/audio", "id")?
        }
        None => None,
    };
    Ok(SoundDef {
        model,
        codecs,
        audio_id,
        address: parse_device_address(el, P, &["pci"])?,
    })
}

pub(crate) fn format_sound(w: &mut XmlWriter, s: &SoundDef, alias: Option<String>) {
    w.open("sound", &[("model", s.model.as_str().into())]);
    for c in &s.codecs {
        w.empty("codec", &[("type", c.as_str().into())]);
    }
    if let Some(id) = s.audio_id {
        w.empty("audio", &[("id", id.to_string())]);
    }
    format_alias(w, alias);
    if let Some(a) = &s.address {
        format_address(w, a);
    }
    w.close("sound");
}

pub(crate) fn parse_audio(el: &XmlElement) -> Result<AudioDef, DomainXmlError> {
    el.check_attrs("audio", &["id", "type"])?;
    el.check_children("audio", &[])?;
    let id = parse_uint("<audio id>", el.req_attr("audio", "id")?)?;
    if id == 0 {
        return Err(DomainXmlError::invalid("<audio id>", "0", "ids start at 1"));
    }
    let atype = named(
        "audio type",
        el.req_attr("audio", "type")?,
        AudioType::from_name,
    )?;
    Ok(AudioDef { id, atype })
}

pub(crate) fn format_audio(w: &mut XmlWriter, a: &AudioDef) {
    w.empty(
        "audio",
        &[("id", a.id.to_string()), ("type", a.atype.as_str().into())],
    );
}
