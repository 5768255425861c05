//! Resource tuning: `<cputune>` (CPU weight and bandwidth, vCPU, emulator
//! and I/O thread pinning), `<memtune>` (memory limits), `<blkiotune>`
//! (I/O weight and throttling) and `<resource>` (the cgroup partition).
//! The driver applies them when the domain starts: pinning through CPU
//! affinity, limits through the host's cgroups.

use std::path::PathBuf;

use crate::cpuset::CpuSet;
use crate::error::DomainXmlError;
use crate::values::{parse_abs_path, parse_u64, parse_uint, simple_text};
use crate::xml::{XmlElement, XmlWriter};

/// `<cputune>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuTune {
    pub shares: Option<u64>,
    /// µs; per vCPU thread.
    pub period: Option<u64>,
    /// µs; per vCPU thread; negative means unlimited.
    pub quota: Option<i64>,
    pub global_period: Option<u64>,
    pub global_quota: Option<i64>,
    pub emulator_period: Option<u64>,
    pub emulator_quota: Option<i64>,
    pub vcpupins: Vec<(u32, CpuSet)>,
    pub emulatorpin: Option<CpuSet>,
    pub iothreadpins: Vec<(u32, CpuSet)>,
}

/// `<memtune>`: KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemTune {
    pub hard_limit: Option<u64>,
    pub soft_limit: Option<u64>,
    pub swap_hard_limit: Option<u64>,
}

/// One `<blkiotune><device>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlkioDevice {
    pub path: PathBuf,
    pub weight: Option<u32>,
    pub read_bytes_sec: Option<u64>,
    pub write_bytes_sec: Option<u64>,
    pub read_iops_sec: Option<u64>,
    pub write_iops_sec: Option<u64>,
}

/// `<blkiotune>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlkioTune {
    pub weight: Option<u32>,
    pub devices: Vec<BlkioDevice>,
}

const PERIOD: (u64, u64) = (1000, 1_000_000);
const QUOTA_MAX: i64 = 17_592_186_044_415;

fn text_u64(c: &XmlElement, path: &str) -> Result<u64, DomainXmlError> {
    parse_u64(&format!("<{path}>"), simple_text(c, path)?.trim())
}

fn period(c: &XmlElement, path: &str) -> Result<u64, DomainXmlError> {
    let v = text_u64(c, path)?;
    if v != 0 && !(PERIOD.0..=PERIOD.1).contains(&v) {
        return Err(DomainXmlError::invalid(
            format!("<{path}>"),
            v.to_string(),
            "a period is 1000..1000000 µs",
        ));
    }
    Ok(v)
}

fn quota(c: &XmlElement, path: &str) -> Result<i64, DomainXmlError> {
    let t = simple_text(c, path)?;
    let v: i64 = t.trim().parse().map_err(|_| {
        DomainXmlError::invalid(format!("<{path}>"), t.trim(), "expected an integer")
    })?;
    if v > 0 && !(1000..=QUOTA_MAX).contains(&v) {
        return Err(DomainXmlError::invalid(
            format!("<{path}>"),
            v.to_string(),
            "a quota is at least 1000 µs (or negative: unlimited)",
        ));
    }
    Ok(v)
}

fn pin(c: &XmlElement, path: &str, id_attr: &str) -> Result<(u32, CpuSet), DomainXmlError> {
    c.check_attrs(path, &[id_attr, "cpuset"])?;
    c.check_children(path, &[])?;
    let id = parse_uint(&format!("<{path} {id_attr}>"), c.req_attr(path, id_attr)?)?;
    Ok((
        id,
        CpuSet::parse(&format!("<{path} cpuset>"), c.req_attr(path, "cpuset")?)?,
    ))
}

