//! A daemon killed exactly between spawning QEMU and recording it
//! (docs/REQUIREMENTS.md 9: survives restarts, no orphaned or duplicated
//! QEMU).
//!
//! The daemon runs with `FERROVIRT_PAUSE_AFTER_SPAWN=MARKER`: a start then
//! writes the marker (domain name and QEMU's pid) right after the spawn,
//! before the pid is recorded, and waits forever. The test waits for the
//! marker, SIGKILLs the daemon and starts it again without the variable:
//! the restarted daemon must kill that QEMU (its start did not complete),
//! report the domain shut off, and a following start must run exactly one
//! QEMU. The same for `virsh restore` and for the start of a managed save.
//! Also: a QEMU no record names is killed at start-up, and a start refuses
//! (naming the pid) while a QEMU it did not record holds the domain's
//! pidfile, without touching that QEMU's monitor socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, pids_mentioning, real_domain_xml, sim_domain_xml, tail, wait_until};

const T: Duration = Duration::from_secs(60);
const PAUSE_ENV: &str = "FERROVIRT_PAUSE_AFTER_SPAWN";

/// `virsh ARGS` in the background (it hangs on a paused start).
fn virsh_bg(d: &Daemon, args: &[&str]) -> Child {
    Command::new("virsh")
        .args(["-c", &d.uri])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn virsh")
}

/// Restarts the daemon with the pause point armed at `marker`.
fn arm(d: &mut Daemon, marker: &Path) {
    d.spawn_with_env(&[(PAUSE_ENV, marker.as_os_str())]);
}

/// Waits for the marker; returns the pid of the QEMU the paused start
/// spawned.
fn paused_qemu(d: &Daemon, marker: &Path, name: &str) -> u32 {
    let mut text = String::new();
    wait_until("the start to pause after the spawn", T, || {
        text = std::fs::read_to_string(marker).unwrap_or_default();
        text.ends_with('\n')
    });
    let (who, pid) = text.trim().split_once(' ').expect("NAME PID");
    assert_eq!(who, name, "{}", tail(&d.log(), 30));
    pid.parse().expect("pid")
}

fn uuid_of(d: &Daemon, name: &str) -> String {
    d.virsh_ok(&["domuuid", name]).trim().to_owned()
}

fn status_file(d: &Daemon, uuid: &str) -> PathBuf {
    d.root.path().join(format!("run/qemu/{uuid}.json"))
}

