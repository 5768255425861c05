//! Client behaviour against a scripted fake QMP server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;
use qmp::commands::{BlockJobCancel, Cont, QueryStatus, Stop};
use qmp::{
    CloseReason, Config, EventItem, EventKind, EventLimits, Monitor, ProtocolError, QmpError,
    RunState,
};
use serde_json::{Value, json};
use tokio::net::{UnixListener, UnixStream};

fn cfg() -> Config {
    Config {
        command_timeout: DEADLINE,
        greeting_timeout: DEADLINE,
        ..Config::default()
    }
}

#[tokio::test]
async fn greeting_and_negotiation() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let mut fake = FakeQemu::new(b);
        let caps = fake.handshake().await;
        (fake, caps)
    });
    let (mon, _events) = Monitor::from_stream(a, cfg()).await.unwrap();
    let (_fake, caps) = server.await.unwrap();
    assert!(
        caps.get("arguments").is_none(),
        "qmp_capabilities sent {caps}"
    );
    let g = mon.greeting();
    assert_eq!(
        (g.version.major, g.version.minor, g.version.micro),
        (7, 2, 1)
    );
    assert_eq!(g.package, "fake");
    assert_eq!(g.capabilities, vec!["oob".to_string()]);
    assert!(!mon.is_closed());
}

#[tokio::test]
async fn connect_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut fake = FakeQemu::new(s);
        fake.handshake().await;
        let cmd = fake.expect_cmd("query-status").await;
        fake.reply(&cmd, json!({"running": false, "status": "prelaunch"}))
            .await;
        fake
    });
    let (mon, _events) = Monitor::connect(&path, cfg()).await.unwrap();
    let st = mon.execute(&QueryStatus).await.unwrap();
    assert_eq!(st.status, RunState::Prelaunch);
    assert!(!st.running);
    server.await.unwrap();
}

/// `connect_then` writes its command behind `qmp_capabilities` before
/// QEMU has answered either: the fake reads both lines before replying.
#[tokio::test]
async fn connect_then_pipelines_the_first_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut fake = FakeQemu::new(s);
        fake.send(GREETING).await;
        let caps = fake.expect_cmd("qmp_capabilities").await;
        let status = fake.expect_cmd("query-status").await;
        fake.reply(&caps, json!({})).await;
        fake.reply(&status, json!({"running": true, "status": "running"}))
            .await;
        fake
    });
    let (mon, _events, st) = Monitor::connect_then(&path, cfg(), &QueryStatus)
        .await
        .unwrap();
    assert_eq!(st.unwrap().status, RunState::Running);
    assert!(!mon.is_closed());
    server.await.unwrap();
}

/// A refused negotiation fails the connection even though the pipelined
/// command was answered.
#[tokio::test]
async fn connect_then_fails_when_negotiation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut fake = FakeQemu::new(s);
        fake.send(GREETING).await;
        let caps = fake.expect_cmd("qmp_capabilities").await;
        let status = fake.expect_cmd("query-status").await;
        fake.reply_error(&caps, "GenericError", "no").await;
        fake.reply(&status, json!({"running": true, "status": "running"}))
            .await;
        fake
    });
    let err = Monitor::connect_then(&path, cfg(), &QueryStatus)
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Negotiation(_)), "{err:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn connect_to_missing_socket_fails() {
    let dir = tempfile::tempdir().unwrap();
    let err = Monitor::connect(&dir.path().join("nope"), cfg())
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn greeting_timeout() {
    let (a, _b) = UnixStream::pair().unwrap();
    let cfg = Config {
        greeting_timeout: Duration::from_millis(300),
        ..cfg()
    };
    let err = Monitor::from_stream(a, cfg).await.unwrap_err();
    assert!(matches!(err, QmpError::HandshakeTimeout { .. }), "{err}");
}

#[tokio::test]
async fn bad_greeting_is_protocol_error() {
    for first in [
        r#"{"return": {}}"#,
        r#"{"QMP": {"version": "seven"}}"#,
        "not json",
    ] {
        let (a, b) = UnixStream::pair().unwrap();
        let mut fake = FakeQemu::new(b);
        fake.send(first).await;
        let err = Monitor::from_stream(a, cfg()).await.unwrap_err();
        assert!(
            matches!(err, QmpError::Closed(CloseReason::Protocol(_))),
            "{first}: {err}"
        );
    }
}

