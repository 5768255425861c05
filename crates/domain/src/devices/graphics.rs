//! `<graphics>`, `<video>`, `<audio>` and `<input>`: what a console user sees.
//!
//! VNC is only offered on loopback: ferrovirt has no VNC authentication or
//! TLS support, so a VNC server on a routable address would hand the guest
//! console to anyone on the network.

use super::address::{Address, format_address, parse_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::parse::{parse_uint, parse_yes_no, skip_alias};
use crate::xml::{XmlElement, XmlWriter};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphicsDef {
    Vnc {
        /// `None`: autoport (QEMU picks a free display, see argv.rs).
        port: Option<u16>,
        /// A loopback address.
        listen: IpAddr,
    },
    /// `<graphics type='none'/>`: no display backend.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoModel {
    None,
    Vga,
    Virtio,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoDef {
    pub model: VideoModel,
    pub heads: Option<u32>,
    pub primary: Option<bool>,
    pub address: Option<Address>,
}

/// `<audio type='none'>`: libvirt adds one whenever there is a display;
/// it maps to a silent `-audiodev none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDef {
    pub id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    Mouse,
    Keyboard,
}

/// PS/2 mouse/keyboard: part of every x86 machine (i8042), so these need no
/// QEMU argument; they are accepted because libvirt lists them in every
/// dumpxml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDef {
    pub kind: InputType,
}

fn parse_listen_addr(what: &str, v: &str) -> Result<IpAddr, DomainXmlError> {
    let ip: IpAddr = if v == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        v.parse()
            .map_err(|_| DomainXmlError::invalid(what, v, "expected an IP address"))?
    };
    if !ip.is_loopback() {
        return Err(DomainXmlError::unsupported_because(
            what,
            v,
            "VNC may only listen on a loopback address (no authentication is supported)",
        ));
    }
    Ok(ip)
}

pub(crate) fn parse_graphics(el: &XmlElement) -> Result<GraphicsDef, DomainXmlError> {
    const P: &str = "graphics";
    match el.req_attr(P, "type")? {
        "none" => {
            el.check_attrs(P, &["type"])?;
            el.check_children(P, &[])?;
            Ok(GraphicsDef::None)
        }
        "vnc" => {
            el.check_attrs(P, &["type", "port", "autoport", "listen"])?;
            el.check_children(P, &["listen"])?;
            let mut port = match el.attr("port") {
                None | Some("-1") | Some("0") => None,
                Some(p) => {
                    let n = parse_uint("<graphics port>", p)?;
                    if !(5900..=65535).contains(&n) {
                        return Err(DomainXmlError::invalid(
                            "<graphics port>",
                            p,
                            "expected 5900..65535 or -1",
                        ));
                    }
                    u16::try_from(n).ok()
                }
            };
            if let Some(a) = el.attr("autoport")
                && parse_yes_no("<graphics autoport>", a)?
            {
                port = None;
            }
            let mut listen = el
                .attr("listen")
                .map(|l| parse_listen_addr("<graphics listen>", l))
                .transpose()?;
            for l in el.elements() {
                l.check_attrs("graphics/listen", &["type", "address"])?;
                l.check_children("graphics/listen", &[])?;
                match l.req_attr("graphics/listen", "type")? {
                    "address" => {}
                    o => return Err(DomainXmlError::unsupported("graphics listen type", o)),
                }
                if let Some(a) = l.attr("address") {
                    let ip = parse_listen_addr("<graphics/listen address>", a)?;
                    if listen.is_some_and(|x| x != ip) {
                        return Err(DomainXmlError::structure(
                            "graphics 'listen' attribute does not match the <listen> address",
                        ));
                    }
                    listen = Some(ip);
                }
            }
            Ok(GraphicsDef::Vnc {
                port,
                listen: listen.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            })
        }
        other => Err(DomainXmlError::unsupported("graphics type", other)),
    }
}

pub(crate) fn format_graphics(w: &mut XmlWriter, g: &GraphicsDef, live_port: Option<u16>) {
    match g {
        GraphicsDef::None => w.empty("graphics", &[("type", "none".into())]),
        GraphicsDef::Vnc { port, listen } => {
            let shown = match (port, live_port) {
                (Some(p), _) => p.to_string(),
                (None, Some(p)) => p.to_string(),
                (None, None) => "-1".to_string(),
            };
            w.open(
                "graphics",
                &[
                    ("type", "vnc".into()),
                    ("port", shown),
                    ("autoport", if port.is_none() { "yes" } else { "no" }.into()),
                    ("listen", listen.to_string()),
                ],
            );
            w.empty(
                "listen",
                &[("type", "address".into()), ("address", listen.to_string())],
            );
            w.close("graphics");
        }
    }
}

