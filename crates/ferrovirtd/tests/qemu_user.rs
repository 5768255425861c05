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

/// A daemon whose QEMUs run as the test account: the default of a daemon
/// run by root, no `user` set.
fn daemon() -> (Daemon, u32, u32) {
    let (uid, gid) = qemu_user().unwrap_or_else(|e| panic!("{e}"));
    assert!(nix::unistd::geteuid().is_root(), "these tests run as root");
    (Daemon::start(), uid, gid)
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
fn the_account_set_explicitly_or_root_only_when_asked_with_a_warning() {
    let (uid, _) = qemu_user().unwrap_or_else(|e| panic!("{e}"));
    let named = Daemon::start_with(&format!("user = \"{QEMU_USER}\"\n"));
    define_start(&named, "n1", &real_domain_xml("n1"));
    let pid = qemu_of(&named, "n1");
    assert_eq!(status_field(pid, "Uid"), format!("{uid} {uid} {uid} {uid}"));
    assert!(
        !named.log().contains("QEMU runs as root"),
        "{}",
        named.log()
    );
    named.virsh_ok(&["destroy", "n1"]);

    let root = Daemon::start_with("user = \"root\"\n");
    root.wait_for_log("QEMU runs as root");
    define_start(&root, "r1", &real_domain_xml("r1"));
    let pid = qemu_of(&root, "r1");
    assert_eq!(status_field(pid, "Uid"), "0 0 0 0");
    root.virsh_ok(&["destroy", "r1"]);
}

/// Hot-plugged disks and media inserted while the guest runs are QEMU's
/// user's while it holds them, recorded before the change; unplug, eject
/// and destroy give them back.
#[test]
fn hot_plugged_disks_and_inserted_media_are_the_users_until_released() {
    let (d, uid, gid) = daemon();
    let dir = files_dir();
    let image = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.path().join(name);
        std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
        std::os::unix::fs::chown(&p, Some(ORIGINAL.0), Some(ORIGINAL.1)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(ORIGINAL.2)).unwrap();
        p
    };
    let (iso1, iso2, vdb) = (image("one.iso"), image("two.iso"), image("vdb.img"));
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let ctl = d.qemu_dir().join("hp.ctl");
    let cdrom = format!(
        "<disk type='file' device='cdrom'><source file='{}'/><target dev='sdb' bus='sata'/></disk>",
        iso1.display()
    );
    let xml = common::sim_domain_xml("hp", &["-sim-control", &s(&ctl)]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{cdrom}\n"),
        1,
    );
    define_start(&d, "hp", &xml);
    let users = (uid, gid, ORIGINAL.2);
    assert_eq!(owner(&iso1), users);
    let uuid = d.virsh_ok(&["domuuid", "hp"]).trim().to_owned();
    let record =
        || std::fs::read_to_string(d.root.path().join(format!("run/qemu/{uuid}.json"))).unwrap();

    d.virsh_ok(&[
        "attach-disk",
        "hp",
        &s(&vdb),
        "vdb",
        "--targetbus",
        "virtio",
        "--live",
    ]);
    assert_eq!(owner(&vdb), users);
    assert!(
        record().contains(&format!("\"path\": \"{}\"", vdb.display())),
        "{}",
        record()
    );

    d.virsh_ok(&["change-media", "hp", "sdb", &s(&iso2), "--update", "--live"]);
    assert_eq!(owner(&iso2), users);
    assert_eq!(owner(&iso1), ORIGINAL, "the replaced medium");
    assert!(!record().contains(&s(&iso1)), "{}", record());
    d.virsh_ok(&["change-media", "hp", "sdb", "--eject", "--live"]);
    assert_eq!(owner(&iso2), ORIGINAL, "the ejected medium");

    d.virsh_ok(&["detach-disk", "hp", "vdb", "--live"]);
    wait_owner(&vdb, ORIGINAL, &d);
    assert!(
        wait::until(Duration::from_secs(20), || !record().contains(&s(&vdb))),
        "{}",
        record()
    );

    // A disk plugged, then the run ends: destroy gives it back.
    d.virsh_ok(&[
        "attach-disk",
        "hp",
        &s(&vdb),
        "vdc",
        "--targetbus",
        "virtio",
        "--live",
    ]);
    d.virsh_ok(&["change-media", "hp", "sdb", &s(&iso1), "--insert", "--live"]);
    assert_eq!((owner(&vdb), owner(&iso1)), (users, users));
    d.virsh_ok(&["destroy", "hp"]);
    assert_eq!((owner(&vdb), owner(&iso1)), (ORIGINAL, ORIGINAL));
}

