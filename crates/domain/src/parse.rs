//! Domain XML → `DomainDef`, with validation.
//!
//! Policy for what we do not implement (see lib.rs for the full lists):
//! unknown elements and attributes are errors naming them; a few elements
//! that clients emit by habit and that change nothing for the guest are
//! accepted and either kept for round trip or dropped with a reason.
//! After parsing, what the definition implies is added (implicit devices,
//! firmware NVRAM path) and every device gets its address, so the result
//! is what `dumpxml` shows and parsing it again changes nothing.

use std::collections::HashSet;

use crate::clock::parse_clock;
use crate::cpu::parse_cpu;
use crate::cpuset::CpuSet;
use crate::def::*;
use crate::devices;
use crate::error::DomainXmlError;
use crate::features::parse_features;
use crate::memory::parse_memory_backing;
use crate::os::parse_os;
use crate::sysinfo::parse_sysinfo;
use crate::tune::{parse_blkiotune, parse_cputune, parse_memtune, parse_resource};
use crate::values::{parse_uint, parse_yes_no, simple_text};
use crate::xml::{XmlElement, XmlNode, parse_document};
use virxml::XmlError;

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
/// Most I/O threads a domain may ask for.
pub const MAX_IOTHREADS: u32 = 64;

pub(crate) fn validate_name(name: &str) -> Result<(), DomainXmlError> {
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
            return Err(DomainXmlError::unknown_element(path));
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
            _ => return Err(DomainXmlError::unknown_element(path)),
        }
    }
    Ok(out)
}

/// Metadata children keep their namespace declarations even when those
/// were made on `<domain>`, so that each stands alone when re-emitted.
fn parse_metadata(el: &XmlElement, root: &XmlElement) -> Result<Vec<XmlElement>, DomainXmlError> {
    el.check_attrs("metadata", &[])?;
    if el
        .children
        .iter()
        .any(|c| matches!(c, XmlNode::Text(t) if !t.trim().is_empty()))
    {
        return Err(DomainXmlError::structure(
            "<metadata> may contain only elements",
        ));
    }
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
    Ok(out)
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
    "memoryBacking",
    "vcpu",
    "iothreads",
    "iothreadids",
    "cputune",
    "memtune",
    "blkiotune",
    "resource",
    "sysinfo",
    "os",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "devices",
    "seclabel",
];

/// The root element: `<domain type>`, no unknown or repeated children, and
/// the `<qemu:commandline>` blocks.
fn check_root(root: &XmlElement) -> Result<(DomainType, QemuCommandline), DomainXmlError> {
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
            if in_namespace(c, root, QEMU_NS) && c.local_name() == "commandline" {
                let q = parse_qemu_commandline(c)?;
                qemu_commandline.args.extend(q.args);
                qemu_commandline.env.extend(q.env);
                continue;
            }
            return Err(DomainXmlError::unknown_element(c.name.clone()));
        }
        if !SINGLETONS.contains(&c.name.as_str()) {
            return Err(DomainXmlError::unknown_element(c.name.clone()));
        }
    }
    Ok((domain_type, qemu_commandline))
}

/// Name, UUID, title, description.
struct Identity {
    name: String,
    uuid: uuid::Uuid,
    title: Option<String>,
    description: Option<String>,
}

fn parse_identity(root: &XmlElement) -> Result<Identity, DomainXmlError> {
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
    Ok(Identity {
        name,
        uuid,
        title,
        description,
    })
}

/// Memory sizes in KiB; an overflowing unit is a bad value here, as
/// earlier versions reported it.
fn parse_kib(el: &XmlElement, what: &str) -> Result<u64, DomainXmlError> {
    el.check_attrs(what, &["unit"])?;
    el.check_children(what, &[])?;
    virxml::units::parse_kib(what, &el.text(), el.attr("unit")).map_err(|e| match e {
        XmlError::Overflow(v) => DomainXmlError::invalid(format!("<{what}>"), v, "value too large"),
        other => other.into(),
    })
}

fn parse_memory(root: &XmlElement) -> Result<(u64, u64), DomainXmlError> {
    let mem_el = root
        .child("memory")
        .ok_or_else(|| DomainXmlError::structure("missing <memory>"))?;
    let memory_kib = parse_kib(mem_el, "memory")?;
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
    let current = match root.child("currentMemory") {
        Some(c) => match parse_kib(c, "currentMemory")? {
            0 => memory_kib,
            v => v.min(memory_kib),
        },
        None => memory_kib,
    };
    Ok((memory_kib, current))
}

