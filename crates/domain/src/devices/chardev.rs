//! `<serial>` and `<console>`: character devices on the ISA serial port.
//!
//! A `<console>` with target type 'serial' is not a device of its own in
//! libvirt: it is another view of the serial port with the same number.
//! We model it that way (the console stores only the port), and, like
//! libvirt, a console given without any serial creates that serial.

use super::format_alias;
use crate::error::DomainXmlError;
use crate::parse::{parse_abs_path, parse_on_off, parse_uint, skip_alias};
use crate::xml::{XmlElement, XmlWriter};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixMode {
    /// QEMU listens (server=on,wait=off).
    Bind,
    /// QEMU connects to an existing listener.
    Connect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChrSource {
    /// The pty path exists only while running; it is reported through
    /// LiveInfo, never stored in the definition.
    Pty,
    File {
        path: PathBuf,
        append: Option<bool>,
    },
    Null,
    Unix {
        path: PathBuf,
        mode: UnixMode,
    },
}

impl ChrSource {
    fn type_str(&self) -> &'static str {
        match self {
            ChrSource::Pty => "pty",
            ChrSource::File { .. } => "file",
            ChrSource::Null => "null",
            ChrSource::Unix { .. } => "unix",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialDef {
    pub source: ChrSource,
    /// `<target port>`: the ISA serial index (0 = ttyS0).
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleDef {
    /// Port of the serial this console shows.
    pub port: u32,
}

fn parse_source(el: &XmlElement, path: &str) -> Result<ChrSource, DomainXmlError> {
    let ty = el.req_attr(path, "type")?;
    let src = el.child("source");
    let spath = format!("{path}/source");
    let src_path = |src: Option<&XmlElement>| -> Result<PathBuf, DomainXmlError> {
        let s = src.ok_or_else(|| {
            DomainXmlError::structure(format!("missing <source> of <{path} type='{ty}'>"))
        })?;
        parse_abs_path(&format!("<{spath} path>"), s.req_attr(&spath, "path")?)
    };
    let out = match ty {
        "pty" => {
            if let Some(s) = src {
                // A live XML fed back in carries the old pty path: ignored,
                // as libvirt does, since a new pty is allocated at start.
                s.check_attrs(&spath, &["path"])?;
            }
            ChrSource::Pty
        }
        "null" => {
            if src.is_some() {
                return Err(DomainXmlError::UnknownElement(spath));
            }
            ChrSource::Null
        }
        "file" => {
            if let Some(s) = src {
                s.check_attrs(&spath, &["path", "append"])?;
            }
            let append = match src.and_then(|s| s.attr("append")) {
                Some(v) => Some(parse_on_off(&format!("<{spath} append>"), v)?),
                None => None,
            };
            ChrSource::File {
                path: src_path(src)?,
                append,
            }
        }
        "unix" => {
            if let Some(s) = src {
                s.check_attrs(&spath, &["path", "mode"])?;
            }
            let mode = match src.and_then(|s| s.attr("mode")) {
                Some("bind") => UnixMode::Bind,
                Some("connect") | None => UnixMode::Connect,
                Some(o) => return Err(DomainXmlError::unsupported(format!("<{spath} mode>"), o)),
            };
            ChrSource::Unix {
                path: src_path(src)?,
                mode,
            }
        }
        other => return Err(DomainXmlError::unsupported(format!("{path} type"), other)),
    };
    if let Some(s) = src {
        s.check_children(&spath, &[])?;
    }
    Ok(out)
}

/// `<target>` of a serial: only the ISA serial port exists here.
fn parse_serial_target(el: &XmlElement) -> Result<Option<u32>, DomainXmlError> {
    let Some(t) = el.child("target") else {
        return Ok(None);
    };
    t.check_attrs("serial/target", &["type", "port"])?;
    t.check_children("serial/target", &["model"])?;
    if let Some(ty) = t.attr("type")
        && ty != "isa-serial"
    {
        return Err(DomainXmlError::unsupported("serial target type", ty));
    }
    if let Some(m) = t.child("model") {
        m.check_attrs("serial/target/model", &["name"])?;
        m.check_children("serial/target/model", &[])?;
        let name = m.req_attr("serial/target/model", "name")?;
        if name != "isa-serial" {
            return Err(DomainXmlError::unsupported("serial target model", name));
        }
    }
    t.attr("port")
        .map(|p| parse_uint("<serial/target port>", p))
        .transpose()
}

pub(crate) fn parse_serial(el: &XmlElement, next_port: u32) -> Result<SerialDef, DomainXmlError> {
    el.check_attrs("serial", &["type"])?;
    el.check_children("serial", &["source", "target", "alias"])?;
    skip_alias(el, "serial")?;
    let source = parse_source(el, "serial")?;
    let port = parse_serial_target(el)?.unwrap_or(next_port);
    if port > 3 {
        return Err(DomainXmlError::invalid(
            "<serial/target port>",
            port.to_string(),
            "an x86 guest has ISA serial ports 0..3",
        ));
    }
    Ok(SerialDef { source, port })
}

/// Returns the console and, when given, the source it names (used only to
/// create a serial when none exists).
pub(crate) fn parse_console(el: &XmlElement) -> Result<(ConsoleDef, ChrSource), DomainXmlError> {
    el.check_attrs("console", &["type", "tty"])?;
    el.check_children("console", &["source", "target", "alias"])?;
    skip_alias(el, "console")?;
    let source = parse_source(el, "console")?;
    let mut port = 0;
    if let Some(t) = el.child("target") {
        t.check_attrs("console/target", &["type", "port"])?;
        t.check_children("console/target", &[])?;
        if let Some(ty) = t.attr("type")
            && ty != "serial"
        {
            return Err(DomainXmlError::unsupported_because(
                "console target type",
                ty,
                "only 'serial' consoles are supported",
            ));
        }
        if let Some(p) = t.attr("port") {
            port = parse_uint("<console/target port>", p)?;
        }
    }
    Ok((ConsoleDef { port }, source))
}

fn format_source(w: &mut XmlWriter, s: &ChrSource, pty: Option<&str>) {
    match s {
        ChrSource::Pty => {
            if let Some(p) = pty {
                w.empty("source", &[("path", p.to_string())]);
            }
        }
        ChrSource::Null => {}
        ChrSource::File { path, append } => {
            let mut a = vec![("path", path.to_string_lossy().into_owned())];
            if let Some(ap) = append {
                a.push(("append", crate::format::on_off(*ap)));
            }
            w.empty("source", &a);
        }
        ChrSource::Unix { path, mode } => {
            let m = match mode {
                UnixMode::Bind => "bind",
                UnixMode::Connect => "connect",
            };
            w.empty(
                "source",
                &[
                    ("mode", m.to_string()),
                    ("path", path.to_string_lossy().into_owned()),
                ],
            );
        }
    }
}

pub(crate) fn format_serial(
    w: &mut XmlWriter,
    s: &SerialDef,
    live: Option<(String, Option<&str>)>,
) {
    w.open("serial", &[("type", s.source.type_str().into())]);
    format_source(w, &s.source, live.as_ref().and_then(|l| l.1));
    w.open(
        "target",
        &[("type", "isa-serial".into()), ("port", s.port.to_string())],
    );
    w.empty("model", &[("name", "isa-serial".into())]);
    w.close("target");
    format_alias(w, live.map(|l| l.0));
    w.close("serial");
}

pub(crate) fn format_console(
    w: &mut XmlWriter,
    c: &ConsoleDef,
    serial: &SerialDef,
    live: Option<(String, Option<&str>)>,
) {
    let mut attrs = vec![("type", serial.source.type_str().to_string())];
    let pty = live.as_ref().and_then(|l| l.1);
    if let (ChrSource::Pty, Some(p)) = (&serial.source, pty) {
        attrs.push(("tty", p.to_string()));
    }
    w.open("console", &attrs);
    format_source(w, &serial.source, pty);
    w.empty(
        "target",
        &[("type", "serial".into()), ("port", c.port.to_string())],
    );
    format_alias(w, live.map(|l| l.0));
    w.close("console");
}
