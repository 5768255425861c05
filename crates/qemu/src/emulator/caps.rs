//! Emulator capabilities, probed once per binary and cached.
//!
//! Probing launches the emulator (`-machine none`, no guest; KVM if the
//! host offers it, else TCG) and asks it over QMP: version, machine types,
//! KVM, CPU models (and, under KVM, the host CPU model), and the device
//! models it has. That costs tens of milliseconds to a second, so results
//! are cached by (path, mtime, size): replacing the binary invalidates the
//! entry. Concurrent starts of the same emulator share one probe.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use domain::cpu_models::CpuFeatureMap;
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

/// One shared, once-filled answer per key.
type Cells<K, T> = Mutex<HashMap<K, Arc<OnceCell<Arc<T>>>>>;

/// Cache of probe results.
pub(crate) struct CapsCache {
    /// One cell per binary version; the cell makes concurrent callers
    /// share one probe. Held only to find or insert a cell.
    entries: Cells<Key, EmulatorCaps>,
    /// The same for the features of every CPU model under one
    /// accelerator, probed only when a client first compares or combines
    /// CPUs (a hundred expansions the daemon's start need not wait for).
    features: Cells<(Key, Accel), CpuFeatureMap>,
    seq: AtomicU64,
    /// The exec helper the probes are started through.
    helper: PathBuf,
}

impl CapsCache {
    pub(crate) fn new(helper: PathBuf) -> Self {
        Self {
            entries: Mutex::default(),
            features: Mutex::default(),
            seq: AtomicU64::default(),
            helper,
        }
    }

    /// Capabilities of `emulator`, probing at most once per binary version.
    /// The probe takes KVM where the host offers it (CPU answers are then
    /// KVM's), else TCG; `query-kvm` tells which one QEMU took.
    pub(crate) async fn get(
        &self,
        emulator: &Path,
        dir: &Path,
        timeout: Duration,
    ) -> Result<Arc<EmulatorCaps>> {
        let cell = cell_for(&self.entries, Key::of(emulator)?);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let p = Probe {
            helper: &self.helper,
            emulator,
            dir,
            seq,
            timeout,
            accels: &["kvm", "tcg"],
        };
        cell.get_or_try_init(|| async {
            p.run(|mon| async move { query(&mon).await })
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    /// What every CPU model of `emulator` holds, which models `accel`
    /// runs as they are, and what `max` holds under it; probed once per
    /// binary version and accelerator, on first use.
    pub(crate) async fn cpu_features(
        &self,
        emulator: &Path,
        accel: Accel,
        dir: &Path,
        timeout: Duration,
    ) -> Result<Arc<CpuFeatureMap>> {
        let cell = cell_for(&self.features, (Key::of(emulator)?, accel));
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let p = Probe {
            helper: &self.helper,
            emulator,
            dir,
            seq,
            timeout,
            accels: match accel {
                Accel::Kvm => &["kvm"],
                Accel::Tcg => &["tcg"],
            },
        };
        cell.get_or_try_init(|| async {
            p.run(|mon| async move { cpu_feature_map(&mon).await })
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }
}

impl Key {
    fn of(emulator: &Path) -> Result<Key> {
        let meta = std::fs::metadata(emulator)
            .map_err(|e| Error::io(format!("cannot find emulator {}", emulator.display()), e))?;
        Ok(Key {
            path: emulator.to_path_buf(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            size: meta.len(),
        })
    }
}

/// A cache key naming one version of one binary.
trait CacheKey: Eq + std::hash::Hash {
    fn binary(&self) -> &Key;
}

impl CacheKey for Key {
    fn binary(&self) -> &Key {
        self
    }
}

impl CacheKey for (Key, Accel) {
    fn binary(&self) -> &Key {
        &self.0
    }
}

/// The cell of `key`, new if need be; cells of older versions of the same
/// binary are dropped (they are never asked for again).
fn cell_for<K: CacheKey, T>(map: &Mutex<HashMap<K, Arc<OnceCell<T>>>>, key: K) -> Arc<OnceCell<T>> {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    let bin = key.binary();
    m.retain(|k, _| k.binary().path != bin.path || k.binary() == bin);
    m.entry(key).or_default().clone()
}

/// Expands every named model, and `max`, statically: the features each
/// turns on. A model QEMU cannot expand is left out.
async fn cpu_feature_map(mon: &qmp::Monitor) -> Result<CpuFeatureMap> {
    let defs = optional(mon.execute(&QueryCpuDefinitions).await)?.unwrap_or_default();
    let mut map = CpuFeatureMap::default();
    for d in defs {
        let Some(x) = optional(mon.execute(&static_expansion(&d.name)).await)? else {
            continue;
        };
        let on = features_on(x);
        if d.unavailable_features.as_ref().is_some_and(Vec::is_empty) {
            map.runnable.insert(d.name.clone());
        }
        match d.name.as_str() {
            "max" => map.max = on,
            "host" | "base" => {}
            _ => {
                map.models.insert(d.name, on);
            }
        }
    }
    Ok(map)
}

fn static_expansion(model: &str) -> QueryCpuModelExpansion {
    QueryCpuModelExpansion {
        expansion: CpuModelExpansionType::Static,
        model: CpuModelInfo {
            name: model.into(),
            props: None,
        },
    }
}

/// The features an expansion turns on.
fn features_on(x: CpuModelExpansionInfo) -> BTreeSet<String> {
    x.model
        .props
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| *v == serde_json::Value::Bool(true))
        .map(|(k, _)| k)
        .collect()
}

/// One run of the emulator without a guest, to ask it what it supports.
struct Probe<'a> {
    /// The exec helper it is started through.
    helper: &'a Path,
    emulator: &'a Path,
    /// Where its socket and log go.
    dir: &'a Path,
    /// Makes its socket's name unique among concurrent probes.
    seq: u64,
    timeout: Duration,
    /// The accelerators to try, in order.
    accels: &'a [&'a str],
}

impl Probe<'_> {
    fn argv(&self, sock: &Path) -> Vec<String> {
        let mut argv: Vec<String> = [
            &*self.emulator.to_string_lossy(),
            "-S",
            "-no-user-config",
            "-nodefaults",
            "-nographic",
            "-machine",
            "none",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        for a in self.accels {
            argv.extend(["-accel".to_owned(), (*a).to_owned()]);
        }
        argv.extend([
            "-qmp".to_owned(),
            format!("unix:{},server=on,wait=off", sock.display()),
        ]);
        argv
    }

    /// Starts the emulator, lets `ask` question its monitor, stops it.
    async fn run<T, F, Fut>(&self, ask: F) -> Result<T>
    where
        F: FnOnce(qmp::Monitor) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let sock = self
            .dir
            .join(format!("probe-{}-{}.qmp", std::process::id(), self.seq));
        let log = self.dir.join("probe.log");
        let _ = std::fs::remove_file(&sock);
        let launch = process::Launch {
            helper: self.helper,
            plan: confine::Plan::default(),
            inherit: Vec::new(),
        };
        let proc = process::spawn(&self.argv(&sock), &[], &log, launch)
            .map_err(|e| Error::io(format!("cannot run {}", self.emulator.display()), e))?;
        let proc = KillOnDrop(Some(Arc::new(proc)));
        let cfg = monitor::qmp_config(self.timeout, &qmp::EventLimits::default());
        let res = async {
            let p = proc.get()?;
            let (mon, _events) = monitor::connect(&sock, &cfg, p, self.timeout, Some(&log)).await?;
            ask(mon).await
        }
        .await;
        proc.finish().await;
        let _ = std::fs::remove_file(&sock);
        res
    }
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
    static_expansion("host")
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
