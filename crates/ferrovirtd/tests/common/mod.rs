//! Shared harness of the end-to-end tests: a ferrovirtd under a temporary
//! root, the real `virsh`, and domain XML for real QEMU and for qemu-sim.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running ferrovirtd on its own root. Dropping it stops the daemon and
/// kills every QEMU (real or simulated) started under its root, so a failing
/// test leaves nothing behind.
pub struct Daemon {
    pub root: tempfile::TempDir,
    pub child: Option<Child>,
    pub uri: String,
    pub ro_uri: String,
    config: PathBuf,
}

pub const STARTUP: Duration = Duration::from_secs(30);

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// Starts a daemon; `extra_config` is appended to its TOML config.
    pub fn start_with(extra_config: &str) -> Daemon {
        let root = tempfile::Builder::new()
            .prefix("fvd")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let config = root.path().join("ferrovirtd.toml");
        std::fs::write(
            &config,
            format!("monitor_timeout_secs = 5\ndestroy_grace_secs = 3\n{extra_config}\n"),
        )
        .expect("write config");
        let sock = root.path().join("run/libvirt-sock");
        let ro = root.path().join("run/libvirt-sock-ro");
        let mut d = Daemon {
            uri: format!("qemu+unix:///system?socket={}", sock.display()),
            ro_uri: format!("qemu+unix:///system?socket={}", ro.display()),
            root,
            child: None,
            config,
        };
        d.spawn();
        d
    }

    /// (Re)starts the daemon process on the same root.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("ferrovirtd.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrovirtd"))
            .arg("--root")
            .arg(self.root.path())
            .arg("--config")
            .arg(&self.config)
            .arg("--log")
            .arg("info,qemu=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ferrovirtd");
        self.child = Some(child);
        let sock = self.root.path().join("run/libvirt-sock");
        let deadline = Instant::now() + STARTUP;
        while UnixStream::connect(&sock).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "ferrovirtd exited during start-up: {status}\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ferrovirtd did not start\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("daemon running")
    }

    /// Kills the daemon with SIGKILL (QEMUs keep running).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id() as i32, 15);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("ferrovirtd.log")).unwrap_or_default()
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

    /// Writes `xml` into the root and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.root.path().join(name);
        std::fs::write(&p, contents).expect("write file");
        p
    }

    /// Polls the daemon log (with a deadline) until it contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "daemon never logged '{needle}'\n{}",
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `virsh domstate --reason` until it prints `want`.
    pub fn wait_state(&self, dom: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = self.virsh(&["domstate", "--reason", dom]);
            last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if last == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "domain {dom} never reached '{want}' (last: '{last}')\n{}",
            tail(&self.log(), 60)
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        kill_processes_under(self.root.path());
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Kills every process whose command line mentions `root` (the QEMUs and
/// simulators a test started), by pid.
pub fn kill_processes_under(root: &Path) {
    for pid in pids_mentioning(&root.to_string_lossy()) {
        unsafe_kill(pid, 9);
    }
}

/// Defines the domain `xml` (written under the root as `NAME.xml`) with
/// virsh and starts it.
pub fn define_start(d: &Daemon, name: &str, xml: &str) {
    let f = d.file(&format!("{name}.xml"), xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", name]);
}

/// Polls `f` until it is true; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Live (non-zombie) pids whose command line mentions `needle`; the
/// driver's own lookup, so tests see processes the way restore does.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    qemu::process::pids_with_arg(needle)
}

pub fn virsh(uri: &str, args: &[&str]) -> Output {
    Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .env("LIBVIRT_DEFAULT_URI", uri)
        .output()
        .expect("run virsh (apt-get install libvirt-clients)")
}

/// Domain type for real QEMU in tests: `qemu` (TCG), which works on every
/// host; `FERROVIRT_TEST_ACCEL=kvm` asks for KVM where it really runs guests
/// (an openable /dev/kvm is not proof of that).
pub fn virt_type() -> &'static str {
    match std::env::var("FERROVIRT_TEST_ACCEL").as_deref() {
        Ok("kvm") => "kvm",
        _ => "qemu",
    }
}

/// A small diskless real-QEMU domain (it sits in firmware; enough for
/// lifecycle, suspend/resume and destroy).
pub fn real_domain_xml(name: &str) -> String {
    format!(
        "<domain type='{}'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  <devices>\n    \
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n</domain>\n",
        virt_type()
    )
}

/// The qemu-sim binary built beside the test (target/debug/qemu-sim).
pub fn qemu_sim() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let sim = dir.join("qemu-sim");
    assert!(
        sim.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        sim.display()
    );
    sim
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

// ---------------------------------------------------------------------------
// Helpers of the stress and robustness tests (flood_clients.rs,
// robustness.rs): protocol-level clients, raw frames, process figures.
// ---------------------------------------------------------------------------

impl Daemon {
    /// The read-write socket.
    pub fn sock(&self) -> PathBuf {
        self.root.path().join("run/libvirt-sock")
    }

    /// The read-only socket.
    pub fn ro_sock(&self) -> PathBuf {
        self.root.path().join("run/libvirt-sock-ro")
    }

    /// The daemon's resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("daemon is running")
    }

    /// Number of open file descriptors of the daemon.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A reader of the daemon log that returns only what was appended
    /// since the previous call.
    pub fn log_tail(&self) -> LogTail {
        LogTail {
            path: self.root.path().join("ferrovirtd.log"),
            offset: 0,
        }
    }
}

