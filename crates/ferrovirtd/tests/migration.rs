//! Live migration between two daemons, driven by the real virsh the way
//! libvirt's clients drive it (begin, prepare, perform, finish, confirm).
//! Both daemons run in a network namespace the test makes, each with its
//! own root and a plain-TCP listener on the namespace's loopback; the
//! guest is the tiny test guest counting on its serial port, so "it keeps
//! running on the destination" is the counter going on, not restarting.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::counting::{self, last_count, qemus_of, serial_log, state};
use common::{Daemon, EventListener, tail};
use testkit::netns::NetNs;
use testkit::wait;

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow more.
const BOOT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(60);

/// Two daemons in one namespace: `src` and `dst`, each reachable over
/// plain TCP at its URI.
struct Pair {
    // Dropped before the namespace.
    src: Daemon,
    dst: Daemon,
    ns: NetNs,
    /// Files shared by both sides (the guest's serial log).
    shared: tempfile::TempDir,
}

const SRC_URI: &str = "qemu+tcp://127.0.0.1:16601/system";
const DST_URI: &str = "qemu+tcp://127.0.0.1:16602/system";

fn daemon_config(port: u16, migration_ports: (u16, u16)) -> String {
    format!(
        "default_network = false\nlisten_tcp = \"127.0.0.1:{port}\"\nauth_tcp = \"none\"\n\
         migration_address = \"127.0.0.1\"\nmigration_port_min = {}\nmigration_port_max = {}\n",
        migration_ports.0, migration_ports.1
    )
}

impl Pair {
    fn new(tag: &str) -> Pair {
        Pair::with_config(tag, "")
    }

    /// Both daemons with `extra` added to their configuration.
    fn with_config(tag: &str, extra: &str) -> Pair {
        let ns = NetNs::new(tag).unwrap();
        let cfg = |port, range| daemon_config(port, range) + extra;
        Pair {
            src: Daemon::start_in_netns(&ns, &cfg(16601, (49152, 49159))),
            dst: Daemon::start_in_netns(&ns, &cfg(16602, (49160, 49167))),
            ns,
            shared: tempfile::tempdir().unwrap(),
        }
    }

    /// virsh inside the namespace: stdout, or stderr on failure.
    fn virsh(&self, uri: &str, args: &[&str]) -> Result<String, String> {
        common::virsh_in_netns_output(&self.ns, uri, args)
    }

    fn virsh_cmd(&self, uri: &str, args: &[&str]) -> Command {
        common::virsh_in_netns(&self.ns, uri, args)
    }

    /// What went wrong, for a failed assertion.
    fn logs(&self) -> String {
        format!(
            "--- source daemon ---\n{}\n--- destination daemon ---\n{}",
            tail(&self.src.log(), 40),
            tail(&self.dst.log(), 40)
        )
    }

    /// The counting guest's XML and its serial log (appended to by the
    /// QEMU of either side).
    fn guest_xml(&self, name: &str) -> (String, PathBuf) {
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
        (xml, serial)
    }

    /// Defines and starts the counting guest on the source; returns once
    /// it counts.
    fn start_guest(&self, name: &str) -> PathBuf {
        let (xml, serial) = self.guest_xml(name);
        let f = self.src.file(&format!("{name}.xml"), &xml);
        self.src.virsh_ok(&["define", &f.to_string_lossy()]);
        self.src.virsh_ok(&["start", name]);
        let counting = wait::until(BOOT, || last_count(&serial) >= 3);
        assert!(
            counting,
            "the guest never counted\n{}\n{}",
            tail(&serial_log(&serial), 20),
            self.logs()
        );
        serial
    }
}

/// The guest goes on counting past `from`, without booting again.
fn assert_keeps_counting(p: &Pair, serial: &Path, from: u64) {
    counting::assert_counts_on(serial, from, WAIT, || p.logs());
}

fn names(d: &Daemon) -> String {
    d.virsh_ok(&["list", "--all", "--name"])
}

#[test]
fn virsh_migrate_live_moves_a_counting_guest_to_the_other_daemon() {
    let p = Pair::new("mig");
    let serial = p.start_guest("m1");
    let uuid = p.src.virsh_ok(&["domuuid", "m1"]).trim().to_owned();
    let mut src_events = EventListener::start(&p.src, &["--event", "lifecycle"], 1);
    let mut dst_events = EventListener::start(&p.dst, &["--event", "lifecycle"], 1);

    let out = p.virsh(SRC_URI, &["migrate", "--live", "m1", DST_URI]);
    assert!(out.is_ok(), "migrate: {out:?}\n{}", p.logs());
    let at = last_count(&serial);

    // The destination runs it, as migrated; the source stopped it.
    assert_eq!(state(&p.dst, "m1"), "running (migrated)", "{}", p.logs());
    assert_eq!(state(&p.src, "m1"), "shut off (migrated)");
    let info = p.dst.virsh_ok(&["dominfo", "m1"]);
    assert!(info.contains("Persistent:     no"), "{info}");
    assert_keeps_counting(&p, &serial, at);
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");

    src_events.expect_line(
        "event 'lifecycle' for domain 'm1': Suspended Migrated",
        WAIT,
    );
    src_events.expect_line("event 'lifecycle' for domain 'm1': Stopped Migrated", WAIT);
    dst_events.expect_line("event 'lifecycle' for domain 'm1': Started Migrated", WAIT);
    dst_events.expect_line("event 'lifecycle' for domain 'm1': Resumed Migrated", WAIT);

    // The source's job statistics name what it was.
    let done = p.src.virsh_ok(&["domjobinfo", "--completed", "m1"]);
    assert!(done.contains("Completed"), "{done}");
    assert!(done.contains("Outgoing migration"), "{done}");
    assert!(done.contains("Total downtime"), "{done}");
    let arrived = p.dst.virsh_ok(&["domjobinfo", "--completed", "m1"]);
    assert!(arrived.contains("Incoming migration"), "{arrived}");
    assert!(arrived.contains("Total downtime"), "{arrived}");

    // And back again: the same guest, still counting.
    let at = last_count(&serial);
    let back = p.virsh(
        DST_URI,
        &[
            "migrate",
            "--live",
            "--auto-converge",
            "--compressed",
            "m1",
            SRC_URI,
        ],
    );
    assert!(back.is_ok(), "migrate back: {back:?}\n{}", p.logs());
    assert_eq!(state(&p.src, "m1"), "running (migrated)");
    assert!(
        !names(&p.dst).contains("m1"),
        "a transient guest left the destination"
    );
    assert_keeps_counting(&p, &serial, at);
}

