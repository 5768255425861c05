//! `<disk>`: file or block backed disks and CD-ROMs on virtio, SATA, SCSI
//! and (i440fx only) IDE buses.

use super::address::{Address, DriveAddress, format_address, parse_address};
use super::{format_alias, parse_boot_order};
use crate::def::MachineFamily;
use crate::error::DomainXmlError;
use crate::parse::{parse_abs_path, skip_alias};
use crate::xml::{XmlElement, XmlWriter};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    File,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskDevice {
    Disk,
    Cdrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    Virtio,
    Sata,
    Scsi,
    Ide,
}

impl DiskBus {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskBus::Virtio => "virtio",
            DiskBus::Sata => "sata",
            DiskBus::Scsi => "scsi",
            DiskBus::Ide => "ide",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// libvirt's cache modes, mapped to QEMU's cache.direct/no-flush and the
/// device's write-cache by the argv builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    None,
    Writeback,
    Writethrough,
    Directsync,
    Unsafe,
}

impl CacheMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::None => "none",
            CacheMode::Writeback => "writeback",
            CacheMode::Writethrough => "writethrough",
            CacheMode::Directsync => "directsync",
            CacheMode::Unsafe => "unsafe",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardMode {
    Unmap,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    Native,
    Threads,
}

/// `<driver name='qemu' .../>`; all fields optional, as in libvirt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskDriver {
    pub format: Option<DiskFormat>,
    pub cache: Option<CacheMode>,
    pub discard: Option<DiscardMode>,
    pub io: Option<IoMode>,
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
    /// Drive address for SATA/SCSI/IDE (always set after parse); optional
    /// PCI address for virtio.
    pub address: Option<Address>,
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

