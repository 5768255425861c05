//! Guest statistics the simulator makes up: block counters that grow with
//! time (so a manager's poller sees them move), image sizes, the balloon's
//! guest statistics and its polling period. No guest exists, so the
//! figures are a deterministic function of the time since start.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::qmp::{Args, QmpError};
use crate::sim::Sim;

/// Virtual size of every simulated image.
const VIRTUAL_SIZE: u64 = 1 << 30;
/// Bytes every simulated image occupies on the host.
const ACTUAL_SIZE: u64 = 200 << 20;

/// What `qom-set` changed.
pub(crate) struct GuestStats {
    started: Instant,
    /// `guest-stats-polling-interval` of the balloon, seconds (0 = off).
    period: Cell<u64>,
}

impl Default for GuestStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            period: Cell::new(0),
        }
    }
}

impl GuestStats {
    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counters of one node `ms` after start: 10 reads and 5 writes of 4 KiB
/// per second, a flush per second, 50 µs per request.
fn counters(ms: u64) -> Value {
    let (rd, wr, fl) = (ms / 100, ms / 200, ms / 1000);
    json!({
        "rd_bytes": rd * 4096, "wr_bytes": wr * 4096,
        "rd_operations": rd, "wr_operations": wr, "flush_operations": fl,
        "rd_total_time_ns": rd * 50_000, "wr_total_time_ns": wr * 50_000,
        "flush_total_time_ns": fl * 50_000,
        "wr_highest_offset": (wr * 4096) % VIRTUAL_SIZE,
        "failed_rd_operations": 0, "failed_wr_operations": 0,
        "failed_flush_operations": 0, "invalid_rd_operations": 0,
        "rd_merged": 0, "wr_merged": 0, "idle_time_ns": 0,
        "account_invalid": true, "account_failed": true, "timed_stats": []
    })
}

/// `query-blockstats`: one entry per format node (`*-format`, the device's
/// top), its storage node as `parent`; with `query-nodes`, every node.
pub(crate) fn query_blockstats(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["query-nodes"])?;
    let all = args.get("query-nodes").and_then(Value::as_bool) == Some(true);
    let ms = sim.guest.millis();
    let vm = sim.vm.borrow();
    let entry = |n: &str| {
        let mut e = json!({"device": "", "node-name": n, "stats": counters(ms)});
        if let Some(storage) = n.strip_suffix("-format").map(|p| format!("{p}-storage")) {
            e["parent"] = json!({"node-name": storage, "stats": counters(ms)});
        }
        e
    };
    let list = vm
        .nodes
        .iter()
        .filter(|n| all || n.ends_with("-format"))
        .map(|n| entry(n))
        .collect();
    Ok(Value::Array(list))
}

/// The `image` member of a named node.
pub(crate) fn image(node: &str) -> Value {
    json!({"filename": node, "format": "qcow2", "virtual-size": VIRTUAL_SIZE,
           "actual-size": ACTUAL_SIZE, "dirty-flag": false})
}

/// `qom-get` of a device's property: the balloon's `guest-stats` and
/// `guest-stats-polling-interval`.
pub(crate) fn qom_get(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["path", "property"])?;
    let path = args.str("path")?;
    let prop = args.str("property")?;
    device_of(sim, path)?;
    match prop {
        "guest-stats-polling-interval" => Ok(json!(sim.guest.period.get())),
        "guest-stats" => Ok(guest_stats(sim)),
        _ => Err(QmpError::generic(format!("Property '{prop}' not found"))),
    }
}

/// `qom-set` of the balloon's `guest-stats-polling-interval`.
pub(crate) fn qom_set(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["path", "property", "value"])?;
    let path = args.str("path")?;
    let prop = args.str("property")?;
    device_of(sim, path)?;
    if prop != "guest-stats-polling-interval" {
        return Err(QmpError::generic(format!("Property '{prop}' not found")));
    }
    let v = args.u64("value")?;
    sim.guest.period.set(v);
    Ok(json!({}))
}

fn device_of(sim: &Sim, path: &str) -> Result<(), QmpError> {
    let id = path.strip_prefix("/machine/peripheral/").unwrap_or(path);
    if sim.vm.borrow().devices.iter().any(|d| d == id) {
        Ok(())
    } else {
        Err(QmpError::generic(format!("Device '{path}' not found")))
    }
}

/// The guest's memory statistics: reported (as a virtio guest does) only
/// once a polling period is set; -1 otherwise.
fn guest_stats(sim: &Sim) -> Value {
    let mem = sim.cfg.mem_mib << 20;
    if sim.guest.period.get() == 0 {
        let none = -1;
        return json!({"stats": {"stat-swap-in": none, "stat-swap-out": none,
            "stat-major-faults": none, "stat-minor-faults": none,
            "stat-free-memory": none, "stat-total-memory": none,
            "stat-available-memory": none, "stat-disk-caches": none,
            "stat-htlb-pgalloc": none, "stat-htlb-pgfail": none}, "last-update": 0});
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let faults = sim.guest.millis() / 10;
    json!({"stats": {"stat-swap-in": 0, "stat-swap-out": 0,
        "stat-major-faults": faults / 100, "stat-minor-faults": faults,
        "stat-free-memory": mem / 2, "stat-total-memory": mem,
        "stat-available-memory": mem * 3 / 4, "stat-disk-caches": mem / 8,
        "stat-htlb-pgalloc": 0, "stat-htlb-pgfail": 0}, "last-update": now})
}