/// `<vcpu placement cpuset current>N</vcpu>`.
struct Vcpus {
    max: u32,
    current: Option<u32>,
    placement: VcpuPlacement,
    cpuset: Option<CpuSet>,
}

fn parse_vcpu(root: &XmlElement) -> Result<Vcpus, DomainXmlError> {
    let Some(v) = root.child("vcpu") else {
        return Ok(Vcpus {
            max: 1,
            current: None,
            placement: VcpuPlacement::Static,
            cpuset: None,
        });
    };
    v.check_attrs("vcpu", &["placement", "current", "cpuset"])?;
    v.check_children("vcpu", &[])?;
    let max = parse_uint("<vcpu>", &v.text())?;
    if max == 0 || max > MAX_VCPUS {
        return Err(DomainXmlError::invalid(
            "<vcpu>",
            max.to_string(),
            format!("must be 1..{MAX_VCPUS}"),
        ));
    }
    let current = match v.attr("current") {
        None => None,
        Some(c) => match parse_uint("<vcpu current>", c)? {
            n if n == max => None,
            n if n >= 1 && n < max => Some(n),
            n => {
                return Err(DomainXmlError::invalid(
                    "<vcpu current>",
                    n.to_string(),
                    format!("must be 1..{max} (the maximum)"),
                ));
            }
        },
    };
    let placement = match v.attr("placement").unwrap_or("static") {
        "static" => VcpuPlacement::Static,
        "auto" => VcpuPlacement::Auto,
        o => return Err(DomainXmlError::unsupported("vcpu placement", o)),
    };
    Ok(Vcpus {
        max,
        current,
        placement,
        cpuset: v
            .attr("cpuset")
            .map(|s| CpuSet::parse("<vcpu cpuset>", s))
            .transpose()?,
    })
}

/// `<iothreads>N</iothreads>` and `<iothreadids>`.
fn parse_iothreads(root: &XmlElement) -> Result<Vec<u32>, DomainXmlError> {
    let count = match root.child("iothreads") {
        Some(t) => parse_uint("<iothreads>", &simple_text(t, "iothreads")?)?,
        None => 0,
    };
    let mut ids: Vec<u32> = Vec::new();
    if let Some(l) = root.child("iothreadids") {
        l.check_attrs("iothreadids", &[])?;
        l.check_children("iothreadids", &["iothread"])?;
        for t in l.children_named("iothread") {
            t.check_attrs("iothreadids/iothread", &["id"])?;
            t.check_children("iothreadids/iothread", &[])?;
            let id = parse_uint(
                "<iothreadids/iothread id>",
                t.req_attr("iothreadids/iothread", "id")?,
            )?;
            if id == 0 || ids.contains(&id) {
                return Err(DomainXmlError::invalid(
                    "<iothreadids/iothread id>",
                    id.to_string(),
                    "ids are unique and start at 1",
                ));
            }
            ids.push(id);
        }
    }
    let mut next = 1;
    while (ids.len() as u32) < count {
        if !ids.contains(&next) {
            ids.push(next);
        }
        next += 1;
    }
    if ids.len() as u32 > MAX_IOTHREADS {
        return Err(DomainXmlError::invalid(
            "<iothreads>",
            ids.len().to_string(),
            format!("at most {MAX_IOTHREADS}"),
        ));
    }
    Ok(ids)
}

/// What happens when the guest powers off, reboots, crashes, or loses a
/// lock.
struct Lifecycle {
    poweroff: LifecycleAction,
    reboot: LifecycleAction,
    crash: LifecycleAction,
    lockfailure: Option<String>,
}

