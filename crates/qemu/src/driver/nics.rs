//! The NICs of a running domain as the host sees them: which tap backs
//! each one, for `domifstat`, `domifaddr` and the interface statistics;
//! and the one change of a NIC made here, its link state.

use std::sync::Arc;

use domain::{Bandwidth, BandwidthRate, DomainDef, InterfaceDef, MacAddr};
use joblock::NormalJob;
use qmp::commands::SetLink;
use virterror::ToVirError;

use super::Driver;
use crate::hotplug::Impact;
use crate::jobs;
use crate::nics::TapRecord;
use crate::object::Domain;
use crate::object::def::Def;
use crate::store::{files, status};
use crate::{Error, Result};

/// A NIC of a running domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNic {
    /// The host tap; `None` for user-mode networking.
    pub tap: Option<String>,
    /// The guest's MAC address, lower case.
    pub mac: String,
    /// `<source network>` of a `type='network'` NIC.
    pub network: Option<String>,
}

impl LiveNic {
    /// Whether `path` names this NIC, as `domifstat` takes it: the tap's
    /// name or the MAC address (any case).
    pub fn is_named(&self, path: &str) -> bool {
        self.tap.as_deref() == Some(path) || self.mac.eq_ignore_ascii_case(path)
    }
}

impl Driver {
    /// The NICs of running domain `dom`, in definition order. A snapshot:
    /// no job, no monitor.
    pub fn live_nics(&self, dom: &Domain) -> Result<Vec<LiveNic>> {
        let g = dom.lock();
        let run = g.run().ok_or(Error::NotRunning)?;
        let def = g.current_def();
        let taps = run.taps();
        Ok(def
            .domain()
            .devices
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, n)| LiveNic {
                tap: taps.get(i).cloned().flatten().map(|t| t.name),
                mac: n.mac.to_string(),
                network: (n.itype == domain::InterfaceType::Network)
                    .then(|| n.source.clone())
                    .flatten(),
            })
            .collect())
    }
}

impl Driver {
    /// `virDomainUpdateDeviceFlags` for an `<interface>` whose only change
    /// is its `<link state>`: the running guest's link (QMP `set_link`)
    /// and/or the persistent definition. The NIC is the one with the MAC
    /// address the XML names, or the only one. A modify job.
    pub async fn update_interface_link(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        affect: Impact,
        owner: &str,
    ) -> Result<()> {
        let (want, named) =
            domain::parse_interface_xml(xml).map_err(|e| Error::Xml(e.to_vir_error()))?;
        let up = want.link_up.unwrap_or(true);
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
        if affect.live {
            let (live, generation) = {
                let g = dom.lock();
                let run = g.run().ok_or(Error::NotRunning)?;
                (g.current_def(), run.ctx().generation)
            };
            let i = link_target(live.domain(), &want, named)?;
            let cmd = SetLink {
                name: format!("net{i}"),
                up,
            };
            dom.qmp(&cmd, s.cfg.monitor_timeout).await?;
            dom.lock()
                .update_live(generation, |d| d.with_interface_link(i, up));
            status::persist(s, dom)?;
        }
        if affect.config {
            let def = persistent_def(dom)?;
            let i = link_target(def.domain(), &want, named)?;
            self.save_def(dom, def.with_interface_link(i, up)).await?;
        }
        Ok(())
    }
}

/// The index of the NIC of `def` that `want` updates (by the MAC address
/// it names, or the only NIC), when nothing but its link state changes.
fn link_target(def: &DomainDef, want: &InterfaceDef, named: Option<MacAddr>) -> Result<usize> {
    let nics = &def.devices.interfaces;
    let i = match named {
        Some(mac) => nics.iter().position(|n| n.mac == mac).ok_or_else(|| {
            Error::OperationFailed(format!("no device matching mac address {mac} found"))
        })?,
        None if nics.len() == 1 => 0,
        None => {
            return Err(Error::OperationFailed(
                "matching network device was not found: name its <mac address>".into(),
            ));
        }
    };
    let old = &nics[i];
    let mut same = want.clone();
    same.mac = old.mac;
    same.link_up = old.link_up;
    if same.target_dev.is_none() {
        same.target_dev.clone_from(&old.target_dev);
    }
    if same.address.is_none() {
        same.address = old.address;
    }
    if same != *old {
        return Err(Error::ConfigUnsupported(
            "only the link state of an interface can be updated this way".into(),
        ));
    }
    Ok(i)
}

