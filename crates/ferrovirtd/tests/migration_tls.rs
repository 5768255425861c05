//! Live migration between two daemons that listen only for TLS clients
//! (`qemu+tls://`), driven by the real virsh with a `pkipath` directory:
//! client-driven (virsh talks to both daemons) and peer to peer (the
//! source daemon connects to the destination presenting its own client
//! certificate, which the destination's `tls_allowed_dn_list` must let
//! in). Both daemons run in a network namespace the test makes; every
//! connection stays on its loopback. The guest counts on its serial
//! port, so "it keeps running" is the counter going on.

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

use common::counting::{self, last_count, qemus_of, state};
use common::pki::{CLIENT_EXT, SERVER_EXT, ca, leaf, pkipath};
use common::{Daemon, tail};
use testkit::netns::NetNs;
use testkit::wait;

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow more.
const BOOT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(60);

const SRC_PORT: u16 = 16611;
const DST_PORT: u16 = 16612;
/// The DNs the daemons let in: the administrator's and the daemons'.
const ALLOWED: &str = "C=GB,O=ferrovirt test,CN=*";

/// The certificates of one test: CA `good`, a server certificate per
/// daemon, client certificates for the administrator (virsh), for each
/// daemon's peer connections, and for a stranger the CA signed but no
/// daemon lets in.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        ca(p, "good");
        leaf(
            p,
            "good",
            "srv-a",
            "/O=ferrovirt test/CN=host-a",
            SERVER_EXT,
        );
        leaf(
            p,
            "good",
            "srv-b",
            "/O=ferrovirt test/CN=host-b",
            SERVER_EXT,
        );
        for (name, subj) in [
            ("admin", "/C=GB/O=ferrovirt test/CN=admin"),
            ("peer-a", "/C=GB/O=ferrovirt test/CN=daemon-a"),
            ("peer-b", "/C=GB/O=ferrovirt test/CN=daemon-b"),
            ("stranger", "/C=GB/O=elsewhere/CN=daemon-x"),
        ] {
            leaf(p, "good", name, subj, CLIENT_EXT);
            pkipath(p, "good", name);
        }
        // QEMU's own credentials for `--tls` streams, in its layout: each
        // daemon's, and a set from a CA nobody trusts.
        ca(p, "other");
        leaf(p, "other", "srv-x", "/O=elsewhere/CN=host-x", SERVER_EXT);
        leaf(p, "other", "peer-x", "/O=elsewhere/CN=daemon-x", CLIENT_EXT);
        for (dir, ca, server, client) in [
            ("qemu-a", "good", "srv-a", "peer-a"),
            ("qemu-b", "good", "srv-b", "peer-b"),
            ("qemu-x", "other", "srv-x", "peer-x"),
        ] {
            let d = p.join(dir);
            std::fs::create_dir(&d).unwrap();
            let copy = |from: String, to: &str| std::fs::copy(p.join(from), d.join(to)).unwrap();
            copy(format!("{ca}-ca.pem"), "ca-cert.pem");
            copy(format!("{server}.pem"), "server-cert.pem");
            copy(format!("{server}.key"), "server-key.pem");
            copy(format!("{client}.pem"), "client-cert.pem");
            copy(format!("{client}.key"), "client-key.pem");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pkipath(&self, client: &str) -> PathBuf {
        self.path(&format!("pki-{client}"))
    }

    /// A daemon's config: TLS on `port` with server certificate `server`,
    /// presenting client certificate `peer` to its peers, and QEMU's
    /// credentials for `--tls` streams from directory `qemu`.
    fn config(&self, port: u16, server: &str, peer: &str, qemu: &str, ports: (u16, u16)) -> String {
        let qemu_dir = self.path(qemu);
        format!(
            "default_network = false\nlisten_tls = \"127.0.0.1:{port}\"\n\
             ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             tls_allowed_dn_list = [\"{ALLOWED}\"]\nclient_pkipath = \"{}\"\n\
             migration_address = \"127.0.0.1\"\nmigration_port_min = {}\nmigration_port_max = {}\n\
             migrate_tls_x509_cert_dir = \"{}\"\n",
            self.path("good-ca.pem").display(),
            self.path(&format!("{server}.pem")).display(),
            self.path(&format!("{server}.key")).display(),
            self.pkipath(peer).display(),
            ports.0,
            ports.1,
            qemu_dir.display()
        )
    }
}

