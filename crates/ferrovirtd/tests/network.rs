//! Virtual networks end to end, with the daemon inside a network namespace
//! the test creates (the host's own namespace is never touched): the
//! default network as libvirt ships it, `net-*` through the real virsh,
//! live DHCP host updates, network events, libvirt's error codes, a
//! SIGKILLed daemon that re-adopts its networks, and `net-destroy`
//! leaving no bridge, dnsmasq or nftables rule behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Daemon, tail};
use testkit::netns::NetNs;
use testkit::wait;

fn bridges(ns: &NetNs) -> Vec<String> {
    ns.exec(&["ip", "-br", "link", "show", "type", "bridge"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
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

fn ruleset(ns: &NetNs) -> String {
    ns.exec(&["nft", "list", "ruleset"]).unwrap()
}

const LAB: &str = "<network><name>lab</name>\
    <ip address='10.77.0.1' netmask='255.255.255.0'>\
    <dhcp><range start='10.77.0.10' end='10.77.0.50'/></dhcp></ip></network>";

#[test]
fn networks_in_a_namespace_lifecycle_and_readoption() {
    let ns = NetNs::new("net").unwrap();
    let mut d = Daemon::start_in_netns(&ns, "");
    // The default network: defined, autostarted (its subnet is free in a
    // fresh namespace), bridge virbr0 with 192.168.122.1, NAT, dnsmasq.
    let list = d.virsh_ok(&["net-list", "--all"]);
    assert!(
        list.contains("default") && list.contains("active"),
        "{list}"
    );
    let addr = ns.exec(&["ip", "-br", "addr", "show", "virbr0"]).unwrap();
    assert!(addr.contains("192.168.122.1/24"), "{addr}");
    assert!(ruleset(&ns).contains("masquerade"), "{}", ruleset(&ns));
    assert_eq!(dnsmasqs(&ns), 1);
    assert!(d.virsh_ok(&["net-info", "default"]).contains("virbr0"));

    // An isolated network with DHCP; the bridge name is chosen for it.
    let f = d.file("lab.xml", LAB);
    d.virsh_ok(&["net-define", &f.to_string_lossy()]);
    d.virsh_ok(&["net-start", "lab"]);
    let xml = d.virsh_ok(&["net-dumpxml", "lab"]);
    let bridge = xml
        .split("<bridge name='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap()
        .to_owned();
    assert!(
        bridges(&ns).contains(&bridge),
        "{bridge} in {:?}",
        bridges(&ns)
    );
    assert_eq!(dnsmasqs(&ns), 2);
    d.virsh_ok(&[
        "net-update",
        "lab",
        "add",
        "ip-dhcp-host",
        "<host mac='52:54:00:aa:bb:cc' name='g1' ip='10.77.0.20'/>",
        "--live",
        "--config",
    ]);
    assert!(
        d.virsh_ok(&["net-dumpxml", "lab"])
            .contains("52:54:00:aa:bb:cc")
    );
    assert!(
        d.virsh_ok(&["net-dumpxml", "--inactive", "lab"])
            .contains("10.77.0.20")
    );
    let leases = d.virsh_ok(&["net-dhcp-leases", "lab"]);
    assert!(leases.contains("Expiry Time"), "{leases}");

    // A daemon killed with two networks running comes back to them:
    // nothing duplicated (one dnsmasq each), nothing lost.
    let rules_before = ruleset(&ns);
    d.kill();
    d.spawn();
    let list = d.virsh_ok(&["net-list"]);
    assert!(list.contains("default") && list.contains("lab"), "{list}");
    assert_eq!(dnsmasqs(&ns), 2, "{}", tail(&d.log(), 20));
    assert_eq!(ruleset(&ns), rules_before);

    // net-destroy removes the bridge, dnsmasq and every rule it added.
    d.virsh_ok(&["net-destroy", "lab"]);
    d.virsh_ok(&["net-destroy", "default"]);
    assert!(
        wait::until(Duration::from_secs(10), || dnsmasqs(&ns) == 0),
        "dnsmasq left running"
    );
    assert!(bridges(&ns).is_empty(), "{:?}", bridges(&ns));
    assert!(!ruleset(&ns).contains("masquerade"), "{}", ruleset(&ns));
    d.virsh_ok(&["net-undefine", "lab"]);
    assert!(!d.virsh_ok(&["net-list", "--all"]).contains("lab"));
}

#[test]
fn bad_network_input_gets_libvirts_codes_and_leaves_nothing() {
    let ns = NetNs::new("nbad").unwrap();
    let d = Daemon::start_in_netns(&ns, "default_network = false\n");
    testkit::tools::Tool::Python3Libvirt.require();
    let script = format!(
        r#"
import libvirt
c = libvirt.open('{uri}')
n = c.networkDefineXML("<network><name>a</name><bridge name='fvbr7'/><ip address='10.88.0.1' prefix='24'/></network>")
n.create()
def code(f):
    try:
        f()
    except libvirt.libvirtError as e:
        return e.get_error_code()
    return "no error"
cases = [
  ("overlapping subnet", lambda: c.networkCreateXML("<network><name>b</name><ip address='10.88.0.129' prefix='25'/></network>"), libvirt.VIR_ERR_INTERNAL_ERROR),
  ("range outside subnet", lambda: c.networkCreateXML("<network><name>r</name><ip address='10.99.0.1' prefix='24'><dhcp><range start='10.98.0.2' end='10.98.0.9'/></dhcp></ip></network>"), libvirt.VIR_ERR_INTERNAL_ERROR),
  ("bridge name in use", lambda: c.networkCreateXML("<network><name>c</name><bridge name='fvbr7'/><ip address='10.89.0.1' prefix='24'/></network>"), libvirt.VIR_ERR_INTERNAL_ERROR),
  ("unknown forward mode", lambda: c.networkDefineXML("<network><name>f</name><forward mode='teleport'/></network>"), libvirt.VIR_ERR_CONFIG_UNSUPPORTED),
  ("duplicate name", lambda: c.networkDefineXML("<network><name>a</name><uuid>11111111-2222-3333-4444-555555555555</uuid></network>"), libvirt.VIR_ERR_OPERATION_FAILED),
  ("no such network", lambda: c.networkLookupByName("nope"), libvirt.VIR_ERR_NO_NETWORK),
]
bad = [(name, code(f), want) for (name, f, want) in cases if code(f) != want]
assert not bad, bad
print(sorted(x.name() for x in c.listAllNetworks(0)))
"#,
        uri = d.uri
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&d.log(), 30)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("['a']"));
    assert_eq!(bridges(&ns), vec!["fvbr7".to_owned()], "nothing half-made");
    assert_eq!(dnsmasqs(&ns), 1);
}
