//! Black-box: the real `virsh` drives ferrovirtd, which drives real QEMU
//! (and qemu-sim where a guest that reacts to ACPI is needed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Daemon, EventListener, assert_in_order, real_domain_xml, sim_domain_xml};

#[test]
fn virsh_lifecycle_against_real_qemu() {
    let d = Daemon::start();
    assert_eq!(d.virsh_ok(&["list", "--all", "--name"]).trim(), "");

    let xml = d.file("vm1.xml", &real_domain_xml("vm1"));
    let out = d.virsh_ok(&["define", xml.to_str().expect("utf8")]);
    assert!(out.contains("Domain 'vm1' defined"), "{out}");
    let list = d.virsh_ok(&["list", "--all"]);
    assert!(list.contains("vm1") && list.contains("shut off"), "{list}");
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "vm1"]).trim(),
        "shut off (unknown)"
    );

    let out = d.virsh_ok(&["start", "vm1"]);
    assert!(out.contains("Domain 'vm1' started"), "{out}");
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "vm1"]).trim(),
        "running (booted)"
    );
    let info = d.virsh_ok(&["dominfo", "vm1"]);
    for want in [
        "Name:           vm1",
        "State:          running",
        "CPU(s):         1",
        "Max memory:     65536 KiB",
        "Persistent:     yes",
    ] {
        assert!(info.contains(want), "dominfo lacks '{want}':\n{info}");
    }
    let list = d.virsh_ok(&["list"]);
    assert!(list.contains("vm1") && list.contains("running"), "{list}");

    let xml = d.virsh_ok(&["dumpxml", "vm1"]);
    assert!(xml.contains("<name>vm1</name>"), "{xml}");
    assert!(xml.contains(" id='"), "live XML carries the id: {xml}");
    let inactive = d.virsh_ok(&["dumpxml", "--inactive", "vm1"]);
    assert!(!inactive.contains(" id='"), "{inactive}");

    d.virsh_ok(&["suspend", "vm1"]);
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "vm1"]).trim(),
        "paused (user)"
    );
    d.virsh_ok(&["resume", "vm1"]);
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "vm1"]).trim(),
        "running (unpaused)"
    );

    d.virsh_ok(&["destroy", "vm1"]);
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "vm1"]).trim(),
        "shut off (destroyed)"
    );
    let out = d.virsh_ok(&["undefine", "vm1"]);
    assert!(out.contains("Domain 'vm1' has been undefined"), "{out}");
    assert_eq!(d.virsh_ok(&["list", "--all", "--name"]).trim(), "");
}

#[test]
fn virsh_shutdown_reaches_shutoff_shutdown() {
    let d = Daemon::start();
    let xml = d.file("sim1.xml", &sim_domain_xml("sim1", &[]));
    d.virsh_ok(&["define", xml.to_str().expect("utf8")]);
    d.virsh_ok(&["start", "sim1"]);
    d.virsh_ok(&["shutdown", "sim1"]);
    d.wait_state("sim1", "shut off (shutdown)", Duration::from_secs(30));
    d.virsh_ok(&["undefine", "sim1"]);
}

#[test]
fn virsh_event_loop_prints_lifecycle_events() {
    let d = Daemon::start();
    let xml = d.file("ev1.xml", &real_domain_xml("ev1"));
    d.virsh_ok(&["define", xml.to_str().expect("utf8")]);
    let listener = EventListener::start(&d, &["--event", "lifecycle"], 1);
    d.virsh_ok(&["start", "ev1"]);
    d.virsh_ok(&["suspend", "ev1"]);
    d.virsh_ok(&["resume", "ev1"]);
    d.virsh_ok(&["destroy", "ev1"]);
    // Events may reach a client after the call that caused them returns.
    let text = listener.stop_after("event 'lifecycle' for domain 'ev1': Stopped Destroyed");
    assert_in_order(
        &text,
        &[
            "event 'lifecycle' for domain 'ev1': Started Booted",
            "event 'lifecycle' for domain 'ev1': Suspended Paused",
            "event 'lifecycle' for domain 'ev1': Resumed Unpaused",
            "event 'lifecycle' for domain 'ev1': Stopped Destroyed",
        ],
    );
}

#[test]
fn virsh_errors_are_meaningful() {
    let d = Daemon::start();
    let bad = d.file("bad.xml", "<domain type='kvm'><name>x</name");
    let out = d.virsh(&["define", bad.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
    assert!(err.to_lowercase().contains("xml"), "{err}");

    let out = d.virsh(&["start", "no-such-domain"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed to get domain 'no-such-domain'"),
        "{err}"
    );

    // The read-only socket refuses every mutating call.
    let xml = d.file("ro.xml", &real_domain_xml("ro1"));
    let out = common::virsh(&d.ro_uri, &["define", xml.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("operation forbidden"), "{err}");
    // ...and still answers reads.
    let out = common::virsh(&d.ro_uri, &["list", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn libvirt_python_sees_lifecycle_events_in_order() {
    let d = Daemon::start();
    let xml = d.file("py1.xml", &real_domain_xml("py1"));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/lifecycle_events.py"
    );
    let out = testkit::tools::python3()
        .arg(script)
        .arg(&d.uri)
        .arg(&xml)
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        common::tail(&d.log(), 40)
    );
}

#[test]
fn live_xml_shows_pty_paths_and_survives_a_killed_daemon() {
    let mut d = Daemon::start();
    let xml = real_domain_xml("pty1").replace(
        "  </devices>",
        "    <serial type='pty'><target port='0'/></serial>\n  </devices>",
    );
    let f = d.file("pty1.xml", &xml);
    d.virsh_ok(&["define", f.to_str().expect("utf8")]);
    d.virsh_ok(&["start", "pty1"]);
    let live = d.virsh_ok(&["dumpxml", "pty1"]);
    let pty = live
        .lines()
        .find_map(|l| l.trim().strip_prefix("<source path='/dev/pts/"))
        .map(|rest| rest.trim_end_matches("'/>").to_owned())
        .unwrap_or_else(|| panic!("live XML lacks the pty path:\n{live}"));
    let inactive = d.virsh_ok(&["dumpxml", "--inactive", "pty1"]);
    assert!(!inactive.contains("/dev/pts/"), "{inactive}");

    // SIGKILL the daemon: QEMU keeps running; the new daemon re-adopts it
    // and reports the same state, id and pty.
    let id = d.virsh_ok(&["domid", "pty1"]);
    d.kill();
    d.spawn();
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "pty1"]).trim(),
        "running (booted)"
    );
    assert_eq!(d.virsh_ok(&["domid", "pty1"]), id);
    let live = d.virsh_ok(&["dumpxml", "pty1"]);
    assert!(
        live.contains(&format!("/dev/pts/{pty}")),
        "pty lost after restart:\n{live}"
    );
    d.virsh_ok(&["destroy", "pty1"]);
}
