//! QEMU runs as the configured unprivileged user (`user`, `group`): the
//! exec helper switches credentials after building QEMU's mount namespace,
//! QEMU gets its monitor as an inherited listening socket and its pidfile
//! from the helper, so it needs no access to the daemon's directories.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Daemon, define_start, pids_mentioning, real_domain_xml, tail};
use testkit::account::{QEMU_USER, qemu_user};
use testkit::wait;

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A daemon whose QEMUs run as the test account.
fn daemon() -> (Daemon, u32, u32) {
    let (uid, gid) = qemu_user().unwrap_or_else(|e| panic!("{e}"));
    let d = Daemon::start_with(&format!("user = \"{QEMU_USER}\"\n"));
    (d, uid, gid)
}

/// The one QEMU of domain `name` (by the uuid on its command line).
fn qemu_of(d: &Daemon, name: &str) -> u32 {
    let uuid = d.virsh_ok(&["domuuid", name]).trim().to_owned();
    let pids = pids_mentioning(&uuid);
    assert_eq!(pids.len(), 1, "one QEMU of {name}: {pids:?}");
    pids[0]
}

#[test]
fn a_guests_qemu_runs_as_the_configured_user_and_its_monitor_works() {
    let (d, uid, gid) = daemon();
    define_start(&d, "u1", &real_domain_xml("u1"));
    let pid = qemu_of(&d, "u1");
    // Real, effective, saved and filesystem ids are all the account's.
    assert_eq!(status_field(pid, "Uid"), format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(status_field(pid, "Gid"), format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_ne!(ns(&pid.to_string()), ns("self"), "own mount namespace");

    // The monitor QEMU inherited answers: pause and resume go through it.
    d.virsh_ok(&["suspend", "u1"]);
    d.wait_state("u1", "paused (user)", Duration::from_secs(10));
    d.virsh_ok(&["resume", "u1"]);
    d.wait_state("u1", "running (unpaused)", Duration::from_secs(10));

    // The helper wrote QEMU's pid to the pidfile and QEMU holds its lock.
    let uuid = d.virsh_ok(&["domuuid", "u1"]).trim().to_owned();
    let pidfile = d.root.path().join(format!("run/qemu/{uuid}.pid"));
    let text = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(text.trim(), pid.to_string());
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    assert!(
        locks
            .lines()
            .any(|l| l.contains(" POSIX ") && l.contains(&format!(" WRITE {pid} "))),
        "QEMU {pid} holds no POSIX write lock:\n{locks}"
    );

    d.virsh_ok(&["destroy", "u1"]);
    assert!(
        wait::until(Duration::from_secs(20), || pids_mentioning(&uuid)
            .is_empty()),
        "QEMU still running after destroy\n{}",
        tail(&d.log(), 20)
    );
}

#[test]
fn a_restarted_daemon_re_adopts_a_qemu_that_runs_as_the_user() {
    let (mut d, uid, _) = daemon();
    define_start(&d, "u2", &real_domain_xml("u2"));
    let pid = qemu_of(&d, "u2");
    d.kill();
    d.spawn();
    d.wait_state("u2", "running (booted)", Duration::from_secs(20));
    assert_eq!(qemu_of(&d, "u2"), pid, "the same QEMU, re-adopted");
    assert_eq!(
        status_field(pid, "Uid").split(' ').next(),
        Some(uid.to_string().as_str())
    );
    d.virsh_ok(&["suspend", "u2"]);
    d.wait_state("u2", "paused (user)", Duration::from_secs(10));
    d.virsh_ok(&["destroy", "u2"]);
    assert!(wait::until(Duration::from_secs(20), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }));
}
