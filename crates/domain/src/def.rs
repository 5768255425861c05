//! The domain definition: the typed form of the XML ferrovirt supports.
//! Every field round-trips through `to_xml`/`parse`. The types of each
//! element live with its parser (`os`, `cpu`, `clock`, `features`, `tune`,
//! `memory`, `sysinfo`, `devices`) and are re-exported here.

use std::path::PathBuf;

use crate::cpuset::CpuSet;
use crate::devices::Devices;
use crate::xml::XmlElement;

pub use crate::clock::{ClockDef, ClockOffset, TimerDef, TimerName, TimerTrack};
pub use crate::cpu::{CpuDef, CpuFeature, CpuMode, CpuTopology, FeaturePolicy, NumaCell};
pub use crate::features::{
    Features, HypervDef, HypervFeature, HypervMode, IoapicDriver, KvmFeature,
};
pub use crate::memory::{AllocationMode, MemoryBacking, MemorySource};
pub use crate::os::{
    BiosDef, BootDev, BootMenu, Firmware, FirmwareFeature, LoaderDef, LoaderType, NvramDef, OsDef,
    SmbiosMode,
};
pub use crate::sysinfo::{SysinfoBlock, SysinfoDef};
pub use crate::tune::{BlkioDevice, BlkioTune, CpuTune, MemTune};

/// `<domain type>`: `kvm` needs /dev/kvm at start (the driver checks),
/// `qemu` is plain TCG emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainType {
    Kvm,
    Qemu,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDef {
    pub domain_type: DomainType,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Children of `<metadata>`, verbatim (clients such as virt-manager and
    /// OpenStack keep their own data there and expect it back).
    pub metadata: Vec<XmlElement>,
    /// With NUMA cells, their sum (as libvirt computes it).
    pub memory_kib: u64,
    /// Clamped to `memory_kib` (libvirt does the same).
    pub current_memory_kib: u64,
    pub memory_backing: Option<MemoryBacking>,
    /// The maximum vCPU count (`<vcpu>`).
    pub vcpus: u32,
    /// `<vcpu current>`: vCPUs online at boot, when fewer than `vcpus`.
    pub current_vcpus: Option<u32>,
    pub vcpu_placement: VcpuPlacement,
    /// `<vcpu cpuset>`: the host CPUs vCPUs (and the emulator) run on by
    /// default.
    pub vcpu_cpuset: Option<CpuSet>,
    /// I/O thread ids (`<iothreads>N</iothreads>` is 1..=N).
    pub iothread_ids: Vec<u32>,
    pub cputune: CpuTune,
    pub memtune: MemTune,
    pub blkiotune: BlkioTune,
    /// `<resource><partition>`.
    pub resource_partition: Option<String>,
    pub sysinfo: Option<SysinfoDef>,
    pub os: OsDef,
    pub features: Features,
    pub cpu: Option<CpuDef>,
    pub clock: Option<ClockDef>,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
    /// `<on_lockfailure>`: kept for round trip; ferrovirt has no lock
    /// manager, so it never fires.
    pub on_lockfailure: Option<String>,
    pub pm: Option<PmDef>,
    pub devices: Devices,
    /// A `<seclabel>` was given. ferrovirt does no security labelling, so
    /// whatever DAC or 'none' label was asked for is reported as what
    /// really applies: `<seclabel type='none' model='none'/>`.
    pub seclabel_none: bool,
    pub qemu_commandline: QemuCommandline,
}

impl DomainDef {
    /// vCPUs online at boot.
    pub fn boot_vcpus(&self) -> u32 {
        self.current_vcpus.unwrap_or(self.vcpus)
    }

    /// Gives the domain another name (a migration's `--dname`), checked
    /// as a parsed `<name>` is.
    pub fn rename(&mut self, name: &str) -> Result<(), crate::DomainXmlError> {
        crate::parse::validate_name(name)?;
        name.clone_into(&mut self.name);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuPlacement {
    Static,
    Auto,
}

/// The two x86 machine families ferrovirt emits command lines for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineFamily {
    Q35,
    I440fx,
}

impl MachineFamily {
    /// Family of a machine type name or alias (`q35`, `pc-q35-7.2`, `pc`,
    /// `pc-i440fx-7.2`, `pc-1.0`); `None` for anything else (microvm, isapc).
    pub fn of(machine: &str) -> Option<Self> {
        if machine == "q35" || machine.starts_with("pc-q35-") {
            Some(MachineFamily::Q35)
        } else if machine == "pc"
            || machine.starts_with("pc-i440fx-")
            || machine.starts_with("pc-0.")
            || machine.starts_with("pc-1.")
        {
            Some(MachineFamily::I440fx)
        } else {
            None
        }
    }

    /// Name of the root PCI bus in QEMU.
    pub fn root_bus(self) -> &'static str {
        match self {
            MachineFamily::Q35 => "pcie.0",
            MachineFamily::I440fx => "pci.0",
        }
    }
}

/// What happens when the guest powers off / reboots / crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
}

impl LifecycleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Destroy => "destroy",
            LifecycleAction::Restart => "restart",
            LifecycleAction::Preserve => "preserve",
        }
    }
}

/// `<pm>`: guest suspend support, mapped to the chipset's disable_s3/s4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PmDef {
    pub suspend_to_mem: Option<bool>,
    pub suspend_to_disk: Option<bool>,
}

/// `<qemu:commandline>`: passed through verbatim. `env` is for the driver
/// to set in QEMU's environment (build_argv only returns arguments).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QemuCommandline {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// What only a running domain has, for the live XML.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveInfo {
    /// The domain id (`<domain id='N'>`).
    pub id: u32,
    /// Pty path of each serial, by index in `devices.serials` (from QMP
    /// `query-chardev`, chardev `charserialN`).
    pub serial_ptys: Vec<Option<String>>,
    /// The VNC port QEMU bound when autoport was used (from `query-vnc`).
    pub vnc_port: Option<u16>,
    /// The port the SPICE server was given when autoport was used.
    pub spice_port: Option<u16>,
    /// The run directory the domain started with (`LaunchParams`): where
    /// unix channels without a path listen.
    pub run_dir: Option<PathBuf>,
    /// Host tap of each interface, by index (those the driver created).
    pub taps: Vec<Option<String>>,
}
