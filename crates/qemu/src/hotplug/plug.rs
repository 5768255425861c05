//! Plugging a device into a running guest: a virtio disk (nodes, then
//! device), a NIC (tap, backend, then device), or an rng, input, watchdog
//! or controller (backend objects, then device), each undone on failure,
//! so nothing is left half-attached.

use std::collections::HashSet;
use std::os::fd::AsFd;

use domain::DiskDef;
use qmp::commands::{
    BlockdevAdd, BlockdevDel, Closefd, DeviceAdd, NetdevAdd, NetdevDel, ObjectAdd, ObjectDel,
    WatchdogSetAction,
};
use qmp::types::stats::QueryNamedBlockNodes;

use super::device_error;
use crate::lifecycle::host::owner;
use crate::object::Domain;
use crate::object::def::Def;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// Plugs `disk` into the running guest: nodes, then device; undone on
/// failure.
pub(super) async fn plug_disk(s: &Shared, dom: &Domain, disk: DiskDef) -> Result<()> {
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    if let Some(src) = &disk.source {
        std::fs::metadata(src)
            .map_err(|e| Error::io(format!("Cannot access storage file '{}'", src.display()), e))?;
    }
    if let Some(src) = &disk.source {
        owner::give_live(s, dom, ctx.generation, src)?;
    }
    let src = disk.source.clone();
    let res = plug_disk_nodes(s, dom, &ctx, &live, disk).await;
    if let Some(src) = &src {
        owner::given(dom, ctx.generation, src);
    }
    if res.is_err() {
        owner::settle(s, dom, ctx.generation);
    }
    res
}

/// [`plug_disk`] once QEMU's user may open the disk.
async fn plug_disk_nodes(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    live: &Def,
    disk: DiskDef,
) -> Result<()> {
    let used = node_numbers_in_use(s, dom).await?;
    let (new_live, i) = live.changed(|d| {
        let i = d.add_disk(disk, true)?;
        skip_used_numbers(d, i, &used);
        Ok(i)
    })?;
    let d = new_live.domain();
    let (Some(plug), Some(disk)) = (d.disk_plug(i), d.devices.disks.get(i).cloned()) else {
        return Err(Error::Internal("attached disk missing".into()));
    };
    let t = s.cfg.monitor_timeout;
    let mut added = Vec::new();
    let mut res = Ok(());
    for b in &plug.blockdevs {
        let args = b.as_object().cloned().unwrap_or_default();
        let name = b["node-name"].as_str().unwrap_or_default().to_owned();
        res = dom.qmp(&BlockdevAdd(args), t).await.map(|_| ());
        if res.is_err() {
            break;
        }
        added.push(name);
    }
    if res.is_ok() {
        res = dom
            .qmp(&DeviceAdd(plug.device.clone()), t)
            .await
            .map(|_| ());
    }
    if let Err(e) = res {
        for node_name in added.into_iter().rev() {
            if let Err(e) = dom.qmp(&BlockdevDel { node_name }, t).await {
                tracing::warn!(domain = dom.name(), error = %e, "cannot remove node of a failed attach");
            }
        }
        return Err(e);
    }
    if !dom.lock().device_plugged(dom, &s.hub, ctx.generation, disk) {
        return Err(Error::NotRunning);
    }
    status::persist(s, dom)
}

/// The node numbers N of the `libvirt-N-*` nodes QEMU holds now: those
/// of an unplugged disk stay taken until their deletion, so a new disk
/// or medium never reuses them early.
pub(crate) async fn node_numbers_in_use(s: &Shared, dom: &Domain) -> Result<HashSet<u32>> {
    let cmd = QueryNamedBlockNodes { flat: Some(true) };
    let nodes = dom.qmp(&cmd, s.cfg.monitor_timeout).await?;
    let number = |n: &str| {
        let rest = n.strip_prefix("libvirt-")?;
        rest.split('-').next()?.parse::<u32>().ok()
    };
    Ok(nodes
        .iter()
        .filter_map(|n| n.node_name.as_deref().and_then(number))
        .collect())
}

/// Moves disk `i`'s node number past any `used` one (upwards, so it stays
/// above every other disk's).
pub(crate) fn skip_used_numbers(d: &mut domain::DomainDef, i: usize, used: &HashSet<u32>) {
    if let Some(disk) = d.devices.disks.get_mut(i)
        && let Some(mut n) = disk.node_index
    {
        while used.contains(&n) {
            n = n.saturating_add(1);
        }
        disk.node_index = Some(n);
    }
}