/// `VmRSS` of a process in KiB; `None` when it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Summary {
            n: v.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
            self.n,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

/// An `rpc::Client` connected the way libvirt clients connect:
/// `AUTH_LIST`, then `CONNECT_OPEN`.
pub async fn rpc_open(path: &Path) -> rpc::Client {
    let c = rpc::Client::connect(path)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    let _: rpc::protocol::remote::AuthListRet = c
        .call(rpc::protocol::remote::procedure::AUTH_LIST, &())
        .await
        .expect("AUTH_LIST");
    c.open(Some("qemu:///system"), 0)
        .await
        .expect("CONNECT_OPEN");
    c
}

/// Defines and starts a domain through `c`; returns it with its id.
pub async fn define_and_start(c: &rpc::Client, xml: &str) -> rpc::protocol::remote::NonnullDomain {
    let dom = c.define_xml(xml).await.expect("define");
    c.create(&dom).await.expect("start")
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to at least `want`
/// (bounded by the hard limit; children such as the daemon inherit it).
/// Returns the soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> u64 {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls on a properly sized, initialised struct.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.cur < want {
            let new = Rlimit {
                cur: want.min(r.max),
                max: r.max,
            };
            if setrlimit(RLIMIT_NOFILE, &new) == 0 {
                r.cur = new.cur;
            }
        }
    }
    r.cur
}

/// Polls until `path` exists.
pub fn wait_for_path(path: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one command to a qemu-sim control socket (`-sim-control PATH`)
/// and returns its one-line answer.
pub fn sim_control(path: &Path, cmd: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    wait_for_path(path, Duration::from_secs(20));
    let mut s =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("{cmd}\n").as_bytes())
        .expect("write control");
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("control answer to '{cmd}': {e}"));
    line.trim().to_owned()
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
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
        let before = d.log().matches("event callback registered").count();
        let mut child = Command::new("virsh")
            .args(["-c", &d.uri, "event", "--loop", "--timeout", "240"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn virsh event");
        let lines = ChildLines::new(&mut child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.log().matches("event callback registered").count() < before + registrations {
            assert!(Instant::now() < deadline, "virsh event never registered");
            std::thread::sleep(Duration::from_millis(20));
        }
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

    /// Ends the listener (SIGINT makes virsh exit) and returns everything
    /// it printed.
    pub fn stop(mut self) -> String {
        unsafe_kill(self.child.id() as i32, 2);
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
