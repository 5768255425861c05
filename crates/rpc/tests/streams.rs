//! libvirt streams and descriptor passing through the server, with the
//! mock's stream procedures, over real UNIX sockets: framing as libvirt
//! clients expect it, and the bounds in both directions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use common::mock::{
    Mock, P_FD_ECHO, P_STREAM_ECHO, P_STREAM_FAIL, P_STREAM_SINK, P_STREAM_SOURCE, digest,
    digest_seed,
};
use futures_util::StreamExt;
use rpc::Config;
use rpc::frame::{Message, MessageCodec, encode_frame};
use rpc::header::{Header, MessageStatus, MessageType};
use rpc::protocol::remote::{self, RemoteError, procedure};
use rpc::xdr::{self, Encoder, Xdr};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio_util::codec::FramedRead;
use virterror::ErrorCode;

const DEADLINE: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

fn frame(proc_: i32, t: MessageType, serial: u32, s: MessageStatus, body: &[u8]) -> Bytes {
    let h = Header::new(remote::PROGRAM, remote::VERSION, proc_, t, serial, s);
    encode_frame(&h, body, rpc::frame::MESSAGE_MAX).unwrap()
}

fn call<T: Xdr>(proc_: i32, serial: u32, args: &T) -> Bytes {
    frame(
        proc_,
        MessageType::Call,
        serial,
        MessageStatus::Ok,
        &xdr::to_bytes(args),
    )
}

fn data(proc_: i32, serial: u32, body: &[u8]) -> Bytes {
    frame(
        proc_,
        MessageType::Stream,
        serial,
        MessageStatus::Continue,
        body,
    )
}

fn hole_body(len: i64) -> Bytes {
    let mut e = Encoder::new();
    e.put_i64(len);
    e.put_u32(0);
    e.finish()
}

/// A client whose reading and writing the test controls.
struct Raw {
    rd: FramedRead<tokio::net::unix::OwnedReadHalf, MessageCodec>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl Raw {
    async fn connect(ts: &TestServer) -> Raw {
        let s = UnixStream::connect(ts.path()).await.unwrap();
        let (rd, wr) = s.into_split();
        Raw {
            rd: FramedRead::new(rd, MessageCodec::default()),
            wr,
        }
    }

    async fn send(&mut self, b: &[u8]) {
        self.wr.write_all(b).await.unwrap();
    }

    /// The next message that is not a keepalive PING (the server pings a
    /// client that was silent while it did not read it).
    async fn recv(&mut self) -> Message {
        loop {
            match tokio::time::timeout(DEADLINE, self.rd.next()).await {
                Ok(Some(Ok(m))) if m.header.prog == rpc::protocol::keepalive::PROGRAM => {}
                Ok(Some(Ok(m))) => return m,
                other => panic!("no message: {other:?}"),
            }
        }
    }

    /// Calls `proc_` and insists on a successful reply, the next message.
    async fn call_ok<T: Xdr>(&mut self, proc_: i32, serial: u32, args: &T) {
        self.send(&call(proc_, serial, args)).await;
        let m = self.recv().await;
        assert_eq!(m.header.message_type(), Some(MessageType::Reply));
        assert_eq!(m.header.serial, serial);
        assert_eq!(m.header.message_status(), Some(MessageStatus::Ok), "{m:?}");
    }

    /// The next message must be this stream's, of this type and status.
    async fn expect(&mut self, serial: u32, t: MessageType, s: MessageStatus) -> Bytes {
        let m = self.recv().await;
        assert_eq!(
            (
                m.header.message_type(),
                m.header.message_status(),
                m.header.serial
            ),
            (Some(t), Some(s), serial),
            "{m:?}"
        );
        m.body
    }
}

fn remote_error(body: &[u8]) -> RemoteError {
    xdr::from_bytes(body).unwrap()
}

/// Polls `value` until it stops changing for half a second (a stalled
/// transfer); fails after the deadline.
async fn settled(what: &str, value: impl Fn() -> usize) -> usize {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last = value();
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = value();
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= Duration::from_millis(500) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never settled"
        );
    }
}

