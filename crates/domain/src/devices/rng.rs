//! `<rng>`: a virtio entropy device fed from a host source.

use std::path::PathBuf;

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{check_singletons, named, named_enum, parse_abs_path, skip_alias, uint_attr};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<rng model>`.
    pub enum RngModel {
        Virtio = "virtio",
    }
}

named_enum! {
    /// `<backend model>` of an `<rng>`.
    pub enum RngBackendModel {
        Random = "random",
        Egd = "egd",
    }
}

/// The host devices a `random` backend may read: what libvirt allows.
pub const RNG_SOURCES: &[&str] = &["/dev/random", "/dev/urandom", "/dev/hwrng"];

/// Where an EGD backend connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgdSource {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RngBackend {
    /// A host device (`/dev/urandom`).
    Random(PathBuf),
    /// An EGD daemon.
    Egd(EgdSource),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngDef {
    pub model: RngModel,
    pub backend: RngBackend,
    /// `<rate bytes period>`: at most `bytes` per `period` ms.
    pub rate: Option<(u32, Option<u32>)>,
    pub address: Option<Address>,
    /// The number of its alias (`rng1`) when not its position: a device
    /// plugged into a running guest keeps its name when others go.
    pub alias_index: Option<u32>,
}

impl RngDef {
    /// The number of its alias, at position `i`.
    pub fn alias_number(&self, i: usize) -> u32 {
        self.alias_index
            .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX))
    }
}

const P: &str = "rng";

pub(crate) fn parse_rng(el: &XmlElement) -> Result<RngDef, DomainXmlError> {
    el.check_attrs(P, &["model"])?;
    el.check_children(P, &["backend", "rate", "alias", "address"])?;
    check_singletons(el, P, &["backend", "rate", "alias", "address"])?;
    skip_alias(el, P)?;
    let model = named("rng model", el.req_attr(P, "model")?, RngModel::from_name)?;
    let b = el
        .child("backend")
        .ok_or_else(|| DomainXmlError::structure("missing <backend> of <rng>"))?;
    Ok(RngDef {
        model,
        backend: parse_backend(b)?,
        rate: parse_rate(el)?,
        address: parse_device_address(el, P, &["pci"])?,
        alias_index: super::alias_number_of(el, "rng"),
    })
}

fn parse_backend(b: &XmlElement) -> Result<RngBackend, DomainXmlError> {
    const B: &str = "rng/backend";
    let model = named(
        "rng backend model",
        b.req_attr(B, "model")?,
        RngBackendModel::from_name,
    )?;
    match model {
        RngBackendModel::Random => {
            b.check_attrs(B, &["model"])?;
            b.check_children(B, &[])?;
            let text = b.text();
            let path = match text.trim() {
                "" => "/dev/urandom",
                p => p,
            };
            if !RNG_SOURCES.contains(&path) {
                return Err(DomainXmlError::unsupported_because(
                    "rng backend source",
                    path,
                    format!("a random backend reads one of {}", RNG_SOURCES.join(", ")),
                ));
            }
            Ok(RngBackend::Random(PathBuf::from(path)))
        }
        RngBackendModel::Egd => parse_egd(b).map(RngBackend::Egd),
    }
}

fn parse_egd(b: &XmlElement) -> Result<EgdSource, DomainXmlError> {
    const B: &str = "rng/backend";
    b.check_attrs(B, &["model", "type"])?;
    b.check_children(B, &["source", "protocol"])?;
    check_singletons(b, B, &["source", "protocol"])?;
    if let Some(p) = b.child("protocol") {
        p.check_attrs("rng/backend/protocol", &["type"])?;
        p.check_children("rng/backend/protocol", &[])?;
        let t = p.req_attr("rng/backend/protocol", "type")?;
        if t != "raw" {
            return Err(DomainXmlError::unsupported("rng backend protocol", t));
        }
    }
    let s = b
        .child("source")
        .ok_or_else(|| DomainXmlError::structure("missing <source> of an egd <backend>"))?;
    const S: &str = "rng/backend/source";
    s.check_children(S, &[])?;
    if let Some(m) = s.attr("mode")
        && m != "connect"
    {
        return Err(DomainXmlError::unsupported_because(
            "<rng/backend/source mode>",
            m,
            "QEMU connects to the EGD daemon",
        ));
    }
    match b.req_attr(B, "type")? {
        "unix" => {
            s.check_attrs(S, &["mode", "path"])?;
            Ok(EgdSource::Unix(parse_abs_path(
                "<rng/backend/source path>",
                s.req_attr(S, "path")?,
            )?))
        }
        "tcp" => {
            s.check_attrs(S, &["mode", "host", "service"])?;
            let host = s.req_attr(S, "host")?;
            if host.is_empty() || host.contains(',') || host.contains(char::is_whitespace) {
                return Err(DomainXmlError::invalid(
                    "<rng/backend/source host>",
                    host,
                    "not a host name",
                ));
            }
            let port = s
                .req_attr(S, "service")?
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    DomainXmlError::invalid(
                        "<rng/backend/source service>",
                        s.attr("service").unwrap_or(""),
                        "expected a TCP port",
                    )
                })?;
            Ok(EgdSource::Tcp {
                host: host.to_string(),
                port,
            })
        }
        o => Err(DomainXmlError::unsupported("egd backend type", o)),
    }
}

fn parse_rate(el: &XmlElement) -> Result<Option<(u32, Option<u32>)>, DomainXmlError> {
    let Some(r) = el.child("rate") else {
        return Ok(None);
    };
    r.check_attrs("rng/rate", &["bytes", "period"])?;
    r.check_children("rng/rate", &[])?;
    let bytes = uint_attr(r, "rng/rate", "bytes")?
        .ok_or_else(|| DomainXmlError::structure("missing attribute 'bytes' of <rng/rate>"))?;
    let period = uint_attr(r, "rng/rate", "period")?;
    if bytes == 0 || period == Some(0) {
        return Err(DomainXmlError::invalid(
            "<rng/rate>",
            "0",
            "bytes and period must be positive",
        ));
    }
    Ok(Some((bytes, period)))
}

pub(crate) fn format_rng(w: &mut XmlWriter, r: &RngDef, alias: Option<String>) {
    w.open("rng", &[("model", r.model.as_str().into())]);
    if let Some((bytes, period)) = r.rate {
        let mut a = vec![("bytes", bytes.to_string())];
        if let Some(p) = period {
            a.push(("period", p.to_string()));
        }
        w.empty("rate", &a);
    }
    match &r.backend {
        RngBackend::Random(p) => w.text_elem(
            "backend",
            &[("model", "random".into())],
            &p.to_string_lossy(),
        ),
        RngBackend::Egd(src) => {
            let (ty, attrs) = match src {
                EgdSource::Unix(p) => (
                    "unix",
                    vec![
                        ("mode", "connect".to_string()),
                        ("path", p.to_string_lossy().into_owned()),
                    ],
                ),
                EgdSource::Tcp { host, port } => (
                    "tcp",
                    vec![
                        ("mode", "connect".to_string()),
                        ("host", host.clone()),
                        ("service", port.to_string()),
                    ],
                ),
            };
            w.open("backend", &[("model", "egd".into()), ("type", ty.into())]);
            w.empty("source", &attrs);
            w.empty("protocol", &[("type", "raw".into())]);
            w.close("backend");
        }
    }
    format_alias(w, alias);
    if let Some(a) = &r.address {
        format_address(w, a);
    }
    w.close("rng");
}
