//! Faults real QEMU cannot produce on demand: event floods, a monitor that
//! hangs or is slow, garbage bytes, huge lines, wrong reply ids.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::{Rc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::args::SimOptions;
use crate::output::{Outbox, timestamp};
use crate::sim::Sim;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    PerSec(f64),
    /// As fast as the peer reads.
    Max,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FloodSpec {
    pub name: String,
    pub rate: Rate,
    pub seconds: Option<f64>,
}

impl FloodSpec {
    /// `NAME:RATE[:SECONDS]` (command line).
    pub(crate) fn parse_colon(s: &str) -> Result<FloodSpec, String> {
        let mut it = s.split(':');
        let name = it.next().unwrap_or_default();
        let rate = it.next().ok_or("expected NAME:RATE[:SECONDS]")?;
        let secs = it.next();
        if it.next().is_some() {
            return Err("expected NAME:RATE[:SECONDS]".into());
        }
        FloodSpec::new(name, rate, secs)
    }

    /// `NAME RATE [SECONDS]` (control socket), already split.
    pub(crate) fn new(name: &str, rate: &str, seconds: Option<&str>) -> Result<FloodSpec, String> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!("bad event name '{name}'"));
        }
        let rate = if rate == "max" {
            Rate::Max
        } else {
            match rate.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => Rate::PerSec(r),
                _ => return Err(format!("bad rate '{rate}' (events/s or max)")),
            }
        };
        let seconds = match seconds {
            None => None,
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Some(v),
                _ => return Err(format!("bad duration '{s}'")),
            },
        };
        Ok(FloodSpec {
            name: name.to_string(),
            rate,
            seconds,
        })
    }
}

/// Run-time fault switches.
pub(crate) struct Faults {
    pub hang: Cell<bool>,
    pub slow_ms: Cell<u64>,
    pub wrong_ids: Cell<bool>,
    /// `device_del` is accepted and the device stays: the guest ignores
    /// the unplug request (until `release ID` on the control socket).
    pub ignore_unplug: Cell<bool>,
    /// An outgoing migration moves no byte (a hung disk or a cut
    /// network): it stays active, its `transferred` count frozen at 0,
    /// until `stall-migration off`.
    pub stall_migration: Cell<bool>,
    /// Wakes a monitor waiting for `hang off`.
    pub changed: Notify,
    flood: RefCell<Option<JoinHandle<()>>>,
    /// STOP_RESUME flood: whether the last event emitted was RESUME.
    last_was_resume: Cell<Option<bool>>,
}

impl Faults {
    pub(crate) fn new(o: &SimOptions) -> Faults {
        Faults {
            hang: Cell::new(o.hang),
            slow_ms: Cell::new(o.slow_ms),
            wrong_ids: Cell::new(o.wrong_ids),
            ignore_unplug: Cell::new(o.ignore_unplug),
            stall_migration: Cell::new(false),
            changed: Notify::new(),
            flood: RefCell::new(None),
            last_was_resume: Cell::new(None),
        }
    }

    pub(crate) fn set_hang(&self, on: bool) {
        self.hang.set(on);
        self.changed.notify_waiters();
    }
}

/// `n` bytes that are neither JSON nor UTF-8 nor contain a newline, then a
/// newline: what a corrupted monitor stream looks like.
pub(crate) fn garbage(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 1);
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..n {
        // The first bytes are always invalid UTF-8 and invalid JSON.
        let b = match i {
            0 => 0xff,
            1 => 0xfe,
            2 => 0xc0,
            _ => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            }
        };
        v.push(if b == b'\n' { b'?' } else { b });
    }
    v.push(b'\n');
    v
}

/// Queues one valid event line of about `mib` MiB (`SIM_HUGE`, with a
/// padding string). The padding is produced while writing, so the line
/// costs no memory however large.
pub(crate) fn push_huge(out: &Outbox, mib: u64) {
    let total = usize::try_from(mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20);
    let (s, us) = timestamp();
    let prefix = format!(
        "{{\"timestamp\": {{\"seconds\": {s}, \"microseconds\": {us}}}, \"event\": \"SIM_HUGE\", \"data\": {{\"padding\": \""
    );
    let suffix = "\"}}\r\n";
    let fill = total.saturating_sub(prefix.len() + suffix.len()).max(1);
    out.push(prefix.as_bytes());
    out.push_fill(fill);
    out.push(suffix.as_bytes());
}

/// The `data` of a flooded event: realistic where a manager parses it.
fn flood_data(sim: &Sim, name: &str, i: u64, buf: &mut String) -> bool {
    buf.clear();
    match name {
        "RTC_CHANGE" => {
            buf.push_str("{\"offset\": 0, \"qom-path\": \"/machine/unattached/device[8]\"}");
        }
        "BALLOON_CHANGE" => {
            let actual = (sim.cfg.mem_mib << 20).saturating_sub((i % 16) << 20);
            let _ = write!(buf, "{{\"actual\": {actual}}}");
        }
        "STOP" | "RESUME" | "POWERDOWN" | "SUSPEND" | "WAKEUP" | "STOP_RESUME" => return false,
        _ => buf.push_str("{}"),
    }
    true
}

