//! Disks: two `-blockdev` nodes (storage and format) per image, and the
//! device on its bus.

use serde_json::{Map, Value, json};

use super::{Args, Ctx};
use crate::def::*;
use crate::devices::address::DriveAddress;
use crate::devices::disk::{CacheMode, DiskBus, DiskDef, DiskDevice, DiskFormat, DiskType};
use crate::error::DomainXmlError;

/// Node names of disk `i` (libvirt-N-storage / libvirt-N-format, N = i+1),
/// which block jobs and hot-unplug in the driver refer to.
pub fn disk_node_names(i: usize) -> (String, String) {
    (
        format!("libvirt-{}-storage", i + 1),
        format!("libvirt-{}-format", i + 1),
    )
}

/// Boot index per disk and per interface. Per-device `<boot order>` wins;
/// otherwise the legacy `<os><boot dev>` list is turned into bootindex on
/// the first disk / cdrom / NIC, as libvirt does, so `-boot strict=on`
/// means the same order.
pub(super) fn boot_indexes(def: &DomainDef) -> (Vec<Option<u32>>, Vec<Option<u32>>) {
    let d = &def.devices;
    let mut disks: Vec<Option<u32>> = d.disks.iter().map(|x| x.boot_order).collect();
    let mut nets: Vec<Option<u32>> = d.interfaces.iter().map(|x| x.boot_order).collect();
    if disks.iter().chain(nets.iter()).any(Option::is_some) {
        return (disks, nets);
    }
    let mut next = 1;
    for dev in &def.os.boot_devs {
        let first = |kind: DiskDevice| d.disks.iter().position(|x| x.device == kind);
        let slot = match dev {
            BootDev::Hd => first(DiskDevice::Disk).map(|i| &mut disks[i]),
            BootDev::Cdrom => first(DiskDevice::Cdrom).map(|i| &mut disks[i]),
            BootDev::Network => nets.first_mut(),
        };
        if let Some(s) = slot {
            *s = Some(next);
            next += 1;
        }
    }
    (disks, nets)
}

/// (cache object for the nodes, write-cache of the device)
fn cache_json(c: CacheMode) -> (Value, bool) {
    let (direct, no_flush, wc) = match c {
        CacheMode::None => (true, false, true),
        CacheMode::Writeback => (false, false, true),
        CacheMode::Writethrough => (false, false, false),
        CacheMode::Directsync => (true, false, false),
        CacheMode::Unsafe => (false, true, true),
    };
    (json!({"direct": direct, "no-flush": no_flush}), wc)
}

/// Node names of `disk`, at position `i` of its definition: its own
/// node number when it has one, else its position.
pub fn disk_nodes(i: usize, disk: &DiskDef) -> (String, String) {
    match disk.node_index.and_then(|n| usize::try_from(n).ok()) {
        Some(n) if n > 0 => disk_node_names(n - 1),
        _ => disk_node_names(i),
    }
}

pub(super) fn disks(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let (boot, _) = boot_indexes(cx.def);
    for (i, disk) in cx.def.devices.disks.iter().enumerate() {
        for b in blockdevs(i, disk) {
            a.opt("-blockdev", b.to_string());
        }
        a.device(disk_device(cx, i, disk, boot[i]));
    }
    Ok(())
}

/// The `-blockdev` (or `blockdev-add`) objects of `disk` at position `i`:
/// storage then format; none for an empty CD-ROM.
pub(crate) fn blockdevs(i: usize, disk: &DiskDef) -> Vec<Value> {
    let Some(src) = &disk.source else {
        return Vec::new();
    };
    let (storage, format) = disk_nodes(i, disk);
    let cache = disk.driver.cache.map(cache_json);
    let driver = match (disk.disk_type, disk.device) {
        (DiskType::File, _) => "file",
        (DiskType::Block, DiskDevice::Cdrom) => "host_cdrom",
        (DiskType::Block, DiskDevice::Disk) => "host_device",
    };
    let mut s = Map::new();
    s.insert("driver".into(), json!(driver));
    s.insert("filename".into(), json!(src.to_string_lossy()));
    s.insert("node-name".into(), json!(storage));
    if let Some(io) = disk.driver.io {
        s.insert("aio".into(), json!(io.as_str()));
    }
    if let Some((c, _)) = &cache {
        s.insert("cache".into(), c.clone());
    }
    s.insert("auto-read-only".into(), json!(true));
    s.insert("discard".into(), json!("unmap"));

    let mut f = Map::new();
    f.insert("node-name".into(), json!(format));
    f.insert("read-only".into(), json!(disk.readonly));
    if let Some(d) = disk.driver.discard {
        f.insert("discard".into(), json!(d.as_str()));
    }
    if let Some((c, _)) = &cache {
        f.insert("cache".into(), c.clone());
    }
    let fmt = disk.driver.format.unwrap_or(DiskFormat::Raw);
    f.insert("driver".into(), json!(fmt.as_str()));
    f.insert("file".into(), json!(storage));
    vec![Value::Object(s), Value::Object(f)]
}