/// QEMU opens a block copy's destination by name as its user: it is the
/// user's while QEMU holds it, and the source a pivot left goes back.
#[test]
fn a_block_copys_destination_is_the_users_while_qemu_holds_it() {
    let (d, uid, gid) = daemon();
    let dir = files_dir();
    let (xml, disk) = disk_domain("bc", dir.path());
    define_start(&d, "bc", &xml);
    let dest = dir.path().join("copy.img");
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    d.virsh_ok(&[
        "blockcopy",
        "bc",
        "vda",
        &s(&dest),
        "--wait",
        "--pivot",
        "--format",
        "raw",
    ]);
    let copied = owner(&dest);
    assert_eq!((copied.0, copied.1), (uid, gid));
    wait_owner(&disk, ORIGINAL, &d);
    let dest2 = dir.path().join("copy2.img");
    d.virsh_ok(&[
        "blockcopy",
        "bc",
        "vda",
        &s(&dest2),
        "--wait",
        "--finish",
        "--format",
        "raw",
    ]);
    assert!(
        wait::until(Duration::from_secs(20), || owner(&dest2).0 == 0),
        "a copy not pivoted to goes back to the daemon's user: {:?}",
        owner(&dest2)
    );
    d.virsh_ok(&["destroy", "bc"]);
    assert_eq!(owner(&dest).0, 0);
}

/// A qcow2 overlay plugged live: QEMU (as its user) opens the backing
/// image too, so the whole chain is the user's while a disk reads it; a
/// base two overlays share goes back only when the second is unplugged.
/// Real QEMU proves it can open the chain; qemu-sim, whose guest answers
/// an unplug (a real one here has no OS to), shows what goes back when.
#[test]
fn a_hot_plugged_overlays_backing_chain_is_the_users_while_a_disk_reads_it() {
    let (d, uid, gid) = daemon();
    let dir = files_dir();
    let users = (uid, gid, ORIGINAL.2);
    let base = dir.path().join("base.qcow2");
    let tops = ["top1.qcow2", "top2.qcow2"].map(|n| dir.path().join(n));
    overlays(&base, &tops);
    let attach = |dom: &str, top: &std::path::Path, target: &str| {
        let top = top.to_string_lossy();
        d.virsh_ok(&[
            "attach-disk",
            dom,
            &top,
            target,
            "--subdriver",
            "qcow2",
            "--live",
        ]);
    };

    // Free hot-plug ports (the USB controller, the balloon and vda take
    // three of them).
    let ports = "<controller type='pci' model='pcie-root-port'/>\n".repeat(6);
    let (xml, _) = disk_domain("ov", dir.path());
    let xml = xml.replace("  </devices>", &format!("{ports}  </devices>"));
    define_start(&d, "ov", &xml);
    attach("ov", &tops[0], "vdb");
    attach("ov", &tops[1], "vdc");
    assert_eq!([owner(&tops[0]), owner(&tops[1]), owner(&base)], [users; 3]);
    d.virsh_ok(&["destroy", "ov"]);
    assert_eq!(
        [owner(&tops[0]), owner(&tops[1]), owner(&base)],
        [ORIGINAL; 3]
    );

    let sim = common::sim_domain_xml("ovs", &[]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{ports}"),
        1,
    );
    define_start(&d, "ovs", &sim);
    attach("ovs", &tops[0], "vdb");
    attach("ovs", &tops[1], "vdc");
    assert_eq!(owner(&base), users);
    d.virsh_ok(&["detach-disk", "ovs", "vdb", "--live"]);
    wait_owner(&tops[0], ORIGINAL, &d);
    assert_eq!(owner(&base), users, "the other overlay still reads it");
    d.virsh_ok(&["detach-disk", "ovs", "vdc", "--live"]);
    wait_owner(&tops[1], ORIGINAL, &d);
    wait_owner(&base, ORIGINAL, &d);
}

