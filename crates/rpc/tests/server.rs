//! Server behaviour with a mock handler, over real UNIX sockets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::mock::{P_BLOCK, P_ECHO, P_PANIC};
use common::{TestServer, eventually};
use futures_util::StreamExt;
use rpc::frame::{MessageCodec, encode_frame};
use rpc::header::{Header, MessageStatus, MessageType};
use rpc::protocol::keepalive;
use rpc::protocol::remote::{self, RemoteError, procedure};
use rpc::xdr;
use rpc::{Client, ClientError, Config, Dropped};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::codec::FramedRead;
use virterror::ErrorCode;

const DEADLINE: Duration = Duration::from_secs(10);

fn call_frame(proc_: i32, serial: u32, body: &[u8]) -> Bytes {
    let h = Header::new(
        remote::PROGRAM,
        remote::VERSION,
        proc_,
        MessageType::Call,
        serial,
        MessageStatus::Ok,
    );
    encode_frame(&h, body, rpc::frame::MESSAGE_MAX).unwrap()
}

/// A raw connection: we write bytes and read frames ourselves.
struct Raw {
    rd: FramedRead<tokio::net::unix::OwnedReadHalf, MessageCodec>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl Raw {
    async fn connect(path: &std::path::Path) -> Raw {
        let s = UnixStream::connect(path).await.unwrap();
        let (rd, wr) = s.into_split();
        Raw {
            rd: FramedRead::new(rd, MessageCodec::default()),
            wr,
        }
    }

    async fn send(&mut self, b: &[u8]) {
        self.wr.write_all(b).await.unwrap();
    }

    async fn recv(&mut self) -> Option<rpc::frame::Message> {
        match tokio::time::timeout(DEADLINE, self.rd.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(e))) => panic!("frame error {e}"),
            Ok(None) => None,
            Err(_) => panic!("no frame within deadline"),
        }
    }

    /// Reads until EOF (the server closed us); panics after the deadline.
    async fn expect_eof(&mut self) {
        loop {
            match tokio::time::timeout(DEADLINE, self.rd.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("connection not closed within deadline"),
            }
        }
    }
}

fn remote_error(m: &rpc::frame::Message) -> RemoteError {
    assert_eq!(m.header.message_status(), Some(MessageStatus::Error));
    xdr::from_bytes(&m.body).unwrap()
}

#[tokio::test]
async fn concurrent_calls_reply_out_of_order() {
    common::init_tracing();
    let ts = TestServer::start(Config::default()).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let c2 = c.clone();
    let blocked = tokio::spawn(async move { c2.call::<u32, u32>(P_BLOCK, &1).await });
    ts.mock
        .wait_for("blocked call", |m| m.blocked.load(Ordering::SeqCst) == 1)
        .await;
    // A later call completes while the earlier one is still running.
    let v: u32 = tokio::time::timeout(DEADLINE, c.call(P_ECHO, &2u32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, 2);
    assert!(!blocked.is_finished());
    ts.mock.gate.add_permits(1);
    assert_eq!(blocked.await.unwrap().unwrap(), 1);
}

#[tokio::test]
async fn unknown_procedure_is_no_support_and_connection_survives() {
    let ts = TestServer::start(Config::default()).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let e = c.call::<(), ()>(9999, &()).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::NoSupport.as_i32()));
    let ClientError::Remote(re) = &e else {
        panic!()
    };
    assert!(re.message.as_deref().unwrap().contains("not supported"));
    // Unknown program and wrong version: also error replies.
    let e = c
        .call_raw(0x1234_5678, 1, 1, Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::NoSupport.as_i32()));
    let e = c
        .call_raw(
            remote::PROGRAM,
            7,
            procedure::CONNECT_GET_TYPE,
            Bytes::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::NoSupport.as_i32()));
    assert_eq!(c.get_type().await.unwrap(), "QEMU");
}

#[tokio::test]
async fn bad_arguments_are_an_error_reply() {
    let ts = TestServer::start(Config::default()).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let e = c
        .call_raw(
            remote::PROGRAM,
            remote::VERSION,
            procedure::CONNECT_SUPPORTS_FEATURE,
            Bytes::from_static(b"\0\0"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::Rpc.as_i32()));
    assert_eq!(c.get_type().await.unwrap(), "QEMU");
}

#[tokio::test]
async fn read_only_socket_denies_mutating_calls() {
    let ts = TestServer::start(Config::default()).await;
    let ro = Client::connect(&ts.ro_path).await.unwrap();
    let dom = remote::NonnullDomain {
        name: "vm".into(),
        uuid: [1; 16],
        id: 1,
    };
    let e = ro.destroy(&dom).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::OperationDenied.as_i32()));
    let ClientError::Remote(re) = &e else {
        panic!()
    };
    assert!(re.message.as_deref().unwrap().contains("read only"));
    // The handler never saw it; reads still work on the same connection.
    assert!(!ts.mock.seen().contains(&procedure::DOMAIN_DESTROY_FLAGS));
    assert_eq!(ro.get_type().await.unwrap(), "QEMU");
    // The read-write socket lets it through to the handler (NO_SUPPORT).
    let rw = Client::connect(ts.path()).await.unwrap();
    let e = rw.destroy(&dom).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::NoSupport.as_i32()));
}

