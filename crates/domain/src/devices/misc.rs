//! `<watchdog>` and `<memballoon>`.

use super::address::{Address, format_address, parse_device_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, named, named_enum, on_off, on_off_attr, parse_uint, skip_alias,
};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<watchdog action>`. `dump` pauses the guest in QEMU; libvirt then
    /// writes a core dump itself, which is the driver's business.
    pub enum WatchdogAction {
        Reset = "reset",
        Shutdown = "shutdown",
        Poweroff = "poweroff",
        Pause = "pause",
        Dump = "dump",
        None = "none",
        InjectNmi = "inject-nmi",
    }
}

impl WatchdogAction {
    /// QEMU's `-action watchdog=` value.
    pub fn qemu_action(self) -> &'static str {
        match self {
            WatchdogAction::Dump => "pause",
            other => other.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogDef {
    /// Always "i6300esb" (the only model supported).
    pub model: String,
    pub action: WatchdogAction,
    pub address: Option<Address>,
}

named_enum! {
    /// `<memballoon model>`.
    pub enum MemballoonModel {
        Virtio = "virtio",
        None = "none",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemballoonDef {
    pub model: MemballoonModel,
    /// `<stats period>`: seconds between guest stats updates; the driver
    /// sets it over QMP (qom-set guest-stats-polling-interval) at start.
    pub stats_period: Option<u32>,
    /// `autodeflate='on'`: the balloon gives memory back under guest OOM.
    pub autodeflate: Option<bool>,
    /// `freePageReporting='on'`.
    pub free_page_reporting: Option<bool>,
    pub address: Option<Address>,
}

pub(crate) fn parse_watchdog(el: &XmlElement) -> Result<WatchdogDef, DomainXmlError> {
    el.check_attrs("watchdog", &["model", "action"])?;
    el.check_children("watchdog", &["alias", "address"])?;
    skip_alias(el, "watchdog")?;
    let model = el.req_attr("watchdog", "model")?;
    if model != "i6300esb" {
        return Err(DomainXmlError::unsupported("watchdog model", model));
    }
    let action = named(
        "watchdog action",
        el.attr("action").unwrap_or("reset"),
        WatchdogAction::from_name,
    )?;
    Ok(WatchdogDef {
        model: model.to_string(),
        action,
        address: parse_device_address(el, "watchdog", &["pci"])?,
    })
}

pub(crate) fn format_watchdog(w: &mut XmlWriter, d: &WatchdogDef, alias: Option<String>) {
    let attrs = [
        ("model", d.model.clone()),
        ("action", d.action.as_str().to_string()),
    ];
    if alias.is_none() && d.address.is_none() {
        w.empty("watchdog", &attrs);
        return;
    }
    w.open("watchdog", &attrs);
    format_alias(w, alias);
    if let Some(a) = &d.address {
        format_address(w, a);
    }
    w.close("watchdog");
}

pub(crate) fn parse_memballoon(el: &XmlElement) -> Result<MemballoonDef, DomainXmlError> {
    const M: &str = "memballoon";
    el.check_attrs(M, &["model", "autodeflate", "freePageReporting"])?;
    el.check_children(M, &["stats", "alias", "address"])?;
    check_singletons(el, M, &["stats", "alias", "address"])?;
    skip_alias(el, M)?;
    let model = named(
        "memballoon model",
        el.req_attr(M, "model")?,
        MemballoonModel::from_name,
    )?;
    let stats_period = match el.child("stats") {
        Some(s) => {
            s.check_attrs("memballoon/stats", &["period"])?;
            s.check_children("memballoon/stats", &[])?;
            Some(parse_uint(
                "<memballoon/stats period>",
                s.req_attr("memballoon/stats", "period")?,
            )?)
        }
        None => None,
    };
    let b = MemballoonDef {
        model,
        stats_period,
        autodeflate: on_off_attr(el, M, "autodeflate")?,
        free_page_reporting: on_off_attr(el, M, "freePageReporting")?,
        address: parse_device_address(el, M, &["pci"])?,
    };
    let extras = b.stats_period.is_some()
        || b.address.is_some()
        || b.autodeflate.is_some()
        || b.free_page_reporting.is_some();
    if model == MemballoonModel::None && extras {
        return Err(DomainXmlError::structure(
            "memballoon model 'none' takes no stats, options or address",
        ));
    }
    Ok(b)
}

pub(crate) fn format_memballoon(w: &mut XmlWriter, m: &MemballoonDef, alias: Option<String>) {
    let mut attrs = vec![("model", m.model.as_str().to_string())];
    if let Some(a) = m.autodeflate {
        attrs.push(("autodeflate", on_off(a)));
    }
    if let Some(f) = m.free_page_reporting {
        attrs.push(("freePageReporting", on_off(f)));
    }
    let alias = if m.model == MemballoonModel::None {
        None
    } else {
        alias
    };
    if alias.is_none() && m.address.is_none() && m.stats_period.is_none() {
        w.empty("memballoon", &attrs);
        return;
    }
    w.open("memballoon", &attrs);
    if let Some(p) = m.stats_period {
        w.empty("stats", &[("period", p.to_string())]);
    }
    format_alias(w, alias);
    if let Some(a) = &m.address {
        format_address(w, a);
    }
    w.close("memballoon");
}
