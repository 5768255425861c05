//! The RTC and timers, guest power management, and what guest power-off,
//! reboot and watchdog events do.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Accel, Args, Ctx};
use crate::def::*;

pub(super) fn clock(cx: &Ctx<'_>, a: &mut Args) {
    let clock = cx.def.clock.as_ref();
    let mut rtc = match clock {
        Some(c) if c.offset == ClockOffset::Localtime => "base=localtime".to_string(),
        Some(c) if c.offset == ClockOffset::Variable => variable_base(c),
        _ => "base=utc".to_string(),
    };
    let rtc_timer = clock.and_then(|c| c.timer(TimerName::Rtc));
    match rtc_timer.and_then(|t| t.track) {
        Some(TimerTrack::Guest) => rtc.push_str(",clock=vm"),
        Some(TimerTrack::Wall) => rtc.push_str(",clock=host"),
        Some(TimerTrack::Realtime) => rtc.push_str(",clock=rt"),
        None => {}
    }
    if rtc_timer.and_then(|t| t.tickpolicy.as_deref()) == Some("catchup") {
        rtc.push_str(",driftfix=slew");
    }
    a.opt("-rtc", rtc);
    let pit = clock.and_then(|c| c.timer(TimerName::Pit));
    if let Some(p) = pit.and_then(|t| t.tickpolicy.as_deref())
        && cx.launch.accel == Accel::Kvm
    {
        a.opt("-global", format!("kvm-pit.lost_tick_policy={p}"));
    }
}

/// `offset='variable'`: the RTC starts at now + adjustment (UTC), as QEMU
/// takes an absolute base.
fn variable_base(c: &ClockDef) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = now + c.adjustment.unwrap_or(0);
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let stamp = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    format!("base={stamp}")
}

/// The date of a day number since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(super) fn power(cx: &Ctx<'_>, a: &mut Args) {
    let Some(pm) = &cx.def.pm else {
        return;
    };
    let dev = match cx.family {
        MachineFamily::Q35 => "ICH9-LPC",
        MachineFamily::I440fx => "PIIX4_PM",
    };
    if let Some(v) = pm.suspend_to_mem {
        a.opt("-global", format!("{dev}.disable_s3={}", u8::from(!v)));
    }
    if let Some(v) = pm.suspend_to_disk {
        a.opt("-global", format!("{dev}.disable_s4={}", u8::from(!v)));
    }
}

/// on_crash has no argv: without a pvpanic device (not modelled) QEMU
/// never learns of a guest crash.
pub(super) fn lifecycle(cx: &Ctx<'_>, a: &mut Args) {
    let def = cx.def;
    let reboot_shutdown = def.on_reboot == LifecycleAction::Destroy;
    let keep_on_poweroff = def.on_poweroff != LifecycleAction::Destroy;
    let watchdog = def
        .devices
        .watchdog
        .as_ref()
        .map(|w| w.action.qemu_action());
    if cx.caps.has_action_option() {
        if reboot_shutdown {
            a.opt("-action", "reboot=shutdown");
        }
        if keep_on_poweroff {
            a.opt("-action", "shutdown=pause");
        }
        if let Some(w) = watchdog {
            a.opt("-action", format!("watchdog={w}"));
        }
    } else {
        if reboot_shutdown {
            a.flag("-no-reboot");
        }
        if keep_on_poweroff {
            a.flag("-no-shutdown");
        }
        if let Some(w) = watchdog {
            a.opt("-watchdog-action", w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_clock_starts_at_now_plus_adjustment() {
        let c = ClockDef {
            offset: ClockOffset::Variable,
            adjustment: Some(86400 * 366),
            basis_utc: Some(true),
            timers: Vec::new(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let base = variable_base(&c);
        let (y, ..) = civil_from_days((now + 86400 * 366).div_euclid(86400));
        assert!(base.starts_with(&format!("base={y:04}-")), "{base}");
        assert_eq!(base.len(), "base=YYYY-MM-DDTHH:MM:SS".len(), "{base}");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