#[tokio::test]
async fn malformed_message_closes_only_that_client() {
    let ts = TestServer::start(Config::default()).await;
    let good = Client::connect(ts.path()).await.unwrap();
    let mut bad = Raw::connect(ts.path()).await;
    // Length shorter than a header: unreadable, so no reply, just close.
    bad.send(&[0, 0, 0, 8, 0, 0, 0, 0]).await;
    bad.expect_eof().await;
    assert_eq!(good.get_type().await.unwrap(), "QEMU");

    // Readable header with an unknown message type: error reply, then close.
    let mut bad = Raw::connect(ts.path()).await;
    let mut h = Header::new(
        remote::PROGRAM,
        1,
        3,
        MessageType::Call,
        42,
        MessageStatus::Ok,
    );
    h.msg_type = 99;
    bad.send(&encode_frame(&h, b"", rpc::frame::MESSAGE_MAX).unwrap())
        .await;
    let m = bad.recv().await.unwrap();
    assert_eq!(m.header.serial, 42);
    assert_eq!(remote_error(&m).code, ErrorCode::Rpc.as_i32());
    bad.expect_eof().await;
    assert_eq!(good.get_type().await.unwrap(), "QEMU");
}

#[tokio::test]
async fn oversized_length_gets_error_reply_and_close_without_allocating() {
    let ts = TestServer::start(Config::default()).await;
    let mut raw = Raw::connect(ts.path()).await;
    let mut frame = call_frame(procedure::CONNECT_GET_TYPE, 7, b"").to_vec();
    frame[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    raw.send(&frame).await;
    let m = raw.recv().await.unwrap();
    assert_eq!(m.header.serial, 7);
    assert_eq!(m.header.proc_, procedure::CONNECT_GET_TYPE);
    let e = remote_error(&m);
    assert!(e.message.unwrap().contains("exceeds"));
    raw.expect_eof().await;
}

#[tokio::test]
async fn truncated_message_then_eof_is_handled() {
    let ts = TestServer::start(Config::default()).await;
    let frame = call_frame(procedure::CONNECT_GET_TYPE, 1, b"");
    let mut s = UnixStream::connect(ts.path()).await.unwrap();
    s.write_all(&frame[..frame.len() - 3]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let n = ts.mock.connected.lock().unwrap().len();
    ts.mock
        .wait_for("disconnect", |m| m.disconnected().len() == n)
        .await;
}

#[tokio::test]
async fn stream_and_fd_messages_get_error_replies_not_disconnect() {
    let ts = TestServer::start(Config::default()).await;
    let mut raw = Raw::connect(ts.path()).await;
    let h = Header::new(
        remote::PROGRAM,
        1,
        201,
        MessageType::Stream,
        5,
        MessageStatus::Continue,
    );
    raw.send(&encode_frame(&h, b"data", rpc::frame::MESSAGE_MAX).unwrap())
        .await;
    let m = raw.recv().await.unwrap();
    assert_eq!(m.header.message_type(), Some(MessageType::Stream));
    assert_eq!(m.header.serial, 5);
    assert_eq!(remote_error(&m).code, ErrorCode::NoSupport.as_i32());

    let h = Header::new(
        remote::PROGRAM,
        1,
        9,
        MessageType::CallWithFds,
        6,
        MessageStatus::Ok,
    );
    raw.send(&encode_frame(&h, b"\0\0\0\0", rpc::frame::MESSAGE_MAX).unwrap())
        .await;
    let m = raw.recv().await.unwrap();
    assert_eq!(m.header.message_type(), Some(MessageType::Reply));
    assert_eq!(m.header.serial, 6);
    assert_eq!(remote_error(&m).code, ErrorCode::NoSupport.as_i32());

    raw.send(&call_frame(procedure::CONNECT_GET_TYPE, 8, b""))
        .await;
    let m = raw.recv().await.unwrap();
    assert_eq!(m.header.serial, 8);
    assert_eq!(m.header.message_status(), Some(MessageStatus::Ok));
}

#[tokio::test]
async fn handler_panic_becomes_internal_error() {
    let ts = TestServer::start(Config::default()).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let e = c.call::<(), ()>(P_PANIC, &()).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(ErrorCode::InternalError.as_i32()));
    assert_eq!(c.get_type().await.unwrap(), "QEMU");
}

#[tokio::test]
async fn events_reach_the_client() {
    let ts = TestServer::start(Config::default()).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let mut events = c.take_events().unwrap();
    let id = c.register_lifecycle_callback(None).await.unwrap();
    let sink = ts.mock.sinks().pop().unwrap();
    let msg = remote::DomainEventCallbackLifecycleMsg {
        callback_id: id,
        msg: remote::DomainEventLifecycleMsg {
            dom: remote::NonnullDomain {
                name: "vm1".into(),
                uuid: [9; 16],
                id: 3,
            },
            event: 2,
            detail: 0,
        },
    };
    sink.try_send_event_xdr(procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE, &msg)
        .unwrap();
    let ev = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.procedure, procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE);
    assert_eq!(
        ev.decode::<remote::DomainEventCallbackLifecycleMsg>()
            .unwrap(),
        msg
    );
    // After the client goes, on_disconnect runs and the sink reports Closed.
    c.close().await;
    ts.mock
        .wait_for("on_disconnect", |m| m.disconnected().len() == 1)
        .await;
    assert_eq!(
        sink.try_send_event(procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE, Bytes::new()),
        Err(Dropped::Closed)
    );
    assert!(ts.mock.sinks().is_empty());
}

