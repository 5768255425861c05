//! `virsh console` against the tiny test guest under real QEMU, at a
//! pseudo-terminal (tests/python/console.py) as a user types: the boot
//! marker comes through, a typed command's output comes back, Ctrl-]
//! leaves, a second session is refused unless `--force` takes over, the
//! domain stopping ends the session cleanly, and a daemon restart ends it
//! with an error while the guest runs on and its console opens again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::{ChildLines, Daemon, tail};
use testkit::guest::READY_MARKER;
use testkit::tools::{PYTHON3, Tool};

/// Boot under TCG on a loaded 2-core machine takes ~10 s; allow a lot more.
const BOOT: Duration = Duration::from_secs(180);
const STEP: u64 = 20;

/// The guest with a pty serial and a console on it.
fn guest_xml(name: &str) -> String {
    let g = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>\
         <cmdline>console=ttyS0 quiet</cmdline></os><features><acpi/></features>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <serial type='pty'><target port='0'/></serial>\
         <console type='pty'><target type='serial' port='0'/></console></devices></domain>",
        g.kernel.display(),
        g.initrd.display()
    )
}

/// One `virsh console` at a terminal, driven line by line.
struct Console {
    child: Child,
    stdin: ChildStdin,
    answers: ChildLines,
}

impl Console {
    fn open(d: &Daemon, dom: &str, options: &[&str]) -> Console {
        Tool::Python3Libvirt.require();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/console.py");
        let mut child = Command::new(PYTHON3)
            .arg(script)
            .args([d.uri.as_str(), dom])
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run console.py");
        let stdin = child.stdin.take().expect("stdin");
        let answers = ChildLines::new(&mut child);
        Console {
            child,
            stdin,
            answers,
        }
    }

    fn command(&mut self, line: &str, secs: u64) -> String {
        writeln!(self.stdin, "{line}").expect("to console.py");
        self.stdin.flush().expect("flush");
        let wait = Duration::from_secs(secs + 10);
        self.answers
            .wait_for(|_| true, wait)
            .unwrap_or_else(|| panic!("console.py did not answer '{line}'"))
    }

    fn try_expect(&mut self, secs: u64, pattern: &str) -> Result<(), String> {
        let a = self.command(&format!("expect {secs} {pattern}"), secs);
        if a == "ok" { Ok(()) } else { Err(a) }
    }

    fn expect(&mut self, secs: u64, pattern: &str) {
        if let Err(a) = self.try_expect(secs, pattern) {
            panic!("console never printed /{pattern}/: {a}");
        }
    }

    /// Types `text` (`\r` is Enter, `\x1d` is Ctrl-]).
    fn send(&mut self, text: &str) {
        writeln!(self.stdin, "send {text}").expect("to console.py");
        self.stdin.flush().expect("flush");
    }

    /// Presses Enter until the shell's prompt shows (a freshly opened pty
    /// may miss the very first keystroke while QEMU notices its reader).
    fn prompt(&mut self) {
        for _ in 0..3 {
            self.send(r"\r");
            if self.try_expect(10, "# ").is_ok() {
                return;
            }
        }
        panic!("no shell prompt on the console");
    }

    /// Runs a shell command whose output only the shell can compute.
    fn run(&mut self, command: &str, output: &str) {
        self.prompt();
        self.send(&format!(r"{command}\r"));
        self.expect(STEP, output);
    }

    /// Waits for virsh to end: its exit code and last output.
    fn exit(mut self, secs: u64) -> (i32, String) {
        let a = self.command(&format!("exit {secs}"), secs);
        let _ = self.child.wait();
        let (word, rest) = a.split_once(' ').unwrap_or((&a, ""));
        assert_eq!(word, "exit", "virsh console did not end: {a}");
        let (code, out) = rest.split_once(' ').unwrap_or((rest, ""));
        (code.parse().expect("exit code"), out.to_owned())
    }
}

/// Console sessions the daemon has opened so far (its log says so).
fn sessions(d: &Daemon) -> usize {
    d.log().matches("console session opened").count()
}

/// Waits until the daemon has opened `n` console sessions: virsh prints
/// its escape-character line before it asks for the console, so that line
/// alone does not mean the session is open.
fn wait_sessions(d: &Daemon, n: usize) {
    let opened = testkit::wait::until(Duration::from_secs(STEP), || sessions(d) >= n);
    assert!(
        opened,
        "the daemon never opened console session {n}\n{}",
        tail(&d.log(), 30)
    );
}

