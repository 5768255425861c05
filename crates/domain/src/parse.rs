//! Domain XML → `DomainDef`, with validation.
//!
//! Policy for what we do not implement (see lib.rs for the full lists):
//! unknown elements and attributes are errors naming them; a few elements
//! that clients emit by habit and that change nothing for the guest are
//! accepted and either kept for round trip or dropped with a reason.

use crate::def::*;
use crate::devices::{self, Devices};
use crate::error::DomainXmlError;
use crate::units::parse_kib;
use crate::xml::{XmlElement, XmlNode, parse_document};
use std::path::PathBuf;

/// Namespace of `<qemu:commandline>`.
pub const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// Smallest guest accepted: below this no x86 firmware boots, so such a
/// definition is a unit mistake (e.g. `<memory unit='MiB'>` forgotten).
pub const MIN_MEMORY_KIB: u64 = 4096;
/// Largest guest accepted (16 TiB): beyond what QEMU/x86 can address
/// with default physical address bits, so it is surely a unit mistake.
pub const MAX_MEMORY_KIB: u64 = 16 << 30;
/// QEMU's limit for q35 (288 for q35; pc is checked at argv time).
pub const MAX_VCPUS: u32 = 288;
/// Longest name: names become file names (NAME.xml, NAME.log, sockets).
pub const MAX_NAME_LEN: usize = 200;

pub(crate) fn parse_uint(what: &str, s: &str) -> Result<u32, DomainXmlError> {
    let t = s.trim();
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        t.parse::<u32>()
    };
    r.map_err(|_| DomainXmlError::invalid(what, s, "expected a non-negative integer"))
}

pub(crate) fn parse_on_off(what: &str, s: &str) -> Result<bool, DomainXmlError> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(DomainXmlError::invalid(what, s, "expected 'on' or 'off'")),
    }
}

pub(crate) fn parse_yes_no(what: &str, s: &str) -> Result<bool, DomainXmlError> {
    match s {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(DomainXmlError::invalid(what, s, "expected 'yes' or 'no'")),
    }
}

/// Paths handed to QEMU must be absolute: a relative one would resolve
/// against the daemon's working directory, which the user cannot know.
pub(crate) fn parse_abs_path(what: &str, s: &str) -> Result<PathBuf, DomainXmlError> {
    if !s.starts_with('/') || s.contains('\0') {
        return Err(DomainXmlError::invalid(
            what,
            s,
            "expected an absolute path",
        ));
    }
    Ok(PathBuf::from(s))
}

/// `<alias>` is output-only (libvirt ignores non-user aliases on define):
/// accepted so that live XML can be fed back, and dropped.
pub(crate) fn skip_alias(el: &XmlElement, path: &str) -> Result<(), DomainXmlError> {
    if let Some(a) = el.child("alias") {
        a.check_attrs(&format!("{path}/alias"), &["name"])?;
        a.check_children(&format!("{path}/alias"), &[])?;
    }
    Ok(())
}

fn simple_text(el: &XmlElement, path: &str) -> Result<String, DomainXmlError> {
    el.check_attrs(path, &[])?;
    el.check_children(path, &[])?;
    Ok(el.text())
}

