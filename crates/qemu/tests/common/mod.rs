//! Shared test helpers: configs, domain XML for real QEMU and qemu-sim,
//! a guard that kills every QEMU a test started, and polling with deadlines.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qemu::{DomainEvent, DriverConfig, EventKind, LifecycleKind, Subscription};

pub const REAL_QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Deadline of a control-socket exchange with qemu-sim.
const DEADLINE: Duration = Duration::from_secs(20);

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
    testkit::binaries::build("qemu-sim").unwrap_or_else(|e| panic!("{e}"))
}

/// KVM only when asked for (`testkit::accel`): TCG works on every host,
/// while an openable /dev/kvm may still not run guests.
pub fn kvm() -> bool {
    testkit::accel::tests_use_kvm()
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
            let _ = testkit::processes::kill_with_arg(u, Duration::from_secs(10));
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

/// Sends one line to a qemu-sim control socket and returns its answer.
pub async fn sim_control(path: &Path, line: &str) -> String {
    let (path, line) = (path.to_path_buf(), line.to_owned());
    tokio::task::spawn_blocking(move || testkit::control::send(&path, &line, DEADLINE))
        .await
        .expect("control task")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    testkit::procfs::own_rss_kib().expect("own VmRSS")
}
