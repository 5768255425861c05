//! The domain definition: the typed form of the XML subset ferrovirt
//! supports. Every field round-trips through `to_xml`/`parse`.

use crate::devices::Devices;
use crate::xml::XmlElement;
use std::path::PathBuf;

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
    pub memory_kib: u64,
    /// Clamped to `memory_kib` (libvirt does the same).
    pub current_memory_kib: u64,
    pub vcpus: u32,
    pub vcpu_placement: VcpuPlacement,
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
    /// `<seclabel type='none'/>` was given (the only label accepted:
    /// ferrovirt does no sVirt labelling, and claiming otherwise would be a
    /// security lie).
    pub seclabel_none: bool,
    pub qemu_commandline: QemuCommandline,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDev {
    Hd,
    Cdrom,
    Network,
}

impl BootDev {
    pub fn as_str(self) -> &'static str {
        match self {
            BootDev::Hd => "hd",
            BootDev::Cdrom => "cdrom",
            BootDev::Network => "network",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsDef {
    /// As written; `None` means q35 (resolved against EmulatorCaps by
    /// `build_argv`, or persistently by `DomainDef::resolve_machine`).
    pub machine: Option<String>,
    /// Legacy `<boot dev>` order. Empty when devices carry `<boot order>`;
    /// `[Hd]` when neither is given (libvirt's default).
    pub boot_devs: Vec<BootDev>,
    pub bootmenu: Option<bool>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
}

impl OsDef {
    pub fn family(&self) -> MachineFamily {
        self.machine
            .as_deref()
            .and_then(MachineFamily::of)
            .unwrap_or(MachineFamily::Q35)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    pub acpi: bool,
    pub apic: bool,
    pub pae: bool,
    /// `<vmport state='on|off'/>` (virt-manager writes `off` for q35).
    pub vmport: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    HostPassthrough,
    HostModel,
    Custom,
    Maximum,
}

impl CpuMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CpuMode::HostPassthrough => "host-passthrough",
            CpuMode::HostModel => "host-model",
            CpuMode::Custom => "custom",
            CpuMode::Maximum => "maximum",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeaturePolicy {
    Force,
    Require,
    Optional,
    Disable,
    Forbid,
}

impl FeaturePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FeaturePolicy::Force => "force",
            FeaturePolicy::Require => "require",
            FeaturePolicy::Optional => "optional",
            FeaturePolicy::Disable => "disable",
            FeaturePolicy::Forbid => "forbid",
        }
    }

    pub fn enables(self) -> bool {
        matches!(
            self,
            FeaturePolicy::Force | FeaturePolicy::Require | FeaturePolicy::Optional
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFeature {
    pub policy: FeaturePolicy,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuDef {
    pub mode: CpuMode,
    /// `match` attribute (minimum|exact|strict), kept for round trip.
    pub match_: Option<String>,
    /// `check` attribute (none|partial|full), kept for round trip.
    pub check: Option<String>,
    pub migratable: Option<bool>,
    pub model: Option<String>,
    /// `<model fallback>` (allow|forbid), kept for round trip.
    pub fallback: Option<String>,
    pub topology: Option<CpuTopology>,
    pub features: Vec<CpuFeature>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockOffset {
    Utc,
    Localtime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerDef {
    /// rtc, pit or hpet.
    pub name: String,
    pub tickpolicy: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockDef {
    pub offset: ClockOffset,
    pub timers: Vec<TimerDef>,
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
}
