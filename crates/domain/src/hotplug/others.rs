//! The devices besides disks and NICs that plug into a running guest
//! with `device_add` alone (an rng also with its backend object): a
//! virtio-rng, a virtio or USB input, the i6300esb watchdog, and the
//! virtio-scsi and virtio-serial controllers. Other controllers are
//! part of the machine's topology and are refused live.

use serde_json::{Map, Value};

use super::{DeviceDef, DeviceError, device_props};
use crate::argv::{controllers, devices, for_plug};
use crate::def::DomainDef;
use crate::devices::controller::{ControllerDef, ControllerKind};
use crate::devices::input::InputBus;
use crate::devices::rng::RngBackend;

/// Which list of the definition a device is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherKind {
    Rng,
    Input,
    Watchdog,
    Controller,
}

/// A device of those kinds in a definition: its list and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherPos {
    pub kind: OtherKind,
    pub index: usize,
}

/// What plugs such a device into a running QEMU.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherPlug {
    /// The device id (`rng1`, `input3`, `watchdog0`, `scsi1`).
    pub alias: String,
    /// `object-add` arguments of its backends, added first.
    pub objects: Vec<Map<String, Value>>,
    /// `device_add` arguments.
    pub device: Map<String, Value>,
}

fn unsupported(what: String) -> DeviceError {
    DeviceError::LiveUnsupported(what)
}

impl DomainDef {
    /// Adds `dev` (an rng, input, watchdog or controller) with an address
    /// assigned as at define time. `live`: to a running guest, so only
    /// what QEMU can plug, on a free port, under a new alias.
    pub fn add_other(&mut self, dev: &DeviceDef, live: bool) -> Result<OtherPos, DeviceError> {
        if live {
            check_live(dev)?;
        }
        let mut devices = self.devices.clone();
        let pos = match dev {
            DeviceDef::Rng(r) => {
                let mut r = r.clone();
                let next = devices.rngs.iter().enumerate();
                let next = next.map(|(i, x)| x.alias_number(i).saturating_add(1)).max();
                r.alias_index = live.then(|| next.unwrap_or(0));
                devices.rngs.push(r);
                (OtherKind::Rng, devices.rngs.len() - 1)
            }
            DeviceDef::Input(x) => {
                let mut x = x.clone();
                let next = devices.inputs.iter().enumerate();
                let next = next.map(|(i, x)| x.alias_number(i).saturating_add(1)).max();
                x.alias_index = live.then(|| next.unwrap_or(0));
                devices.inputs.push(x);
                (OtherKind::Input, devices.inputs.len() - 1)
            }
            DeviceDef::Watchdog(w) => {
                if devices.watchdog.is_some() {
                    return Err(DeviceError::Exists("domain already has a watchdog".into()));
                }
                devices.watchdog = Some(w.clone());
                (OtherKind::Watchdog, 0)
            }
            DeviceDef::Controller(c) => {
                let mut c = c.clone();
                if c.index == super::NO_INDEX {
                    let used = devices
                        .controllers
                        .iter()
                        .filter(|x| x.ctype() == c.ctype());
                    c.index = used.map(|x| x.index.saturating_add(1)).max().unwrap_or(0);
                }
                if devices.controller(c.ctype(), c.index).is_some() {
                    return Err(DeviceError::Exists(format!(
                        "target {} controller index {} already exists",
                        c.ctype().as_str(),
                        c.index
                    )));
                }
                devices.controllers.push(c);
                (OtherKind::Controller, devices.controllers.len() - 1)
            }
            DeviceDef::Disk(_) | DeviceDef::Interface(_) => {
                return Err(DeviceError::Missing("not a device of this kind".into()));
            }
        };
        let before = self.devices.controllers.len() + usize::from(pos.0 == OtherKind::Controller);
        crate::addr::assign(&mut devices, self.os.family())?;
        if live && devices.controllers.len() != before {
            return Err(DeviceError::NoFreeSlot);
        }
        self.devices = devices;
        Ok(OtherPos {
            kind: pos.0,
            index: pos.1,
        })
    }

