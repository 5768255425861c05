//! `<sysinfo type='smbios'>`: the SMBIOS tables the guest reads (BIOS,
//! system, base board, chassis, OEM strings), used with
//! `<os><smbios mode='sysinfo'/>`.

use crate::error::DomainXmlError;
use crate::values::{named, named_enum};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// A `<sysinfo>` block and its SMBIOS table type.
    pub enum SysinfoBlock {
        Bios = "bios",
        System = "system",
        BaseBoard = "baseBoard",
        Chassis = "chassis",
    }
}

impl SysinfoBlock {
    /// SMBIOS structure type.
    pub fn smbios_type(self) -> u8 {
        match self {
            SysinfoBlock::Bios => 0,
            SysinfoBlock::System => 1,
            SysinfoBlock::BaseBoard => 2,
            SysinfoBlock::Chassis => 3,
        }
    }

    /// The entry names libvirt accepts in the block.
    pub fn entries(self) -> &'static [&'static str] {
        match self {
            SysinfoBlock::Bios => &["vendor", "version", "date", "release"],
            SysinfoBlock::System => &[
                "manufacturer",
                "product",
                "version",
                "serial",
                "uuid",
                "sku",
                "family",
            ],
            SysinfoBlock::BaseBoard => &[
                "manufacturer",
                "product",
                "version",
                "serial",
                "asset",
                "location",
            ],
            SysinfoBlock::Chassis => &["manufacturer", "version", "serial", "asset", "sku"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SysinfoDef {
    /// (block, [(entry, value)]) in document order.
    pub blocks: Vec<(SysinfoBlock, Vec<(String, String)>)>,
    pub oem_strings: Vec<String>,
}

impl SysinfoDef {
    pub fn entry(&self, block: SysinfoBlock, name: &str) -> Option<&str> {
        self.blocks
            .iter()
            .filter(|(b, _)| *b == block)
            .flat_map(|(_, e)| e.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn check_value(what: &str, v: &str) -> Result<(), DomainXmlError> {
    if v.len() > 255 || v.chars().any(char::is_control) {
        return Err(DomainXmlError::invalid(
            what,
            v,
            "at most 255 characters, no control characters",
        ));
    }
    Ok(())
}

pub(crate) fn parse_sysinfo(el: &XmlElement) -> Result<SysinfoDef, DomainXmlError> {
    el.check_attrs("sysinfo", &["type"])?;
    let ty = el.req_attr("sysinfo", "type")?;
    if ty != "smbios" {
        return Err(DomainXmlError::unsupported("sysinfo type", ty));
    }
    el.check_children(
        "sysinfo",
        &["bios", "system", "baseBoard", "chassis", "oemStrings"],
    )?;
    let mut s = SysinfoDef::default();
    for c in el.elements() {
        if c.name == "oemStrings" {
            s.oem_strings.extend(parse_oem(c)?);
            continue;
        }
        let block = named("sysinfo block", &c.name, SysinfoBlock::from_name)?;
        s.blocks.push((block, parse_entries(c, block)?));
    }
    Ok(s)
}

fn parse_entries(
    c: &XmlElement,
    block: SysinfoBlock,
) -> Result<Vec<(String, String)>, DomainXmlError> {
    let path = format!("sysinfo/{}", c.name);
    c.check_attrs(&path, &[])?;
    c.check_children(&path, &["entry"])?;
    let mut out = Vec::new();
    for e in c.children_named("entry") {
        let epath = format!("{path}/entry");
        e.check_attrs(&epath, &["name"])?;
        e.check_children(&epath, &[])?;
        let name = e.req_attr(&epath, "name")?;
        if !block.entries().contains(&name) {
            return Err(DomainXmlError::unsupported(format!("<{path}> entry"), name));
        }
        let value = e.text();
        check_value(&format!("<{epath} name='{name}'>"), &value)?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

fn parse_oem(c: &XmlElement) -> Result<Vec<String>, DomainXmlError> {
    c.check_attrs("sysinfo/oemStrings", &[])?;
    c.check_children("sysinfo/oemStrings", &["entry"])?;
    c.children_named("entry")
        .map(|e| {
            e.check_attrs("sysinfo/oemStrings/entry", &[])?;
            e.check_children("sysinfo/oemStrings/entry", &[])?;
            let v = e.text();
            check_value("<sysinfo/oemStrings/entry>", &v)?;
            Ok(v)
        })
        .collect()
}

pub(crate) fn format_sysinfo(w: &mut XmlWriter, s: &SysinfoDef) {
    w.open("sysinfo", &[("type", "smbios".into())]);
    for (block, entries) in &s.blocks {
        w.open(block.as_str(), &[]);
        for (k, v) in entries {
            w.text_elem("entry", &[("name", k.clone())], v);
        }
        w.close(block.as_str());
    }
    if !s.oem_strings.is_empty() {
        w.open("oemStrings", &[]);
        for v in &s.oem_strings {
            w.text_elem("entry", &[], v);
        }
        w.close("oemStrings");
    }
    w.close("sysinfo");
}