/// The `-device` options of disk `i` of `def` (for `device_add`): what
/// `build_argv` gives it, without a boot index.
pub(crate) fn disk_device_opts(def: &DomainDef, i: usize) -> String {
    let caps = crate::caps::EmulatorCaps::default();
    let launch = super::LaunchParams::default();
    let family = def.os.family();
    let cx = Ctx {
        def,
        caps: &caps,
        launch: &launch,
        machine: String::new(),
        family,
    };
    def.devices
        .disks
        .get(i)
        .map(|d| disk_device(&cx, i, d, d.boot_order))
        .unwrap_or_default()
}

fn disk_device(cx: &Ctx<'_>, i: usize, disk: &DiskDef, bootindex: Option<u32>) -> String {
    let cd = disk.device == DiskDevice::Cdrom;
    let mut dev = match disk.bus {
        DiskBus::Virtio => virtio_blk(cx, disk),
        DiskBus::Sata => sata(cx, disk, cd),
        DiskBus::Ide => {
            let da = drive(disk);
            let model = if cd { "ide-cd" } else { "ide-hd" };
            format!("{model},bus=ide.{},unit={}", da.bus, da.unit)
        }
        DiskBus::Scsi => scsi(disk, cd),
    };
    if disk.source.is_some() {
        dev.push_str(&format!(",drive={}", disk_nodes(i, disk).1));
    }
    dev.push_str(&format!(",id={}", disk.alias()));
    if let Some(b) = bootindex {
        dev.push_str(&format!(",bootindex={b}"));
    }
    if let Some(s) = &disk.serial {
        dev.push_str(&format!(",serial={}", super::esc(s)));
    }
    if let Some((_, wc)) = disk.driver.cache.map(cache_json)
        && !cd
    {
        dev.push_str(if wc {
            ",write-cache=on"
        } else {
            ",write-cache=off"
        });
    }
    dev
}

fn drive(disk: &DiskDef) -> DriveAddress {
    disk.drive_address().unwrap_or(DriveAddress {
        controller: 0,
        bus: 0,
        target: 0,
        unit: 0,
    })
}

fn virtio_blk(cx: &Ctx<'_>, disk: &DiskDef) -> String {
    let mut s = "virtio-blk-pci".to_string();
    if let Some(q) = disk.driver.queues {
        s.push_str(&format!(",num-queues={q}"));
    }
    if let Some(t) = disk.driver.iothread {
        s.push_str(&format!(",iothread=iothread{t}"));
    }
    s.push_str(&cx.pci_opts(disk.address.as_ref()));
    s
}

fn sata(cx: &Ctx<'_>, disk: &DiskDef, cd: bool) -> String {
    let da = drive(disk);
    let bus = if da.controller == 0 && cx.family == MachineFamily::Q35 {
        format!("ide.{}", da.unit)
    } else {
        format!("sata{}.{}", da.controller, da.unit)
    };
    format!("{},bus={bus}", if cd { "ide-cd" } else { "ide-hd" })
}

fn scsi(disk: &DiskDef, cd: bool) -> String {
    let da = drive(disk);
    format!(
        "{},bus=scsi{}.0,channel={},scsi-id={},lun={},device_id=drive-{}",
        if cd { "scsi-cd" } else { "scsi-hd" },
        da.controller,
        da.bus,
        da.target,
        da.unit,
        disk.alias()
    )
}