#[test]
fn persistent_undefinesource_and_offline_migrations_move_the_definition() {
    let p = Pair::new("migp");
    let serial = p.start_guest("m2");
    let out = p.virsh(
        SRC_URI,
        &[
            "migrate",
            "--live",
            "--persistent",
            "--undefinesource",
            "m2",
            DST_URI,
        ],
    );
    assert!(out.is_ok(), "migrate: {out:?}\n{}", p.logs());
    let at = last_count(&serial);
    assert!(!names(&p.src).contains("m2"), "source kept the definition");
    let info = p.dst.virsh_ok(&["dominfo", "m2"]);
    assert!(info.contains("Persistent:     yes"), "{info}");
    assert!(info.contains("State:          running"), "{info}");
    assert_keeps_counting(&p, &serial, at);

    // Back with --suspend, renamed: it arrives paused, as m2b.
    let out = p.virsh(
        DST_URI,
        &[
            "migrate",
            "--live",
            "--suspend",
            "--dname",
            "m2b",
            "m2",
            SRC_URI,
        ],
    );
    assert!(out.is_ok(), "migrate --suspend: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.src, "m2b"), "paused (user)");
    assert!(!names(&p.src).contains("m2\n"), "{}", names(&p.src));
    assert_eq!(state(&p.dst, "m2"), "shut off (migrated)");
    assert_eq!(
        p.src.virsh_ok(&["domuuid", "m2b"]),
        p.dst.virsh_ok(&["domuuid", "m2"])
    );

    // Offline: only the definition moves; the source keeps its own.
    let (xml, _) = p.guest_xml("o1");
    let f = p.src.file("o1.xml", &xml);
    p.src.virsh_ok(&["define", &f.to_string_lossy()]);
    let out = p.virsh(
        SRC_URI,
        &["migrate", "--offline", "--persistent", "o1", DST_URI],
    );
    assert!(out.is_ok(), "offline: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.dst, "o1"), "shut off (unknown)");
    assert!(names(&p.src).contains("o1"));
    // Offline needs --persistent (virsh refuses it before any call).
    assert!(
        p.virsh(SRC_URI, &["migrate", "--offline", "o1", DST_URI])
            .is_err()
    );
    // Renamed: refused while the uuid is defined there as o1, then
    // defined there under the new name, the same uuid.
    let renamed = [
        "migrate",
        "--offline",
        "--persistent",
        "--undefinesource",
        "--dname",
        "o2",
        "o1",
        DST_URI,
    ];
    let err = p.virsh(SRC_URI, &renamed).unwrap_err();
    assert!(err.contains("already defined with uuid"), "{err}");
    assert!(names(&p.src).contains("o1"), "the source kept it");
    p.dst.virsh_ok(&["undefine", "o1"]);
    let out = p.virsh(SRC_URI, &renamed);
    assert!(out.is_ok(), "offline --dname: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.dst, "o2"), "shut off (unknown)");
    assert!(!names(&p.src).contains("o1"), "{}", names(&p.src));
}

#[test]
fn the_migration_tunables_are_read_back() {
    let p = Pair::new("migt");
    p.start_guest("m3");
    // Unthrottled until set, libvirt's figure (not QEMU's 32 MiB/s).
    let speed = p.src.virsh_ok(&["migrate-getspeed", "m3"]);
    assert_eq!(speed.trim(), "8796093022207");
    p.src.virsh_ok(&["migrate-setspeed", "m3", "64"]);
    let speed = p.src.virsh_ok(&["migrate-getspeed", "m3"]);
    assert_eq!(speed.trim(), "64");
    p.src.virsh_ok(&["migrate-setmaxdowntime", "m3", "250"]);
    let down = p.src.virsh_ok(&["migrate-getmaxdowntime", "m3"]);
    assert_eq!(down.trim(), "250");
}

/// Starts a slow migration of `name` (1 MiB/s) in the background and
/// returns once both daemons report it under way.
fn start_slow_migration(p: &Pair, name: &str) -> Child {
    start_slow_migration_with(p, name, 1, &[])
}

/// [`start_slow_migration`] at `mib` MiB/s with `extra` virsh options.
fn start_slow_migration_with(p: &Pair, name: &str, mib: u32, extra: &[&str]) -> Child {
    p.src
        .virsh_ok(&["migrate-setspeed", name, &mib.to_string()]);
    let mut args = vec!["migrate", "--live"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[name, DST_URI]);
    let child = p
        .virsh_cmd(SRC_URI, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn virsh migrate");
    let under_way = wait::until(WAIT, || {
        let job = p.src.virsh_ok(&["domjobinfo", name]);
        job.contains("Outgoing migration") && job.contains("Memory processed")
    });
    assert!(under_way, "the migration never got going\n{}", p.logs());
    let arrived = wait::until(WAIT, || names(&p.dst).contains(name));
    assert!(arrived, "no incoming domain\n{}", p.logs());
    child
}

/// virsh migrate failed; returns what it printed.
fn migrate_failed(child: Child) -> String {
    let out = child.wait_with_output().expect("virsh migrate ends");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the migration succeeded");
    err
}

/// The guest runs on the source alone: the destination has neither a
/// domain nor a QEMU left, and the guest keeps counting.
fn assert_on_source_only(p: &Pair, name: &str, uuid: &str, serial: &Path) {
    assert!(
        state(&p.src, name).starts_with("running"),
        "{}\n{}",
        state(&p.src, name),
        p.logs()
    );
    let cleared = wait::until(WAIT, || !names(&p.dst).contains(name));
    assert!(cleared, "the destination kept the domain\n{}", p.logs());
    let one = wait::until(WAIT, || qemus_of(uuid).len() == 1);
    assert!(
        one,
        "QEMUs of the guest: {:?}\n{}",
        qemus_of(uuid),
        p.logs()
    );
    assert_keeps_counting(p, serial, last_count(serial));
}

#[test]
fn domjobabort_keeps_the_guest_on_the_source_and_clears_the_destination() {
    let p = Pair::new("miga");
    let serial = p.start_guest("m4");
    let uuid = p.src.virsh_ok(&["domuuid", "m4"]).trim().to_owned();
    let child = start_slow_migration(&p, "m4");
    let job = p.src.virsh_ok(&["domjobinfo", "m4"]);
    assert!(job.contains("Memory remaining"), "{job}");
    assert!(job.contains("Memory total"), "{job}");
    let incoming = p.dst.virsh_ok(&["domjobinfo", "m4"]);
    assert!(incoming.contains("Incoming migration"), "{incoming}");
    assert_eq!(state(&p.dst, "m4"), "paused (migrating)");

    p.src.virsh_ok(&["domjobabort", "m4"]);
    let err = migrate_failed(child);
    assert!(err.contains("cancel"), "{err}");
    assert_on_source_only(&p, "m4", &uuid, &serial);
    let done = p.src.virsh_ok(&["domjobinfo", "--completed", "m4"]);
    assert!(done.contains("Cancelled"), "{done}");
}

#[test]
fn a_destination_qemu_killed_mid_migration_leaves_the_guest_on_the_source() {
    let p = Pair::new("migk");
    let serial = p.start_guest("m5");
    let uuid = p.src.virsh_ok(&["domuuid", "m5"]).trim().to_owned();
    let child = start_slow_migration(&p, "m5");
    let dst_qemu = dst_qemus(&p, &uuid);
    assert_eq!(dst_qemu.len(), 1, "the destination's QEMU");
    testkit::processes::signal(dst_qemu[0], nix::sys::signal::Signal::SIGKILL).unwrap();
    migrate_failed(child);
    assert_on_source_only(&p, "m5", &uuid, &serial);
}

#[test]
fn a_source_daemon_killed_mid_migration_comes_back_with_the_guest_on_the_source() {
    let mut p = Pair::new("migr");
    let serial = p.start_guest("m6");
    let uuid = p.src.virsh_ok(&["domuuid", "m6"]).trim().to_owned();
    let child = start_slow_migration(&p, "m6");
    p.src.kill();
    migrate_failed(child);
    p.src.spawn();
    assert_on_source_only(&p, "m6", &uuid, &serial);
    let last = p.src.virsh_ok(&["domjobinfo", "m6"]);
    assert!(last.contains("None"), "no job left: {last}");
}

#[test]
fn virsh_migrate_p2p_lets_the_source_daemon_drive_the_destination() {
    let p = Pair::new("migq");
    let serial = p.start_guest("m7");
    let uuid = p.src.virsh_ok(&["domuuid", "m7"]).trim().to_owned();
    let mut dst_events = EventListener::start(&p.dst, &["--event", "lifecycle"], 1);
    let out = p.virsh(
        SRC_URI,
        &["migrate", "--live", "--p2p", "--persistent", "m7", DST_URI],
    );
    assert!(out.is_ok(), "migrate --p2p: {out:?}\n{}", p.logs());
    let at = last_count(&serial);
    assert_eq!(state(&p.dst, "m7"), "running (migrated)", "{}", p.logs());
    assert_eq!(state(&p.src, "m7"), "shut off (migrated)");
    let info = p.dst.virsh_ok(&["dominfo", "m7"]);
    assert!(info.contains("Persistent:     yes"), "{info}");
    assert_keeps_counting(&p, &serial, at);
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");
    dst_events.expect_line("event 'lifecycle' for domain 'm7': Started Migrated", WAIT);
    dst_events.expect_line("event 'lifecycle' for domain 'm7': Resumed Migrated", WAIT);

    // A peer that is not there: the guest stays where it is.
    let err = p
        .virsh(
            DST_URI,
            &[
                "migrate",
                "--live",
                "--p2p",
                "m7",
                "qemu+tcp://127.0.0.1:16699/system",
            ],
        )
        .unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");
    assert_eq!(state(&p.dst, "m7"), "running (migrated)");
    assert!(p.dst.virsh_ok(&["domjobinfo", "m7"]).contains("None"));

    // Back, renamed: refused while the source still defines the guest's
    // uuid as m7, then taken once that definition is gone.
    let back = [
        "migrate",
        "--live",
        "--p2p",
        "--persistent",
        "--dname",
        "m7b",
        "m7",
        SRC_URI,
    ];
    let err = p.virsh(DST_URI, &back).unwrap_err();
    assert!(err.contains("already defined with uuid"), "{err}");
    assert_eq!(state(&p.dst, "m7"), "running (migrated)");
    p.src.virsh_ok(&["undefine", "m7"]);
    let at = last_count(&serial);
    let out = p.virsh(DST_URI, &back);
    assert!(out.is_ok(), "migrate --p2p --dname: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.src, "m7b"), "running (migrated)", "{}", p.logs());
    let info = p.src.virsh_ok(&["dominfo", "m7b"]);
    assert!(info.contains("Persistent:     yes"), "{info}");
    assert_eq!(state(&p.dst, "m7"), "shut off (migrated)");
    assert_keeps_counting(&p, &serial, at);
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");
}

/// A bare protocol client on a daemon's UNIX socket, for a phase a real
/// client would only send as part of a whole migration.
async fn bare_client(d: &Daemon) -> rpc::Client {
    let c = rpc::Client::connect(d.sock()).await.unwrap();
    c.open(Some("qemu:///system"), 0).await.unwrap();
    c
}

fn string_param(field: &str, v: &str) -> rpc::protocol::remote::TypedParam {
    rpc::protocol::remote::TypedParam {
        field: field.into(),
        value: rpc::protocol::remote::TypedParamValue::String(v.into()),
    }
}

/// A migration a test drives by hand through the first two phases:
/// begin on the source, prepare on the destination, each over its own
/// bare connection.
struct HandDriven {
    src: rpc::Client,
    dst: rpc::Client,
    dom: rpc::protocol::remote::NonnullDomain,
    /// The `destination_xml` parameter later phases pass on.
    xml: rpc::protocol::remote::TypedParam,
    prepared: rpc::protocol::remote::DomainMigratePrepare3ParamsRet,
}

async fn begin_and_prepare(p: &Pair, name: &str, flags: u32) -> HandDriven {
    use rpc::protocol::remote::{
        DomainMigrateBegin3ParamsArgs, DomainMigrateBegin3ParamsRet,
        DomainMigratePrepare3ParamsArgs, procedure as proc_,
    };
    let src = bare_client(&p.src).await;
    let dom = src.lookup_by_name(name).await.unwrap();
    let begun: DomainMigrateBegin3ParamsRet = src
        .call(
            proc_::DOMAIN_MIGRATE_BEGIN3_PARAMS,
            &DomainMigrateBegin3ParamsArgs {
                dom: dom.clone(),
                params: Vec::new(),
                flags,
            },
        )
        .await
        .unwrap();
    let xml = string_param("destination_xml", &begun.xml);
    let dst = bare_client(&p.dst).await;
    let prepared = dst
        .call(
            proc_::DOMAIN_MIGRATE_PREPARE3_PARAMS,
            &DomainMigratePrepare3ParamsArgs {
                params: vec![xml.clone()],
                cookie_in: begun.cookie_out,
                flags,
            },
        )
        .await
        .unwrap();
    HandDriven {
        src,
        dst,
        dom,
        xml,
        prepared,
    }
}

#[test]
fn a_migration_whose_client_goes_away_is_undone_on_both_sides() {
    let p_ = Pair::new("migc");
    let serial = p_.start_guest("m8");
    let uuid = p_.src.virsh_ok(&["domuuid", "m8"]).trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Begin on the source, prepare on the destination, then the client
    // is gone before perform.
    rt.block_on(async {
        let h = begin_and_prepare(&p_, "m8", 1 | 256).await;
        assert!(h.prepared.uri_out.is_some());
        h.src.close().await;
        h.dst.close().await;
    });
    assert_on_source_only(&p_, "m8", &uuid, &serial);
    // The source's job was given back: the guest migrates again.
    let job_gone = wait::until(WAIT, || {
        p_.src.virsh_ok(&["domjobinfo", "m8"]).contains("None")
    });
    assert!(job_gone, "{}", p_.logs());
    let out = p_.virsh(SRC_URI, &["migrate", "--live", "m8", DST_URI]);
    assert!(
        out.is_ok(),
        "migrate after an abandoned one: {out:?}\n{}",
        p_.logs()
    );
    assert_eq!(state(&p_.dst, "m8"), "running (migrated)");
}

#[test]
fn a_migration_raises_iteration_and_job_completed_events() {
    let p = Pair::new("mige");
    p.start_guest("m9");
    let mut src_events = EventListener::start(&p.src, &["--event", "migration-iteration"], 1);
    let mut dst_events = EventListener::start(&p.dst, &["--event", "job-completed"], 1);
    let out = p.virsh(SRC_URI, &["migrate", "--live", "m9", DST_URI]);
    assert!(out.is_ok(), "migrate: {out:?}\n{}", p.logs());
    src_events.expect_prefix("event 'migration-iteration' for domain 'm9'", WAIT);
    dst_events.expect_prefix("event 'job-completed' for domain 'm9'", WAIT);
    let printed = dst_events.stop();
    assert!(printed.contains("downtime"), "{printed}");
}

/// A qcow2 image of `mib` MiB whose every byte is known (a pattern that
/// differs from block to block), so copies can be compared.
fn patterned_image(path: &Path, mib: usize) {
    let raw = path.with_extension("raw");
    let data: Vec<u8> = (0..mib * 1024 * 1024)
        .map(|i| u8::try_from((i / 512 + i) % 251).unwrap())
        .collect();
    std::fs::write(&raw, data).unwrap();
    let out = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(raw).unwrap();
}

/// Both images hold the same guest-visible bytes.
fn same_content(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img")
        .args(["compare", "-q", "-U"])
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

/// The counting guest with qcow2 disks at `disks` (vda, vdb, ...).
fn with_disks(xml: &str, disks: &[&Path]) -> String {
    let devs: String = disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
                 <source file='{}'/><target dev='vd{}' bus='virtio'/></disk>\n",
                d.display(),
                char::from(b'a' + u8::try_from(i).unwrap())
            )
        })
        .collect();
    xml.replace("  </devices>", &format!("{devs}  </devices>"))
}

/// `name`'s live XML on `d` with its images in `to` instead of `from`.
fn moved(d: &Daemon, name: &str, from: &Path, to: &Path) -> String {
    d.virsh_ok(&["dumpxml", name])
        .replace(&*from.to_string_lossy(), &to.to_string_lossy())
}

impl Pair {
    /// Defines and starts `xml`'s guest on the source; returns once it
    /// counts.
    fn start_xml(&self, name: &str, xml: &str, serial: &Path) {
        let f = self.src.file(&format!("{name}.xml"), xml);
        self.src.virsh_ok(&["define", &f.to_string_lossy()]);
        self.src.virsh_ok(&["start", name]);
        let counting = wait::until(BOOT, || last_count(serial) >= 3);
        assert!(counting, "the guest never counted\n{}", self.logs());
    }

    /// Two directories standing for the hosts' own storage.
    fn disk_dirs(&self) -> (PathBuf, PathBuf) {
        let (a, b) = (
            self.shared.path().join("src"),
            self.shared.path().join("dst"),
        );
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        (a, b)
    }

    /// Guest `name` with one patterned qcow2 disk of `mib` MiB in the
    /// source's storage, running on the source, and the definition that
    /// moves that disk into the destination's storage.
    fn start_with_disk(&self, name: &str, mib: usize) -> DiskGuest {
        let (src_dir, dst_dir) = self.disk_dirs();
        let (src_img, dst_img) = (src_dir.join("d.qcow2"), dst_dir.join("d.qcow2"));
        patterned_image(&src_img, mib);
        let (xml, serial) = self.guest_xml(name);
        self.start_xml(name, &with_disks(&xml, &[&src_img]), &serial);
        let uuid = self.src.virsh_ok(&["domuuid", name]).trim().to_owned();
        let moved_xml = moved(&self.src, name, &src_dir, &dst_dir);
        let dst_xml = self.src.file(&format!("{name}-dst.xml"), &moved_xml);
        DiskGuest {
            src_dir,
            dst_dir,
            src_img,
            dst_img,
            serial,
            uuid,
            dst_xml,
        }
    }
}

/// What [`Pair::start_with_disk`] made.
struct DiskGuest {
    src_dir: PathBuf,
    dst_dir: PathBuf,
    src_img: PathBuf,
    dst_img: PathBuf,
    serial: PathBuf,
    uuid: String,
    /// The definition with the disk in the destination's storage.
    dst_xml: PathBuf,
}

#[test]
fn copy_storage_moves_the_disks_content_with_the_guest() {
    let p = Pair::new("migs");
    // The destination keeps the image in its own directory.
    let DiskGuest {
        src_dir,
        dst_dir,
        src_img,
        dst_img,
        serial,
        dst_xml,
        ..
    } = p.start_with_disk("m10", 24);
    assert!(!dst_img.exists());

    let out = p.virsh(
        SRC_URI,
        &[
            "migrate",
            "--live",
            "--copy-storage-all",
            "--xml",
            &dst_xml.to_string_lossy(),
            "m10",
            DST_URI,
        ],
    );
    assert!(out.is_ok(), "migrate: {out:?}\n{}", p.logs());
    let at = last_count(&serial);
    assert_eq!(state(&p.dst, "m10"), "running (migrated)", "{}", p.logs());
    assert_eq!(state(&p.src, "m10"), "shut off (migrated)");
    assert!(p.src.virsh_ok(&["domjobinfo", "m10"]).contains("None"));
    let blk = p.dst.virsh_ok(&["domblklist", "m10"]);
    assert!(blk.contains(&*dst_img.to_string_lossy()), "{blk}");
    assert_keeps_counting(&p, &serial, at);
    assert!(same_content(&src_img, &dst_img), "the copy differs");

    // Back, copying the top image only onto the source's own image.
    let back_xml = p
        .dst
        .file("m10-back.xml", &moved(&p.dst, "m10", &dst_dir, &src_dir));
    let at = last_count(&serial);
    let out = p.virsh(
        DST_URI,
        &[
            "migrate",
            "--live",
            "--copy-storage-inc",
            "--xml",
            &back_xml.to_string_lossy(),
            "m10",
            SRC_URI,
        ],
    );
    assert!(out.is_ok(), "migrate back: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.src, "m10"), "running (migrated)", "{}", p.logs());
    assert_keeps_counting(&p, &serial, at);
    p.src.virsh_ok(&["destroy", "m10"]);
    assert!(same_content(&src_img, &dst_img), "the copy back differs");
}

/// The QEMUs of `uuid` the destination daemon started.
fn dst_qemus(p: &Pair, uuid: &str) -> Vec<u32> {
    // Under the destination's root by its command line or, run as QEMU's
    // own user, by the pidfile its environment names.
    let under_dst = common::pids_mentioning(&p.dst.root.path().display().to_string());
    qemus_of(uuid)
        .into_iter()
        .filter(|pid| under_dst.contains(pid))
        .collect()
}

/// Starts `virsh migrate --live --copy-storage-all EXTRA` of `name` onto
/// `dst_xml` in the background.
fn start_copy(p: &Pair, name: &str, dst_xml: &Path, extra: &[&str]) -> Child {
    let xml = dst_xml.to_string_lossy();
    let mut args = vec!["migrate", "--live", "--copy-storage-all", "--xml", &xml];
    args.extend(extra);
    args.extend([name, DST_URI]);
    p.virsh_cmd(SRC_URI, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts migrating `name` with `--copy-storage-all` at 1 MiB/s (the
/// disk copies take a while) onto `dst_xml`; returns once the destination
/// made `made` and runs its QEMU and the source's job is under way.
fn start_slow_copy(p: &Pair, name: &str, uuid: &str, dst_xml: &Path, made: &Path) -> Child {
    let child = start_copy(p, name, dst_xml, &["--bandwidth", "1"]);
    let copying = wait::until(WAIT, || {
        made.exists()
            && dst_qemus(p, uuid).len() == 1
            && p.src
                .virsh_ok(&["domjobinfo", name])
                .contains("Outgoing migration")
    });
    assert!(copying, "the disk copy never got going\n{}", p.logs());
    child
}

#[test]
fn a_failed_storage_copy_removes_only_the_images_the_destination_made() {
    let p = Pair::new("migf");
    let (src_dir, dst_dir) = p.disk_dirs();
    let src = [src_dir.join("a.qcow2"), src_dir.join("b.qcow2")];
    let dst = [dst_dir.join("a.qcow2"), dst_dir.join("b.qcow2")];
    for img in &src {
        patterned_image(img, 16);
    }
    // The destination has the second image already: it must stay.
    std::fs::copy(&src[1], &dst[1]).unwrap();
    let (xml, serial) = p.guest_xml("m11");
    p.start_xml("m11", &with_disks(&xml, &[&src[0], &src[1]]), &serial);
    let uuid = p.src.virsh_ok(&["domuuid", "m11"]).trim().to_owned();
    let dst_xml = p
        .src
        .file("m11-dst.xml", &moved(&p.src, "m11", &src_dir, &dst_dir));
    let left_as_before = || {
        let removed = wait::until(WAIT, || !dst[0].exists());
        assert!(
            removed,
            "the image the destination made is left\n{}",
            p.logs()
        );
        assert!(dst[1].exists(), "an image the destination had was removed");
        assert!(same_content(&src[1], &dst[1]));
        assert!(p.src.virsh_ok(&["domjobinfo", "m11"]).contains("None"));
    };

    let child = start_slow_copy(&p, "m11", &uuid, &dst_xml, &dst[0]);
    // domjobinfo shows the disk copies (virsh calls them "File").
    let shown = wait::until(WAIT, || {
        let job = p.src.virsh_ok(&["domjobinfo", "m11"]);
        job.contains("File total") && job.contains("File processed")
    });
    assert!(
        shown,
        "{}\n{}",
        p.src.virsh_ok(&["domjobinfo", "m11"]),
        p.logs()
    );
    p.src.virsh_ok(&["domjobabort", "m11"]);
    let err = migrate_failed(child);
    assert!(err.contains("cancel"), "{err}");
    assert_on_source_only(&p, "m11", &uuid, &serial);
    left_as_before();

    let child = start_slow_copy(&p, "m11", &uuid, &dst_xml, &dst[0]);
    let pid = dst_qemus(&p, &uuid)[0];
    testkit::processes::signal(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    migrate_failed(child);
    assert_on_source_only(&p, "m11", &uuid, &serial);
    left_as_before();
}

#[test]
fn a_destination_daemon_killed_mid_copy_comes_back_with_nothing_left() {
    let mut p = Pair::new("migd");
    let DiskGuest {
        dst_img,
        serial,
        uuid,
        dst_xml,
        ..
    } = p.start_with_disk("m12", 16);

    let child = start_slow_copy(&p, "m12", &uuid, &dst_xml, &dst_img);
    p.dst.kill();
    // Back at once: it kills the incoming QEMU the killed daemon left,
    // which fails the source's disk copy (left alone, that QEMU would
    // take the whole slow migration first).
    p.dst.spawn();
    migrate_failed(child);
    assert_destination_clear(&p, "m12", &uuid, &dst_img);
    assert_on_source_only(&p, "m12", &uuid, &serial);
    let job = wait::until(WAIT, || {
        p.src.virsh_ok(&["domjobinfo", "m12"]).contains("None")
    });
    assert!(job, "{}", p.logs());
}

/// The destination's start of the incoming QEMU stops once it completed
/// and was recorded (QEMU listens for the stream; prepare has not
/// returned), and the daemon is SIGKILLed exactly there: back, it must
/// know that QEMU for an unfinished incoming migration and kill it, not
/// keep it as a paused guest.
#[test]
fn a_destination_daemon_killed_once_its_qemu_listens_comes_back_with_nothing_left() {
    let mut p = Pair::new("migl");
    let DiskGuest {
        dst_img,
        serial,
        uuid,
        dst_xml,
        ..
    } = p.start_with_disk("m14", 4);
    let marker = p.dst.root.path().join("start-paused");
    p.dst
        .spawn_with_env(&[("FERROVIRT_PAUSE_AFTER_START", marker.as_os_str())]);
    let child = start_copy(&p, "m14", &dst_xml, &[]);
    let mut line = String::new();
    let paused = wait::until(WAIT, || {
        line = std::fs::read_to_string(&marker).unwrap_or_default();
        line.ends_with('\n')
    });
    assert!(paused, "the incoming start never paused\n{}", p.logs());
    let (who, pid) = line.trim().split_once(' ').expect("NAME PID");
    assert_eq!(who, "m14");
    let pid: u32 = pid.parse().expect("pid");
    assert_eq!(dst_qemus(&p, &uuid), [pid]);
    assert!(dst_img.exists(), "the copy's image was not made first");

    p.dst.kill();
    p.dst.spawn();
    migrate_failed(child);
    assert_destination_clear(&p, "m14", &uuid, &dst_img);
    assert_on_source_only(&p, "m14", &uuid, &serial);
}

/// The destination ends with no QEMU of the guest, no domain `name` and
/// no copy's image `img`.
fn assert_destination_clear(p: &Pair, name: &str, uuid: &str, img: &Path) {
    let cleared = wait::until(WAIT, || {
        dst_qemus(p, uuid).is_empty() && !img.exists() && !names(&p.dst).contains(name)
    });
    assert!(
        cleared,
        "left on the destination: QEMUs {:?}, image {}, domains {}\n{}",
        dst_qemus(p, uuid),
        img.exists(),
        names(&p.dst),
        p.logs()
    );
}

/// Inside the test's namespace: nothing reaches the destination's
/// migration ports any more (the daemons' own ports stay open).
fn cut_migration_ports(p: &Pair) {
    let rules = "table inet cut {\n chain out {\n  type filter hook output priority 0;\n  \
                 tcp dport 49160-49167 drop\n  tcp sport 49160-49167 drop\n }\n}\n";
    let mut nft = Command::new("ip")
        .args(["netns", "exec", p.ns.name(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success(), "nft refused the rules");
}

#[test]
fn a_network_cut_mid_migration_fails_it_within_the_stall_deadline() {
    let p = Pair::with_config("mign", "migration_stall_timeout_secs = 4\n");
    let serial = p.start_guest("m13");
    let uuid = p.src.virsh_ok(&["domuuid", "m13"]).trim().to_owned();
    let child = start_slow_migration(&p, "m13");
    cut_migration_ports(&p);
    let cut_at = std::time::Instant::now();
    let err = migrate_failed(child);
    let took = cut_at.elapsed();
    // The source's reason is what virsh shows.
    assert!(err.contains("sent nothing"), "{err}");
    assert!(took < Duration::from_secs(30), "failed only after {took:?}");
    assert_on_source_only(&p, "m13", &uuid, &serial);
    let done = p.src.virsh_ok(&["domjobinfo", "--completed", "m13"]);
    assert!(done.contains("Failed"), "{done}");
}

#[test]
fn sides_never_told_their_next_phase_clean_up_after_their_deadline() {
    let p_ = Pair::with_config("migw", "migration_finish_timeout_secs = 3\n");
    let serial = p_.start_guest("m14");
    let uuid = p_.src.virsh_ok(&["domuuid", "m14"]).trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = begin_and_prepare(&p_, "m14", 1).await;
        assert_eq!(dst_qemus(&p_, &uuid).len(), 1, "the incoming QEMU");
        // The client stays connected and never calls finish: the
        // destination gives up on its own.
        let cleared = wait::until(WAIT, || {
            dst_qemus(&p_, &uuid).is_empty() && !names(&p_.dst).contains("m14")
        });
        assert!(cleared, "the destination still waits\n{}", p_.logs());
        // Nor does the source wait for a perform forever: its job ends.
        let src_free = wait::until(WAIT, || {
            p_.src.virsh_ok(&["domjobinfo", "m14"]).contains("None")
        });
        assert!(src_free, "the source still holds its job\n{}", p_.logs());
        h.src.close().await;
        h.dst.close().await;
    });
    assert_on_source_only(&p_, "m14", &uuid, &serial);
}

#[test]
fn a_source_daemon_killed_mid_copy_leaves_no_copy_behind() {
    let mut p = Pair::new("migo");
    let DiskGuest {
        src_img,
        dst_img,
        serial,
        uuid,
        dst_xml,
        ..
    } = p.start_with_disk("m15", 16);

    let child = start_slow_copy(&p, "m15", &uuid, &dst_xml, &dst_img);
    p.src.kill();
    migrate_failed(child);
    p.src.spawn();
    assert_on_source_only(&p, "m15", &uuid, &serial);
    let removed = wait::until(WAIT, || !dst_img.exists());
    assert!(removed, "the destination kept its image\n{}", p.logs());
    let job = wait::until(WAIT, || {
        p.src.virsh_ok(&["domjobinfo", "m15"]).contains("None")
    });
    assert!(job, "{}", p.logs());

    // Nothing of the copy is left in the source's QEMU: the same copy
    // (the same job and node names) runs again, to the end.
    let out = p.virsh(
        SRC_URI,
        &[
            "migrate",
            "--live",
            "--copy-storage-all",
            "--xml",
            &dst_xml.to_string_lossy(),
            "m15",
            DST_URI,
        ],
    );
    assert!(out.is_ok(), "migrate again: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.dst, "m15"), "running (migrated)");
    assert!(same_content(&src_img, &dst_img), "the copy differs");
}

/// virsh's `--timeout N --timeout-suspend` suspends the guest once the
/// migration has run N seconds; the migration then completes with the
/// guest paused, and it runs again on the destination.
#[test]
fn a_migration_past_its_timeout_suspends_the_guest_and_completes() {
    let p = Pair::new("migs");
    let serial = p.start_guest("m13");
    let mut src_events = EventListener::start(&p.src, &["--event", "lifecycle"], 1);
    let child = start_slow_migration_with(&p, "m13", 2, &["--timeout", "1", "--timeout-suspend"]);
    // Not started with --postcopy: it cannot switch.
    let err = p.virsh(SRC_URI, &["migrate-postcopy", "m13"]).unwrap_err();
    assert!(err.contains("--postcopy"), "{err}");
    // virsh's own timer suspended it while the job runs.
    src_events.expect_line("event 'lifecycle' for domain 'm13': Suspended Paused", WAIT);
    let at = last_count(&serial);
    let out = child.wait_with_output().expect("virsh migrate ends");
    assert!(
        out.status.success(),
        "migrate --timeout: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.logs()
    );
    assert_eq!(state(&p.src, "m13"), "shut off (migrated)");
    assert_eq!(state(&p.dst, "m13"), "running (migrated)", "{}", p.logs());
    assert_keeps_counting(&p, &serial, at);
}

/// `--postcopy` with `virsh migrate-postcopy`: the guest moves to the
/// destination at the switch and pulls the rest of its memory from
/// there. QEMU 7.2 needs userfaultfd for it, which an unprivileged QEMU
/// may not use on a host with `vm.unprivileged_userfaultfd = 0`, so both
/// daemons run QEMU as root here.
#[test]
fn a_postcopy_migration_switches_on_request_and_completes() {
    let p = Pair::with_config("migpc", "user = \"root\"\n");
    let serial = p.start_guest("m14");
    let uuid = p.src.virsh_ok(&["domuuid", "m14"]).trim().to_owned();
    // Nothing to switch yet.
    let err = p.virsh(SRC_URI, &["migrate-postcopy", "m14"]).unwrap_err();
    assert!(err.contains("outgoing migration"), "{err}");
    let mut src_events = EventListener::start(&p.src, &["--event", "lifecycle"], 1);
    let mut dst_events = EventListener::start(&p.dst, &["--event", "lifecycle"], 1);
    let child = start_slow_migration_with(&p, "m14", 1, &["--postcopy"]);
    p.src.virsh_ok(&["migrate-postcopy", "m14"]);
    let out = child.wait_with_output().expect("virsh migrate ends");
    assert!(
        out.status.success(),
        "migrate --postcopy: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.logs()
    );
    src_events.expect_line(
        "event 'lifecycle' for domain 'm14': Suspended Post-copy",
        WAIT,
    );
    dst_events.expect_line(
        "event 'lifecycle' for domain 'm14': Resumed Post-copy",
        WAIT,
    );
    dst_events.expect_line("event 'lifecycle' for domain 'm14': Resumed Migrated", WAIT);
    assert_eq!(state(&p.src, "m14"), "shut off (migrated)");
    assert_eq!(state(&p.dst, "m14"), "running (migrated)", "{}", p.logs());
    // QEMU reports the downtime only once the last page is through, well
    // after the switch; the source's record still has it.
    let done = p.src.virsh_ok(&["domjobinfo", "--completed", "m14"]);
    assert!(done.contains("Total downtime"), "{done}");
    assert_keeps_counting(&p, &serial, last_count(&serial));
    assert_eq!(qemus_of(&uuid).len(), 1, "one QEMU of the guest");
}

/// A destination QEMU killed in post-copy: the guest cannot resume on the
/// source (the destination ran it; its memory was split), so the source
/// keeps it paused "post-copy failed" with its QEMU, as libvirt does, for
/// the administrator to settle; nothing is left on the destination.
#[test]
fn a_postcopy_that_breaks_off_leaves_the_source_paused_not_resumed() {
    let p = Pair::with_config("migpf", "user = \"root\"\n");
    p.start_guest("m15");
    let uuid = p.src.virsh_ok(&["domuuid", "m15"]).trim().to_owned();
    let child =
        start_slow_migration_with(&p, "m15", 1, &["--postcopy", "--postcopy-bandwidth", "1"]);
    p.src.virsh_ok(&["migrate-postcopy", "m15"]);
    let switched = wait::until(WAIT, || {
        let out = p.dst.virsh(&["domstate", "--reason", "m15"]);
        String::from_utf8_lossy(&out.stdout).contains("running (post-copy)")
    });
    assert!(switched, "the destination never ran it\n{}", p.logs());
    let dst_qemu = dst_qemus(&p, &uuid);
    assert_eq!(dst_qemu.len(), 1, "the destination's QEMU");
    testkit::processes::signal(dst_qemu[0], nix::sys::signal::Signal::SIGKILL).unwrap();
    migrate_failed(child);
    let failed = wait::until(WAIT, || state(&p.src, "m15") == "paused (post-copy failed)");
    assert!(failed, "source: {}\n{}", state(&p.src, "m15"), p.logs());
    assert_eq!(qemus_of(&uuid).len(), 1, "the source's QEMU stays");
    let cleared = wait::until(WAIT, || !names(&p.dst).contains("m15"));
    assert!(cleared, "the destination kept the domain\n{}", p.logs());
    // Settled by hand: nothing is left anywhere.
    p.src.virsh_ok(&["destroy", "m15"]);
    assert!(wait::until(WAIT, || qemus_of(&uuid).is_empty()));
}

/// A network cut after the switch to post-copy, while the source waits
/// for confirm and its client, still connected, has not called finish
/// yet: the source sees its stream stall and leaves the guest paused
/// "post-copy failed" with its job ended, long before QEMU's TCP
/// connection would time out, without waiting for its client.
#[test]
fn a_postcopy_stream_cut_while_the_source_waits_fails_there_on_the_stall_deadline() {
    use rpc::protocol::remote::{
        DomainMigratePerform3ParamsArgs, DomainMigratePerform3ParamsRet, TypedParam,
        TypedParamValue, procedure as p,
    };

    let p_ = Pair::with_config(
        "migpc2",
        "user = \"root\"\nmigration_stall_timeout_secs = 4\n",
    );
    p_.start_guest("m18");
    let uuid = p_.src.virsh_ok(&["domuuid", "m18"]).trim().to_owned();
    p_.src.virsh_ok(&["migrate-setspeed", "m18", "1"]);
    // VIR_MIGRATE_LIVE | CHANGE_PROTECTION | POSTCOPY.
    let flags = 1 | 256 | 32768;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Perform returns at the switch, which virsh asks for once the
    // stream is under way.
    let (src, dst) = std::thread::scope(|sc| {
        sc.spawn(|| {
            let under_way = wait::until(WAIT, || {
                p_.src
                    .virsh_ok(&["domjobinfo", "m18"])
                    .contains("Memory processed")
            });
            assert!(under_way, "the migration never got going\n{}", p_.logs());
            p_.src.virsh_ok(&["migrate-postcopy", "m18"]);
        });
        rt.block_on(async {
            let HandDriven {
                src,
                dst,
                dom,
                xml,
                prepared,
            } = begin_and_prepare(&p_, "m18", flags).await;
            let uri = prepared.uri_out.unwrap();
            // Post-copy at 1 MiB/s too: the stream outlasts the cut below.
            let slow = TypedParam {
                field: "bandwidth.postcopy".into(),
                value: TypedParamValue::ULLong(1),
            };
            let args = DomainMigratePerform3ParamsArgs {
                dom,
                dconnuri: None,
                params: vec![xml, string_param("migrate_uri", &uri), slow],
                cookie_in: prepared.cookie_out,
                flags,
            };
            let _: DomainMigratePerform3ParamsRet = src
                .call(p::DOMAIN_MIGRATE_PERFORM3_PARAMS, &args)
                .await
                .unwrap();
            (src, dst)
        })
    });
    assert_eq!(state(&p_.src, "m18"), "paused (post-copy)");
    cut_migration_ports(&p_);
    let cut_at = std::time::Instant::now();
    let failed = wait::until(WAIT, || {
        state(&p_.src, "m18") == "paused (post-copy failed)"
    });
    let took = cut_at.elapsed();
    assert!(failed, "source: {}\n{}", state(&p_.src, "m18"), p_.logs());
    assert!(took < Duration::from_secs(40), "failed only after {took:?}");
    rt.block_on(async {
        src.close().await;
        dst.close().await;
    });
    assert!(p_.src.virsh_ok(&["domjobinfo", "m18"]).contains("None"));
    let done = p_.src.virsh_ok(&["domjobinfo", "--completed", "m18"]);
    assert!(done.contains("Failed"), "{done}\n{}", p_.logs());
    assert!(
        qemus_of(&uuid)
            .iter()
            .any(|pid| !dst_qemus(&p_, &uuid).contains(pid)),
        "the source's QEMU stays"
    );
}

/// A client that finishes the migration on the destination and is gone
/// before confirm: the guest runs there, so the source must not resume
/// it; it stays paused with its QEMU, for `destroy` to settle, and only
/// one copy of the guest ever runs.
#[test]
fn a_client_gone_after_finish_leaves_the_source_paused_not_resumed() {
    use rpc::protocol::remote::{
        DomainMigrateFinish3ParamsArgs, DomainMigrateFinish3ParamsRet,
        DomainMigratePerform3ParamsArgs, DomainMigratePerform3ParamsRet, procedure as p,
    };

    let p_ = Pair::new("migf");
    let serial = p_.start_guest("m16");
    let uuid = p_.src.virsh_ok(&["domuuid", "m16"]).trim().to_owned();
    let flags = 1 | 256;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let HandDriven {
            src,
            dst,
            dom,
            xml,
            prepared,
        } = begin_and_prepare(&p_, "m16", flags).await;
        let uri = prepared.uri_out.unwrap();
        let performed: DomainMigratePerform3ParamsRet = src
            .call(
                p::DOMAIN_MIGRATE_PERFORM3_PARAMS,
                &DomainMigratePerform3ParamsArgs {
                    dom,
                    dconnuri: None,
                    params: vec![xml.clone(), string_param("migrate_uri", &uri)],
                    cookie_in: prepared.cookie_out,
                    flags,
                },
            )
            .await
            .unwrap();
        let _: DomainMigrateFinish3ParamsRet = dst
            .call(
                p::DOMAIN_MIGRATE_FINISH3_PARAMS,
                &DomainMigrateFinish3ParamsArgs {
                    params: vec![xml],
                    cookie_in: performed.cookie_out,
                    flags,
                    cancelled: 0,
                },
            )
            .await
            .unwrap();
        // Gone before confirm.
        src.close().await;
        dst.close().await;
    });
    assert_eq!(state(&p_.dst, "m16"), "running (migrated)", "{}", p_.logs());
    let job_gone = wait::until(WAIT, || {
        p_.src.virsh_ok(&["domjobinfo", "m16"]).contains("None")
    });
    assert!(job_gone, "{}", p_.logs());
    assert_eq!(state(&p_.src, "m16"), "paused (migrating)", "{}", p_.logs());
    assert_keeps_counting(&p_, &serial, last_count(&serial));
    assert_eq!(
        qemus_of(&uuid).len(),
        2,
        "the paused source and the destination"
    );
    p_.src.virsh_ok(&["destroy", "m16"]);
    assert!(wait::until(WAIT, || qemus_of(&uuid).len() == 1));
}

/// With QEMU as its own unprivileged user (the default), post-copy is
/// possible only where the host lets such processes use userfaultfd.
/// Where it does not, the destination refuses at prepare, saying why, and
/// the guest stays on the source with nothing left behind.
#[test]
fn postcopy_with_an_unprivileged_qemu_follows_the_hosts_userfaultfd_setting() {
    let p = Pair::new("migpu");
    let serial = p.start_guest("m17");
    let uuid = p.src.virsh_ok(&["domuuid", "m17"]).trim().to_owned();
    let allowed = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
        .is_ok_and(|v| v.trim() == "1");
    let out = p.virsh(
        SRC_URI,
        &["migrate", "--live", "--postcopy", "m17", DST_URI],
    );
    if allowed {
        assert!(out.is_ok(), "migrate --postcopy: {out:?}\n{}", p.logs());
        assert_eq!(state(&p.dst, "m17"), "running (migrated)");
        return;
    }
    let err = out.unwrap_err();
    assert!(err.contains("userfaultfd"), "{err}");
    assert_on_source_only(&p, "m17", &uuid, &serial);
}