#[tokio::test]
async fn negotiation_refused() {
    let (a, b) = UnixStream::pair().unwrap();
    tokio::spawn(async move {
        let mut fake = FakeQemu::new(b);
        fake.send(GREETING).await;
        let cmd = fake.expect_cmd("qmp_capabilities").await;
        fake.reply_error(&cmd, "CommandNotFound", "no").await;
        fake.wait_eof().await;
    });
    let err = Monitor::from_stream(a, cfg()).await.unwrap_err();
    assert!(matches!(err, QmpError::Negotiation(_)), "{err}");
}

#[tokio::test]
async fn out_of_order_replies_match_by_id() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let m = mon.clone();
            tokio::spawn(async move { m.execute_raw("echo", Some(json!({"n": i})), None).await })
        })
        .collect();
    let mut cmds = Vec::new();
    for _ in 0..3 {
        cmds.push(fake.read_cmd().await.unwrap());
    }
    for cmd in cmds.iter().rev() {
        fake.reply(cmd, json!({"n": cmd["arguments"]["n"]})).await;
    }
    for (i, c) in calls.into_iter().enumerate() {
        let v = within("reply", c).await.unwrap().unwrap();
        assert_eq!(v["n"], i);
    }
    assert_eq!(mon.stats().pending, 0);
}

#[tokio::test]
async fn many_concurrent_commands() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    const N: usize = 500;
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let m = mon.clone();
            tokio::spawn(async move { m.execute_raw("echo", Some(json!({"n": i})), None).await })
        })
        .collect();
    // Answer in batches, each batch reversed.
    let mut batch = Vec::new();
    for k in 0..N {
        batch.push(fake.read_cmd().await.unwrap());
        if batch.len() == 37 || k == N - 1 {
            for cmd in batch.drain(..).rev() {
                fake.reply(&cmd, json!({"n": cmd["arguments"]["n"]})).await;
            }
        }
    }
    for (i, c) in calls.into_iter().enumerate() {
        let v = within("reply", c).await.unwrap().unwrap();
        assert_eq!(v["n"], i);
    }
    let st = mon.stats();
    assert_eq!((st.pending, st.unknown_replies, st.late_replies), (0, 0, 0));
}

#[tokio::test]
async fn unknown_id_and_idless_replies_dropped() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute_raw("x", None, None).await });
    let cmd = fake.read_cmd().await.unwrap();
    fake.send(r#"{"return": {"wrong": 1}, "id": 999999}"#).await;
    fake.send(r#"{"return": {"wrong": 2}, "id": "abc"}"#).await;
    fake.send(r#"{"return": {"wrong": 3}}"#).await;
    fake.send(r#"{"error": {"class": "GenericError", "desc": "x"}}"#)
        .await;
    fake.reply(&cmd, json!({"right": true})).await;
    let v = within("reply", call).await.unwrap().unwrap();
    assert_eq!(v, json!({"right": true}));
    assert_eq!(mon.stats().unknown_replies, 4);
}

#[tokio::test]
async fn error_reply_is_command_error() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    let m = mon.clone();
    let call = tokio::spawn(async move {
        m.execute(&BlockJobCancel {
            device: "nope".into(),
            force: None,
        })
        .await
    });
    let cmd = fake.expect_cmd("block-job-cancel").await;
    assert_eq!(cmd["arguments"], json!({"device": "nope"}));
    fake.reply_error(
        &cmd,
        "DeviceNotActive",
        "No active block job on device 'nope'",
    )
    .await;
    match within("reply", call).await.unwrap() {
        Err(QmpError::Command { class, desc }) => {
            assert_eq!(class, "DeviceNotActive");
            assert!(desc.contains("nope"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!mon.is_closed());
}

#[tokio::test]
async fn decode_error_keeps_connection() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&QueryStatus).await });
    let cmd = fake.expect_cmd("query-status").await;
    fake.reply(&cmd, json!({"status": 5})).await;
    let err = within("reply", call).await.unwrap().unwrap_err();
    assert!(matches!(err, QmpError::Decode { .. }), "{err}");
    assert!(!mon.is_closed());
}

#[tokio::test]
async fn timeout_then_late_reply_ignored() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    let m = mon.clone();
    let call =
        tokio::spawn(async move { m.execute_timeout(&Stop, Duration::from_millis(200)).await });
    let cmd = fake.expect_cmd("stop").await;
    match within("timeout", call).await.unwrap() {
        Err(QmpError::Timeout { command, after }) => {
            assert_eq!(command, "stop");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(mon.stats().pending, 0, "pending entry leaked");
    // The late reply arrives, then a fresh command works.
    fake.reply(&cmd, json!({})).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&Cont).await });
    let cmd2 = fake.expect_cmd("cont").await;
    fake.reply(&cmd2, json!({})).await;
    within("cont", call).await.unwrap().unwrap();
    let st = mon.stats();
    assert_eq!((st.late_replies, st.unknown_replies), (1, 0));
}

