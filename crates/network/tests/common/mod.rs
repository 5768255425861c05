//! Running a test inside a network namespace of its own.
//!
//! Namespaces are per thread, and the driver spawns tasks and helpers, so
//! a test re-executes its own test binary (just that one test) under
//! `ip netns exec NS`: the whole process, every thread and every child is
//! in the namespace. The host's namespace is never changed. The parent
//! removes the namespace afterwards, killing whatever is still in it.

#![allow(dead_code, reason = "each test file uses a part")]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const CHILD: &str = "FERROVIRT_NETNS_TEST";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `body` inside a fresh network namespace. `test` must be the
/// test's own name (the re-executed binary runs only it).
pub fn in_netns(test: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        sh("ip link set lo up");
        body();
        return;
    }
    let ns = format!(
        "fvt{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    sh(&format!("ip netns add {ns}"));
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .status()
        .unwrap();
    cleanup_netns(&ns);
    assert!(status.success(), "{test} failed inside namespace {ns}");
}

/// Kills what is left in the namespace (a failed test's dnsmasq), then
/// removes it.
pub fn cleanup_netns(ns: &str) {
    let pids = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Runs a shell command, asserting success; returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("/bin/sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bridges in this namespace.
pub fn bridges() -> Vec<String> {
    sh("ip -o link show type bridge")
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        })
        .collect()
}

/// The whole nftables ruleset of this namespace.
pub fn ruleset() -> String {
    sh("nft list ruleset")
}

/// dnsmasq processes whose configuration lives under `root`.
pub fn dnsmasqs(root: &Path) -> Vec<i32> {
    let needle = format!("--conf-file={}/", root.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("dnsmasq"))
            && args.iter().any(|a| a.starts_with(&needle))
        {
            out.push(pid);
        }
    }
    out
}

/// Polls `f` until it returns `Some`, failing after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