/// A change of one direction of an interface's bandwidth
/// (`virDomainSetInterfaceParameters`): each field given replaces the old
/// one, the others are kept; an average of 0 removes the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateChange {
    pub average: Option<u64>,
    pub peak: Option<u64>,
    pub burst: Option<u64>,
    pub floor: Option<u64>,
}

/// A change of an interface's `<bandwidth>`; a direction not given is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BandwidthChange {
    pub inbound: Option<RateChange>,
    pub outbound: Option<RateChange>,
}

impl BandwidthChange {
    /// `old` with this change applied.
    pub fn apply(&self, old: Option<Bandwidth>) -> Result<Option<Bandwidth>> {
        let old = old.unwrap_or_default();
        let dir = |c: Option<RateChange>, o: Option<BandwidthRate>| match c {
            None => Ok(o),
            Some(c) => {
                let base = o.unwrap_or_default();
                let r = BandwidthRate {
                    average: c.average.unwrap_or(base.average),
                    peak: c.peak.or(base.peak),
                    burst: c.burst.or(base.burst),
                    floor: c.floor.or(base.floor),
                };
                if r.average == 0 {
                    return Ok(None);
                }
                if r.floor.is_some_and(|f| f > 0) {
                    return Err(crate::nics::no_floor());
                }
                Ok(Some(BandwidthRate { floor: None, ..r }))
            }
        };
        let bw = Bandwidth {
            inbound: dir(self.inbound, old.inbound)?,
            outbound: dir(self.outbound, old.outbound)?,
        };
        Ok((bw.inbound.is_some() || bw.outbound.is_some()).then_some(bw))
    }
}

impl Driver {
    /// The `<bandwidth>` of the NIC `device` (tap name, target or MAC
    /// address): of the running guest, or with `config` of the persistent
    /// definition. A snapshot.
    pub fn interface_bandwidth(
        &self,
        dom: &Domain,
        device: &str,
        config: bool,
    ) -> Result<Option<Bandwidth>> {
        let (def, taps) = nic_view(dom, !config)?;
        let i = find_nic(def.domain(), &taps, device)?;
        Ok(def.domain().devices.interfaces[i].bandwidth)
    }

    /// `virsh domiftune DOM DEV --inbound/--outbound ...`: shapes the
    /// running guest's tap at once (tc) and/or changes the persistent
    /// definition. A modify job.
    pub async fn set_interface_bandwidth(
        &self,
        dom: &Arc<Domain>,
        device: &str,
        change: BandwidthChange,
        affect: Impact,
        owner: &str,
    ) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
        if affect.live {
            let (def, taps) = nic_view(dom, true)?;
            let i = find_nic(def.domain(), &taps, device)?;
            let tap = taps.get(i).cloned().flatten().ok_or_else(|| {
                Error::ConfigUnsupported(format!(
                    "interface '{device}' is user-mode networking, which has no host device to shape"
                ))
            })?;
            if !tap.created {
                return Err(Error::ConfigUnsupported(format!(
                    "interface '{device}' uses an unmanaged tap, which the driver does not shape"
                )));
            }
            let bw = change.apply(def.domain().devices.interfaces[i].bandwidth)?;
            crate::nics::set_bandwidth(s, &tap.name, bw).await?;
            let generation = dom.lock().run().map(|r| r.ctx().generation);
            if let Some(g) = generation {
                dom.lock()
                    .update_live(g, |d| d.with_interface_bandwidth(i, bw));
            }
            status::persist(s, dom)?;
        }
        if affect.config {
            let def = persistent_def(dom)?;
            let i = find_nic(def.domain(), &[], device)?;
            let bw = change.apply(def.domain().devices.interfaces[i].bandwidth)?;
            self.save_def(dom, def.with_interface_bandwidth(i, bw))
                .await?;
        }
        Ok(())
    }

    /// Writes `def` as `dom`'s persistent definition.
    async fn save_def(&self, dom: &Arc<Domain>, def: Def) -> Result<()> {
        let s = &self.s;
        let def = Arc::new(def);
        let _d = s.define_lock.lock().await;
        let path = s.layout.definition(dom.name());
        files::atomic_write(&path, def.to_xml().as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        dom.lock().define(dom, &s.hub, def);
        Ok(())
    }
}