#[tokio::test]
async fn a_sparse_stream_carries_data_and_holes_after_the_reply() {
    let ts = TestServer::start(Config::default()).await;
    let mut c = Raw::connect(&ts).await;
    c.call_ok(P_STREAM_ECHO, 5, &1u32).await;
    c.send(&data(P_STREAM_ECHO, 5, b"hello")).await;
    let hole = frame(
        P_STREAM_ECHO,
        MessageType::StreamHole,
        5,
        MessageStatus::Continue,
        &hole_body(1 << 40),
    );
    c.send(&hole).await;
    c.send(&data(P_STREAM_ECHO, 5, b"world")).await;
    let b = c
        .expect(5, MessageType::Stream, MessageStatus::Continue)
        .await;
    assert_eq!(&b[..], b"hello");
    let b = c
        .expect(5, MessageType::StreamHole, MessageStatus::Continue)
        .await;
    assert_eq!(b, hole_body(1 << 40));
    let b = c
        .expect(5, MessageType::Stream, MessageStatus::Continue)
        .await;
    assert_eq!(&b[..], b"world");
    // Finish: confirmed with an empty OK.
    c.send(&frame(
        P_STREAM_ECHO,
        MessageType::Stream,
        5,
        MessageStatus::Ok,
        b"",
    ))
    .await;
    let b = c.expect(5, MessageType::Stream, MessageStatus::Ok).await;
    assert!(b.is_empty());
    // Late data for the ended stream is dropped quietly: the next message
    // is the reply to the next call.
    c.send(&data(P_STREAM_ECHO, 5, b"late")).await;
    c.call_ok(procedure::CONNECT_GET_TYPE, 6, &()).await;
}

#[tokio::test]
async fn a_hole_on_a_plain_stream_fails_that_stream_only() {
    let ts = TestServer::start(Config::default()).await;
    let mut c = Raw::connect(&ts).await;
    c.call_ok(P_STREAM_ECHO, 3, &0u32).await;
    let hole = frame(
        P_STREAM_ECHO,
        MessageType::StreamHole,
        3,
        MessageStatus::Continue,
        &hole_body(4096),
    );
    c.send(&hole).await;
    let b = c.expect(3, MessageType::Stream, MessageStatus::Error).await;
    let e = remote_error(&b);
    assert_eq!(e.code, ErrorCode::Rpc.as_i32());
    assert!(e.message.unwrap().contains("Unexpected stream hole"));
    c.call_ok(procedure::CONNECT_GET_TYPE, 4, &()).await;
    // An abort of the ended stream is confirmed, not refused.
    c.send(&frame(
        P_STREAM_ECHO,
        MessageType::Stream,
        3,
        MessageStatus::Error,
        b"",
    ))
    .await;
    c.expect(3, MessageType::Stream, MessageStatus::Ok).await;
}

#[tokio::test]
async fn a_failed_call_ends_the_stream_it_opened() {
    let ts = TestServer::start(Config::default()).await;
    let mut c = Raw::connect(&ts).await;
    c.send(&call(P_STREAM_FAIL, 9, &())).await;
    let m = c.recv().await;
    assert_eq!(m.header.message_type(), Some(MessageType::Reply));
    assert_eq!(m.header.message_status(), Some(MessageStatus::Error));
    // The stream was never open to the client: data for it is dropped.
    c.send(&data(P_STREAM_FAIL, 9, b"x")).await;
    c.call_ok(procedure::CONNECT_GET_TYPE, 10, &()).await;
}

