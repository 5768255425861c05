//! # domain — libvirt domain XML and the QEMU command line built from it
//!
//! Parses, validates and formats the subset of libvirt's domain XML that
//! ferrovirt supports, and turns a definition into a QEMU argv. The driver
//! (`crates/qemu`) owns everything that touches the host: probing QEMU,
//! checking /dev/kvm and disk readability, uniqueness of names/UUIDs.
//!
//! ## API
//!
//! ```text
//! DomainDef::parse(xml: &str) -> Result<DomainDef, DomainXmlError>  // validates; generates uuid / MACs
//! DomainDef::to_xml(&self, live: Option<&LiveInfo>) -> String         // inactive XML when None
//! DomainDef::emulator(&self) -> &Path                                 // default /usr/bin/qemu-system-x86_64
//! DomainDef::disk_paths(&self) -> Vec<&Path>                          // sources to check readability of
//! DomainDef::disk_alias(&self, i) -> Option<String>                   // virtio-disk0, sata0-0-0, ...
//! DomainDef::disk_node_names(&self, i) -> Option<(String, String)>    // (storage, format) blockdev nodes
//! DomainDef::serial_chardev_ids(&self) -> Vec<String>                 // charserialN, to map query-chardev
//! DomainDef::resolve_machine(&mut self, caps) -> Result<(), _>        // pin q35/pc to pc-q35-7.2 at define
//! check_abi_stability(old, new) -> Result<(), AbiMismatch>          // same guest? (save-image XML)
//! build_argv(def, caps, launch) -> Result<Vec<String>, DomainXmlError> // argv without the binary
//! Accel::for_domain(def) -> Accel                                      // kvm → Kvm, qemu → Tcg
//! EmulatorCaps { version, package, machines, kvm, probed_with, cpu_models, host_cpu, device_types }
//! EmulatorCaps::resolve_machine(Option<&str>) / cpu_max(&str) / has_action_option()
//! EmulatorCaps::has_device(&str) / cpu_model(&str)                   // for domain capabilities
//! parse_copy_dest(xml) -> Result<(PathBuf, Option<String>), _>        // virDomainBlockCopy's <disk>
//! impl ToVirError for DomainXmlError, AbiMismatch
//! ```
//!
//! `def.qemu_commandline.env` must be applied by the driver to QEMU's
//! environment; `build_argv` appends `qemu_commandline.args` verbatim.
//!
//! ## Lifecycle mapping (see argv.rs)
//! on_poweroff=destroy: QEMU exits itself after guest poweroff (no
//! -no-shutdown). restart/preserve: `-action shutdown=pause`; the driver
//! then resets+`cont`s or leaves it paused. on_reboot=destroy:
//! `-action reboot=shutdown`. on_crash: recorded only (no pvpanic device).
//!
//! ## What is accepted
//!
//! Supported (parsed, validated, formatted, used in argv): `domain@type`
//! (kvm|qemu), name, uuid (with/without dashes; generated when absent),
//! title, description, memory/currentMemory with units, vcpu (placement;
//! `current` only if equal), os (type hvm, arch x86_64, machine pc*/q35*,
//! boot dev hd|cdrom|network, bootmenu, kernel, initrd, cmdline), features
//! acpi/apic/pae/vmport, cpu (host-passthrough, host-model, custom+model,
//! maximum; match/check/migratable, topology, feature), clock (utc,
//! localtime; timers rtc/pit/hpet), on_poweroff/on_reboot/on_crash, pm,
//! devices: emulator, disk (file|block, disk|cdrom, driver qemu raw|qcow2
//! cache/io/discard, virtio|sata|scsi|ide(pc only), readonly, boot order,
//! address pci (bus 0) / drive), controller (sata, scsi virtio-scsi, ide
//! (pc), pci root, usb any model), interface user (virtio|e1000|e1000e|
//! rtl8139, mac), serial/console (pty, file, null, unix bind|connect;
//! console target serial), input ps2 mouse/keyboard, graphics vnc
//! (loopback only)|none, audio none, video none|vga|virtio, watchdog
//! i6300esb, memballoon virtio|none (absent ⇒ virtio, as libvirt),
//! `qemu:commandline` (arg, env).
//!
//! Accepted and preserved without effect: `<metadata>` (verbatim),
//! `<on_lockfailure>` (no lock manager), `<seclabel type='none'/>`,
//! `<input>` ps2 (builtin), apic/pae (always on for x86_64 QEMU),
//! `<vcpu placement='auto'>` (no NUMA placement), `<memballoon><stats>`
//! (driver applies), usb controller models other than qemu-xhci/nec-xhci/
//! piix3-uhci (no device emitted).
//!
//! Accepted and dropped: `<alias>` on devices (output only, as libvirt),
//! `id` on `<domain>`, pty `<source path>` (live only), `<resource>`
//! (no cgroup placement), comments.
//!
//! Rejected with ConfigUnsupported (naming the element/attribute/value):
//! every other element or attribute, e.g. `<sysinfo>`, `<cputune>`,
//! `<memoryBacking>`, `<numatune>`, `<iothreads>`, `<os><loader>`/`<nvram>`
//! (UEFI), hyperv/kvm features, interface types other than user, disk
//! types network/volume, virtio consoles/channels, USB devices, sound,
//! graphics spice, VNC on non-loopback, pcie-root-port and other PCI
//! controllers, seclabel other than none, lifecycle rename-restart/
//! coredump-*, on_reboot=preserve, watchdog models other than i6300esb.

