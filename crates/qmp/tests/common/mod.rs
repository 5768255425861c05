//! A scripted fake QMP server for in-process tests.
//!
//! Tests drive it step by step (read a command, answer it, send events or
//! garbage), so each test states exactly what QEMU does and when.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use qmp::{Config, Events, Monitor};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

/// Generous: the test machine is small and shared.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 1, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}"#;

pub struct FakeQemu {
    pub r: BufReader<OwnedReadHalf>,
    pub w: OwnedWriteHalf,
}

impl FakeQemu {
    pub fn new(s: UnixStream) -> Self {
        let (r, w) = s.into_split();
        FakeQemu {
            r: BufReader::new(r),
            w,
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.expect("fake write");
    }

    /// Writes, ignoring errors (the client may have closed on purpose).
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.write_all(bytes).await
    }

    /// Reads one command, or `None` on EOF.
    pub async fn read_cmd(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, self.r.read_line(&mut line))
            .await
            .expect("fake: no command within deadline")
            .expect("fake read");
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).expect("client sent invalid JSON"))
    }

    pub async fn expect_cmd(&mut self, name: &str) -> Value {
        let cmd = self.read_cmd().await.expect("fake: EOF instead of command");
        assert_eq!(cmd["execute"], name, "unexpected command {cmd}");
        cmd
    }

    pub async fn reply(&mut self, cmd: &Value, ret: Value) {
        let line = json!({"return": ret, "id": cmd["id"]}).to_string();
        self.send(&line).await;
    }

    pub async fn reply_error(&mut self, cmd: &Value, class: &str, desc: &str) {
        let line = json!({"error": {"class": class, "desc": desc}, "id": cmd["id"]}).to_string();
        self.send(&line).await;
    }

    pub async fn event(&mut self, name: &str, data: Value) {
        let line = event_line(name, &data);
        self.send(&line).await;
    }

    /// Greeting and `qmp_capabilities`, like QEMU.
    pub async fn handshake(&mut self) -> Value {
        self.send(GREETING).await;
        let cmd = self.expect_cmd("qmp_capabilities").await;
        self.reply(&cmd, json!({})).await;
        cmd
    }

    /// Waits until the client closes its end.
    pub async fn wait_eof(&mut self) {
        let mut line = String::new();
        loop {
            line.clear();
            match tokio::time::timeout(DEADLINE, self.r.read_line(&mut line))
                .await
                .expect("fake: client did not close within deadline")
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

pub fn event_line(name: &str, data: &Value) -> String {
    json!({"event": name, "data": data, "timestamp": {"seconds": 1700000000, "microseconds": 1}})
        .to_string()
}

/// A connected client and fake server (socketpair), handshake done.
pub async fn connected(cfg: Config) -> (Monitor, Events, FakeQemu) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    let server = tokio::spawn(async move {
        let mut fake = FakeQemu::new(b);
        fake.handshake().await;
        fake
    });
    let (mon, events) = Monitor::from_stream(a, cfg).await.expect("handshake");
    let fake = server.await.expect("fake task");
    (mon, events, fake)
}

/// Polls `cond` until true or the deadline; for conditions reached through
/// another task (no sleep-as-synchronisation: we wait for the state).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `f` with the test deadline.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Resident set size of this process in KiB, from /proc.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
