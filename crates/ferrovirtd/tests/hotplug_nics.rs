//! NICs of type `network` and `bridge` plugged into a running qemu-sim
//! guest, with the daemon in a network namespace the test creates: the
//! network driver makes the tap as at start, QEMU gets it over the monitor
//! (`getfd`, then a tap `netdev_add` that takes it), the tap sits on its
//! bridge and the live XML and status record name it; an unplug releases
//! it; a bridge that does not exist is refused with nothing left behind
//! (no tap, no descriptor or backend in QEMU, nothing in the live XML).
//! A real guest sees such a NIC arrive and go (PCIe native hot-plug). An
//! unplug the guest completes after a daemon restart still releases the
//! tap.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, EventListener, sim_control, sim_domain_xml, tail};
use testkit::netns::NetNs;
use testkit::wait;

const WAIT: Duration = Duration::from_secs(20);

const LAB: &str = "<network><name>lab</name><bridge name='fvhp0'/></network>";

/// The taps (tun devices) in the namespace, with their bridge.
fn taps(ns: &NetNs) -> Vec<(String, Option<String>)> {
    ns.exec(&["ip", "-o", "link", "show", "type", "tun"])
        .unwrap()
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?.split('@').next()?.to_owned();
            let master = l
                .split(" master ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned);
            Some((name, master))
        })
        .collect()
}

