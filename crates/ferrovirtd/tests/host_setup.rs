//! What a definition asks of the host, end to end with real QEMU: display
//! passwords (kept out of XML without the secure flag, applied so that
//! the VNC server asks for one), a UEFI guest's NVRAM file and its
//! emulated TPM's state and what `undefine` does with them, vCPU and
//! emulator pinning, and limits through the host's cgroups (or libvirt's
//! clear error where the host lacks a control).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, define_start, pids_mentioning};

const EMULATOR: &str = "/usr/bin/qemu-system-x86_64";

/// A small diskless q35 guest under TCG with `extra` in `<domain>` and
/// `devices` in `<devices>`.
fn guest(name: &str, uuid: &str, extra: &str, devices: &str) -> String {
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
         <memory unit='MiB'>128</memory>\n  {extra}\n  <devices>\n    \
         <emulator>{EMULATOR}</emulator>\n    {devices}\n  </devices>\n</domain>\n"
    )
}

fn os(firmware: &str) -> String {
    format!("<os{firmware}><type arch='x86_64' machine='q35'>hvm</type></os>")
}

/// The pid of domain `name`'s QEMU.
fn qemu_pid(name: &str) -> u32 {
    let pids = pids_mentioning(&format!("guest={name},"));
    assert_eq!(pids.len(), 1, "one QEMU for {name}: {pids:?}");
    pids[0]
}

fn wait_no_process(what: &str, needle: &str) {
    let gone = testkit::wait::until(Duration::from_secs(20), || {
        pids_mentioning(needle).is_empty()
    });
    assert!(gone, "{what} still running: {:?}", pids_mentioning(needle));
}

/// The security types a VNC server offers (RFB 3.8 handshake).
fn vnc_security_types(port: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to VNC");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut version = [0u8; 12];
    s.read_exact(&mut version).unwrap();
    assert!(version.starts_with(b"RFB 003."), "{version:?}");
    s.write_all(b"RFB 003.008\n").unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).unwrap();
    let mut types = vec![0u8; usize::from(n[0])];
    s.read_exact(&mut types).unwrap();
    types
}

/// The VNC port of a running domain, from its live XML.
fn vnc_port(d: &Daemon, name: &str) -> u16 {
    let xml = d.virsh_ok(&["dumpxml", name]);
    let key = "<graphics type='vnc' port='";
    let at = xml.find(key).expect("vnc") + key.len();
    xml[at..].split('\'').next().unwrap().parse().unwrap()
}

const VNC_AUTH: u8 = 2;
const NO_AUTH: u8 = 1;

#[test]
fn display_passwords_are_secrets() {
    let d = Daemon::start();
    let locked = guest(
        "locked",
        "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        &os(""),
        "<graphics type='vnc' autoport='yes' listen='127.0.0.1' passwd='s3cret' \
         passwdValidTo='2099-01-01T00:00:00'/>",
    );
    let open = guest(
        "open",
        "2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        &os(""),
        "<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>",
    );
    define_start(&d, "locked", &locked);
    define_start(&d, "open", &open);

    for args in [
        &["dumpxml", "locked"][..],
        &["dumpxml", "--inactive", "locked"],
    ] {
        let xml = d.virsh_ok(args);
        assert!(xml.contains("<graphics type='vnc'"), "{xml}");
        assert!(
            !xml.contains("s3cret") && !xml.contains("passwd="),
            "{args:?}: {xml}"
        );
    }
    for args in [
        &["dumpxml", "--security-info", "locked"][..],
        &["dumpxml", "--inactive", "--security-info", "locked"],
    ] {
        let xml = d.virsh_ok(args);
        assert!(xml.contains("passwd='s3cret'"), "{args:?}: {xml}");
        assert!(xml.contains("passwdValidTo='2099-01-01T00:00:00'"), "{xml}");
    }
    let ro = common::virsh(&d.ro_uri, &["dumpxml", "--security-info", "locked"]);
    let err = String::from_utf8_lossy(&ro.stderr);
    assert!(!ro.status.success(), "read-only connection got secrets");
    assert!(
        err.contains("operation forbidden") && err.contains("secure flag"),
        "{err}"
    );

    // QEMU got the password: its VNC server asks for one.
    assert_eq!(vnc_security_types(vnc_port(&d, "locked")), [VNC_AUTH]);
    assert_eq!(vnc_security_types(vnc_port(&d, "open")), [NO_AUTH]);
}

/// The emulated TPM's state directory of a domain.
fn tpm_state(d: &Daemon, uuid: &str) -> PathBuf {
    d.root.path().join("lib/qemu/swtpm").join(uuid)
}

/// The `<nvram>` path of a definition.
fn nvram_path(xml: &str) -> PathBuf {
    let at = xml.find("<nvram").expect("nvram");
    let body = &xml[at..];
    let start = body.find('>').unwrap() + 1;
    let end = body.find("</nvram>").unwrap();
    PathBuf::from(&body[start..end])
}

fn exists(p: &Path) -> bool {
    p.try_exists().unwrap()
}

