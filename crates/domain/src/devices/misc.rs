//! `<watchdog>` and `<memballoon>`.

use super::address::{Address, format_address, parse_address};
use super::format_alias;
use crate::error::DomainXmlError;
use crate::parse::{parse_uint, skip_alias};
use crate::xml::{XmlElement, XmlWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    Reset,
    Shutdown,
    Poweroff,
    Pause,
    None,
    /// libvirt pauses the guest in QEMU and writes a core dump itself; the
    /// argv maps it to `pause`, the dump is the driver's business.
    Dump,
    InjectNmi,
}

impl WatchdogAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchdogAction::Reset => "reset",
            WatchdogAction::Shutdown => "shutdown",
            WatchdogAction::Poweroff => "poweroff",
            WatchdogAction::Pause => "pause",
            WatchdogAction::None => "none",
            WatchdogAction::Dump => "dump",
            WatchdogAction::InjectNmi => "inject-nmi",
        }
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemballoonModel {
    Virtio,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemballoonDef {
    pub model: MemballoonModel,
    /// `<stats period>`: seconds between guest stats updates; the driver
    /// sets it over QMP (qom-set guest-stats-polling-interval) at start.
    pub stats_period: Option<u32>,
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
    let action = match el.attr("action").unwrap_or("reset") {
        "reset" => WatchdogAction::Reset,
        "shutdown" => WatchdogAction::Shutdown,
        "poweroff" => WatchdogAction::Poweroff,
        "pause" => WatchdogAction::Pause,
        "none" => WatchdogAction::None,
        "dump" => WatchdogAction::Dump,
        "inject-nmi" => WatchdogAction::InjectNmi,
        o => return Err(DomainXmlError::unsupported("watchdog action", o)),
    };
    let address = el
        .child("address")
        .map(|a| parse_address(a, "watchdog"))
        .transpose()?;
    if let Some(Address::Drive(_)) = address {
        return Err(DomainXmlError::unsupported(
            "watchdog address type",
            "drive",
        ));
    }
    Ok(WatchdogDef {
        model: model.to_string(),
        action,
        address,
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
    el.check_attrs("memballoon", &["model"])?;
    el.check_children("memballoon", &["stats", "alias", "address"])?;
    skip_alias(el, "memballoon")?;
    let model = match el.req_attr("memballoon", "model")? {
        "virtio" => MemballoonModel::Virtio,
        "none" => MemballoonModel::None,
        o => return Err(DomainXmlError::unsupported("memballoon model", o)),
    };
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
    let address = el
        .child("address")
        .map(|a| parse_address(a, "memballoon"))
        .transpose()?;
    if model == MemballoonModel::None && (stats_period.is_some() || address.is_some()) {
        return Err(DomainXmlError::structure(
            "memballoon model 'none' takes no stats or address",
        ));
    }
    if let Some(Address::Drive(_)) = address {
        return Err(DomainXmlError::unsupported(
            "memballoon address type",
            "drive",
        ));
    }
    Ok(MemballoonDef {
        model,
        stats_period,
        address,
    })
}

pub(crate) fn format_memballoon(w: &mut XmlWriter, m: &MemballoonDef, alias: Option<String>) {
    let model = match m.model {
        MemballoonModel::Virtio => "virtio",
        MemballoonModel::None => "none",
    };
    let alias = if m.model == MemballoonModel::None {
        None
    } else {
        alias
    };
    if alias.is_none() && m.address.is_none() && m.stats_period.is_none() {
        w.empty("memballoon", &[("model", model.into())]);
        return;
    }
    w.open("memballoon", &[("model", model.into())]);
    if let Some(p) = m.stats_period {
        w.empty("stats", &[("period", p.to_string())]);
    }
    format_alias(w, alias);
    if let Some(a) = &m.address {
        format_address(w, a);
    }
    w.close("memballoon");
}
