//! Harness of the end-to-end tests: a ferrovirtd under a temporary root
//! (started and stopped by `testkit`), the real `virsh`, domain XML for
//! real QEMU and qemu-sim, and the protocol-level helpers of the stress
//! and robustness tests (raw frames, log watching, child output).
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod counting;
pub mod pki;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use testkit::daemon::{Ferrovirtd, Spec};
use testkit::tools::Tool;
use testkit::{processes, wait};

pub use testkit::tools::virsh;
pub use testkit::wait::wait_until;

/// A running ferrovirtd on its own temporary root. Dropping it kills the
/// daemon and every QEMU (real or simulated) started under its root, then
/// removes the root: a failing test leaves nothing behind.
pub struct Daemon {
    // Declared first, so dropped first: processes die before the root goes.
    process: Ferrovirtd,
    pub root: tempfile::TempDir,
    pub uri: String,
    pub ro_uri: String,
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// Starts a daemon; `extra_config` is appended to its TOML config.
    pub fn start_with(extra_config: &str) -> Daemon {
        Self::start_spec(extra_config, None)
    }

    /// Starts a daemon inside the network namespace `netns` (which the
    /// test made), with the host-networking defaults a libvirt user gets.
    pub fn start_in_netns(netns: &testkit::netns::NetNs, extra_config: &str) -> Daemon {
        Self::start_spec(extra_config, Some(netns.name().to_owned()))
    }

    fn start_spec(extra_config: &str, netns: Option<String>) -> Daemon {
        let root = tempfile::Builder::new()
            .prefix("fvd")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let spec = Spec {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_ferrovirtd")),
            root: root.path().to_path_buf(),
            config: format!("monitor_timeout_secs = 5\ndestroy_grace_secs = 3\n{extra_config}\n"),
            log_filter: "info,qemu=debug".into(),
            netns,
        };
        let log = root.path().join("ferrovirtd.log");
        let process = Ferrovirtd::start(spec).unwrap_or_else(|e| {
            panic!(
                "{e}\n{}",
                tail(&std::fs::read_to_string(&log).unwrap_or_default(), 60)
            )
        });
        Daemon {
            uri: process.uri(),
            ro_uri: process.ro_uri(),
            process,
            root,
        }
    }

    /// (Re)starts the daemon process on the same root.
    pub fn spawn(&mut self) {
        if let Err(e) = self.process.spawn() {
            panic!("{e}\n{}", tail(&self.log(), 60));
        }
    }

    /// (Re)starts the daemon process on the same root with extra
    /// environment variables (this process only).
    pub fn spawn_with_env(&mut self, env: &[(&str, &std::ffi::OsStr)]) {
        if let Err(e) = self.process.spawn_with_env(env) {
            panic!("{e}\n{}", tail(&self.log(), 60));
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().expect("daemon running")
    }

    /// Kills the daemon with SIGKILL (QEMUs keep running).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Where the daemon's QEMUs, running as their own user, may create
    /// files (qemu-sim's control sockets).
    pub fn qemu_dir(&self) -> PathBuf {
        self.process.qemu_dir()
    }

    /// The read-write socket.
    pub fn sock(&self) -> PathBuf {
        self.process.socket()
    }

    /// The read-only socket.
    pub fn ro_sock(&self) -> PathBuf {
        self.process.ro_socket()
    }

    pub fn virsh(&self, args: &[&str]) -> Output {
        virsh(&self.uri, args)
    }

    /// Runs virsh and insists it succeeded; returns stdout.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?} failed: {}\n--- daemon log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 60)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `contents` into the root as `name` and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.root.path().join(name);
        std::fs::write(&p, contents).expect("write file");
        p
    }

    /// Polls the daemon log (with a deadline) until it contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let found = wait::until(Duration::from_secs(30), || self.log().contains(needle));
        assert!(
            found,
            "daemon never logged '{needle}'\n{}",
            tail(&self.log(), 40)
        );
    }

    /// Polls `virsh domstate --reason` until it prints `want`.
    pub fn wait_state(&self, dom: &str, want: &str, timeout: Duration) {
        let mut last = String::new();
        let reached = wait::until(timeout, || {
            let out = self.virsh(&["domstate", "--reason", dom]);
            last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            last == want
        });
        assert!(
            reached,
            "domain {dom} never reached '{want}' (last: '{last}')\n{}",
            tail(&self.log(), 60)
        );
    }

    /// The daemon's resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        testkit::procfs::rss_kib(self.pid()).expect("daemon is running")
    }

    /// Number of open file descriptors of the daemon.
    pub fn fd_count(&self) -> usize {
        testkit::procfs::fd_count(self.pid()).unwrap_or(0)
    }

    /// How many of the daemon's descriptors are sockets.
    pub fn socket_count(&self) -> usize {
        testkit::procfs::socket_count(self.pid()).unwrap_or(0)
    }

    /// A reader of the daemon log that returns only what was appended
    /// since the previous call.
    pub fn log_tail(&self) -> LogTail {
        LogTail {
            path: self.process.log_path(),
            offset: 0,
        }
    }
}