pub(crate) fn parse_cputune(el: &XmlElement) -> Result<CpuTune, DomainXmlError> {
    el.check_attrs("cputune", &[])?;
    el.check_children(
        "cputune",
        &[
            "shares",
            "period",
            "quota",
            "global_period",
            "global_quota",
            "emulator_period",
            "emulator_quota",
            "vcpupin",
            "emulatorpin",
            "iothreadpin",
        ],
    )?;
    let mut t = CpuTune::default();
    for c in el.elements() {
        let path = format!("cputune/{}", c.name);
        match c.name.as_str() {
            "shares" => t.shares = Some(text_u64(c, &path)?),
            "period" => t.period = Some(period(c, &path)?),
            "quota" => t.quota = Some(quota(c, &path)?),
            "global_period" => t.global_period = Some(period(c, &path)?),
            "global_quota" => t.global_quota = Some(quota(c, &path)?),
            "emulator_period" => t.emulator_period = Some(period(c, &path)?),
            "emulator_quota" => t.emulator_quota = Some(quota(c, &path)?),
            "vcpupin" => t.vcpupins.push(pin(c, &path, "vcpu")?),
            "iothreadpin" => t.iothreadpins.push(pin(c, &path, "iothread")?),
            _ => {
                c.check_attrs(&path, &["cpuset"])?;
                c.check_children(&path, &[])?;
                t.emulatorpin = Some(CpuSet::parse(
                    "<cputune/emulatorpin cpuset>",
                    c.req_attr(&path, "cpuset")?,
                )?);
            }
        }
    }
    Ok(t)
}

pub(crate) fn parse_memtune(el: &XmlElement) -> Result<MemTune, DomainXmlError> {
    el.check_attrs("memtune", &[])?;
    el.check_children(
        "memtune",
        &[
            "hard_limit",
            "soft_limit",
            "swap_hard_limit",
            "min_guarantee",
        ],
    )?;
    let mut m = MemTune::default();
    for c in el.elements() {
        let path = format!("memtune/{}", c.name);
        if c.name == "min_guarantee" {
            return Err(DomainXmlError::unsupported_because(
                "<memtune/min_guarantee>",
                "min_guarantee",
                "QEMU/KVM guests have no memory guarantee",
            ));
        }
        c.check_attrs(&path, &["unit"])?;
        c.check_children(&path, &[])?;
        let v = virxml::units::parse_kib(&path, &c.text(), c.attr("unit"))?;
        match c.name.as_str() {
            "hard_limit" => m.hard_limit = Some(v),
            "soft_limit" => m.soft_limit = Some(v),
            _ => m.swap_hard_limit = Some(v),
        }
    }
    if let (Some(h), Some(s)) = (m.hard_limit, m.swap_hard_limit)
        && s < h
    {
        return Err(DomainXmlError::invalid(
            "<memtune/swap_hard_limit>",
            s.to_string(),
            "must be at least hard_limit",
        ));
    }
    Ok(m)
}

fn weight(c: &XmlElement, path: &str) -> Result<u32, DomainXmlError> {
    let v = parse_uint(&format!("<{path}>"), simple_text(c, path)?.trim())?;
    if !(100..=1000).contains(&v) {
        return Err(DomainXmlError::invalid(
            format!("<{path}>"),
            v.to_string(),
            "a weight is 100..1000",
        ));
    }
    Ok(v)
}

pub(crate) fn parse_blkiotune(el: &XmlElement) -> Result<BlkioTune, DomainXmlError> {
    el.check_attrs("blkiotune", &[])?;
    el.check_children("blkiotune", &["weight", "device"])?;
    let mut b = BlkioTune::default();
    for c in el.elements() {
        if c.name == "weight" {
            b.weight = Some(weight(c, "blkiotune/weight")?);
            continue;
        }
        b.devices.push(parse_blkio_device(c)?);
    }
    Ok(b)
}

fn parse_blkio_device(el: &XmlElement) -> Result<BlkioDevice, DomainXmlError> {
    const D: &str = "blkiotune/device";
    el.check_attrs(D, &[])?;
    el.check_children(
        D,
        &[
            "path",
            "weight",
            "read_bytes_sec",
            "write_bytes_sec",
            "read_iops_sec",
            "write_iops_sec",
        ],
    )?;
    let mut d = BlkioDevice::default();
    let mut path = None;
    for c in el.elements() {
        let p = format!("{D}/{}", c.name);
        match c.name.as_str() {
            "path" => {
                path = Some(parse_abs_path(
                    "<blkiotune/device/path>",
                    simple_text(c, &p)?.trim(),
                )?)
            }
            "weight" => d.weight = Some(weight(c, &p)?),
            "read_bytes_sec" => d.read_bytes_sec = Some(text_u64(c, &p)?),
            "write_bytes_sec" => d.write_bytes_sec = Some(text_u64(c, &p)?),
            "read_iops_sec" => d.read_iops_sec = Some(text_u64(c, &p)?),
            _ => d.write_iops_sec = Some(text_u64(c, &p)?),
        }
    }
    d.path =
        path.ok_or_else(|| DomainXmlError::structure("missing <path> of <blkiotune/device>"))?;
    Ok(d)
}

