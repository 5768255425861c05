//! Boots guest/ (kernel + busybox initramfs) with an argv from build_argv
//! (direct kernel boot, file-backed serial), waits for the ready marker,
//! presses the ACPI power button over QMP and checks that QEMU exits after
//! a SHUTDOWN event with "guest": true.
//!
//! Accelerator: TCG; `FERROVIRT_TEST_ACCEL=kvm` asks for KVM (some nested
//! hosts have a /dev/kvm that opens but cannot run guests).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{RawQmp, TempDir};
use domain::{Accel, DomainDef, build_argv};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MARKER: &str = "FERROVIRT-GUEST-READY";

fn guest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest")
}

fn ensure_guest_built() -> (PathBuf, PathBuf) {
    let build = guest_dir().join("build");
    let kernel = build.join("vmlinuz");
    let initrd = build.join("initramfs.cpio.gz");
    if !kernel.exists() || !initrd.exists() {
        let st = Command::new("bash")
            .arg(guest_dir().join("build.sh"))
            .status()
            .expect("run guest/build.sh");
        assert!(st.success(), "guest/build.sh failed");
    }
    (kernel, initrd)
}

/// Outcome of one boot attempt.
enum Boot {
    /// Marker seen after `boot`, powered off cleanly after `total`.
    Done { boot: Duration, total: Duration },
    /// No marker within the deadline (QEMU killed); serial output attached.
    NoMarker(String),
}

fn boot_once(accel: Accel, deadline: Duration) -> Boot {
    let (kernel, initrd) = ensure_guest_built();
    let dir = TempDir::new("guest");
    let serial = dir.0.join("serial.log");
    let ty = if accel == Accel::Kvm { "kvm" } else { "qemu" };
    let def = DomainDef::parse(&format!(
        "<domain type='{ty}'><name>guest-boot</name><memory unit='MiB'>256</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type>\
           <kernel>{}</kernel><initrd>{}</initrd><cmdline>console=ttyS0 quiet</cmdline></os>\
         <features><acpi/></features>\
         <devices><serial type='file'><source path='{}'/></serial>\
           <memballoon model='virtio'/></devices></domain>",
        kernel.display(),
        initrd.display(),
        serial.display()
    ))
    .unwrap();
    let (launch, caps) = common::real_launch(&dir, accel);
    let argv = build_argv(&def, &caps, &launch).unwrap();
    let mut child = Command::new(def.emulator())
        .args(&argv)
        .spawn()
        .expect("spawn qemu");
    let mut qmp = RawQmp::connect(&launch.qmp_socket, Duration::from_secs(20));
    assert_eq!(qmp.execute("query-status", None)["status"], "prelaunch");
    let t0 = Instant::now();
    qmp.execute("cont", None);

    loop {
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        if text.contains(MARKER) {
            break;
        }
        if t0.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Boot::NoMarker(text);
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("qemu exited early ({st}); serial:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let boot = t0.elapsed();

    qmp.execute("system_powerdown", None);
    qmp.drain_until_eof(Duration::from_secs(60));
    let st = child.wait().unwrap();
    let shutdown = qmp
        .events
        .iter()
        .find(|e| e["event"] == "SHUTDOWN")
        .unwrap_or_else(|| panic!("no SHUTDOWN event; events: {:?}", qmp.events));
    assert_eq!(shutdown["data"]["guest"], true, "{shutdown}");
    assert!(st.success(), "qemu exit status {st}");
    Boot::Done {
        boot,
        total: t0.elapsed(),
    }
}

#[test]
fn guest_boots_and_powers_off_on_acpi_button() {
    common::require_qemu();
    let accel = common::test_accel();
    let result = boot_once(accel, Duration::from_secs(120));
    match result {
        Boot::Done { boot, total } => {
            eprintln!("guest ({accel:?}): marker after {boot:?}, powered off after {total:?}")
        }
        Boot::NoMarker(text) => panic!("no {MARKER} ({accel:?}); serial:\n{text}"),
    }
}
