//! Real guests on virtual networks and host bridges, with the daemon in a
//! network namespace the test creates (traffic stays between addresses
//! inside it): the daemon makes each NIC's tap and QEMU inherits it; the
//! guest leases an address from the network's dnsmasq (`net-dhcp-leases`,
//! `domifaddr`), answers ping from the bridge and reaches another guest;
//! `domifstat` counts the traffic; taps go with their guest (destroy, a
//! crash, a start cut short by a SIGKILL) and survive a SIGKILLed daemon
//! without being duplicated; bad interfaces get libvirt's errors and leave
//! nothing behind (docs/REQUIREMENTS.md: requirement 9, and the second
//! stage's libvirt error codes for bad input).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, tail};
use testkit::netns::NetNs;
use testkit::wait;

/// A guest boots in ~8 s under TCG; several share two cores here.
const BOOT: Duration = Duration::from_secs(120);

const LAB: &str = "<network><name>lab</name><bridge name='fvlab0'/>\
    <ip address='10.77.0.1' netmask='255.255.255.0'><dhcp>\
    <range start='10.77.0.10' end='10.77.0.50'/>\
    <host mac='52:54:00:77:00:01' ip='10.77.0.21'/></dhcp></ip></network>";

/// The tiny guest with one NIC (`iface` is its `<interface>` element),
/// leasing an address at boot and, with `ping`, pinging that address.
fn guest_xml(d: &Daemon, name: &str, iface: &str, ping: Option<&str>) -> (String, PathBuf) {
    let guest = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    let serial = d.root.path().join(format!("{name}.serial"));
    let ping = ping
        .map(|a| format!(" ferrovirt.ping={a}"))
        .unwrap_or_default();
    let xml = format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>128</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 quiet ferrovirt.dhcp=1{ping}</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    {iface}\n    \
         <serial type='file'><source path='{}'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
        guest.kernel.display(),
        guest.initrd.display(),
        serial.display()
    );
    (xml, serial)
}

fn network_nic(net: &str, mac: &str) -> String {
    format!(
        "<interface type='network'><source network='{net}'/><mac address='{mac}'/><model type='virtio'/></interface>"
    )
}

/// Polls the serial log for a whole line (its newline written) holding
/// `needle`; that line.
fn wait_serial(d: &Daemon, serial: &Path, needle: &str) -> String {
    let read = || std::fs::read_to_string(serial).unwrap_or_default();
    let whole = |text: &str| {
        text.split_inclusive('\n')
            .find(|l| l.ends_with('\n') && l.contains(needle))
            .map(|l| l.trim_end().to_owned())
    };
    let ok = wait::until(BOOT, || whole(&read()).is_some());
    let text = read();
    assert!(
        ok,
        "'{needle}' never appeared on {}:\n{}\n--- daemon ---\n{}",
        serial.display(),
        tail(&text, 30),
        tail(&d.log(), 40)
    );
    whole(&text).unwrap_or_default()
}

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

fn dnsmasqs(ns: &NetNs) -> usize {
    ns.pids()
        .into_iter()
        .filter(|p| {
            testkit::procfs::cmdline(*p)
                .and_then(|c| c.first().cloned())
                .is_some_and(|a| a.ends_with("dnsmasq"))
        })
        .count()
}

/// The tap of `dom`'s first NIC, from its live XML.
fn tap_of(d: &Daemon, dom: &str) -> String {
    let xml = d.virsh_ok(&["dumpxml", dom]);
    xml.split("<target dev='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("no tap in the live XML:\n{xml}"))
        .to_owned()
}

/// The `(rx_packets, tx_packets)` of `virsh domifstat DOM IFACE`.
fn packets(d: &Daemon, dom: &str, iface: &str) -> (u64, u64) {
    let out = d.virsh_ok(&["domifstat", dom, iface]);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{iface} {k} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {k} in:\n{out}"))
    };
    (field("rx_packets"), field("tx_packets"))
}

/// busybox's ping (the host may have no other), from inside the namespace.
fn ping(ns: &NetNs, addr: &str, count: &str) -> bool {
    ns.exec(&["/bin/busybox", "ping", "-c", count, "-W", "1", addr])
        .is_ok()
}

fn ping_from_host(ns: &NetNs, addr: &str) -> bool {
    wait::until(Duration::from_secs(30), || ping(ns, addr, "1"))
}

