//! Test helpers: spawn the built simulator and talk raw JSON lines to it.
//! Every wait polls with a deadline; nothing relies on sleeping.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_qemu-sim");
/// Generous: the machine may be loaded by other builds and test threads.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn deadline() -> Instant {
    Instant::now() + DEADLINE
}

/// Polls `f` until it returns Some, or panics at the deadline.
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = deadline();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub struct Sim {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub mon: PathBuf,
    pub ctl: PathBuf,
}

impl Sim {
    /// Starts the simulator with a QMP socket and a control socket plus
    /// `extra` options.
    pub fn spawn(extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let mon = dir.path().join("mon.sock");
        let ctl = dir.path().join("ctl.sock");
        let qmp = format!("unix:{},server=on,wait=off", mon.display());
        let child = Command::new(BIN)
            .args(["-qmp", &qmp, "-sim-control"])
            .arg(&ctl)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qemu-sim");
        Sim {
            child,
            dir,
            mon,
            ctl,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Connects, reads the greeting (returned raw).
    pub fn connect(&self) -> (Qmp, Vec<u8>) {
        let s = poll("monitor socket", || UnixStream::connect(&self.mon).ok());
        let mut q = Qmp::new(s);
        let g = q.line();
        (q, g)
    }

    /// Connects and negotiates capabilities.
    pub fn qmp(&self) -> Qmp {
        let (mut q, _) = self.connect();
        let r = q.cmd(r#"{"execute":"qmp_capabilities"}"#);
        assert_eq!(r, serde_json::json!({"return": {}}));
        q
    }

    /// One control command, one answer line.
    pub fn control(&self, line: &str) -> String {
        let mut s = poll("control socket", || UnixStream::connect(&self.ctl).ok());
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        s.write_all(format!("{line}\n").as_bytes()).expect("write");
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while s.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
            out.push(b[0]);
        }
        String::from_utf8(out).expect("utf8 answer")
    }

    pub fn stats(&self) -> Value {
        let a = self.control("stats");
        let j = a.strip_prefix("ok ").expect("stats answer");
        serde_json::from_str(j).expect("stats json")
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = deadline();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < end, "qemu-sim did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw QMP client.
pub struct Qmp {
    pub s: UnixStream,
    buf: Vec<u8>,
    pub events: VecDeque<Value>,
}

impl Qmp {
    pub fn new(s: UnixStream) -> Qmp {
        Qmp {
            s,
            buf: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Next line (without `\r\n`) within `limit`, or None.
    pub fn line_within(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let end = Instant::now() + limit;
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(p) = self.buf.iter().position(|b| *b == b'\n') {
                let mut l: Vec<u8> = self.buf.drain(..=p).collect();
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Some(l);
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            self.s
                .set_read_timeout(Some(end - now))
                .expect("set timeout");
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    pub fn line(&mut self) -> Vec<u8> {
        self.line_within(DEADLINE).expect("a line from qemu-sim")
    }

    pub fn value(&mut self) -> Value {
        let l = self.line();
        serde_json::from_slice(&l)
            .unwrap_or_else(|e| panic!("bad JSON {e}: {:?}", String::from_utf8_lossy(&l)))
    }

    /// One write: the simulator parses a JSON stream and may act on (and,
    /// for quit, exit after) the object before a separate newline arrives.
    pub fn send(&mut self, raw: &str) {
        let line = format!("{raw}\n");
        self.s.write_all(line.as_bytes()).expect("write");
    }

    /// Next reply, queueing events met on the way.
    pub fn reply(&mut self) -> Value {
        loop {
            let v = self.value();
            if v.get("event").is_some() {
                self.events.push_back(v);
            } else {
                return v;
            }
        }
    }

    pub fn cmd(&mut self, raw: &str) -> Value {
        self.send(raw);
        self.reply()
    }

    /// The next event (queued or read), whatever its name.
    pub fn next_event(&mut self) -> Value {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        let v = self.value();
        assert!(
            v.get("event").is_some(),
            "unexpected reply while waiting for an event: {v}"
        );
        v
    }

    /// Names (and for JOB_STATUS_CHANGE / MIGRATION the status) of the next
    /// `n` events.
    pub fn event_names(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let e = self.next_event();
                let name = e["event"].as_str().unwrap_or_default().to_string();
                match e["data"]["status"].as_str() {
                    Some(s) => format!("{name}:{s}"),
                    None => name,
                }
            })
            .collect()
    }
}

pub fn status(q: &mut Qmp) -> String {
    let r = q.cmd(r#"{"execute":"query-status"}"#);
    r["return"]["status"].as_str().expect("status").to_string()
}

/// Alive and not a zombie (a daemon's reaper may be slow or absent).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
