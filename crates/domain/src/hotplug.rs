//! One device at a time: the `<disk>` of `attach-device` / `detach-device`
//! parsed with the domain parser's own device function, placed in a
//! definition with the same address assignment as at define time, and the
//! QMP objects (`blockdev-add`, `device_add`) that plug it into a running
//! QEMU.

use serde_json::{Map, Value};

use crate::argv::disks::{blockdevs, disk_device_opts, disk_nodes};
use crate::def::{DomainDef, MachineFamily};
use crate::devices::disk::{DiskBus, DiskDef, DiskDevice, parse_disk};
use crate::devices::net::{InterfaceDef, InterfaceType, parse_interface};
use crate::error::DomainXmlError;

mod others;

pub use others::{OtherKind, OtherPlug, OtherPos};

/// The index a `<controller>` without one is parsed with: the next free
/// one of its type once added.
const NO_INDEX: u32 = u32::MAX;

/// A device of `attach-device` / `detach-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceDef {
    Disk(DiskDef),
    Interface(InterfaceDef),
    Rng(crate::devices::rng::RngDef),
    Input(crate::devices::input::InputDef),
    Watchdog(crate::devices::misc::WatchdogDef),
    Controller(crate::devices::controller::ControllerDef),
}

/// Why a device cannot be added or removed, each with libvirt's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The device XML itself (its own libvirt code).
    #[error(transparent)]
    Xml(#[from] DomainXmlError),
    /// `VIR_ERR_OPERATION_INVALID`: a disk with this target exists.
    #[error("Requested operation is not valid: target {0} already exists")]
    TargetExists(String),
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: the bus has no hot-plug.
    #[error("Operation not supported: disk bus '{0}' cannot be hotplugged.")]
    NotHotpluggable(String),
    /// `VIR_ERR_INTERNAL_ERROR`: every hot-plug port is taken (a running
    /// guest cannot get a new controller).
    #[error("internal error: No more available PCI slots")]
    NoFreeSlot,
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: an update that changes more than
    /// a CD-ROM's medium.
    #[error("Operation not supported: {0}")]
    NotUpdatable(String),
    /// `VIR_ERR_OPERATION_FAILED`: a NIC with this MAC exists.
    #[error("operation failed: MAC address {0} already in use")]
    MacExists(String),
    /// `VIR_ERR_DEVICE_MISSING`: nothing matches.
    #[error("device not found: {0}")]
    Missing(String),
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: QEMU cannot plug this device
    /// into a running guest.
    #[error("Operation not supported: live attach of {0} is not supported")]
    LiveUnsupported(String),
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: a controller of the machine's
    /// topology.
    #[error("Operation not supported: '{0}' controller cannot be hot plugged.")]
    ControllerNotHotpluggable(String),
    /// `VIR_ERR_OPERATION_INVALID`: the device exists already.
    #[error("Requested operation is not valid: {0}")]
    Exists(String),
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: a controller devices still use.
    #[error("Operation not supported: device cannot be detached: controller '{0}' is busy")]
    InUse(String),
}

impl virterror::ToVirError for DeviceError {
    fn to_vir_error(&self) -> virterror::VirError {
        use virterror::{ErrorCode, ErrorDomain, VirError};
        let code = match self {
            DeviceError::Xml(e) => return e.to_vir_error(),
            DeviceError::TargetExists(_) => ErrorCode::OperationInvalid,
            DeviceError::NotHotpluggable(_) | DeviceError::NotUpdatable(_) => {
                ErrorCode::OperationUnsupported
            }
            DeviceError::NoFreeSlot => ErrorCode::InternalError,
            DeviceError::MacExists(_) => ErrorCode::OperationFailed,
            DeviceError::Missing(_) => ErrorCode::DeviceMissing,
            DeviceError::LiveUnsupported(_)
            | DeviceError::ControllerNotHotpluggable(_)
            | DeviceError::InUse(_) => ErrorCode::OperationUnsupported,
            DeviceError::Exists(_) => ErrorCode::OperationInvalid,
        };
        VirError::new(code, ErrorDomain::Domain, self.to_string())
    }
}