pub(crate) fn parse_disk(
    el: &XmlElement,
    family: MachineFamily,
) -> Result<DiskDef, DomainXmlError> {
    const P: &str = "disk";
    el.check_attrs(P, &["type", "device"])?;
    el.check_children(
        P,
        &[
            "driver", "source", "target", "readonly", "boot", "alias", "address",
        ],
    )?;
    let disk_type = match el.attr("type").unwrap_or("file") {
        "file" => DiskType::File,
        "block" => DiskType::Block,
        other => return Err(DomainXmlError::unsupported("disk type", other)),
    };
    let device = match el.attr("device").unwrap_or("disk") {
        "disk" => DiskDevice::Disk,
        "cdrom" => DiskDevice::Cdrom,
        other => return Err(DomainXmlError::unsupported("disk device", other)),
    };

    let mut driver = DiskDriver::default();
    if let Some(d) = el.child("driver") {
        d.check_attrs("disk/driver", &["name", "type", "cache", "discard", "io"])?;
        d.check_children("disk/driver", &[])?;
        if let Some(n) = d.attr("name")
            && n != "qemu"
        {
            return Err(DomainXmlError::unsupported("disk driver name", n));
        }
        driver.format = match d.attr("type") {
            None => None,
            Some("raw") => Some(DiskFormat::Raw),
            Some("qcow2") => Some(DiskFormat::Qcow2),
            Some(o) => return Err(DomainXmlError::unsupported("disk driver type", o)),
        };
        driver.cache = match d.attr("cache") {
            None | Some("default") => None,
            Some("none") => Some(CacheMode::None),
            Some("writeback") => Some(CacheMode::Writeback),
            Some("writethrough") => Some(CacheMode::Writethrough),
            Some("directsync") => Some(CacheMode::Directsync),
            Some("unsafe") => Some(CacheMode::Unsafe),
            Some(o) => return Err(DomainXmlError::unsupported("disk driver cache", o)),
        };
        driver.discard = match d.attr("discard") {
            None => None,
            Some("unmap") => Some(DiscardMode::Unmap),
            Some("ignore") => Some(DiscardMode::Ignore),
            Some(o) => return Err(DomainXmlError::unsupported("disk driver discard", o)),
        };
        driver.io = match d.attr("io") {
            None => None,
            Some("native") => Some(IoMode::Native),
            Some("threads") => Some(IoMode::Threads),
            Some(o) => return Err(DomainXmlError::unsupported("disk driver io", o)),
        };
    }

    let target_el = el
        .child("target")
        .ok_or_else(|| DomainXmlError::structure("missing <target> of <disk>"))?;
    target_el.check_attrs("disk/target", &["dev", "bus"])?;
    target_el.check_children("disk/target", &[])?;
    let target = target_el.req_attr("disk/target", "dev")?.to_string();
    let idx = target_index(&target).ok_or_else(|| {
        DomainXmlError::invalid(
            "<disk/target dev>",
            &target,
            "expected vdX, sdX or hdX (X: 1-4 lowercase letters)",
        )
    })?;
    let bus = match target_el.attr("bus") {
        Some("virtio") => DiskBus::Virtio,
        Some("sata") => DiskBus::Sata,
        Some("scsi") => DiskBus::Scsi,
        Some("ide") => DiskBus::Ide,
        Some(o) => return Err(DomainXmlError::unsupported("disk bus", o)),
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

    let source = match el.child("source") {
        None => None,
        Some(s) => {
            let attr = match disk_type {
                DiskType::File => "file",
                DiskType::Block => "dev",
            };
            s.check_attrs("disk/source", &[attr])?;
            s.check_children("disk/source", &[])?;
            match s.attr(attr) {
                Some(p) => Some(parse_abs_path(&format!("<disk/source {attr}>"), p)?),
                None => None,
            }
        }
    };
    if source.is_none() && device == DiskDevice::Disk {
        return Err(DomainXmlError::NoSource(target));
    }

    let readonly = match el.child("readonly") {
        Some(r) => {
            r.check_attrs("disk/readonly", &[])?;
            r.check_children("disk/readonly", &[])?;
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

    let boot_order = el
        .child("boot")
        .map(|b| parse_boot_order(b, P))
        .transpose()?;
    skip_alias(el, P)?;
    let mut disk = DiskDef {
        disk_type,
        device,
        driver,
        source,
        target,
        bus,
        readonly,
        boot_order,
        address: el
            .child("address")
            .map(|a| parse_address(a, P))
            .transpose()?,
    };
    match (bus, disk.address) {
        (DiskBus::Virtio, Some(Address::Drive(_))) => {
            return Err(DomainXmlError::unsupported(
                "address type for a virtio disk",
                "drive",
            ));
        }
        (DiskBus::Virtio, _) => {}
        (_, Some(Address::Pci(_))) => {
            return Err(DomainXmlError::unsupported(
                format!("address type for a {} disk", bus.as_str()),
                "pci",
            ));
        }
        (_, Some(Address::Drive(d))) => check_drive_address(bus, &d, &disk.target)?,
        (_, None) => disk.address = disk.default_drive_address(idx).map(Address::Drive),
    }
    Ok(disk)
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
    let ty = match d.disk_type {
        DiskType::File => "file",
        DiskType::Block => "block",
    };
    let dev = match d.device {
        DiskDevice::Disk => "disk",
        DiskDevice::Cdrom => "cdrom",
    };
    w.open("disk", &[("type", ty.into()), ("device", dev.into())]);
    if !d.driver.is_empty() {
        let mut attrs = vec![("name", "qemu".to_string())];
        if let Some(f) = d.driver.format {
            attrs.push(("type", f.as_str().into()));
        }
        if let Some(c) = d.driver.cache {
            attrs.push(("cache", c.as_str().into()));
        }
        if let Some(io) = d.driver.io {
            let v = match io {
                IoMode::Native => "native",
                IoMode::Threads => "threads",
            };
            attrs.push(("io", v.into()));
        }
        if let Some(disc) = d.driver.discard {
            let v = match disc {
                DiscardMode::Unmap => "unmap",
                DiscardMode::Ignore => "ignore",
            };
            attrs.push(("discard", v.into()));
        }
        w.empty("driver", &attrs);
    }
    if let Some(src) = &d.source {
        let key = match d.disk_type {
            DiskType::File => "file",
            DiskType::Block => "dev",
        };
        w.empty("source", &[(key, src.to_string_lossy().into_owned())]);
    }
    w.empty(
        "target",
        &[("dev", d.target.clone()), ("bus", d.bus.as_str().into())],
    );
    if d.readonly {
        w.empty("readonly", &[]);
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

/// The destination of a block copy (`virDomainBlockCopy`'s XML): a
/// `<disk type='file'>` with an absolute `<source file>` and optionally a
/// `<driver type>` naming the image format. Returns the file and the
/// format as written (the driver decides which formats it can create).
pub fn parse_copy_dest(xml: &str) -> Result<(PathBuf, Option<String>), DomainXmlError> {
    let bad = |why: &str| {
        DomainXmlError::InvalidArgument(format!("invalid block copy destination: {why}"))
    };
    let el = crate::xml::parse_document(xml).map_err(|e| bad(&e.to_string()))?;
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
