//! Character devices: `<serial>` (the ISA serial ports), `<console>` (a
//! view of a serial port) and `<channel>` (virtio-serial ports such as the
//! guest agent's).
//!
//! A `<console>` with target type 'serial' is not a device of its own in
//! libvirt: it is another view of the serial port with the same number.
//! We model it that way (the console stores only the port), and, like
//! libvirt, a console given without any serial creates that serial.

use std::path::{Path, PathBuf};

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, on_off, on_off_attr, parse_abs_path, parse_uint, skip_alias,
};
use crate::xml::{XmlElement, XmlWriter};

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
        /// `None` (channels in bind mode only): a socket in the domain's
        /// run directory, named after the channel, chosen at start.
        path: Option<PathBuf>,
        mode: UnixMode,
    },
    /// The SPICE client's channel (vdagent, USB redirection).
    SpiceVmc,
}

impl ChrSource {
    pub fn type_str(&self) -> &'static str {
        match self {
            ChrSource::Pty => "pty",
            ChrSource::File { .. } => "file",
            ChrSource::Null => "null",
            ChrSource::Unix { .. } => "unix",
            ChrSource::SpiceVmc => "spicevmc",
        }
    }
}

/// `<log file append>`: QEMU copies the device's output to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChrLog {
    pub file: PathBuf,
    pub append: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialDef {
    pub source: ChrSource,
    /// `<target port>`: the ISA serial index (0 = ttyS0).
    pub port: u32,
    pub log: Option<ChrLog>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleDef {
    /// Port of the serial this console shows.
    pub port: u32,
}

/// `<channel>` with a virtio target: a named virtio-serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDef {
    pub source: ChrSource,
    /// `<target name>` (`org.qemu.guest_agent.0`, `com.redhat.spice.0`).
    pub name: Option<String>,
    pub log: Option<ChrLog>,
    pub address: Option<Address>,
}

/// The guest agent's channel name.
pub const GUEST_AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";
/// The SPICE agent's channel name.
pub const SPICE_AGENT_CHANNEL: &str = "com.redhat.spice.0";

/// Where a unix channel without a path listens: `dir/NAME` (or
/// `dir/channelN` for an unnamed one).
pub fn channel_socket(dir: &Path, index: usize, ch: &ChannelDef) -> PathBuf {
    match &ch.name {
        Some(n) => dir.join(n),
        None => dir.join(format!("channel{index}")),
    }
}

/// The source types each device accepts.
const SERIAL_SOURCES: &[&str] = &["pty", "file", "null", "unix"];
const CHANNEL_SOURCES: &[&str] = &["pty", "unix", "spicevmc"];

/// The `type`s a serial or console accepts (domain capabilities).
pub fn serial_source_types() -> &'static [&'static str] {
    SERIAL_SOURCES
}

/// The `type`s a channel accepts (domain capabilities).
pub fn channel_source_types() -> &'static [&'static str] {
    CHANNEL_SOURCES
}

fn parse_source(
    el: &XmlElement,
    path: &str,
    allowed: &[&str],
) -> Result<ChrSource, DomainXmlError> {
    let ty = el.req_attr(path, "type")?;
    if !allowed.contains(&ty) {
        return Err(DomainXmlError::unsupported(format!("{path} type"), ty));
    }
    let src = el.child("source");
    let spath = format!("{path}/source");
    if let Some(s) = src {
        s.check_children(&spath, &[])?;
    }
    let req_path = |s: Option<&XmlElement>| -> Result<PathBuf, DomainXmlError> {
        let s = s.ok_or_else(|| {
            DomainXmlError::structure(format!("missing <source> of <{path} type='{ty}'>"))
        })?;
        parse_abs_path(&format!("<{spath} path>"), s.req_attr(&spath, "path")?)
    };
    match ty {
        "pty" => {
            if let Some(s) = src {
                // A live XML fed back in carries the old pty path: ignored,
                // as libvirt does, since a new pty is allocated at start.
                s.check_attrs(&spath, &["path"])?;
            }
            Ok(ChrSource::Pty)
        }
        "null" | "spicevmc" => {
            if src.is_some() {
                return Err(DomainXmlError::unknown_element(spath));
            }
            Ok(if ty == "null" {
                ChrSource::Null
            } else {
                ChrSource::SpiceVmc
            })
        }
        "file" => {
            if let Some(s) = src {
                s.check_attrs(&spath, &["path", "append"])?;
            }
            let append = src.map(|s| on_off_attr(s, &spath, "append")).transpose()?;
            Ok(ChrSource::File {
                path: req_path(src)?,
                append: append.flatten(),
            })
        }
        _ => parse_unix(src, &spath, path, req_path),
    }
}

