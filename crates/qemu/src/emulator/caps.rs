//! Emulator capabilities, probed once per binary and cached.
//!
//! Probing launches the emulator (`-machine none`, no guest; KVM if the
//! host offers it, else TCG) and asks it over QMP: version, machine types,
//! KVM, CPU models (and, under KVM, the host CPU model), and the device
//! models it has. That costs tens of milliseconds to a second, so results
//! are cached by (path, mtime, size): replacing the binary invalidates the
//! entry. Concurrent starts of the same emulator share one probe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use domain::{Accel, CpuModel, EmulatorCaps, HostCpuModel, MachineType};
use qmp::QmpError;
use qmp::commands::{
    CpuDefinitionInfo, CpuModelExpansionInfo, CpuModelExpansionType, CpuModelInfo, MachineInfo,
    QomListTypes, QueryCommands, QueryCpuDefinitions, QueryCpuModelExpansion, QueryKvm,
    QueryMachines, QueryVersion,
};
use tokio::sync::OnceCell;

use super::{monitor, process};
use crate::{Error, Result};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    mtime: SystemTime,
    size: u64,
}

/// Cache of probe results.
#[derive(Default)]
pub(crate) struct CapsCache {
    /// One cell per binary version; the cell makes concurrent callers
    /// share one probe. Held only to find or insert a cell.
    entries: Mutex<HashMap<Key, Arc<OnceCell<Arc<EmulatorCaps>>>>>,
    seq: AtomicU64,
}

impl CapsCache {
    /// Capabilities of `emulator`, probing at most once per binary version.
    pub(crate) async fn get(
        &self,
        emulator: &Path,
        dir: &Path,
        timeout: Duration,
    ) -> Result<Arc<EmulatorCaps>> {
        let meta = std::fs::metadata(emulator)
            .map_err(|e| Error::io(format!("cannot find emulator {}", emulator.display()), e))?;
        let key = Key {
            path: emulator.to_path_buf(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            size: meta.len(),
        };
        let cell = {
            let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            // Old versions of this binary are never asked for again.
            m.retain(|k, _| k.path != key.path || *k == key);
            m.entry(key).or_default().clone()
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        cell.get_or_try_init(|| async { probe(emulator, dir, seq, timeout).await.map(Arc::new) })
            .await
            .cloned()
    }
}

/// Runs the emulator without a guest and asks it what it supports.
async fn probe(emulator: &Path, dir: &Path, seq: u64, timeout: Duration) -> Result<EmulatorCaps> {
    let sock = dir.join(format!("probe-{}-{seq}.qmp", std::process::id()));
    let log = dir.join("probe.log");
    let _ = std::fs::remove_file(&sock);
    let argv: Vec<String> = vec![
        emulator.to_string_lossy().into_owned(),
        "-S".into(),
        "-no-user-config".into(),
        "-nodefaults".into(),
        "-nographic".into(),
        "-machine".into(),
        "none".into(),
        // KVM where the host offers it (CPU answers are then KVM's), else
        // TCG; `query-kvm` tells which one QEMU took.
        "-accel".into(),
        "kvm".into(),
        "-accel".into(),
        "tcg".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", sock.display()),
    ];
    let proc = process::spawn(&argv, &[], &log, &[])
        .map_err(|e| Error::io(format!("cannot run {}", emulator.display()), e))?;
    let proc = KillOnDrop(Some(Arc::new(proc)));
    let cfg = monitor::qmp_config(timeout, &qmp::EventLimits::default());
    let res = async {
        let p = proc.get()?;
        let (mon, _events) = monitor::connect(&sock, &cfg, p, timeout, Some(&log)).await?;
        query(&mon).await
    }
    .await;
    proc.finish().await;
    let _ = std::fs::remove_file(&sock);
    res
}

/// The probe's QEMU, killed however the probe ends: also when its caller
/// gives up (the future is dropped), so a cancelled probe leaves no QEMU
/// behind.
struct KillOnDrop(Option<Arc<process::Process>>);

impl KillOnDrop {
    fn get(&self) -> Result<&process::Process> {
        self.0
            .as_deref()
            .ok_or_else(|| Error::Internal("probe process already reaped".into()))
    }

    /// SIGKILL (a probe has no state worth a graceful shutdown) and reap.
    async fn finish(mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), p.exited()).await;
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.signal(libc::SIGKILL);
            // Reap it off the dropping task, if a runtime is still there.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { p.exited().await });
            }
        }
    }
}

