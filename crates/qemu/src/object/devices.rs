//! Devices plugged into and unplugged from a run: the live definition's
//! changes and the DEVICE_ADDED / DEVICE_REMOVED / DEVICE_REMOVAL_FAILED
//! events they imply, emitted inside the state lock like every other
//! transition.

use std::sync::Arc;

use super::Domain;
use super::def::Def;
use super::inner::Inner;
use crate::events::hub::Hub;
use crate::nics::TapRecord;
use crate::state::EventKind;

impl Inner {
    /// The persistent definition after an `attach/detach --config`.
    pub(crate) fn set_def(&mut self, def: Arc<Def>) {
        self.def = def;
    }

    /// Run `generation` now has `disk` (plugged into QEMU): it joins the
    /// live definition, and DEVICE_ADDED goes out. False if the run is
    /// gone.
    pub(crate) fn device_plugged(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        disk: domain::DiskDef,
    ) -> bool {
        let Some(live) = self.live.clone() else {
            return false;
        };
        if self.run_of(generation).is_none() {
            return false;
        }
        let alias = disk.alias();
        if let Ok((def, ())) = live.changed(|d| {
            d.devices.disks.push(disk);
            Ok(())
        }) {
            self.live = Some(Arc::new(def));
        }
        self.emit(dom, hub, EventKind::DeviceAdded { alias });
        true
    }

    /// QEMU is about to be asked to unplug `alias`, a disk of the live
    /// definition (so the pending list never outgrows the definition).
    pub(crate) fn unplug_requested(&mut self, generation: u64, alias: &str) {
        let known = self.live.as_ref().is_some_and(|l| has_device(l, alias));
        if let Some(run) = self.run_mut(generation)
            && known
            && !run.pending_unplug.iter().any(|a| a == alias)
        {
            run.pending_unplug.push(alias.to_owned());
        }
    }

    /// QEMU refused the unplug request of `alias` (nothing is pending).
    pub(crate) fn unplug_refused(&mut self, generation: u64, alias: &str) {
        if let Some(run) = self.run_mut(generation) {
            run.pending_unplug.retain(|a| a != alias);
        }
    }

    /// The guest released device `alias`: it leaves the live definition,
    /// its block nodes are queued for deletion, DEVICE_REMOVED goes out.
    /// False if the run has no such device (already removed, or not ours).
    pub(crate) fn device_deleted(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        alias: &str,
    ) -> bool {
        let Some(live) = self.live.clone() else {
            return false;
        };
        if let Some(i) = live.domain().interface_by_alias(alias) {
            return self.nic_deleted(dom, hub, generation, &live, i, alias);
        }
        if let Some(p) = live.domain().other_by_alias(alias) {
            return self.other_deleted(dom, hub, generation, &live, p, alias);
        }
        let disks = &live.domain().devices.disks;
        let Some(i) = disks.iter().position(|d| d.alias() == alias) else {
            return false;
        };
        let nodes = disks[i]
            .source
            .is_some()
            .then(|| domain::disk_nodes(i, &disks[i]));
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.pending_unplug.retain(|a| a != alias);
        if let Some((storage, format)) = nodes {
            run.released_nodes.extend([format, storage]);
        }
        let removed = live.changed(|d| Ok(d.remove_disk(i)));
        if let Ok((def, _)) = removed {
            self.live = Some(Arc::new(def));
        }
        let alias = alias.to_owned();
        self.emit(dom, hub, EventKind::DeviceRemoved { alias });
        true
    }

    /// NIC `i` of `live`, `alias`, is gone: its backend is queued for
    /// deletion.
    fn nic_deleted(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        live: &Def,
        i: usize,
        alias: &str,
    ) -> bool {
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.pending_unplug.retain(|a| a != alias);
        let number = alias.strip_prefix("net").unwrap_or(alias);
        run.released_netdevs.push(format!("hostnet{number}"));
        // The taps are by interface index: the later ones move down.
        if i < run.taps.len()
            && let Some(tap) = run.taps.remove(i)
        {
            run.released_taps.push(tap);
        }
        let removed = live.changed(|d| Ok(d.devices.interfaces.remove(i)));
        if let Ok((def, _)) = removed {
            let def = def.with_live(|l| {
                if i < l.taps.len() {
                    l.taps.remove(i);
                }
            });
            self.live = Some(Arc::new(def));
        }
        let alias = alias.to_owned();
        self.emit(dom, hub, EventKind::DeviceRemoved { alias });
        true
    }

    /// Device `p` of `live` (an rng, input, watchdog or controller),
    /// `alias`, is gone: its backend objects are queued for deletion.
    fn other_deleted(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        live: &Def,
        p: domain::OtherPos,
        alias: &str,
    ) -> bool {
        let Ok((def, objects)) = live.changed(|d| Ok(d.remove_other(p))) else {
            return false;
        };
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.pending_unplug.retain(|a| a != alias);
        run.released_objects.extend(objects);
        self.live = Some(Arc::new(def));
        let alias = alias.to_owned();
        self.emit(dom, hub, EventKind::DeviceRemoved { alias });
        true
    }

    /// Run `generation` now has `dev` (an rng, input, watchdog or
    /// controller, placed and plugged into QEMU): it joins the live
    /// definition, and DEVICE_ADDED goes out.
    pub(crate) fn other_plugged(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        dev: domain::DeviceDef,
        alias: String,
    ) -> bool {
        let Some(live) = self.live.clone() else {
            return false;
        };
        if self.run_of(generation).is_none() {
            return false;
        }
        if let Ok((def, ())) = live.changed(|d| {
            d.push_other(dev);
            Ok(())
        }) {
            self.live = Some(Arc::new(def));
        }
        self.emit(dom, hub, EventKind::DeviceAdded { alias });
        true
    }