    /// The device of the definition `dev` names: an rng by its model and
    /// backend, an input by type and bus, the watchdog by model, a
    /// controller by type and index.
    pub fn find_other(&self, dev: &DeviceDef) -> Result<OtherPos, DeviceError> {
        let d = &self.devices;
        let found = match dev {
            DeviceDef::Rng(r) => d
                .rngs
                .iter()
                .position(|x| x.model == r.model && x.backend == r.backend)
                .map(|i| (OtherKind::Rng, i)),
            DeviceDef::Input(x) => d
                .inputs
                .iter()
                .position(|y| y.kind == x.kind && y.bus == x.bus)
                .map(|i| (OtherKind::Input, i)),
            DeviceDef::Watchdog(w) => d
                .watchdog
                .as_ref()
                .filter(|x| x.model == w.model)
                .map(|_| (OtherKind::Watchdog, 0)),
            DeviceDef::Controller(c) => {
                let index = if c.index == super::NO_INDEX {
                    0
                } else {
                    c.index
                };
                d.controllers
                    .iter()
                    .position(|x| x.ctype() == c.ctype() && x.index == index)
                    .map(|i| (OtherKind::Controller, i))
            }
            DeviceDef::Disk(_) | DeviceDef::Interface(_) => None,
        };
        found
            .map(|(kind, index)| OtherPos { kind, index })
            .ok_or_else(|| DeviceError::Missing("matching device was not found".into()))
    }

    /// A copy of the device at `p`, as placed.
    pub fn other_at(&self, p: OtherPos) -> Option<DeviceDef> {
        let d = &self.devices;
        match p.kind {
            OtherKind::Rng => d.rngs.get(p.index).cloned().map(DeviceDef::Rng),
            OtherKind::Input => d.inputs.get(p.index).cloned().map(DeviceDef::Input),
            OtherKind::Watchdog => d.watchdog.clone().map(DeviceDef::Watchdog),
            OtherKind::Controller => d
                .controllers
                .get(p.index)
                .cloned()
                .map(DeviceDef::Controller),
        }
    }

    /// Appends `dev`, placed already (from [`DomainDef::other_at`] of a
    /// copy of this definition), as it is.
    pub fn push_other(&mut self, dev: DeviceDef) {
        let d = &mut self.devices;
        match dev {
            DeviceDef::Rng(x) => d.rngs.push(x),
            DeviceDef::Input(x) => d.inputs.push(x),
            DeviceDef::Watchdog(x) => d.watchdog = Some(x),
            DeviceDef::Controller(x) => d.controllers.push(x),
            DeviceDef::Disk(_) | DeviceDef::Interface(_) => {}
        }
    }

    /// The device whose alias is `alias`.
    pub fn other_by_alias(&self, alias: &str) -> Option<OtherPos> {
        let d = &self.devices;
        let at = |kind, index| Some(OtherPos { kind, index });
        if let Some(n) = alias
            .strip_prefix("rng")
            .and_then(|n| n.parse::<u32>().ok())
        {
            let i = d
                .rngs
                .iter()
                .enumerate()
                .position(|(i, x)| x.alias_number(i) == n)?;
            return at(OtherKind::Rng, i);
        }
        if let Some(n) = alias
            .strip_prefix("input")
            .and_then(|n| n.parse::<u32>().ok())
        {
            let i = d
                .inputs
                .iter()
                .enumerate()
                .position(|(i, x)| x.alias_number(i) == n)?;
            return at(OtherKind::Input, i);
        }
        if alias == "watchdog0" && d.watchdog.is_some() {
            return at(OtherKind::Watchdog, 0);
        }
        let family = self.os.family();
        let i = d
            .controllers
            .iter()
            .position(|c| c.alias(family) == alias)?;
        at(OtherKind::Controller, i)
    }

    /// The alias of the device at `p`.
    pub fn other_alias(&self, p: OtherPos) -> Option<String> {
        let d = &self.devices;
        match p.kind {
            OtherKind::Rng => d
                .rngs
                .get(p.index)
                .map(|x| format!("rng{}", x.alias_number(p.index))),
            OtherKind::Input => d
                .inputs
                .get(p.index)
                .map(|x| format!("input{}", x.alias_number(p.index))),
            OtherKind::Watchdog => d.watchdog.as_ref().map(|_| "watchdog0".into()),
            OtherKind::Controller => d
                .controllers
                .get(p.index)
                .map(|c| c.alias(self.os.family())),
        }
    }

