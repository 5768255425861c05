//! The tiny test guest (guest/build.sh) booted by ferrovirtd on real QEMU:
//! a qcow2 disk, a user NIC, a file serial console; ACPI shutdown through
//! virsh, and the on_poweroff / on_reboot actions.
//!
//! TCG (`type='qemu'`) so the tests behave the same on hosts whose KVM
//! cannot run guests; the guest boots in seconds either way.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, EventListener, assert_in_order, define_start, tail};
use testkit::guest::READY_MARKER as MARKER;
use testkit::tools::Tool;
use testkit::wait;

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow a lot more.
const BOOT: Duration = Duration::from_secs(180);

/// The guest's kernel and initramfs, built once per test binary.
fn guest() -> (&'static Path, &'static Path) {
    let guest = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    (&guest.kernel, &guest.initrd)
}

/// Guest XML: direct kernel boot, `extra` on the kernel command line,
/// `lifecycle` elements, a qcow2 virtio disk, a user NIC and a file serial.
fn guest_xml(d: &Daemon, name: &str, cmdline_extra: &str, lifecycle: &str) -> (String, PathBuf) {
    let (kernel, initrd) = guest();
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
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 quiet {cmdline_extra}</cmdline>\n  </os>\n  <features><acpi/></features>\n  {lifecycle}\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>\n    \
         <interface type='user'><model type='virtio'/></interface>\n    \
         <serial type='file'><source path='{}'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
        kernel.display(),
        initrd.display(),
        disk.display(),
        serial.display()
    );
    (xml, serial)
}

/// Waits until the serial log holds at least `n` boot markers.
fn wait_markers(d: &Daemon, serial: &Path, n: usize) {
    let read = || std::fs::read_to_string(serial).unwrap_or_default();
    let booted = wait::until(BOOT, || read().matches(MARKER).count() >= n);
    assert!(
        booted,
        "guest never printed its marker {n} time(s)\n--- serial ---\n{}\n--- daemon ---\n{}",
        tail(&read(), 30),
        tail(&d.log(), 30)
    );
}

#[test]
fn guest_boots_with_qcow2_disk_and_user_nic_and_powers_off_through_acpi() {
    let d = Daemon::start();
    let (xml, serial) = guest_xml(&d, "g1", "", "");
    let f = d.file("g1.xml", &xml);
    d.virsh_ok(&["define", f.to_str().expect("utf8")]);
    let listener = EventListener::start(&d, &["--event", "lifecycle", "--domain", "g1"], 1);
    d.virsh_ok(&["start", "g1"]);
    let started = Instant::now();
    wait_markers(&d, &serial, 1);
    println!("guest marker after {:?} (TCG)", started.elapsed());

    let live = d.virsh_ok(&["dumpxml", "g1"]);
    for want in [
        "<alias name='virtio-disk0'/>",
        "<interface type='user'>",
        "<mac address='52:54:00:",
        " id='",
    ] {
        assert!(live.contains(want), "live XML lacks {want}:\n{live}");
    }

    let t = Instant::now();
    d.virsh_ok(&["shutdown", "g1"]);
    d.wait_state("g1", "shut off (shutdown)", BOOT);
    println!("ACPI shutdown took {:?}", t.elapsed());
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(
        text.contains("FERROVIRT-GUEST-POWERDOWN"),
        "the guest itself saw the power button:\n{text}"
    );

    assert_in_order(
        &listener.stop(),
        &[
            "'g1': Started Booted",
            "'g1': Shutdown Finished after guest request",
            "'g1': Stopped Shutdown",
        ],
    );
    d.virsh_ok(&["undefine", "g1"]);
}

#[test]
fn on_poweroff_restart_boots_the_guest_again() {
    let d = Daemon::start();
    let (xml, serial) = guest_xml(
        &d,
        "g2",
        "ferrovirt.poweroff_after=1",
        "<on_poweroff>restart</on_poweroff>",
    );
    define_start(&d, "g2", &xml);
    wait_markers(&d, &serial, 2);
    let st = d.virsh_ok(&["domstate", "g2"]);
    assert_eq!(st.trim(), "running", "{st}");
    d.virsh_ok(&["destroy", "g2"]);
}

#[test]
fn on_reboot_destroy_stops_the_domain_when_the_guest_reboots() {
    let d = Daemon::start();
    let (xml, serial) = guest_xml(
        &d,
        "g3",
        "ferrovirt.reboot_after=1",
        "<on_reboot>destroy</on_reboot>",
    );
    define_start(&d, "g3", &xml);
    wait_markers(&d, &serial, 1);
    d.wait_state("g3", "shut off (shutdown)", BOOT);
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(text.contains("FERROVIRT-GUEST-REBOOT"), "{text}");
    assert_eq!(
        text.matches(MARKER).count(),
        1,
        "the guest must not boot again:\n{text}"
    );
}

#[test]
fn virsh_reboot_restarts_the_guest_and_keeps_the_domain_running() {
    let d = Daemon::start();
    let (xml, serial) = guest_xml(&d, "g4", "", "");
    define_start(&d, "g4", &xml);
    wait_markers(&d, &serial, 1);
    d.virsh_ok(&["reboot", "g4"]);
    wait_markers(&d, &serial, 2);
    assert_eq!(d.virsh_ok(&["domstate", "g4"]).trim(), "running");
    d.virsh_ok(&["destroy", "g4"]);
}
