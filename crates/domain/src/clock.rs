//! `<clock>`: the guest's RTC base and its timers.

use crate::error::DomainXmlError;
use crate::values::{named, named_enum, parse_yes_no, yes_no};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<clock offset>`.
    pub enum ClockOffset {
        Utc = "utc",
        Localtime = "localtime",
        Variable = "variable",
    }
}

named_enum! {
    /// `<timer name>`.
    pub enum TimerName {
        Rtc = "rtc",
        Pit = "pit",
        Hpet = "hpet",
        Hypervclock = "hypervclock",
        Kvmclock = "kvmclock",
    }
}

named_enum! {
    /// `<timer track>` (rtc only): what the guest's RTC follows.
    pub enum TimerTrack {
        Guest = "guest",
        Wall = "wall",
        Realtime = "realtime",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerDef {
    pub name: TimerName,
    pub tickpolicy: Option<String>,
    pub track: Option<TimerTrack>,
    pub present: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockDef {
    pub offset: ClockOffset,
    /// `variable`: seconds added to the base (`adjustment`), and whether
    /// the base is UTC (true) or local time.
    pub adjustment: Option<i64>,
    pub basis_utc: Option<bool>,
    pub timers: Vec<TimerDef>,
}

impl ClockDef {
    pub fn timer(&self, name: TimerName) -> Option<&TimerDef> {
        self.timers.iter().find(|t| t.name == name)
    }
}

pub(crate) fn parse_clock(el: &XmlElement) -> Result<ClockDef, DomainXmlError> {
    el.check_attrs("clock", &["offset", "adjustment", "basis"])?;
    el.check_children("clock", &["timer"])?;
    let offset_s = el.attr("offset").unwrap_or("utc");
    if offset_s == "timezone" {
        return Err(DomainXmlError::unsupported_because(
            "clock offset",
            "timezone",
            "use offset='localtime' or 'variable'",
        ));
    }
    let offset = named("clock offset", offset_s, ClockOffset::from_name)?;
    let (adjustment, basis_utc) = parse_variable(el, offset)?;
    let mut timers: Vec<TimerDef> = Vec::new();
    for t in el.children_named("timer") {
        let timer = parse_timer(t)?;
        if timers.iter().any(|x| x.name == timer.name) {
            return Err(DomainXmlError::structure(format!(
                "timer '{}' listed twice",
                timer.name.as_str()
            )));
        }
        timers.push(timer);
    }
    Ok(ClockDef {
        offset,
        adjustment,
        basis_utc,
        timers,
    })
}

fn parse_variable(
    el: &XmlElement,
    offset: ClockOffset,
) -> Result<(Option<i64>, Option<bool>), DomainXmlError> {
    if offset != ClockOffset::Variable {
        if el.attr("adjustment").is_some() || el.attr("basis").is_some() {
            return Err(DomainXmlError::structure(
                "clock adjustment and basis belong to offset='variable'",
            ));
        }
        return Ok((None, None));
    }
    let adjustment = match el.attr("adjustment") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|a| a.abs() <= 10 * 365 * 86400)
            .ok_or_else(|| {
                DomainXmlError::invalid(
                    "<clock adjustment>",
                    v,
                    "expected seconds within ten years",
                )
            })?,
    };
    let basis_utc = match el.attr("basis").unwrap_or("utc") {
        "utc" => true,
        "localtime" => {
            return Err(DomainXmlError::unsupported_because(
                "clock basis",
                "localtime",
                "a variable clock is adjusted from UTC here (basis='utc')",
            ));
        }
        o => return Err(DomainXmlError::unsupported("clock basis", o)),
    };
    Ok((Some(adjustment), Some(basis_utc)))
}

fn parse_timer(t: &XmlElement) -> Result<TimerDef, DomainXmlError> {
    const T: &str = "clock/timer";
    t.check_attrs(T, &["name", "tickpolicy", "present", "track"])?;
    t.check_children(T, &[])?;
    let name = named("clock timer", t.req_attr(T, "name")?, TimerName::from_name)?;
    let tickpolicy = t.attr("tickpolicy").map(str::to_string);
    let ok_policies: &[&str] = match name {
        TimerName::Rtc => &["catchup", "delay"],
        TimerName::Pit => &["delay", "discard"],
        _ => &[],
    };
    if let Some(p) = &tickpolicy
        && !ok_policies.contains(&p.as_str())
    {
        return Err(DomainXmlError::unsupported(
            format!("{} timer tickpolicy", name.as_str()),
            p,
        ));
    }
    let track = match t.attr("track") {
        None => None,
        Some(v) if name == TimerName::Rtc => {
            Some(named("rtc timer track", v, TimerTrack::from_name)?)
        }
        Some(_) => {
            return Err(DomainXmlError::structure(format!(
                "only the rtc timer has 'track', not {}",
                name.as_str()
            )));
        }
    };
    let present = t
        .attr("present")
        .map(|v| parse_yes_no("<clock/timer present>", v))
        .transpose()?;
    if present == Some(false) && matches!(name, TimerName::Rtc | TimerName::Pit) {
        return Err(DomainXmlError::unsupported_because(
            format!("{} timer present", name.as_str()),
            "no",
            "a PC always has its RTC and PIT",
        ));
    }
    Ok(TimerDef {
        name,
        tickpolicy,
        track,
        present,
    })
}

pub(crate) fn format_clock(w: &mut XmlWriter, c: &ClockDef) {
    let mut attrs = vec![("offset", c.offset.as_str().to_string())];
    if let Some(a) = c.adjustment {
        attrs.push(("adjustment", a.to_string()));
    }
    if let Some(b) = c.basis_utc {
        attrs.push(("basis", if b { "utc" } else { "localtime" }.into()));
    }
    if c.timers.is_empty() {
        w.empty("clock", &attrs);
        return;
    }
    w.open("clock", &attrs);
    for t in &c.timers {
        let mut a = vec![("name", t.name.as_str().to_string())];
        if let Some(p) = &t.tickpolicy {
            a.push(("tickpolicy", p.clone()));
        }
        if let Some(tr) = t.track {
            a.push(("track", tr.as_str().into()));
        }
        if let Some(p) = t.present {
            a.push(("present", yes_no(p)));
        }
        w.empty("timer", &a);
    }
    w.close("clock");
}
