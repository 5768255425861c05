//! Device hot-plug, driven by QEMU's events.
//!
//! Attach: the device is placed in a copy of the live definition (a free
//! hot-plug port, the next block node number), its block nodes are added
//! (`blockdev-add`), then the device (`device_add`); anything that fails
//! removes what was added, so nothing is left half-attached, and only a
//! complete plug enters the live definition (DEVICE_ADDED).
//!
//! Update: the medium of a CD-ROM ([`media`]).
//!
//! Detach: the unplug is recorded as pending (in the status record), QEMU
//! is asked (`device_del`), and the call waits, bounded by
//! `DriverConfig::unplug_timeout`, for the guest to release the device.
//! The removal itself is the DEVICE_DELETED event's, in the event task
//! ([`removal`]): the device leaves the live definition and DEVICE_REMOVED
//! goes out; its block nodes are deleted by the action task. So a guest
//! that answers late (after the call returned, or after a daemon restart,
//! where [`reconcile`] compares the pending unplugs with QEMU's device
//! tree) still completes the removal, and the waiting call holds only its
//! own job: events, queries and destroy go on beside it.

mod media;
mod removal;

pub(crate) use removal::{device_deleted, reconcile, release, unplug_failed};

use std::collections::HashSet;
use std::sync::Arc;

use domain::{DeviceDef, DiskDef};
use joblock::NormalJob;
use qmp::commands::{BlockdevAdd, BlockdevDel, DeviceAdd, DeviceDel, NetdevAdd, NetdevDel};
use qmp::types::stats::QueryNamedBlockNodes;
use virterror::ToVirError;

use crate::jobs;
use crate::object::Domain;
use crate::object::def::Def;
use crate::shared::Shared;
use crate::store::{files, status};
use crate::{Error, Result};

/// Where a device change applies (`virDomainModificationImpact`):
/// neither flag means the running guest if there is one, else the
/// persistent definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Impact {
    pub live: bool,
    pub config: bool,
}

impl Impact {
    fn resolve(self, active: bool, persistent: bool) -> Result<Impact> {
        let r = if self.live || self.config {
            self
        } else {
            Impact {
                live: active,
                config: !active,
            }
        };
        if r.live && !active {
            return Err(Error::NotRunning);
        }
        if r.config && !persistent {
            return Err(Error::OperationInvalid(
                "transient domains do not have any persistent config".into(),
            ));
        }
        Ok(r)
    }
}

/// What a detach names: a device XML or a device alias.
pub(crate) enum Which<'a> {
    Xml(&'a str),
    Alias(&'a str),
}

/// The persistent definition and where the change applies.
pub(crate) fn prepare(dom: &Domain, impact: Impact) -> Result<(Arc<Def>, Impact)> {
    let g = dom.lock();
    let impact = impact.resolve(g.is_active(), g.persistent())?;
    Ok((g.def().clone(), impact))
}

fn parse(def: &Def, xml: &str) -> Result<DeviceDef> {
    let family = def.domain().os.family();
    domain::parse_device(xml, family).map_err(|e| Error::Xml(e.to_vir_error()))
}

fn device_error(e: domain::DeviceError) -> Error {
    Error::Xml(e.to_vir_error())
}

/// `virDomainAttachDeviceFlags`.
pub(crate) async fn attach(s: &Shared, dom: &Domain, xml: &str, impact: Impact) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "attach-device", s.cfg.job_wait).await?;
    let (def, impact) = prepare(dom, impact)?;
    let device = parse(&def, xml)?;
    let config = match (&device, impact.config) {
        (_, false) => None,
        (DeviceDef::Disk(disk), true) => Some(def.changed(|d| d.add_disk(disk.clone(), false))?.0),
        (DeviceDef::Interface(nic), true) => {
            Some(def.changed(|d| d.add_interface(nic.clone(), false))?.0)
        }
    };
    match (device, impact.live) {
        (_, false) => {}
        (DeviceDef::Disk(disk), true) => plug_disk(s, dom, disk).await?,
        (DeviceDef::Interface(nic), true) => plug_nic(s, dom, nic).await?,
    }
    match config {
        Some(c) => write_config(s, dom, c).await,
        None => Ok(()),
    }
}

