//! `<cpu>`: mode (host-passthrough, host-model, custom, maximum), model
//! and features, topology, and NUMA cells.

use crate::cpuset::CpuSet;
use crate::error::DomainXmlError;
use crate::values::{check_singletons, named, named_enum, on_off, parse_on_off, parse_uint};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<cpu mode>`.
    pub enum CpuMode {
        Custom = "custom",
        HostModel = "host-model",
        HostPassthrough = "host-passthrough",
        Maximum = "maximum",
    }
}

named_enum! {
    /// `<feature policy>`.
    pub enum FeaturePolicy {
        Force = "force",
        Require = "require",
        Optional = "optional",
        Disable = "disable",
        Forbid = "forbid",
    }
}

impl FeaturePolicy {
    pub fn enables(self) -> bool {
        matches!(
            self,
            FeaturePolicy::Force | FeaturePolicy::Require | FeaturePolicy::Optional
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFeature {
    pub policy: FeaturePolicy,
    pub name: String,
}

/// One `<numa><cell>`: a guest NUMA node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaCell {
    pub id: u32,
    pub cpus: CpuSet,
    pub memory_kib: u64,
    /// `memAccess='shared'` (e.g. for vhost-user).
    pub shared: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuDef {
    pub mode: CpuMode,
    /// `match` attribute (minimum|exact|strict), kept for round trip.
    pub match_: Option<String>,
    /// `check` attribute (none|partial|full), kept for round trip.
    pub check: Option<String>,
    pub migratable: Option<bool>,
    pub model: Option<String>,
    /// `<model fallback>` (allow|forbid), kept for round trip.
    pub fallback: Option<String>,
    /// `<vendor>`: the vendor the model is meant for (a check, not an
    /// emulator setting), kept for round trip.
    pub vendor: Option<String>,
    pub topology: Option<CpuTopology>,
    pub features: Vec<CpuFeature>,
    pub numa: Vec<NumaCell>,
}

fn valid_cpu_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

pub(crate) fn parse_cpu(el: &XmlElement, vcpus: u32) -> Result<CpuDef, DomainXmlError> {
    el.check_attrs("cpu", &["mode", "match", "check", "migratable"])?;
    el.check_children("cpu", &["model", "vendor", "topology", "feature", "numa"])?;
    check_singletons(el, "cpu", &["model", "vendor", "topology", "numa"])?;
    let mode = named(
        "cpu mode",
        el.attr("mode").unwrap_or("custom"),
        CpuMode::from_name,
    )?;
    let enum_attr = |k: &str, allowed: &[&str]| -> Result<Option<String>, DomainXmlError> {
        match el.attr(k) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
            Some(v) => Err(DomainXmlError::unsupported(format!("cpu {k}"), v)),
        }
    };
    let (model, fallback) = parse_model(el, mode)?;
    Ok(CpuDef {
        mode,
        match_: enum_attr("match", &["minimum", "exact", "strict"])?,
        check: enum_attr("check", &["none", "partial", "full"])?,
        migratable: el
            .attr("migratable")
            .map(|v| parse_on_off("<cpu migratable>", v))
            .transpose()?,
        model,
        fallback,
        vendor: parse_vendor(el)?,
        topology: el
            .child("topology")
            .map(|t| parse_topology(t, vcpus))
            .transpose()?,
        features: el
            .children_named("feature")
            .map(parse_feature)
            .collect::<Result<_, _>>()?,
        numa: el
            .child("numa")
            .map(|n| parse_numa(n, vcpus))
            .transpose()?
            .unwrap_or_default(),
    })
}

/// `<vendor>`: a word such as `Intel` or `AMD`.
fn parse_vendor(el: &XmlElement) -> Result<Option<String>, DomainXmlError> {
    let Some(v) = el.child("vendor") else {
        return Ok(None);
    };
    let text = v.text();
    let text = text.trim();
    if !valid_cpu_word(text) {
        return Err(DomainXmlError::invalid(
            "<cpu/vendor>",
            text,
            "not a CPU vendor name",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// `<model fallback>NAME</model>`. An empty model (virt-install writes
/// `<model fallback='allow'/>` with host-model) keeps only the fallback.
fn parse_model(
    el: &XmlElement,
    mode: CpuMode,
) -> Result<(Option<String>, Option<String>), DomainXmlError> {
    let Some(c) = el.child("model") else {
        return Ok((None, None));
    };
    c.check_attrs("cpu/model", &["fallback"])?;
    c.check_children("cpu/model", &[])?;
    let fallback = match c.attr("fallback") {
        None => None,
        Some(v @ ("allow" | "forbid")) => Some(v.to_string()),
        Some(v) => return Err(DomainXmlError::unsupported("cpu model fallback", v)),
    };
    let m = c.text().trim().to_string();
    if m.is_empty() {
        return Ok((None, fallback));
    }
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
    Ok((Some(m), fallback))
}

fn parse_topology(c: &XmlElement, vcpus: u32) -> Result<CpuTopology, DomainXmlError> {
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
    let total =
        u64::from(t.sockets) * u64::from(t.dies) * u64::from(t.cores) * u64::from(t.threads);
    if total != u64::from(vcpus) {
        return Err(DomainXmlError::invalid(
            "<cpu/topology>",
            format!("{}*{}*{}*{}", t.sockets, t.dies, t.cores, t.threads),
            format!("sockets*dies*cores*threads must equal the vcpu count {vcpus}"),
        ));
    }
    Ok(t)
}

fn parse_feature(c: &XmlElement) -> Result<CpuFeature, DomainXmlError> {
    c.check_attrs("cpu/feature", &["policy", "name"])?;
    c.check_children("cpu/feature", &[])?;
    let policy = named(
        "cpu feature policy",
        c.attr("policy").unwrap_or("require"),
        FeaturePolicy::from_name,
    )?;
    let name = c.req_attr("cpu/feature", "name")?;
    if !valid_cpu_word(name) {
        return Err(DomainXmlError::invalid(
            "<cpu/feature name>",
            name,
            "not a CPU feature name",
        ));
    }
    Ok(CpuFeature {
        policy,
        name: name.to_string(),
    })
}

fn parse_numa(el: &XmlElement, vcpus: u32) -> Result<Vec<NumaCell>, DomainXmlError> {
    el.check_attrs("cpu/numa", &[])?;
    el.check_children("cpu/numa", &["cell"])?;
    let mut cells: Vec<NumaCell> = Vec::new();
    for (i, c) in el.children_named("cell").enumerate() {
        let cell = parse_cell(c, i as u32)?;
        if cell.cpus.max().is_some_and(|m| m >= vcpus) {
            return Err(DomainXmlError::invalid(
                "<cpu/numa/cell cpus>",
                cell.cpus.to_string(),
                format!("the guest has vCPUs 0..{}", vcpus.saturating_sub(1)),
            ));
        }
        if let Some(o) = cells
            .iter()
            .find(|o| o.cpus.iter().any(|x| cell.cpus.contains(x)))
        {
            return Err(DomainXmlError::structure(format!(
                "NUMA cells {} and {} share vCPUs",
                o.id, cell.id
            )));
        }
        cells.push(cell);
    }
    if cells.is_empty() {
        return Err(DomainXmlError::structure(
            "<cpu/numa> needs at least one <cell>",
        ));
    }
    Ok(cells)
}

fn parse_cell(c: &XmlElement, expected_id: u32) -> Result<NumaCell, DomainXmlError> {
    const C: &str = "cpu/numa/cell";
    c.check_attrs(C, &["id", "cpus", "memory", "unit", "memAccess"])?;
    c.check_children(C, &[])?;
    let id = match c.attr("id") {
        Some(v) => parse_uint("<cpu/numa/cell id>", v)?,
        None => expected_id,
    };
    if id != expected_id {
        return Err(DomainXmlError::structure(format!(
            "NUMA cell ids must be 0, 1, 2... in order; found {id} where {expected_id} belongs"
        )));
    }
    let memory_kib = virxml::units::parse_kib(
        "cpu/numa/cell memory",
        c.req_attr(C, "memory")?,
        c.attr("unit"),
    )?;
    let shared = match c.attr("memAccess") {
        None => None,
        Some("shared") => Some(true),
        Some("private") => Some(false),
        Some(o) => return Err(DomainXmlError::unsupported("NUMA cell memAccess", o)),
    };
    Ok(NumaCell {
        id,
        cpus: CpuSet::parse("<cpu/numa/cell cpus>", c.req_attr(C, "cpus")?)?,
        memory_kib,
        shared,
    })
}

pub(crate) fn format_cpu(w: &mut XmlWriter, c: &CpuDef) {
    let mut attrs = vec![("mode", c.mode.as_str().to_string())];
    if let Some(m) = &c.match_ {
        attrs.push(("match", m.clone()));
    }
    if let Some(m) = &c.check {
        attrs.push(("check", m.clone()));
    }
    if let Some(m) = c.migratable {
        attrs.push(("migratable", on_off(m)));
    }
    let fb: Vec<(&str, String)> = c.fallback.iter().map(|f| ("fallback", f.clone())).collect();
    let empty = c.model.is_none()
        && c.fallback.is_none()
        && c.vendor.is_none()
        && c.topology.is_none()
        && c.features.is_empty()
        && c.numa.is_empty();
    if empty {
        w.empty("cpu", &attrs);
        return;
    }
    w.open("cpu", &attrs);
    match &c.model {
        Some(m) => w.text_elem("model", &fb, m),
        None if !fb.is_empty() => w.empty("model", &fb),
        None => {}
    }
    if let Some(v) = &c.vendor {
        w.text_elem("vendor", &[], v);
    }
    if let Some(t) = &c.topology {
        w.empty(
            "topology",
            &[
                ("sockets", t.sockets.to_string()),
                ("dies", t.dies.to_string()),
                ("cores", t.cores.to_string()),
                ("threads", t.threads.to_string()),
            ],
        );
    }
    for f in &c.features {
        w.empty(
            "feature",
            &[
                ("policy", f.policy.as_str().into()),
                ("name", f.name.clone()),
            ],
        );
    }
    format_numa(w, &c.numa);
    w.close("cpu");
}

fn format_numa(w: &mut XmlWriter, cells: &[NumaCell]) {
    if cells.is_empty() {
        return;
    }
    w.open("numa", &[]);
    for c in cells {
        let mut a = vec![
            ("id", c.id.to_string()),
            ("cpus", c.cpus.to_string()),
            ("memory", c.memory_kib.to_string()),
            ("unit", "KiB".to_string()),
        ];
        if let Some(s) = c.shared {
            a.push(("memAccess", if s { "shared" } else { "private" }.into()));
        }
        w.empty("cell", &a);
    }
    w.close("numa");
}