fn alive(pid: u32) -> bool {
    // Not a zombie: the pid's /proc entry says what it runs.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// The paused start's record: the intent, with no pid yet.
fn assert_recorded_without_pid(d: &Daemon, uuid: &str) {
    let rec =
        std::fs::read_to_string(status_file(d, uuid)).expect("intent recorded before the spawn");
    assert!(rec.contains(r#""phase": "starting""#), "{rec}");
    assert!(
        rec.contains(r#""pid": 0"#),
        "the pid is not recorded yet: {rec}"
    );
}

/// Kills the paused daemon (and the client waiting on it), starts it
/// again without the pause point, and checks the spawned QEMU was killed
/// and the domain reported shut off by the daemon.
fn kill_and_restart(d: &mut Daemon, client: &mut Child, qemu: u32, uuid: &str, name: &str) {
    assert!(
        alive(qemu),
        "the spawned QEMU runs while the daemon is paused"
    );
    d.spawn(); // SIGKILLs the paused daemon first
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        !alive(qemu),
        "the restarted daemon killed the unrecorded QEMU\n{}",
        tail(&d.log(), 40)
    );
    assert!(pids_mentioning(uuid).is_empty(), "no QEMU of {name} left");
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", name]).trim(),
        "shut off (daemon)"
    );
    assert!(
        !status_file(d, uuid).exists(),
        "the intent record is settled"
    );
    assert!(
        d.log().contains("its start had not completed"),
        "the kill is logged\n{}",
        tail(&d.log(), 40)
    );
}

/// After the restart a start works, with exactly one QEMU.
fn start_once(d: &Daemon, args: &[&str], uuid: &str, name: &str) {
    d.virsh_ok(args);
    assert_eq!(pids_mentioning(uuid).len(), 1, "exactly one QEMU of {name}");
    assert_eq!(d.virsh_ok(&["domstate", name]).trim(), "running");
}

fn boot_killed_between_spawn_and_record(xml: &str, name: &str) {
    let mut d = Daemon::start();
    let f = d.file(&format!("{name}.xml"), xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let uuid = uuid_of(&d, name);
    let marker = d.root.path().join("spawned");
    arm(&mut d, &marker);
    let mut client = virsh_bg(&d, &["start", name]);
    let qemu = paused_qemu(&d, &marker, name);
    assert_recorded_without_pid(&d, &uuid);
    kill_and_restart(&mut d, &mut client, qemu, &uuid, name);
    start_once(&d, &["start", name], &uuid, name);
    d.virsh_ok(&["destroy", name]);
    assert!(pids_mentioning(&uuid).is_empty());
}

#[test]
fn sim_boot_killed_between_spawn_and_record() {
    boot_killed_between_spawn_and_record(&sim_domain_xml("cp-sim", &[]), "cp-sim");
}

#[test]
fn real_qemu_boot_killed_between_spawn_and_record() {
    boot_killed_between_spawn_and_record(&real_domain_xml("cp-real"), "cp-real");
}

#[test]
fn restore_killed_between_spawn_and_record() {
    let mut d = Daemon::start();
    let name = "cp-restore";
    let f = d.file("r.xml", &sim_domain_xml(name, &[]));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
    let uuid = uuid_of(&d, name);
    let image = d.root.path().join("r.save");
    let image_s = image.to_string_lossy().into_owned();
    d.virsh_ok(&["save", name, &image_s]);
    assert!(pids_mentioning(&uuid).is_empty());

    let marker = d.root.path().join("spawned");
    arm(&mut d, &marker);
    let mut client = virsh_bg(&d, &["restore", &image_s]);
    let qemu = paused_qemu(&d, &marker, name);
    assert_recorded_without_pid(&d, &uuid);
    kill_and_restart(&mut d, &mut client, qemu, &uuid, name);
    // The image is untouched: the restore can be done again, once.
    start_once(&d, &["restore", &image_s], &uuid, name);
    d.virsh_ok(&["destroy", name]);
}

#[test]
fn managed_save_start_killed_between_spawn_and_record() {
    let mut d = Daemon::start();
    let name = "cp-managed";
    let f = d.file("m.xml", &sim_domain_xml(name, &[]));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
    let uuid = uuid_of(&d, name);
    d.virsh_ok(&["managedsave", name]);
    let image = d.root.path().join(format!("lib/qemu/save/{name}.save"));
    assert!(image.exists());

    let marker = d.root.path().join("spawned");
    arm(&mut d, &marker);
    let mut client = virsh_bg(&d, &["start", name]);
    let qemu = paused_qemu(&d, &marker, name);
    kill_and_restart(&mut d, &mut client, qemu, &uuid, name);
    assert!(
        image.exists(),
        "the state was never loaded: the image stays"
    );
    let listed = d.virsh_ok(&["list", "--all", "--with-managed-save", "--name"]);
    assert!(listed.lines().any(|l| l.trim() == name), "{listed}");
    start_once(&d, &["start", name], &uuid, name);
    assert!(!image.exists(), "consumed by the start that completed");
    d.virsh_ok(&["destroy", name]);
}

/// A QEMU of this root that no record names (its record was lost) is
/// killed when the daemon starts, and logged.
#[test]
fn a_qemu_no_record_names_is_killed_at_start_up() {
    let mut d = Daemon::start();
    let name = "cp-stray";
    let f = d.file("s.xml", &sim_domain_xml(name, &[]));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
    let uuid = uuid_of(&d, name);
    let qemu = pids_mentioning(&uuid);
    assert_eq!(qemu.len(), 1);
    d.kill();
    std::fs::remove_file(status_file(&d, &uuid)).unwrap();
    d.spawn();
    assert!(!alive(qemu[0]), "{}", tail(&d.log(), 40));
    assert!(d.log().contains("no definition or status record names it"));
    assert_eq!(d.virsh_ok(&["domstate", name]).trim(), "shut off");
    start_once(&d, &["start", name], &uuid, name);
    d.virsh_ok(&["destroy", name]);
}

/// A start refuses while a QEMU it did not record holds the domain's
/// pidfile, names its pid, and leaves its monitor socket alone.
#[test]
fn a_start_refuses_while_an_unrecorded_qemu_holds_the_pidfile() {
    let d = Daemon::start();
    let name = "cp-held";
    let f = d.file("h.xml", &sim_domain_xml(name, &[]));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let uuid = uuid_of(&d, name);
    let run = d.root.path().join("run/qemu");
    let (pidfile, socket) = (
        run.join(format!("{uuid}.pid")),
        run.join(format!("{uuid}.qmp")),
    );
    let mut stray = Command::new(common::qemu_sim())
        .args([
            OsStr::new("-S"),
            OsStr::new("-pidfile"),
            pidfile.as_os_str(),
            OsStr::new("-qmp"),
        ])
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the stray to listen", T, || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let out = d.virsh(&["start", name]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", stray.id())), "{err}");
    assert!(err.contains("still running"), "{err}");
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "its monitor is untouched"
    );
    assert_eq!(pids_mentioning(&uuid), vec![stray.id()], "no second QEMU");
    assert_eq!(d.virsh_ok(&["domstate", name]).trim(), "shut off");
    stray.kill().unwrap();
    stray.wait().unwrap();
    start_once(&d, &["start", name], &uuid, name);
    d.virsh_ok(&["destroy", name]);
}

