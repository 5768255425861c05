//! `<input>`: mouse, tablet and keyboard on PS/2, USB or virtio.
//!
//! PS/2 mouse and keyboard are part of every x86 machine (i8042), so they
//! need no QEMU argument; USB and virtio ones are devices of their own.

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{named, named_enum, skip_alias};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<input type>`.
    pub enum InputType {
        Mouse = "mouse",
        Tablet = "tablet",
        Keyboard = "keyboard",
    }
}

named_enum! {
    /// `<input bus>`.
    pub enum InputBus {
        Ps2 = "ps2",
        Usb = "usb",
        Virtio = "virtio",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDef {
    pub kind: InputType,
    pub bus: InputBus,
    pub address: Option<Address>,
    /// The number of its alias (`input2`) when not its position: a device
    /// plugged into a running guest keeps its name when others go.
    pub alias_index: Option<u32>,
}

impl InputDef {
    /// The number of its alias, at position `i`.
    pub fn alias_number(&self, i: usize) -> u32 {
        self.alias_index
            .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX))
    }

    /// QEMU's device (`None` for the builtin PS/2 ones).
    pub fn qemu_device(&self) -> Option<&'static str> {
        Some(match (self.bus, self.kind) {
            (InputBus::Ps2, _) => return None,
            (InputBus::Usb, InputType::Mouse) => "usb-mouse",
            (InputBus::Usb, InputType::Tablet) => "usb-tablet",
            (InputBus::Usb, InputType::Keyboard) => "usb-kbd",
            (InputBus::Virtio, InputType::Mouse) => "virtio-mouse-pci",
            (InputBus::Virtio, InputType::Tablet) => "virtio-tablet-pci",
            (InputBus::Virtio, InputType::Keyboard) => "virtio-keyboard-pci",
        })
    }
}

const P: &str = "input";

pub(crate) fn parse_input(el: &XmlElement) -> Result<InputDef, DomainXmlError> {
    el.check_attrs(P, &["type", "bus"])?;
    el.check_children(P, &["alias", "address"])?;
    skip_alias(el, P)?;
    let kind = named("input type", el.req_attr(P, "type")?, InputType::from_name)?;
    let default_bus = if kind == InputType::Tablet {
        InputBus::Usb
    } else {
        InputBus::Ps2
    };
    let bus = match el.attr("bus") {
        Some(b) => named("input bus", b, InputBus::from_name)?,
        None => default_bus,
    };
    if bus == InputBus::Ps2 && kind == InputType::Tablet {
        return Err(DomainXmlError::unsupported_because(
            "input bus",
            "ps2",
            "a tablet is a USB or virtio device",
        ));
    }
    let allowed: &[&str] = match bus {
        InputBus::Ps2 => &[],
        InputBus::Usb => &["usb"],
        InputBus::Virtio => &["pci"],
    };
    Ok(InputDef {
        kind,
        bus,
        address: parse_device_address(el, P, allowed)?,
        alias_index: super::alias_number_of(el, "input"),
    })
}

pub(crate) fn format_input(w: &mut XmlWriter, i: &InputDef, alias: Option<String>) {
    let attrs = [
        ("type", i.kind.as_str().to_string()),
        ("bus", i.bus.as_str().to_string()),
    ];
    if alias.is_none() && i.address.is_none() {
        w.empty("input", &attrs);
        return;
    }
    w.open("input", &attrs);
    format_alias(w, alias);
    if let Some(a) = &i.address {
        format_address(w, a);
    }
    w.close("input");
}
