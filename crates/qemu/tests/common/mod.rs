//! Shared test helpers: configs, domain XML for real QEMU and qemu-sim,
//! a guard that kills every QEMU a test started, and polling with deadlines.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qemu::{DomainEvent, DriverConfig, EventKind, LifecycleKind, Subscription};

pub const REAL_QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// A short state root (UNIX socket paths are limited to 108 bytes).
pub fn root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fv")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

pub fn config(root: &Path) -> DriverConfig {
    let mut c = DriverConfig::new(root);
    c.job_wait = Duration::from_secs(5);
    c.monitor_timeout = Duration::from_secs(2);
    c.destroy_grace = Duration::from_secs(2);
    c
}

/// The qemu-sim binary in our target dir, built on demand.
pub fn sim_path() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut g = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = g.as_ref() {
        return p.clone();
    }
    // tests run from target/debug/deps/...; the binary is target/debug/qemu-sim
    let exe = std::env::current_exe().expect("current exe");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_path_buf();
    let sim = debug.join("qemu-sim");
    if !sim.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = debug.parent().expect("target dir");
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "qemu-sim"])
            .env("CARGO_TARGET_DIR", target)
            .status()
            .expect("cargo build -p qemu-sim");
        assert!(st.success(), "building qemu-sim failed");
    }
    assert!(sim.exists(), "qemu-sim not found at {}", sim.display());
    *g = Some(sim.clone());
    sim
}

/// KVM only when asked for with `FERROVIRT_TEST_ACCEL=kvm`: TCG works on
/// every host, while an openable /dev/kvm may still not run guests.
pub fn kvm() -> bool {
    std::env::var("FERROVIRT_TEST_ACCEL").as_deref() == Ok("kvm")
}

fn xml(
    name: &str,
    uuid: &uuid::Uuid,
    typ: &str,
    emulator: &str,
    mem_mib: u64,
    args: &[String],
) -> String {
    let args: String = args
        .iter()
        .map(|a| format!("    <qemu:arg value='{a}'/>\n"))
        .collect();
    let cl = if args.is_empty() {
        String::new()
    } else {
        format!("  <qemu:commandline>\n{args}  </qemu:commandline>\n")
    };
    format!(
        "<domain type='{typ}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  <memory unit='MiB'>{mem_mib}</memory>\n  <vcpu>1</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n  <on_poweroff>destroy</on_poweroff>\n  <devices>\n    <emulator>{emulator}</emulator>\n  </devices>\n{cl}</domain>\n"
    )
}

/// A diskless real-QEMU guest (sits in firmware); see [`kvm`].
pub fn real_xml(name: &str, uuid: &uuid::Uuid) -> String {
    let typ = if kvm() { "kvm" } else { "qemu" };
    xml(name, uuid, typ, REAL_QEMU, 64, &[])
}

/// A qemu-sim guest with extra simulator arguments.
pub fn sim_xml(name: &str, uuid: &uuid::Uuid, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    xml(name, uuid, "qemu", &sim_path().to_string_lossy(), 64, &args)
}

/// Kills (by pid, SIGKILL) every process whose command line carries one of
/// the registered uuids, when dropped: a failing test leaves no QEMU behind.
#[derive(Default, Clone)]
pub struct Reaper {
    uuids: Arc<Mutex<Vec<String>>>,
}

impl Reaper {
    pub fn track(&self, uuid: &uuid::Uuid) {
        self.uuids.lock().unwrap().push(uuid.to_string());
    }

    pub fn new_uuid(&self) -> uuid::Uuid {
        let u = uuid::Uuid::new_v4();
        self.track(&u);
        u
    }

    pub fn kill_all(&self) {
        for u in self.uuids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for pid in qemu::process::pids_with_arg(u) {
                // SAFETY: kill(2) takes plain integers and touches no memory of ours.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if Arc::strong_count(&self.uuids) == 1 {
            self.kill_all();
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event for domain `name`, skipping other domains' events.
pub async fn next_event_for(sub: &mut Subscription, name: &str, timeout: Duration) -> DomainEvent {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(end, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("no event for {name} within {timeout:?}"))
            .expect("subscription ended");
        if ev.name == name {
            return ev;
        }
    }
}

pub fn lc(kind: LifecycleKind, detail: i32) -> EventKind {
    EventKind::Lifecycle { kind, detail }
}

pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Sends one line to a qemu-sim control socket and returns its answer.
pub async fn sim_control(path: &Path, line: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut s = tokio::net::UnixStream::connect(path)
        .await
        .expect("control connect");
    s.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut r = BufReader::new(s);
    let mut out = String::new();
    r.read_line(&mut out).await.unwrap();
    out.trim().to_string()
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