/// A qcow2 `base` and an overlay of it at each of `tops`, all owned as
/// [`ORIGINAL`].
fn overlays(base: &std::path::Path, tops: &[std::path::PathBuf]) {
    use std::os::unix::fs::PermissionsExt;
    let img = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("qemu-img")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let os = std::ffi::OsStr::new;
    img(&[
        os("create"),
        os("-q"),
        os("-f"),
        os("qcow2"),
        base.as_os_str(),
        os("16M"),
    ]);
    for top in tops {
        img(&[
            os("create"),
            os("-q"),
            os("-f"),
            os("qcow2"),
            os("-b"),
            base.as_os_str(),
            os("-F"),
            os("qcow2"),
            top.as_os_str(),
        ]);
    }
    for f in std::iter::once(base).chain(tops.iter().map(|t| t.as_path())) {
        std::os::unix::fs::chown(f, Some(ORIGINAL.0), Some(ORIGINAL.1)).unwrap();
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(ORIGINAL.2)).unwrap();
    }
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

/// Where a test's guest files live: a directory QEMU's user may search
/// (the daemon's root is private to it), removed with the value.
fn files_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("fvq")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// Owner, group and permission bits of `path`.
fn owner(path: &std::path::Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// The original of the test disks: an owner QEMU's user is not, a mode
/// that lets it neither read nor write.
const ORIGINAL: (u32, u32, u32) = (4321, 4322, 0o640);

/// A real-QEMU domain with a raw disk image owned as [`ORIGINAL`] and a
/// serial log file, both in `dir`.
fn disk_domain(name: &str, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let disk = dir.join(format!("{name}.img"));
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    std::os::unix::fs::chown(&disk, Some(ORIGINAL.0), Some(ORIGINAL.1)).unwrap();
    std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(ORIGINAL.2)).unwrap();
    let xml = real_domain_xml(name).replace(
        "  </devices>",
        &format!(
            "    <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk>\n    \
             <serial type='file'><source path='{}'/><target port='0'/></serial>\n  </devices>",
            disk.display(),
            dir.join(format!("{name}.serial")).display()
        ),
    );
    (xml, disk)
}

fn wait_owner(path: &std::path::Path, want: (u32, u32, u32), d: &Daemon) {
    assert!(
        wait::until(Duration::from_secs(20), || owner(path) == want),
        "{} is {:?}, not {want:?}\n{}",
        path.display(),
        owner(path),
        tail(&d.log(), 30)
    );
}

#[test]
fn a_disk_is_the_users_while_the_guest_runs_and_its_owner_returns_after_destroy() {
    let (d, uid, gid) = daemon();
    let dir = files_dir();
    let (xml, disk) = disk_domain("o1", dir.path());
    define_start(&d, "o1", &xml);
    // QEMU opened the image read-write as its user: the start succeeded.
    assert_eq!(
        owner(&disk),
        (uid, gid, ORIGINAL.2),
        "owner changes, mode stays"
    );
    let serial = dir.path().join("o1.serial");
    assert_eq!(owner(&serial), (uid, gid, 0o600), "the log QEMU writes");
    // The originals are in the status record before anything changed.
    let uuid = d.virsh_ok(&["domuuid", "o1"]).trim().to_owned();
    let rec = std::fs::read_to_string(d.root.path().join(format!("run/qemu/{uuid}.json"))).unwrap();
    assert!(rec.contains(&format!("\"uid\": {}", ORIGINAL.0)), "{rec}");
    d.virsh_ok(&["destroy", "o1"]);
    assert_eq!(owner(&disk), ORIGINAL);
    assert_eq!(
        owner(&serial).0,
        0,
        "a file the run created goes to the daemon's user"
    );
}