fn parse_unix(
    src: Option<&XmlElement>,
    spath: &str,
    path: &str,
    req_path: impl Fn(Option<&XmlElement>) -> Result<PathBuf, DomainXmlError>,
) -> Result<ChrSource, DomainXmlError> {
    if let Some(s) = src {
        s.check_attrs(spath, &["path", "mode"])?;
    }
    let mode = match src.and_then(|s| s.attr("mode")) {
        Some("bind") => UnixMode::Bind,
        Some("connect") => UnixMode::Connect,
        None if path == "channel" => UnixMode::Bind,
        None => UnixMode::Connect,
        Some(o) => return Err(DomainXmlError::unsupported(format!("<{spath} mode>"), o)),
    };
    let has_path = src.is_some_and(|s| s.attr("path").is_some());
    let path = if path == "channel" && mode == UnixMode::Bind && !has_path {
        None
    } else {
        Some(req_path(src)?)
    };
    Ok(ChrSource::Unix { path, mode })
}

fn parse_log(el: &XmlElement, path: &str) -> Result<Option<ChrLog>, DomainXmlError> {
    let Some(l) = el.child("log") else {
        return Ok(None);
    };
    let lpath = format!("{path}/log");
    l.check_attrs(&lpath, &["file", "append"])?;
    l.check_children(&lpath, &[])?;
    Ok(Some(ChrLog {
        file: parse_abs_path(&format!("<{lpath} file>"), l.req_attr(&lpath, "file")?)?,
        append: on_off_attr(l, &lpath, "append")?,
    }))
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
    el.check_children("serial", &["source", "target", "alias", "log"])?;
    check_singletons(el, "serial", &["source", "target", "alias", "log"])?;
    skip_alias(el, "serial")?;
    let source = parse_source(el, "serial", SERIAL_SOURCES)?;
    let port = parse_serial_target(el)?.unwrap_or(next_port);
    if port > 3 {
        return Err(DomainXmlError::invalid(
            "<serial/target port>",
            port.to_string(),
            "an x86 guest has ISA serial ports 0..3",
        ));
    }
    Ok(SerialDef {
        source,
        port,
        log: parse_log(el, "serial")?,
    })
}

/// Returns the console and, when given, the serial it stands for (used
/// only to create a serial when none exists).
pub(crate) fn parse_console(el: &XmlElement) -> Result<(ConsoleDef, SerialDef), DomainXmlError> {
    el.check_attrs("console", &["type", "tty"])?;
    el.check_children("console", &["source", "target", "alias", "log"])?;
    check_singletons(el, "console", &["source", "target", "alias", "log"])?;
    skip_alias(el, "console")?;
    let source = parse_source(el, "console", SERIAL_SOURCES)?;
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
    let serial = SerialDef {
        source,
        port,
        log: parse_log(el, "console")?,
    };
    Ok((ConsoleDef { port }, serial))
}