pub(crate) fn parse_video(el: &XmlElement) -> Result<VideoDef, DomainXmlError> {
    el.check_attrs("video", &[])?;
    el.check_children("video", &["model", "alias", "address"])?;
    skip_alias(el, "video")?;
    let m = el
        .child("model")
        .ok_or_else(|| DomainXmlError::structure("missing <model> of <video>"))?;
    m.check_attrs("video/model", &["type", "heads", "primary"])?;
    m.check_children("video/model", &[])?;
    let model = match m.req_attr("video/model", "type")? {
        "none" => VideoModel::None,
        "vga" => VideoModel::Vga,
        "virtio" => VideoModel::Virtio,
        o => return Err(DomainXmlError::unsupported("video model", o)),
    };
    let heads = m
        .attr("heads")
        .map(|h| parse_uint("<video/model heads>", h))
        .transpose()?;
    let primary = m
        .attr("primary")
        .map(|p| parse_yes_no("<video/model primary>", p))
        .transpose()?;
    let address = el
        .child("address")
        .map(|a| parse_address(a, "video"))
        .transpose()?;
    if model == VideoModel::None && (heads.is_some() || address.is_some()) {
        return Err(DomainXmlError::structure(
            "video model 'none' takes no heads or address",
        ));
    }
    if let Some(Address::Drive(_)) = address {
        return Err(DomainXmlError::unsupported("video address type", "drive"));
    }
    Ok(VideoDef {
        model,
        heads,
        primary,
        address,
    })
}

pub(crate) fn format_video(w: &mut XmlWriter, v: &VideoDef, alias: Option<String>) {
    w.open("video", &[]);
    let mut attrs = vec![(
        "type",
        match v.model {
            VideoModel::None => "none",
            VideoModel::Vga => "vga",
            VideoModel::Virtio => "virtio",
        }
        .to_string(),
    )];
    if let Some(h) = v.heads {
        attrs.push(("heads", h.to_string()));
    }
    if let Some(p) = v.primary {
        attrs.push(("primary", crate::format::yes_no(p)));
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

pub(crate) fn parse_audio(el: &XmlElement) -> Result<AudioDef, DomainXmlError> {
    el.check_attrs("audio", &["id", "type"])?;
    el.check_children("audio", &[])?;
    let id = parse_uint("<audio id>", el.req_attr("audio", "id")?)?;
    if id == 0 {
        return Err(DomainXmlError::invalid("<audio id>", "0", "ids start at 1"));
    }
    match el.req_attr("audio", "type")? {
        "none" => Ok(AudioDef { id }),
        o => Err(DomainXmlError::unsupported("audio type", o)),
    }
}

pub(crate) fn format_audio(w: &mut XmlWriter, a: &AudioDef) {
    w.empty(
        "audio",
        &[("id", a.id.to_string()), ("type", "none".into())],
    );
}

pub(crate) fn parse_input(el: &XmlElement) -> Result<InputDef, DomainXmlError> {
    el.check_attrs("input", &["type", "bus"])?;
    el.check_children("input", &["alias"])?;
    skip_alias(el, "input")?;
    let kind = match el.req_attr("input", "type")? {
        "mouse" => InputType::Mouse,
        "keyboard" => InputType::Keyboard,
        o => return Err(DomainXmlError::unsupported("input type", o)),
    };
    match el.attr("bus").unwrap_or("ps2") {
        "ps2" => Ok(InputDef { kind }),
        o => Err(DomainXmlError::unsupported("input bus", o)),
    }
}

pub(crate) fn format_input(w: &mut XmlWriter, i: &InputDef, alias: Option<String>) {
    let attrs = [
        (
            "type",
            match i.kind {
                InputType::Mouse => "mouse",
                InputType::Keyboard => "keyboard",
            }
            .to_string(),
        ),
        ("bus", "ps2".to_string()),
    ];
    match alias {
        None => w.empty("input", &attrs),
        Some(a) => {
            w.open("input", &attrs);
            format_alias(w, Some(a));
            w.close("input");
        }
    }
}