fn emit_one(sim: &Sim, name: &str, i: u64, buf: &mut String) -> bool {
    if name == "STOP_RESUME" {
        let resume = sim.faults.last_was_resume.get().is_some_and(|r| !r);
        let sent = sim.emit_flood(if resume { "RESUME" } else { "STOP" }, None);
        if sent {
            sim.faults.last_was_resume.set(Some(resume));
        }
        return sent;
    }
    let has = flood_data(sim, name, i, buf);
    sim.emit_flood(name, if has { Some(buf.as_str()) } else { None })
}

/// Starts a flood, replacing any running one.
pub(crate) fn start_flood(sim: &Rc<Sim>, spec: FloodSpec) {
    stop_flood(sim);
    let weak = Rc::downgrade(sim);
    let h = tokio::task::spawn_local(async move {
        run_flood(weak.clone(), spec).await;
        if let Some(sim) = weak.upgrade() {
            sim.faults.flood.borrow_mut().take();
            finish_stop_resume(&sim);
        }
    });
    *sim.faults.flood.borrow_mut() = Some(h);
}

/// `flood off`.
pub(crate) fn stop_flood(sim: &Sim) {
    if let Some(h) = sim.faults.flood.borrow_mut().take() {
        h.abort();
    }
    finish_stop_resume(sim);
}

pub(crate) fn flood_running(sim: &Sim) -> bool {
    sim.faults.flood.borrow().is_some()
}

/// A STOP_RESUME flood ends on the VM's true state so a manager that
/// trusts the last event is right.
fn finish_stop_resume(sim: &Sim) {
    if let Some(last_resume) = sim.faults.last_was_resume.take() {
        let running = sim.vm.borrow().running();
        if last_resume != running {
            sim.emit(if running { "RESUME" } else { "STOP" }, None);
        }
    }
}

/// Token bucket: tokens accrue at `rate`, at most 100 ms worth, spent every
/// tick; tokens that meet a full queue are skipped events. At `max` the
/// flood fills the queue and waits for the writer to drain it.
async fn run_flood(sim: Weak<Sim>, spec: FloodSpec) {
    const TICK: Duration = Duration::from_millis(5);
    let end = spec
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut buf = String::with_capacity(128);
    let mut i: u64 = 0;
    let mut tokens = 0.0f64;
    let mut last = Instant::now();
    loop {
        if end.is_some_and(|e| Instant::now() >= e) {
            return;
        }
        let Some(s) = sim.upgrade() else { return };
        match spec.rate {
            Rate::Max => {
                // Fill every queue to the bound, then wait for a drain.
                let mut n = 0;
                while !s.all_monitors_full() && n < 4096 {
                    if !emit_one(&s, &spec.name, i, &mut buf) {
                        break;
                    }
                    i += 1;
                    n += 1;
                }
                let waiter = s.outboxes.iter().find(|o| o.events_on()).cloned();
                drop(s);
                match waiter {
                    Some(o) if n == 0 || o.len() >= crate::output::CAP => {
                        let _ = tokio::time::timeout(TICK, o.drained.notified()).await;
                    }
                    Some(_) => tokio::task::yield_now().await,
                    None => tokio::time::sleep(TICK).await,
                }
            }
            Rate::PerSec(rate) => {
                let now = Instant::now();
                tokens = (tokens + rate * (now - last).as_secs_f64()).min(rate * 0.1 + 1.0);
                last = now;
                while tokens >= 1.0 {
                    tokens -= 1.0;
                    emit_one(&s, &spec.name, i, &mut buf);
                    i += 1;
                }
                drop(s);
                tokio::time::sleep(TICK).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let s = FloodSpec::parse_colon("RTC_CHANGE:1000:2.5").unwrap();
        assert_eq!(s.rate, Rate::PerSec(1000.0));
        assert_eq!(s.seconds, Some(2.5));
        assert_eq!(FloodSpec::parse_colon("X:max").unwrap().rate, Rate::Max);
        assert!(FloodSpec::parse_colon("X").is_err());
        assert!(FloodSpec::parse_colon("X:0").is_err());
        assert!(FloodSpec::parse_colon("X:1:2:3").is_err());
        assert!(FloodSpec::new("{bad}", "1", None).is_err());
    }

    #[test]
    fn garbage_is_not_utf8_and_one_line() {
        let g = garbage(64);
        assert_eq!(g.len(), 65);
        assert_eq!(g.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(std::str::from_utf8(&g).is_err());
    }
}