/// Plugs NIC `nic` into the running guest: its tap (made by the network
/// driver, as at start, and handed to QEMU with `getfd`), the backend,
/// then the device; each step undone if a later one fails.
pub(super) async fn plug_nic(s: &Shared, dom: &Domain, nic: domain::InterfaceDef) -> Result<()> {
    if nic.bandwidth.is_some() {
        return Err(Error::ConfigUnsupported(
            "interface bandwidth on a NIC attached live: attach it without, then set it with domiftune".into(),
        ));
    }
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    let (new_live, i) = live.changed(|d| d.add_interface(nic, true))?;
    let d = new_live.domain();
    let Some(nic) = d.devices.interfaces.get(i).cloned() else {
        return Err(Error::Internal("attached interface missing".into()));
    };
    let fd = domain::TapFd {
        fdname: format!("tap-hostnet{}", nic.alias_number(i)),
        vhost_net: crate::lifecycle::start::vhost_net_usable(),
    };
    let needs_tap = nic.itype != domain::InterfaceType::User;
    let plug = d
        .nic_plug(i, needs_tap.then_some(&fd))
        .map_err(device_error)?;
    let Some(plug) = plug else {
        return Err(Error::Internal("attached interface missing".into()));
    };
    // The daemon's copy of the tap closes when this returns: a tap QEMU
    // did not take goes with it.
    let tap = crate::nics::create_one(s, &nic).await?;
    if let Some((t, _)) = &tap {
        dom.pass_fd(&fd.fdname, t.fd.as_fd()).await?;
    }
    backend_and_device(s, dom, &plug, tap.is_some().then_some(&fd.fdname)).await?;
    let record = tap.as_ref().map(|(t, created)| crate::nics::TapRecord {
        name: t.name.clone(),
        ifindex: t.ifindex,
        created: *created,
    });
    if !dom
        .lock()
        .nic_plugged(dom, &s.hub, ctx.generation, nic, (plug.alias, record))
    {
        return Err(Error::NotRunning);
    }
    status::persist(s, dom)
}

/// `netdev_add`, then `device_add`; on failure the backend is deleted,
/// or the descriptor named `fdname` QEMU did not take is closed.
async fn backend_and_device(
    s: &Shared,
    dom: &Domain,
    plug: &domain::NicPlug,
    fdname: Option<&String>,
) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    if let Err(e) = dom.qmp(&NetdevAdd(plug.netdev.clone()), t).await {
        if let Some(fdname) = fdname.cloned()
            && let Err(e) = dom.qmp(&Closefd { fdname }, t).await
        {
            tracing::debug!(domain = dom.name(), error = %e, "tap descriptor of a failed attach");
        }
        return Err(e);
    }
    if let Err(e) = dom.qmp(&DeviceAdd(plug.device.clone()), t).await {
        let id = plug.netdev["id"].as_str().unwrap_or_default().to_owned();
        if let Err(e) = dom.qmp(&NetdevDel { id }, t).await {
            tracing::warn!(domain = dom.name(), error = %e, "cannot remove the backend of a failed attach");
        }
        return Err(e);
    }
    Ok(())
}

/// Plugs `dev` (an rng, input, watchdog or controller) into the running
/// guest: its backend objects, then the device; undone on failure.
pub(super) async fn plug_other(s: &Shared, dom: &Domain, dev: domain::DeviceDef) -> Result<()> {
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    let (new_live, p) = live.changed(|d| d.add_other(&dev, true))?;
    let d = new_live.domain();
    let plug = d.other_plug(p).map_err(device_error)?;
    let (Some(plug), Some(placed)) = (plug, d.other_at(p)) else {
        return Err(Error::Internal("attached device missing".into()));
    };
    let t = s.cfg.monitor_timeout;
    if let domain::DeviceDef::Watchdog(w) = &placed {
        let action = w.action.qemu_action().to_owned();
        dom.qmp(&WatchdogSetAction { action }, t).await?;
    }
    let mut added = Vec::new();
    let mut res = Ok(());
    for o in &plug.objects {
        res = dom.qmp(&ObjectAdd(o.clone()), t).await.map(|_| ());
        if res.is_err() {
            break;
        }
        added.push(o["id"].as_str().unwrap_or_default().to_owned());
    }
    if res.is_ok() {
        res = dom
            .qmp(&DeviceAdd(plug.device.clone()), t)
            .await
            .map(|_| ());
    }
    if let Err(e) = res {
        for id in added.into_iter().rev() {
            if let Err(e) = dom.qmp(&ObjectDel { id }, t).await {
                tracing::warn!(domain = dom.name(), error = %e, "cannot remove the backend of a failed attach");
            }
        }
        return Err(e);
    }
    if !dom
        .lock()
        .other_plugged(dom, &s.hub, ctx.generation, placed, plug.alias)
    {
        return Err(Error::NotRunning);
    }
    status::persist(s, dom)
}
