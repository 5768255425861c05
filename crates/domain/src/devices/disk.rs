//! `<disk>`: file or block backed disks and CD-ROMs on virtio, SATA, SCSI
//! and (i440fx only) IDE buses.

use super::address::{Address, DriveAddress, format_address, parse_device_address};
use super::format_alias;
use crate::def::MachineFamily;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, empty_element, named, named_attr, named_enum, parse_abs_path,
    parse_boot_order, simple_text, skip_alias, uint_attr,
};
use crate::xml::{XmlElement, XmlWriter};
use std::path::PathBuf;

named_enum! {
    /// `<disk type>`.
    pub enum DiskType {
        File = "file",
        Block = "block",
    }
}

named_enum! {
    /// `<disk device>`.
    pub enum DiskDevice {
        Disk = "disk",
        Cdrom = "cdrom",
    }
}

named_enum! {
    /// `<target bus>`.
    pub enum DiskBus {
        Ide = "ide",
        Scsi = "scsi",
        Virtio = "virtio",
        Sata = "sata",
    }
}

named_enum! {
    /// `<driver type>`: the image format.
    pub enum DiskFormat {
        Raw = "raw",
        Qcow2 = "qcow2",
    }
}

named_enum! {
    /// libvirt's cache modes, mapped to QEMU's cache.direct/no-flush and
    /// the device's write-cache by the argv builder.
    pub enum CacheMode {
        None = "none",
        Writethrough = "writethrough",
        Writeback = "writeback",
        Directsync = "directsync",
        Unsafe = "unsafe",
    }
}

named_enum! {
    pub enum DiscardMode {
        Unmap = "unmap",
        Ignore = "ignore",
    }
}

named_enum! {
    pub enum IoMode {
        Threads = "threads",
        Native = "native",
    }
}

/// `<driver name='qemu' .../>`; all fields optional, as in libvirt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskDriver {
    pub format: Option<DiskFormat>,
    pub cache: Option<CacheMode>,
    pub discard: Option<DiscardMode>,
    pub io: Option<IoMode>,
    /// The `<iothread>` (by id) that runs this virtio disk.
    pub iothread: Option<u32>,
    /// virtio-blk queues.
    pub queues: Option<u32>,
}

