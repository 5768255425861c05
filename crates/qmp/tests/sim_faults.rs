//! The client against `qemu-sim`, for every fault mode it can inject.
//!
//! The binary is expected next to the test binaries
//! (`$CARGO_TARGET_DIR/debug/qemu-sim`); build it first with
//! `cargo build --workspace --bins`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use qmp::commands::{Cont, QueryStatus, Quit, Stop};
use qmp::{
    CloseReason, Config, EventItem, EventKind, Events, Monitor, ProtocolError, QmpError, RunState,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::Instant;

fn sim_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/sim_faults-HASH -> target/debug/qemu-sim
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("qemu-sim"))
        .expect("test binary has no target dir");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build --workspace --bins` (with the same CARGO_TARGET_DIR) before these tests",
        bin.display()
    );
    bin
}

fn cfg() -> Config {
    Config {
        command_timeout: DEADLINE,
        greeting_timeout: DEADLINE,
        ..Config::default()
    }
}

/// A running qemu-sim, killed on drop.
struct Sim {
    child: Child,
    _dir: tempfile::TempDir,
    qmp: PathBuf,
    ctl: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let qmp = dir.path().join("qmp.sock");
        let ctl = dir.path().join("ctl.sock");
        let child = Command::new(sim_bin())
            .arg("-S")
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .arg("-sim-control")
            .arg(&ctl)
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn qemu-sim");
        Sim {
            child,
            _dir: dir,
            qmp,
            ctl,
        }
    }

    /// Connects once the monitor socket accepts (polling with a deadline).
    async fn connect_with(&mut self, cfg: Config) -> Result<(Monitor, Events), QmpError> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("qemu-sim exited early: {st}");
            }
            match Monitor::connect(&self.qmp, cfg.clone()).await {
                Err(QmpError::Connect { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => return other,
            }
        }
    }

    async fn connect(&mut self) -> (Monitor, Events) {
        self.connect_with(cfg()).await.expect("connect to qemu-sim")
    }

    /// One control command, one answer line; asserts it starts with "ok".
    async fn ctl(&self, line: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let s = loop {
            match UnixStream::connect(&self.ctl).await {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let (r, mut w) = s.into_split();
        w.write_all(format!("{line}\n").as_bytes())
            .await
            .expect("ctl write");
        let mut answer = String::new();
        within("control answer", BufReader::new(r).read_line(&mut answer))
            .await
            .expect("ctl read");
        assert!(
            answer.starts_with("ok"),
            "control `{line}` answered `{answer}`"
        );
        answer.trim_end().to_owned()
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "qemu-sim did not exit");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn next_event(events: &mut Events, name: &str) -> qmp::Event {
    within(&format!("event {name}"), async {
        loop {
            match events.recv().await {
                Some(EventItem::Event(e)) if e.name() == name => return e,
                Some(_) => {}
                None => panic!("event stream ended before {name}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn sim_lifecycle() {
    let mut sim = Sim::start(&[]);
    let (mon, mut events) = sim.connect().await;
    assert_eq!(sim.ctl("ping").await, "ok pong");
    let st = mon.execute(&QueryStatus).await.unwrap();
    assert_eq!(st.status, RunState::Prelaunch);
    mon.execute(&Cont).await.unwrap();
    next_event(&mut events, "RESUME").await;
    mon.execute(&Stop).await.unwrap();
    next_event(&mut events, "STOP").await;
    assert_eq!(
        mon.execute(&QueryStatus).await.unwrap().status,
        RunState::Paused
    );
    let _ = mon.execute(&Quit).await;
    next_event(&mut events, "SHUTDOWN").await;
    assert_eq!(within("closed", mon.closed()).await, CloseReason::Eof);
    sim.wait_exit().await;
}

#[tokio::test]
async fn sim_event_via_control() {
    let mut sim = Sim::start(&[]);
    let (_mon, mut events) = sim.connect().await;
    sim.ctl(r#"event DEVICE_DELETED {"device": "net0", "path": "/machine/peripheral/net0"}"#)
        .await;
    let e = next_event(&mut events, "DEVICE_DELETED").await;
    match e.kind {
        EventKind::DeviceDeleted(d) => assert_eq!(d.device.as_deref(), Some("net0")),
        other => panic!("unexpected {other:?}"),
    }
    let stats = sim.ctl("stats").await;
    let v: Value = serde_json::from_str(stats.trim_start_matches("ok").trim()).expect("stats json");
    assert!(v["events_sent"].as_u64().unwrap_or(0) >= 1, "{v}");
}

/// Replies keep flowing during a flood nobody consumes; memory bounded.
async fn check_flood(mon: &Monitor, events: &mut Events, commands: usize) {
    wait_until("flood started", || {
        mon.stats().events.received_total > 5_000
    })
    .await;
    let mut lat = Vec::new();
    let t0 = Instant::now();
    let rx0 = mon.stats().events.received_total;
    for _ in 0..commands {
        let t = Instant::now();
        mon.execute(&QueryStatus)
            .await
            .expect("command during flood");
        lat.push(t.elapsed());
    }
    lat.sort();
    let st = mon.stats();
    println!(
        "sim flood: {:.0} events/s received while {commands} commands ran: reply p50 {:?} max {:?}; queue {} B, coalesced {} B",
        (st.events.received_total - rx0) as f64 / t0.elapsed().as_secs_f64(),
        percentile(&lat, 0.5),
        lat.last().copied().unwrap_or_default(),
        st.events.queued_bytes,
        st.events.coalesced_bytes
    );
    assert!(st.events.queued_events <= 1024);
    assert!(st.events.queued_bytes <= 1024 * 1024);
    assert!(st.events.coalesced_keys <= 64);
    // Drain: queued events, then one overflow.
    let mut saw_overflow = false;
    while let Ok(item) = events.try_recv() {
        if let EventItem::Overflow(o) = item {
            assert!(o.dropped > 0);
            saw_overflow = true;
            break;
        }
    }
    assert!(saw_overflow, "no overflow after a flood nobody consumed");
}

#[tokio::test]
async fn sim_flood_via_control() {
    let mut sim = Sim::start(&[]);
    let (mon, mut events) = sim.connect().await;
    sim.ctl("flood BALLOON_CHANGE 20000").await;
    check_flood(&mon, &mut events, 50).await;
    sim.ctl("flood off").await;
    mon.execute(&QueryStatus).await.expect("after flood");
}

/// At `max` rate the stream is saturated: replies queue behind whatever
/// QEMU already wrote, so only liveness is checked (each within DEADLINE).
#[tokio::test]
async fn sim_flood_option_max() {
    let mut sim = Sim::start(&["-sim-flood", "RTC_CHANGE:max:60"]);
    let (mon, mut events) = sim.connect().await;
    check_flood(&mon, &mut events, 5).await;
}

#[tokio::test]
async fn sim_hang_times_out_then_recovers() {
    let mut sim = Sim::start(&[]);
    let (mon, _events) = sim.connect().await;
    sim.ctl("hang on").await;
    let err = mon
        .execute_timeout(&QueryStatus, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
    assert!(!mon.is_closed());
    assert_eq!(mon.stats().pending, 0);
    sim.ctl("hang off").await;
    // The held command is answered late (dropped), the new one normally.
    mon.execute(&QueryStatus).await.expect("after hang off");
}

#[tokio::test]
async fn sim_hang_option() {
    let mut sim = Sim::start(&["-sim-hang"]);
    match sim.connect_with(cfg()).await {
        // Negotiation is answered; later commands hang.
        Ok((mon, _events)) => {
            let err = mon
                .execute_timeout(&QueryStatus, Duration::from_millis(300))
                .await
                .unwrap_err();
            assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
        }
        Err(e) => panic!("connect: {e}"),
    }
}

#[tokio::test]
async fn sim_slow() {
    let mut sim = Sim::start(&[]);
    let (mon, _events) = sim.connect().await;
    sim.ctl("slow 400").await;
    let t = Instant::now();
    mon.execute(&QueryStatus).await.expect("slow command");
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
    let err = mon
        .execute_timeout(&QueryStatus, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
    sim.ctl("slow 0").await;
    mon.execute(&QueryStatus).await.expect("fast again");
}

#[tokio::test]
async fn sim_slow_option() {
    let mut sim = Sim::start(&["-sim-slow", "300"]);
    let (mon, _events) = sim.connect().await;
    let t = Instant::now();
    mon.execute(&QueryStatus).await.expect("slow command");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
}

fn assert_garbage_error(err: &QmpError) {
    assert!(
        matches!(
            err,
            QmpError::Closed(CloseReason::Protocol(
                ProtocolError::InvalidUtf8 { .. }
                    | ProtocolError::InvalidJson(_)
                    | ProtocolError::Malformed(_)
            ))
        ),
        "{err}"
    );
}

#[tokio::test]
async fn sim_garbage_via_control() {
    let mut sim = Sim::start(&[]);
    let (mon, _events) = sim.connect().await;
    sim.ctl("hang on").await;
    let m = mon.clone();
    let in_flight = tokio::spawn(async move { m.execute(&QueryStatus).await });
    wait_until("command in flight", || mon.stats().pending == 1).await;
    sim.ctl("garbage 1000").await;
    let err = within("garbage", in_flight).await.unwrap().unwrap_err();
    assert_garbage_error(&err);
    let reason = within("closed", mon.closed()).await;
    assert!(matches!(reason, CloseReason::Protocol(_)), "{reason}");
}

#[tokio::test]
async fn sim_garbage_option() {
    let mut sim = Sim::start(&["-sim-garbage"]);
    let err = sim.connect_with(cfg()).await.unwrap_err();
    assert_garbage_error(&err);
}

#[tokio::test]
async fn sim_wrong_ids() {
    let mut sim = Sim::start(&[]);
    let (mon, _events) = sim.connect().await;
    sim.ctl("wrong-ids on").await;
    let err = mon
        .execute_timeout(&QueryStatus, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
    wait_until("wrong-id reply seen", || {
        let s = mon.stats();
        s.unknown_replies + s.late_replies >= 1
    })
    .await;
    sim.ctl("wrong-ids off").await;
    mon.execute(&QueryStatus).await.expect("ids fixed");
}

#[tokio::test]
async fn sim_wrong_ids_option() {
    let mut sim = Sim::start(&["-sim-wrong-ids"]);
    // Even qmp_capabilities gets a wrong id: the handshake times out.
    let cfg = Config {
        greeting_timeout: Duration::from_millis(500),
        ..cfg()
    };
    let err = sim.connect_with(cfg).await.unwrap_err();
    assert!(matches!(err, QmpError::HandshakeTimeout { .. }), "{err}");
}

fn assert_too_long(err: &QmpError, max: usize) {
    assert!(
        matches!(
            err,
            QmpError::Closed(CloseReason::Protocol(ProtocolError::LineTooLong { max: m })) if *m == max
        ),
        "{err}"
    );
}

#[tokio::test]
async fn sim_huge_line_via_control() {
    let mut sim = Sim::start(&[]);
    let max_line = 1024 * 1024;
    let (mon, _events) = sim
        .connect_with(Config { max_line, ..cfg() })
        .await
        .expect("connect");
    sim.ctl("hang on").await;
    let m = mon.clone();
    let in_flight = tokio::spawn(async move { m.execute(&QueryStatus).await });
    wait_until("command in flight", || mon.stats().pending == 1).await;
    sim.ctl("huge 64").await;
    let err = within("huge line", in_flight).await.unwrap().unwrap_err();
    assert_too_long(&err, max_line);
    let st = mon.stats();
    println!(
        "huge line: read {} bytes, buffer capacity {} (cap {max_line})",
        st.bytes_read, st.read_buffer_capacity
    );
    assert!(st.read_buffer_capacity <= 2 * max_line + 2);
}

#[tokio::test]
async fn sim_huge_line_under_cap_is_an_event() {
    let mut sim = Sim::start(&[]);
    let (mon, mut events) = sim.connect().await;
    sim.ctl("huge 2").await;
    // A 2 MiB event can never fit the 1 MiB queue budget: it is coalesced
    // (name kept, data dropped) and reported as an overflow.
    let item = within("overflow", events.recv()).await;
    let Some(EventItem::Overflow(o)) = item else {
        panic!("expected overflow, got {item:?}");
    };
    assert_eq!(o.dropped, 1);
    assert!(
        matches!(&o.latest[..], [e] if matches!(&e.kind, EventKind::Unknown { name, data: Value::Null } if name == "SIM_HUGE")),
        "{o:?}"
    );
    assert!(!mon.is_closed());
    mon.execute(&QueryStatus).await.expect("after huge event");
}

#[tokio::test]
async fn sim_huge_option() {
    let mut sim = Sim::start(&["-sim-huge-mib", "16"]);
    let (mon, _events) = sim
        .connect_with(Config {
            max_line: 1024 * 1024,
            ..cfg()
        })
        .await
        .expect("connect (the huge line follows negotiation)");
    let reason = within("closed", mon.closed()).await;
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(ProtocolError::LineTooLong { .. })
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn sim_exit_fails_in_flight_with_eof() {
    let mut sim = Sim::start(&[]);
    let (mon, mut events) = sim.connect().await;
    sim.ctl("hang on").await;
    let m = mon.clone();
    let in_flight = tokio::spawn(async move { m.execute(&QueryStatus).await });
    wait_until("command in flight", || mon.stats().pending == 1).await;
    // The control answer may be lost as the process exits at once.
    let ctl = sim.ctl.clone();
    tokio::spawn(async move {
        if let Ok(mut s) = UnixStream::connect(&ctl).await {
            let _ = s.write_all(b"exit 3\n").await;
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink).await;
        }
    });
    let err = within("exit", in_flight).await.unwrap().unwrap_err();
    assert!(matches!(err, QmpError::Closed(CloseReason::Eof)), "{err}");
    assert_eq!(within("events end", events.recv()).await, None);
    let st = sim.wait_exit().await;
    assert_eq!(st.code(), Some(3));
}

#[tokio::test]
async fn sim_exit_after_option() {
    let mut sim = Sim::start(&["-sim-exit-after", "3000"]);
    let (mon, _events) = sim.connect().await;
    assert_eq!(within("closed", mon.closed()).await, CloseReason::Eof);
    let err = mon.execute(&QueryStatus).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed(CloseReason::Eof)), "{err}");
    sim.wait_exit().await;
}
