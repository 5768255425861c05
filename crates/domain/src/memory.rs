//! `<memoryBacking>`: how guest RAM is backed on the host (huge pages,
//! memfd or file, shared, locked, preallocated, not merged by KSM).

use crate::error::DomainXmlError;
use crate::values::{check_singletons, empty_element, named, named_enum};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<source type>`.
    pub enum MemorySource {
        Anonymous = "anonymous",
        File = "file",
        Memfd = "memfd",
    }
}

named_enum! {
    /// `<allocation mode>`.
    pub enum AllocationMode {
        Immediate = "immediate",
        Ondemand = "ondemand",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryBacking {
    /// `<hugepages>`: the page size in KiB (`None`: the host's default).
    pub hugepages: Option<Option<u64>>,
    pub nosharepages: bool,
    pub locked: bool,
    pub source: Option<MemorySource>,
    /// `<access mode='shared'>` (true) or private.
    pub shared: Option<bool>,
    pub allocation: Option<AllocationMode>,
    pub discard: bool,
}

impl MemoryBacking {
    /// Whether RAM needs an explicit QEMU memory backend object.
    pub fn needs_backend(&self) -> bool {
        self.hugepages.is_some()
            || self.source.is_some_and(|s| s != MemorySource::Anonymous)
            || self.shared.is_some()
            || self.allocation == Some(AllocationMode::Immediate)
            || self.discard
    }
}

const CHILDREN: &[&str] = &[
    "hugepages",
    "nosharepages",
    "locked",
    "source",
    "access",
    "allocation",
    "discard",
];

pub(crate) fn parse_memory_backing(el: &XmlElement) -> Result<MemoryBacking, DomainXmlError> {
    const M: &str = "memoryBacking";
    el.check_attrs(M, &[])?;
    el.check_children(M, CHILDREN)?;
    check_singletons(el, M, CHILDREN)?;
    let mut m = MemoryBacking::default();
    for c in el.elements() {
        let path = format!("{M}/{}", c.name);
        match c.name.as_str() {
            "hugepages" => m.hugepages = Some(parse_hugepages(c)?),
            "nosharepages" => {
                empty_element(c, &path)?;
                m.nosharepages = true;
            }
            "locked" => {
                empty_element(c, &path)?;
                m.locked = true;
            }
            "discard" => {
                empty_element(c, &path)?;
                m.discard = true;
            }
            "source" => {
                c.check_attrs(&path, &["type"])?;
                c.check_children(&path, &[])?;
                m.source = Some(named(
                    "memoryBacking source type",
                    c.req_attr(&path, "type")?,
                    MemorySource::from_name,
                )?);
            }
            "access" => {
                c.check_attrs(&path, &["mode"])?;
                c.check_children(&path, &[])?;
                m.shared = Some(match c.req_attr(&path, "mode")? {
                    "shared" => true,
                    "private" => false,
                    o => return Err(DomainXmlError::unsupported("memoryBacking access mode", o)),
                });
            }
            _ => {
                c.check_attrs(&path, &["mode"])?;
                c.check_children(&path, &[])?;
                m.allocation = Some(named(
                    "memoryBacking allocation mode",
                    c.req_attr(&path, "mode")?,
                    AllocationMode::from_name,
                )?);
            }
        }
    }
    if m.hugepages.is_some() && m.source == Some(MemorySource::File) {
        return Err(DomainXmlError::unsupported_because(
            "memoryBacking source",
            "file",
            "huge pages come from memfd or anonymous memory here",
        ));
    }
    if m.discard && m.source != Some(MemorySource::File) {
        return Err(DomainXmlError::unsupported_because(
            "<memoryBacking/discard>",
            m.source.map_or("anonymous", MemorySource::as_str),
            "discard applies to file-backed memory",
        ));
    }
    Ok(m)
}

fn parse_hugepages(el: &XmlElement) -> Result<Option<u64>, DomainXmlError> {
    const H: &str = "memoryBacking/hugepages";
    el.check_attrs(H, &[])?;
    el.check_children(H, &["page"])?;
    let mut size = None;
    for p in el.children_named("page") {
        p.check_attrs("memoryBacking/hugepages/page", &["size", "unit", "nodeset"])?;
        p.check_children("memoryBacking/hugepages/page", &[])?;
        if p.attr("nodeset").is_some() {
            return Err(DomainXmlError::unsupported_because(
                "<memoryBacking/hugepages/page nodeset>",
                p.attr("nodeset").unwrap_or(""),
                "per-NUMA-node page sizes are not supported",
            ));
        }
        let kib = virxml::units::parse_kib(
            "memoryBacking/hugepages/page size",
            p.req_attr("memoryBacking/hugepages/page", "size")?,
            p.attr("unit"),
        )?;
        if ![2048, 1_048_576].contains(&kib) {
            return Err(DomainXmlError::unsupported_because(
                "huge page size",
                format!("{kib} KiB"),
                "x86 huge pages are 2048 KiB or 1 GiB",
            ));
        }
        if size.replace(kib).is_some() {
            return Err(DomainXmlError::structure(
                "only one huge page size may be given",
            ));
        }
    }
    Ok(size)
}

pub(crate) fn format_memory_backing(w: &mut XmlWriter, m: &MemoryBacking) {
    w.open("memoryBacking", &[]);
    match m.hugepages {
        Some(Some(size)) => {
            w.open("hugepages", &[]);
            w.empty(
                "page",
                &[("size", size.to_string()), ("unit", "KiB".into())],
            );
            w.close("hugepages");
        }
        Some(None) => w.empty("hugepages", &[]),
        None => {}
    }
    if m.nosharepages {
        w.empty("nosharepages", &[]);
    }
    if m.locked {
        w.empty("locked", &[]);
    }
    if let Some(s) = m.source {
        w.empty("source", &[("type", s.as_str().into())]);
    }
    if let Some(s) = m.shared {
        w.empty(
            "access",
            &[("mode", if s { "shared" } else { "private" }.into())],
        );
    }
    if let Some(a) = m.allocation {
        w.empty("allocation", &[("mode", a.as_str().into())]);
    }
    if m.discard {
        w.empty("discard", &[]);
    }
    w.close("memoryBacking");
}
