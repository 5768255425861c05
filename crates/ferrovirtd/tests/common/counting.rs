//! The counting test guest (it prints `FERROVIRT-COUNT N` on its serial
//! port each second once booted), as the migration tests watch it: "it
//! keeps running" is its counter going on, without a second boot.

use std::path::Path;
use std::time::Duration;

use testkit::wait;

use super::{Daemon, pids_mentioning, tail};

/// The serial log so far (empty before QEMU made it).
pub fn serial_log(serial: &Path) -> String {
    std::fs::read_to_string(serial).unwrap_or_default()
}

/// The highest `FERROVIRT-COUNT N` in the serial log (0 = none yet).
pub fn last_count(serial: &Path) -> u64 {
    serial_log(serial)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FERROVIRT-COUNT "))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// The guest goes on counting past `from` within `limit`, and booted
/// once only (a rebooted guest would start over after a new marker);
/// `logs` explains a failure.
pub fn assert_counts_on(serial: &Path, from: u64, limit: Duration, logs: impl Fn() -> String) {
    let went_on = wait::until(limit, || last_count(serial) >= from + 5);
    assert!(
        went_on,
        "the guest stopped counting at {}\n{}\n{}",
        last_count(serial),
        tail(&serial_log(serial), 10),
        logs()
    );
    let boots = serial_log(serial).matches("FERROVIRT-GUEST-READY").count();
    assert_eq!(boots, 1, "the guest booted again");
}

/// `virsh domstate --reason`, trimmed: "running (migrated)".
pub fn state(d: &Daemon, name: &str) -> String {
    d.virsh_ok(&["domstate", "--reason", name])
        .trim()
        .to_owned()
}

/// QEMU processes of a guest (their command lines name its uuid).
pub fn qemus_of(uuid: &str) -> Vec<u32> {
    pids_mentioning(uuid)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .contains("qemu-system")
        })
        .collect()
}