/// Parses one device element for a domain of machine `family`. Device
/// kinds without hot-plug support are refused by name
/// (`VIR_ERR_CONFIG_UNSUPPORTED`).
pub fn parse_device(xml: &str, family: MachineFamily) -> Result<DeviceDef, DomainXmlError> {
    let el = virxml::parse_document(xml)?;
    match el.local_name() {
        "disk" => Ok(DeviceDef::Disk(parse_disk(&el, family)?)),
        "interface" => Ok(DeviceDef::Interface(parse_interface(&el)?)),
        "rng" => Ok(DeviceDef::Rng(crate::devices::rng::parse_rng(&el)?)),
        "input" => Ok(DeviceDef::Input(crate::devices::input::parse_input(&el)?)),
        "watchdog" => Ok(DeviceDef::Watchdog(crate::devices::misc::parse_watchdog(
            &el,
        )?)),
        "controller" => Ok(DeviceDef::Controller(
            crate::devices::controller::parse_controller(&el, family, |_, _| NO_INDEX)?,
        )),
        other => Err(DomainXmlError::unsupported_because(
            "device",
            other,
            "only <disk>, <interface>, <rng>, <input>, <watchdog> and <controller> can be attached or detached",
        )),
    }
}

/// What plugs NIC `i` of a definition into a running QEMU.
#[derive(Debug, Clone, PartialEq)]
pub struct NicPlug {
    /// The device id (`net1`).
    pub alias: String,
    /// `netdev_add` arguments (`type`, `id`).
    pub netdev: Map<String, Value>,
    /// `device_add` arguments.
    pub device: Map<String, Value>,
}

/// The tap of a NIC plugged live, as QEMU holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFd {
    /// The name QEMU received the tap's descriptor under (`getfd`).
    pub fdname: String,
    /// Whether the host has a usable `/dev/vhost-net`.
    pub vhost_net: bool,
}

/// What plugs disk `i` of a definition into a running QEMU.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskPlug {
    /// The device id (`virtio-disk1`).
    pub alias: String,
    /// `blockdev-add` arguments, storage node first.
    pub blockdevs: Vec<Value>,
    /// (storage, format) node names.
    pub nodes: (String, String),
    /// `device_add` arguments.
    pub device: Map<String, Value>,
}

impl DomainDef {
    /// Adds `disk` with an address assigned as at define time. `live`: to
    /// a running guest, so the bus must hot-plug (virtio, or SCSI on a
    /// virtio-scsi controller the guest has) and no controller may be
    /// added (a full topology is [`DeviceError::NoFreeSlot`]); the disk
    /// gets the next free node number. Returns its position.
    pub fn add_disk(&mut self, mut disk: DiskDef, live: bool) -> Result<usize, DeviceError> {
        if self.devices.disks.iter().any(|d| d.target == disk.target) {
            return Err(DeviceError::TargetExists(disk.target));
        }
        let scsi_ready = disk.bus == DiskBus::Scsi
            && self.devices.controllers.iter().any(|c| {
                matches!(
                    c.kind,
                    crate::devices::controller::ControllerKind::Scsi { .. }
                )
            });
        if live && disk.bus != DiskBus::Virtio && !scsi_ready {
            return Err(DeviceError::NotHotpluggable(disk.bus.as_str().into()));
        }
        if live {
            disk.node_index = Some(self.next_node_index());
        }
        let mut devices = self.devices.clone();
        devices.disks.push(disk);
        crate::addr::assign(&mut devices, self.os.family())?;
        if live && devices.controllers.len() != self.devices.controllers.len() {
            return Err(DeviceError::NoFreeSlot);
        }
        self.devices = devices;
        Ok(self.devices.disks.len() - 1)
    }

