//! Shared harness of the end-to-end tests: a ferrovirtd under a temporary
//! root, the real `virsh`, and domain XML for real QEMU and for qemu-sim.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running ferrovirtd on its own root. Dropping it stops the daemon and
/// kills every QEMU (real or simulated) started under its root, so a failing
/// test leaves nothing behind.
pub struct Daemon {
    pub root: tempfile::TempDir,
    pub child: Option<Child>,
    pub uri: String,
    pub ro_uri: String,
    config: PathBuf,
}

pub const STARTUP: Duration = Duration::from_secs(30);

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// Starts a daemon; `extra_config` is appended to its TOML config.
    pub fn start_with(extra_config: &str) -> Daemon {
        let root = tempfile::Builder::new()
            .prefix("fvd")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let config = root.path().join("ferrovirtd.toml");
        std::fs::write(
            &config,
            format!("monitor_timeout_secs = 5\ndestroy_grace_secs = 3\n{extra_config}\n"),
        )
        .expect("write config");
        let sock = root.path().join("run/libvirt-sock");
        let ro = root.path().join("run/libvirt-sock-ro");
        let mut d = Daemon {
            uri: format!("qemu+unix:///system?socket={}", sock.display()),
            ro_uri: format!("qemu+unix:///system?socket={}", ro.display()),
            root,
            child: None,
            config,
        };
        d.spawn();
        d
    }

    /// (Re)starts the daemon process on the same root.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("ferrovirtd.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrovirtd"))
            .arg("--root")
            .arg(self.root.path())
            .arg("--config")
            .arg(&self.config)
            .arg("--log")
            .arg("info,qemu=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ferrovirtd");
        self.child = Some(child);
        let sock = self.root.path().join("run/libvirt-sock");
        let deadline = Instant::now() + STARTUP;
        while UnixStream::connect(&sock).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "ferrovirtd exited during start-up: {status}\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ferrovirtd did not start\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("daemon running")
    }

    /// Kills the daemon with SIGKILL (QEMUs keep running).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id() as i32, 15);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("ferrovirtd.log")).unwrap_or_default()
    }

    pub fn virsh(&self, args: &[&str]) -> Output {
        virsh(&self.uri, args)
    }

    /// Runs virsh and insists it succeeded; returns stdout.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?} failed: {}\n--- daemon log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 60)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `xml` into the root and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.root.path().join(name);
        std::fs::write(&p, contents).expect("write file");
        p
    }

    /// Polls `virsh domstate --reason` until it prints `want`.
    pub fn wait_state(&self, dom: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = self.virsh(&["domstate", "--reason", dom]);
            last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if last == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "domain {dom} never reached '{want}' (last: '{last}')\n{}",
            tail(&self.log(), 60)
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        kill_processes_under(self.root.path());
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Kills every process whose command line mentions `root` (the QEMUs and
/// simulators a test started), by pid.
pub fn kill_processes_under(root: &Path) {
    for pid in pids_mentioning(&root.to_string_lossy()) {
        unsafe_kill(pid, 9);
    }
}

/// Pids of processes whose command line contains `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

pub fn virsh(uri: &str, args: &[&str]) -> Output {
    Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .env("LIBVIRT_DEFAULT_URI", uri)
        .output()
        .expect("run virsh (apt-get install libvirt-clients)")
}

/// Domain type for real QEMU on this machine: kvm when /dev/kvm works.
pub fn virt_type() -> &'static str {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if ok { "kvm" } else { "qemu" }
}

/// A small diskless real-QEMU domain (it sits in firmware; enough for
/// lifecycle, suspend/resume and destroy).
pub fn real_domain_xml(name: &str) -> String {
    format!(
        "<domain type='{}'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  <devices>\n    \
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n</domain>\n",
        virt_type()
    )
}

/// The qemu-sim binary built beside the test (target/debug/qemu-sim).
pub fn qemu_sim() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let sim = dir.join("qemu-sim");
    assert!(
        sim.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        sim.display()
    );
    sim
}

/// A qemu-sim domain; `args` go through `<qemu:commandline>` (fault
/// injection options such as `-sim-flood RTC_CHANGE:100000`).
pub fn sim_domain_xml(name: &str, args: &[&str]) -> String {
    let extra: String = args
        .iter()
        .map(|a| format!("    <qemu:arg value='{a}'/>\n"))
        .collect();
    format!(
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>{name}</name>\n  \
         <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  \
         <devices>\n    <emulator>{}</emulator>\n  </devices>\n  <qemu:commandline>\n{extra}  </qemu:commandline>\n</domain>\n",
        qemu_sim().display()
    )
}
