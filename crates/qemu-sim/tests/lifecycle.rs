//! Command line, QMP negotiation, run states, shutdown, daemonize, reconnect.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "qemu-sim"}, "capabilities": ["oob"]}}"#;

#[test]
fn greeting_and_negotiation() {
    let sim = Sim::spawn(&[
        "-name",
        "guest=vm1,debug-threads=on",
        "-uuid",
        "6b29fc40-ca47-1067-b31d-00dd010662da",
    ]);
    let (mut q, greeting) = sim.connect();
    assert_eq!(String::from_utf8(greeting).unwrap(), GREETING);
    let r = q.cmd(r#"{"execute":"query-status","id":"early"}"#);
    assert_eq!(r["id"], "early");
    assert_eq!(r["error"]["class"], "CommandNotFound");
    assert_eq!(
        r["error"]["desc"],
        "Expecting capabilities negotiation with 'qmp_capabilities'"
    );
    let r = q.cmd(r#"{"execute":"qmp_capabilities","id":{"a":[1,null]}}"#);
    assert_eq!(r, json!({"return": {}, "id": {"a": [1, null]}}));
    let r = q.cmd(r#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(r["error"]["class"], "CommandNotFound");
    let r = q.cmd(r#"{"execute":"no-such","id":7}"#);
    assert_eq!(
        r,
        json!({"id": 7, "error": {"class": "CommandNotFound", "desc": "The command no-such has not been found"}})
    );
    let r = q.cmd(r#"{"execute":"stop","arguments":{"a":1}}"#);
    assert_eq!(r["error"]["class"], "GenericError");
    assert_eq!(r["error"]["desc"], "Parameter 'a' is unexpected");
    let r = q.cmd(r#"[1]"#);
    assert_eq!(r["error"]["desc"], "QMP input must be a JSON object");
    let r = q.cmd(r#"{"execute":"query-name"}"#);
    assert_eq!(r["return"]["name"], "vm1");
    // Two commands on one line, one split over two writes.
    q.send(r#"{"execute":"query-uuid","id":1}{"execute":"query-kvm","id":2}"#);
    assert_eq!(
        q.reply()["return"]["UUID"],
        "6b29fc40-ca47-1067-b31d-00dd010662da"
    );
    assert_eq!(q.reply()["id"], 2);
    q.s.write_all_str(r#"{"execute":"query-"#);
    q.send(r#"version"}"#);
    assert_eq!(q.reply()["return"]["package"], "qemu-sim");
    let r = q.cmd(r#"{"execute":"query-commands"}"#);
    assert!(
        r["return"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "blockdev-mirror")
    );
    let r = q.cmd("{bad json");
    assert_eq!(r["error"]["class"], "GenericError");
    assert_eq!(status(&mut q), "running");
}

trait WriteStr {
    fn write_all_str(&mut self, s: &str);
}

impl WriteStr for std::os::unix::net::UnixStream {
    fn write_all_str(&mut self, s: &str) {
        use std::io::Write;
        self.write_all(s.as_bytes()).unwrap();
    }
}

#[test]
fn run_states_and_events() {
    let sim = Sim::spawn(&["-S"]);
    let mut q = sim.qmp();
    assert_eq!(
        q.cmd(r#"{"execute":"query-status"}"#),
        json!({"return": {"status": "prelaunch", "singlestep": false, "running": false}})
    );
    // stop in prelaunch: no event, no change (as QEMU 7.2).
    assert_eq!(q.cmd(r#"{"execute":"stop"}"#), json!({"return": {}}));
    assert!(q.events.is_empty());
    assert_eq!(status(&mut q), "prelaunch");
    q.cmd(r#"{"execute":"cont"}"#);
    // RESUME precedes the reply, with a timestamp.
    let e = q.events.pop_front().expect("RESUME before the reply");
    assert_eq!(e["event"], "RESUME");
    assert!(e["timestamp"]["seconds"].as_u64().unwrap() > 1_600_000_000);
    assert!(e["timestamp"]["microseconds"].as_u64().unwrap() < 1_000_000);
    assert_eq!(status(&mut q), "running");
    q.cmd(r#"{"execute":"cont"}"#);
    assert!(q.events.is_empty(), "cont while running emits nothing");
    q.cmd(r#"{"execute":"stop"}"#);
    assert_eq!(q.events.pop_front().unwrap()["event"], "STOP");
    assert_eq!(status(&mut q), "paused");
    q.cmd(r#"{"execute":"system_reset"}"#);
    let e = q.events.pop_front().unwrap();
    assert_eq!(e["event"], "RESET");
    assert_eq!(
        e["data"],
        json!({"guest": false, "reason": "host-qmp-system-reset"})
    );
    assert_eq!(status(&mut q), "prelaunch");
    assert_eq!(sim.stats()["state"], "prelaunch");
}

#[test]
fn powerdown_running_exits() {
    let mut sim = Sim::spawn(&["-sim-powerdown-ms", "50"]);
    let mut q = sim.qmp();
    q.cmd(r#"{"execute":"system_powerdown"}"#);
    assert_eq!(q.event_names(2), vec!["POWERDOWN", "SHUTDOWN"]);
    assert!(sim.wait_exit().success());
    assert!(!sim.mon.exists(), "monitor socket removed at exit");
}

#[test]
fn powerdown_paused_waits_for_cont_and_no_shutdown_stays() {
    let mut sim = Sim::spawn(&["-S", "-no-shutdown", "-sim-powerdown-ms", "50"]);
    let mut q = sim.qmp();
    q.cmd(r#"{"execute":"system_powerdown"}"#);
    assert_eq!(q.event_names(1), vec!["POWERDOWN"]);
    // Paused guest: nothing until cont. The next reply comes with no event.
    assert_eq!(status(&mut q), "prelaunch");
    assert!(q.events.is_empty());
    q.cmd(r#"{"execute":"cont"}"#);
    let e = q.event_names(3);
    assert_eq!(e, vec!["RESUME", "SHUTDOWN", "STOP"]);
    assert_eq!(status(&mut q), "shutdown");
    let r = q.cmd(r#"{"execute":"cont"}"#);
    assert_eq!(
        r["error"]["desc"],
        "Resetting the Virtual Machine is required"
    );
    assert!(
        sim.child.try_wait().unwrap().is_none(),
        "-no-shutdown keeps it alive"
    );
}

#[test]
fn shutdown_event_data() {
    let mut sim = Sim::spawn(&["-sim-powerdown-ms", "10"]);
    let mut q = sim.qmp();
    q.cmd(r#"{"execute":"system_powerdown"}"#);
    q.next_event();
    let e = q.next_event();
    assert_eq!(
        e["data"],
        json!({"guest": true, "reason": "guest-shutdown"})
    );
    assert!(sim.wait_exit().success());
}

#[test]
fn quit_replies_and_exits() {
    let mut sim = Sim::spawn(&[]);
    let mut q = sim.qmp();
    let r = q.cmd(r#"{"execute":"quit","id":"q"}"#);
    assert_eq!(r, json!({"return": {}, "id": "q"}));
    let e = q.events.pop_front().expect("SHUTDOWN before the reply");
    assert_eq!(
        e["data"],
        json!({"guest": false, "reason": "host-qmp-quit"})
    );
    assert_eq!(sim.wait_exit().code(), Some(0));
    assert!(!sim.ctl.exists());
}

#[test]
fn sigterm_is_host_signal_shutdown() {
    let mut sim = Sim::spawn(&["-no-shutdown"]);
    let mut q = sim.qmp();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sim.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM our own child");
    let e = q.next_event();
    assert_eq!(e["event"], "SHUTDOWN");
    assert_eq!(e["data"]["reason"], "host-signal");
    assert_eq!(sim.wait_exit().code(), Some(0));
}

#[test]
fn daemonize_and_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let mon = dir.path().join("m.sock");
    let pidfile = dir.path().join("vm.pid");
    let st = Command::new(BIN)
        .args(["-daemonize", "-S", "-pidfile"])
        .arg(&pidfile)
        .arg("-chardev")
        .arg(format!(
            "socket,id=charmonitor,path={},server,nowait",
            mon.display()
        ))
        .args(["-mon", "chardev=charmonitor,id=monitor,mode=control"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output() // returns once the parent exited and the child let go of stdio
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    // Both exist the moment the parent has exited.
    assert!(mon.exists());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    let s = std::os::unix::net::UnixStream::connect(&mon).unwrap();
    let mut q = Qmp::new(s);
    q.line();
    q.cmd(r#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(status(&mut q), "prelaunch");
    q.cmd(r#"{"execute":"quit"}"#);
    poll("daemon exit", || (!pid_alive(pid)).then_some(()));
    assert!(!pidfile.exists(), "pidfile removed at exit");
}

/// The pidfile is locked as QEMU locks it, for as long as the process
/// runs: a second instance with the same pidfile fails before it creates
/// its sockets, so it never replaces the first one's monitor.
#[test]
fn a_locked_pidfile_stops_a_second_instance_before_its_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("vm.pid");
    let pidfile_s = pidfile.to_string_lossy().into_owned();
    let mut sim = Sim::spawn(&["-S", "-pidfile", &pidfile_s]);
    let mut q = sim.qmp();
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, sim.pid());
    assert_eq!(lock_holder(&pidfile), Some(pid), "locked by the instance");

    let second_mon = dir.path().join("second.sock");
    let out = Command::new(BIN)
        .args(["-S", "-pidfile", &pidfile_s, "-qmp"])
        .arg(format!("unix:{},server=on,wait=off", second_mon.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Cannot lock pid file"), "{err}");
    assert!(!second_mon.exists(), "failed before its sockets");
    // The first one is untouched, and still answers.
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(status(&mut q), "prelaunch");
    q.cmd(r#"{"execute":"quit"}"#);
    sim.wait_exit();
    assert_eq!(lock_holder(&pidfile), None, "released at exit");
}

/// The pid holding a POSIX write lock on `path`, as a manager tests it.
fn lock_holder(path: &std::path::Path) -> Option<i32> {
    let f = std::fs::File::open(path).ok()?;
    let mut probe = libc::flock {
        l_type: libc::F_RDLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETLK(&mut probe)).ok()?;
    (i32::from(probe.l_type) != libc::F_UNLCK).then_some(probe.l_pid)
}

#[test]
fn reconnect_after_disconnect() {
    let sim = Sim::spawn(&["-S"]);
    let mut q = sim.qmp();
    q.cmd(r#"{"execute":"cont"}"#);
    drop(q);
    // A restarted manager connects again: new greeting, new negotiation.
    let (mut q, g) = sim.connect();
    assert!(String::from_utf8(g).unwrap().starts_with("{\"QMP\""));
    let r = q.cmd(r#"{"execute":"query-status"}"#);
    assert_eq!(r["error"]["class"], "CommandNotFound");
    q.cmd(r#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(status(&mut q), "running");
    drop(q);
    let mut q = sim.qmp();
    assert_eq!(status(&mut q), "running");
}

#[test]
fn inherited_listening_fd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inherited.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fd = l.as_raw_fd();
    // Duplicate onto a descriptor without close-on-exec for the child.
    // SAFETY: plain descriptor duplication.
    let child_fd = unsafe { libc::fcntl(fd, libc::F_DUPFD, 100) };
    assert!(child_fd >= 100);
    let mut child = Command::new(BIN)
        .args(["-S", "-chardev"])
        .arg(format!(
            "socket,id=charmonitor,fd={child_fd},server=on,wait=off"
        ))
        .args(["-mon", "chardev=charmonitor,id=monitor,mode=control"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SAFETY: our copy is no longer needed.
    unsafe { libc::close(child_fd) };
    drop(l);
    let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut q = Qmp::new(s);
    assert!(String::from_utf8(q.line()).unwrap().starts_with("{\"QMP\""));
    q.cmd(r#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(status(&mut q), "prelaunch");
    let _ = child.kill();
    let _ = child.wait();
}

fn bad(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "args {args:?}");
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(e.starts_with("qemu-sim: "), "stderr {e:?}");
    e
}

#[test]
fn bad_command_lines() {
    assert!(bad(&["-m"]).contains("requires an argument"));
    bad(&["-m", "lots"]);
    bad(&["-uuid", "not-a-uuid"]);
    bad(&["-mon", "chardev=nope,mode=control"]);
    bad(&["-chardev", "pty,id=c", "-mon", "chardev=c,mode=control"]);
    bad(&["-qmp", "tcp:127.0.0.1:4444,server=on"]);
    bad(&[
        "-chardev",
        "socket,id=c,fd=0,server=on,wait=off",
        "-mon",
        "chardev=c,mode=control",
    ]);
    bad(&["-sim-flood", "RTC_CHANGE:fast"]);
    bad(&["-qmp", "unix:/nonexistent-dir/x.sock,server=on,wait=off"]);
    let out = Command::new(BIN).arg("-version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("QEMU emulator version 7.2"));
}

#[test]
fn ignores_manager_options() {
    let sim = Sim::spawn(&[
        "-machine",
        "pc-q35-7.2,usb=off,dump-guest-core=off",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "size=1048576k",
        "-overcommit",
        "mem-lock=off",
        "-smp",
        "2,sockets=2,cores=1,threads=1",
        "-no-user-config",
        "-nodefaults",
        "-nographic",
        "-display",
        "none",
        "-rtc",
        "base=utc",
        "-no-shutdown",
        "-global",
        "ICH9-LPC.disable_s3=1",
        "-boot",
        "strict=on",
        "-blockdev",
        r#"{"driver":"file","filename":"/x.qcow2","node-name":"libvirt-1-storage"}"#,
        "-device",
        "virtio-blk-pci,drive=libvirt-1-format,id=virtio-disk0",
        "-netdev",
        "user,id=n0",
        "-serial",
        "none",
        "-vnc",
        "none",
        "-msg",
        "timestamp=on",
        "-sandbox",
        "on",
        "-object",
        "secret,id=s,data=x",
        "-chardev",
        "pty,id=charserial0",
        "-D",
        "/dev/null",
        "-d",
        "guest_errors",
        "-smbios",
        "type=1",
        "-vga",
        "none",
        "-kernel",
        "/k",
        "-initrd",
        "/i",
        "-append",
        "x y",
        "-some-future-option",
        "value",
    ]);
    let mut q = sim.qmp();
    let r = q.cmd(r#"{"execute":"query-kvm"}"#);
    assert_eq!(r["return"], json!({"enabled": true, "present": true}));
    let r = q.cmd(r#"{"execute":"query-cpus-fast"}"#);
    assert_eq!(r["return"].as_array().unwrap().len(), 2);
    assert_eq!(
        q.cmd(r#"{"execute":"query-balloon"}"#)["return"]["actual"],
        1u64 << 30
    );
    let r =
        q.cmd(r#"{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}"#);
    assert_eq!(r["return"], "");
    let r = q.cmd(r#"{"execute":"device_del","arguments":{"id":"virtio-disk0"}}"#);
    assert_eq!(r["return"], json!({}));
    let e = q.next_event();
    assert_eq!(e["event"], "DEVICE_DELETED");
    assert_eq!(e["data"]["device"], "virtio-disk0");
    let r = q.cmd(r#"{"execute":"device_del","arguments":{"id":"virtio-disk0"}}"#);
    assert_eq!(r["error"]["desc"], "Device 'virtio-disk0' not found");
}

#[test]
fn capability_probes_answer_like_qemu() {
    let sim = Sim::spawn(&["-machine", "none", "-accel", "tcg"]);
    let mut q = sim.qmp();
    let r = q.cmd(r#"{"execute":"query-machines"}"#);
    let machines = r["return"].as_array().unwrap();
    let q35 = machines.iter().find(|m| m["alias"] == "q35").unwrap();
    assert_eq!(q35["name"], "pc-q35-7.2");
    assert_eq!(q35["cpu-max"], 288);
    let default: Vec<_> = machines
        .iter()
        .filter(|m| m["is-default"] == true)
        .collect();
    assert_eq!(default.len(), 1);
    let r = q.cmd(r#"{"execute":"query-cpu-definitions"}"#);
    let host = r["return"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "host")
        .cloned()
        .unwrap();
    assert_eq!(host["unavailable-features"], json!(["kvm"]));
    let r = q.cmd(
        r#"{"execute":"query-cpu-model-expansion","arguments":{"type":"static","model":{"name":"host"}}}"#,
    );
    assert_eq!(r["error"]["class"], "GenericError", "{r}");
    let r = q.cmd(
        r#"{"execute":"qom-list-types","arguments":{"implements":"device","abstract":false}}"#,
    );
    let names: Vec<_> = r["return"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    for want in ["virtio-rng-pci", "qxl-vga", "ich9-intel-hda", "tpm-crb"] {
        assert!(names.iter().any(|n| n == want), "{want}");
    }
    let r = q.cmd(r#"{"execute":"qom-list-types","arguments":{"implements":"x-none"}}"#);
    assert_eq!(r["return"], json!([]));
    assert_eq!(q.cmd(r#"{"execute":"query-chardev"}"#)["return"], json!([]));

    let sim = Sim::spawn(&["-machine", "none", "-accel", "kvm"]);
    let mut q = sim.qmp();
    let r = q.cmd(
        r#"{"execute":"query-cpu-model-expansion","arguments":{"type":"static","model":{"name":"host"}}}"#,
    );
    assert_eq!(r["return"]["model"]["name"], "base", "{r}");
}
