//! Fault injection: options and the control socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Reads for `dur`, counting events by name; answers to nothing.
fn count_events(q: &mut Qmp, dur: Duration) -> (u64, Option<Value>) {
    let end = Instant::now() + dur;
    let mut n = 0;
    let mut last = None;
    while Instant::now() < end {
        match q.line_within(end - Instant::now()) {
            Some(l) => {
                let v: Value = serde_json::from_slice(&l).expect("flood line is JSON");
                if v.get("event").is_some() {
                    n += 1;
                    last = Some(v);
                }
            }
            None => break,
        }
    }
    (n, last)
}

#[test]
fn flood_rate_and_commands_interleave() {
    let sim = Sim::spawn(&[]);
    let mut q = sim.qmp();
    assert_eq!(sim.control("ping"), "ok pong");
    assert_eq!(sim.control("flood RTC_CHANGE max"), "ok");
    let t = Instant::now();
    let (n, last) = count_events(&mut q, Duration::from_secs(1));
    let rate = n as f64 / t.elapsed().as_secs_f64();
    eprintln!("flood at max: {rate:.0} events/s");
    assert!(rate > 2000.0, "flood too slow: {rate}");
    let last = last.unwrap();
    assert_eq!(
        last["data"],
        json!({"offset": 0, "qom-path": "/machine/unattached/device[8]"})
    );
    // Commands are still answered in the middle of the flood.
    q.send(r#"{"execute":"query-status","id":"during-flood"}"#);
    let r = q.reply();
    assert_eq!(r["id"], "during-flood");
    assert_eq!(sim.control("flood off"), "ok");
    let st = sim.stats();
    assert!(st["events_sent"].as_u64().unwrap() >= n);
    assert_eq!(st["flood"], false);
}

#[test]
fn flood_fixed_rate() {
    let sim = Sim::spawn(&[]);
    let mut q = sim.qmp();
    assert_eq!(sim.control("flood BALLOON_CHANGE 2000 1"), "ok");
    let (n, last) = count_events(&mut q, Duration::from_millis(2500));
    // 2000/s for 1 s; allow for a loaded machine.
    assert!((500..=2300).contains(&n), "got {n} events");
    assert!(last.unwrap()["data"]["actual"].as_u64().unwrap() > 0);
}

#[test]
fn flood_backpressure_bounds_memory() {
    let sim = Sim::spawn(&[]);
    let mut q = sim.qmp();
    assert_eq!(sim.control("flood SOME_EVENT 200000"), "ok");
    // Do not read: the sim must skip rather than queue.
    poll("skipped events", || {
        (sim.stats()["events_skipped"].as_u64().unwrap() > 1000).then_some(())
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", sim.pid())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kb < 32 * 1024, "RSS grew to {rss_kb} kB");
    assert_eq!(sim.control("flood off"), "ok");
    // Once drained, the monitor answers.
    q.send(r#"{"execute":"query-status","id":"after"}"#);
    let r = q.reply();
    assert_eq!(r["id"], "after");
}

#[test]
fn flood_option_and_stop_resume_ends_on_true_state() {
    let sim = Sim::spawn(&["-sim-flood", "STOP_RESUME:5000:0.3"]);
    let mut q = sim.qmp();
    poll("flood end", || {
        (sim.stats()["flood"] == false).then_some(())
    });
    // Drain, then the last STOP/RESUME seen must be RESUME (VM runs).
    let r = q.cmd(r#"{"execute":"query-status"}"#);
    assert_eq!(r["return"]["status"], "running");
    let last = q.events.back().expect("flood events").clone();
    assert_eq!(last["event"], "RESUME");
    assert!(q.events.len() > 10);
}

#[test]
fn hang_option_and_control() {
    let sim = Sim::spawn(&["-sim-hang"]);
    let mut q = sim.qmp(); // qmp_capabilities is still answered
    q.send(r#"{"execute":"query-status","id":1}"#);
    assert!(
        q.line_within(Duration::from_millis(300)).is_none(),
        "hung monitor answered"
    );
    // Events still flow while commands hang.
    assert_eq!(sim.control("event MY_EVENT {\"x\": 1}"), "ok");
    let e = q.next_event();
    assert_eq!(e["event"], "MY_EVENT");
    assert_eq!(e["data"], json!({"x": 1}));
    assert_eq!(sim.control("hang off"), "ok");
    assert_eq!(q.reply()["id"], 1);
    assert_eq!(sim.control("hang on"), "ok");
    q.send(r#"{"execute":"query-status","id":2}"#);
    assert!(q.line_within(Duration::from_millis(200)).is_none());
    assert_eq!(sim.control("hang off"), "ok");
    assert_eq!(q.reply()["id"], 2);
}

#[test]
fn slow_option_and_control() {
    let sim = Sim::spawn(&["-sim-slow", "300"]);
    let mut q = sim.qmp();
    let t = Instant::now();
    q.cmd(r#"{"execute":"query-status"}"#);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(sim.control("slow 0"), "ok");
    q.cmd(r#"{"execute":"query-status"}"#);
}

#[test]
fn garbage_option_and_control() {
    let sim = Sim::spawn(&["-sim-garbage"]);
    let (mut q, g) = sim.connect();
    assert!(g.starts_with(b"{\"QMP\""));
    let junk = q.line();
    assert_eq!(junk.len(), 64);
    assert!(std::str::from_utf8(&junk).is_err());
    q.cmd(r#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(sim.control("garbage 100"), "ok");
    let junk = q.line();
    assert_eq!(junk.len(), 100);
    assert!(serde_json::from_slice::<Value>(&junk).is_err());
    // The monitor still works after the garbage.
    assert_eq!(status(&mut q), "running");
}

#[test]
fn huge_option_and_control() {
    let sim = Sim::spawn(&["-sim-huge-mib", "2"]);
    let (mut q, _) = sim.connect();
    q.send(r#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(q.value(), json!({"return": {}}));
    let l = q.line();
    assert!(
        l.len() > (2 << 20) - 16 && l.len() <= 2 << 20,
        "len {}",
        l.len()
    );
    let v: Value = serde_json::from_slice(&l).unwrap();
    assert_eq!(v["event"], "SIM_HUGE");
    assert_eq!(sim.control("huge 1"), "ok");
    let l = q.line();
    assert!(l.len() > (1 << 20) - 16);
    assert_eq!(status(&mut q), "running");
}

#[test]
fn wrong_ids_option_and_control() {
    let sim = Sim::spawn(&["-sim-wrong-ids"]);
    let (mut q, _) = sim.connect();
    assert_eq!(
        q.cmd(r#"{"execute":"qmp_capabilities","id":5}"#)["id"],
        1_000_005
    );
    assert_eq!(
        q.cmd(r#"{"execute":"query-status","id":"a"}"#)["id"],
        "a-wrong"
    );
    assert_eq!(sim.control("wrong-ids off"), "ok");
    assert_eq!(q.cmd(r#"{"execute":"query-status","id":"a"}"#)["id"], "a");
}

#[test]
fn control_exit_is_sudden() {
    let mut sim = Sim::spawn(&[]);
    let mut q = sim.qmp();
    assert_eq!(sim.control("exit 3"), "ok");
    assert_eq!(sim.wait_exit().code(), Some(3));
    // No SHUTDOWN: the stream just ends.
    assert!(q.line_within(Duration::from_secs(5)).is_none());
}

#[test]
fn exit_after_option() {
    let mut sim = Sim::spawn(&["-sim-exit-after", "200"]);
    let mut q = sim.qmp();
    assert_eq!(sim.wait_exit().code(), Some(1));
    assert!(q.line_within(Duration::from_secs(5)).is_none());
    assert!(sim.mon.exists(), "a crash leaves its socket behind");
}

#[test]
fn control_errors_and_sequential_clients() {
    let sim = Sim::spawn(&[]);
    assert!(sim.control("bogus").starts_with("err "));
    assert!(sim.control("flood X fast").starts_with("err "));
    assert!(sim.control("hang maybe").starts_with("err "));
    assert!(sim.control("event BAD{ 1").starts_with("err "));
    assert!(sim.control("event X {not json").starts_with("err "));
    assert!(sim.control("huge 0").starts_with("err "));
    assert!(sim.control("event").starts_with("err "));
    assert_eq!(sim.control("event ev"), "ok");
    let st = sim.stats();
    assert_eq!(st["state"], "running");
    assert_eq!(st["commands"], 0);
}
