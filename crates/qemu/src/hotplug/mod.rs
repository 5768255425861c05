//! Device hot-plug, driven by QEMU's events.
//!
//! Attach ([`plug`]): the device is placed in a copy of the live
//! definition (a free hot-plug port, the next block node number or NIC,
//! rng or input alias), its backend is added (`blockdev-add` nodes, the
//! tap and `netdev_add`, an rng's `object-add`),
//! then the device (`device_add`); anything that fails removes what was
//! added, so nothing is left half-attached, and only a complete plug
//! enters the live definition (DEVICE_ADDED).
//!
//! Update: the medium of a CD-ROM ([`media`]).
//!
//! Pinning: a vCPU's or the emulator's host CPUs, live and in the
//! definition ([`pins`]).
//!
//! Detach ([`unplug`]): the unplug is recorded as pending (in the status
//! record), QEMU is asked (`device_del`), and the call waits, bounded by
//! `DriverConfig::unplug_timeout`, for the guest to release the device.
//! The removal itself is the DEVICE_DELETED event's, in the event task
//! ([`removal`]): the device leaves the live definition and DEVICE_REMOVED
//! goes out; its block nodes or network backend are deleted by the action
//! task. So a guest
//! that answers late (after the call returned, or after a daemon restart,
//! where [`reconcile`] compares the pending unplugs with QEMU's device
//! tree) still completes the removal, and the waiting call holds only its
//! own job: events, queries and destroy go on beside it.

mod media;
mod pins;
mod plug;
mod removal;
mod unplug;
pub(crate) mod vcpus;

pub use pins::{PinInfo, PinTarget};
pub(crate) use pins::{info as pin_info, pin};
pub(crate) use plug::{node_numbers_in_use, skip_used_numbers};
pub(crate) use removal::{device_deleted, reconcile, release, unplug_failed};

use plug::{plug_disk, plug_nic, plug_other};
use unplug::unplug;

use std::sync::Arc;

use domain::{DeviceDef, DiskDef};
use joblock::NormalJob;
use virterror::ToVirError;

use crate::jobs;
use crate::object::Domain;
use crate::object::def::Def;
use crate::shared::Shared;
use crate::store::files;
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
        (other, true) => Some(def.changed(|d| d.add_other(other, false))?.0),
    };
    match (device, impact.live) {
        (_, false) => {}
        (DeviceDef::Disk(disk), true) => plug_disk(s, dom, disk).await?,
        (DeviceDef::Interface(nic), true) => plug_nic(s, dom, nic).await?,
        (other, true) => plug_other(s, dom, other).await?,
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
    Other(domain::OtherPos),
}

/// The device `which` names in `d`.
fn locate(d: &domain::DomainDef, which: &Which<'_>) -> Result<Target, domain::DeviceError> {
    match which {
        Which::Xml(xml) => match domain::parse_device(xml, d.os.family())? {
            DeviceDef::Disk(disk) => d.find_disk(&disk.target).map(Target::Disk),
            DeviceDef::Interface(nic) => d.find_interface(&nic).map(Target::Nic),
            other => d.find_other(&other).map(Target::Other),
        },
        Which::Alias(a) => {
            let disk = d.devices.disks.iter().position(|x| x.alias() == *a);
            let nic = || d.interface_by_alias(a).map(Target::Nic);
            let other = || d.other_by_alias(a).map(Target::Other);
            disk.map(Target::Disk)
                .or_else(nic)
                .or_else(other)
                .ok_or_else(|| domain::DeviceError::Missing(format!("no device with alias {a}")))
        }
    }
}

fn remove(d: &mut domain::DomainDef, t: Target) {
    match t {
        Target::Disk(i) => drop(d.remove_disk(i)),
        Target::Nic(i) if i < d.devices.interfaces.len() => drop(d.devices.interfaces.remove(i)),
        Target::Nic(_) => {}
        Target::Other(p) => drop(d.remove_other(p)),
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
        Target::Other(p) => d.other_alias(p),
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
        if let Target::Other(p) = t {
            live.domain().check_unplug_other(p).map_err(device_error)?;
        }
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

/// Stores the persistent definition an `--config` change produced.
pub(crate) async fn write_config(s: &Shared, dom: &Domain, def: Def) -> Result<()> {
    let _d = s.define_lock.lock().await;
    let path = s.layout.definition(dom.name());
    files::atomic_write(&path, def.to_xml().as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    dom.lock().set_def(Arc::new(def));
    Ok(())
}
