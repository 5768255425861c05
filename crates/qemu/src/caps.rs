//! Emulator capabilities, probed once per binary and cached.
//!
//! Probing launches the emulator (`-machine none`, no guest) and asks it over
//! QMP; that costs tens of milliseconds to a second, so results are cached by
//! (path, mtime, size): replacing the binary invalidates the entry. Concurrent
//! starts of the same emulator share one probe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::OnceCell;

use crate::monitor::{self, str_field, u64_field};
use crate::process;
use crate::{Error, Result};

/// What an emulator binary supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    pub version: (u64, u64, u64),
    pub machines: Vec<String>,
    pub default_machine: Option<String>,
    /// The binary was built with KVM support.
    pub kvm_supported: bool,
}

impl Caps {
    pub fn has_machine(&self, name: &str) -> bool {
        self.machines.iter().any(|m| m == name)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    mtime: SystemTime,
    size: u64,
}

/// Cache of probe results.
#[derive(Default)]
pub struct CapsCache {
    entries: Mutex<HashMap<Key, Arc<OnceCell<Arc<Caps>>>>>,
    seq: AtomicU64,
}

impl CapsCache {
    /// Capabilities of `emulator`, probing at most once per binary version.
    pub async fn get(&self, emulator: &Path, dir: &Path, timeout: Duration) -> Result<Arc<Caps>> {
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
pub async fn probe(emulator: &Path, dir: &Path, seq: u64, timeout: Duration) -> Result<Caps> {
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
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", sock.display()),
    ];
    let proc = process::spawn(&argv, &[], &log)
        .map_err(|e| Error::io(format!("cannot run {}", emulator.display()), e))?;
    let cfg = monitor::qmp_config(timeout, &qmp::EventLimits::default());
    let res = async {
        let (mon, _events) = monitor::connect(&sock, &cfg, &proc, timeout, Some(&log)).await?;
        query(&mon, timeout).await
    }
    .await;
    // SIGKILL: a probe has no state worth a graceful shutdown.
    let _ = proc.signal(libc::SIGKILL);
    let _ = tokio::time::timeout(Duration::from_secs(5), proc.exited()).await;
    let _ = std::fs::remove_file(&sock);
    res
}

async fn query(mon: &qmp::Monitor, t: Duration) -> Result<Caps> {
    let v = mon
        .execute_raw("query-version", None, Some(t))
        .await
        .map_err(Error::from_qmp)?;
    let q = v.get("qemu").cloned().unwrap_or_default();
    let version = (
        u64_field(&q, "major").unwrap_or(0),
        u64_field(&q, "minor").unwrap_or(0),
        u64_field(&q, "micro").unwrap_or(0),
    );
    let (machines, default_machine) = match mon.execute_raw("query-machines", None, Some(t)).await {
        Ok(v) => parse_machines(&v),
        // A simulator without query-machines: assume the common machines.
        Err(qmp::QmpError::Command { .. }) => (vec!["q35".into(), "pc".into()], Some("pc".into())),
        Err(e) => return Err(Error::from_qmp(e)),
    };
    let kvm_supported = match mon.execute_raw("query-kvm", None, Some(t)).await {
        Ok(v) => monitor::bool_field(&v, "present").unwrap_or(false),
        Err(qmp::QmpError::Command { .. }) => false,
        Err(e) => return Err(Error::from_qmp(e)),
    };
    Ok(Caps {
        version,
        machines,
        default_machine,
        kvm_supported,
    })
}

fn parse_machines(v: &serde_json::Value) -> (Vec<String>, Option<String>) {
    let mut names = Vec::new();
    let mut default = None;
    for m in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        for key in ["name", "alias"] {
            if let Some(n) = str_field(m, key) {
                names.push(n.to_owned());
            }
        }
        if monitor::bool_field(m, "is-default") == Some(true) {
            default = str_field(m, "name").map(str::to_owned);
        }
    }
    (names, default)
}

/// How long the KVM probe guest may take. A working KVM runs it in a few
/// hundred milliseconds (firmware included); a KVM that cannot run guests in
/// useful time takes many seconds or never finishes.
pub const KVM_PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// What the probe guest writes to QEMU's `isa-debug-exit` port; QEMU then
/// exits with status `(value << 1) | 1`.
const PROBE_EXIT_VALUE: u8 = 0x2a;

/// A boot sector that writes [`PROBE_EXIT_VALUE`] to port 0x501
/// (`isa-debug-exit`) and halts: `mov dx,0x501; mov al,0x2a; out dx,al;
/// hlt; jmp $`, then the 0x55AA signature.
fn probe_sector() -> [u8; 512] {
    let mut s = [0u8; 512];
    let code = [
        0xba,
        0x01,
        0x05,
        0xb0,
        PROBE_EXIT_VALUE,
        0xee,
        0xf4,
        0xeb,
        0xfe,
    ];
    s[..code.len()].copy_from_slice(&code);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Whether this host runs KVM guests in useful time: `/dev/kvm` opens
/// read-write *and* a one-sector guest, booted by the real firmware under
/// KVM, reaches its exit port within `deadline`. Opening `/dev/kvm` alone
/// is not enough: some hosts (nested virtualisation without the features
/// the guest needs) accept the ioctls but run guests thousands of times
/// slower than TCG, or not at all.
pub async fn kvm_works(emulator: &Path, dir: &Path, deadline: Duration) -> bool {
    if !dev_kvm_opens() {
        return false;
    }
    let image = dir.join(format!("kvm-probe-{}.img", std::process::id()));
    if let Err(e) = std::fs::write(&image, probe_sector()) {
        tracing::warn!(error = %e, path = %image.display(), "cannot write the KVM probe image");
        return false;
    }
    let child = tokio::process::Command::new(emulator)
        .args([
            "-machine",
            "pc,accel=kvm",
            "-display",
            "none",
            "-nodefaults",
        ])
        .args(["-no-user-config", "-device", "isa-debug-exit", "-drive"])
        .arg(format!("file={},format=raw,if=ide", image.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let works = match child {
        Ok(mut child) => match tokio::time::timeout(deadline, child.wait()).await {
            Ok(Ok(status)) => status.code() == Some(i32::from(PROBE_EXIT_VALUE) << 1 | 1),
            Ok(Err(_)) | Err(_) => {
                let _ = child.kill().await;
                false
            }
        },
        Err(_) => false,
    };
    let _ = std::fs::remove_file(&image);
    if !works {
        tracing::info!("KVM is not usable on this host in useful time: domains run under TCG");
    }
    works
}

/// Whether /dev/kvm opens read-write.
fn dev_kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn machines_parse_with_aliases_and_garbage() {
        let v = json!([
            {"name": "pc-i440fx-7.2", "alias": "pc", "is-default": true},
            {"name": "pc-q35-7.2", "alias": "q35"},
            {"bogus": 1},
            5
        ]);
        let (names, def) = parse_machines(&v);
        assert!(names.contains(&"q35".to_string()));
        assert_eq!(def.as_deref(), Some("pc-i440fx-7.2"));
        assert_eq!(parse_machines(&json!("x")).0.len(), 0);
    }
}
