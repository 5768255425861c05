//! Memory of idle instances: spawns 50 daemonized simulators and reports
//! the mean PSS (proportional set size: shared pages split among sharers),
//! the figure that decides how many fit on one machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Kills the daemons even when an assertion fails.
struct Daemons(Vec<i32>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

fn pss_kb(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn idle_instances_are_small() {
    const N: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let mut daemons = Daemons(Vec::new());
    for i in 0..N {
        let mon = dir.path().join(format!("m{i}.sock"));
        let pid = dir.path().join(format!("p{i}.pid"));
        let st = Command::new(BIN)
            .args(["-daemonize", "-S", "-name", &format!("guest=vm{i}")])
            .arg("-pidfile")
            .arg(&pid)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", mon.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let p: i32 = std::fs::read_to_string(&pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        daemons.0.push(p);
    }
    // Exercise one monitor so the measured state is "connected once".
    let s = std::os::unix::net::UnixStream::connect(dir.path().join("m0.sock")).unwrap();
    let mut q = Qmp::new(s);
    q.line();
    q.cmd(r#"{"execute":"qmp_capabilities"}"#);
    drop(q);
    let total: u64 = daemons
        .0
        .iter()
        .map(|p| pss_kb(*p).expect("smaps_rollup"))
        .sum();
    let mean = total as f64 / N as f64;
    eprintln!(
        "qemu-sim idle PSS: mean {mean:.0} KiB over {N} instances; 10,000 instances ≈ {:.1} GiB",
        mean * 10_000.0 / 1024.0 / 1024.0
    );
    assert!(mean < 4096.0, "mean PSS {mean} KiB");
    for pid in &daemons.0 {
        kill(Pid::from_raw(*pid), Signal::SIGTERM).expect("SIGTERM a daemon");
    }
    for pid in std::mem::take(&mut daemons.0) {
        poll("daemon exit", || (!pid_alive(pid)).then_some(()));
    }
}
