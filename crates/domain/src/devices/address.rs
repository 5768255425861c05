//! `<address>` of a device: where it plugs in.
//!
//! PCI addresses name a bus by the index of its PCI controller (0 is the
//! root); drive addresses place disks on their controller; USB and
//! virtio-serial addresses name a port. Addresses a client leaves out are
//! assigned when the definition is parsed (see `crate::addr`) and kept, so
//! the guest sees the same hardware every time it starts.

use crate::error::DomainXmlError;
use crate::values::{parse_on_off, parse_uint};
use crate::xml::{XmlElement, XmlWriter};

/// Highest PCI slot and function.
pub const PCI_SLOT_LAST: u32 = 31;
pub const PCI_FUNCTION_LAST: u32 = 7;
/// Highest PCI bus number (a controller index).
pub const PCI_BUS_LAST: u32 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
    /// `multifunction='on|off'` as written (or set on function 0 of a slot
    /// with other functions in use).
    pub multifunction: Option<bool>,
}

impl PciAddress {
    pub fn new(bus: u32, slot: u32, function: u32) -> Self {
        Self {
            bus,
            slot,
            function,
            multifunction: None,
        }
    }

    /// `bus:slot.function` in libvirt's hex notation (for messages).
    pub fn display(&self) -> String {
        format!(
            "0000:{:02x}:{:02x}.{:x}",
            self.bus, self.slot, self.function
        )
    }

    /// Same bus, slot and function (ignoring `multifunction`).
    pub fn same_function(&self, other: &PciAddress) -> bool {
        (self.bus, self.slot, self.function) == (other.bus, other.slot, other.function)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DriveAddress {
    pub controller: u32,
    pub bus: u32,
    pub target: u32,
    pub unit: u32,
}

/// A port of a USB bus (the USB controller's index). Hubs are not
/// supported, so a port is one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbAddress {
    pub bus: u32,
    pub port: u32,
}

/// A port of a virtio-serial controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VirtioSerialAddress {
    pub controller: u32,
    pub bus: u32,
    pub port: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    Pci(PciAddress),
    Drive(DriveAddress),
    Usb(UsbAddress),
    VirtioSerial(VirtioSerialAddress),
}

impl Address {
    pub fn pci(&self) -> Option<&PciAddress> {
        match self {
            Address::Pci(p) => Some(p),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Address::Pci(_) => "pci",
            Address::Drive(_) => "drive",
            Address::Usb(_) => "usb",
            Address::VirtioSerial(_) => "virtio-serial",
        }
    }
}

pub(crate) fn parse_address(el: &XmlElement, path: &str) -> Result<Address, DomainXmlError> {
    let path = format!("{path}/address");
    el.check_children(&path, &[])?;
    let num = |k: &str| -> Result<u32, DomainXmlError> {
        match el.attr(k) {
            Some(v) => parse_uint(&format!("<{path} {k}>"), v),
            None => Ok(0),
        }
    };
    match el.req_attr(&path, "type")? {
        "pci" => parse_pci(el, &path).map(Address::Pci),
        "drive" => {
            el.check_attrs(&path, &["type", "controller", "bus", "target", "unit"])?;
            Ok(Address::Drive(DriveAddress {
                controller: num("controller")?,
                bus: num("bus")?,
                target: num("target")?,
                unit: num("unit")?,
            }))
        }
        "usb" => {
            el.check_attrs(&path, &["type", "bus", "port"])?;
            let port = el.attr("port").unwrap_or("0");
            if port.contains('.') {
                return Err(DomainXmlError::unsupported_because(
                    "USB port",
                    port,
                    "USB hubs are not supported",
                ));
            }
            Ok(Address::Usb(UsbAddress {
                bus: num("bus")?,
                port: num("port")?,
            }))
        }
        "virtio-serial" => {
            el.check_attrs(&path, &["type", "controller", "bus", "port"])?;
            Ok(Address::VirtioSerial(VirtioSerialAddress {
                controller: num("controller")?,
                bus: num("bus")?,
                port: num("port")?,
            }))
        }
        other => Err(DomainXmlError::unsupported("address type", other)),
    }
}

