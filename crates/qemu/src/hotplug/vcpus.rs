//! vCPU hot-plug (`virsh setvcpus --live`): up to the definition's
//! maximum (`<vcpu current='N'>M</vcpu>` starts N of M), a vCPU is added
//! with `device_add` of the slot's CPU type at the first free slot
//! `query-hotpluggable-cpus` lists (its socket/core/thread ids as
//! properties, `vcpuN` as id); removed with `device_del`, the last
//! plugged first, waiting (bounded by the unplug deadline) for QEMU's
//! DEVICE_DELETED. The CPUs QEMU started with cannot be unplugged.

use qmp::commands::{DeviceAdd, DeviceDel};
use qmp::types::stats::{HotpluggableCpu, QueryCpusFast, QueryHotpluggableCpus};
use serde_json::Value;

use crate::object::Domain;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// The QOM path of a CPU plugged with `device_add` (`.../peripheral/vcpuN`).
const PLUGGED: &str = "/machine/peripheral/vcpu";

/// Brings the running guest to `n` vCPUs. The caller holds the job.
pub(crate) async fn set_live(s: &Shared, dom: &Domain, n: u32) -> Result<()> {
    let live = dom.lock().live().cloned().ok_or(Error::NotRunning)?;
    let max = live.domain().vcpus;
    if n > max {
        return Err(Error::InvalidArg(format!(
            "requested vcpus is greater than max allowable vcpus for the live domain: {n} > {max}"
        )));
    }
    let t = s.cfg.monitor_timeout;
    let slots = dom.qmp(&QueryHotpluggableCpus, t).await?;
    let present = count_present(dom, s).await?;
    let res = match n.cmp(&present) {
        std::cmp::Ordering::Greater => plug(s, dom, &slots, n - present).await,
        std::cmp::Ordering::Less => unplug(s, dom, &slots, present - n).await,
        std::cmp::Ordering::Equal => Ok(()),
    };
    // The live definition says what QEMU has, whatever happened.
    let now = count_present(dom, s).await.unwrap_or(present);
    record(s, dom, now)?;
    res
}

async fn count_present(dom: &Domain, s: &Shared) -> Result<u32> {
    let cpus = dom.qmp(&QueryCpusFast, s.cfg.monitor_timeout).await?;
    Ok(u32::try_from(cpus.len()).unwrap_or(u32::MAX))
}

/// The slot's position, for ordering: socket, die, core, thread.
fn place(c: &HotpluggableCpu) -> [u64; 4] {
    let id = |k: &str| c.props.get(k).and_then(Value::as_u64).unwrap_or(0);
    [
        id("socket-id"),
        id("die-id"),
        id("core-id"),
        id("thread-id"),
    ]
}

/// The number N of a plugged CPU's `vcpuN`.
fn plugged_number(c: &HotpluggableCpu) -> Option<u32> {
    c.qom_path.as_deref()?.strip_prefix(PLUGGED)?.parse().ok()
}

async fn plug(s: &Shared, dom: &Domain, slots: &[HotpluggableCpu], count: u32) -> Result<()> {
    let mut free: Vec<&HotpluggableCpu> = slots.iter().filter(|c| c.qom_path.is_none()).collect();
    free.sort_by_key(|c| place(c));
    if free.len() < count as usize {
        return Err(Error::OperationInvalid(format!(
            "not enough free CPU slots: {count} wanted, {} free",
            free.len()
        )));
    }
    let first = slots
        .iter()
        .filter_map(plugged_number)
        .max()
        .map_or(0, |m| m.saturating_add(1));
    for (k, c) in (first..).zip(free.into_iter().take(count as usize)) {
        let mut args = c.props.clone();
        args.insert("driver".into(), Value::from(c.driver.clone()));
        args.insert("id".into(), Value::from(format!("vcpu{k}")));
        dom.qmp(&DeviceAdd(args), s.cfg.monitor_timeout).await?;
    }
    Ok(())
}

async fn unplug(s: &Shared, dom: &Domain, slots: &[HotpluggableCpu], count: u32) -> Result<()> {
    let mut plugged: Vec<u32> = slots.iter().filter_map(plugged_number).collect();
    plugged.sort_unstable_by(|a, b| b.cmp(a));
    if plugged.len() < count as usize {
        return Err(Error::OperationInvalid(
            "the vCPUs QEMU started with cannot be unplugged".into(),
        ));
    }
    let ctx = dom.lock().active_ctx()?;
    let mut progress = ctx.progress.subscribe();
    let target = count_present(dom, s).await?.saturating_sub(count);
    for k in plugged.into_iter().take(count as usize) {
        let id = format!("vcpu{k}");
        dom.qmp(&DeviceDel { id }, s.cfg.monitor_timeout).await?;
    }
    let wait = async {
        loop {
            if count_present(dom, s).await? <= target {
                return Ok(());
            }
            if progress.changed().await.is_err() || progress.borrow().closed {
                return Err(Error::NotRunning);
            }
        }
    };
    match tokio::time::timeout(s.cfg.unplug_timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(Error::OperationFailed(
            "vcpu unplug request timed out. Unplug result must be manually inspected in the domain"
                .into(),
        )),
    }
}

/// The live definition has `n` vCPUs online.
fn record(s: &Shared, dom: &Domain, n: u32) -> Result<()> {
    {
        let mut g = dom.lock();
        let ctx = g.active_ctx()?;
        let Some(live) = g.live().cloned() else {
            return Err(Error::NotRunning);
        };
        let (with, ()) = live.changed(|d| {
            d.current_vcpus = (n < d.vcpus).then_some(n);
            Ok(())
        })?;
        g.update_live(ctx.generation, |_| with);
    }
    status::persist(s, dom)
}