#[test]
fn guests_on_networks_lease_ping_count_and_survive_a_daemon_kill() {
    let ns = NetNs::new("gnet").unwrap();
    let mut d = Daemon::start_in_netns(&ns, "");
    let f = d.file("lab.xml", LAB);
    d.virsh_ok(&["net-define", &f.to_string_lossy()]);
    d.virsh_ok(&["net-start", "lab"]);

    // g1 on the isolated network (a reserved address), g2 on it too
    // (pinging g1), g3 on the default NAT network.
    let (x1, s1) = guest_xml(&d, "g1", &network_nic("lab", "52:54:00:77:00:01"), None);
    let (x2, s2) = guest_xml(
        &d,
        "g2",
        &network_nic("lab", "52:54:00:77:00:02"),
        Some("10.77.0.21"),
    );
    let (x3, s3) = guest_xml(&d, "g3", &network_nic("default", "52:54:00:12:00:03"), None);
    for (name, xml) in [("g1", &x1), ("g2", &x2), ("g3", &x3)] {
        common::define_start(&d, name, xml);
    }
    let mut bridges: Vec<Option<String>> = taps(&ns).into_iter().map(|(_, m)| m).collect();
    bridges.sort();
    assert_eq!(
        bridges,
        [Some("fvlab0"), Some("fvlab0"), Some("virbr0")].map(|b| b.map(str::to_owned)),
        "one tap per guest, on its network's bridge"
    );

    let l1 = wait_serial(&d, &s1, "FERROVIRT-GUEST-DHCP");
    assert!(l1.contains("ip=10.77.0.21"), "{l1}");
    let l3 = wait_serial(&d, &s3, "FERROVIRT-GUEST-DHCP");
    assert!(l3.contains("ip=192.168.122."), "{l3}");
    let p2 = wait_serial(&d, &s2, "FERROVIRT-GUEST-PING");
    assert!(p2.contains("10.77.0.21 ok"), "g2 reaches g1: {p2}");
    assert!(ping_from_host(&ns, "10.77.0.21"), "g1 answers the bridge");

    let leases = d.virsh_ok(&["net-dhcp-leases", "lab"]);
    assert!(
        leases.contains("52:54:00:77:00:01") && leases.contains("10.77.0.21/24"),
        "{leases}"
    );
    let addr = d.virsh_ok(&["domifaddr", "g1"]);
    let tap1 = tap_of(&d, "g1");
    assert!(
        addr.contains(&tap1)
            && addr.contains("10.77.0.21/24")
            && addr.contains("52:54:00:77:00:01"),
        "{addr}"
    );
    let arp = d.virsh_ok(&["domifaddr", "g1", "--source", "arp"]);
    assert!(arp.contains("10.77.0.21"), "the host pinged g1: {arp}");
    let addr3 = d.virsh_ok(&["domifaddr", "g3"]);
    assert!(addr3.contains("192.168.122."), "{addr3}");

    // domifstat counts on the tap, by tap name or by MAC.
    let (rx, tx) = packets(&d, "g1", &tap1);
    assert!(rx > 0 && tx > 0, "rx {rx} tx {tx}");
    assert!(ping(&ns, "10.77.0.21", "3"));
    let (rx2, tx2) = packets(&d, "g1", "52:54:00:77:00:01");
    assert!(rx2 >= rx + 3 && tx2 >= tx + 3, "{rx}->{rx2} {tx}->{tx2}");
    // domstats' interface group: the same counters, from the poller's cache.
    let mut stats = String::new();
    let counted = wait::until(Duration::from_secs(20), || {
        stats = d.virsh_ok(&["domstats", "--interface", "g1"]);
        stats
            .lines()
            .find_map(|l| l.trim().strip_prefix("net.0.rx.pkts="))
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v >= rx2)
    });
    assert!(counted, "{stats}");
    assert!(
        stats.contains("net.count=1") && stats.contains(&format!("net.0.name={tap1}")),
        "{stats}"
    );

    // SIGKILL of the daemon with guests on two networks: nothing
    // duplicated or lost, the guests keep their taps and leases.
    let taps_before = taps(&ns);
    let rules_before = ns.exec(&["nft", "list", "ruleset"]).unwrap();
    d.kill();
    d.spawn();
    assert_eq!(taps(&ns), taps_before, "{}", tail(&d.log(), 30));
    assert_eq!(dnsmasqs(&ns), 2);
    assert_eq!(ns.exec(&["nft", "list", "ruleset"]).unwrap(), rules_before);
    assert!(d.virsh_ok(&["list"]).contains("g3"));
    assert_eq!(tap_of(&d, "g1"), tap1, "the live XML keeps the tap");
    let again = d.virsh_ok(&["domifaddr", "g1"]);
    assert!(again.contains("10.77.0.21/24"), "{again}");
    assert!(packets(&d, "g1", &tap1).0 >= rx2);
    assert!(ping_from_host(&ns, "10.77.0.21"));

    // destroy takes the guest's tap with it; a crashed QEMU too.
    d.virsh_ok(&["destroy", "g1"]);
    assert!(
        wait::until(Duration::from_secs(10), || taps(&ns)
            .iter()
            .all(|(t, _)| *t != tap1)),
        "{:?}",
        taps(&ns)
    );
    let tap3 = tap_of(&d, "g3");
    let qemu3 = common::pids_mentioning("guest=g3,");
    assert_eq!(qemu3.len(), 1, "{qemu3:?}");
    testkit::processes::signal(qemu3[0], nix::sys::signal::Signal::SIGKILL).unwrap();
    d.wait_state("g3", "shut off (crashed)", Duration::from_secs(20));
    assert!(
        wait::until(Duration::from_secs(10), || taps(&ns)
            .iter()
            .all(|(t, _)| *t != tap3)),
        "{:?}",
        taps(&ns)
    );
    // g1 starts again with a tap; stats of a stopped guest are refused.
    d.virsh_ok(&["start", "g1"]);
    assert_eq!(taps(&ns).len(), 2, "{:?}", taps(&ns));
    let out = d.virsh(&["domifstat", "g3", &tap3]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn guest_on_a_host_bridge_joins_it() {
    let ns = NetNs::new("gbr").unwrap();
    for cmd in [
        &["ip", "link", "add", "fvtestbr", "type", "bridge"][..],
        &["ip", "addr", "add", "10.66.0.1/24", "dev", "fvtestbr"],
        &["ip", "link", "set", "fvtestbr", "up"],
    ] {
        ns.exec(cmd).unwrap();
    }
    let d = Daemon::start_in_netns(&ns, "default_network = false\n");
    let nic = "<interface type='bridge'><source bridge='fvtestbr'/>\
               <mac address='52:54:00:66:00:01'/><model type='e1000'/></interface>";
    let (xml, _serial) = guest_xml(&d, "b1", nic, None);
    common::define_start(&d, "b1", &xml);
    let tap = tap_of(&d, "b1");
    assert_eq!(
        taps(&ns),
        vec![(tap.clone(), Some("fvtestbr".to_owned()))],
        "the tap is on the bridge"
    );
    // The guest's DHCP discovers (nobody answers here) cross the tap.
    assert!(
        wait::until(BOOT, || packets(&d, "b1", &tap).1 > 0),
        "no packet from the guest\n{}",
        tail(&d.log(), 30)
    );

    // The link goes down and up live (update-device of the link state);
    // --config keeps it in the definition.
    d.virsh_ok(&["domif-setlink", "b1", &tap, "down"]);
    assert!(d.virsh_ok(&["domif-getlink", "b1", &tap]).contains("down"));
    assert!(
        d.virsh_ok(&["dumpxml", "b1"])
            .contains("<link state='down'/>")
    );
    d.virsh_ok(&["domif-setlink", "b1", &tap, "up"]);
    assert!(d.virsh_ok(&["domif-getlink", "b1", &tap]).contains(" up"));
    d.virsh_ok(&[
        "domif-setlink",
        "b1",
        "52:54:00:66:00:01",
        "down",
        "--config",
    ]);
    assert!(
        d.virsh_ok(&["dumpxml", "--inactive", "b1"])
            .contains("<link state='down'/>")
    );
    let other = "<interface type='bridge'><source bridge='fvtestbr'/>\
                 <mac address='52:54:00:66:00:01'/><model type='virtio'/><link state='down'/></interface>";
    let f = d.file("other.xml", other);
    let out = d.virsh(&["update-device", "b1", &f.to_string_lossy(), "--live"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("only the link state"),
        "a model change is refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // domiftune shapes the tap at once and reads back what it set.
    let qdisc = || ns.exec(&["tc", "qdisc", "show", "dev", &tap]).unwrap();
    d.virsh_ok(&[
        "domiftune",
        "b1",
        &tap,
        "--inbound",
        "1000,2000,64",
        "--live",
    ]);
    assert!(qdisc().contains("htb"), "{}", qdisc());
    let tune = d.virsh_ok(&["domiftune", "b1", &tap]);
    let value = |k: &str| {
        tune.lines()
            .find_map(|l| l.split_once(':').filter(|(n, _)| n.trim() == k))
            .map(|(_, v)| v.trim().to_owned())
    };
    assert_eq!(value("inbound.average").as_deref(), Some("1000"), "{tune}");
    assert_eq!(value("inbound.peak").as_deref(), Some("2000"), "{tune}");
    assert_eq!(value("outbound.average").as_deref(), Some("0"), "{tune}");
    assert!(
        d.virsh_ok(&["dumpxml", "b1"])
            .contains("<inbound average='1000'")
    );
    d.virsh_ok(&["domiftune", "b1", &tap, "--inbound", "0", "--live"]);
    assert!(!qdisc().contains("htb"), "{}", qdisc());
    d.virsh_ok(&[
        "domiftune",
        "b1",
        "52:54:00:66:00:01",
        "--outbound",
        "500",
        "--config",
    ]);
    assert!(
        d.virsh_ok(&["dumpxml", "--inactive", "b1"])
            .contains("<outbound average='500'")
    );
    let out = d.virsh(&["domiftune", "b1", "nosuchdev", "--inbound", "5"]);
    assert!(!out.status.success());

    d.virsh_ok(&["destroy", "b1"]);
    assert!(wait::until(Duration::from_secs(10), || taps(&ns).is_empty()));
    // The next start shapes the tap from the definition, and starts with
    // the link down as defined.
    d.virsh_ok(&["start", "b1"]);
    let tap = tap_of(&d, "b1");
    let ingress = ns.exec(&["tc", "qdisc", "show", "dev", &tap]).unwrap();
    assert!(ingress.contains("ingress"), "{ingress}");
    assert!(d.virsh_ok(&["domif-getlink", "b1", &tap]).contains("down"));
}

#[test]
fn bad_interfaces_get_libvirts_codes_and_leave_nothing() {
    let ns = NetNs::new("gbad").unwrap();
    let d = Daemon::start_in_netns(&ns, "default_network = false\n");
    let f = d.file("lab.xml", LAB);
    d.virsh_ok(&["net-define", &f.to_string_lossy()]);
    let cases = [
        (
            network_nic("nope", "52:54:00:00:00:01"),
            "Network not found",
        ),
        (
            network_nic("lab", "52:54:00:00:00:02"),
            "network 'lab' is not active",
        ),
        (
            "<interface type='bridge'><source bridge='nobr0'/></interface>".to_owned(),
            "bridge 'nobr0' does not exist",
        ),
    ];
    for (i, (nic, want)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        let (xml, _) = guest_xml(&d, &name, nic, None);
        let f = d.file(&format!("{name}.xml"), &xml);
        d.virsh_ok(&["define", &f.to_string_lossy()]);
        let out = d.virsh(&["start", &name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{name}: {err}");
        assert!(taps(&ns).is_empty(), "{name}: {:?}", taps(&ns));
        assert!(
            common::pids_mentioning(&format!("guest={name},")).is_empty(),
            "{name}: no QEMU"
        );
        assert!(d.virsh_ok(&["domstate", &name]).contains("shut off"));
    }
    // A NIC defined without a MAC address got one in libvirt's range, kept.
    let mac_of = |xml: &str| {
        xml.split("<mac address='")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .map(str::to_owned)
    };
    let mac = mac_of(&d.virsh_ok(&["dumpxml", "--inactive", "bad2"])).unwrap();
    assert!(mac.starts_with("52:54:00:"), "{mac}");
    assert_eq!(
        mac_of(&d.virsh_ok(&["dumpxml", "--inactive", "bad2"])),
        Some(mac)
    );
    // The same definition starts once its network runs.
    d.virsh_ok(&["net-start", "lab"]);
    d.virsh_ok(&["start", "bad1"]);
    assert_eq!(taps(&ns).len(), 1, "{:?}", taps(&ns));
}

#[test]
fn ethernet_taps_are_made_or_used_as_they_are() {
    let ns = NetNs::new("geth").unwrap();
    ns.exec(&["ip", "tuntap", "add", "dev", "fvpre0", "mode", "tap"])
        .unwrap();
    let d = Daemon::start_in_netns(&ns, "default_network = false\n");
    let eth = |dev: &str, managed: &str| {
        format!(
            "<interface type='ethernet'><target dev='{dev}'{managed}/><model type='virtio'/></interface>"
        )
    };
    // Managed (the default): the daemon makes the named tap, on no bridge,
    // and it goes with the guest.
    let (xml, _) = guest_xml(&d, "e1", &eth("fveth1", ""), None);
    common::define_start(&d, "e1", &xml);
    assert!(
        taps(&ns).contains(&("fveth1".to_owned(), None)),
        "{:?}",
        taps(&ns)
    );
    assert!(
        d.virsh_ok(&["dumpxml", "e1"])
            .contains("<target dev='fveth1'/>")
    );
    d.virsh_ok(&["destroy", "e1"]);
    assert!(wait::until(Duration::from_secs(10), || taps(&ns)
        .iter()
        .all(|(t, _)| t != "fveth1")));

    // A managed tap that exists already is refused, and left alone.
    let (xml, _) = guest_xml(&d, "e2", &eth("fvpre0", ""), None);
    let f = d.file("e2.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let out = d.virsh(&["start", "e2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("already exists"),
        "{err}"
    );

    // Unmanaged: the existing tap is used as it is, and stays.
    let (xml, _) = guest_xml(&d, "e3", &eth("fvpre0", " managed='no'"), None);
    common::define_start(&d, "e3", &xml);
    assert!(
        d.virsh_ok(&["dumpxml", "e3"])
            .contains("<target dev='fvpre0' managed='no'/>")
    );
    d.virsh_ok(&["destroy", "e3"]);
    d.wait_state("e3", "shut off (destroyed)", Duration::from_secs(10));
    assert_eq!(taps(&ns), vec![("fvpre0".to_owned(), None)]);
}

/// A daemon killed right after spawning QEMU for a guest with a NIC (the
/// intent names the tap, the pid is not recorded yet): the restarted
/// daemon kills that QEMU, its tap goes, and the next start makes one tap.
#[test]
fn a_start_killed_after_the_spawn_leaves_no_tap() {
    let ns = NetNs::new("gcut").unwrap();
    let mut d = Daemon::start_in_netns(&ns, "default_network = false\n");
    let f = d.file("lab.xml", LAB);
    d.virsh_ok(&["net-define", &f.to_string_lossy()]);
    d.virsh_ok(&["net-start", "lab"]);
    let (xml, _) = guest_xml(&d, "cut", &network_nic("lab", "52:54:00:77:00:09"), None);
    let f = d.file("cut.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let uuid = d.virsh_ok(&["domuuid", "cut"]).trim().to_owned();
    let marker = d.root.path().join("spawned");
    d.spawn_with_env(&[("FERROVIRT_PAUSE_AFTER_SPAWN", marker.as_os_str())]);
    let mut client = std::process::Command::new("virsh")
        .args(["-c", &d.uri, "start", "cut"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait::until(BOOT, || std::fs::read_to_string(&marker)
            .is_ok_and(|t| t.ends_with('\n'))),
        "{}",
        tail(&d.log(), 30)
    );
    let status = d.root.path().join(format!("run/qemu/{uuid}.json"));
    let rec = std::fs::read_to_string(&status).unwrap();
    let made = taps(&ns);
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(
        rec.contains(r#""phase": "starting""#)
            && rec.contains(&format!(r#""name": "{}""#, made[0].0)),
        "the intent names the tap: {rec}"
    );
    d.spawn(); // SIGKILLs the paused daemon first
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        wait::until(Duration::from_secs(10), || taps(&ns).is_empty()),
        "{:?}\n{}",
        taps(&ns),
        tail(&d.log(), 30)
    );
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "cut"]).trim(),
        "shut off (daemon)"
    );
    assert_eq!(
        dnsmasqs(&ns),
        1,
        "the network is re-adopted, not duplicated"
    );
    d.virsh_ok(&["start", "cut"]);
    assert_eq!(taps(&ns).len(), 1, "{:?}", taps(&ns));
    assert_eq!(common::pids_mentioning(&uuid).len(), 1);
}
