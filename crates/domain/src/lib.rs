//! # domain — libvirt domain XML and the QEMU command line built from it
//!
//! Parses, validates and formats the libvirt domain XML that ferrovirt
//! supports (what virt-install, virt-manager, cockpit-machines and OpenStack
//! Nova write for Linux and Windows guests on q35 and i440fx), assigns
//! device addresses as libvirt does, turns a definition into a QEMU argv,
//! and describes what an emulator supports (domain capabilities). The
//! driver (`crates/qemu`) owns everything that touches the host: probing
//! QEMU, reading firmware descriptors, NVRAM files, swtpm, cgroups, taps,
//! checking /dev/kvm and disk readability, uniqueness of names/UUIDs.
//!
//! ## API
//!
//! ```text
//! DomainDef::parse(xml) -> Result<DomainDef, DomainXmlError>   // validates; defaults; addresses; uuid / MACs
//! DomainDef::to_xml(live: Option<&LiveInfo>) -> String          // without secrets (dumpxml)
//! DomainDef::to_xml_with(XmlOptions { live, secure }) -> String // secure: with graphics passwords
//! DomainDef::resolve_machine(caps) / resolve_firmware(descriptors, nvram_dir)  // at define time
//! DomainDef::emulator() / disk_paths() / disk_alias(i) / disk_node_names(i) / serial_chardev_ids()
//! DomainDef::nvram() / tpm() / boot_vcpus()                     // what the driver prepares on the host
//! build_argv(def, caps, launch) -> Result<Vec<String>, _>       // argv without the binary
//! startup_actions(def) -> Vec<StartupAction>                    // QMP steps before the guest runs
//! tpm_socket(launch) / devices::chardev::channel_socket(dir, i, ch)
//! check_abi_stability(old, new) -> Result<(), AbiMismatch>      // same guest? (save-image XML)
//! EmulatorCaps { version, machines, kvm, cpu_models, host_cpu, device_types, commands, .. }
//! FirmwareDescriptor::parse(path, json) / firmware::select(descriptors, def)
//! domcaps::domain_capabilities(&DomcapsInput) -> Result<String, _>  // virConnectGetDomainCapabilities
//! parse_copy_dest(xml) -> Result<(PathBuf, Option<String>), _>  // virDomainBlockCopy's <disk>
//! parse_interface_xml(xml) -> Result<(InterfaceDef, Option<MacAddr>), _>  // one <interface>
//! impl ToVirError for DomainXmlError, AbiMismatch
//! ```
//!
//! `def.qemu_commandline.env` must be applied by the driver to QEMU's
//! environment; `build_argv` appends `qemu_commandline.args` verbatim.
//!
//! ## Lifecycle mapping (see argv)
//! on_poweroff=destroy: QEMU exits itself after guest poweroff (no
//! -no-shutdown). restart/preserve: `-action shutdown=pause`; the driver
//! then resets+`cont`s or leaves it paused. on_reboot=destroy:
//! `-action reboot=shutdown`. on_crash: recorded only (no pvpanic device).
//!
//! ## What is accepted
//!
//! README.md has the table, element by element. In short: every element
//! this crate parses is honoured on the QEMU command line (or by the driver
//! at start: passwords, balloon period and link state over QMP; NVRAM,
//! swtpm, pinning and cgroup limits on the host) and comes back in dumpxml.
//! Accepted and preserved without effect: `<metadata>` (verbatim),
//! `<on_lockfailure>` (no lock manager), `<vcpu placement='auto'>` (no
//! numad). Accepted and reported as what applies: `<seclabel>` with a DAC
//! or 'none' label becomes `<seclabel type='none' model='none'/>`.
//! Output-only input that is dropped: `<alias>`, `id` on `<domain>`, pty
//! paths, `vnet*` tap names, channel `state`. Everything else is refused
//! with VIR_ERR_CONFIG_UNSUPPORTED naming the element, attribute or value
//! (`<hostdev>`, `<filesystem>`, `<numatune>`, SELinux labels, TLS SPICE,
//! hyperv vpindex under TCG, ...).

pub mod abi;
mod addr;
pub mod argv;
pub mod caps;
mod clock;
mod cpu;
pub mod cpu_models;
pub mod cpuset;
pub mod def;
pub mod devices;
pub mod domcaps;
pub mod error;
mod features;
pub mod firmware;
pub mod format;
pub mod hotplug;
mod memory;
mod os;
pub mod parse;
mod sysinfo;
mod tune;
mod values;

/// The XML tree and writer shared by libvirt's documents.
pub mod xml {
    pub use virxml::{XmlElement, XmlNode, XmlWriter, parse_document};
}