/// Reads a source stream to its end, checking every byte, and finishes.
async fn read_source(c: &mut Raw, serial: u32, n: usize) {
    let mut got = 0;
    loop {
        let b = c
            .expect(serial, MessageType::Stream, MessageStatus::Continue)
            .await;
        if b.is_empty() {
            break;
        }
        assert!(b.len() <= rpc::stream::CHUNK_MAX);
        for (i, byte) in b.iter().enumerate() {
            assert_eq!(*byte, Mock::pattern((got + i) % rpc::stream::CHUNK_MAX));
        }
        got += b.len();
    }
    assert_eq!(got, n);
    c.send(&frame(
        P_STREAM_SOURCE,
        MessageType::Stream,
        serial,
        MessageStatus::Ok,
        b"",
    ))
    .await;
    c.expect(serial, MessageType::Stream, MessageStatus::Ok)
        .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_stops_the_source_at_the_bound() {
    let cfg = Config {
        max_stream_queued_bytes: MIB,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let mut c = Raw::connect(&ts).await;
    let n = 64 * MIB;
    c.call_ok(P_STREAM_SOURCE, 2, &(n as u64)).await;
    // We read nothing more: the source runs until the queue's stream share
    // and the socket's buffers are full, then waits.
    let sent = settled("the source", || ts.mock.source_sent.load(Ordering::SeqCst)).await;
    eprintln!("source stalled after {sent} bytes queued of {n}");
    assert!(sent > 0);
    // The share, one chunk being written, and what the kernel buffers.
    assert!(sent <= 6 * MIB, "source ran ahead: {sent} bytes");
    // Nothing was dropped: reading now gets every byte, in order.
    read_source(&mut c, 2, n).await;
    assert_eq!(ts.mock.source_sent.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn keepalive_cuts_a_client_that_stops_reading_a_stream() {
    let cfg = Config {
        keepalive_interval: Some(Duration::from_millis(200)),
        keepalive_count: 2,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let mut c = Raw::connect(&ts).await;
    let ka = remote::ConnectSupportsFeatureArgs {
        feature: remote::feature::PROGRAM_KEEPALIVE,
    };
    c.call_ok(procedure::CONNECT_SUPPORTS_FEATURE, 1, &ka).await;
    c.call_ok(P_STREAM_SOURCE, 2, &(1u64 << 30)).await;
    // Not reading, so not answering PINGs either: keepalive, not memory,
    // ends the connection, and the source task ends with it.
    ts.mock
        .wait_for("the client to be cut", |m| m.disconnected().len() == 1)
        .await;
    ts.mock
        .wait_for("the source to end", |m| {
            m.streams_ended.load(Ordering::SeqCst) == 1
        })
        .await;
    let sent = ts.mock.source_sent.load(Ordering::SeqCst);
    assert!(sent <= 6 * MIB, "source ran ahead: {sent} bytes");
}

#[tokio::test]
async fn a_client_flooding_a_stalled_sink_is_not_read_until_it_drains() {
    let cfg = Config {
        max_stream_inbound_bytes: MIB,
        // Well inside the stall below: the pause must not count.
        keepalive_interval: Some(Duration::from_millis(150)),
        keepalive_count: 3,
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let mut c = Raw::connect(&ts).await;
    let ka = remote::ConnectSupportsFeatureArgs {
        feature: remote::feature::PROGRAM_KEEPALIVE,
    };
    c.call_ok(procedure::CONNECT_SUPPORTS_FEATURE, 1, &ka).await;
    c.call_ok(P_STREAM_SINK, 7, &()).await;
    let Raw { rd, mut wr } = c;
    let total = 64 * MIB;
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let writer = tokio::spawn(async move {
        let mut h = digest_seed();
        let chunk: Vec<u8> = (0..rpc::stream::CHUNK_MAX)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let mut left = total;
        while left > 0 {
            let len = left.min(chunk.len());
            wr.write_all(&data(P_STREAM_SINK, 7, &chunk[..len]))
                .await
                .unwrap();
            h = digest(h, &chunk[..len]);
            left -= len;
            w.fetch_add(len, Ordering::SeqCst);
        }
        wr.write_all(&frame(
            P_STREAM_SINK,
            MessageType::Stream,
            7,
            MessageStatus::Ok,
            b"",
        ))
        .await
        .unwrap();
        (wr, h)
    });
    // The sink takes nothing: the server reads the budget, then stops.
    let stalled = settled("the writer", || written.load(Ordering::SeqCst)).await;
    eprintln!("client writes stalled after {stalled} bytes of {total}");
    assert!(stalled <= 8 * MIB, "server kept reading: {stalled} bytes");
    // Not reading is our doing: keepalive kept the client.
    assert!(ts.mock.disconnected().is_empty());
    ts.mock.sink_gate.add_permits(1 << 20);
    let (wr, h) = tokio::time::timeout(DEADLINE, writer)
        .await
        .unwrap()
        .unwrap();
    let mut c = Raw { rd, wr };
    c.expect(7, MessageType::Stream, MessageStatus::Ok).await;
    assert_eq!(ts.mock.sink_bytes.load(Ordering::SeqCst), total);
    assert_eq!(*ts.mock.sink_digest.lock().unwrap(), h);
}

#[tokio::test]
async fn descriptors_come_back_with_a_reply_with_fds() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let ts = TestServer::start(Config::default()).await;
    let path = ts.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
        let body = 1u32.to_be_bytes();
        s.write_all(&frame(
            P_FD_ECHO,
            MessageType::CallWithFds,
            4,
            MessageStatus::Ok,
            &body,
        ))
        .unwrap();
        send_fd(&s, pipe_w.as_raw_fd());
        drop(pipe_w);
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut rest = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut rest).unwrap();
        let h = Header::decode(&mut xdr::Decoder::new(&rest[..24])).unwrap();
        assert_eq!(h.message_type(), Some(MessageType::ReplyWithFds));
        assert_eq!(h.serial, 4);
        assert_eq!(&rest[24..], &1u32.to_be_bytes());
        let fd = recv_fd(&s);
        let mut echoed = std::fs::File::from(fd);
        echoed.write_all(b"ping").unwrap();
        drop(echoed);
        let mut got = String::new();
        std::fs::File::from(pipe_r)
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "ping");
    })
    .await
    .unwrap();
}

fn send_fd(s: &std::os::unix::net::UnixStream, fd: i32) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let iov = [std::io::IoSlice::new(&[0u8])];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&[fd])],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
}

