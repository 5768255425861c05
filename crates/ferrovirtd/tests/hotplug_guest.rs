//! Disk hot-plug with a real guest on real QEMU: the tiny test guest
//! (`ferrovirt.hotplug=1`) reports block devices appearing and going on
//! its serial console. A virtio disk attached live shows up in the guest;
//! detached live, the guest releases it (PCIe native hot-plug), QEMU's
//! DEVICE_DELETED completes the removal, the live XML loses it, QEMU
//! loses its block nodes, and DEVICE_REMOVED reaches `virsh event`; the
//! same for a user-mode NIC. A
//! CD-ROM's medium is ejected and inserted with TRAY_CHANGE events. An
//! rng, a virtio tablet, a virtio-scsi controller (with a SCSI disk the
//! guest sees), a watchdog and a second vCPU plug into real QEMU; the
//! vCPU and the emulator pin to host CPUs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, EventListener, define_start, tail};
use testkit::guest::READY_MARKER as MARKER;
use testkit::tools::Tool;
use testkit::wait;

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow a lot more.
const BOOT: Duration = Duration::from_secs(180);
/// The guest's hot-plug driver waits 5 s after the attention button
/// before it powers a slot off; TCG adds to that.
const RELEASE: Duration = Duration::from_secs(60);

fn qcow2(path: &Path) {
    Tool::QemuImg.require();
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("16M")
        .status()
        .expect("run qemu-img");
    assert!(st.success());
}

fn guest_xml(d: &Daemon, name: &str) -> (String, std::path::PathBuf) {
    let g = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    let vda = d.root.path().join(format!("{name}-vda.qcow2"));
    qcow2(&vda);
    let iso = d.file(&format!("{name}-one.iso"), "");
    let serial = d.root.path().join(format!("{name}.serial"));
    let xml = format!(
        "<domain type='{}'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 quiet ferrovirt.hotplug=1 ferrovirt.diskwrite=1</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>\n    \
         <disk type='file' device='cdrom'><source file='{}'/><target dev='sdb' bus='sata'/></disk>\n    \
         <serial type='file'><source path='{}'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
        testkit::accel::test_domain_type(),
        g.kernel.display(),
        g.initrd.display(),
        vda.display(),
        iso.display(),
        serial.display()
    );
    (xml, serial)
}

fn wait_serial(d: &Daemon, serial: &Path, want: &str, timeout: Duration) {
    let read = || std::fs::read_to_string(serial).unwrap_or_default();
    let seen = wait::until(timeout, || read().contains(want));
    assert!(
        seen,
        "guest never printed '{want}'\n--- serial ---\n{}\n--- daemon ---\n{}",
        tail(&read(), 30),
        tail(&d.log(), 40)
    );
}

