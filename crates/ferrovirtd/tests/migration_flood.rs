//! A guest that floods its daemon with events (qemu-sim sending
//! RTC_CHANGE at 10,000/s from its start, on either side) migrates while
//! the source daemon keeps answering about it and about a quiet
//! neighbour; then a flooding guest's source is destroyed part-way
//! through its migration, and the destination is left clear. Both
//! daemons run in a network namespace the test makes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, define_start, sim_domain_xml, tail};
use testkit::netns::NetNs;
use testkit::wait;

const SRC_URI: &str = "qemu+tcp://127.0.0.1:16631/system";
const DST_URI: &str = "qemu+tcp://127.0.0.1:16632/system";
const WAIT: Duration = Duration::from_secs(60);
/// A query answered later than this under the flood fails the test
/// (its normal answer takes milliseconds).
const ANSWER: Duration = Duration::from_secs(2);

fn config(port: u16, first: u16) -> String {
    format!(
        "default_network = false\nlisten_tcp = \"127.0.0.1:{port}\"\nauth_tcp = \"none\"\n\
         migration_address = \"127.0.0.1\"\nmigration_port_min = {first}\n\
         migration_port_max = {}\n",
        first + 7
    )
}

/// The flooding guest: a 3 s migration, 10,000 RTC_CHANGE/s.
fn flooding_xml(name: &str) -> String {
    sim_domain_xml(
        name,
        &["-sim-job-ms", "3000", "-sim-flood", "RTC_CHANGE:10000"],
    )
}

fn migrate(ns: &NetNs, from: &str, name: &str, to: &str) -> Child {
    common::virsh_in_netns(ns, from, &["migrate", "--live", name, to])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn virsh migrate")
}

/// The longest of `virsh dominfo` on each of `names`, asked again and
/// again until `child` (the migration) ends; its exit status.
fn query_until_done(d: &Daemon, names: &[&str], child: &mut Child) -> (Duration, bool) {
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (slowest, status.success());
        }
        assert!(Instant::now() < deadline, "the migration never ended");
        for name in names {
            let asked = Instant::now();
            let out = d.virsh(&["dominfo", name]);
            slowest = slowest.max(asked.elapsed());
            assert!(out.status.success(), "dominfo {name} under the flood");
        }
    }
}

fn active(d: &Daemon, name: &str) -> bool {
    d.virsh_ok(&["list", "--name"])
        .lines()
        .any(|l| l.trim() == name)
}

#[test]
fn a_flooding_guest_migrates_while_its_daemon_answers_and_a_destroy_midway_clears_the_destination()
{
    let ns = NetNs::new("migfl").unwrap();
    let src = Daemon::start_in_netns(&ns, &config(16631, 49170));
    let dst = Daemon::start_in_netns(&ns, &config(16632, 49180));
    let logs = || {
        format!(
            "--- source ---\n{}\n--- destination ---\n{}",
            tail(&src.log(), 30),
            tail(&dst.log(), 30)
        )
    };
    define_start(&src, "quiet", &sim_domain_xml("quiet", &[]));
    define_start(&src, "fl", &flooding_xml("fl"));

    let mut child = migrate(&ns, SRC_URI, "fl", DST_URI);
    let (slowest, ok) = query_until_done(&src, &["fl", "quiet"], &mut child);
    assert!(ok, "migrate under the flood failed\n{}", logs());
    assert!(slowest < ANSWER, "a query took {slowest:?} under the flood");
    assert_eq!(
        dst.virsh_ok(&["domstate", "--reason", "fl"]).trim(),
        "running (migrated)"
    );

    // Back, and the source (now `dst`) destroys it part-way.
    let child = migrate(&ns, DST_URI, "fl", SRC_URI);
    let incoming = wait::until(WAIT, || active(&src, "fl"));
    assert!(incoming, "no incoming domain\n{}", logs());
    let asked = Instant::now();
    dst.virsh_ok(&["destroy", "fl"]);
    assert!(
        asked.elapsed() < ANSWER,
        "destroy took {:?}",
        asked.elapsed()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the migration of a destroyed guest succeeded"
    );
    let cleared = wait::until(WAIT, || !active(&src, "fl"));
    assert!(
        cleared,
        "the destination kept running the guest\n{}",
        logs()
    );
    // The neighbour never noticed.
    assert!(active(&src, "quiet"));
}
