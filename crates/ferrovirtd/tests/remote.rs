//! Remote clients: `qemu+tcp://` with `auth_tcp = "none"` and
//! `qemu+tls://` with libvirt's x509 layout, driven by the real virsh.
//! Each daemon runs in a network namespace the test makes, and every
//! connection stays on that namespace's loopback.

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

use common::pki::{CLIENT_EXT, SERVER_EXT, ca, leaf, pkipath};
use common::{Daemon, real_domain_xml};
use testkit::netns::NetNs;

/// virsh inside `ns`: success and stdout, or failure and stderr.
fn virsh(ns: &NetNs, uri: &str, args: &[&str]) -> Result<String, String> {
    common::virsh_in_netns_output(ns, uri, args)
}

#[test]
fn virsh_drives_the_daemon_over_plain_tcp() {
    let ns = NetNs::new("rtcp").unwrap();
    let d = Daemon::start_in_netns(
        &ns,
        "default_network = false\nlisten_tcp = \"127.0.0.1:16509\"\nauth_tcp = \"none\"\n",
    );
    let uri = "qemu+tcp://127.0.0.1:16509/system";
    let xml = d.file("r1.xml", &real_domain_xml("r1"));
    virsh(&ns, uri, &["define", &xml.to_string_lossy()]).unwrap();
    let list = virsh(&ns, uri, &["list", "--all", "--name"]).unwrap();
    assert!(list.contains("r1"), "{list}");
    // The same daemon, through its UNIX socket, sees what TCP defined.
    assert!(d.virsh_ok(&["list", "--all", "--name"]).contains("r1"));
    let caps = virsh(&ns, uri, &["capabilities"]).unwrap();
    assert!(caps.contains("<capabilities>"));
    virsh(&ns, uri, &["undefine", "r1"]).unwrap();
}

#[test]
fn tls_clients_need_a_certificate_from_the_ca_and_an_allowed_dn() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ca(p, "good");
    ca(p, "rogue");
    let server_ext = SERVER_EXT;
    let client_ext = CLIENT_EXT;
    leaf(
        p,
        "good",
        "server",
        "/O=ferrovirt test/CN=localhost",
        server_ext,
    );
    leaf(
        p,
        "good",
        "client1",
        "/C=GB/O=ferrovirt test/CN=client1",
        client_ext,
    );
    leaf(
        p,
        "good",
        "intruder",
        "/C=GB/O=elsewhere/CN=intruder",
        client_ext,
    );
    leaf(
        p,
        "rogue",
        "forged",
        "/C=GB/O=ferrovirt test/CN=client1",
        client_ext,
    );

    let ns = NetNs::new("rtls").unwrap();
    let d = Daemon::start_in_netns(
        &ns,
        &format!(
            "default_network = false\nlisten_tls = \"127.0.0.1:16514\"\nca_file = \"{}\"\n\
             cert_file = \"{}\"\nkey_file = \"{}\"\n\
             tls_allowed_dn_list = [\"C=GB,O=ferrovirt test,CN=client*\"]\n",
            p.join("good-ca.pem").display(),
            p.join("server.pem").display(),
            p.join("server.key").display()
        ),
    );
    let uri = |pki: &Path| {
        format!(
            "qemu+tls://localhost:16514/system?pkipath={}",
            pki.display()
        )
    };

    let ok = pkipath(p, "good", "client1");
    let host = virsh(&ns, &uri(&ok), &["hostname"]).unwrap();
    assert!(!host.trim().is_empty());
    let list = virsh(&ns, &uri(&ok), &["list", "--all"]).unwrap();
    assert!(list.contains("Name"), "{list}");

    // A certificate from the CA whose DN is not allowed.
    let err = virsh(&ns, &uri(&pkipath(p, "good", "intruder")), &["list"]).unwrap_err();
    assert!(err.contains("verification"), "intruder: {err}");
    // A certificate the CA never signed (the client trusts the real CA).
    let forged = pkipath(p, "rogue", "forged");
    std::fs::copy(p.join("good-ca.pem"), forged.join("cacert.pem")).unwrap();
    assert!(
        virsh(&ns, &uri(&forged), &["list"]).is_err(),
        "forged certificate let in"
    );
    // Plain TCP to the TLS port gets nowhere.
    assert!(virsh(&ns, "qemu+tcp://127.0.0.1:16514/system", &["list"]).is_err());

    // The refused clients cost nothing: the allowed one still gets in.
    virsh(&ns, &uri(&ok), &["list", "--all"]).unwrap();
    assert!(
        d.log().contains("not in tls_allowed_dn_list"),
        "{}",
        d.log()
    );
}

#[test]
fn a_daemon_refuses_unauthenticated_tcp_unless_it_is_asked_for_by_name() {
    let ns = NetNs::new("rnoauth").unwrap();
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("c.toml");
    std::fs::write(&config, "listen_tcp = \"127.0.0.1:16509\"\n").unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(env!("CARGO_BIN_EXE_ferrovirtd"))
        .arg("--root")
        .arg(root.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth_tcp"), "{err}");
}