pub mod abi;
pub mod argv;
pub mod caps;
pub mod def;
pub mod devices;
pub mod error;
pub mod format;
pub mod parse;
pub mod units;
pub mod xml;

pub use abi::{AbiMismatch, check_abi_stability};
pub use argv::{Accel, LaunchParams, build_argv, disk_node_names};
pub use caps::{CpuModel, EmulatorCaps, HostCpuModel, MachineType};
pub use def::*;
pub use devices::Devices;
pub use devices::address::{Address, DriveAddress, PciAddress};
pub use devices::chardev::{ChrSource, ConsoleDef, SerialDef, UnixMode};
pub use devices::controller::{ControllerDef, ControllerType};
pub use devices::disk::{
    CacheMode, DiscardMode, DiskBus, DiskDef, DiskDevice, DiskDriver, DiskFormat, DiskType, IoMode,
    parse_copy_dest,
};
pub use devices::graphics::{AudioDef, GraphicsDef, InputDef, InputType, VideoDef, VideoModel};
pub use devices::misc::{MemballoonDef, MemballoonModel, WatchdogAction, WatchdogDef};
pub use devices::net::{InterfaceDef, MacAddr, NicModel};
pub use error::DomainXmlError;
pub use xml::{XmlElement, XmlNode};

use std::path::Path;

/// The emulator used when `<emulator>` is absent.
pub const DEFAULT_EMULATOR: &str = "/usr/bin/qemu-system-x86_64";

impl DomainDef {
    /// Parses and validates domain XML. Generates the UUID and NIC MACs
    /// when absent (and keeps them in the definition).
    pub fn parse(xml: &str) -> Result<DomainDef, DomainXmlError> {
        parse::parse_domain(xml)
    }

    /// Formats as libvirt would: inactive XML for `None`, live XML (domain
    /// id, device aliases, pty paths, VNC port) with `Some`.
    pub fn to_xml(&self, live: Option<&LiveInfo>) -> String {
        format::format_domain(self, live)
    }

    pub fn emulator(&self) -> &Path {
        self.devices
            .emulator
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_EMULATOR))
    }

    /// Paths QEMU will open for disks, kernel and initrd, for the driver's
    /// readability check at start (empty CD-ROMs have none).
    pub fn disk_paths(&self) -> Vec<&Path> {
        let disks = self
            .devices
            .disks
            .iter()
            .filter_map(|d| d.source.as_deref());
        let boot = self
            .os
            .kernel
            .iter()
            .chain(self.os.initrd.iter())
            .map(|p| p.as_path());
        disks.chain(boot).collect()
    }

    /// QEMU device id (= libvirt alias) of disk `i`.
    pub fn disk_alias(&self, i: usize) -> Option<String> {
        self.devices.disks.get(i).map(|d| d.alias())
    }

    /// Block node names of disk `i` (None for an empty CD-ROM).
    pub fn disk_node_names(&self, i: usize) -> Option<(String, String)> {
        self.devices
            .disks
            .get(i)
            .filter(|d| d.source.is_some())
            .map(|_| disk_node_names(i))
    }

    /// Chardev ids of the serials, in order (to match `query-chardev`
    /// results to `LiveInfo::serial_ptys`).
    pub fn serial_chardev_ids(&self) -> Vec<String> {
        (0..self.devices.serials.len())
            .map(|i| format!("charserial{i}"))
            .collect()
    }

    /// Replaces an alias machine type (or none) with the versioned name,
    /// as libvirt does at define time, so the guest ABI stays fixed.
    pub fn resolve_machine(&mut self, caps: &EmulatorCaps) -> Result<(), DomainXmlError> {
        let m = caps
            .resolve_machine(self.os.machine.as_deref())?
            .to_string();
        if MachineFamily::of(&m) != Some(self.os.family()) {
            return Err(DomainXmlError::unsupported("machine type", m));
        }
        self.os.machine = Some(m);
        Ok(())
    }
}
