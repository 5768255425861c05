//! `<address>` of a device.
//!
//! PCI addresses are honoured on the root bus only (ferrovirt emits no PCI
//! bridges), so `bus` must be 0; drive addresses place disks on their
//! controller and are filled in at parse time, as libvirt does, so that
//! aliases (`sata0-0-1`) and the QEMU bus/unit never drift apart.

use crate::error::DomainXmlError;
use crate::parse::parse_uint;
use crate::xml::{XmlElement, XmlWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAddress {
    pub slot: u32,
    pub function: u32,
    pub multifunction: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DriveAddress {
    pub controller: u32,
    pub bus: u32,
    pub target: u32,
    pub unit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    Pci(PciAddress),
    Drive(DriveAddress),
}

impl Address {
    pub fn pci(&self) -> Option<&PciAddress> {
        match self {
            Address::Pci(p) => Some(p),
            Address::Drive(_) => None,
        }
    }
}

pub(crate) fn parse_address(el: &XmlElement, path: &str) -> Result<Address, DomainXmlError> {
    let path = format!("{path}/address");
    let ty = el.req_attr(&path, "type")?;
    let num = |k: &str| -> Result<u32, DomainXmlError> {
        match el.attr(k) {
            Some(v) => parse_uint(&format!("<{path} {k}>"), v),
            None => Ok(0),
        }
    };
    match ty {
        "pci" => {
            el.check_attrs(
                &path,
                &["type", "domain", "bus", "slot", "function", "multifunction"],
            )?;
            el.check_children(&path, &[])?;
            if num("domain")? != 0 || num("bus")? != 0 {
                return Err(DomainXmlError::unsupported_because(
                    "PCI address",
                    format!(
                        "{}:{}",
                        el.attr("domain").unwrap_or("0"),
                        el.attr("bus").unwrap_or("0")
                    ),
                    "only domain 0, bus 0 is supported (no PCI bridges)",
                ));
            }
            let slot = num("slot")?;
            let function = num("function")?;
            if slot == 0 || slot > 31 || function > 7 {
                return Err(DomainXmlError::invalid(
                    format!("<{path}>"),
                    format!("slot {slot} function {function}"),
                    "slot must be 1..31 and function 0..7",
                ));
            }
            let multifunction = match el.attr("multifunction") {
                None => None,
                Some(v) => Some(crate::parse::parse_on_off(
                    &format!("<{path} multifunction>"),
                    v,
                )?),
            };
            Ok(Address::Pci(PciAddress {
                slot,
                function,
                multifunction,
            }))
        }
        "drive" => {
            el.check_attrs(&path, &["type", "controller", "bus", "target", "unit"])?;
            el.check_children(&path, &[])?;
            Ok(Address::Drive(DriveAddress {
                controller: num("controller")?,
                bus: num("bus")?,
                target: num("target")?,
                unit: num("unit")?,
            }))
        }
        other => Err(DomainXmlError::unsupported("address type", other)),
    }
}

pub(crate) fn format_address(w: &mut XmlWriter, a: &Address) {
    match a {
        Address::Pci(p) => {
            let mut attrs = vec![
                ("type", "pci".to_string()),
                ("domain", "0x0000".to_string()),
                ("bus", "0x00".to_string()),
                ("slot", format!("0x{:02x}", p.slot)),
                ("function", format!("0x{:x}", p.function)),
            ];
            if let Some(m) = p.multifunction {
                attrs.push(("multifunction", crate::format::on_off(m)));
            }
            w.empty("address", &attrs);
        }
        Address::Drive(d) => w.empty(
            "address",
            &[
                ("type", "drive".to_string()),
                ("controller", d.controller.to_string()),
                ("bus", d.bus.to_string()),
                ("target", d.target.to_string()),
                ("unit", d.unit.to_string()),
            ],
        ),
    }
}