/// A device of a definition, by kind and position.
#[derive(Clone, Copy)]
enum Target {
    Disk(usize),
    Nic(usize),
}

/// The device `which` names in `d`.
fn locate(d: &domain::DomainDef, which: &Which<'_>) -> Result<Target, domain::DeviceError> {
    match which {
        Which::Xml(xml) => match domain::parse_device(xml, d.os.family())? {
            DeviceDef::Disk(disk) => d.find_disk(&disk.target).map(Target::Disk),
            DeviceDef::Interface(nic) => d.find_interface(&nic).map(Target::Nic),
        },
        Which::Alias(a) => {
            let disk = d.devices.disks.iter().position(|x| x.alias() == *a);
            let nic = || d.interface_by_alias(a).map(Target::Nic);
            disk.map(Target::Disk)
                .or_else(nic)
                .ok_or_else(|| domain::DeviceError::Missing(format!("no device with alias {a}")))
        }
    }
}

fn remove(d: &mut domain::DomainDef, t: Target) {
    match t {
        Target::Disk(i) => drop(d.remove_disk(i)),
        Target::Nic(i) if i < d.devices.interfaces.len() => drop(d.devices.interfaces.remove(i)),
        Target::Nic(_) => {}
    }
}

fn alias_of(d: &domain::DomainDef, t: Target) -> Option<String> {
    match t {
        Target::Disk(i) => d.devices.disks.get(i).map(DiskDef::alias),
        Target::Nic(i) => d
            .devices
            .interfaces
            .get(i)
            .map(|n| format!("net{}", n.alias_number(i))),
    }
}

/// `virDomainDetachDeviceFlags` / `virDomainDetachDeviceAlias`.
pub(crate) async fn detach(
    s: &Shared,
    dom: &Domain,
    which: Which<'_>,
    impact: Impact,
) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "detach-device", s.cfg.job_wait).await?;
    let (def, impact) = prepare(dom, impact)?;
    let config = match impact.config {
        true => Some(def.changed(|d| locate(d, &which).map(|t| remove(d, t)))?.0),
        false => None,
    };
    if impact.live {
        let live = dom.lock().live().cloned().ok_or(Error::NotRunning)?;
        let t = locate(live.domain(), &which).map_err(device_error)?;
        let alias = alias_of(live.domain(), t).ok_or(Error::NotRunning)?;
        unplug(s, dom, &alias).await?;
    }
    match config {
        Some(c) => write_config(s, dom, c).await,
        None => Ok(()),
    }
}

/// `virDomainUpdateDeviceFlags`: a CD-ROM's medium (`change-media`).
pub(crate) async fn update(s: &Shared, dom: &Domain, xml: &str, impact: Impact) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "update-device", s.cfg.job_wait).await?;
    let (def, impact) = prepare(dom, impact)?;
    let DeviceDef::Disk(new) = parse(&def, xml)? else {
        let why = "only the medium of a cdrom can be changed".to_owned();
        return Err(device_error(domain::DeviceError::NotUpdatable(why)));
    };
    let config = match impact.config {
        true => {
            let set = |d: &mut domain::DomainDef| {
                let i = d.find_media(&new)?;
                d.set_disk_media(i, new.source.clone(), new.driver.format, false);
                Ok(())
            };
            Some(def.changed(set)?.0)
        }
        false => None,
    };
    if impact.live {
        media::change_live(s, dom, &new).await?;
    }
    match config {
        Some(c) => write_config(s, dom, c).await,
        None => Ok(()),
    }
}