#[test]
fn undefine_nvram_and_tpm_state() {
    let d = Daemon::start();
    let uuid = "3c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let xml = guest(
        "uefi",
        uuid,
        &os(" firmware='efi'"),
        "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>",
    );
    define_start(&d, "uefi", &xml);
    let defined = d.virsh_ok(&["dumpxml", "--inactive", "uefi"]);
    assert!(
        defined.contains("type='pflash'>/usr/share/OVMF/"),
        "{defined}"
    );
    let nvram = nvram_path(&defined);
    assert!(nvram.starts_with(d.root.path()), "{}", nvram.display());
    assert!(exists(&nvram), "no NVRAM file {}", nvram.display());
    let state = tpm_state(&d, uuid);
    let swtpm = state.to_string_lossy().into_owned();
    assert_eq!(pids_mentioning(&swtpm).len(), 1, "one swtpm for the guest");
    qemu_pid("uefi");
    d.virsh_ok(&["destroy", "uefi"]);
    wait_no_process("QEMU", "guest=uefi,");
    wait_no_process("swtpm", &swtpm);

    // An NVRAM file refuses a plain undefine, as libvirt does.
    let out = d.virsh(&["undefine", "uefi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot undefine domain with nvram"), "{err}");

    d.virsh_ok(&["undefine", "--keep-nvram", "--keep-tpm", "uefi"]);
    assert!(exists(&nvram) && exists(&state));

    // Defined again, it starts from the kept NVRAM and TPM state.
    let f = d.file("uefi.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    assert_eq!(
        nvram_path(&d.virsh_ok(&["dumpxml", "--inactive", "uefi"])),
        nvram
    );
    d.virsh_ok(&["start", "uefi"]);
    d.virsh_ok(&["destroy", "uefi"]);
    wait_no_process("swtpm", &swtpm);

    d.virsh_ok(&["undefine", "--nvram", "--tpm", "uefi"]);
    assert!(!exists(&nvram), "NVRAM kept: {}", nvram.display());
    assert!(!exists(&state), "TPM state kept: {}", state.display());
}

/// A thread's allowed CPUs (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32, tid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The thread of `pid` named `comm`.
fn thread_named(pid: u32, comm: &str) -> u32 {
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid: u32 = e.unwrap().file_name().to_string_lossy().parse().unwrap();
        let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap();
        if name.trim() == comm {
            return tid;
        }
    }
    panic!("QEMU {pid} has no thread '{comm}'");
}

/// Where a process's cgroup for `controller` is: v1 when the host mounts
/// that controller on its own, else the unified tree.
fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if ctrls.split(',').any(|c| c == controller) {
            return Path::new("/sys/fs/cgroup")
                .join(ctrls)
                .join(path.trim_start_matches('/'));
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a unified cgroup");
    Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn tuning_pins_threads_and_sets_cgroup_limits() {
    let d = Daemon::start();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = cpus - 1;
    let uuid = "4c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let tune = format!(
        "<vcpu placement='static'>2</vcpu>\n  \
         <cputune><vcpupin vcpu='0' cpuset='{last}'/><vcpupin vcpu='1' cpuset='0'/>\
         <emulatorpin cpuset='{last}'/><shares>512</shares></cputune>\n  \
         <memtune><hard_limit unit='MiB'>1024</hard_limit></memtune>\n  {}",
        os("")
    );
    define_start(&d, "tuned", &guest("tuned", uuid, &tune, ""));
    let pid = qemu_pid("tuned");
    assert_eq!(
        allowed_cpus(pid, thread_named(pid, "CPU 0/TCG")),
        last.to_string()
    );
    assert_eq!(allowed_cpus(pid, thread_named(pid, "CPU 1/TCG")), "0");
    assert_eq!(allowed_cpus(pid, pid), last.to_string());

    let group = format!("ferrovirt-{uuid}");
    let memory = cgroup_dir(pid, "memory");
    assert!(
        memory.ends_with(format!("machine/{group}")),
        "{}",
        memory.display()
    );
    let v1 = memory.exists() && memory.join("memory.limit_in_bytes").exists();
    let cpu = cgroup_dir(pid, "cpu");
    if v1 {
        assert_eq!(
            read(&memory.join("memory.limit_in_bytes")),
            (1024u64 << 20).to_string()
        );
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
    } else {
        assert_eq!(
            read(&memory.join("memory.max")),
            (1024u64 << 20).to_string()
        );
        assert!(cpu.join("cpu.weight").exists(), "{}", cpu.display());
    }
    d.virsh_ok(&["destroy", "tuned"]);
    wait_no_process("QEMU", "guest=tuned,");
    let removed = testkit::wait::until(Duration::from_secs(20), || !memory.exists());
    assert!(removed, "cgroup {} left behind", memory.display());
}

/// A limit whose control the host lacks fails the start by name (never a
/// silent no-op); where the host has it, it is applied.
#[test]
fn block_io_weight_is_applied_or_refused_by_name() {
    let d = Daemon::start();
    let uuid = "5c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let extra = format!("<blkiotune><weight>300</weight></blkiotune>\n  {}", os(""));
    let f = d.file("weighted.xml", &guest("weighted", uuid, &extra, ""));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let out = d.virsh(&["start", "weighted"]);
    let group = format!("machine/ferrovirt-{uuid}");
    let v1 = Path::new("/sys/fs/cgroup/blkio").join(&group);
    let v2 = Path::new("/sys/fs/cgroup").join(&group);
    if out.status.success() {
        let pid = qemu_pid("weighted");
        let dir = cgroup_dir(pid, "blkio");
        let (file, want) = if dir.join("blkio.weight").exists() {
            ("blkio.weight", "300".to_string())
        } else if dir.join("blkio.bfq.weight").exists() {
            ("blkio.bfq.weight", "300".to_string())
        } else {
            ("io.weight", "default 300".to_string())
        };
        assert_eq!(read(&dir.join(file)), want, "{}", dir.display());
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unsupported configuration: blkiotune weight needs the cgroup control"),
            "{err}"
        );
        // The host really lacks it, and nothing was left behind.
        let blkio = Path::new("/sys/fs/cgroup/blkio");
        assert!(
            !blkio.join("blkio.weight").exists(),
            "the host has blkio.weight, yet: {err}"
        );
        assert!(!v1.exists() && !v2.exists(), "cgroup left behind");
        assert!(
            pids_mentioning("guest=weighted,").is_empty(),
            "QEMU left running"
        );
    }
}
