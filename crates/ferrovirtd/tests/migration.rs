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
        let ns = NetNs::new(tag).unwrap();
        Pair {
            src: Daemon::start_in_netns(&ns, &daemon_config(16601, (49152, 49159))),
            dst: Daemon::start_in_netns(&ns, &daemon_config(16602, (49160, 49167))),
            ns,
            shared: tempfile::tempdir().unwrap(),
        }
    }

    /// virsh inside the namespace: stdout, or stderr on failure.
    fn virsh(&self, uri: &str, args: &[&str]) -> Result<String, String> {
        let out = self.virsh_cmd(uri, args).output().expect("run virsh");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn virsh_cmd(&self, uri: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns.name(), "virsh", "-c", uri])
            .args(args);
        c
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
            tail(&read(&serial), 20),
            self.logs()
        );
        serial
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The highest `FERROVIRT-COUNT N` in the serial log (0 = none yet).
fn last_count(serial: &Path) -> u64 {
    read(serial)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FERROVIRT-COUNT "))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// The guest goes on counting past `from` (it runs, and it did not boot
/// again: a rebooted guest would start over from 1 after a new marker).
fn assert_keeps_counting(p: &Pair, serial: &Path, from: u64) {
    let went_on = wait::until(WAIT, || last_count(serial) >= from + 5);
    assert!(
        went_on,
        "the guest stopped counting at {}\n{}\n{}",
        last_count(serial),
        tail(&read(serial), 10),
        p.logs()
    );
    let boots = read(serial).matches("FERROVIRT-GUEST-READY").count();
    assert_eq!(boots, 1, "the guest booted again");
}

fn state(d: &Daemon, name: &str) -> String {
    d.virsh_ok(&["domstate", "--reason", name])
        .trim()
        .to_owned()
}

fn names(d: &Daemon) -> String {
    d.virsh_ok(&["list", "--all", "--name"])
}

/// QEMU processes (their command lines name the domain's uuid).
fn qemus_of(uuid: &str) -> Vec<u32> {
    common::pids_mentioning(uuid)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .contains("qemu-system")
        })
        .collect()
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

    // Back with --suspend: it arrives paused.
    let out = p.virsh(DST_URI, &["migrate", "--live", "--suspend", "m2", SRC_URI]);
    assert!(out.is_ok(), "migrate --suspend: {out:?}\n{}", p.logs());
    assert_eq!(state(&p.src, "m2"), "paused (user)");
    assert_eq!(state(&p.dst, "m2"), "shut off (migrated)");

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
}

#[test]
fn the_migration_tunables_are_read_back() {
    let p = Pair::new("migt");
    p.start_guest("m3");
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
    p.src.virsh_ok(&["migrate-setspeed", name, "1"]);
    let child = p
        .virsh_cmd(SRC_URI, &["migrate", "--live", name, DST_URI])
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
    let dst_root = p.dst.root.path().display().to_string();
    let dst_qemu: Vec<u32> = qemus_of(&uuid)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .contains(&dst_root)
        })
        .collect();
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

#[test]
fn a_migration_whose_client_goes_away_is_undone_on_both_sides() {
    use rpc::protocol::remote::{
        DomainMigrateBegin3ParamsArgs, DomainMigrateBegin3ParamsRet,
        DomainMigratePrepare3ParamsArgs, DomainMigratePrepare3ParamsRet, procedure as p,
    };

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
        let src = bare_client(&p_.src).await;
        let dom = src.lookup_by_name("m8").await.unwrap();
        let begun: DomainMigrateBegin3ParamsRet = src
            .call(
                p::DOMAIN_MIGRATE_BEGIN3_PARAMS,
                &DomainMigrateBegin3ParamsArgs {
                    dom,
                    params: Vec::new(),
                    flags: 1 | 256,
                },
            )
            .await
            .unwrap();
        let dst = bare_client(&p_.dst).await;
        let prepared: DomainMigratePrepare3ParamsRet = dst
            .call(
                p::DOMAIN_MIGRATE_PREPARE3_PARAMS,
                &DomainMigratePrepare3ParamsArgs {
                    params: vec![string_param("destination_xml", &begun.xml)],
                    cookie_in: begun.cookie_out,
                    flags: 1 | 256,
                },
            )
            .await
            .unwrap();
        assert!(prepared.uri_out.is_some());
        src.close().await;
        dst.close().await;
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