fn parse_lifecycles(root: &XmlElement) -> Result<Lifecycle, DomainXmlError> {
    use LifecycleAction::*;
    let get = |name: &str, allowed: &[LifecycleAction], default| {
        root.child(name)
            .map(|e| parse_lifecycle(e, allowed))
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let lockfailure = match root.child("on_lockfailure") {
        None => None,
        Some(e) => {
            let v = simple_text(e, "on_lockfailure")?.trim().to_string();
            if !["poweroff", "restart", "pause", "ignore"].contains(&v.as_str()) {
                return Err(DomainXmlError::unsupported("<on_lockfailure> action", v));
            }
            Some(v)
        }
    };
    Ok(Lifecycle {
        poweroff: get("on_poweroff", &[Destroy, Restart, Preserve], Destroy)?,
        reboot: get("on_reboot", &[Destroy, Restart], Restart)?,
        crash: get("on_crash", &[Destroy, Restart, Preserve], Destroy)?,
        lockfailure,
    })
}

/// `<seclabel>`: DAC or 'none' labels are accepted (and reported as none,
/// which is what applies); a mandatory access control label (SELinux,
/// AppArmor) asks for confinement ferrovirt cannot give.
fn parse_seclabel(s: &XmlElement) -> Result<bool, DomainXmlError> {
    s.check_attrs("seclabel", &["type", "model", "relabel"])?;
    s.check_children("seclabel", &["label", "imagelabel", "baselabel"])?;
    let t = s.req_attr("seclabel", "type")?;
    if !["none", "dynamic", "static"].contains(&t) {
        return Err(DomainXmlError::unsupported("seclabel type", t));
    }
    let model = s.attr("model").unwrap_or("none");
    let accepted = t == "none" && model == "none" || model == "dac";
    if !accepted {
        return Err(DomainXmlError::unsupported_because(
            "seclabel type",
            t,
            format!(
                "ferrovirt does no '{model}' security labelling; only type='none' and DAC labels are accepted"
            ),
        ));
    }
    Ok(true)
}

pub(crate) fn parse_domain(xml: &str) -> Result<DomainDef, DomainXmlError> {
    let root = parse_document(xml)?;
    let (domain_type, qemu_commandline) = check_root(&root)?;
    let id = parse_identity(&root)?;
    let metadata = match root.child("metadata") {
        Some(m) => parse_metadata(m, &root)?,
        None => Vec::new(),
    };
    let (memory_kib, current_memory_kib) = parse_memory(&root)?;
    let vcpu = parse_vcpu(&root)?;
    let os = match root.child("os") {
        Some(o) => parse_os(o)?,
        None => return Err(DomainXmlError::structure("missing <os>")),
    };
    let family = os.family();
    let lifecycle = parse_lifecycles(&root)?;
    let mut def = DomainDef {
        domain_type,
        name: id.name,
        uuid: id.uuid,
        title: id.title,
        description: id.description,
        metadata,
        memory_kib,
        current_memory_kib,
        memory_backing: root
            .child("memoryBacking")
            .map(parse_memory_backing)
            .transpose()?,
        vcpus: vcpu.max,
        current_vcpus: vcpu.current,
        vcpu_placement: vcpu.placement,
        vcpu_cpuset: vcpu.cpuset,
        iothread_ids: parse_iothreads(&root)?,
        cputune: root
            .child("cputune")
            .map(parse_cputune)
            .transpose()?
            .unwrap_or_default(),
        memtune: root
            .child("memtune")
            .map(parse_memtune)
            .transpose()?
            .unwrap_or_default(),
        blkiotune: root
            .child("blkiotune")
            .map(parse_blkiotune)
            .transpose()?
            .unwrap_or_default(),
        resource_partition: root.child("resource").map(parse_resource).transpose()?,
        sysinfo: root.child("sysinfo").map(parse_sysinfo).transpose()?,
        os,
        features: root
            .child("features")
            .map(parse_features)
            .transpose()?
            .unwrap_or_default(),
        cpu: root
            .child("cpu")
            .map(|c| parse_cpu(c, vcpu.max))
            .transpose()?,
        clock: root.child("clock").map(parse_clock).transpose()?,
        on_poweroff: lifecycle.poweroff,
        on_reboot: lifecycle.reboot,
        on_crash: lifecycle.crash,
        on_lockfailure: lifecycle.lockfailure,
        pm: root.child("pm").map(parse_pm).transpose()?,
        devices: match root.child("devices") {
            Some(d) => devices::parse_devices(d, family)?,
            None => devices::parse_devices(&XmlElement::new("devices"), family)?,
        },
        seclabel_none: root
            .child("seclabel")
            .map(parse_seclabel)
            .transpose()?
            .unwrap_or(false),
        qemu_commandline,
    };
    post_parse(&mut def)?;
    Ok(def)
}

/// What spans the whole definition: boot order, NUMA memory, references to
/// I/O threads and vCPUs, firmware rules, then device addresses.
fn post_parse(def: &mut DomainDef) -> Result<(), DomainXmlError> {
    resolve_boot_order(def)?;
    drop_run_paths(def);
    if let Some(cpu) = &def.cpu
        && !cpu.numa.is_empty()
    {
        // As libvirt: with NUMA cells the guest's memory is their sum.
        def.memory_kib = cpu.numa.iter().map(|c| c.memory_kib).sum();
        def.current_memory_kib = def.current_memory_kib.min(def.memory_kib);
    }
    check_references(def)?;
    check_firmware(def)?;
    crate::addr::assign(&mut def.devices, def.os.family())
}

/// A unix channel socket in the domain's own run directory (a directory
/// named after its UUID) is the path chosen at start, shown in live XML:
/// dropped on input, as pty paths are, so a live XML defines the same
/// guest.
fn drop_run_paths(def: &mut DomainDef) {
    let uuid = def.uuid.to_string();
    for (i, ch) in def.devices.channels.iter_mut().enumerate() {
        let devices::chardev::ChrSource::Unix { path, .. } = &mut ch.source else {
            continue;
        };
        let auto = path.as_deref().is_some_and(|p| {
            let in_run_dir = p.parent().and_then(|d| d.file_name()) == Some(uuid.as_ref());
            let name = ch.name.clone().unwrap_or_else(|| format!("channel{i}"));
            in_run_dir && p.file_name() == Some(name.as_ref())
        });
        if auto {
            *path = None;
        }
    }
}

fn resolve_boot_order(def: &mut DomainDef) -> Result<(), DomainXmlError> {
    let d = &def.devices;
    let per_device = d.disks.iter().any(|x| x.boot_order.is_some())
        || d.interfaces.iter().any(|x| x.boot_order.is_some());
    if per_device && !def.os.boot_devs.is_empty() {
        return Err(DomainXmlError::structure(
            "per-device boot elements cannot be used together with os/boot elements",
        ));
    }
    if !per_device && def.os.boot_devs.is_empty() {
        def.os.boot_devs.push(BootDev::Hd);
    }
    Ok(())
}

/// I/O threads named by disks, controllers and pins exist; pinned vCPUs
/// exist.
fn check_references(def: &DomainDef) -> Result<(), DomainXmlError> {
    let ids: HashSet<u32> = def.iothread_ids.iter().copied().collect();
    let named = def
        .devices
        .disks
        .iter()
        .filter_map(|d| d.driver.iothread)
        .chain(
            def.devices
                .controllers
                .iter()
                .filter_map(|c| match &c.kind {
                    devices::controller::ControllerKind::Scsi { driver, .. }
                    | devices::controller::ControllerKind::VirtioSerial { driver, .. } => {
                        driver.iothread
                    }
                    _ => None,
                }),
        )
        .chain(def.cputune.iothreadpins.iter().map(|(id, _)| *id));
    for id in named {
        if !ids.contains(&id) {
            return Err(DomainXmlError::structure(format!(
                "iothread {id} is used but not defined (see <iothreads>)"
            )));
        }
    }
    for (vcpu, _) in &def.cputune.vcpupins {
        if *vcpu >= def.vcpus {
            return Err(DomainXmlError::invalid(
                "<cputune/vcpupin vcpu>",
                vcpu.to_string(),
                format!("the guest has vCPUs 0..{}", def.vcpus - 1),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (vcpu, _) in &def.cputune.vcpupins {
        if !seen.insert(*vcpu) {
            return Err(DomainXmlError::structure(format!(
                "vCPU {vcpu} is pinned twice"
            )));
        }
    }
    Ok(())
}

/// A UEFI loader is pflash; an NVRAM store belongs to UEFI; direct kernel
/// boot and UEFI do not mix with a rom loader's expectations.
fn check_firmware(def: &DomainDef) -> Result<(), DomainXmlError> {
    let os = &def.os;
    if os.firmware == Some(Firmware::Bios)
        && os
            .loader
            .as_ref()
            .is_some_and(|l| l.ltype == Some(LoaderType::Pflash))
    {
        return Err(DomainXmlError::structure(
            "firmware='bios' cannot use a pflash loader",
        ));
    }
    if os.nvram.is_some() && !os.is_uefi() {
        return Err(DomainXmlError::structure(
            "<nvram> needs a UEFI firmware (firmware='efi' or a pflash loader)",
        ));
    }
    let rom_needs_path = os
        .loader
        .as_ref()
        .is_some_and(|l| l.ltype != Some(LoaderType::Pflash) && l.path.is_none());
    if rom_needs_path && os.firmware.is_none() {
        return Err(DomainXmlError::structure("<loader> needs a path"));
    }
    if os.loader.as_ref().and_then(|l| l.secure) == Some(true) && !os.is_uefi() {
        return Err(DomainXmlError::structure(
            "secure boot needs a UEFI firmware",
        ));
    }
    // A loader given by path is what runs: its rules hold now. An
    // autoselected one is checked when it is chosen.
    if os.loader.as_ref().is_some_and(|l| l.path.is_some()) {
        crate::firmware::check_secure_boot(def)?;
    }
    Ok(())
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