#[tokio::test]
async fn dropped_future_does_not_leak() {
    let (mon, _ev, mut fake) = connected(cfg()).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&Stop).await });
    fake.expect_cmd("stop").await;
    assert_eq!(mon.stats().pending, 1);
    call.abort();
    let _ = call.await;
    assert_eq!(mon.stats().pending, 0);
    // Also a future dropped before it was ever polled to completion.
    let fut = mon.execute(&Cont);
    drop(fut);
    assert_eq!(mon.stats().pending, 0);
}

#[tokio::test]
async fn eof_fails_in_flight_commands() {
    let (mon, mut events, mut fake) = connected(cfg()).await;
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let m = mon.clone();
            tokio::spawn(async move { m.execute(&QueryStatus).await })
        })
        .collect();
    fake.read_cmd().await.unwrap();
    fake.read_cmd().await.unwrap();
    fake.event("STOP", Value::Null).await;
    drop(fake);
    for c in calls {
        let err = within("eof", c).await.unwrap().unwrap_err();
        assert!(matches!(err, QmpError::Closed(CloseReason::Eof)), "{err}");
    }
    assert_eq!(within("closed", mon.closed()).await, CloseReason::Eof);
    assert!(mon.is_closed());
    let err = mon.execute(&Stop).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed(CloseReason::Eof)), "{err}");
    // The event sent before EOF is still delivered, then the end.
    let item = within("event", events.recv()).await;
    assert!(matches!(item, Some(EventItem::Event(e)) if e.kind == EventKind::Stop));
    assert_eq!(within("end", events.recv()).await, None);
}

#[tokio::test]
async fn local_close_and_handle_drop() {
    let (mon, mut events, mut fake) = connected(cfg()).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&QueryStatus).await });
    fake.read_cmd().await.unwrap();
    mon.close();
    let err = within("close", call).await.unwrap().unwrap_err();
    assert!(matches!(err, QmpError::Closed(CloseReason::Local)), "{err}");
    assert_eq!(within("end", events.recv()).await, None);
    fake.wait_eof().await;

    // Dropping every handle closes the socket too.
    let (mon, _events, mut fake) = connected(cfg()).await;
    let clone = mon.clone();
    drop(mon);
    assert!(!clone.is_closed());
    drop(clone);
    fake.wait_eof().await;
}

async fn expect_protocol_close(bytes: &[u8]) -> ProtocolError {
    let cfg = Config {
        max_line: 64 * 1024,
        ..cfg()
    };
    let (mon, mut events, mut fake) = connected(cfg).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&QueryStatus).await });
    fake.read_cmd().await.unwrap();
    fake.send_raw(bytes).await;
    let err = within("protocol error", call).await.unwrap().unwrap_err();
    let QmpError::Closed(CloseReason::Protocol(p)) = err else {
        panic!("expected protocol close, got {err}");
    };
    assert!(mon.is_closed());
    assert_eq!(within("end", events.recv()).await, None);
    fake.wait_eof().await;
    p
}

#[tokio::test]
async fn invalid_utf8_closes() {
    let p = expect_protocol_close(b"{\"return\": \"\xc3\x28\"}\n").await;
    assert!(matches!(p, ProtocolError::InvalidUtf8 { .. }), "{p}");
}

#[tokio::test]
async fn invalid_json_closes() {
    let p = expect_protocol_close(b"{\"return\": {}, \"id\": \n").await;
    assert!(matches!(p, ProtocolError::InvalidJson(_)), "{p}");
}

#[tokio::test]
async fn garbage_bytes_close() {
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    garbage.retain(|&b| b != b'\n');
    garbage.push(b'\n');
    let p = expect_protocol_close(&garbage).await;
    assert!(
        matches!(
            p,
            ProtocolError::InvalidUtf8 { .. } | ProtocolError::InvalidJson(_)
        ),
        "{p}"
    );
    let p = expect_protocol_close(b"[1, 2, 3]\n").await;
    assert!(matches!(p, ProtocolError::Malformed(_)), "{p}");
}