#[test]
fn the_owner_returns_after_qemu_crashes() {
    let (d, _, _) = daemon();
    let dir = files_dir();
    let (xml, disk) = disk_domain("o2", dir.path());
    define_start(&d, "o2", &xml);
    assert_ne!(owner(&disk), ORIGINAL);
    let pid = qemu_of(&d, "o2");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_state("o2", "shut off (crashed)", Duration::from_secs(20));
    assert_eq!(owner(&disk), ORIGINAL);
}

#[test]
fn the_owner_returns_after_a_daemon_sigkill_then_destroy_or_a_qemu_gone_meanwhile() {
    let (mut d, uid, gid) = daemon();
    let dir = files_dir();
    let (xml, kept) = disk_domain("o3", dir.path());
    define_start(&d, "o3", &xml);
    let (xml, lost) = disk_domain("o4", dir.path());
    define_start(&d, "o4", &xml);
    let lost_pid = qemu_of(&d, "o4");
    d.kill();
    // o4's QEMU dies while no daemon runs: the restarted one restores.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lost_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait::until(Duration::from_secs(20), || {
        !std::path::Path::new(&format!("/proc/{lost_pid}")).exists()
    }));
    assert_eq!(owner(&lost), (uid, gid, ORIGINAL.2));
    d.spawn();
    d.wait_state("o3", "running (booted)", Duration::from_secs(20));
    wait_owner(&lost, ORIGINAL, &d);
    // o3 was re-adopted: still its user's until it is destroyed.
    assert_eq!(owner(&kept), (uid, gid, ORIGINAL.2));
    d.virsh_ok(&["destroy", "o3"]);
    assert_eq!(owner(&kept), ORIGINAL);
}

#[test]
fn an_image_its_user_cannot_reach_fails_the_start_and_changes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let (d, _, _) = daemon();
    let dir = files_dir();
    let (xml, disk) = disk_domain("o5", dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let f = d.file("o5.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let out = d.virsh(&["start", "o5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Cannot access storage file '{}'", disk.display())),
        "{err}"
    );
    assert_eq!(owner(&disk), ORIGINAL);
    assert_eq!(owner(dir.path()).2, 0o700, "directories are never changed");
}

/// qemu-sim's `-sim-hostile` lines in the log of domain `name`, once all
/// `n` are there.
fn hostile_report(d: &Daemon, name: &str, n: usize) -> Vec<String> {
    let log = d.root.path().join(format!("log/qemu/{name}.log"));
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("qemu-sim hostile: "))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        wait::until(Duration::from_secs(20), || lines().len() >= n),
        "the hostile QEMU reported {:?}\n{}",
        lines(),
        tail(&d.log(), 20)
    );
    lines()
}