/// Whether some process holds an open-file-description lock on `path`.
fn ofd_lock_held(path: &Path) -> bool {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_GETLK(&mut probe)).unwrap();
    i32::from(probe.l_type) != libc::F_UNLCK
}

/// The run lock is held by the domain's QEMU itself (it inherits it at
/// the spawn), so it proves that QEMU alive once the daemon is gone, and
/// the kernel releases it when QEMU exits, however it exits.
fn run_lock_held_by_qemu(xml: &str, name: &str) {
    let mut d = Daemon::start();
    let f = d.file(&format!("{name}.xml"), xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
    let uuid = uuid_of(&d, name);
    let lock = d.root.path().join(format!("run/qemu/{uuid}.lock"));
    assert!(ofd_lock_held(&lock));
    d.kill();
    assert!(
        ofd_lock_held(&lock),
        "held by QEMU alone once the daemon is gone"
    );
    let qemu = pids_mentioning(&uuid);
    assert_eq!(qemu.len(), 1);
    testkit::processes::signal(qemu[0], nix::sys::signal::Signal::SIGKILL).unwrap();
    // The leader of a multi-threaded QEMU shows as a zombie while its
    // other threads still exit; the last one closes the descriptors.
    wait_until("the run lock to be released as QEMU exits", T, || {
        !ofd_lock_held(&lock)
    });
    assert!(!alive(qemu[0]), "released only once QEMU is gone");
    d.spawn();
    assert_eq!(d.virsh_ok(&["domstate", name]).trim(), "shut off");
}

#[test]
fn the_run_lock_is_held_by_qemu_sim_itself() {
    run_lock_held_by_qemu(&sim_domain_xml("rl-sim", &[]), "rl-sim");
}

#[test]
fn the_run_lock_is_held_by_real_qemu_itself() {
    run_lock_held_by_qemu(&real_domain_xml("rl-real"), "rl-real");
}

/// An undefine killed between removing the definition file and writing
/// the status record: the file decides, so the restarted daemon adopts
/// the running QEMU as a transient domain, which is gone once stopped.
#[test]
fn the_definition_file_decides_persistence_after_a_restart() {
    let mut d = Daemon::start();
    let name = "cp-undef";
    let f = d.file("u.xml", &sim_domain_xml(name, &[]));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
    let uuid = uuid_of(&d, name);
    d.kill();
    std::fs::remove_file(d.root.path().join(format!("etc/qemu/{name}.xml"))).unwrap();
    d.spawn();
    assert_eq!(d.virsh_ok(&["domstate", name]).trim(), "running");
    let info = d.virsh_ok(&["dominfo", name]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Persistent:") && l.ends_with("no")),
        "{info}"
    );
    assert_eq!(pids_mentioning(&uuid).len(), 1);
    d.virsh_ok(&["destroy", name]);
    let out = d.virsh(&["domstate", name]);
    assert!(!out.status.success(), "a stopped transient domain is gone");
}