/// The last `lines` lines of `s`.
pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Defines the domain `xml` (written under the root as `NAME.xml`) with
/// virsh and starts it.
pub fn define_start(d: &Daemon, name: &str, xml: &str) {
    let f = d.file(&format!("{name}.xml"), xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
}

/// Live (non-zombie) pids whose command line mentions `needle`; the
/// driver's own lookup, so tests see processes the way re-adoption does.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    processes::with_arg(needle)
}

/// A small diskless real-QEMU domain (it sits in firmware; enough for
/// lifecycle, suspend/resume and destroy), under TCG unless the tests are
/// asked for KVM (`testkit::accel`).
pub fn real_domain_xml(name: &str) -> String {
    format!(
        "<domain type='{}'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  <devices>\n    \
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n</domain>\n",
        testkit::accel::test_domain_type()
    )
}

/// The qemu-sim binary of this build (built if missing).
pub fn qemu_sim() -> PathBuf {
    testkit::binaries::build("qemu-sim").unwrap_or_else(|e| panic!("{e}"))
}

/// A qemu-sim domain; `args` go through `<qemu:commandline>` (fault
/// injection options such as `-sim-flood RTC_CHANGE:100000`).
pub fn sim_domain_xml(name: &str, args: &[&str]) -> String {
    let extra: String = args
        .iter()
        .map(|a| format!("    <qemu:arg value='{a}'/>\n"))
        .collect();
    format!(
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>{name}</name>\n  \
         <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  \
         <devices>\n    <emulator>{}</emulator>\n  </devices>\n  <qemu:commandline>\n{extra}  </qemu:commandline>\n</domain>\n",
        qemu_sim().display()
    )
}