pub(crate) fn parse_channel(el: &XmlElement) -> Result<ChannelDef, DomainXmlError> {
    const C: &str = "channel";
    el.check_attrs(C, &["type"])?;
    el.check_children(C, &["source", "target", "alias", "address", "log"])?;
    check_singletons(el, C, &["source", "target", "alias", "address", "log"])?;
    skip_alias(el, C)?;
    let source = parse_source(el, C, CHANNEL_SOURCES)?;
    let t = el
        .child("target")
        .ok_or_else(|| DomainXmlError::structure("missing <target> of <channel>"))?;
    // `state` is output-only (whether the guest side is connected).
    t.check_attrs("channel/target", &["type", "name", "state"])?;
    t.check_children("channel/target", &[])?;
    let ty = t.req_attr("channel/target", "type")?;
    if ty != "virtio" {
        return Err(DomainXmlError::unsupported_because(
            "channel target type",
            ty,
            "only virtio channels are supported",
        ));
    }
    let name = t.attr("name").map(str::to_string);
    if let Some(n) = &name {
        check_channel_name(n)?;
    }
    if source == ChrSource::SpiceVmc && name.as_deref() != Some(SPICE_AGENT_CHANNEL) {
        return Err(DomainXmlError::unsupported_because(
            "spicevmc channel name",
            name.unwrap_or_default(),
            format!("a spicevmc channel is '{SPICE_AGENT_CHANNEL}'"),
        ));
    }
    Ok(ChannelDef {
        source,
        name,
        log: parse_log(el, C)?,
        address: parse_device_address(el, C, &["virtio-serial"])?,
    })
}

/// Channel names become socket file names and QEMU option values.
fn check_channel_name(n: &str) -> Result<(), DomainXmlError> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DomainXmlError::invalid(
            "<channel/target name>",
            n,
            "expected 1..64 characters of A-Za-z0-9._- not starting with '.'",
        ))
    }
}

fn format_source(w: &mut XmlWriter, s: &ChrSource, live_path: Option<&str>) {
    match s {
        ChrSource::Pty => {
            if let Some(p) = live_path {
                w.empty("source", &[("path", p.to_string())]);
            }
        }
        ChrSource::Null | ChrSource::SpiceVmc => {}
        ChrSource::File { path, append } => {
            let mut a = vec![("path", path.to_string_lossy().into_owned())];
            if let Some(ap) = append {
                a.push(("append", on_off(*ap)));
            }
            w.empty("source", &a);
        }
        ChrSource::Unix { path, mode } => {
            let m = match mode {
                UnixMode::Bind => "bind",
                UnixMode::Connect => "connect",
            };
            let mut a = vec![("mode", m.to_string())];
            match (path, live_path) {
                (Some(p), _) => a.push(("path", p.to_string_lossy().into_owned())),
                (None, Some(p)) => a.push(("path", p.to_string())),
                (None, None) => {}
            }
            w.empty("source", &a);
        }
    }
}

fn format_log(w: &mut XmlWriter, l: &Option<ChrLog>) {
    if let Some(l) = l {
        let mut a = vec![("file", l.file.to_string_lossy().into_owned())];
        if let Some(ap) = l.append {
            a.push(("append", on_off(ap)));
        }
        w.empty("log", &a);
    }
}

pub(crate) fn format_serial(
    w: &mut XmlWriter,
    s: &SerialDef,
    live: Option<(String, Option<&str>)>,
) {
    w.open("serial", &[("type", s.source.type_str().into())]);
    format_source(w, &s.source, live.as_ref().and_then(|l| l.1));
    format_log(w, &s.log);
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
    format_log(w, &serial.log);
    w.empty(
        "target",
        &[("type", "serial".into()), ("port", c.port.to_string())],
    );
    format_alias(w, live.map(|l| l.0));
    w.close("console");
}

/// `live`: the alias and, for a pty or a path chosen at start, the path.
pub(crate) fn format_channel(
    w: &mut XmlWriter,
    c: &ChannelDef,
    live: Option<(String, Option<String>)>,
) {
    w.open("channel", &[("type", c.source.type_str().into())]);
    let live_path = live.as_ref().and_then(|l| l.1.as_deref());
    format_source(w, &c.source, live_path);
    format_log(w, &c.log);
    let mut t = vec![("type", "virtio".to_string())];
    if let Some(n) = &c.name {
        t.push(("name", n.clone()));
    }
    w.empty("target", &t);
    format_alias(w, live.map(|l| l.0));
    if let Some(a) = &c.address {
        format_address(w, a);
    }
    w.close("channel");
}
