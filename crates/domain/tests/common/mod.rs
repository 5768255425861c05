//! Shared helpers of the integration tests: fixed caps/launch parameters
//! for goldens, and a raw QMP client (line-delimited JSON over a UNIX
//! socket, deliberately independent of the qmp crate).
#![allow(dead_code)]

use domain::{Accel, DomainDef, EmulatorCaps, LaunchParams, MachineType};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn golden_caps() -> EmulatorCaps {
    let m = |name: &str, alias: Option<&str>, def: bool, max: u32| MachineType {
        name: name.into(),
        alias: alias.map(Into::into),
        is_default: def,
        cpu_max: Some(max),
        deprecated: false,
        default_cpu_type: None,
    };
    EmulatorCaps {
        version: (7, 2, 22),
        machines: vec![
            m("pc-i440fx-7.2", Some("pc"), true, 255),
            m("pc-q35-7.2", Some("q35"), false, 288),
            m("pc-q35-7.1", None, false, 288),
        ],
        kvm: true,
        ..EmulatorCaps::default()
    }
}

/// The run directory is named after the UUID, as the driver's is (which
/// is how a live XML's channel paths are recognised).
pub fn golden_launch(def: &DomainDef, accel: Accel) -> LaunchParams {
    let (name, uuid) = (&def.name, def.uuid);
    LaunchParams {
        qmp_socket: PathBuf::from(format!("/run/ferrovirt/{name}/qmp.sock")),
        pidfile: Some(PathBuf::from(format!("/run/ferrovirt/{name}/qemu.pid"))),
        domain_run_dir: PathBuf::from(format!("/run/ferrovirt/{uuid}")),
        accel,
        daemonize: true,
        // Descriptors the driver would hand over for tap-backed NICs.
        taps: (0..8).map(|i| Some(40 + i)).collect(),
        vhost_net: true,
        spice_port: Some(5910),
        monitor_fd: None,
        bound_sockets: Vec::new(),
    }
}

pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Fails the test with a clear message when QEMU is not installed.
pub fn require_qemu() {
    assert!(
        Path::new(QEMU).exists(),
        "{QEMU} is missing: install the qemu-system-x86 package to run this test"
    );
}

/// TCG, which works on every host; `FERROVIRT_TEST_ACCEL=kvm` asks for KVM
/// where it really runs guests (some nested hosts expose a /dev/kvm that
/// opens but cannot run them in useful time).
pub fn test_accel() -> Accel {
    match std::env::var("FERROVIRT_TEST_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

/// A private temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "ferrovirt-domain-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct RawQmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    pub events: Vec<serde_json::Value>,
}

impl RawQmp {
    /// Connects (retrying until `deadline`), reads the greeting and
    /// negotiates capabilities.
    pub fn connect(path: &Path, deadline: Duration) -> RawQmp {
        let start = Instant::now();
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot connect to QMP socket {}: {e}", path.display()),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut q = RawQmp {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            events: Vec::new(),
        };
        let greeting = q.read_line().expect("QMP greeting");
        assert!(
            greeting.get("QMP").is_some(),
            "not a QMP greeting: {greeting}"
        );
        q.execute("qmp_capabilities", None);
        q
    }

    /// Connects like [`RawQmp::connect`], but gives up as soon as `child`
    /// exits (QEMU refused its command line) or the deadline passes.
    pub fn try_connect(
        path: &Path,
        deadline: Duration,
        child: &mut std::process::Child,
    ) -> Result<RawQmp, String> {
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("QEMU exited with {st}"));
            }
            if let Ok(sock) = UnixStream::connect(path) {
                return Self::greet(sock).map_err(|e| {
                    let st = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    format!("{e} (QEMU exited with {st})")
                });
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                return Err(format!("no QMP socket within {deadline:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads the greeting and negotiates, reporting failures instead of
    /// panicking.
    fn greet(s: UnixStream) -> Result<RawQmp, String> {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            Ok(_) => return Err("QMP closed before its greeting".into()),
            Err(e) => return Err(format!("QMP greeting: {e}")),
        }
        let mut q = RawQmp {
            reader,
            writer: s,
            events: Vec::new(),
        };
        q.execute("qmp_capabilities", None);
        Ok(q)
    }

    /// One JSON line, `None` at EOF.
    pub fn read_line(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("QMP line is JSON")),
            Err(e) => panic!("QMP read failed: {e}"),
        }
    }

    pub fn execute(&mut self, cmd: &str, args: Option<serde_json::Value>) -> serde_json::Value {
        let mut m = serde_json::json!({ "execute": cmd });
        if let Some(a) = args {
            m["arguments"] = a;
        }
        // One write for the whole line: `writeln!` may write the JSON and the
        // newline separately, and QEMU runs a command (such as `quit`, which
        // then closes the socket) as soon as its JSON object is complete.
        self.writer
            .write_all(format!("{m}\n").as_bytes())
            .expect("QMP write");
        loop {
            let v = self
                .read_line()
                .expect("QMP closed while waiting for a reply");
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if let Some(r) = v.get("return") {
                return r.clone();
            }
            panic!("QMP error for {cmd}: {v}");
        }
    }

    /// Reads events until EOF (QEMU exited) or the socket timeout.
    pub fn drain_until_eof(&mut self, timeout: Duration) {
        self.writer.set_read_timeout(Some(timeout)).unwrap();
        while let Some(v) = self.read_line() {
            if v.get("event").is_some() {
                self.events.push(v);
            }
        }
    }
}

/// Launch parameters for a real QEMU run in `dir`, and caps with no probed
/// machines (so "q35" passes through as QEMU's own alias).
pub fn real_launch(dir: &TempDir, accel: Accel) -> (LaunchParams, EmulatorCaps) {
    let launch = LaunchParams {
        qmp_socket: dir.0.join("qmp.sock"),
        pidfile: Some(dir.0.join("qemu.pid")),
        domain_run_dir: dir.0.clone(),
        accel,
        daemonize: false,
        ..LaunchParams::default()
    };
    let caps = EmulatorCaps {
        version: (7, 2, 0),
        machines: vec![],
        kvm: accel == Accel::Kvm,
        ..EmulatorCaps::default()
    };
    (launch, caps)
}
