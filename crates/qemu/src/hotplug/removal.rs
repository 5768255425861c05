//! The removal half of an unplug, owned by QEMU's events: DEVICE_DELETED
//! completes it (whenever it comes), DEVICE_UNPLUG_GUEST_ERROR fails it,
//! and after a daemon restart or an event overflow the pending unplugs
//! are compared with QEMU's device tree.

use std::collections::HashSet;

use qmp::commands::{BlockdevDel, NetdevDel, ObjectDel, QomList};
use qmp::events::DeviceDeletedData;

use crate::actions;
use crate::lifecycle::host::owner;
use crate::object::Domain;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::store::status;

/// DEVICE_DELETED (event task; the state lock only): a device of ours
/// leaves the live definition, then whoever waits for it is woken.
pub(crate) fn device_deleted(s: &Shared, dom: &Domain, ctx: &RunCtx, d: DeviceDeletedData) {
    if let Some(alias) = d.device.as_deref().filter(|a| !a.is_empty())
        && dom
            .lock()
            .device_deleted(dom, &s.hub, ctx.generation, alias)
    {
        ctx.actions.set(actions::RELEASE | actions::PERSIST);
    }
    if let Some(dev) = d.device.or(d.path) {
        ctx.update_progress(|p| p.push_device(dev));
    }
}

/// DEVICE_UNPLUG_GUEST_ERROR: the guest keeps the device.
pub(crate) fn unplug_failed(s: &Shared, dom: &Domain, ctx: &RunCtx, d: DeviceDeletedData) {
    let Some(alias) = d.device.as_deref().filter(|a| !a.is_empty()) else {
        return;
    };
    if dom.lock().unplug_failed(dom, &s.hub, ctx.generation, alias) {
        ctx.actions.set(actions::PERSIST);
        ctx.update_progress(|_| {});
    }
}

/// Deletes the block nodes of unplugged disks and the backends of
/// unplugged NICs and other devices, and releases the NICs' taps (action
/// task).
pub(crate) async fn release(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let netdevs = dom.lock().take_released_netdevs(ctx.generation);
    for id in netdevs {
        if let Err(e) = dom.qmp(&NetdevDel { id }, s.cfg.monitor_timeout).await {
            tracing::warn!(domain = dom.name(), error = %e, "cannot delete the backend of an unplugged NIC");
        }
    }
    let objects = dom.lock().take_released_objects(ctx.generation);
    for id in objects {
        if let Err(e) = dom.qmp(&ObjectDel { id }, s.cfg.monitor_timeout).await {
            tracing::warn!(domain = dom.name(), error = %e, "cannot delete the backend of an unplugged device");
        }
    }
    let taps = dom.lock().take_released_taps(ctx.generation);
    crate::nics::release(s, &taps.into_iter().map(Some).collect::<Vec<_>>());
    let nodes = dom.lock().take_released_nodes(ctx.generation);
    for node_name in nodes {
        let cmd = BlockdevDel {
            node_name: node_name.clone(),
        };
        match dom.qmp(&cmd, s.cfg.monitor_timeout).await {
            Ok(_) => {
                tracing::debug!(
                    domain = dom.name(),
                    node = node_name,
                    "block node of an unplugged disk deleted"
                );
            }
            Err(e) => {
                tracing::warn!(domain = dom.name(), node = node_name, error = %e, "cannot delete the node of an unplugged disk");
            }
        }
    }
    owner::settle(s, dom, ctx.generation);
}

/// Completes the pending unplugs of devices QEMU no longer has (their
/// DEVICE_DELETED came while nobody listened, or was coalesced away).
pub(crate) async fn reconcile(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let pending = match dom.lock().run_of(ctx.generation) {
        Some(r) if !r.pending_unplug().is_empty() => r.pending_unplug().to_vec(),
        _ => return,
    };
    let path = "/machine/peripheral".to_owned();
    let present: HashSet<String> = match dom.qmp(&QomList { path }, s.cfg.monitor_timeout).await {
        Ok(list) => list.into_iter().map(|p| p.name).collect(),
        Err(e) => {
            tracing::debug!(domain = dom.name(), error = %e, "cannot list QEMU's devices");
            return;
        }
    };
    let mut done = false;
    for alias in pending.iter().filter(|a| !present.contains(*a)) {
        tracing::info!(
            domain = dom.name(),
            device = alias,
            "unplug completed while unobserved"
        );
        done |= dom
            .lock()
            .device_deleted(dom, &s.hub, ctx.generation, alias);
    }
    if done {
        release(s, dom, ctx).await;
        status::persist_in_background(s, dom);
        ctx.update_progress(|_| {});
    }
}