/// The tap named in the live XML for the NIC with `mac`.
fn tap_in_xml(d: &Daemon, dom: &str, mac: &str) -> String {
    let xml = d.virsh_ok(&["dumpxml", dom]);
    let nic = xml
        .split("<interface")
        .find(|n| n.contains(mac))
        .unwrap_or_else(|| panic!("no NIC {mac}:\n{xml}"));
    nic.split("<target dev='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("no tap for {mac}:\n{xml}"))
        .to_owned()
}

/// The device ids of the simulated QEMU.
fn qemu_devices(ctl: &Path) -> String {
    let r = sim_control(ctl, "devices");
    assert!(r.starts_with("ok "), "devices: {r}");
    r
}

/// The status records of the daemon's running domains, concatenated.
fn status_records(d: &Daemon) -> String {
    let dir = d.root.path().join("run/qemu");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

fn nic_file(d: &Daemon, itype: &str, source: &str, mac: &str) -> String {
    let key = if itype == "network" {
        "network"
    } else {
        "bridge"
    };
    let xml = format!(
        "<interface type='{itype}'><source {key}='{source}'/><mac address='{mac}'/><model type='virtio'/></interface>"
    );
    d.file(&format!("nic-{mac}.xml"), &xml)
        .display()
        .to_string()
}

#[test]
fn network_and_bridge_nics_plug_live_on_their_taps_and_release_them() {
    let ns = NetNs::new("hpnic").unwrap();
    let d = Daemon::start_in_netns(&ns, "unplug_timeout_secs = 2");
    let f = d.file("lab.xml", LAB);
    d.virsh_ok(&["net-define", &f.to_string_lossy()]);
    d.virsh_ok(&["net-start", "lab"]);
    ns.exec(&["ip", "link", "add", "fvbr1", "type", "bridge"])
        .unwrap();
    ns.exec(&["ip", "link", "set", "fvbr1", "up"]).unwrap();

    let ctl = d.qemu_dir().join("n.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let ports = "<controller type='pci' model='pcie-root-port'/>\n".repeat(6);
    let xml = sim_domain_xml("n", &["-sim-control", &ctl_s]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{ports}"),
        1,
    );
    common::define_start(&d, "n", &xml);
    let mut added = EventListener::start(&d, &["--event", "device-added", "--domain", "n"], 1);
    let mut removed = EventListener::start(&d, &["--event", "device-removed", "--domain", "n"], 1);
    assert!(taps(&ns).is_empty());

    // On a virtual network: its tap on the network's bridge.
    let m1 = "52:54:00:5a:00:01";
    d.virsh_ok(&[
        "attach-device",
        "n",
        &nic_file(&d, "network", "lab", m1),
        "--live",
    ]);
    added.expect_line("event 'device-added' for domain 'n': net0", WAIT);
    let tap0 = tap_in_xml(&d, "n", m1);
    assert_eq!(taps(&ns), [(tap0.clone(), Some("fvhp0".to_owned()))]);
    assert!(qemu_devices(&ctl).contains("\"net0\""));

    // On a host bridge.
    let m2 = "52:54:00:5a:00:02";
    d.virsh_ok(&[
        "attach-device",
        "n",
        &nic_file(&d, "bridge", "fvbr1", m2),
        "--live",
    ]);
    added.expect_line("event 'device-added' for domain 'n': net1", WAIT);
    let tap1 = tap_in_xml(&d, "n", m2);
    let mut now = taps(&ns);
    now.sort();
    let mut want = vec![
        (tap0.clone(), Some("fvhp0".to_owned())),
        (tap1.clone(), Some("fvbr1".to_owned())),
    ];
    want.sort();
    assert_eq!(now, want);
    let listed = d.virsh_ok(&["domiflist", "n"]);
    assert!(listed.contains(&tap0) && listed.contains(&tap1), "{listed}");
    let record = status_records(&d);
    assert!(record.contains(&tap0) && record.contains(&tap1), "{record}");

    // A bridge that does not exist: refused, nothing left behind.
    let before = qemu_devices(&ctl);
    let out = d.virsh(&[
        "attach-device",
        "n",
        &nic_file(&d, "bridge", "nosuch0", "52:54:00:5a:00:03"),
        "--live",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("nosuch0"), "{err}");
    assert_eq!(taps(&ns).len(), 2, "no tap left: {:?}", taps(&ns));
    assert_eq!(qemu_devices(&ctl), before);
    assert!(!d.virsh_ok(&["dumpxml", "n"]).contains("52:54:00:5a:00:03"));

    // The first goes (its tap with it); the second keeps its tap.
    d.virsh_ok(&["detach-device-alias", "n", "net0", "--live"]);
    removed.expect_line("event 'device-removed' for domain 'n': net0", WAIT);
    let gone = wait::until(WAIT, || taps(&ns).iter().all(|(t, _)| *t != tap0));
    assert!(gone, "{:?}\n{}", taps(&ns), tail(&d.log(), 30));
    assert_eq!(
        tap_in_xml(&d, "n", m2),
        tap1,
        "the second NIC keeps its tap"
    );
    d.virsh_ok(&[
        "detach-interface",
        "n",
        "--type",
        "bridge",
        "--mac",
        m2,
        "--live",
    ]);
    removed.expect_line("event 'device-removed' for domain 'n': net1", WAIT);
    let gone = wait::until(WAIT, || taps(&ns).is_empty());
    assert!(gone, "{:?}\n{}", taps(&ns), tail(&d.log(), 30));
    assert!(!d.virsh_ok(&["dumpxml", "n"]).contains("<interface"));

    // Attached again and the guest destroyed: the tap goes with QEMU.
    d.virsh_ok(&[
        "attach-device",
        "n",
        &nic_file(&d, "bridge", "fvbr1", m2),
        "--live",
    ]);
    assert_eq!(taps(&ns).len(), 1);
    d.virsh_ok(&["destroy", "n"]);
    let gone = wait::until(WAIT, || taps(&ns).is_empty());
    assert!(gone, "{:?}\n{}", taps(&ns), tail(&d.log(), 30));
}

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow a lot more.
const BOOT: Duration = Duration::from_secs(180);

fn wait_serial(d: &Daemon, serial: &Path, want: &str) {
    let read = || std::fs::read_to_string(serial).unwrap_or_default();
    let seen = wait::until(BOOT, || read().contains(want));
    assert!(
        seen,
        "guest never printed '{want}'\n--- serial ---\n{}\n--- daemon ---\n{}",
        tail(&read(), 30),
        tail(&d.log(), 40)
    );
}

#[test]
fn a_real_guest_sees_a_network_nic_plugged_live_and_releases_it() {
    let ns = NetNs::new("hpgnic").unwrap();
    let d = Daemon::start_in_netns(&ns, "unplug_timeout_secs = 60");
    let f = d.file("lab.xml", LAB);
    d.virsh_ok(&["net-define", &f.to_string_lossy()]);
    d.virsh_ok(&["net-start", "lab"]);
    let g = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    let serial = d.root.path().join("g.serial");
    let xml = format!(
        "<domain type='{}'><name>g</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>\
         <cmdline>console=ttyS0 quiet ferrovirt.hotplug=1</cmdline></os><features><acpi/></features>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <serial type='file'><source path='{}'/><target port='0'/></serial></devices></domain>",
        testkit::accel::test_domain_type(),
        g.kernel.display(),
        g.initrd.display(),
        serial.display()
    );
    common::define_start(&d, "g", &xml);
    wait_serial(&d, &serial, testkit::guest::READY_MARKER);

    let mac = "52:54:00:5a:01:01";
    let nic = nic_file(&d, "network", "lab", mac);
    d.virsh_ok(&["attach-device", "g", &nic, "--live"]);
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG added eth0");
    let tap = tap_in_xml(&d, "g", mac);
    assert_eq!(taps(&ns), [(tap.clone(), Some("fvhp0".to_owned()))]);

    d.virsh_ok(&["detach-device", "g", &nic, "--live"]);
    wait_serial(&d, &serial, "FERROVIRT-HOTPLUG removed eth0");
    assert!(!d.virsh_ok(&["dumpxml", "g"]).contains(mac));
    let gone = wait::until(WAIT, || taps(&ns).is_empty());
    assert!(gone, "{:?}\n{}", taps(&ns), tail(&d.log(), 30));
    d.virsh_ok(&["destroy", "g"]);
}

#[test]
fn a_tap_nic_whose_unplug_completes_after_a_daemon_restart_loses_its_tap() {
    let ns = NetNs::new("hpnicr").unwrap();
    let mut d = Daemon::start_in_netns(&ns, "unplug_timeout_secs = 1");
    ns.exec(&["ip", "link", "add", "fvbr2", "type", "bridge"])
        .unwrap();
    let ctl = d.qemu_dir().join("r.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let ports = "<controller type='pci' model='pcie-root-port'/>\n".repeat(3);
    let xml = sim_domain_xml("r", &["-sim-control", &ctl_s, "-sim-ignore-unplug"]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{ports}"),
        1,
    );
    common::define_start(&d, "r", &xml);
    let mac = "52:54:00:5a:02:01";
    let nic = nic_file(&d, "bridge", "fvbr2", mac);
    d.virsh_ok(&["attach-device", "r", &nic, "--live"]);
    let tap = tap_in_xml(&d, "r", mac);
    assert_eq!(taps(&ns), [(tap.clone(), Some("fvbr2".to_owned()))]);

    // The guest does not answer: the removal stays pending, the tap too.
    d.virsh_ok(&["detach-device", "r", &nic, "--live"]);
    assert_eq!(tap_in_xml(&d, "r", mac), tap, "still pending");
    assert!(
        status_records(&d).contains("\"net0\""),
        "pending in the record"
    );
    d.kill();
    d.spawn();
    assert_eq!(tap_in_xml(&d, "r", mac), tap, "re-adopted with its tap");
    assert_eq!(taps(&ns).len(), 1);

    // The guest answers now: the NIC goes, its backend and its tap.
    assert_eq!(sim_control(&ctl, "release net0"), "ok");
    let gone = wait::until(WAIT, || {
        taps(&ns).is_empty() && !d.virsh_ok(&["dumpxml", "r"]).contains("<interface")
    });
    assert!(gone, "{:?}\n{}", taps(&ns), tail(&d.log(), 30));
    // The record is rewritten in the background once the removal is done.
    let forgot = wait::until(WAIT, || !status_records(&d).contains(&tap));
    assert!(forgot, "the record forgot the tap");
}
