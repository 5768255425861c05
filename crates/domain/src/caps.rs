//! What the emulator binary supports: what the argv builder checks a
//! definition against, and what domain capabilities are built from.
//!
//! Plain data. The driver fills it in from QEMU's own answers (it speaks
//! QMP; this crate does not), probing each binary once and caching the
//! result. The probe's CPU answers are relative to the accelerator it ran
//! under ([`EmulatorCaps::probed_with`]).

use std::collections::BTreeSet;

use crate::argv::Accel;
use crate::error::DomainXmlError;

/// One machine type (`query-machines`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineType {
    /// Versioned name (`pc-q35-7.2`).
    pub name: String,
    /// Alias (`q35`, `pc`).
    pub alias: Option<String>,
    pub is_default: bool,
    pub cpu_max: Option<u32>,
    pub deprecated: bool,
    /// QOM type of the CPU the machine gets without `-cpu`.
    pub default_cpu_type: Option<String>,
}

/// One named CPU model (`query-cpu-definitions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuModel {
    /// Model name (`Skylake-Client`).
    pub name: String,
    /// Its QOM type (`Skylake-Client-x86_64-cpu`).
    pub typename: String,
    /// Features the probed accelerator cannot provide; `None` when QEMU
    /// did not say.
    pub unavailable_features: Option<Vec<String>>,
    pub deprecated: bool,
}

impl CpuModel {
    /// Whether the model runs under the probed accelerator as it is.
    pub fn usable(&self) -> bool {
        self.unavailable_features
            .as_ref()
            .is_some_and(|f| f.is_empty())
    }
}

/// The host CPU as KVM presents it (`query-cpu-model-expansion` of
/// `host`, static): a base model plus properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCpuModel {
    /// The static base model QEMU expanded to.
    pub model: String,
    /// Boolean properties (CPU features) and whether each is on.
    pub features: Vec<(String, bool)>,
    /// The other properties (`vendor`, `family`, `model-id`, ...), as text.
    pub props: Vec<(String, String)>,
}

/// What one emulator binary supports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmulatorCaps {
    /// (major, minor, micro).
    pub version: (u32, u32, u32),
    /// The distribution's package string (may be empty).
    pub package: String,
    /// Empty means "not probed": machine names are then passed through.
    pub machines: Vec<MachineType>,
    /// The binary has KVM and the host offers it (`query-kvm` present).
    /// Whether KVM also runs guests in useful time is the driver's own
    /// check.
    pub kvm: bool,
    /// The accelerator the probe ran under: CPU model availability and
    /// the host model are relative to it.
    pub probed_with: Accel,
    /// Named CPU models.
    pub cpu_models: Vec<CpuModel>,
    /// The host CPU model; probed under KVM only.
    pub host_cpu: Option<HostCpuModel>,
    /// Names of the concrete device models (`virtio-rng-pci`, `tpm-crb`).
    pub device_types: BTreeSet<String>,
    /// The QMP commands it has (`query-spice` tells SPICE was built in).
    /// Empty means "not probed".
    pub commands: BTreeSet<String>,
}

impl EmulatorCaps {
    /// `-action` (QEMU ≥ 6.0) replaces -no-reboot/-no-shutdown/-watchdog-action.
    pub fn has_action_option(&self) -> bool {
        self.version >= (6, 0, 0)
    }

    /// Resolves a machine name or alias to the versioned name QEMU reports
    /// (`q35` → `pc-q35-7.2`); `None` means q35. Keeping the versioned name
    /// in the definition keeps the guest ABI stable across QEMU upgrades.
    pub fn resolve_machine<'a>(
        &'a self,
        requested: Option<&'a str>,
    ) -> Result<&'a str, DomainXmlError> {
        let want = requested.unwrap_or("q35");
        if let Some(m) = self
            .machines
            .iter()
            .find(|m| m.alias.as_deref() == Some(want))
            .or_else(|| self.machines.iter().find(|m| m.name == want))
        {
            return Ok(&m.name);
        }
        if self.machines.is_empty() {
            return Ok(match requested {
                Some(r) => r,
                None => "q35",
            });
        }
        Err(DomainXmlError::unsupported_because(
            "machine type",
            want,
            "not supported by this QEMU binary",
        ))
    }

    /// Maximum vCPUs of a machine, when known.
    pub fn cpu_max(&self, machine: &str) -> Option<u32> {
        self.machines
            .iter()
            .find(|m| m.name == machine)
            .and_then(|m| m.cpu_max)
    }

    /// Whether the binary has the device model `name` (`qxl-vga`).
    pub fn has_device(&self, name: &str) -> bool {
        self.device_types.contains(name)
    }

    /// Whether the binary has the QMP command `name`.
    pub fn has_command(&self, name: &str) -> bool {
        self.commands.contains(name)
    }

    /// Whether SPICE was built in (its query command exists).
    pub fn has_spice(&self) -> bool {
        self.has_command("query-spice")
    }

    /// The named CPU model, if the binary knows it.
    pub fn cpu_model(&self, name: &str) -> Option<&CpuModel> {
        self.cpu_models.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> EmulatorCaps {
        let m = |name: &str, alias: Option<&str>, default: bool, max: u32| MachineType {
            name: name.into(),
            alias: alias.map(Into::into),
            is_default: default,
            cpu_max: Some(max),
            ..MachineType::default()
        };
        EmulatorCaps {
            version: (7, 2, 22),
            machines: vec![
                m("pc-i440fx-7.2", Some("pc"), true, 255),
                m("pc-q35-7.2", Some("q35"), false, 288),
                m("pc-q35-7.1", None, false, 288),
            ],
            kvm: true,
            cpu_models: vec![
                CpuModel {
                    name: "qemu64".into(),
                    typename: "qemu64-x86_64-cpu".into(),
                    unavailable_features: Some(vec![]),
                    deprecated: false,
                },
                CpuModel {
                    name: "Skylake-Client".into(),
                    unavailable_features: Some(vec!["avx2".into()]),
                    ..CpuModel::default()
                },
            ],
            device_types: ["virtio-rng-pci".to_owned()].into(),
            ..EmulatorCaps::default()
        }
    }

    #[test]
    fn machines_resolve_by_alias_or_name() {
        let c = caps();
        assert_eq!(c.resolve_machine(None).unwrap(), "pc-q35-7.2");
        assert_eq!(c.resolve_machine(Some("pc")).unwrap(), "pc-i440fx-7.2");
        assert_eq!(c.resolve_machine(Some("pc-q35-7.1")).unwrap(), "pc-q35-7.1");
        assert!(c.resolve_machine(Some("pc-q35-9.9")).is_err());
        assert_eq!(c.cpu_max("pc-i440fx-7.2"), Some(255));
        let unprobed = EmulatorCaps::default();
        assert_eq!(unprobed.resolve_machine(Some("pc")).unwrap(), "pc");
        assert_eq!(unprobed.resolve_machine(None).unwrap(), "q35");
    }

    #[test]
    fn devices_and_cpu_models() {
        let c = caps();
        assert!(c.has_device("virtio-rng-pci"));
        assert!(!c.has_device("qxl-vga"));
        assert!(c.cpu_model("qemu64").is_some_and(CpuModel::usable));
        assert!(!c.cpu_model("Skylake-Client").is_some_and(CpuModel::usable));
        assert!(c.cpu_model("nope").is_none());
        let unknown = CpuModel::default();
        assert!(!unknown.usable(), "unknown availability is not usable");
        assert_eq!(c.probed_with, Accel::Tcg);
    }
}
