//! Statistics of a real guest on real QEMU, through the real virsh: the
//! tiny test guest writes to its disk every second (`ferrovirt.diskwrite`),
//! and `domstats`, `domblkstat`, `dommemstat`, `cpu-stats`, `domblkinfo`
//! and `vcpuinfo` report real figures that grow.
//!
//! TCG (`type='qemu'`) so the test behaves the same on hosts whose KVM
//! cannot run guests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, define_start, tail};
use testkit::guest::READY_MARKER;
use testkit::tools::Tool;
use testkit::wait;

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow a lot more.
const BOOT: Duration = Duration::from_secs(180);

fn guest_xml(d: &Daemon, name: &str) -> (String, std::path::PathBuf) {
    let guest = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    let disk = d.root.path().join(format!("{name}.qcow2"));
    Tool::QemuImg.require();
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("64M")
        .status()
        .expect("run qemu-img");
    assert!(st.success());
    let serial = d.root.path().join(format!("{name}.serial"));
    let xml = format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>2</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 quiet ferrovirt.diskwrite=1</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>\n    \
         <interface type='user'><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/></interface>\n    \
         <serial type='file'><source path='{}'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
        guest.kernel.display(),
        guest.initrd.display(),
        disk.display(),
        serial.display()
    );
    (xml, serial)
}

fn wait_booted(d: &Daemon, serial: &Path) {
    let read = || std::fs::read_to_string(serial).unwrap_or_default();
    let booted = wait::until(BOOT, || read().contains(READY_MARKER));
    assert!(
        booted,
        "guest never booted\n{}\n{}",
        tail(&read(), 20),
        tail(&d.log(), 20)
    );
}

/// `key value` lines (domblkstat, dommemstat) or `key=value` (domstats).
fn fields(out: &str) -> HashMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (k, v) = l.split_once('=').or_else(|| l.rsplit_once(' '))?;
            let k = k.split_whitespace().last()?.to_owned();
            Some((k, v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn a_real_guest_writing_its_disk_shows_growing_counters() {
    let d = Daemon::start_with("stats_interval_secs = 1\n");
    let (xml, serial) = guest_xml(&d, "sg");
    define_start(&d, "sg", &xml);
    wait_booted(&d, &serial);

    let stat = |args: &[&str]| fields(&d.virsh_ok(&[&["domstats", "sg"], args].concat()));
    let first = stat(&["--block"]);
    let mut later = HashMap::new();
    let grew = wait::until(Duration::from_secs(60), || {
        later = stat(&["--block"]);
        let n = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        // Several writes of the guest, each seen by a later sample.
        n(&later, "block.0.wr.reqs") >= n(&first, "block.0.wr.reqs") + 3
            && n(&later, "block.0.rd.reqs") > n(&first, "block.0.rd.reqs")
    });
    println!(
        "block.0 wr.reqs {:?} -> {:?}",
        first.get("block.0.wr.reqs"),
        later.get("block.0.wr.reqs")
    );
    assert!(
        grew,
        "the guest writes but the counters do not grow: {later:?}\n{}",
        tail(&d.log(), 20)
    );
    assert_eq!(
        later.get("block.0.capacity"),
        Some(&(64 << 20)),
        "qcow2 virtual size from QEMU"
    );

    let all = d.virsh_ok(&["domstats", "sg"]);
    println!("{all}");
    for key in [
        "state.stats.stale=no",
        "cpu.time=",
        "balloon.current=262144",
        "balloon.rss=",
        "vcpu.0.time=",
        "vcpu.1.state=1",
        "net.count=1",
        "block.0.path=",
    ] {
        assert!(all.contains(key), "domstats lacks {key}:\n{all}");
    }
    blkstat_and_blkinfo(&d);
    memstat_with_period(&d);
    cpu_and_vcpus(&d);
    d.virsh_ok(&["destroy", "sg"]);
}

fn blkstat_and_blkinfo(d: &Daemon) {
    let b = fields(&d.virsh_ok(&["domblkstat", "sg", "vda"]));
    println!("domblkstat: {b:?}");
    assert!(
        b["wr_req"] > 0 && b["wr_bytes"] >= 65536 && b["rd_req"] > 0,
        "{b:?}"
    );
    assert!(
        b.contains_key("flush_operations") && b.contains_key("wr_total_times"),
        "{b:?}"
    );
    let info = d.virsh_ok(&["domblkinfo", "sg", "vda"]);
    println!("domblkinfo: {info}");
    let i = fields(&info.replace(':', " "));
    assert_eq!(i["Capacity"], 64 << 20);
    assert!(i["Physical"] > 0 && i["Allocation"] > 0, "{i:?}");
    let err = d.virsh(&["domifstat", "sg", "52:54:00:aa:bb:cc"]);
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(
        !err.status.success() && msg.contains("user-mode networking"),
        "{msg}"
    );
}

/// With a period set, the guest's balloon driver reports its memory.
fn memstat_with_period(d: &Daemon) {
    d.virsh_ok(&["dommemstat", "sg", "--period", "1", "--live"]);
    let mut m = HashMap::new();
    let reported = wait::until(Duration::from_secs(60), || {
        m = fields(&d.virsh_ok(&["dommemstat", "sg"]));
        m.contains_key("unused") && m.contains_key("last_update")
    });
    println!("dommemstat: {m:?}");
    assert!(
        reported,
        "the guest never reported memory statistics: {m:?}"
    );
    assert_eq!(m["actual"], 262_144);
    assert!(
        m["rss"] > 0 && m["unused"] > 0 && m["unused"] < 262_144,
        "{m:?}"
    );
}

fn cpu_and_vcpus(d: &Daemon) {
    let cpu = d.virsh_ok(&["cpu-stats", "sg", "--total"]);
    println!("{cpu}");
    let secs: f64 = cpu
        .lines()
        .find(|l| l.contains("cpu_time"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("cpu_time");
    assert!(secs > 0.5, "a booted TCG guest used CPU: {cpu}");
    let v = d.virsh_ok(&["vcpuinfo", "sg"]);
    assert_eq!(v.matches("State:          running").count(), 2, "{v}");
    assert!(v.contains("CPU time:"), "{v}");
}