/// Plugs `disk` into the running guest: nodes, then device; undone on
/// failure.
async fn plug_disk(s: &Shared, dom: &Domain, disk: DiskDef) -> Result<()> {
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    if let Some(src) = &disk.source {
        std::fs::metadata(src)
            .map_err(|e| Error::io(format!("Cannot access storage file '{}'", src.display()), e))?;
    }
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

/// Plugs user-mode NIC `nic` into the running guest: backend, then
/// device; the backend removed if the device fails.
async fn plug_nic(s: &Shared, dom: &Domain, nic: domain::InterfaceDef) -> Result<()> {
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    let (new_live, i) = live.changed(|d| d.add_interface(nic, true))?;
    let d = new_live.domain();
    let plug = d.nic_plug(i).map_err(device_error)?;
    let (Some(plug), Some(nic)) = (plug, d.devices.interfaces.get(i).cloned()) else {
        return Err(Error::Internal("attached interface missing".into()));
    };
    let t = s.cfg.monitor_timeout;
    dom.qmp(&NetdevAdd(plug.netdev.clone()), t).await?;
    if let Err(e) = dom.qmp(&DeviceAdd(plug.device.clone()), t).await {
        let id = plug.netdev["id"].as_str().unwrap_or_default().to_owned();
        if let Err(e) = dom.qmp(&NetdevDel { id }, t).await {
            tracing::warn!(domain = dom.name(), error = %e, "cannot remove the backend of a failed attach");
        }
        return Err(e);
    }
    if !dom
        .lock()
        .nic_plugged(dom, &s.hub, ctx.generation, nic, plug.alias)
    {
        return Err(Error::NotRunning);
    }
    status::persist(s, dom)
}

/// Asks QEMU to unplug `alias` and waits (bounded) for the guest to
/// release it. Past the wait the removal stays pending and succeeds
/// later; a guest that refuses it is an error.
async fn unplug(s: &Shared, dom: &Domain, alias: &str) -> Result<()> {
    let ctx = dom.lock().active_ctx()?;
    let mut progress = ctx.progress.subscribe();
    let already = {
        let mut g = dom.lock();
        let pending = g
            .run_of(ctx.generation)
            .map(|r| r.pending_unplug().to_vec());
        g.unplug_requested(ctx.generation, alias);
        pending.is_some_and(|p| p.iter().any(|a| a == alias))
    };
    // Intent first: a daemon killed from here on still completes it.
    status::persist(s, dom)?;
    let cmd = DeviceDel {
        id: alias.to_owned(),
    };
    if let Err(e) = dom.qmp(&cmd, s.cfg.monitor_timeout).await {
        // A repeated request QEMU refuses leaves the first one pending.
        if !already {
            dom.lock().unplug_refused(ctx.generation, alias);
            status::persist_in_background(s, dom);
        }
        return Err(e);
    }
    let wait = wait_released(dom, ctx.generation, &mut progress, alias);
    match tokio::time::timeout(s.cfg.unplug_timeout, wait).await {
        Ok(r) => r,
        Err(_) => {
            tracing::info!(
                domain = dom.name(),
                device = alias,
                "guest has not released the device yet: removal pending"
            );
            Ok(())
        }
    }
}

/// Waits until device `alias` left the live definition (or QEMU is
/// gone); an error if the guest refused to release it.
async fn wait_released(
    dom: &Domain,
    generation: u64,
    progress: &mut tokio::sync::watch::Receiver<crate::object::run::Progress>,
    alias: &str,
) -> Result<()> {
    loop {
        if progress.borrow_and_update().closed {
            // QEMU is gone, and the device with it.
            return Ok(());
        }
        let (present, pending) = {
            let g = dom.lock();
            let present = g
                .live()
                .is_some_and(|l| crate::object::devices::has_device(l, alias));
            let pending = g
                .run_of(generation)
                .is_some_and(|r| r.pending_unplug().iter().any(|a| a == alias));
            (present, pending)
        };
        match (present, pending) {
            (false, _) => return Ok(()),
            (true, false) => {
                return Err(Error::Qemu(format!(
                    "unplug of device '{alias}' was rejected by the guest"
                )));
            }
            (true, true) => {}
        }
        if progress.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// Stores the persistent definition an `--config` change produced.
pub(crate) async fn write_config(s: &Shared, dom: &Domain, def: Def) -> Result<()> {
    let _d = s.define_lock.lock().await;
    let path = s.layout.definition(dom.name());
    files::atomic_write(&path, def.to_xml().as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    dom.lock().set_def(Arc::new(def));
    Ok(())
}