#[test]
fn a_virtio_disk_plugged_live_reaches_the_guest_and_leaves_on_detach() {
    let d = Daemon::start_with("unplug_timeout_secs = 60");
    let (xml, serial) = guest_xml(&d, "hpg");
    define_start(&d, "hpg", &xml);
    wait_serial(&d, &serial, MARKER, BOOT);
    let mut added = EventListener::start(&d, &["--event", "device-added", "--domain", "hpg"], 1);
    let mut removed =
        EventListener::start(&d, &["--event", "device-removed", "--domain", "hpg"], 1);

    let vdb = d.root.path().join("vdb.qcow2");
    qcow2(&vdb);
    let vdb = vdb.display().to_string();

    // QEMU refuses the format node (a raw file said to be qcow2): the
    // storage node already added is removed, nothing reaches the guest.
    let raw = d.file("raw.img", "not a qcow2 image");
    let out = d.virsh(&[
        "attach-disk",
        "hpg",
        raw.to_str().expect("utf8"),
        "vdb",
        "--targetbus",
        "virtio",
        "--subdriver",
        "qcow2",
        "--live",
    ]);
    assert!(!out.status.success());
    println!("bad image: {}", String::from_utf8_lossy(&out.stderr).trim());
    assert!(!d.virsh_ok(&["dumpxml", "hpg"]).contains("dev='vdb'"));
    assert!(
        !d.log().contains("cannot remove node of a failed attach"),
        "{}",
        tail(&d.log(), 20)
    );
    let t0 = Instant::now();
    d.virsh_ok(&[
        "attach-disk",
        "hpg",
        &vdb,
        "vdb",
        "--targetbus",
        "virtio",
        "--subdriver",
        "qcow2",
        "--live",
    ]);
    added.expect_line("event 'device-added' for domain 'hpg': virtio-disk1", BOOT);
    // Number 3 (after vda and the cdrom) again: the failed attach's node
    // was deleted from QEMU, or this one would have skipped it.
    let live = d.virsh_ok(&["dumpxml", "hpg"]);
    assert!(
        live.contains(&format!("<source file='{vdb}' index='3'/>")),
        "{live}"
    );
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG added vdb", RELEASE);
    println!("attach: the guest saw vdb after {:?}", t0.elapsed());
    let blk = d.virsh_ok(&["domblklist", "hpg"]);
    assert!(
        blk.lines().any(|l| l.trim_start().starts_with("vdb ")),
        "{blk}"
    );

    let t0 = Instant::now();
    d.virsh_ok(&["detach-disk", "hpg", "vdb", "--live"]);
    let took = t0.elapsed();
    println!("detach: returned after {took:?} (guest released the device)");
    removed.expect_line(
        "event 'device-removed' for domain 'hpg': virtio-disk1",
        RELEASE,
    );
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG removed vdb", RELEASE);
    let live = d.virsh_ok(&["dumpxml", "hpg"]);
    assert!(!live.contains("dev='vdb'"), "{live}");
    // Its two block nodes are deleted from QEMU.
    let deleted = || {
        d.log()
            .matches("block node of an unplugged disk deleted")
            .count()
    };
    let gone = wait::until(Duration::from_secs(30), || deleted() == 2);
    assert!(gone, "{}", tail(&d.log(), 30));
    // The guest still has its first disk, and QEMU still runs it.
    let blk = d.virsh_ok(&["domblklist", "hpg"]);
    let has = |t: &str| {
        blk.lines()
            .any(|l| l.trim_start().starts_with(&format!("{t} ")))
    };
    assert!(has("vda") && !has("vdb"), "{blk}");

    // A user-mode NIC comes and goes the same way.
    let nic = d.file(
        "nic.xml",
        "<interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>",
    );
    d.virsh_ok(&[
        "attach-device",
        "hpg",
        nic.to_str().expect("utf8"),
        "--live",
    ]);
    added.expect_line("event 'device-added' for domain 'hpg': net0", RELEASE);
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG added eth0", RELEASE);
    d.virsh_ok(&[
        "detach-device",
        "hpg",
        nic.to_str().expect("utf8"),
        "--live",
    ]);
    removed.expect_line("event 'device-removed' for domain 'hpg': net0", RELEASE);
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG removed eth0", RELEASE);
    assert!(!d.virsh_ok(&["dumpxml", "hpg"]).contains("<interface"));

    // The CD-ROM: eject and insert through its tray.
    let mut tray = EventListener::start(&d, &["--event", "tray-change", "--domain", "hpg"], 1);
    d.virsh_ok(&["change-media", "hpg", "sdb", "--eject", "--live"]);
    tray.expect_line(
        "event 'tray-change' for domain 'hpg' disk sata0-0-1: opened",
        RELEASE,
    );
    assert!(!d.virsh_ok(&["dumpxml", "hpg"]).contains("hpg-one.iso"));
    let two = d.file("two.iso", "").display().to_string();
    d.virsh_ok(&["change-media", "hpg", "sdb", &two, "--insert", "--live"]);
    tray.expect_line(
        "event 'tray-change' for domain 'hpg' disk sata0-0-1: closed",
        RELEASE,
    );
    let blk = d.virsh_ok(&["domblklist", "hpg"]);
    assert!(blk.contains(&two), "{blk}");

    // Live resources: the balloon, the disk's size, a write threshold the
    // guest's writes (1 MiB and beyond, every second) cross.
    let mut balloon =
        EventListener::start(&d, &["--event", "balloon-change", "--domain", "hpg"], 1);
    let mut threshold =
        EventListener::start(&d, &["--event", "block-threshold", "--domain", "hpg"], 1);
    d.virsh_ok(&["setmem", "hpg", "200M", "--live"]);
    balloon.expect_line(
        "event 'balloon-change' for domain 'hpg': 204800KiB",
        RELEASE,
    );
    d.virsh_ok(&["blockresize", "hpg", "vda", "32M"]);
    let vda = d.root.path().join("hpg-vda.qcow2");
    let out = Command::new("qemu-img")
        .args(["info", "--force-share", "--output=json"])
        .arg(&vda)
        .output()
        .expect("qemu-img info");
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("\"virtual-size\": 33554432"), "{info}");
    d.virsh_ok(&["domblkthreshold", "hpg", "vda", "512K"]);
    threshold.expect_prefix(
        "event 'block-threshold' for domain 'hpg': dev: vda(",
        RELEASE,
    );
    d.virsh_ok(&["destroy", "hpg"]);
}