    /// The backend objects unplugged devices left behind, to delete.
    pub(crate) fn take_released_objects(&mut self, generation: u64) -> Vec<String> {
        self.run_mut(generation)
            .map(|r| std::mem::take(&mut r.released_objects))
            .unwrap_or_default()
    }

    /// The guest refused to release `alias`: DEVICE_REMOVAL_FAILED, and
    /// the device stays. False if no unplug of it was pending.
    pub(crate) fn unplug_failed(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        alias: &str,
    ) -> bool {
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        let before = run.pending_unplug.len();
        run.pending_unplug.retain(|a| a != alias);
        if run.pending_unplug.len() == before {
            return false;
        }
        let alias = alias.to_owned();
        self.emit(dom, hub, EventKind::DeviceRemovalFailed { alias });
        true
    }

    /// The network backends unplugged NICs left behind, to delete.
    pub(crate) fn take_released_netdevs(&mut self, generation: u64) -> Vec<String> {
        self.run_mut(generation)
            .map(|r| std::mem::take(&mut r.released_netdevs))
            .unwrap_or_default()
    }

    /// Run `generation` now has NIC `nic` (plugged into QEMU, on `tap`
    /// if it has one): it joins the live definition, and DEVICE_ADDED
    /// goes out.
    pub(crate) fn nic_plugged(
        &mut self,
        dom: &Domain,
        hub: &Hub,
        generation: u64,
        nic: domain::InterfaceDef,
        plugged: (String, Option<TapRecord>),
    ) -> bool {
        let (alias, tap) = plugged;
        let Some(live) = self.live.clone() else {
            return false;
        };
        let i = live.domain().devices.interfaces.len();
        let Some(run) = self.run_mut(generation) else {
            return false;
        };
        run.taps.resize(i, None);
        run.taps.push(tap.clone());
        if let Ok((def, ())) = live.changed(|d| {
            d.devices.interfaces.push(nic);
            Ok(())
        }) {
            let def = def.with_live(|l| {
                l.taps.resize(i, None);
                l.taps.push(tap.map(|t| t.name));
            });
            self.live = Some(Arc::new(def));
        }
        self.emit(dom, hub, EventKind::DeviceAdded { alias });
        true
    }

    /// The taps unplugged NICs left behind, to release.
    pub(crate) fn take_released_taps(&mut self, generation: u64) -> Vec<TapRecord> {
        self.run_mut(generation)
            .map(|r| std::mem::take(&mut r.released_taps))
            .unwrap_or_default()
    }

    /// The block nodes unplugged disks left behind, to delete.
    pub(crate) fn take_released_nodes(&mut self, generation: u64) -> Vec<String> {
        self.run_mut(generation)
            .map(|r| std::mem::take(&mut r.released_nodes))
            .unwrap_or_default()
    }
}

/// Whether `live` has a device whose alias is `alias`.
pub(crate) fn has_device(live: &Def, alias: &str) -> bool {
    let d = live.domain();
    d.devices.disks.iter().any(|x| x.alias() == alias)
        || d.interface_by_alias(alias).is_some()
        || d.other_by_alias(alias).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::process::Process;
    use crate::object::run::RunStart;

    fn running_domain() -> (Arc<Domain>, u64) {
        let xml = "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory>\
                   <vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
                   <disk type='file'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk>\
                   </devices></domain>";
        let dom = Domain::new(Arc::new(Def::parse(xml).expect("valid XML")), true);
        let me = i32::try_from(std::process::id()).expect("pid");
        let start = RunStart {
            process: Arc::new(Process::open(me, false).expect("pidfd")),
            start_time: 0,
            socket: "/nonexistent.qmp".into(),
            taps: Vec::new(),
            owned: Vec::new(),
        };
        let def = dom.lock().def().clone();
        let generation = dom.lock().start_run(1, &def, start).generation;
        (dom, generation)
    }

    #[tokio::test]
    async fn what_qemu_names_cannot_grow_the_pending_unplugs_or_the_nodes() {
        let (dom, generation) = running_domain();
        let hub = Hub::new(16);
        let mut sub = hub.subscribe();
        let mut g = dom.lock();
        for i in 0..1000 {
            g.unplug_requested(generation, &format!("not-ours-{i}"));
            g.unplug_requested(generation, "virtio-disk0");
            assert!(!g.device_deleted(&dom, &hub, generation, &format!("x{i}")));
            assert!(!g.unplug_failed(&dom, &hub, generation, &format!("y{i}")));
        }
        let run = g.run_of(generation).expect("run");
        assert_eq!(run.pending_unplug(), ["virtio-disk0".to_owned()]);
        assert!(g.take_released_nodes(generation).is_empty());

        assert!(g.device_deleted(&dom, &hub, generation, "virtio-disk0"));
        assert!(
            !g.device_deleted(&dom, &hub, generation, "virtio-disk0"),
            "once"
        );
        let live = g.live().expect("live");
        assert!(live.domain().devices.disks.is_empty());
        assert!(
            g.run_of(generation)
                .expect("run")
                .pending_unplug()
                .is_empty()
        );
        assert_eq!(
            g.take_released_nodes(generation),
            ["libvirt-1-format", "libvirt-1-storage"]
        );
        drop(g);
        let kinds: Vec<_> = std::iter::from_fn(|| sub.try_recv().ok().flatten())
            .map(|e| e.kind)
            .collect();
        let removed = EventKind::DeviceRemoved {
            alias: "virtio-disk0".into(),
        };
        assert_eq!(kinds, vec![removed]);
    }
}