/// `<resource><partition>`: the cgroup the domain is placed under.
pub(crate) fn parse_resource(el: &XmlElement) -> Result<String, DomainXmlError> {
    el.check_attrs("resource", &[])?;
    el.check_children("resource", &["partition"])?;
    let p = match el.child("partition") {
        Some(p) => simple_text(p, "resource/partition")?.trim().to_string(),
        None => "/machine".to_string(),
    };
    let ok = p.starts_with('/')
        && p.len() <= 200
        && !p.split('/').any(|c| c == ".." || c == ".")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c));
    if !ok {
        return Err(DomainXmlError::invalid(
            "<resource/partition>",
            p,
            "expected an absolute cgroup path such as /machine",
        ));
    }
    Ok(p)
}

pub(crate) fn format_cputune(w: &mut XmlWriter, t: &CpuTune) {
    if t == &CpuTune::default() {
        return;
    }
    w.open("cputune", &[]);
    let num = |w: &mut XmlWriter, n: &str, v: Option<String>| {
        if let Some(v) = v {
            w.text_elem(n, &[], &v);
        }
    };
    num(w, "shares", t.shares.map(|v| v.to_string()));
    for (vcpu, set) in &t.vcpupins {
        w.empty(
            "vcpupin",
            &[("vcpu", vcpu.to_string()), ("cpuset", set.to_string())],
        );
    }
    if let Some(e) = &t.emulatorpin {
        w.empty("emulatorpin", &[("cpuset", e.to_string())]);
    }
    for (id, set) in &t.iothreadpins {
        w.empty(
            "iothreadpin",
            &[("iothread", id.to_string()), ("cpuset", set.to_string())],
        );
    }
    num(w, "period", t.period.map(|v| v.to_string()));
    num(w, "quota", t.quota.map(|v| v.to_string()));
    num(w, "global_period", t.global_period.map(|v| v.to_string()));
    num(w, "global_quota", t.global_quota.map(|v| v.to_string()));
    num(
        w,
        "emulator_period",
        t.emulator_period.map(|v| v.to_string()),
    );
    num(w, "emulator_quota", t.emulator_quota.map(|v| v.to_string()));
    w.close("cputune");
}

pub(crate) fn format_memtune(w: &mut XmlWriter, m: &MemTune) {
    if m == &MemTune::default() {
        return;
    }
    w.open("memtune", &[]);
    for (n, v) in [
        ("hard_limit", m.hard_limit),
        ("soft_limit", m.soft_limit),
        ("swap_hard_limit", m.swap_hard_limit),
    ] {
        if let Some(v) = v {
            w.text_elem(n, &[("unit", "KiB".into())], &v.to_string());
        }
    }
    w.close("memtune");
}

pub(crate) fn format_blkiotune(w: &mut XmlWriter, b: &BlkioTune) {
    if b == &BlkioTune::default() {
        return;
    }
    w.open("blkiotune", &[]);
    if let Some(v) = b.weight {
        w.text_elem("weight", &[], &v.to_string());
    }
    for d in &b.devices {
        w.open("device", &[]);
        w.text_elem("path", &[], &d.path.to_string_lossy());
        let fields = [
            ("weight", d.weight.map(u64::from)),
            ("read_bytes_sec", d.read_bytes_sec),
            ("write_bytes_sec", d.write_bytes_sec),
            ("read_iops_sec", d.read_iops_sec),
            ("write_iops_sec", d.write_iops_sec),
        ];
        for (n, v) in fields {
            if let Some(v) = v {
                w.text_elem(n, &[], &v.to_string());
            }
        }
        w.close("device");
    }
    w.close("blkiotune");
}