#[test]
fn a_hostile_qemu_as_its_user_can_read_write_open_and_spawn_nothing_it_should_not() {
    use std::os::unix::fs::PermissionsExt;
    let (d, uid, _) = daemon();
    let dir = files_dir();
    // Another guest's disk (defined, not running: it keeps its owner).
    let (xml, victim) = disk_domain("victim", dir.path());
    let f = d.file("victim.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let root = d.root.path();
    // The daemon's directories are its own even where its root is not.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let definition = root.join("etc/qemu/victim.xml");
    let spec = format!(
        "read={},write={},write={},open={}",
        definition.display(),
        root.join("planted").display(),
        root.join("run/qemu/planted").display(),
        victim.display()
    );
    let xml = common::sim_domain_xml("h1", &["-sim-hostile", &spec]);
    define_start(&d, "h1", &xml);
    let report = hostile_report(&d, "h1", 7);
    assert_eq!(report[0], "qemu-sim hostile: sandbox spawn=deny in force");
    let attempts = &report[1..];
    let wanted = [
        "read /etc/shadow".to_owned(),
        format!("read {}", definition.display()),
        format!("write {}", root.join("planted").display()),
        format!("write {}", root.join("run/qemu/planted").display()),
        format!("open {}", victim.display()),
        "spawn /bin/true".to_owned(),
    ];
    assert_eq!(attempts.len(), wanted.len(), "{attempts:?}");
    for (line, what) in attempts.iter().zip(&wanted) {
        assert!(
            line.starts_with(&format!("qemu-sim hostile: {what}: denied: ")),
            "{line}"
        );
    }
    for (what, errno) in [
        (&wanted[0], 13),
        (&wanted[1], 13),
        (&wanted[3], 13),
        (&wanted[4], 13),
        (&wanted[5], 1),
    ] {
        let line = attempts.iter().find(|l| l.contains(what.as_str())).unwrap();
        assert!(line.ends_with(&format!("(os error {errno})")), "{line}");
    }
    assert!(!root.join("planted").exists() && !root.join("run/qemu/planted").exists());
    let pid = qemu_of(&d, "h1");
    assert_eq!(
        status_field(pid, "Uid").split(' ').next(),
        Some(uid.to_string().as_str())
    );
    assert_eq!(status_field(pid, "Seccomp"), "2");
    d.virsh_ok(&["destroy", "h1"]);
}

#[test]
fn serial_and_channel_sockets_are_bound_by_the_daemon_and_served_by_qemu() {
    let (d, _, _) = daemon();
    let dir = files_dir();
    let serial = dir.path().join("s.sock");
    let xml = real_domain_xml("k1").replace(
        "  </devices>",
        &format!(
            "    <serial type='unix'><source mode='bind' path='{}'/><target port='0'/></serial>\n    \
             <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n  </devices>",
            serial.display()
        ),
    );
    define_start(&d, "k1", &xml);
    let uuid = d.virsh_ok(&["domuuid", "k1"]).trim().to_owned();
    let agent = d
        .root
        .path()
        .join(format!("run/vm/{uuid}/org.qemu.guest_agent.0"));
    for sock in [&serial, &agent] {
        std::os::unix::net::UnixStream::connect(sock)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", sock.display(), tail(&d.log(), 20)));
    }
    // QEMU held the listeners: once it is gone, nothing accepts.
    d.virsh_ok(&["destroy", "k1"]);
    let e = std::os::unix::net::UnixStream::connect(&serial).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

/// A QEMU of another user names the root only through the pidfile its
/// environment names: the harness still finds it, and a dropped daemon
/// leaves nothing running.
#[test]
fn the_harness_finds_and_cleans_up_qemus_that_run_as_the_user() {
    let (d, _, _) = daemon();
    define_start(&d, "z1", &real_domain_xml("z1"));
    let pid = qemu_of(&d, "z1");
    let under_root = pids_mentioning(&d.root.path().to_string_lossy());
    assert!(under_root.contains(&pid), "{under_root:?} lacks QEMU {pid}");
    drop(d);
    assert!(wait::until(Duration::from_secs(20), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }));
}

/// QEMU writes a screenshot into the daemon's temporary file, which it
/// gets as a descriptor set (`/dev/fdset/N`): it could not open it by name.
#[test]
fn a_screenshot_of_a_guest_that_runs_as_the_user() {
    let (d, _, _) = daemon();
    let xml = real_domain_xml("v1").replace(
        "</devices>",
        "<graphics type='vnc'/><video><model type='vga'/></video></devices>",
    );
    define_start(&d, "v1", &xml);
    let shot = d.root.path().join("shot.png");
    let out = d.virsh_ok(&["screenshot", "v1", &shot.to_string_lossy()]);
    assert!(out.contains("image/png"), "{out}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let left: Vec<_> = std::fs::read_dir(d.root.path().join("run/qemu"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("screendump"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    d.virsh_ok(&["destroy", "v1"]);
}