fn parse_pci(el: &XmlElement, path: &str) -> Result<PciAddress, DomainXmlError> {
    el.check_attrs(
        path,
        &["type", "domain", "bus", "slot", "function", "multifunction"],
    )?;
    let num = |k: &str| -> Result<u32, DomainXmlError> {
        el.attr(k)
            .map(|v| parse_uint(&format!("<{path} {k}>"), v))
            .unwrap_or(Ok(0))
    };
    if num("domain")? != 0 {
        return Err(DomainXmlError::unsupported_because(
            "PCI address domain",
            el.attr("domain").unwrap_or("0"),
            "only PCI domain 0 is available",
        ));
    }
    let a = PciAddress {
        bus: num("bus")?,
        slot: num("slot")?,
        function: num("function")?,
        multifunction: el
            .attr("multifunction")
            .map(|v| parse_on_off(&format!("<{path} multifunction>"), v))
            .transpose()?,
    };
    if a.bus > PCI_BUS_LAST || a.slot > PCI_SLOT_LAST || a.function > PCI_FUNCTION_LAST {
        return Err(DomainXmlError::invalid(
            format!("<{path}>"),
            a.display(),
            "bus must be 0..255, slot 0..31 and function 0..7",
        ));
    }
    Ok(a)
}

/// Accepts only the address types in `allowed` for a device (`what`).
pub(crate) fn expect_types(
    addr: Option<Address>,
    what: &str,
    allowed: &[&str],
) -> Result<Option<Address>, DomainXmlError> {
    match addr {
        Some(a) if !allowed.contains(&a.type_name()) => Err(DomainXmlError::unsupported(
            format!("address type for {what}"),
            a.type_name(),
        )),
        other => Ok(other),
    }
}

/// The device's optional `<address>`, of one of the `allowed` types.
pub(crate) fn parse_device_address(
    el: &XmlElement,
    path: &str,
    allowed: &[&str],
) -> Result<Option<Address>, DomainXmlError> {
    let addr = el
        .child("address")
        .map(|a| parse_address(a, path))
        .transpose()?;
    expect_types(addr, &format!("<{path}>"), allowed)
}

pub(crate) fn format_address(w: &mut XmlWriter, a: &Address) {
    match a {
        Address::Pci(p) => {
            let mut attrs = vec![
                ("type", "pci".to_string()),
                ("domain", "0x0000".to_string()),
                ("bus", format!("0x{:02x}", p.bus)),
                ("slot", format!("0x{:02x}", p.slot)),
                ("function", format!("0x{:x}", p.function)),
            ];
            if let Some(m) = p.multifunction {
                attrs.push(("multifunction", crate::values::on_off(m)));
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
        Address::Usb(u) => w.empty(
            "address",
            &[
                ("type", "usb".to_string()),
                ("bus", u.bus.to_string()),
                ("port", u.port.to_string()),
            ],
        ),
        Address::VirtioSerial(v) => w.empty(
            "address",
            &[
                ("type", "virtio-serial".to_string()),
                ("controller", v.controller.to_string()),
                ("bus", v.bus.to_string()),
                ("port", v.port.to_string()),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document;

    fn parse(xml: &str) -> Result<Address, DomainXmlError> {
        parse_address(&parse_document(xml).unwrap(), "disk")
    }

    #[test]
    fn pci_addresses() {
        let a =
            parse("<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>")
                .unwrap();
        assert_eq!(a, Address::Pci(PciAddress::new(1, 0, 0)));
        assert!(parse("<address type='pci' domain='1' bus='0' slot='1'/>").is_err());
        assert!(parse("<address type='pci' bus='0' slot='32'/>").is_err());
        assert!(parse("<address type='pci' bus='0' slot='1' function='8'/>").is_err());
        let mut w = XmlWriter::new();
        format_address(&mut w, &a);
        assert_eq!(
            w.finish(),
            "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n"
        );
    }

    #[test]
    fn port_addresses() {
        assert_eq!(
            parse("<address type='usb' bus='0' port='2'/>").unwrap(),
            Address::Usb(UsbAddress { bus: 0, port: 2 })
        );
        assert!(parse("<address type='usb' bus='0' port='1.2'/>").is_err());
        assert_eq!(
            parse("<address type='virtio-serial' controller='0' bus='0' port='1'/>").unwrap(),
            Address::VirtioSerial(VirtioSerialAddress {
                controller: 0,
                bus: 0,
                port: 1
            })
        );
        assert!(parse("<address type='ccw'/>").is_err());
    }
}