/// Sends one command to a qemu-sim control socket (`-sim-control PATH`),
/// once the simulator created it, and returns its one-line answer.
pub fn sim_control(path: &Path, cmd: &str) -> String {
    wait::for_path(path, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    testkit::control::send(path, cmd, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls the simulator's `stats` (with a deadline) until its flood is
/// over; returns that last answer.
pub fn wait_flood_end(ctl: &Path) -> String {
    let mut stats = String::new();
    let ended = wait::until(Duration::from_secs(30), || {
        stats = sim_control(ctl, "stats");
        stats.contains("\"flood\":false")
    });
    assert!(ended, "flood never ended: {stats}");
    stats
}

/// An `rpc::Client` connected the way libvirt clients connect:
/// `AUTH_LIST`, then `CONNECT_OPEN`.
pub async fn rpc_open(path: &Path) -> rpc::Client {
    testkit::client::open(path)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Defines and starts a domain through `c`; returns it with its id.
pub async fn define_and_start(c: &rpc::Client, xml: &str) -> rpc::protocol::remote::NonnullDomain {
    let dom = c.define_xml(xml).await.expect("define");
    c.create(&dom).await.expect("start")
}

/// Incremental reader of a log file (see [`Daemon::log_tail`]).
pub struct LogTail {
    path: PathBuf,
    offset: u64,
}

impl LogTail {
    /// Text appended since the last call, ANSI colours removed.
    pub fn new_text(&mut self) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return String::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return String::new();
        }
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        // Only consume complete lines.
        let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        self.offset += end as u64;
        strip_ansi(&String::from_utf8_lossy(&buf[..end]))
    }
}

/// Removes ANSI escape sequences (tracing colours field names).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                for c in it.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The stdout of a child, line by line, readable with deadlines.
pub struct ChildLines {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl ChildLines {
    pub fn new(child: &mut Child) -> ChildLines {
        use std::io::BufRead;
        let out = child.stdout.take().expect("child stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildLines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Every line (those already seen and the rest up to EOF, or until
    /// the deadline), newline-terminated.
    pub fn rest(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => break,
            }
        }
        self.seen.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Waits for a line satisfying `pred`; `None` at the deadline or EOF.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

/// Waits for a child to exit; kills it at the deadline (returns `None`).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    wait::for_exit_or_kill(child, timeout)
}

/// A complete CALL frame of the REMOTE program (length word included).
pub fn call_frame(procedure: i32, serial: u32, body: &[u8]) -> Vec<u8> {
    use rpc::header::{Header, MessageStatus, MessageType};
    let h = Header::new(
        rpc::protocol::remote::PROGRAM,
        rpc::protocol::remote::VERSION,
        procedure,
        MessageType::Call,
        serial,
        MessageStatus::Ok,
    );
    rpc::frame::encode_frame(&h, body, rpc::frame::MESSAGE_MAX)
        .expect("frame")
        .to_vec()
}

/// Reads one frame from a raw stream: `Ok(None)` at a clean EOF.
pub async fn read_frame(
    s: &mut tokio::net::UnixStream,
) -> std::io::Result<Option<(rpc::header::Header, Vec<u8>)>> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(28..=rpc::frame::MESSAGE_MAX + 4).contains(&len) {
        return Err(std::io::Error::other(format!("bad frame length {len}")));
    }
    let mut rest = vec![0u8; len - 4];
    s.read_exact(&mut rest).await?;
    let h = rpc::header::Header::decode(&mut rpc::xdr::Decoder::new(&rest[..24]))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Some((h, rest[24..].to_vec())))
}

/// Sends a CALL on a raw stream and reads its reply (no events may be
/// pending on that stream). Panics on an error reply.
pub async fn raw_call(
    s: &mut tokio::net::UnixStream,
    procedure: i32,
    serial: u32,
    body: &[u8],
) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    s.write_all(&call_frame(procedure, serial, body))
        .await
        .expect("write call");
    let (h, body) = tokio::time::timeout(Duration::from_secs(20), read_frame(s))
        .await
        .expect("reply in time")
        .expect("read reply")
        .expect("reply before EOF");
    assert_eq!(h.serial, serial, "reply to another call");
    assert_eq!(
        h.status,
        0,
        "call {procedure} failed: {:?}",
        rpc::xdr::from_bytes::<rpc::protocol::remote::RemoteError>(&body)
    );
    body
}

/// A connection that did the libvirt handshake on a raw socket (a client
/// whose reading the test controls).
pub async fn raw_open(path: &Path) -> tokio::net::UnixStream {
    use rpc::protocol::remote::{self, procedure};
    let mut s = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    raw_call(&mut s, procedure::AUTH_LIST, 1, &[]).await;
    let open = rpc::xdr::to_bytes(&remote::ConnectOpenArgs {
        name: Some("qemu:///system".into()),
        flags: 0,
    });
    raw_call(&mut s, procedure::CONNECT_OPEN, 2, &open).await;
    s
}

/// A `virsh event --loop` listener on a daemon, started only once the
/// daemon has registered its callbacks (so no event can be missed).
pub struct EventListener {
    child: Child,
    lines: ChildLines,
}

impl EventListener {
    /// Runs `virsh -c URI event --loop --timeout 240 ARGS` and waits until
    /// the daemon logged `registrations` more callback registrations.
    pub fn start(d: &Daemon, args: &[&str], registrations: usize) -> EventListener {
        Tool::Virsh.require();
        let registered = || d.log().matches("event callback registered").count();
        let before = registered();
        let mut child = std::process::Command::new("virsh")
            .args(["-c", &d.uri, "event", "--loop", "--timeout", "240"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn virsh event");
        let lines = ChildLines::new(&mut child);
        wait_until("virsh event to register", Duration::from_secs(30), || {
            registered() >= before + registrations
        });
        EventListener { child, lines }
    }

    /// Waits (with a deadline) for a printed line equal to `want`; panics
    /// with everything printed so far if it does not come.
    pub fn expect_line(&mut self, want: &str, timeout: Duration) {
        if self.lines.wait_for(|l| l == want, timeout).is_none() {
            panic!(
                "virsh event never printed '{want}'; it printed:\n{}",
                self.lines.seen.join("\n")
            );
        }
    }

    /// As [`EventListener::expect_line`], for a line starting with `prefix`.
    pub fn expect_prefix(&mut self, prefix: &str, timeout: Duration) {
        if self
            .lines
            .wait_for(|l| l.starts_with(prefix), timeout)
            .is_none()
        {
            panic!(
                "virsh event never printed '{prefix}...'; it printed:\n{}",
                self.lines.seen.join("\n")
            );
        }
    }

    /// Waits (with a deadline) for the line `last`, then ends the listener
    /// and returns everything it printed.
    pub fn stop_after(mut self, last: &str) -> String {
        let _ = self.lines.wait_for(|l| l == last, Duration::from_secs(30));
        self.stop()
    }

    /// Ends the listener (SIGINT makes virsh exit) and returns everything
    /// it printed.
    pub fn stop(mut self) -> String {
        let _ = processes::signal(self.child.id(), Signal::SIGINT);
        let _ = self.child.wait();
        self.lines.rest(Duration::from_secs(10))
    }
}

/// Asserts every string of `wanted` appears in `text`, in this order.
pub fn assert_in_order(text: &str, wanted: &[&str]) {
    let mut at = 0;
    for w in wanted {
        let pos = text[at..]
            .find(w)
            .unwrap_or_else(|| panic!("missing or out of order: '{w}'\n{text}"));
        at += pos + w.len();
    }
}

/// `virsh -c URI ARGS` inside network namespace `ns`, not yet run.
pub fn virsh_in_netns(
    ns: &testkit::netns::NetNs,
    uri: &str,
    args: &[&str],
) -> std::process::Command {
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", ns.name(), "virsh", "-c", uri])
        .args(args);
    c
}

/// [`virsh_in_netns`], run: its stdout, or its stderr on failure.
pub fn virsh_in_netns_output(
    ns: &testkit::netns::NetNs,
    uri: &str,
    args: &[&str],
) -> Result<String, String> {
    let out = virsh_in_netns(ns, uri, args).output().expect("run virsh");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
