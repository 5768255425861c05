//! The domain definition as the driver uses it: a thin adapter over the
//! `domain` crate, so that crate's API reaches the driver in one place.
//!
//! TEMPORARY: while the `domain` crate is empty this file carries a minimal
//! parser for the subset the driver needs (name, uuid, memory, vcpus,
//! emulator, type, lifecycle actions, qemu:commandline args). It is replaced
//! by calls into `domain` once that crate lands.

use std::path::{Path, PathBuf};

use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::caps::Caps;
use crate::{Error, Result};

/// Accelerator QEMU runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// What to do when the guest powers off / crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
}

/// A parsed domain definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Def {
    xml: String,
    name: String,
    uuid: uuid::Uuid,
    memory_kib: u64,
    current_kib: u64,
    vcpus: u32,
    emulator: PathBuf,
    accel: Accel,
    on_poweroff: LifecycleAction,
    on_crash: LifecycleAction,
    extra_args: Vec<String>,
}

fn xml_err(msg: impl Into<String>) -> Error {
    Error::Xml(VirError::new(
        ErrorCode::XmlError,
        ErrorDomain::Domain,
        msg.into(),
    ))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Text of the first `<tag ...>text</tag>`, plus the attributes text.
fn element<'a>(xml: &'a str, tag: &str) -> Option<(&'a str, &'a str)> {
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open) {
        let start = from + i + open.len();
        let rest = &xml[start..];
        if rest.starts_with(|c: char| c == '>' || c == '/' || c.is_whitespace()) {
            let gt = rest.find('>')?;
            let attrs = &rest[..gt];
            if attrs.ends_with('/') {
                return Some((attrs.trim_end_matches('/'), ""));
            }
            let body = &rest[gt + 1..];
            let close = format!("</{tag}>");
            let end = body.find(&close)?;
            return Some((attrs, &body[..end]));
        }
        from = start;
    }
    None
}

fn attr(attrs: &str, name: &str) -> Option<String> {
    for q in ['\'', '"'] {
        let pat = format!("{name}={q}");
        if let Some(i) = attrs.find(&pat) {
            let v = &attrs[i + pat.len()..];
            let end = v.find(q)?;
            return Some(unescape(&v[..end]));
        }
    }
    None
}

fn kib(attrs: &str, text: &str) -> Result<u64> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| xml_err(format!("invalid memory value '{text}'")))?;
    let unit = attr(attrs, "unit").unwrap_or_else(|| "KiB".into());
    let mult = match unit.as_str() {
        "b" | "bytes" => return Ok(n / 1024),
        "k" | "KiB" => 1,
        "M" | "MiB" => 1024,
        "G" | "GiB" => 1024 * 1024,
        other => return Err(xml_err(format!("unknown memory unit '{other}'"))),
    };
    n.checked_mul(mult)
        .ok_or_else(|| xml_err("memory too large"))
}

fn action(xml: &str, tag: &str) -> LifecycleAction {
    match element(xml, tag).map(|(_, t)| t.trim()) {
        Some("restart") => LifecycleAction::Restart,
        Some("preserve") => LifecycleAction::Preserve,
        _ => LifecycleAction::Destroy,
    }
}

impl Def {
    pub fn parse(xml: &str) -> Result<Self> {
        let (dattrs, _) = element(xml, "domain").ok_or_else(|| xml_err("missing <domain>"))?;
        let accel = match attr(dattrs, "type").as_deref() {
            Some("kvm") => Accel::Kvm,
            Some("qemu") => Accel::Tcg,
            other => return Err(xml_err(format!("unsupported domain type {other:?}"))),
        };
        let name = element(xml, "name")
            .map(|(_, t)| unescape(t.trim()))
            .filter(|n| crate::config::valid_name(n))
            .ok_or_else(|| xml_err("missing or invalid <name>"))?;
        let uuid = match element(xml, "uuid") {
            Some((_, t)) => uuid::Uuid::parse_str(t.trim())
                .map_err(|_| xml_err(format!("malformed uuid '{}'", t.trim())))?,
            None => uuid::Uuid::new_v4(),
        };
        let (ma, mt) = element(xml, "memory").ok_or_else(|| xml_err("missing <memory>"))?;
        let memory_kib = kib(ma, mt)?;
        let current_kib = match element(xml, "currentMemory") {
            Some((a, t)) => kib(a, t)?.min(memory_kib),
            None => memory_kib,
        };
        let vcpus = match element(xml, "vcpu") {
            Some((_, t)) => t.trim().parse().map_err(|_| xml_err("invalid <vcpu>"))?,
            None => 1,
        };
        let emulator = element(xml, "emulator")
            .map(|(_, t)| PathBuf::from(unescape(t.trim())))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/qemu-system-x86_64"));
        let mut extra_args = Vec::new();
        if let Some((_, cl)) = element(xml, "qemu:commandline") {
            let mut rest = cl;
            while let Some(i) = rest.find("<qemu:arg") {
                let after = &rest[i..];
                let end = after.find('>').unwrap_or(after.len());
                if let Some(v) = attr(&after[..end], "value") {
                    extra_args.push(v);
                }
                rest = &after[end..];
            }
        }
        let on_poweroff = action(xml, "on_poweroff");
        let on_crash = action(xml, "on_crash");
        let mut xml = xml.to_owned();
        if element(&xml, "uuid").is_none()
            && let Some(i) = xml.find("</name>")
        {
            xml.insert_str(i + 7, &format!("\n  <uuid>{uuid}</uuid>"));
        }
        Ok(Self {
            xml,
            name,
            uuid,
            memory_kib,
            current_kib,
            vcpus,
            emulator,
            accel,
            on_poweroff,
            on_crash,
            extra_args,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }
    pub fn max_memory_kib(&self) -> u64 {
        self.memory_kib
    }
    pub fn current_memory_kib(&self) -> u64 {
        self.current_kib
    }
    pub fn vcpus(&self) -> u32 {
        self.vcpus
    }
    pub fn emulator(&self) -> &Path {
        &self.emulator
    }
    pub fn accel(&self) -> Accel {
        self.accel
    }
    pub fn on_poweroff(&self) -> LifecycleAction {
        self.on_poweroff
    }
    pub fn on_crash(&self) -> LifecycleAction {
        self.on_crash
    }
    pub fn to_xml(&self) -> String {
        self.xml.clone()
    }

    /// QEMU's argv (without `-no-shutdown`, which the driver adds).
    pub fn argv(&self, monitor: &Path, accel: Accel, caps: &Caps) -> Result<Vec<String>> {
        let machine = if caps.has_machine("pc") || caps.machines.is_empty() {
            "pc".to_string()
        } else {
            caps.default_machine.clone().unwrap_or_else(|| "pc".into())
        };
        let accel = match accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        };
        let mut v: Vec<String> = vec![
            self.emulator.to_string_lossy().into_owned(),
            "-name".into(),
            format!("guest={},debug-threads=on", self.name),
            "-uuid".into(),
            self.uuid.to_string(),
            "-machine".into(),
            format!("{machine},accel={accel}"),
            "-m".into(),
            format!("{}M", (self.current_kib / 1024).max(1)),
            "-smp".into(),
            self.vcpus.max(1).to_string(),
            "-no-user-config".into(),
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-S".into(),
            "-chardev".into(),
            format!(
                "socket,id=charmonitor,path={},server=on,wait=off",
                monitor.display()
            ),
            "-mon".into(),
            "chardev=charmonitor,id=monitor,mode=control".into(),
        ];
        v.extend(self.extra_args.iter().cloned());
        Ok(v)
    }
}