#[tokio::test]
async fn line_over_cap_closes_without_buffering_it() {
    let max_line = 64 * 1024;
    let cfg = Config { max_line, ..cfg() };
    let (mon, _events, mut fake) = connected(cfg).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&QueryStatus).await });
    fake.read_cmd().await.unwrap();
    // Stream 16 MiB with no newline; the client must give up after the cap,
    // and the write then fails because it closed.
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 256 * 1024];
        for _ in 0..64 {
            if fake.try_send_raw(&chunk).await.is_err() {
                return true;
            }
        }
        false
    });
    let err = within("line too long", call).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            QmpError::Closed(CloseReason::Protocol(ProtocolError::LineTooLong { max })) if max == max_line
        ),
        "{err}"
    );
    let st = mon.stats();
    assert!(
        st.read_buffer_capacity <= 2 * max_line + 2,
        "read buffer grew to {}",
        st.read_buffer_capacity
    );
    assert!(
        st.bytes_read <= 2 * max_line as u64 + 2,
        "read {} bytes of an over-long line",
        st.bytes_read
    );
    assert!(
        within("writer", writer).await.unwrap(),
        "client kept reading"
    );
}

#[tokio::test]
async fn line_at_cap_accepted() {
    let max_line = 64 * 1024;
    let cfg = Config { max_line, ..cfg() };
    let (mon, _events, mut fake) = connected(cfg).await;
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute_raw("x", None, None).await });
    let cmd = fake.read_cmd().await.unwrap();
    let prefix = format!(r#"{{"id": {}, "return": ""#, cmd["id"]);
    let fill = max_line - prefix.len() - 2;
    let line = format!("{prefix}{}\"}}", "b".repeat(fill));
    assert_eq!(line.len(), max_line);
    fake.send_raw(format!("{line}\n").as_bytes()).await;
    let v = within("reply", call).await.unwrap().unwrap();
    assert_eq!(v.as_str().map(str::len), Some(fill));
}

fn small_limits() -> Config {
    Config {
        events: EventLimits {
            max_events: 16,
            max_bytes: 1024 * 1024,
            max_coalesced: 8,
        },
        ..cfg()
    }
}

