//! `<redirdev>`: USB devices of a SPICE client redirected into the guest.

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::skip_alias;
use crate::xml::{XmlElement, XmlWriter};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirdevDef {
    /// Its USB port.
    pub address: Option<Address>,
}

const P: &str = "redirdev";

pub(crate) fn parse_redirdev(el: &XmlElement) -> Result<RedirdevDef, DomainXmlError> {
    el.check_attrs(P, &["bus", "type"])?;
    el.check_children(P, &["alias", "address"])?;
    skip_alias(el, P)?;
    let bus = el.attr("bus").unwrap_or("usb");
    if bus != "usb" {
        return Err(DomainXmlError::unsupported("redirdev bus", bus));
    }
    let ty = el.req_attr(P, "type")?;
    if ty != "spicevmc" {
        return Err(DomainXmlError::unsupported_because(
            "redirdev type",
            ty,
            "only SPICE USB redirection (spicevmc) is supported",
        ));
    }
    Ok(RedirdevDef {
        address: parse_device_address(el, P, &["usb"])?,
    })
}

pub(crate) fn format_redirdev(w: &mut XmlWriter, r: &RedirdevDef, alias: Option<String>) {
    w.open(
        "redirdev",
        &[("bus", "usb".into()), ("type", "spicevmc".into())],
    );
    format_alias(w, alias);
    if let Some(a) = &r.address {
        format_address(w, a);
    }
    w.close("redirdev");
}