/// Two TLS daemons in one namespace.
struct Pair {
    // Dropped before the namespace and the certificates.
    src: Daemon,
    dst: Daemon,
    ns: NetNs,
    pki: Pki,
    shared: tempfile::TempDir,
}

impl Pair {
    /// `src_peer` is the client certificate the source daemon presents.
    fn new(tag: &str, src_peer: &str) -> Pair {
        Pair::with_qemu_creds(tag, src_peer, "qemu-a")
    }

    /// [`Pair::new`], the source's QEMU taking its `--tls` credentials
    /// from `src_qemu`.
    fn with_qemu_creds(tag: &str, src_peer: &str, src_qemu: &str) -> Pair {
        let pki = Pki::new();
        let ns = NetNs::new(tag).unwrap();
        Pair {
            src: Daemon::start_in_netns(
                &ns,
                &pki.config(SRC_PORT, "srv-a", src_peer, src_qemu, (49152, 49159)),
            ),
            dst: Daemon::start_in_netns(
                &ns,
                &pki.config(DST_PORT, "srv-b", "peer-b", "qemu-b", (49160, 49167)),
            ),
            ns,
            pki,
            shared: tempfile::tempdir().unwrap(),
        }
    }

    /// The administrator's URI of the daemon on `port`.
    fn uri(&self, port: u16) -> String {
        format!(
            "qemu+tls://127.0.0.1:{port}/system?pkipath={}",
            self.pki.pkipath("admin").display()
        )
    }

    /// virsh inside the namespace: stdout, or stderr on failure.
    fn virsh(&self, uri: &str, args: &[&str]) -> Result<String, String> {
        common::virsh_in_netns_output(&self.ns, uri, args)
    }

    fn logs(&self) -> String {
        format!(
            "--- source daemon ---\n{}\n--- destination daemon ---\n{}",
            tail(&self.src.log(), 40),
            tail(&self.dst.log(), 40)
        )
    }

    /// Defines and starts the counting guest on the source; returns its
    /// serial log once it counts.
    fn start_guest(&self, name: &str) -> PathBuf {
        let guest = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
        let serial = self.shared.path().join(format!("{name}.serial"));
        let xml = format!(
            "<domain type='{}'>\n  <name>{name}</name>\n  <memory unit='MiB'>192</memory>\n  <vcpu>1</vcpu>\n  \
             <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
             <cmdline>console=ttyS0 quiet ferrovirt.counter=1</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
             <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
             <serial type='file'><source path='{}' append='on'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
            testkit::accel::test_domain_type(),
            guest.kernel.display(),
            guest.initrd.display(),
            serial.display()
        );
        let f = self.src.file(&format!("{name}.xml"), &xml);
        self.src.virsh_ok(&["define", &f.to_string_lossy()]);
        self.src.virsh_ok(&["start", name]);
        let counting = wait::until(BOOT, || last_count(&serial) >= 3);
        assert!(counting, "the guest never counted\n{}", self.logs());
        serial
    }
}

/// The guest counts on past where it is now, without booting again.
fn assert_keeps_counting(p: &Pair, serial: &Path) {
    counting::assert_counts_on(serial, last_count(serial), WAIT, || p.logs());
}

