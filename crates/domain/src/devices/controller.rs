//! `<controller>`: SATA (AHCI), virtio-scsi, the PCI root and USB.

use super::address::{Address, format_address, parse_address};
use super::format_alias;
use crate::def::MachineFamily;
use crate::error::DomainXmlError;
use crate::parse::{parse_uint, skip_alias};
use crate::xml::{XmlElement, XmlWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControllerType {
    Sata,
    Scsi,
    Ide,
    Pci,
    Usb,
}

impl ControllerType {
    pub fn as_str(self) -> &'static str {
        match self {
            ControllerType::Sata => "sata",
            ControllerType::Scsi => "scsi",
            ControllerType::Ide => "ide",
            ControllerType::Pci => "pci",
            ControllerType::Usb => "usb",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerDef {
    pub ctype: ControllerType,
    pub index: u32,
    /// scsi: "virtio-scsi" (the only one supported, filled in when absent);
    /// pci: "pci-root"/"pcie-root"; usb: any libvirt model, see argv.
    pub model: Option<String>,
    pub address: Option<Address>,
}

/// USB models libvirt knows. Accepted because clients emit them by default;
/// see argv.rs for which ones become a QEMU device.
const USB_MODELS: &[&str] = &[
    "none",
    "qemu-xhci",
    "nec-xhci",
    "piix3-uhci",
    "piix4-uhci",
    "ich9-ehci1",
    "ich9-uhci1",
    "ich9-uhci2",
    "ich9-uhci3",
    "vt82c686b-uhci",
    "pci-ohci",
    "default",
];

impl ControllerDef {
    /// libvirt's alias: the builtin AHCI of q35 is "ide", the PCI root
    /// "pci.0"/"pcie.0".
    pub fn alias(&self, family: MachineFamily) -> String {
        match self.ctype {
            ControllerType::Sata if self.index == 0 && family == MachineFamily::Q35 => "ide".into(),
            ControllerType::Sata => format!("sata{}", self.index),
            ControllerType::Scsi => format!("scsi{}", self.index),
            ControllerType::Ide => "ide".into(),
            ControllerType::Pci => match family {
                MachineFamily::Q35 => "pcie.0".into(),
                MachineFamily::I440fx => "pci.0".into(),
            },
            ControllerType::Usb if self.index == 0 => "usb".into(),
            ControllerType::Usb => format!("usb{}", self.index),
        }
    }
}

pub(crate) fn parse_controller(
    el: &XmlElement,
    family: MachineFamily,
    next_index: impl Fn(ControllerType) -> u32,
) -> Result<ControllerDef, DomainXmlError> {
    const P: &str = "controller";
    el.check_attrs(P, &["type", "index", "model"])?;
    el.check_children(P, &["alias", "address"])?;
    skip_alias(el, P)?;
    let ctype = match el.req_attr(P, "type")? {
        "sata" => ControllerType::Sata,
        "scsi" => ControllerType::Scsi,
        "ide" => ControllerType::Ide,
        "pci" => ControllerType::Pci,
        "usb" => ControllerType::Usb,
        other => return Err(DomainXmlError::unsupported("controller type", other)),
    };
    let index = match el.attr("index") {
        Some(v) => parse_uint("<controller index>", v)?,
        None => next_index(ctype),
    };
    let mut model = el.attr("model").map(str::to_string);
    match ctype {
        ControllerType::Scsi => match model.as_deref() {
            None | Some("virtio-scsi") => model = Some("virtio-scsi".into()),
            Some(o) => return Err(DomainXmlError::unsupported("scsi controller model", o)),
        },
        ControllerType::Pci => {
            let want = match family {
                MachineFamily::Q35 => "pcie-root",
                MachineFamily::I440fx => "pci-root",
            };
            match model.as_deref() {
                Some(m) if m == want && index == 0 => {}
                None if index == 0 => model = Some(want.into()),
                Some(m) => {
                    return Err(DomainXmlError::unsupported_because(
                        "pci controller model",
                        m,
                        format!("only the root bus ('{want}', index 0) is supported"),
                    ));
                }
                None => {
                    return Err(DomainXmlError::unsupported_because(
                        "pci controller index",
                        index.to_string(),
                        "only the root bus is supported",
                    ));
                }
            }
        }
        ControllerType::Usb => {
            if let Some(m) = model.as_deref()
                && !USB_MODELS.contains(&m)
            {
                return Err(DomainXmlError::unsupported("usb controller model", m));
            }
        }
        ControllerType::Ide => {
            if family == MachineFamily::Q35 {
                return Err(DomainXmlError::unsupported_because(
                    "controller type",
                    "ide",
                    "the q35 machine type has no IDE controller",
                ));
            }
            if index != 0 || model.is_some() {
                return Err(DomainXmlError::unsupported_because(
                    "ide controller",
                    index.to_string(),
                    "only the builtin IDE controller (index 0, no model) exists",
                ));
            }
        }
        ControllerType::Sata => {
            if let Some(m) = model.as_deref() {
                return Err(DomainXmlError::unsupported("sata controller model", m));
            }
        }
    }
    let address = el
        .child("address")
        .map(|a| parse_address(a, P))
        .transpose()?;
    if let Some(Address::Drive(_)) = address {
        return Err(DomainXmlError::unsupported(
            "controller address type",
            "drive",
        ));
    }
    Ok(ControllerDef {
        ctype,
        index,
        model,
        address,
    })
}

pub(crate) fn format_controller(w: &mut XmlWriter, c: &ControllerDef, alias: Option<String>) {
    let mut attrs = vec![
        ("type", c.ctype.as_str().to_string()),
        ("index", c.index.to_string()),
    ];
    if let Some(m) = &c.model {
        attrs.push(("model", m.clone()));
    }
    if alias.is_none() && c.address.is_none() {
        w.empty("controller", &attrs);
        return;
    }
    w.open("controller", &attrs);
    format_alias(w, alias);
    if let Some(a) = &c.address {
        format_address(w, a);
    }
    w.close("controller");
}