    /// The position of the disk `disk` names: by target, as libvirt
    /// matches a detached `<disk>`.
    pub fn find_disk(&self, target: &str) -> Result<usize, DeviceError> {
        self.devices
            .disks
            .iter()
            .position(|d| d.target == target)
            .ok_or_else(|| DeviceError::Missing(format!("no target device {target}")))
    }

    /// Removes and returns disk `i`, if there is one.
    pub fn remove_disk(&mut self, i: usize) -> Option<DiskDef> {
        (i < self.devices.disks.len()).then(|| self.devices.disks.remove(i))
    }

    /// Puts the medium `source` of `format` into CD-ROM `i` (`None`
    /// ejects). `live`: the new medium takes the next free node number.
    pub fn set_disk_media(
        &mut self,
        i: usize,
        source: Option<std::path::PathBuf>,
        format: Option<crate::devices::disk::DiskFormat>,
        live: bool,
    ) {
        let next = self.next_node_index();
        let Some(d) = self.devices.disks.get_mut(i) else {
            return;
        };
        d.node_index = match (&source, live) {
            (Some(_), true) => Some(next),
            _ => d.node_index,
        };
        d.source = source;
        d.driver.format = format;
    }

    /// The position of the CD-ROM `new` names (by target), checked to be
    /// that CD-ROM with only its medium changed.
    pub fn find_media(&self, new: &DiskDef) -> Result<usize, DeviceError> {
        let i = self.find_disk(&new.target)?;
        let old = &self.devices.disks[i];
        if old.device != DiskDevice::Cdrom || new.device != DiskDevice::Cdrom {
            return Err(DeviceError::NotUpdatable(format!(
                "disk '{}': only the medium of a cdrom can be changed",
                new.target
            )));
        }
        if old.bus != new.bus {
            return Err(DeviceError::NotUpdatable(format!(
                "disk '{}': its bus cannot be changed",
                new.target
            )));
        }
        Ok(i)
    }

    /// Adds NIC `nic` with an address assigned as at define time. `live`:
    /// to a running guest, so on a free port, with the next free alias
    /// number.
    pub fn add_interface(
        &mut self,
        mut nic: InterfaceDef,
        live: bool,
    ) -> Result<usize, DeviceError> {
        if self.devices.interfaces.iter().any(|n| n.mac == nic.mac) {
            return Err(DeviceError::MacExists(nic.mac.to_string()));
        }
        nic.alias_index = None;
        if live {
            let used = self.devices.interfaces.iter().enumerate();
            let next = used.map(|(i, n)| n.alias_number(i).saturating_add(1)).max();
            nic.alias_index = Some(next.unwrap_or(0));
        }
        let mut devices = self.devices.clone();
        devices.interfaces.push(nic);
        crate::addr::assign(&mut devices, self.os.family())?;
        if live && devices.controllers.len() != self.devices.controllers.len() {
            return Err(DeviceError::NoFreeSlot);
        }
        self.devices = devices;
        Ok(self.devices.interfaces.len() - 1)
    }

    /// The position of the NIC with `nic`'s MAC, as libvirt matches a
    /// detached `<interface>`.
    pub fn find_interface(&self, nic: &InterfaceDef) -> Result<usize, DeviceError> {
        self.devices
            .interfaces
            .iter()
            .position(|n| n.mac == nic.mac)
            .ok_or_else(|| DeviceError::Missing(format!("no interface with MAC {}", nic.mac)))
    }

    /// The position of the NIC whose alias is `alias` (`net1`).
    pub fn interface_by_alias(&self, alias: &str) -> Option<usize> {
        let n = alias.strip_prefix("net")?.parse::<u32>().ok()?;
        let nics = self.devices.interfaces.iter().enumerate();
        nics.filter(|(i, x)| x.alias_number(*i) == n)
            .map(|(i, _)| i)
            .next()
    }