/// The probe's questions. Only `query-version` is required: a command an
/// older or stripped-down emulator does not have leaves its part empty
/// (no machines known means machine names are passed through as given).
async fn query(mon: &qmp::Monitor) -> Result<EmulatorCaps> {
    let version = mon.execute(&QueryVersion).await.map_err(Error::from_qmp)?;
    let kvm = optional(mon.execute(&QueryKvm).await)?.unwrap_or_default();
    let machines = optional(mon.execute(&QueryMachines).await)?.unwrap_or_default();
    let cpus = optional(mon.execute(&QueryCpuDefinitions).await)?.unwrap_or_default();
    let devices = QomListTypes {
        implements: Some("device".into()),
        include_abstract: Some(false),
    };
    let types = optional(mon.execute(&devices).await)?.unwrap_or_default();
    let commands = optional(mon.execute(&QueryCommands).await)?.unwrap_or_default();
    // `host` is what KVM offers; under TCG there is nothing to expand.
    let host_cpu = if kvm.enabled {
        optional(mon.execute(&host_expansion()).await)?.map(host_model)
    } else {
        None
    };
    let v = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(EmulatorCaps {
        version: (
            v(version.qemu.major),
            v(version.qemu.minor),
            v(version.qemu.micro),
        ),
        package: version.package,
        machines: machines.into_iter().map(machine).collect(),
        kvm: kvm.present,
        probed_with: if kvm.enabled { Accel::Kvm } else { Accel::Tcg },
        cpu_models: cpus.into_iter().map(cpu_model).collect(),
        host_cpu,
        device_types: types
            .into_iter()
            .filter(|t| !t.is_abstract)
            .map(|t| t.name)
            .collect(),
        commands: commands.into_iter().map(|c| c.name).collect(),
    })
}

/// A reply, or `None` when QEMU refused the command (it lacks it).
fn optional<T>(r: std::result::Result<T, QmpError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(QmpError::Command { .. }) => Ok(None),
        Err(e) => Err(Error::from_qmp(e)),
    }
}

fn host_expansion() -> QueryCpuModelExpansion {
    QueryCpuModelExpansion {
        expansion: CpuModelExpansionType::Static,
        model: CpuModelInfo {
            name: "host".into(),
            props: None,
        },
    }
}

fn machine(m: MachineInfo) -> MachineType {
    MachineType {
        name: m.name,
        alias: m.alias,
        is_default: m.is_default,
        cpu_max: m.cpu_max.and_then(|n| u32::try_from(n).ok()),
        deprecated: m.deprecated,
        default_cpu_type: m.default_cpu_type,
    }
}

fn cpu_model(c: CpuDefinitionInfo) -> CpuModel {
    CpuModel {
        name: c.name,
        typename: c.typename,
        unavailable_features: c.unavailable_features,
        deprecated: c.deprecated,
    }
}

/// Splits the expanded host model's properties into features (booleans)
/// and the rest (as text; nested values are not properties of a model).
fn host_model(x: CpuModelExpansionInfo) -> HostCpuModel {
    let mut features = Vec::new();
    let mut props = Vec::new();
    for (k, v) in x.model.props.unwrap_or_default() {
        match v {
            serde_json::Value::Bool(b) => features.push((k, b)),
            serde_json::Value::String(s) => props.push((k, s)),
            serde_json::Value::Number(n) => props.push((k, n.to_string())),
            _ => {}
        }
    }
    HostCpuModel {
        model: x.model.name,
        features,
        props,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_map_to_caps() {
        let m: Vec<MachineInfo> = serde_json::from_value(json!([
            {"name": "pc-i440fx-7.2", "alias": "pc", "is-default": true, "cpu-max": 255,
             "deprecated": false, "default-cpu-type": "qemu64-x86_64-cpu"},
            {"name": "pc-q35-7.2", "alias": "q35", "cpu-max": 99999999999u64, "deprecated": false}
        ]))
        .unwrap();
        let m: Vec<_> = m.into_iter().map(machine).collect();
        assert_eq!(m[0].alias.as_deref(), Some("pc"));
        assert!(m[0].is_default);
        assert_eq!(m[0].cpu_max, Some(255));
        assert_eq!(m[0].default_cpu_type.as_deref(), Some("qemu64-x86_64-cpu"));
        assert_eq!(m[1].cpu_max, None, "out of range is unknown");
        let x: CpuModelExpansionInfo = serde_json::from_value(json!({"model": {
            "name": "base", "props": {"avx": true, "svm": false, "family": 6,
            "vendor": "GenuineIntel", "nested": {"x": 1}}}}))
        .unwrap();
        let h = host_model(x);
        assert_eq!(h.model, "base");
        assert_eq!(
            h.features,
            vec![("avx".to_owned(), true), ("svm".to_owned(), false)]
        );
        assert!(h.props.contains(&("family".to_owned(), "6".to_owned())));
        assert!(
            h.props
                .contains(&("vendor".to_owned(), "GenuineIntel".to_owned()))
        );
        assert_eq!(h.props.len(), 2, "nested values are no properties");
    }

    #[test]
    fn a_missing_command_is_not_a_failed_probe() {
        let refused = Err::<u8, _>(QmpError::Command {
            class: "CommandNotFound".into(),
            desc: "The command query-machines has not been found".into(),
        });
        assert_eq!(optional(refused).unwrap(), None);
        assert_eq!(optional(Ok::<_, QmpError>(3)).unwrap(), Some(3));
        let hung = Err::<u8, _>(QmpError::Timeout {
            command: "query-kvm".into(),
            after: Duration::from_secs(1),
        });
        assert!(optional(hung).is_err());
    }
}