fn recv_fd(s: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just gave us this descriptor.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no descriptor came with the byte");
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_an_error_the_client_reports() {
    let ts = TestServer::start(Config::default()).await;
    let mut c = Raw::connect(&ts).await;
    c.call_ok(P_STREAM_ECHO, 8, &0u32).await;
    ts.server.shutdown();
    let b = c.expect(8, MessageType::Stream, MessageStatus::Error).await;
    let e = remote_error(&b);
    assert_eq!(e.code, ErrorCode::OperationAborted.as_i32());
    assert!(e.message.unwrap().contains("shutting down"));
    tokio::time::timeout(DEADLINE, ts.server.wait_closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_while_its_sink_is_full_is_let_go() {
    let cfg = Config {
        max_stream_inbound_bytes: MIB,
        keepalive_interval: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let ts = TestServer::start(cfg).await;
    let mut c = Raw::connect(&ts).await;
    c.call_ok(P_STREAM_SINK, 7, &()).await;
    let chunk = vec![1u8; rpc::stream::CHUNK_MAX];
    // More than the budget: the server stops reading, the sink takes none
    // (so our writes stall too: give each a moment, not a deadline).
    for _ in 0..6 {
        let f = data(P_STREAM_SINK, 7, &chunk);
        let _ = tokio::time::timeout(Duration::from_millis(500), c.send(&f)).await;
    }
    drop(c);
    // Not read, yet seen gone: the stream (and the sink's hold) ends.
    ts.mock
        .wait_for("the client to be let go", |m| m.disconnected().len() == 1)
        .await;
    ts.mock.sink_gate.add_permits(100);
    ts.mock
        .wait_for("the sink to end", |m| {
            m.streams_ended.load(Ordering::SeqCst) == 1
        })
        .await;
}