#[test]
fn a_guest_migrates_between_tls_daemons_client_driven_and_peer_to_peer() {
    let p = Pair::new("mtls", "peer-a");
    let serial = p.start_guest("t1");
    let uuid = p.src.virsh_ok(&["domuuid", "t1"]).trim().to_owned();
    let (src, dst) = (p.uri(SRC_PORT), p.uri(DST_PORT));

    // Client-driven: virsh holds a TLS connection to each daemon, and
    // QEMU's stream is TLS too (`--tls`).
    let out = p.virsh(&src, &["migrate", "--live", "--tls", "t1", &dst]);
    assert!(out.is_ok(), "migrate: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.dst, "t1"), "running (migrated)", "{}", p.logs());
    assert_eq!(state(&p.src, "t1"), "shut off (migrated)");
    assert_keeps_counting(&p, &serial);
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");

    // Peer to peer, back: the destination daemon (now the source)
    // connects to the other one with its own client certificate.
    let peer_uri = format!("qemu+tls://127.0.0.1:{SRC_PORT}/system");
    let out = p.virsh(
        &dst,
        &["migrate", "--live", "--p2p", "--tls", "t1", &peer_uri],
    );
    assert!(out.is_ok(), "migrate --p2p: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.src, "t1"), "running (migrated)", "{}", p.logs());
    let gone = wait::until(WAIT, || {
        !p.dst.virsh_ok(&["list", "--all", "--name"]).contains("t1")
    });
    assert!(gone, "the transient guest stayed on the other side");
    assert_keeps_counting(&p, &serial);
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");
    assert!(
        p.src.log().contains("CN=daemon-b"),
        "the peer was not let in by its own certificate\n{}",
        p.logs()
    );
}

#[test]
fn a_peer_whose_dn_is_not_allowed_cannot_take_a_p2p_migration() {
    let p = Pair::new("mtlsdn", "stranger");
    let serial = p.start_guest("t2");
    let uuid = p.src.virsh_ok(&["domuuid", "t2"]).trim().to_owned();
    let src = p.uri(SRC_PORT);
    let peer_uri = format!("qemu+tls://127.0.0.1:{DST_PORT}/system");

    let err = p
        .virsh(&src, &["migrate", "--live", "--p2p", "t2", &peer_uri])
        .unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        p.dst.log().contains("not in tls_allowed_dn_list"),
        "{}",
        p.logs()
    );
    // Nothing moved: the guest runs on the source, without a job; the
    // destination has no domain and there is one QEMU.
    assert_eq!(state(&p.src, "t2"), "running (booted)");
    assert!(p.src.virsh_ok(&["domjobinfo", "t2"]).contains("None"));
    assert!(!p.dst.virsh_ok(&["list", "--all", "--name"]).contains("t2"));
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");
    assert_keeps_counting(&p, &serial);

    // The URI's own pkipath takes precedence over the daemon's: with
    // an allowed certificate the same migration goes through.
    let allowed = format!("{peer_uri}?pkipath={}", p.pki.pkipath("peer-a").display());
    let out = p.virsh(&src, &["migrate", "--live", "--p2p", "t2", &allowed]);
    assert!(out.is_ok(), "migrate --p2p: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.dst, "t2"), "running (migrated)", "{}", p.logs());
    assert_keeps_counting(&p, &serial);
}

/// A `--tls` stream whose source holds credentials of a CA the
/// destination does not trust fails before the guest moves: it stays on
/// the source, the destination is clear, and the source's QEMU has its
/// credentials taken back, so a plain migration then goes through.
#[test]
fn a_tls_stream_from_a_qemu_of_another_ca_is_refused_and_the_guest_stays() {
    let p = Pair::with_qemu_creds("mtlsq", "peer-a", "qemu-x");
    let serial = p.start_guest("t3");
    let uuid = p.src.virsh_ok(&["domuuid", "t3"]).trim().to_owned();
    let (src, dst) = (p.uri(SRC_PORT), p.uri(DST_PORT));
    let err = p
        .virsh(&src, &["migrate", "--live", "--tls", "t3", &dst])
        .unwrap_err();
    // The source's reason reaches virsh (the destination's finish says it
    // has nothing to add): QEMU's own TLS verdict.
    assert!(err.contains("certificate"), "{err}");
    let st = state(&p.src, "t3");
    assert!(st.starts_with("running"), "{st}\n{}", p.logs());

    let cleared = wait::until(WAIT, || {
        !p.dst.virsh_ok(&["list", "--all", "--name"]).contains("t3")
    });
    assert!(cleared, "the destination kept the domain\n{}", p.logs());
    assert!(
        wait::until(WAIT, || qemus_of(&uuid).len() == 1),
        "one QEMU of the guest"
    );
    assert_keeps_counting(&p, &serial);

    let out = p.virsh(&src, &["migrate", "--live", "t3", &dst]);
    assert!(out.is_ok(), "plain migrate after it: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.dst, "t3"), "running (migrated)", "{}", p.logs());
    assert_keeps_counting(&p, &serial);
}