#[tokio::test]
async fn client_that_never_reads_is_disconnected_and_queue_stays_bounded() {
    common::init_tracing();
    let cfg = Config {
        max_queued_messages: 64,
        max_queued_bytes: 64 * 1024,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    // Register through a real call, then never read another byte.
    let mut raw = Raw::connect(ts.path()).await;
    let args = xdr::to_bytes(&remote::ConnectDomainEventCallbackRegisterAnyArgs {
        event_id: 0,
        dom: None,
    });
    raw.send(&call_frame(
        procedure::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
        1,
        &args,
    ))
    .await;
    ts.mock
        .wait_for("registration", |m| m.sinks().len() == 1)
        .await;
    let sink = ts.mock.sinks().pop().unwrap();
    let body = Bytes::from(vec![0u8; 1024]);
    let mut pushed = 0u64;
    let err = loop {
        match sink.try_send_event(procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE, body.clone()) {
            Ok(()) => pushed += 1,
            Err(e) => break e,
        }
        let (msgs, bytes) = sink.queue_depth();
        assert!(
            msgs <= 64 && bytes <= 64 * 1024 + 2048,
            "queue grew: {msgs} {bytes}"
        );
        assert!(pushed < 1_000_000, "never disconnected");
        // Let the writer move frames into the socket buffer.
        tokio::task::yield_now().await;
    };
    eprintln!("pushed {pushed} events before the non-reading client was disconnected");
    assert_eq!(err, Dropped::QueueFull);
    // Socket buffers + one BufWriter + the queue: a few hundred frames.
    assert!(pushed < 5_000, "pushed {pushed} before disconnect");
    assert_eq!(
        sink.try_send_event(procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE, body),
        Err(Dropped::Closed)
    );
    ts.mock
        .wait_for("on_disconnect", |m| m.disconnected().len() == 1)
        .await;
    raw.expect_eof().await;
    let m = ts.server.metrics();
    assert_eq!(m.dropped_slow.get(), 1, "the drop is counted");
    assert!(
        m.queue_high_water.get() >= 60,
        "the queue filled to its bound"
    );
    assert!(m.queue_high_water.get() <= 64);
    assert_eq!(m.queued_messages(), 0, "nothing is left queued");
    // Other clients are unaffected.
    let c = Client::connect(ts.path()).await.unwrap();
    assert_eq!(c.get_type().await.unwrap(), "QEMU");
    assert!(
        m.call_latency()
            .iter()
            .any(|(p, h)| *p == procedure::CONNECT_GET_TYPE && h.count == 1)
    );
    assert_eq!(m.clients(), 1);
}

#[tokio::test]
async fn inflight_bound_pauses_reading_and_resumes() {
    let cfg = Config {
        max_inflight_per_client: 2,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let mut raw = Raw::connect(ts.path()).await;
    let one = xdr::to_bytes(&1u32);
    raw.send(&call_frame(P_BLOCK, 1, &one)).await;
    raw.send(&call_frame(P_BLOCK, 2, &one)).await;
    ts.mock
        .wait_for("two blocked calls", |m| {
            m.blocked.load(Ordering::SeqCst) == 2
        })
        .await;
    // At the bound: the next call is not read, so not dispatched.
    raw.send(&call_frame(P_ECHO, 3, &xdr::to_bytes(&3u32)))
        .await;
    let r = tokio::time::timeout(Duration::from_millis(200), raw.rd.next()).await;
    assert!(r.is_err(), "a reply arrived while both slots were busy");
    assert_eq!(ts.mock.seen().iter().filter(|&&p| p == P_ECHO).count(), 0);
    // One call finishes: its reply, then the echo is read and answered.
    ts.mock.gate.add_permits(1);
    let mut serials = vec![raw.recv().await.unwrap().header.serial];
    serials.push(raw.recv().await.unwrap().header.serial);
    serials.sort();
    assert!(serials.contains(&3), "{serials:?}");
    ts.mock.gate.add_permits(1);
    let last = raw.recv().await.unwrap();
    assert!(last.header.serial == 1 || last.header.serial == 2);
}

#[tokio::test]
async fn max_clients_closes_excess_connections() {
    let cfg = Config {
        max_clients: 2,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let a = Client::connect(ts.path()).await.unwrap();
    let b = Client::connect(&ts.ro_path).await.unwrap();
    assert_eq!(a.get_type().await.unwrap(), "QEMU");
    assert_eq!(b.get_type().await.unwrap(), "QEMU");
    let mut extra = Raw::connect(ts.path()).await;
    extra.expect_eof().await;
    let c = Client::connect(ts.path()).await.unwrap();
    assert!(c.get_type().await.is_err());
    // A slot frees up when a client leaves.
    a.close().await;
    let server = ts.server.clone();
    eventually("slot freed", || server.client_count() == 1).await;
    let d = Client::connect(ts.path()).await.unwrap();
    assert_eq!(d.get_type().await.unwrap(), "QEMU");
}

#[tokio::test]
async fn keepalive_ping_is_answered_with_pong() {
    let ts = TestServer::start(Config::default()).await;
    let mut raw = Raw::connect(ts.path()).await;
    raw.send(&encode_frame(&keepalive::header(keepalive::PROC_PING), b"", 1 << 20).unwrap())
        .await;
    let m = raw.recv().await.unwrap();
    assert_eq!(m.header.prog, keepalive::PROGRAM);
    assert_eq!(m.header.proc_, keepalive::PROC_PONG);
    assert_eq!(m.header.message_type(), Some(MessageType::Message));
    assert!(m.body.is_empty());
}

#[tokio::test]
async fn keepalive_drops_silent_clients_and_keeps_answering_ones() {
    let cfg = Config {
        keepalive_interval: Some(Duration::from_millis(50)),
        keepalive_count: 2,
        keepalive_on_connect: true,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let alive = Client::connect(ts.path()).await.unwrap();
    let mut silent = Raw::connect(ts.path()).await;
    let mut pings = 0;
    loop {
        match tokio::time::timeout(DEADLINE, silent.rd.next()).await {
            Ok(Some(Ok(m))) => {
                assert_eq!(m.header.proc_, keepalive::PROC_PING);
                pings += 1;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => panic!("silent client not dropped"),
        }
    }
    assert_eq!(pings, 2);
    // The answering client survived all of that and is still served.
    eventually("pings answered", || alive.pings_answered() >= 3).await;
    assert_eq!(alive.get_type().await.unwrap(), "QEMU");
}

#[tokio::test]
async fn keepalive_starts_when_client_asks_for_the_feature() {
    let cfg = Config {
        keepalive_interval: Some(Duration::from_millis(50)),
        keepalive_count: 100,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let r: remote::ConnectSupportsFeatureRet = c
        .call(
            procedure::CONNECT_SUPPORTS_FEATURE,
            &remote::ConnectSupportsFeatureArgs {
                feature: remote::feature::PROGRAM_KEEPALIVE,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.supported, 1);
    eventually("server pings", || c.pings_answered() >= 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_idle_clients_and_one_more_is_served() {
    // 1000 client ends + 1000 server ends + slack.
    let nofile = testkit::raise_nofile().unwrap();
    assert!(
        nofile >= 4096,
        "RLIMIT_NOFILE {nofile} is too low for 1000 clients"
    );
    let ts = TestServer::start(Config::default()).await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(UnixStream::connect(ts.path()).await.unwrap());
    }
    let server = ts.server.clone();
    eventually("1000 clients registered", || server.client_count() == 1000).await;
    let c = Client::connect(ts.path()).await.unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(c.get_type().await.unwrap(), "QEMU");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(server.client_count(), 1001);
    drop(idle);
    eventually("idle clients gone", || server.client_count() == 1).await;
}

#[tokio::test]
async fn shutdown_closes_clients_and_completes() {
    let ts = TestServer::start(Config::default()).await;
    let c = Client::connect(ts.path()).await.unwrap();
    assert_eq!(c.get_type().await.unwrap(), "QEMU");
    ts.server.shutdown();
    tokio::time::timeout(DEADLINE, ts.server.wait_closed())
        .await
        .unwrap();
    assert_eq!(ts.mock.disconnected().len(), 1);
    eventually("client sees close", || c.is_closed()).await;
    assert!(UnixStream::connect(ts.path()).await.is_err() || ts.server.client_count() == 0);
}