fn validate_name(name: &str) -> Result<(), DomainXmlError> {
    if name.is_empty() {
        return Err(DomainXmlError::MissingName);
    }
    let bad = |why: &str| DomainXmlError::structure(format!("name '{name}' {why}"));
    if name.contains('/') {
        return Err(bad("cannot contain '/'"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad("cannot contain control characters"));
    }
    if name == "." || name == ".." || name.starts_with('-') {
        return Err(bad("is not a valid file name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("is longer than {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

/// libvirt accepts UUIDs with or without dashes (anywhere), 32 hex digits.
pub(crate) fn parse_uuid(s: &str) -> Result<uuid::Uuid, DomainXmlError> {
    let t = s.trim();
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainXmlError::invalid(
            "<uuid>",
            t,
            "expected 32 hexadecimal digits (dashes optional)",
        ));
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| DomainXmlError::invalid("<uuid>", t, "expected hexadecimal digits"))?;
    }
    Ok(uuid::Uuid::from_bytes(bytes))
}

fn parse_lifecycle(
    el: &XmlElement,
    allowed: &[LifecycleAction],
) -> Result<LifecycleAction, DomainXmlError> {
    let text = simple_text(el, &el.name)?;
    let v = text.trim();
    let a = match v {
        "destroy" => LifecycleAction::Destroy,
        "restart" => LifecycleAction::Restart,
        "preserve" => LifecycleAction::Preserve,
        _ => {
            return Err(DomainXmlError::unsupported(
                format!("<{}> action", el.name),
                v,
            ));
        }
    };
    if !allowed.contains(&a) {
        return Err(DomainXmlError::unsupported(
            format!("<{}> action", el.name),
            v,
        ));
    }
    Ok(a)
}

/// Is `el` in namespace `ns`, given the root's declarations?
fn in_namespace(el: &XmlElement, root: &XmlElement, ns: &str) -> bool {
    let Some(prefix) = el.prefix() else {
        return false;
    };
    let key = format!("xmlns:{prefix}");
    el.attr(&key).or_else(|| root.attr(&key)) == Some(ns)
}

fn parse_qemu_commandline(el: &XmlElement) -> Result<QemuCommandline, DomainXmlError> {
    let prefix = el.prefix().unwrap_or("qemu");
    let mut out = QemuCommandline::default();
    for c in el.elements() {
        let path = format!("{}/{}", el.name, c.name);
        if c.prefix() != Some(prefix) {
            return Err(DomainXmlError::UnknownElement(path));
        }
        c.check_children(&path, &[])?;
        match c.local_name() {
            "arg" => {
                c.check_attrs(&path, &["value"])?;
                out.args.push(c.req_attr(&path, "value")?.to_string());
            }
            "env" => {
                c.check_attrs(&path, &["name", "value"])?;
                let name = c.req_attr(&path, "name")?;
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
                if !valid {
                    return Err(DomainXmlError::invalid(
                        format!("<{path} name>"),
                        name,
                        "expected [A-Za-z_][A-Za-z0-9_]*",
                    ));
                }
                out.env
                    .push((name.to_string(), c.attr("value").unwrap_or("").to_string()));
            }
            _ => return Err(DomainXmlError::UnknownElement(path)),
        }
    }
    Ok(out)
}

/// Metadata children keep their namespace declarations even when those
/// were made on `<domain>`, so that each stands alone when re-emitted.
fn parse_metadata(el: &XmlElement, root: &XmlElement) -> Vec<XmlElement> {
    let mut out = Vec::new();
    for c in el.elements() {
        let mut c = c.clone();
        c.strip_blank_text();
        let key = match c.prefix() {
            Some(p) => format!("xmlns:{p}"),
            None => "xmlns".to_string(),
        };
        if c.attr(&key).is_none()
            && let Some(v) = root.attr(&key)
        {
            c.attrs.insert(0, (key, v.to_string()));
        }
        out.push(c);
    }
    out
}

fn parse_os(el: &XmlElement) -> Result<OsDef, DomainXmlError> {
    el.check_attrs("os", &[])?;
    el.check_children(
        "os",
        &["type", "boot", "bootmenu", "kernel", "initrd", "cmdline"],
    )?;
    let t = el
        .child("type")
        .ok_or_else(|| DomainXmlError::structure("missing <os><type>"))?;
    t.check_attrs("os/type", &["arch", "machine"])?;
    t.check_children("os/type", &[])?;
    let ty = t.text();
    if ty.trim() != "hvm" {
        return Err(DomainXmlError::OsType(ty.trim().to_string()));
    }
    if let Some(arch) = t.attr("arch")
        && arch != "x86_64"
    {
        return Err(DomainXmlError::unsupported("os arch", arch));
    }
    let machine = t.attr("machine").map(str::to_string);
    if let Some(m) = &machine
        && MachineFamily::of(m).is_none()
    {
        return Err(DomainXmlError::unsupported_because(
            "machine type",
            m,
            "only pc (i440fx) and q35 machine types are supported",
        ));
    }
    let mut os = OsDef {
        machine,
        ..OsDef::default()
    };
    for c in el.elements() {
        match c.name.as_str() {
            "boot" => {
                c.check_attrs("os/boot", &["dev"])?;
                c.check_children("os/boot", &[])?;
                let dev = match c.req_attr("os/boot", "dev")? {
                    "hd" => BootDev::Hd,
                    "cdrom" => BootDev::Cdrom,
                    "network" => BootDev::Network,
                    o => return Err(DomainXmlError::unsupported("os boot dev", o)),
                };
                if os.boot_devs.contains(&dev) {
                    return Err(DomainXmlError::structure(format!(
                        "boot dev '{}' listed twice",
                        dev.as_str()
                    )));
                }
                os.boot_devs.push(dev);
            }
            "bootmenu" => {
                c.check_attrs("os/bootmenu", &["enable"])?;
                c.check_children("os/bootmenu", &[])?;
                os.bootmenu = Some(parse_yes_no(
                    "<os/bootmenu enable>",
                    c.req_attr("os/bootmenu", "enable")?,
                )?);
            }
            "kernel" => {
                os.kernel = Some(parse_abs_path(
                    "<os/kernel>",
                    simple_text(c, "os/kernel")?.trim(),
                )?)
            }
            "initrd" => {
                os.initrd = Some(parse_abs_path(
                    "<os/initrd>",
                    simple_text(c, "os/initrd")?.trim(),
                )?)
            }
            "cmdline" => os.cmdline = Some(simple_text(c, "os/cmdline")?),
            _ => {}
        }
    }
    if os.kernel.is_none() && (os.initrd.is_some() || os.cmdline.is_some()) {
        return Err(DomainXmlError::structure(
            "<initrd> and <cmdline> require <kernel>",
        ));
    }
    Ok(os)
}

fn parse_features(el: &XmlElement) -> Result<Features, DomainXmlError> {
    el.check_attrs("features", &[])?;
    let mut f = Features::default();
    for c in el.elements() {
        let path = format!("features/{}", c.name);
        c.check_children(&path, &[])?;
        match c.name.as_str() {
            "acpi" | "apic" | "pae" => {
                c.check_attrs(&path, &[])?;
                match c.name.as_str() {
                    "acpi" => f.acpi = true,
                    "apic" => f.apic = true,
                    _ => f.pae = true,
                }
            }
            "vmport" => {
                c.check_attrs(&path, &["state"])?;
                f.vmport = Some(parse_on_off(
                    "<features/vmport state>",
                    c.req_attr(&path, "state")?,
                )?);
            }
            _ => return Err(DomainXmlError::UnknownElement(path)),
        }
    }
    Ok(f)
}

fn valid_cpu_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn parse_cpu(el: &XmlElement, vcpus: u32) -> Result<CpuDef, DomainXmlError> {
    el.check_attrs("cpu", &["mode", "match", "check", "migratable"])?;
    el.check_children("cpu", &["model", "topology", "feature"])?;
    let mode = match el.attr("mode").unwrap_or("custom") {
        "host-passthrough" => CpuMode::HostPassthrough,
        "host-model" => CpuMode::HostModel,
        "custom" => CpuMode::Custom,
        "maximum" => CpuMode::Maximum,
        o => return Err(DomainXmlError::unsupported("cpu mode", o)),
    };
    let enum_attr = |k: &str, allowed: &[&str]| -> Result<Option<String>, DomainXmlError> {
        match el.attr(k) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
            Some(v) => Err(DomainXmlError::unsupported(format!("cpu {k}"), v)),
        }
    };
    let mut cpu = CpuDef {
        mode,
        match_: enum_attr("match", &["minimum", "exact", "strict"])?,
        check: enum_attr("check", &["none", "partial", "full"])?,
        migratable: el
            .attr("migratable")
            .map(|v| parse_on_off("<cpu migratable>", v))
            .transpose()?,
        model: None,
        fallback: None,
        topology: None,
        features: Vec::new(),
    };
    for c in el.elements() {
        match c.name.as_str() {
            "model" => {
                c.check_attrs("cpu/model", &["fallback"])?;
                c.check_children("cpu/model", &[])?;
                let m = c.text().trim().to_string();
                if !valid_cpu_word(&m) {
                    return Err(DomainXmlError::invalid(
                        "<cpu/model>",
                        m,
                        "not a CPU model name",
                    ));
                }
                if mode != CpuMode::Custom {
                    return Err(DomainXmlError::unsupported_because(
                        "cpu model with mode",
                        mode.as_str(),
                        "a <model> needs mode='custom'",
                    ));
                }
                cpu.fallback = match c.attr("fallback") {
                    None => None,
                    Some(v @ ("allow" | "forbid")) => Some(v.to_string()),
                    Some(v) => return Err(DomainXmlError::unsupported("cpu model fallback", v)),
                };
                cpu.model = Some(m);
            }
            "topology" => {
                c.check_attrs("cpu/topology", &["sockets", "dies", "cores", "threads"])?;
                c.check_children("cpu/topology", &[])?;
                let n = |k: &str| -> Result<u32, DomainXmlError> {
                    match c.attr(k) {
                        None => Ok(1),
                        Some(v) => {
                            let n = parse_uint(&format!("<cpu/topology {k}>"), v)?;
                            if n == 0 {
                                return Err(DomainXmlError::invalid(
                                    format!("<cpu/topology {k}>"),
                                    v,
                                    "must be at least 1",
                                ));
                            }
                            Ok(n)
                        }
                    }
                };
                let t = CpuTopology {
                    sockets: n("sockets")?,
                    dies: n("dies")?,
                    cores: n("cores")?,
                    threads: n("threads")?,
                };
                let total = u64::from(t.sockets)
                    * u64::from(t.dies)
                    * u64::from(t.cores)
                    * u64::from(t.threads);
                if total != u64::from(vcpus) {
                    return Err(DomainXmlError::invalid(
                        "<cpu/topology>",
                        format!("{}*{}*{}*{}", t.sockets, t.dies, t.cores, t.threads),
                        format!("sockets*dies*cores*threads must equal the vcpu count {vcpus}"),
                    ));
                }
                cpu.topology = Some(t);
            }
            _ => {
                c.check_attrs("cpu/feature", &["policy", "name"])?;
                c.check_children("cpu/feature", &[])?;
                let policy = match c.attr("policy").unwrap_or("require") {
                    "force" => FeaturePolicy::Force,
                    "require" => FeaturePolicy::Require,
                    "optional" => FeaturePolicy::Optional,
                    "disable" => FeaturePolicy::Disable,
                    "forbid" => FeaturePolicy::Forbid,
                    o => return Err(DomainXmlError::unsupported("cpu feature policy", o)),
                };
                let name = c.req_attr("cpu/feature", "name")?;
                if !valid_cpu_word(name) {
                    return Err(DomainXmlError::invalid(
                        "<cpu/feature name>",
                        name,
                        "not a CPU feature name",
                    ));
                }
                cpu.features.push(CpuFeature {
                    policy,
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(cpu)
}

fn parse_clock(el: &XmlElement) -> Result<ClockDef, DomainXmlError> {
    el.check_attrs("clock", &["offset"])?;
    el.check_children("clock", &["timer"])?;
    let offset = match el.attr("offset").unwrap_or("utc") {
        "utc" => ClockOffset::Utc,
        "localtime" => ClockOffset::Localtime,
        o => return Err(DomainXmlError::unsupported("clock offset", o)),
    };
    let mut timers = Vec::new();
    for t in el.elements() {
        t.check_attrs("clock/timer", &["name", "tickpolicy", "present"])?;
        t.check_children("clock/timer", &[])?;
        let name = t.req_attr("clock/timer", "name")?;
        let tickpolicy = t.attr("tickpolicy").map(str::to_string);
        let ok_policies: &[&str] = match name {
            "rtc" => &["catchup", "delay"],
            "pit" => &["delay", "discard"],
            "hpet" => &[],
            o => return Err(DomainXmlError::unsupported("clock timer", o)),
        };
        if let Some(p) = &tickpolicy
            && !ok_policies.contains(&p.as_str())
        {
            return Err(DomainXmlError::unsupported(
                format!("{name} timer tickpolicy"),
                p,
            ));
        }
        if timers.iter().any(|x: &TimerDef| x.name == name) {
            return Err(DomainXmlError::structure(format!(
                "timer '{name}' listed twice"
            )));
        }
        timers.push(TimerDef {
            name: name.to_string(),
            tickpolicy,
            present: t
                .attr("present")
                .map(|v| parse_yes_no("<clock/timer present>", v))
                .transpose()?,
        });
    }
    Ok(ClockDef { offset, timers })
}

fn parse_pm(el: &XmlElement) -> Result<PmDef, DomainXmlError> {
    el.check_attrs("pm", &[])?;
    el.check_children("pm", &["suspend-to-mem", "suspend-to-disk"])?;
    let mut pm = PmDef::default();
    for c in el.elements() {
        let path = format!("pm/{}", c.name);
        c.check_attrs(&path, &["enabled"])?;
        c.check_children(&path, &[])?;
        let v = Some(parse_yes_no(
            &format!("<{path} enabled>"),
            c.req_attr(&path, "enabled")?,
        )?);
        if c.name == "suspend-to-mem" {
            pm.suspend_to_mem = v;
        } else {
            pm.suspend_to_disk = v;
        }
    }
    Ok(pm)
}

/// Elements of `<domain>` that may appear at most once.
const SINGLETONS: &[&str] = &[
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "memory",
    "currentMemory",
    "vcpu",
    "os",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "resource",
    "devices",
    "seclabel",
];

pub(crate) fn parse_domain(xml: &str) -> Result<DomainDef, DomainXmlError> {
    let root = parse_document(xml)?;
    if root.name != "domain" {
        return Err(DomainXmlError::structure(format!(
            "unexpected root element <{}>, expecting <domain>",
            root.name
        )));
    }
    // `id` appears in live XML and is ignored on define, as by libvirt.
    root.check_attrs("domain", &["type", "id"])?;
    let domain_type = match root.attr("type") {
        Some("kvm") => DomainType::Kvm,
        Some("qemu") => DomainType::Qemu,
        Some(o) => return Err(DomainXmlError::unsupported("domain type", o)),
        None => return Err(DomainXmlError::structure("missing domain type attribute")),
    };
    for s in SINGLETONS {
        if root.elements().filter(|e| e.name == *s).count() > 1 {
            return Err(DomainXmlError::structure(format!(
                "element <{s}> appears more than once"
            )));
        }
    }
    let mut qemu_commandline = QemuCommandline::default();
    for c in root.elements() {
        if c.prefix().is_some() {
            if in_namespace(c, &root, QEMU_NS) && c.local_name() == "commandline" {
                let q = parse_qemu_commandline(c)?;
                qemu_commandline.args.extend(q.args);
                qemu_commandline.env.extend(q.env);
                continue;
            }
            return Err(DomainXmlError::UnknownElement(c.name.clone()));
        }
        if !SINGLETONS.contains(&c.name.as_str()) {
            return Err(DomainXmlError::UnknownElement(c.name.clone()));
        }
    }

    let name = match root.child("name") {
        Some(n) => simple_text(n, "name")?.trim().to_string(),
        None => String::new(),
    };
    validate_name(&name)?;
    let uuid = match root.child("uuid") {
        Some(u) => parse_uuid(&simple_text(u, "uuid")?)?,
        None => uuid::Uuid::new_v4(),
    };
    let title = root
        .child("title")
        .map(|t| simple_text(t, "title"))
        .transpose()?;
    if title.as_deref().is_some_and(|t| t.contains('\n')) {
        return Err(DomainXmlError::structure("title can't contain newlines"));
    }
    let description = root
        .child("description")
        .map(|t| simple_text(t, "description"))
        .transpose()?;
    let metadata = match root.child("metadata") {
        Some(m) => {
            m.check_attrs("metadata", &[])?;
            if m.children
                .iter()
                .any(|c| matches!(c, XmlNode::Text(t) if !t.trim().is_empty()))
            {
                return Err(DomainXmlError::structure(
                    "<metadata> may contain only elements",
                ));
            }
            parse_metadata(m, &root)
        }
        None => Vec::new(),
    };

    let mem_el = root
        .child("memory")
        .ok_or_else(|| DomainXmlError::structure("missing <memory>"))?;
    mem_el.check_attrs("memory", &["unit"])?;
    mem_el.check_children("memory", &[])?;
    let memory_kib = parse_kib("memory", &mem_el.text(), mem_el.attr("unit"))?;
    if memory_kib < MIN_MEMORY_KIB {
        return Err(DomainXmlError::invalid(
            "<memory>",
            format!("{memory_kib} KiB"),
            format!("must be at least {MIN_MEMORY_KIB} KiB"),
        ));
    }
    if memory_kib > MAX_MEMORY_KIB {
        return Err(DomainXmlError::invalid(
            "<memory>",
            format!("{memory_kib} KiB"),
            format!("must be at most {MAX_MEMORY_KIB} KiB"),
        ));
    }
    let current_memory_kib = match root.child("currentMemory") {
        Some(c) => {
            c.check_attrs("currentMemory", &["unit"])?;
            c.check_children("currentMemory", &[])?;
            let v = parse_kib("currentMemory", &c.text(), c.attr("unit"))?;
            if v == 0 || v > memory_kib {
                memory_kib
            } else {
                v
            }
        }
        None => memory_kib,
    };

    let (vcpus, vcpu_placement) = match root.child("vcpu") {
        None => (1, VcpuPlacement::Static),
        Some(v) => {
            v.check_attrs("vcpu", &["placement", "current"])?;
            v.check_children("vcpu", &[])?;
            let n = parse_uint("<vcpu>", &v.text())?;
            if n == 0 || n > MAX_VCPUS {
                return Err(DomainXmlError::invalid(
                    "<vcpu>",
                    n.to_string(),
                    format!("must be 1..{MAX_VCPUS}"),
                ));
            }
            if let Some(c) = v.attr("current")
                && parse_uint("<vcpu current>", c)? != n
            {
                return Err(DomainXmlError::unsupported_because(
                    "vcpu current",
                    c,
                    "vCPU hotplug is not supported; current must equal the count",
                ));
            }
            let placement = match v.attr("placement").unwrap_or("static") {
                "static" => VcpuPlacement::Static,
                "auto" => VcpuPlacement::Auto,
                o => return Err(DomainXmlError::unsupported("vcpu placement", o)),
            };
            (n, placement)
        }
    };

    let mut os = match root.child("os") {
        Some(o) => parse_os(o)?,
        None => return Err(DomainXmlError::structure("missing <os>")),
    };
    let family = os.family();
    let features = root
        .child("features")
        .map(parse_features)
        .transpose()?
        .unwrap_or_default();
    let cpu = root.child("cpu").map(|c| parse_cpu(c, vcpus)).transpose()?;
    let clock = root.child("clock").map(parse_clock).transpose()?;
    use LifecycleAction::*;
    let on_poweroff = root
        .child("on_poweroff")
        .map(|e| parse_lifecycle(e, &[Destroy, Restart, Preserve]))
        .transpose()?
        .unwrap_or(Destroy);
    let on_reboot = root
        .child("on_reboot")
        .map(|e| parse_lifecycle(e, &[Destroy, Restart]))
        .transpose()?
        .unwrap_or(Restart);
    let on_crash = root
        .child("on_crash")
        .map(|e| parse_lifecycle(e, &[Destroy, Restart, Preserve]))
        .transpose()?
        .unwrap_or(Destroy);
    let on_lockfailure = match root.child("on_lockfailure") {
        None => None,
        Some(e) => {
            let v = simple_text(e, "on_lockfailure")?.trim().to_string();
            if !["poweroff", "restart", "pause", "ignore"].contains(&v.as_str()) {
                return Err(DomainXmlError::unsupported("<on_lockfailure> action", v));
            }
            Some(v)
        }
    };
    let pm = root.child("pm").map(parse_pm).transpose()?;
    // <resource> (cgroup partition) is accepted and dropped: ferrovirt does
    // not place QEMU in cgroups, and the default partition is what libvirt
    // clients write. Its content is not interpreted.
    let seclabel_none = match root.child("seclabel") {
        None => false,
        Some(s) => {
            s.check_attrs("seclabel", &["type", "model"])?;
            s.check_children("seclabel", &[])?;
            let t = s.req_attr("seclabel", "type")?;
            if t != "none" || s.attr("model").is_some_and(|m| m != "none") {
                return Err(DomainXmlError::unsupported_because(
                    "seclabel type",
                    t,
                    "ferrovirt does no security labelling; only type='none' is accepted",
                ));
            }
            true
        }
    };
    let devices = match root.child("devices") {
        Some(d) => devices::parse_devices(d, family)?,
        None => Devices::default(),
    };

    let per_device_boot = devices.disks.iter().any(|d| d.boot_order.is_some())
        || devices.interfaces.iter().any(|n| n.boot_order.is_some());
    if per_device_boot && !os.boot_devs.is_empty() {
        return Err(DomainXmlError::structure(
            "per-device boot elements cannot be used together with os/boot elements",
        ));
    }
    if !per_device_boot && os.boot_devs.is_empty() {
        os.boot_devs.push(BootDev::Hd);
    }

    Ok(DomainDef {
        domain_type,
        name,
        uuid,
        title,
        description,
        metadata,
        memory_kib,
        current_memory_kib,
        vcpus,
        vcpu_placement,
        os,
        features,
        cpu,
        clock,
        on_poweroff,
        on_reboot,
        on_crash,
        on_lockfailure,
        pm,
        devices,
        seclabel_none,
        qemu_commandline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let a = parse_uuid("c7a5fdbd-cdaf-9455-926a-d65c16db1809").unwrap();
        let b = parse_uuid("c7a5fdbdcdaf9455926ad65c16db1809").unwrap();
        assert_eq!(a, b);
        assert!(parse_uuid("c7a5fdbd-cdaf-9455-926a-d65c16db180").is_err());
        assert!(parse_uuid("g7a5fdbdcdaf9455926ad65c16db1809").is_err());
        assert!(parse_uuid("é7a5fdbdcdaf9455926ad65c16db180").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("ok-name_1.x").is_ok());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("..").is_err());
        assert_eq!(validate_name(""), Err(DomainXmlError::MissingName));
    }
}