impl DiskDriver {
    fn is_empty(&self) -> bool {
        self == &DiskDriver::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskDef {
    pub disk_type: DiskType,
    pub device: DiskDevice,
    pub driver: DiskDriver,
    /// Image file or block device; `None` only for an empty CD-ROM tray.
    pub source: Option<PathBuf>,
    /// `<target dev>` (vda, sda, hdc ...).
    pub target: String,
    pub bus: DiskBus,
    /// Always true for CD-ROMs (libvirt forces it too).
    pub readonly: bool,
    pub boot_order: Option<u32>,
    /// `<serial>`: the serial number the guest sees.
    pub serial: Option<String>,
    /// Drive address for SATA/SCSI/IDE (always set after parse); optional
    /// PCI address for virtio.
    pub address: Option<Address>,
    /// The number N of the disk's block nodes (`libvirt-N-storage` /
    /// `libvirt-N-format`), `<source index='N'>` of the live XML: set for
    /// a running domain (a hot-plugged disk takes the next free number, so
    /// a disk keeps its nodes when another one is unplugged). `None`: the
    /// disk's position + 1, as at start.
    pub node_index: Option<u32>,
}

/// Index of a disk name (`vda` → 0, `sdab` → 27), like libvirt's
/// virDiskNameToIndex.
pub fn target_index(dev: &str) -> Option<u32> {
    let rest = ["vd", "sd", "hd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    if rest.is_empty() || rest.len() > 4 || !rest.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut idx: u32 = 0;
    for b in rest.bytes() {
        idx = idx * 26 + u32::from(b - b'a') + 1;
    }
    Some(idx - 1)
}

impl DiskDef {
    /// libvirt's default drive address for a target index.
    fn default_drive_address(&self, idx: u32) -> Option<DriveAddress> {
        let (controller, bus, target, unit) = match self.bus {
            DiskBus::Virtio => return None,
            DiskBus::Sata => (idx / 6, 0, 0, idx % 6),
            DiskBus::Ide => (idx / 4, (idx % 4) / 2, 0, idx % 2),
            DiskBus::Scsi => (idx / 7, 0, 0, idx % 7),
        };
        Some(DriveAddress {
            controller,
            bus,
            target,
            unit,
        })
    }

    pub fn drive_address(&self) -> Option<DriveAddress> {
        match self.address {
            Some(Address::Drive(d)) => Some(d),
            _ => None,
        }
    }

    /// libvirt's device alias (virtio-disk0, sata0-0-0, scsi0-0-0-0, ide0-0-0).
    pub fn alias(&self) -> String {
        let d = self.drive_address().unwrap_or(DriveAddress {
            controller: 0,
            bus: 0,
            target: 0,
            unit: 0,
        });
        match self.bus {
            DiskBus::Virtio => format!("virtio-disk{}", target_index(&self.target).unwrap_or(0)),
            DiskBus::Sata => format!("sata{}-{}-{}", d.controller, d.bus, d.unit),
            DiskBus::Ide => format!("ide{}-{}-{}", d.controller, d.bus, d.unit),
            DiskBus::Scsi => format!("scsi{}-{}-{}-{}", d.controller, d.bus, d.target, d.unit),
        }
    }
}

const P: &str = "disk";

pub(crate) fn parse_disk(
    el: &XmlElement,
    family: MachineFamily,
) -> Result<DiskDef, DomainXmlError> {
    el.check_attrs(P, &["type", "device"])?;
    el.check_children(
        P,
        &[
            "driver", "source", "target", "readonly", "boot", "alias", "address", "serial",
        ],
    )?;
    check_singletons(
        el,
        P,
        &[
            "driver", "source", "target", "readonly", "boot", "alias", "address", "serial",
        ],
    )?;
    let disk_type = named(
        "disk type",
        el.attr("type").unwrap_or("file"),
        DiskType::from_name,
    )?;
    let device = named(
        "disk device",
        el.attr("device").unwrap_or("disk"),
        DiskDevice::from_name,
    )?;
    let driver = el
        .child("driver")
        .map(parse_driver)
        .transpose()?
        .unwrap_or_default();
    let (target, bus, idx) = parse_target(el, family, device)?;
    let (source, node_index) = parse_source(el, disk_type)?;
    if source.is_none() && device == DiskDevice::Disk {
        return Err(DomainXmlError::NoSource(target));
    }
    let readonly = parse_readonly(el, device, bus)?;
    skip_alias(el, P)?;
    let mut disk = DiskDef {
        disk_type,
        device,
        driver,
        source,
        target,
        bus,
        readonly,
        boot_order: el
            .child("boot")
            .map(|b| parse_boot_order(b, P))
            .transpose()?,
        serial: parse_serial(el)?,
        address: None,
        node_index,
    };
    disk.address = parse_disk_address(el, &disk, idx)?;
    Ok(disk)
}

fn parse_driver(d: &XmlElement) -> Result<DiskDriver, DomainXmlError> {
    const D: &str = "disk/driver";
    d.check_attrs(
        D,
        &[
            "name", "type", "cache", "discard", "io", "iothread", "queues",
        ],
    )?;
    d.check_children(D, &[])?;
    if let Some(n) = d.attr("name")
        && n != "qemu"
    {
        return Err(DomainXmlError::unsupported("disk driver name", n));
    }
    let cache = match d.attr("cache") {
        None | Some("default") => None,
        Some(c) => Some(named("disk driver cache", c, CacheMode::from_name)?),
    };
    let driver = DiskDriver {
        format: named_attr(d, D, "type", DiskFormat::from_name)?,
        cache,
        discard: named_attr(d, D, "discard", DiscardMode::from_name)?,
        io: named_attr(d, D, "io", IoMode::from_name)?,
        iothread: uint_attr(d, D, "iothread")?,
        queues: uint_attr(d, D, "queues")?,
    };
    if driver.iothread == Some(0) || driver.queues == Some(0) {
        return Err(DomainXmlError::invalid(
            "<disk/driver>",
            "0",
            "iothread ids and queue counts start at 1",
        ));
    }
    Ok(driver)
}

/// `<target dev bus>`: the name, the bus, and the name's index.
fn parse_target(
    el: &XmlElement,
    family: MachineFamily,
    device: DiskDevice,
) -> Result<(String, DiskBus, u32), DomainXmlError> {
    let t = el
        .child("target")
        .ok_or_else(|| DomainXmlError::structure("missing <target> of <disk>"))?;
    t.check_attrs("disk/target", &["dev", "bus"])?;
    t.check_children("disk/target", &[])?;
    let target = t.req_attr("disk/target", "dev")?.to_string();
    let idx = target_index(&target).ok_or_else(|| {
        DomainXmlError::invalid(
            "<disk/target dev>",
            &target,
            "expected vdX, sdX or hdX (X: 1-4 lowercase letters)",
        )
    })?;
    let bus = match t.attr("bus") {
        Some(b) => named("disk bus", b, DiskBus::from_name)?,
        None if target.starts_with("vd") => DiskBus::Virtio,
        None if target.starts_with("sd") => DiskBus::Scsi,
        None => DiskBus::Ide,
    };
    if bus == DiskBus::Ide && family == MachineFamily::Q35 {
        return Err(DomainXmlError::unsupported_because(
            "disk bus",
            "ide",
            "the q35 machine type has no IDE controller; use sata",
        ));
    }
    if bus == DiskBus::Virtio && device == DiskDevice::Cdrom {
        return Err(DomainXmlError::unsupported_because(
            "disk bus",
            "virtio",
            "a cdrom cannot be on the virtio bus",
        ));
    }
    Ok((target, bus, idx))
}

/// `<source file|dev index>`: the image, and the live XML's node number.
fn parse_source(
    el: &XmlElement,
    disk_type: DiskType,
) -> Result<(Option<PathBuf>, Option<u32>), DomainXmlError> {
    let Some(s) = el.child("source") else {
        return Ok((None, None));
    };
    let attr = match disk_type {
        DiskType::File => "file",
        DiskType::Block => "dev",
    };
    s.check_attrs("disk/source", &[attr, "index"])?;
    s.check_children("disk/source", &[])?;
    let index = uint_attr(s, "disk/source", "index")?.filter(|i| *i > 0);
    let path = s
        .attr(attr)
        .map(|p| parse_abs_path(&format!("<disk/source {attr}>"), p))
        .transpose()?;
    Ok((path, index))
}

/// Always true for CD-ROMs (libvirt forces it too).
fn parse_readonly(
    el: &XmlElement,
    device: DiskDevice,
    bus: DiskBus,
) -> Result<bool, DomainXmlError> {
    let readonly = match el.child("readonly") {
        Some(r) => {
            empty_element(r, "disk/readonly")?;
            true
        }
        None => false,
    } || device == DiskDevice::Cdrom;
    if readonly && device == DiskDevice::Disk && matches!(bus, DiskBus::Sata | DiskBus::Ide) {
        return Err(DomainXmlError::unsupported_because(
            "readonly disk on bus",
            bus.as_str(),
            "QEMU's ide-hd cannot use a read-only drive",
        ));
    }
    Ok(readonly)
}

/// `<serial>`: what the guest reads as the disk's serial number.
fn parse_serial(el: &XmlElement) -> Result<Option<String>, DomainXmlError> {
    let Some(s) = el.child("serial") else {
        return Ok(None);
    };
    let text = simple_text(s, "disk/serial")?.trim().to_string();
    let ok = !text.is_empty()
        && text.len() <= 36
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_ .+-".contains(c));
    if !ok {
        return Err(DomainXmlError::invalid(
            "<disk/serial>",
            text,
            "expected 1..36 characters of A-Za-z0-9_ .+-",
        ));
    }
    Ok(Some(text))
}

/// The disk's address: PCI for virtio (assigned later when absent), a
/// drive address on its controller otherwise (filled in from the target
/// name, as libvirt does).
fn parse_disk_address(
    el: &XmlElement,
    disk: &DiskDef,
    idx: u32,
) -> Result<Option<Address>, DomainXmlError> {
    let allowed: &[&str] = match disk.bus {
        DiskBus::Virtio => &["pci"],
        _ => &["drive"],
    };
    match parse_device_address(el, P, allowed)? {
        Some(Address::Drive(d)) => {
            check_drive_address(disk.bus, &d, &disk.target)?;
            Ok(Some(Address::Drive(d)))
        }
        Some(a) => Ok(Some(a)),
        None => Ok(disk.default_drive_address(idx).map(Address::Drive)),
    }
}

fn check_drive_address(bus: DiskBus, d: &DriveAddress, target: &str) -> Result<(), DomainXmlError> {
    let ok = match bus {
        DiskBus::Sata => d.bus == 0 && d.target == 0 && d.unit < 6,
        DiskBus::Ide => d.controller == 0 && d.bus < 2 && d.target == 0 && d.unit < 2,
        DiskBus::Scsi => d.bus == 0 && d.target < 256 && d.unit < 16384,
        DiskBus::Virtio => true,
    };
    if ok {
        Ok(())
    } else {
        Err(DomainXmlError::invalid(
            format!("<disk/address> of '{target}'"),
            format!(
                "controller {} bus {} target {} unit {}",
                d.controller, d.bus, d.target, d.unit
            ),
            format!("out of range for the {} bus", bus.as_str()),
        ))
    }
}

pub(crate) fn format_disk(w: &mut XmlWriter, d: &DiskDef, alias: Option<String>) {
    w.open(
        "disk",
        &[
            ("type", d.disk_type.as_str().into()),
            ("device", d.device.as_str().into()),
        ],
    );
    format_driver(w, &d.driver);
    if let Some(src) = &d.source {
        let key = match d.disk_type {
            DiskType::File => "file",
            DiskType::Block => "dev",
        };
        let mut attrs = vec![(key, src.to_string_lossy().into_owned())];
        // The node number is live state: shown with the live XML only.
        if let Some(i) = d.node_index.filter(|_| alias.is_some()) {
            attrs.push(("index", i.to_string()));
        }
        w.empty("source", &attrs);
    }
    w.empty(
        "target",
        &[("dev", d.target.clone()), ("bus", d.bus.as_str().into())],
    );
    if d.readonly {
        w.empty("readonly", &[]);
    }
    if let Some(s) = &d.serial {
        w.text_elem("serial", &[], s);
    }
    if let Some(o) = d.boot_order {
        w.empty("boot", &[("order", o.to_string())]);
    }
    format_alias(w, alias);
    if let Some(a) = &d.address {
        format_address(w, a);
    }
    w.close("disk");
}

fn format_driver(w: &mut XmlWriter, d: &DiskDriver) {
    if d.is_empty() {
        return;
    }
    let mut attrs = vec![("name", "qemu".to_string())];
    let mut opt = |k: &'static str, v: Option<&'static str>| {
        if let Some(v) = v {
            attrs.push((k, v.to_string()));
        }
    };
    opt("type", d.format.map(DiskFormat::as_str));
    opt("cache", d.cache.map(CacheMode::as_str));
    opt("io", d.io.map(IoMode::as_str));
    opt("discard", d.discard.map(DiscardMode::as_str));
    if let Some(i) = d.iothread {
        attrs.push(("iothread", i.to_string()));
    }
    if let Some(q) = d.queues {
        attrs.push(("queues", q.to_string()));
    }
    w.empty("driver", &attrs);
}

/// The destination of a block copy (`virDomainBlockCopy`'s XML): a
/// `<disk type='file'>` with an absolute `<source file>` and optionally a
/// `<driver type>` naming the image format. Returns the file and the
/// format as written (the driver decides which formats it can create).
pub fn parse_copy_dest(xml: &str) -> Result<(PathBuf, Option<String>), DomainXmlError> {
    let bad = |why: &str| {
        DomainXmlError::InvalidArgument(format!("invalid block copy destination: {why}"))
    };
    let el = virxml::parse_document(xml).map_err(|e| bad(&e.to_string()))?;
    if el.local_name() != "disk" {
        return Err(bad("expected <disk>"));
    }
    if let Some(t) = el.attr("type").filter(|t| *t != "file") {
        return Err(DomainXmlError::unsupported_because(
            "block copy destination type",
            t,
            "it must be a file",
        ));
    }
    let child = |n: &str| el.elements().find(|e| e.local_name() == n);
    let file = child("source")
        .and_then(|s| s.attr("file"))
        .filter(|f| f.starts_with('/'))
        .ok_or_else(|| bad("missing absolute <source file>"))?;
    let format = child("driver")
        .and_then(|d| d.attr("type"))
        .map(str::to_owned);
    Ok((PathBuf::from(file), format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes() {
        assert_eq!(target_index("vda"), Some(0));
        assert_eq!(target_index("sdb"), Some(1));
        assert_eq!(target_index("hdz"), Some(25));
        assert_eq!(target_index("sdaa"), Some(26));
        assert_eq!(target_index("sdab"), Some(27));
        assert_eq!(target_index("xvda"), None);
        assert_eq!(target_index("vd"), None);
        assert_eq!(target_index("vd1"), None);
    }

    #[test]
    fn copy_destinations() {
        use virterror::{ErrorCode, ToVirError};
        let (path, format) = parse_copy_dest(
            "<disk type='file'><source file='/d/copy.qcow2'/><driver type='qcow2'/></disk>",
        )
        .unwrap();
        assert_eq!(path, PathBuf::from("/d/copy.qcow2"));
        assert_eq!(format.as_deref(), Some("qcow2"));
        let (_, format) = parse_copy_dest("<disk><source file='/c.img'/></disk>").unwrap();
        assert_eq!(format, None);
        let code = |xml: &str| parse_copy_dest(xml).unwrap_err().to_vir_error().code;
        assert_eq!(
            code("<disk type='file'><source file='rel.img'/></disk>"),
            ErrorCode::InvalidArg
        );
        assert_eq!(code("<disk type='file'/>"), ErrorCode::InvalidArg);
        assert_eq!(code("<domain/>"), ErrorCode::InvalidArg);
        assert_eq!(code("<disk"), ErrorCode::InvalidArg);
        assert_eq!(
            code("<disk type='network'><source file='/x'/></disk>"),
            ErrorCode::ConfigUnsupported
        );
    }
}