/// The live definition and taps (`live`), or the persistent definition.
fn nic_view(dom: &Domain, live: bool) -> Result<(Arc<Def>, Vec<Option<TapRecord>>)> {
    if !live {
        return Ok((persistent_def(dom)?, Vec::new()));
    }
    let g = dom.lock();
    let run = g.run().ok_or(Error::NotRunning)?;
    Ok((g.current_def(), run.taps().to_vec()))
}

fn persistent_def(dom: &Domain) -> Result<Arc<Def>> {
    let g = dom.lock();
    if !g.persistent() {
        return Err(Error::OperationInvalid(
            "cannot change the persistent configuration of a transient domain".into(),
        ));
    }
    Ok(g.def().clone())
}

/// The NIC `device` names: its tap, its `<target dev>` or its MAC address.
fn find_nic(def: &DomainDef, taps: &[Option<TapRecord>], device: &str) -> Result<usize> {
    def.devices
        .interfaces
        .iter()
        .enumerate()
        .position(|(i, n)| {
            let tap = taps
                .get(i)
                .and_then(|t| t.as_ref())
                .map(|t| t.name.as_str());
            tap == Some(device)
                || n.target_dev.as_deref() == Some(device)
                || n.mac.to_string().eq_ignore_ascii_case(device)
        })
        .ok_or_else(|| Error::InvalidArg(format!("cannot find device '{device}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(nics: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory>\
             <os><type>hvm</type></os><devices>{nics}</devices></domain>"
        ))
        .unwrap()
    }

    const A: &str = "<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:0a'/><model type='virtio'/></interface>";
    const B: &str = "<interface type='network'><source network='n'/><mac address='52:54:00:00:00:0b'/></interface>";

    #[test]
    fn link_updates_find_their_nic_and_change_nothing_else() {
        let d = def(&format!("{A}{B}"));
        let (want, named) = domain::parse_interface_xml(
            &B.replace("</interface>", "<link state='down'/></interface>"),
        )
        .unwrap();
        assert_eq!(link_target(&d, &want, named).unwrap(), 1);
        let (unnamed, none) = domain::parse_interface_xml(
            "<interface type='network'><source network='n'/></interface>",
        )
        .unwrap();
        assert!(matches!(
            link_target(&d, &unnamed, none),
            Err(Error::OperationFailed(_))
        ));
        let (moved, named) = domain::parse_interface_xml(&B.replace("'n'", "'m'")).unwrap();
        assert!(matches!(
            link_target(&d, &moved, named),
            Err(Error::ConfigUnsupported(_))
        ));
        let (other, named) = domain::parse_interface_xml(&A.replace("0a", "0c")).unwrap();
        assert!(matches!(
            link_target(&d, &other, named),
            Err(Error::OperationFailed(_))
        ));
    }

    #[test]
    fn bandwidth_changes_merge_remove_and_refuse_floors() {
        let old = Bandwidth {
            inbound: Some(BandwidthRate {
                average: 100,
                peak: Some(200),
                burst: None,
                floor: None,
            }),
            outbound: None,
        };
        let c = BandwidthChange {
            inbound: Some(RateChange {
                burst: Some(5),
                ..RateChange::default()
            }),
            outbound: Some(RateChange {
                average: Some(50),
                ..RateChange::default()
            }),
        };
        let new = c.apply(Some(old)).unwrap().unwrap();
        let i = new.inbound.unwrap();
        assert_eq!((i.average, i.peak, i.burst), (100, Some(200), Some(5)));
        assert_eq!(new.outbound.unwrap().average, 50);
        let off = BandwidthChange {
            inbound: Some(RateChange {
                average: Some(0),
                ..RateChange::default()
            }),
            outbound: None,
        };
        assert_eq!(off.apply(Some(old)).unwrap(), None, "nothing left");
        let floor = BandwidthChange {
            inbound: Some(RateChange {
                average: Some(10),
                floor: Some(5),
                ..RateChange::default()
            }),
            outbound: None,
        };
        assert!(floor.apply(None).is_err());
    }
}