    /// Removes the device at `p`; the ids of the backend objects it leaves
    /// behind in a running QEMU (`object-del`).
    pub fn remove_other(&mut self, p: OtherPos) -> Vec<String> {
        let d = &mut self.devices;
        match p.kind {
            OtherKind::Rng if p.index < d.rngs.len() => {
                let n = d.rngs[p.index].alias_number(p.index);
                d.rngs.remove(p.index);
                vec![format!("objrng{n}")]
            }
            OtherKind::Input if p.index < d.inputs.len() => {
                d.inputs.remove(p.index);
                Vec::new()
            }
            OtherKind::Watchdog => {
                d.watchdog = None;
                Vec::new()
            }
            OtherKind::Controller if p.index < d.controllers.len() => {
                d.controllers.remove(p.index);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Whether the device at `p` may leave a running guest: a controller
    /// with devices on it may not.
    pub fn check_unplug_other(&self, p: OtherPos) -> Result<(), DeviceError> {
        let Some(c) = (p.kind == OtherKind::Controller)
            .then(|| self.devices.controllers.get(p.index))
            .flatten()
        else {
            return Ok(());
        };
        if let Some(dev) = check_controller_live(c).err().or_else(|| {
            self.controller_in_use(c)
                .then(|| DeviceError::InUse(c.alias(self.os.family())))
        }) {
            return Err(dev);
        }
        Ok(())
    }

    fn controller_in_use(&self, c: &ControllerDef) -> bool {
        use crate::devices::address::Address;
        let d = &self.devices;
        match c.kind {
            ControllerKind::Scsi { .. } => d.disks.iter().any(|x| {
                matches!(&x.address, Some(Address::Drive(a)) if a.controller == c.index)
                    && x.bus == crate::devices::disk::DiskBus::Scsi
            }),
            ControllerKind::VirtioSerial { .. } => d.channels.iter().any(
                |x| matches!(&x.address, Some(Address::VirtioSerial(a)) if a.controller == c.index),
            ),
            _ => false,
        }
    }

    /// The QMP objects that plug the device at `p` in.
    pub fn other_plug(&self, p: OtherPos) -> Result<Option<OtherPlug>, DeviceError> {
        let Some(alias) = self.other_alias(p) else {
            return Ok(None);
        };
        let d = &self.devices;
        let mut objects = Vec::new();
        let opts = match p.kind {
            OtherKind::Rng => {
                let Some(r) = d.rngs.get(p.index) else {
                    return Ok(None);
                };
                let RngBackend::Random(path) = &r.backend else {
                    return Err(unsupported("rng backend 'egd' (live)".into()));
                };
                let mut o = Map::new();
                o.insert("qom-type".into(), Value::from("rng-random"));
                o.insert(
                    "id".into(),
                    Value::from(format!("objrng{}", r.alias_number(p.index))),
                );
                o.insert(
                    "filename".into(),
                    Value::from(path.to_string_lossy().into_owned()),
                );
                objects.push(o);
                for_plug(self, |cx| devices::rng_device(cx, p.index))
            }
            OtherKind::Input => for_plug(self, |cx| devices::input_device(cx, p.index))?
                .ok_or_else(|| unsupported("input bus 'ps2'".into()))?,
            OtherKind::Watchdog => for_plug(self, devices::watchdog_device).unwrap_or_default(),
            OtherKind::Controller => {
                let Some(c) = d.controllers.get(p.index) else {
                    return Ok(None);
                };
                for_plug(self, |cx| controllers::virtio_controller(cx, c))?
                    .ok_or_else(|| unsupported(format!("controller '{}'", c.ctype().as_str())))?
            }
        };
        Ok(Some(OtherPlug {
            alias,
            objects,
            device: device_props(&opts),
        }))
    }
}

/// What QEMU cannot plug into a running guest, refused before anything
/// changes (`VIR_ERR_OPERATION_UNSUPPORTED`).
fn check_live(dev: &DeviceDef) -> Result<(), DeviceError> {
    match dev {
        DeviceDef::Rng(r) if !matches!(r.backend, RngBackend::Random(_)) => {
            Err(unsupported("rng backend 'egd'".into()))
        }
        DeviceDef::Input(x) if x.bus == InputBus::Ps2 => Err(unsupported("input bus 'ps2'".into())),
        DeviceDef::Controller(c) => check_controller_live(c),
        _ => Ok(()),
    }
}

fn check_controller_live(c: &ControllerDef) -> Result<(), DeviceError> {
    match c.kind {
        ControllerKind::Scsi { .. } | ControllerKind::VirtioSerial { .. } => Ok(()),
        _ => Err(DeviceError::ControllerNotHotpluggable(
            c.ctype().as_str().into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::def::MachineFamily;
    use crate::hotplug::parse_device;
    use virterror::{ErrorCode, ToVirError};

    fn def() -> DomainDef {
        // A watchdog is a conventional PCI device: on q35 it plugs into a
        // pcie-to-pci-bridge.
        let ports = "<controller type='pci' model='pcie-root-port'/>".repeat(8)
            + "<controller type='pci' model='pcie-to-pci-bridge'/>";
        DomainDef::parse(&format!(
            "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{ports}</devices></domain>"
        ))
        .unwrap()
    }

    fn dev(xml: &str) -> DeviceDef {
        parse_device(xml, MachineFamily::Q35).unwrap()
    }

    const RNG: &str = "<rng model='virtio'><rate bytes='1024' period='500'/><backend model='random'>/dev/urandom</backend></rng>";

    #[test]
    fn rng_input_watchdog_and_controllers_plug_live_with_stable_aliases() {
        let mut d = def();
        let ports = d.devices.controllers.len();
        let r0 = d.add_other(&dev(RNG), true).unwrap();
        let r1 = d.add_other(&dev(RNG), true).unwrap();
        let p = d.other_plug(r1).unwrap().unwrap();
        assert_eq!(p.alias, "rng1");
        assert_eq!(p.objects[0]["qom-type"], "rng-random");
        assert_eq!(p.objects[0]["id"], "objrng1");
        assert_eq!(p.objects[0]["filename"], "/dev/urandom");
        assert_eq!(p.device["driver"], "virtio-rng-pci");
        assert_eq!(p.device["rng"], "objrng1");
        assert_eq!(p.device["max-bytes"], 1024);
        assert_eq!(p.device["period"], 500);
        assert!(p.device["bus"].as_str().unwrap().starts_with("pci."));
        // The first goes: the second keeps its name, also through the
        // live XML (the status record).
        assert_eq!(d.remove_other(r0), ["objrng0"]);
        assert_eq!(d.other_by_alias("rng1").map(|p| p.index), Some(0));
        let xml = d.to_xml(Some(&crate::LiveInfo::default()));
        assert!(xml.contains("<alias name='rng1'/>"), "{xml}");
        let back = DomainDef::parse(&xml).unwrap();
        let at0 = OtherPos {
            kind: OtherKind::Rng,
            index: 0,
        };
        assert_eq!(back.other_alias(at0).unwrap(), "rng1");
        assert!(
            d.to_xml(None)
                .contains("<backend model='random'>/dev/urandom</backend>")
        );

        let tablet = d
            .add_other(&dev("<input type='tablet' bus='virtio'/>"), true)
            .unwrap();
        let p = d.other_plug(tablet).unwrap().unwrap();
        assert_eq!(p.device["driver"], "virtio-tablet-pci");
        assert_eq!(p.device["id"], p.alias);
        let w = d
            .add_other(&dev("<watchdog model='i6300esb' action='poweroff'/>"), true)
            .unwrap();
        assert_eq!(d.other_plug(w).unwrap().unwrap().device["id"], "watchdog0");
        let e = d
            .add_other(&dev("<watchdog model='i6300esb'/>"), true)
            .unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::OperationInvalid);
        let scsi = d
            .add_other(&dev("<controller type='scsi' model='virtio-scsi'/>"), true)
            .unwrap();
        let p = d.other_plug(scsi).unwrap().unwrap();
        assert_eq!(
            (p.alias.as_str(), &p.device["driver"]),
            ("scsi0", &"virtio-scsi-pci".into())
        );
        let serial = d
            .add_other(&dev("<controller type='virtio-serial' index='1'/>"), true)
            .unwrap();
        assert_eq!(
            d.other_plug(serial).unwrap().unwrap().alias,
            "virtio-serial1"
        );
        assert_eq!(
            d.devices.controllers.len(),
            ports + 2,
            "no root port added live"
        );
        let full = (0..10).find_map(|_| d.add_other(&dev(RNG), true).err());
        assert_eq!(
            full,
            Some(DeviceError::NoFreeSlot),
            "until every port is taken"
        );
    }

    #[test]
    fn what_cannot_plug_live_is_refused_with_libvirts_codes() {
        let mut d = def();
        let code = |e: DeviceError| e.to_vir_error().code;
        for x in [
            "<controller type='pci' model='pcie-root-port'/>",
            "<controller type='sata' index='1'/>",
            "<controller type='usb' index='1' model='qemu-xhci'/>",
            "<input type='mouse' bus='ps2'/>",
        ] {
            let e = d.add_other(&dev(x), true).unwrap_err();
            assert_eq!(code(e), ErrorCode::OperationUnsupported, "{x}");
        }
        let e = d.add_other(&dev("<controller type='sata' index='1'/>"), true);
        assert_eq!(
            e.unwrap_err().to_string(),
            "Operation not supported: 'sata' controller cannot be hot plugged."
        );
        // itco is not a model this driver has: refused when parsed.
        let e = parse_device("<watchdog model='itco'/>", MachineFamily::Q35).unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
        let e = d.find_other(&dev(RNG)).unwrap_err();
        assert_eq!(code(e), ErrorCode::DeviceMissing);
        // In the definition a SATA controller is fine.
        d.add_other(&dev("<controller type='sata' index='1'/>"), false)
            .unwrap();
    }
}