    /// The QMP objects that plug NIC `i` in; `tap`: where QEMU finds the
    /// tap of a NIC that needs one.
    pub fn nic_plug(&self, i: usize, tap: Option<&TapFd>) -> Result<Option<NicPlug>, DeviceError> {
        let Some(nic) = self.devices.interfaces.get(i) else {
            return Ok(None);
        };
        let k = nic.alias_number(i);
        let mut netdev = Map::new();
        match (nic.itype, tap) {
            (InterfaceType::User, _) => {
                netdev.insert("type".into(), Value::from("user"));
            }
            (_, Some(t)) => {
                let vhost = crate::argv::net::tap_vhost(nic, t.vhost_net)?;
                netdev.insert("type".into(), Value::from("tap"));
                netdev.insert("fd".into(), Value::from(t.fdname.clone()));
                if vhost {
                    netdev.insert("vhost".into(), Value::from(true));
                }
            }
            (t, None) => {
                return Err(DeviceError::Xml(DomainXmlError::unsupported_because(
                    "interface type",
                    t.as_str(),
                    "no tap was made for this interface",
                )));
            }
        }
        netdev.insert("id".into(), Value::from(format!("hostnet{k}")));
        let opts = crate::argv::net::nic_device_opts(self, i)?;
        Ok(Some(NicPlug {
            alias: format!("net{k}"),
            netdev,
            device: device_props(&opts),
        }))
    }

    /// Gives every NIC of a definition about to run its alias number (its
    /// position unless it has one).
    pub fn number_interfaces(&mut self) {
        for (i, n) in self.devices.interfaces.iter_mut().enumerate() {
            if n.alias_index.is_none() {
                n.alias_index = u32::try_from(i).ok();
            }
        }
    }

    /// Gives every disk of a definition about to run its node number
    /// (its position + 1 unless it has one), so the numbers stay when a
    /// disk is removed.
    pub fn number_disk_nodes(&mut self) {
        for (i, d) in self.devices.disks.iter_mut().enumerate() {
            if d.node_index.is_none() {
                d.node_index = u32::try_from(i + 1).ok();
            }
        }
    }

    fn next_node_index(&self) -> u32 {
        let used = self.devices.disks.iter().enumerate().map(|(i, d)| {
            d.node_index
                .unwrap_or_else(|| u32::try_from(i + 1).unwrap_or(u32::MAX))
        });
        used.max().unwrap_or(0).saturating_add(1)
    }

    /// The QMP objects that plug disk `i` in.
    pub fn disk_plug(&self, i: usize) -> Option<DiskPlug> {
        let disk = self.devices.disks.get(i)?;
        Some(DiskPlug {
            alias: disk.alias(),
            blockdevs: blockdevs(i, disk),
            nodes: disk_nodes(i, disk),
            device: device_props(&disk_device_opts(self, i)),
        })
    }
}

