//! `virsh dump` end to end: the guest's state or its memory alone written
//! by real QEMU (checked by the file's magic), the guest going on, reset
//! or stopped as crashed afterwards; libvirt's errors for what cannot be
//! dumped; and, on qemu-sim's slow migration, abort, destroy and a daemon
//! restart in the middle of a dump, each leaving no partial file behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, define_start, wait_until};

const T: Duration = Duration::from_secs(60);

/// A diskless real TCG domain.
fn plain_domain_xml(name: &str) -> String {
    common::real_domain_xml(name).replace("type='kvm'", "type='qemu'")
}

fn magic(path: &Path, len: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > len,
        "{} is {} bytes",
        path.display(),
        bytes.len()
    );
    bytes[..len].to_vec()
}

fn wait_running(d: &Daemon, dom: &str) {
    wait_until("running", T, || {
        d.virsh_ok(&["domstate", dom]).trim() == "running"
    });
}

fn completed_job(d: &Daemon, dom: &str) -> String {
    d.virsh_ok(&["domjobinfo", dom, "--completed"])
}

#[test]
fn dump_state_memory_formats_and_what_follows_real() {
    let d = Daemon::start();
    define_start(&d, "dm", &plain_domain_xml("dm"));
    let file = |n: &str| d.root.path().join(n).to_string_lossy().into_owned();

    // The whole state: a migration stream; the guest paused for it, then
    // runs again.
    let out = d.virsh_ok(&["dump", "dm", &file("state.dump")]);
    assert!(out.contains("dumped to"), "{out}");
    assert_eq!(magic(Path::new(&file("state.dump")), 4), b"QEVM");
    d.wait_state("dm", "running (unpaused)", T);
    let done = completed_job(&d, "dm");
    assert!(
        done.contains("Completed") && done.contains("Dump"),
        "{done}"
    );

    // Memory only: an ELF core by default, kdump with --format.
    d.virsh_ok(&["dump", "--memory-only", "dm", &file("mem.elf")]);
    assert_eq!(magic(Path::new(&file("mem.elf")), 4), b"\x7fELF");
    let done = completed_job(&d, "dm");
    assert!(done.contains("Memory processed"), "{done}");
    d.virsh_ok(&[
        "dump",
        "--memory-only",
        "--format",
        "kdump-zlib",
        "dm",
        &file("mem.kdump"),
    ]);
    // QEMU writes kdump in makedumpfile's flattened form.
    assert_eq!(magic(Path::new(&file("mem.kdump")), 12), b"makedumpfile");
    wait_running(&d, "dm");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(file("mem.kdump")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "a memory dump is private");

    // --live keeps it running; --reset resets it after the dump.
    d.virsh_ok(&["dump", "--live", "dm", &file("live.dump")]);
    assert_eq!(magic(Path::new(&file("live.dump")), 4), b"QEVM");
    wait_running(&d, "dm");
    d.virsh_ok(&["dump", "--memory-only", "--reset", "dm", &file("reset.elf")]);
    wait_running(&d, "dm");

    // Refused: exclusive flags; nothing is written.
    let o = d.virsh(&["dump", "--crash", "--live", "dm", &file("bad.dump")]);
    assert!(!o.status.success());
    assert!(!Path::new(&file("bad.dump")).exists());
    wait_running(&d, "dm");

    // --crash: written, then shut off as crashed.
    d.virsh_ok(&["dump", "--crash", "--memory-only", "dm", &file("crash.elf")]);
    assert_eq!(magic(Path::new(&file("crash.elf")), 4), b"\x7fELF");
    d.wait_state("dm", "shut off (crashed)", T);

    // An inactive domain cannot be dumped.
    let o = d.virsh(&["dump", "dm", &file("off.dump")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("not running"), "{err}");
    assert!(!Path::new(&file("off.dump")).exists());
}

#[test]
fn dump_abort_destroy_and_restart_sim() {
    let mut d = Daemon::start();
    define_start(
        &d,
        "ds",
        &common::sim_domain_xml("ds", &["-sim-job-ms", "3000"]),
    );
    let img = d.root.path().join("ds.dump");
    let start_dump = |d: &Daemon| {
        let uri = d.uri.clone();
        let p = img.to_string_lossy().into_owned();
        let h = std::thread::spawn(move || common::virsh(&uri, &["dump", "ds", &p]));
        wait_until("dump job", T, || {
            d.virsh_ok(&["domjobinfo", "ds"]).contains("Unbounded")
        });
        h
    };

    // Abort: the dump fails, the guest runs again, no file is left.
    let dumper = start_dump(&d);
    assert!(d.virsh_ok(&["domstate", "--reason", "ds"]).contains("dump"));
    d.virsh_ok(&["domjobabort", "ds"]);
    assert!(!dumper.join().expect("dumper").status.success());
    d.wait_state("ds", "running (unpaused)", T);
    assert!(!img.exists(), "aborted dump removed");
    let done = d.virsh_ok(&["domjobinfo", "ds", "--completed"]);
    assert!(done.contains("Cancelled"), "{done}");

    // A daemon killed mid-dump: the guest runs again, no partial file.
    let dumper = start_dump(&d);
    d.kill();
    let _ = dumper.join();
    d.spawn();
    let st = d.virsh_ok(&["domstate", "--reason", "ds"]);
    wait_until("guest resumed after restart", T, || {
        d.virsh_ok(&["domstate", "ds"]).contains("running")
    });
    assert!(
        d.virsh_ok(&["domjobinfo", "ds"]).contains("None"),
        "job settled ({st})"
    );
    let last = d.virsh_ok(&["domjobinfo", "ds", "--completed"]);
    if last.contains("Failed") {
        assert!(!img.exists(), "partial dump removed");
    } else {
        assert!(last.contains("Completed"), "{last}");
    }

    // Destroy during a dump works at once and fails the dump.
    let dumper = start_dump(&d);
    d.virsh_ok(&["destroy", "ds"]);
    assert!(!dumper.join().expect("dumper").status.success());
    d.wait_state("ds", "shut off (destroyed)", T);
    assert!(!img.exists(), "dump file of a destroyed guest removed");
}
