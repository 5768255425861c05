//! The protocol edge as real virsh sees it: the read-only socket refuses
//! the secure XML as libvirt does, and a procedure the daemon does not
//! serve is named the same way whatever its number.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{Daemon, sim_domain_xml, virsh};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn read_only_dumpxml_security_info_is_operation_forbidden() {
    let d = Daemon::start();
    let xml = d.file("ro.xml", &sim_domain_xml("ro", &[]));
    d.virsh_ok(&["define", xml.to_str().expect("utf8")]);

    let out = virsh(&d.ro_uri, &["dumpxml", "--security-info", "ro"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: operation forbidden: virDomainGetXMLDesc with secure flag"),
        "{}",
        stderr(&out)
    );
    // Without the flag the read-only socket reads the XML; the read-write
    // socket may ask for it.
    let out = virsh(&d.ro_uri, &["dumpxml", "ro"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<name>ro</name>"));
    let secure = d.virsh_ok(&["dumpxml", "--security-info", "ro"]);
    assert!(secure.contains("<name>ro</name>"), "{secure}");
}

#[test]
fn unserved_procedures_are_no_support_named_by_libvirt_name_and_number() {
    let d = Daemon::start();
    for uri in [&d.uri, &d.ro_uri] {
        let out = virsh(uri, &["node-memory-tune"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(
                "this function is not supported by the connection driver: NODE_GET_MEMORY_PARAMETERS (289)"
            ),
            "{uri}: {}",
            stderr(&out)
        );
        // NODE_GET_CPU_MAP, the example here before it was served.
        let out = virsh(uri, &["nodecpumap"]);
        assert!(out.status.success(), "{uri}: {}", stderr(&out));
    }
}