#[tokio::test]
async fn event_overflow_by_count_then_resync() {
    let (mon, mut events, mut fake) = connected(small_limits()).await;
    const N: usize = 10_000;
    let mut burst = String::new();
    for i in 0..N {
        let data = json!({"id": format!("job{}", i % 3), "status": "running", "n": i});
        burst.push_str(&event_line("JOB_STATUS_CHANGE", &data));
        burst.push('\n');
    }
    fake.send_raw(burst.as_bytes()).await;
    wait_until("events received", || {
        mon.stats().events.received_total == N as u64
    })
    .await;
    let st = mon.stats().events;
    assert_eq!(st.queued_events, 16);
    assert_eq!(st.coalesced_keys, 3);

    // Nobody consumed events; a reply must still arrive promptly.
    let m = mon.clone();
    let call = tokio::spawn(async move { m.execute(&QueryStatus).await });
    let cmd = fake.expect_cmd("query-status").await;
    let t0 = tokio::time::Instant::now();
    fake.reply(&cmd, json!({"running": true, "status": "running"}))
        .await;
    let st = within("reply behind full queue", call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.status, RunState::Running);
    println!("reply with full event queue took {:?}", t0.elapsed());

    // Drain: 16 events in order, then exactly one overflow.
    for i in 0..16 {
        match within("event", events.recv()).await {
            Some(EventItem::Event(e)) => {
                let EventKind::JobStatusChange(d) = e.kind else {
                    panic!("untyped {e:?}");
                };
                assert_eq!(d.id, format!("job{}", i % 3));
            }
            other => panic!("expected event {i}, got {other:?}"),
        }
    }
    let Some(EventItem::Overflow(o)) = within("overflow", events.recv()).await else {
        panic!("expected overflow");
    };
    assert_eq!(o.dropped, (N - 16) as u64);
    assert_eq!(o.untracked, 0);
    assert_eq!(o.latest.len(), 3);
    // Newest per job: the last three events, in arrival order.
    for (k, e) in o.latest.iter().enumerate() {
        assert!(e.timestamp.is_some());
        match &e.kind {
            // Typed events drop the extra "n"; check via id order instead.
            EventKind::JobStatusChange(d) => assert_eq!(d.id, format!("job{}", (N - 3 + k) % 3)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(events.try_recv(), Err(qmp::TryRecvError::Empty)));
    // Normal delivery resumes.
    fake.event("RESUME", Value::Null).await;
    let item = within("event after overflow", events.recv()).await;
    assert!(matches!(item, Some(EventItem::Event(e)) if e.kind == EventKind::Resume));
    assert_eq!(mon.stats().events.overflows_total, 1);
}

#[tokio::test]
async fn event_overflow_by_bytes() {
    let cfg = Config {
        events: EventLimits {
            max_events: 1_000_000,
            max_bytes: 64 * 1024,
            max_coalesced: 8,
        },
        ..cfg()
    };
    let (mon, mut events, mut fake) = connected(cfg).await;
    let pad = "p".repeat(1000);
    let mut burst = String::new();
    for i in 0..1000 {
        burst.push_str(&event_line(
            "BALLOON_CHANGE",
            &json!({"actual": i, "pad": pad}),
        ));
        burst.push('\n');
    }
    fake.send_raw(burst.as_bytes()).await;
    wait_until("events received", || {
        mon.stats().events.received_total == 1000
    })
    .await;
    let st = mon.stats().events;
    assert!(st.queued_bytes <= 64 * 1024);
    let queued = st.queued_events;
    assert!((50..=64).contains(&queued), "queued {queued}");
    for _ in 0..queued {
        assert!(matches!(events.try_recv(), Ok(EventItem::Event(_))));
    }
    let Ok(EventItem::Overflow(o)) = events.try_recv() else {
        panic!("expected overflow");
    };
    assert_eq!(o.dropped, (1000 - queued) as u64);
    assert_eq!(o.latest.len(), 1);
    assert!(matches!(&o.latest[0].kind, EventKind::BalloonChange(b) if b.actual == 999));
}

#[tokio::test]
async fn many_distinct_event_names_stay_bounded() {
    let (mon, mut events, mut fake) = connected(small_limits()).await;
    const N: usize = 100_000;
    let rss_before = rss_kib();
    let mut burst = String::with_capacity(N * 100);
    for i in 0..N {
        burst.push_str(&event_line(
            &format!("VENDOR_EVENT_{i}"),
            &json!({"device": format!("dev{i}")}),
        ));
        burst.push('\n');
    }
    fake.send_raw(burst.as_bytes()).await;
    drop(burst);
    wait_until("events received", || {
        mon.stats().events.received_total == N as u64
    })
    .await;
    let st = mon.stats().events;
    assert_eq!(st.queued_events, 16);
    assert_eq!(st.coalesced_keys, 8);
    assert!(
        st.coalesced_bytes < 8 * 1024,
        "coalesced {} bytes",
        st.coalesced_bytes
    );
    println!(
        "distinct names: rss before {} KiB, after {} KiB, queue {} B + coalesced {} B",
        rss_before,
        rss_kib(),
        st.queued_bytes,
        st.coalesced_bytes
    );
    let mut n = 0;
    let mut overflow = None;
    while let Ok(item) = events.try_recv() {
        match item {
            EventItem::Event(_) => n += 1,
            EventItem::Overflow(o) => overflow = Some(o),
        }
    }
    assert_eq!(n, 16);
    let o = overflow.expect("overflow");
    assert_eq!(o.dropped, (N - 16) as u64);
    assert_eq!(o.latest.len(), 8);
    assert_eq!(o.untracked, (N - 16 - 8) as u64);
}

#[tokio::test]
async fn typed_events_and_unknown_fallback() {
    let (_mon, mut events, mut fake) = connected(cfg()).await;
    fake.event(
        "SHUTDOWN",
        json!({"guest": true, "reason": "guest-shutdown"}),
    )
    .await;
    fake.event("RTC_CHANGE", json!({"offset": "not a number"}))
        .await;
    fake.event("SOMETHING_NEW", json!({"x": 1})).await;
    fake.send(r#"{"event": "STOP"}"#).await; // no timestamp
    let mut got = Vec::new();
    for _ in 0..4 {
        match within("event", events.recv()).await {
            Some(EventItem::Event(e)) => got.push(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(&got[0].kind, EventKind::Shutdown(d) if d.guest == Some(true)));
    assert_eq!(got[0].timestamp.map(|t| t.seconds), Some(1_700_000_000));
    assert!(matches!(&got[1].kind, EventKind::Unknown { name, .. } if name == "RTC_CHANGE"));
    assert!(
        matches!(&got[2].kind, EventKind::Unknown { name, data } if name == "SOMETHING_NEW" && data["x"] == 1)
    );
    assert_eq!(got[3].kind, EventKind::Stop);
    assert_eq!(got[3].timestamp, None);
}