#[test]
fn virsh_console_reaches_the_guest_shell_force_takes_over_and_restarts_end_it() {
    let mut d = Daemon::start();
    let f = d.file("g.xml", &guest_xml("con1"));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    // Paused until the console is attached, so the boot is seen whole.
    d.virsh_ok(&["start", "--paused", "con1"]);
    let mut a = Console::open(&d, "con1", &[]);
    a.expect(STEP, "Escape character");
    d.virsh_ok(&["resume", "con1"]);
    a.expect(BOOT.as_secs(), READY_MARKER);
    a.run("echo ferrovirt-$((6*7))", "ferrovirt-42");

    // A second session is refused while the first is open...
    let b = Console::open(&d, "con1", &[]);
    let (code, out) = b.exit(STEP);
    assert_ne!(code, 0);
    assert!(out.contains("Active console session exists"), "{out}");
    // ...unless forced: the first ends with an error, the second works.
    let mut c = Console::open(&d, "con1", &["--force"]);
    c.expect(STEP, "Escape character");
    let (code, out) = a.exit(STEP);
    assert_ne!(code, 0);
    assert!(out.contains("taken over by another session"), "{out}");
    c.run("echo again-$((2+3))", "again-5");
    c.send(r"\x1d");
    let (code, out) = c.exit(STEP);
    assert_eq!(code, 0, "Ctrl-] leaves cleanly: {out}");

    // A daemon restart ends the session with an error; the guest runs on.
    let opened = sessions(&d);
    let mut e = Console::open(&d, "con1", &[]);
    e.expect(STEP, "Escape character");
    wait_sessions(&d, opened + 1);
    let pid = d.pid();
    testkit::processes::signal(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let (code, out) = e.exit(STEP);
    assert_ne!(code, 0);
    assert!(
        out.contains("shutting down"),
        "{out}\n{}",
        tail(&d.log(), 30)
    );
    d.spawn();
    assert_eq!(d.virsh_ok(&["domstate", "con1"]).trim(), "running");
    // Killed, it cannot say goodbye: virsh reports the lost connection.
    let opened = sessions(&d);
    let mut g = Console::open(&d, "con1", &[]);
    g.expect(STEP, "Escape character");
    wait_sessions(&d, opened + 1);
    d.kill();
    g.expect(STEP, "Disconnected from");
    g.send(r"\x1d");
    let _ = g.exit(STEP);
    d.spawn();

    // The chardev (and its tty lock) is free again after both.
    let mut h = Console::open(&d, "con1", &[]);
    h.expect(STEP, "Escape character");
    h.run("echo back-$((40+2))", "back-42");
    // The domain stopping ends the session cleanly.
    d.virsh_ok(&["destroy", "con1"]);
    let (code, out) = h.exit(STEP);
    assert_eq!(code, 0, "stopped domain: {out}");
}

#[test]
fn a_unix_channel_opens_once_unless_forced() {
    let d = Daemon::start();
    let xml = common::real_domain_xml("chan").replace(
        "</devices>",
        "<channel type='unix'><source mode='bind'/>\
         <target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>",
    );
    let f = d.file("chan.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", "chan"]);
    let script = format!(
        "import libvirt\n\
         c = libvirt.open('{}')\n\
         dom = c.lookupByName('chan')\n\
         a = c.newStream(0)\n\
         dom.openChannel('org.qemu.guest_agent.0', a, 0)\n\
         a.send(b'{{\"execute\":\"guest-ping\"}}\\n')\n\
         try:\n    dom.openChannel('org.qemu.guest_agent.0', c.newStream(0), 0)\n\
         except libvirt.libvirtError as e:\n    print('second', e.get_error_code(), e)\n\
         b = c.newStream(0)\n\
         dom.openChannel('channel0', b, libvirt.VIR_DOMAIN_CHANNEL_FORCE)\n\
         print('forced ok')\n\
         b.abort()\n",
        d.uri
    );
    let out = testkit::tools::python3()
        .arg("-c")
        .arg(script)
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("second 9 ") && text.contains("Active console session exists"),
        "{text}"
    );
    assert!(text.contains("forced ok"), "{text}");
    d.virsh_ok(&["destroy", "chan"]);
}

#[test]
fn consoles_refuse_what_they_cannot_open_with_libvirts_errors() {
    let d = Daemon::start();
    // A diskless domain whose serial is a file: running, but no pty.
    let xml = common::real_domain_xml("nocon").replace(
        "</devices>",
        &format!(
            "<serial type='file'><source path='{}'/></serial></devices>",
            d.root.path().join("s.log").display()
        ),
    );
    let f = d.file("n.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let py = |stmt: &str| {
        let script = format!(
            "import libvirt\nc = libvirt.open('{}')\ndom = c.lookupByName('nocon')\n\
             try:\n    {stmt}\n    print('ok')\nexcept libvirt.libvirtError as e:\n    print(e.get_error_code(), e)\n",
            d.uri
        );
        let out = testkit::tools::python3()
            .arg("-c")
            .arg(script)
            .output()
            .expect("python");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // Not running: VIR_ERR_OPERATION_INVALID (55).
    let out = py("dom.openConsole(None, c.newStream(0), 0)");
    assert!(out.starts_with("55 "), "{out}");
    d.virsh_ok(&["start", "nocon"]);
    // A file serial is no console (libvirt: internal error, 1).
    let out = py("dom.openConsole(None, c.newStream(0), 0)");
    assert!(
        out.starts_with("1 ") && out.contains("not using a PTY"),
        "{out}"
    );
    let out = py("dom.openConsole('serial7', c.newStream(0), 0)");
    assert!(
        out.contains("cannot find character device serial7"),
        "{out}"
    );
    // It has no channel: libvirt's error for a missing one.
    let out = py("dom.openChannel('org.qemu.guest_agent.0', c.newStream(0), 0)");
    assert!(out.contains("cannot find channel"), "{out}");
    // Flags libvirt does not define are refused.
    let out = py("dom.openConsole(None, c.newStream(0), 4)");
    assert!(out.starts_with("8 "), "{out}");
    d.virsh_ok(&["destroy", "nocon"]);
}
