//! The real `virt-install` (Debian's virtinst 4.1) and storage: it
//! finds an existing image through the storage API (creating a pool for
//! its directory, as it does with libvirtd), creates a new volume in the
//! `default` pool, defines the domain and starts it under real QEMU.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::Command;

use common::{Daemon, tail};
use testkit::tools::Tool;

/// Runs `virt-install --connect URI ARGS` and insists it succeeded.
fn virt_install(d: &Daemon, args: &[&str]) -> String {
    Tool::VirtInstall.require();
    let out = Command::new("virt-install")
        .args(["--connect", &d.uri])
        .args(args)
        .env("LANG", "C")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "virt-install {args:?} failed:\n{text}\n--- daemon log ---\n{}",
        tail(&d.log(), 40)
    );
    text
}

/// What a minimal headless guest needs on the command line. The two
/// `--controller` options keep virt-install from adding USB companion
/// controllers and PCIe root ports, which the domain XML does not take yet.
const COMMON: &[&str] = &[
    "--memory",
    "128",
    "--vcpus",
    "1",
    "--osinfo",
    "generic",
    "--network",
    "none",
    "--graphics",
    "none",
    "--noautoconsole",
    "--controller",
    "usb,model=none",
    "--controller",
    "num_pcie_root_ports=0",
];

#[test]
fn import_an_existing_qcow2_and_create_a_volume() {
    let d = Daemon::start();
    // An image outside any pool, as a user downloads one.
    let dir = d.root.path().join("downloads");
    std::fs::create_dir(&dir).unwrap();
    let image = dir.join("cloud.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("256M")
        .status()
        .unwrap();
    assert!(st.success());
    let disk = format!("path={}", image.display());
    let mut args = vec!["--name", "imported", "--import", "--disk", &disk];
    args.extend_from_slice(COMMON);
    virt_install(&d, &args);
    let xml = d.virsh_ok(&["dumpxml", "imported"]);
    assert!(xml.contains(&image.display().to_string()), "{xml}");
    assert!(
        xml.contains("type='qcow2'"),
        "format from the volume's XML: {xml}"
    );
    d.wait_state(
        "imported",
        "running (booted)",
        std::time::Duration::from_secs(30),
    );
    // virt-install made a pool of the image's directory, as with libvirtd.
    let pools = d.virsh_ok(&["pool-list", "--all", "--name"]);
    assert!(pools.lines().count() >= 2, "{pools}");
    let pool = d.virsh_ok(&["vol-pool", &image.display().to_string()]);
    assert!(!pool.trim().is_empty(), "the image is a volume now");
    d.virsh_ok(&["destroy", "imported"]);

    // A new 1 GiB volume in the default pool.
    let mut args = vec!["--name", "fresh", "--disk", "size=1", "--import"];
    args.extend_from_slice(COMMON);
    virt_install(&d, &args);
    let vols = d.virsh_ok(&["vol-list", "default"]);
    assert!(vols.contains("fresh.qcow2"), "{vols}");
    let info = d.virsh_ok(&["vol-info", "--pool", "default", "fresh.qcow2"]);
    assert!(info.contains("1.00 GiB"), "{info}");
    let xml = d.virsh_ok(&["dumpxml", "fresh"]);
    assert!(xml.contains("fresh.qcow2"), "{xml}");
    d.virsh_ok(&["destroy", "fresh"]);
}