#[test]
fn an_rng_a_tablet_a_scsi_controller_a_watchdog_and_a_vcpu_plug_into_real_qemu() {
    let d = Daemon::start_with("unplug_timeout_secs = 60");
    let (xml, serial) = guest_xml(&d, "oth");
    // Free root ports, and a bridge for the watchdog (a PCI device).
    let ports = "<controller type='pci' model='pcie-root-port'/>\n".repeat(7)
        + "<controller type='pci' model='pcie-to-pci-bridge'/>\n";
    let xml = xml
        .replacen("</emulator>\n", &format!("</emulator>\n{ports}"), 1)
        .replacen("<vcpu>1</vcpu>", "<vcpu current='1'>2</vcpu>", 1);
    define_start(&d, "oth", &xml);
    wait_serial(&d, &serial, MARKER, BOOT);
    let mut added = EventListener::start(&d, &["--event", "device-added", "--domain", "oth"], 1);
    let mut removed =
        EventListener::start(&d, &["--event", "device-removed", "--domain", "oth"], 1);
    let file = |name: &str, xml: &str| d.file(name, xml).display().to_string();
    let rng = file(
        "rng.xml",
        "<rng model='virtio'><rate bytes='4096' period='1000'/><backend model='random'>/dev/urandom</backend></rng>",
    );
    let tablet = file("tablet.xml", "<input type='tablet' bus='virtio'/>");
    let scsi = file(
        "scsi.xml",
        "<controller type='scsi' index='0' model='virtio-scsi'/>",
    );
    let dog = file("dog.xml", "<watchdog model='i6300esb' action='pause'/>");
    let plugged = [
        (&rng, "rng0"),
        (&tablet, "input2"),
        (&scsi, "scsi0"),
        (&dog, "watchdog0"),
    ];
    for (f, alias) in plugged {
        let t0 = Instant::now();
        d.virsh_ok(&["attach-device", "oth", f, "--live"]);
        added.expect_line(
            &format!("event 'device-added' for domain 'oth': {alias}"),
            RELEASE,
        );
        println!("attach {alias}: {:?}", t0.elapsed());
    }
    // A SCSI disk on the controller just plugged: the guest sees it.
    let sda = d.root.path().join("sda.qcow2");
    qcow2(&sda);
    let sda_xml = file(
        "sda.xml",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='sda' bus='scsi'/></disk>",
            sda.display()
        ),
    );
    d.virsh_ok(&["attach-device", "oth", &sda_xml, "--live"]);
    added.expect_line(
        "event 'device-added' for domain 'oth': scsi0-0-0-0",
        RELEASE,
    );
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG added sd", RELEASE);
    d.virsh_ok(&["detach-device", "oth", &sda_xml, "--live"]);
    removed.expect_line(
        "event 'device-removed' for domain 'oth': scsi0-0-0-0",
        RELEASE,
    );
    // The guest releases what sits on PCIe root ports.
    for (f, alias) in &plugged[..3] {
        let t0 = Instant::now();
        d.virsh_ok(&["detach-device", "oth", f, "--live"]);
        removed.expect_line(
            &format!("event 'device-removed' for domain 'oth': {alias}"),
            RELEASE,
        );
        println!("detach {alias}: {:?}", t0.elapsed());
    }
    // A second vCPU: plugged, pinned (its thread's affinity), unplugged.
    let t0 = Instant::now();
    d.virsh_ok(&["setvcpus", "oth", "2", "--live"]);
    println!("vCPU plugged after {:?}", t0.elapsed());
    let count = d.virsh_ok(&["vcpucount", "oth", "--live", "--active"]);
    assert_eq!(count.trim(), "2");
    d.virsh_ok(&["vcpupin", "oth", "1", "0", "--live"]);
    let mut info = String::new();
    let pinned = wait::until(Duration::from_secs(30), || {
        info = d.virsh_ok(&["vcpuinfo", "oth"]);
        info.split("VCPU:")
            .nth(2)
            .is_some_and(|v| v.contains("CPU Affinity:   y-"))
    });
    assert!(pinned, "{info}");
    d.virsh_ok(&["emulatorpin", "oth", "1", "--live"]);
    let em = d.virsh_ok(&["emulatorpin", "oth"]);
    assert!(em.lines().any(|l| l.trim() == "*: 1"), "{em}");
    let t0 = Instant::now();
    d.virsh_ok(&["setvcpus", "oth", "1", "--live"]);
    println!("vCPU unplugged after {:?}", t0.elapsed());
    let count = d.virsh_ok(&["vcpucount", "oth", "--live", "--active"]);
    assert_eq!(count.trim(), "1");

    let live = d.virsh_ok(&["dumpxml", "oth"]);
    assert!(
        !live.contains("<rng") && !live.contains("virtio-scsi") && live.contains("<watchdog"),
        "{live}"
    );
    assert!(
        !d.log()
            .contains("cannot delete the backend of an unplugged device"),
        "{}",
        tail(&d.log(), 20)
    );
    d.virsh_ok(&["destroy", "oth"]);
}
