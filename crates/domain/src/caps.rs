//! What the emulator binary supports, as far as the argv builder cares.
//!
//! The driver probes QEMU (QMP `query-version`, `query-machines`,
//! `query-kvm`) and fills this in; `from_qmp` does the JSON part so the
//! driver does not duplicate field names.

use crate::error::DomainXmlError;
use serde_json::Value;
use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineType {
    /// Versioned name (`pc-q35-7.2`).
    pub name: String,
    /// Alias (`q35`, `pc`).
    pub alias: Option<String>,
    pub is_default: bool,
    pub cpu_max: Option<u32>,
    pub deprecated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmulatorCaps {
    /// (major, minor, micro).
    pub version: (u32, u32, u32),
    /// Empty means "not probed": machine names are then passed through.
    pub machines: Vec<MachineType>,
    /// KVM is usable with this binary on this host.
    pub kvm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse QEMU capabilities: {0}")]
pub struct CapsError(pub String);

impl ToVirError for CapsError {
    fn to_vir_error(&self) -> VirError {
        VirError::new(
            ErrorCode::InternalError,
            ErrorDomain::Qemu,
            self.to_string(),
        )
    }
}

/// Accepts either a bare QMP return value or the whole `{"return": ...}`.
fn ret(v: &Value) -> &Value {
    v.get("return").unwrap_or(v)
}

impl EmulatorCaps {
    /// Builds caps from the replies of `query-version` and `query-machines`,
    /// and whether `query-kvm` (or the driver's own check) found KVM usable.
    pub fn from_qmp(version: &Value, machines: &Value, kvm: bool) -> Result<Self, CapsError> {
        let q = ret(version)
            .get("qemu")
            .ok_or_else(|| CapsError("query-version: no 'qemu' member".into()))?;
        let num = |k: &str| -> Result<u32, CapsError> {
            q.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| CapsError(format!("query-version: bad '{k}'")))
        };
        let version = (num("major")?, num("minor")?, num("micro")?);
        let list = ret(machines)
            .as_array()
            .ok_or_else(|| CapsError("query-machines: not an array".into()))?;
        let mut out = Vec::with_capacity(list.len());
        for m in list {
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| CapsError("query-machines: entry without name".into()))?;
            out.push(MachineType {
                name: name.to_string(),
                alias: m.get("alias").and_then(Value::as_str).map(str::to_string),
                is_default: m
                    .get("is-default")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                cpu_max: m
                    .get("cpu-max")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok()),
                deprecated: m
                    .get("deprecated")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        Ok(EmulatorCaps {
            version,
            machines: out,
            kvm,
        })
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_qmp_and_resolve() {
        let v: Value = serde_json::from_str(
            r#"{"return":{"qemu":{"micro":22,"minor":2,"major":7},"package":"Debian"}}"#,
        )
        .unwrap();
        let m: Value = serde_json::from_str(
            r#"[{"name":"pc-i440fx-7.2","alias":"pc","is-default":true,"cpu-max":255,"deprecated":false},
                {"name":"pc-q35-7.2","alias":"q35","cpu-max":288},{"name":"pc-q35-7.1","cpu-max":288}]"#,
        )
        .unwrap();
        let c = EmulatorCaps::from_qmp(&v, &m, true).unwrap();
        assert_eq!(c.version, (7, 2, 22));
        assert_eq!(c.resolve_machine(None).unwrap(), "pc-q35-7.2");
        assert_eq!(c.resolve_machine(Some("pc")).unwrap(), "pc-i440fx-7.2");
        assert_eq!(c.resolve_machine(Some("pc-q35-7.1")).unwrap(), "pc-q35-7.1");
        assert!(c.resolve_machine(Some("pc-q35-9.9")).is_err());
        assert_eq!(c.cpu_max("pc-i440fx-7.2"), Some(255));
        assert!(EmulatorCaps::from_qmp(&m, &v, false).is_err());
    }
}