pub use abi::{AbiMismatch, check_abi_stability};
pub use argv::{
    Accel, LaunchParams, StartupAction, build_argv, disk_node_names, disk_nodes, startup_actions,
    tpm_socket,
};
pub use caps::{CpuModel, EmulatorCaps, HostCpuModel, MachineType};
pub use cpuset::CpuSet;
pub use def::*;
pub use devices::Devices;
pub use devices::address::{Address, DriveAddress, PciAddress, UsbAddress, VirtioSerialAddress};
pub use devices::chardev::{ChannelDef, ChrSource, ConsoleDef, SerialDef, UnixMode};
pub use devices::controller::{ControllerDef, ControllerKind, ControllerType, PciModel, UsbModel};
pub use devices::disk::{
    CacheMode, DiscardMode, DiskBus, DiskDef, DiskDevice, DiskDriver, DiskFormat, DiskType, IoMode,
    parse_copy_dest,
};
pub use devices::graphics::{DisplayDef, GraphicsDef, GraphicsType};
pub use devices::input::{InputBus, InputDef, InputType};
pub use devices::misc::{MemballoonDef, MemballoonModel, WatchdogAction, WatchdogDef};
pub use devices::net::{
    Bandwidth, BandwidthRate, InterfaceDef, InterfaceType, MacAddr, NicModel, parse_interface_xml,
};
pub use devices::sound::{AudioDef, AudioType, SoundDef, SoundModel};
pub use devices::tpm::{TpmDef, TpmModel, TpmVersion};
pub use devices::video::{VideoDef, VideoModel};
pub use error::DomainXmlError;
pub use firmware::FirmwareDescriptor;
pub use format::XmlOptions;
pub use hotplug::{
    DeviceDef, DeviceError, DiskPlug, NicPlug, OtherKind, OtherPlug, OtherPos, TapFd, parse_device,
};
pub use virxml::XmlError;
pub use xml::{XmlElement, XmlNode};

use std::path::{Path, PathBuf};

/// The emulator used when `<emulator>` is absent.
pub const DEFAULT_EMULATOR: &str = "/usr/bin/qemu-system-x86_64";

impl DomainDef {
    /// Parses and validates domain XML, adds what it implies (controllers,
    /// default devices) and assigns device addresses. Generates the UUID
    /// and NIC MACs when absent (and keeps them in the definition).
    pub fn parse(xml: &str) -> Result<DomainDef, DomainXmlError> {
        parse::parse_domain(xml)
    }

    /// Formats as libvirt would, without secrets: inactive XML for `None`,
    /// live XML (domain id, device aliases, pty paths, ports) with `Some`.
    pub fn to_xml(&self, live: Option<&LiveInfo>) -> String {
        self.to_xml_with(XmlOptions {
            live,
            secure: false,
        })
    }

    /// Formats with explicit options: `secure` includes graphics passwords
    /// (what is stored, and what `VIR_DOMAIN_XML_SECURE` shows).
    pub fn to_xml_with(&self, o: XmlOptions<'_>) -> String {
        format::format_domain(self, o)
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

    /// The UEFI variable store QEMU opens, and the template it is copied
    /// from when missing (the driver's job at start).
    pub fn nvram(&self) -> Option<(&Path, Option<&Path>)> {
        let n = self.os.nvram.as_ref()?;
        Some((n.path.as_deref()?, n.template.as_deref()))
    }

    /// The emulated TPM, if any (the driver runs swtpm for it).
    pub fn tpm(&self) -> Option<&TpmDef> {
        self.devices.tpms.first()
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

    /// The unix sockets QEMU listens on for serials and channels in bind
    /// mode (a channel without a path listens in `run_dir`), in argv
    /// order: a caller that binds them hands them over with
    /// `LaunchParams::bound_sockets`.
    pub fn listening_sockets(&self, run_dir: &Path) -> Vec<PathBuf> {
        let bind = |src: &ChrSource| match src {
            ChrSource::Unix {
                path,
                mode: UnixMode::Bind,
            } => Some(path.clone()),
            _ => None,
        };
        let serials = self.devices.serials.iter().filter_map(|s| bind(&s.source)?);
        let channels = self
            .devices
            .channels
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let path = bind(&c.source)?;
                Some(path.unwrap_or_else(|| devices::chardev::channel_socket(run_dir, i, c)))
            });
        serials.chain(channels).collect()
    }

    /// Unix channel sockets without a path listen in `run_dir`.
    pub fn channel_paths(&self, run_dir: &Path) -> Vec<PathBuf> {
        self.devices
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.source, ChrSource::Unix { path: None, .. }))
            .map(|(i, c)| devices::chardev::channel_socket(run_dir, i, c))
            .collect()
    }
}