/// `driver,key=value,...` (`,,` escapes a comma) as `device_add`
/// arguments, with the properties QEMU types as integers as numbers.
fn device_props(opts: &str) -> Map<String, Value> {
    const NUMERIC: &[&str] = &[
        "num-queues",
        "num_queues",
        "bootindex",
        "channel",
        "scsi-id",
        "lun",
        "max-bytes",
        "period",
        "max_ports",
        "vectors",
    ];
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = opts.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
                continue;
            }
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    let mut m = Map::new();
    let mut it = parts.into_iter();
    if let Some(driver) = it.next() {
        m.insert("driver".into(), Value::String(driver));
    }
    for p in it {
        let (k, v) = p.split_once('=').unwrap_or((p.as_str(), "on"));
        let value = match v.parse::<u64>() {
            Ok(n) if NUMERIC.contains(&k) => Value::from(n),
            _ => Value::String(v.to_string()),
        };
        m.insert(k.to_string(), value);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use virterror::{ErrorCode, ToVirError};

    fn def(disks: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{disks}</devices></domain>"
        ))
        .unwrap()
    }

    fn disk(xml: &str) -> DiskDef {
        match parse_device(xml, MachineFamily::Q35).unwrap() {
            DeviceDef::Disk(d) => d,
            _ => panic!("a disk"),
        }
    }

    const VDA: &str =
        "<disk type='file'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk>";
    const VDB: &str =
        "<disk type='file'><source file='/b.img'/><target dev='vdb' bus='virtio'/></disk>";

    #[test]
    fn a_live_disk_takes_the_free_root_port_and_next_nodes() {
        let mut d = def(VDA);
        d.number_disk_nodes();
        let ports = d.devices.controllers.len();
        let i = d.add_disk(disk(VDB), true).unwrap();
        assert_eq!(
            d.devices.controllers.len(),
            ports,
            "no controller added live"
        );
        let p = d.disk_plug(i).unwrap();
        assert_eq!(p.alias, "virtio-disk1");
        assert_eq!(p.nodes.1, "libvirt-2-format");
        assert_eq!(p.blockdevs.len(), 2);
        assert_eq!(p.blockdevs[0]["node-name"], "libvirt-2-storage");
        assert_eq!(p.device["driver"], "virtio-blk-pci");
        assert_eq!(p.device["drive"], "libvirt-2-format");
        assert_eq!(p.device["id"], "virtio-disk1");
        let a = d.devices.disks[i].address.as_ref().and_then(|a| a.pci());
        let a = a.copied().unwrap();
        assert_ne!(a.bus, 0, "on a root port, not the root bus");
        // Removing the first disk keeps the second one's nodes.
        d.remove_disk(0).unwrap();
        assert_eq!(d.disk_plug(0).unwrap().nodes.1, "libvirt-2-format");
        let xml = d.to_xml(Some(&crate::LiveInfo::default()));
        assert!(xml.contains("<source file='/b.img' index='2'/>"), "{xml}");
        assert!(d.to_xml(None).contains("<source file='/b.img'/>"));
        let back = DomainDef::parse(&xml).unwrap();
        assert_eq!(back.disk_plug(0).unwrap().nodes.1, "libvirt-2-format");
    }

    #[test]
    fn no_free_port_live_but_config_grows() {
        let mut d = def(VDA);
        d.add_disk(disk(VDB), true).unwrap();
        let vdc = VDB.replace("vdb", "vdc").replace("/b.img", "/c.img");
        let e = d.clone().add_disk(disk(&vdc), true).unwrap_err();
        assert_eq!(e, DeviceError::NoFreeSlot);
        assert_eq!(e.to_vir_error().code, ErrorCode::InternalError);
        let n = d.devices.controllers.len();
        d.add_disk(disk(&vdc), false).unwrap();
        assert!(
            d.devices.controllers.len() > n,
            "config attach adds a root port"
        );
    }

    #[test]
    fn refusals_carry_libvirts_codes() {
        let mut d = def(VDA);
        let code = |e: DeviceError| e.to_vir_error().code;
        let e = d.add_disk(disk(VDA), false).unwrap_err();
        assert_eq!(code(e), ErrorCode::OperationInvalid);
        let sata = "<disk type='file'><source file='/s.img'/><target dev='sda' bus='sata'/></disk>";
        let e = d.add_disk(disk(sata), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Operation not supported: disk bus 'sata' cannot be hotplugged."
        );
        assert_eq!(code(e), ErrorCode::OperationUnsupported);
        assert_eq!(
            code(d.find_disk("vdz").unwrap_err()),
            ErrorCode::DeviceMissing
        );
        let e = parse_device("<hostdev/>", MachineFamily::Q35).unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
        let e = parse_device("<disk", MachineFamily::Q35).unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::XmlError);
        assert_eq!(d.devices.disks.len(), 1, "nothing added by a refusal");
        // SCSI live needs a virtio-scsi controller the guest already has.
        let sdb = "<disk type='file'><source file='/s.img'/><target dev='sdb' bus='scsi'/></disk>";
        let e = d.add_disk(disk(sdb), true).unwrap_err();
        assert_eq!(code(e), ErrorCode::OperationUnsupported);
        let mut with = def(&format!(
            "{VDA}<controller type='scsi' model='virtio-scsi'/>"
        ));
        let i = with.add_disk(disk(sdb), true).unwrap();
        let p = with.disk_plug(i).unwrap();
        assert_eq!(p.device["driver"], "scsi-hd");
        assert_eq!(p.device["bus"], "scsi0.0");
        assert_eq!(p.device["scsi-id"], 0);
    }

    #[test]
    fn a_live_user_nic_takes_the_next_alias_and_keeps_it() {
        let nic1 = "<interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>";
        let mut d = def(&format!("{VDA}{nic1}"));
        let nic =
            |mac: &str| {
                match parse_device(
            &format!(
                "<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>"
            ),
            MachineFamily::Q35,
        )
        .unwrap()
        {
            DeviceDef::Interface(n) => n,
            _ => panic!("a NIC"),
        }
            };
        d.number_interfaces();
        let i = d.add_interface(nic("52:54:00:00:00:02"), true).unwrap();
        let p = d.nic_plug(i, None).unwrap().unwrap();
        assert_eq!(p.alias, "net1");
        assert_eq!(p.netdev["id"], "hostnet1");
        assert_eq!(p.device["driver"], "virtio-net-pci");
        assert_eq!(p.device["netdev"], "hostnet1");
        assert_eq!(p.device["mac"], "52:54:00:00:00:02");
        let e = d
            .add_interface(nic("52:54:00:00:00:02"), false)
            .unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::OperationFailed);
        d.devices.interfaces.remove(0);
        assert_eq!(d.interface_by_alias("net1"), Some(0));
        let xml = d.to_xml(Some(&crate::LiveInfo::default()));
        assert!(xml.contains("<alias name='net1'/>"), "{xml}");
        let back = DomainDef::parse(&xml).unwrap();
        assert_eq!(back.nic_plug(0, None).unwrap().unwrap().alias, "net1");
        let bridge = parse_device(
            "<interface type='bridge'><source bridge='br0'/></interface>",
            MachineFamily::Q35,
        );
        let DeviceDef::Interface(b) = bridge.unwrap() else {
            panic!("a NIC")
        };
        // A NIC on a host bridge plugs its tap by the name QEMU got it
        // under; without one it cannot be plugged. (Every port is taken:
        // placed as in the definition.)
        assert_eq!(
            d.clone().add_interface(b.clone(), true).unwrap_err(),
            DeviceError::NoFreeSlot
        );
        d.devices.interfaces.clear();
        let i = d.add_interface(b, false).unwrap();
        let e = d.nic_plug(i, None).unwrap_err();
        assert_eq!(e.to_vir_error().code, ErrorCode::ConfigUnsupported);
        let tap = TapFd {
            fdname: "tap-hostnet0".into(),
            vhost_net: true,
        };
        let p = d.nic_plug(i, Some(&tap)).unwrap().unwrap();
        assert_eq!(p.alias, "net0");
        assert_eq!(p.netdev["type"], "tap");
        assert_eq!(p.netdev["fd"], "tap-hostnet0");
        assert_eq!(p.netdev["vhost"], true);
        assert_eq!(p.device["netdev"], "hostnet0");
        let no_vhost = TapFd {
            vhost_net: false,
            ..tap
        };
        let p = d.nic_plug(i, Some(&no_vhost)).unwrap().unwrap();
        assert!(p.netdev.get("vhost").is_none(), "{:?}", p.netdev);
    }

    #[test]
    fn device_options_become_typed_arguments() {
        let m =
            device_props("virtio-blk-pci,bus=pci.1,addr=0x0,num-queues=2,serial=a,,b,bootindex=1");
        assert_eq!(m["driver"], "virtio-blk-pci");
        assert_eq!(m["addr"], "0x0");
        assert_eq!(m["num-queues"], 2);
        assert_eq!(m["bootindex"], 1);
        assert_eq!(m["serial"], "a,b");
    }
}
