//! A server driven by a `dispatch::Table`: typed handlers, the read-only
//! column, the priority lane and how unserved procedures are named.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rpc::dispatch::{Access::*, Lane, Lane::*, Row, Table};
use rpc::frame::{Message, MessageCodec, encode_frame};
use rpc::header::{Header, MessageStatus, MessageType};
use rpc::protocol::remote::{self, DomainArgs, NonnullDomain, RemoteError, procedure as p};
use rpc::{CallContext, ClientId, Config, Handler, Server, xdr};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{Notify, Semaphore};
use tokio_util::codec::FramedRead;
use virterror::{ErrorCode, VirError};

const DEADLINE: Duration = Duration::from_secs(10);

/// Calls of `DOMAIN_SUSPEND` (normal lane) and `DOMAIN_RESUME` (priority
/// lane, for the bound test) wait for a permit of their gate, as calls
/// waiting for a job lock do.
struct Gated {
    table: Table<Gated>,
    suspend_gate: Semaphore,
    resume_gate: Semaphore,
    waiting: AtomicUsize,
    changed: Notify,
    /// Calls the handler has started, by procedure.
    started: std::sync::Mutex<Vec<i32>>,
}

impl Gated {
    async fn wait(&self, gate: &Semaphore) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        gate.acquire().await.unwrap().forget();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    fn started(&self, proc_: i32) {
        self.started.lock().unwrap().push(proc_);
    }

    fn started_count(&self, proc_: i32) -> usize {
        self.started
            .lock()
            .unwrap()
            .iter()
            .filter(|&&x| x == proc_)
            .count()
    }

    async fn wait_for_waiting(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let notified = self.changed.notified();
            if self.waiting.load(Ordering::SeqCst) == n {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "never {n} waiting calls"
            );
        }
    }
}

async fn suspend(g: &Gated, _: &CallContext, _: DomainArgs) -> Result<(), VirError> {
    g.started(p::DOMAIN_SUSPEND);
    g.wait(&g.suspend_gate).await;
    Ok(())
}

async fn resume(g: &Gated, _: &CallContext, _: DomainArgs) -> Result<(), VirError> {
    g.started(p::DOMAIN_RESUME);
    g.wait(&g.resume_gate).await;
    Ok(())
}

async fn destroy(g: &Gated, _: &CallContext, _: DomainArgs) -> Result<(), VirError> {
    g.started(p::DOMAIN_DESTROY);
    Ok(())
}

async fn get_type(
    g: &Gated,
    _: &CallContext,
    _: (),
) -> Result<remote::ConnectGetTypeRet, VirError> {
    g.started(p::CONNECT_GET_TYPE);
    Ok(remote::ConnectGetTypeRet {
        type_: "QEMU".into(),
    })
}

fn table() -> Table<Gated> {
    Table::new([
        Row::new(p::DOMAIN_SUSPEND, Write, Normal, suspend),
        Row::new(p::DOMAIN_RESUME, Write, Priority, resume),
        Row::new(p::DOMAIN_DESTROY, Write, Priority, destroy),
        Row::new(p::CONNECT_GET_TYPE, Read, Normal, get_type),
    ])
    .unwrap()
}

impl Handler for Gated {
    async fn call(&self, ctx: CallContext, proc_: i32, args: Bytes) -> Result<Bytes, VirError> {
        self.table.call(self, &ctx, proc_, args).await
    }
    fn is_mutating(&self, proc_: i32) -> bool {
        self.table.is_mutating(proc_)
    }
    fn lane(&self, proc_: i32) -> Lane {
        self.table.lane(proc_)
    }
    fn on_disconnect(&self, _: ClientId) {}
}

struct Fixture {
    handler: Arc<Gated>,
    _dir: tempfile::TempDir,
    rw: std::path::PathBuf,
    ro: std::path::PathBuf,
}

async fn start(cfg: Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (rw, ro) = (dir.path().join("sock"), dir.path().join("sock-ro"));
    let handler = Arc::new(Gated {
        table: table(),
        suspend_gate: Semaphore::new(0),
        resume_gate: Semaphore::new(0),
        waiting: AtomicUsize::new(0),
        changed: Notify::new(),
        started: std::sync::Mutex::default(),
    });
    let server = Server::with_handler(cfg, handler.clone());
    for (path, readonly) in [(&rw, false), (&ro, true)] {
        let l = tokio::net::UnixListener::bind(path).unwrap();
        let s = server.clone();
        tokio::spawn(async move { s.serve(l, readonly).await });
    }
    Fixture {
        handler,
        _dir: dir,
        rw,
        ro,
    }
}

/// A raw connection: calls are pipelined, replies read one by one.
struct Raw {
    rd: FramedRead<tokio::net::unix::OwnedReadHalf, MessageCodec>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl Raw {
    async fn connect(path: &std::path::Path) -> Raw {
        let (rd, wr) = UnixStream::connect(path).await.unwrap().into_split();
        Raw {
            rd: FramedRead::new(rd, MessageCodec::default()),
            wr,
        }
    }

    async fn call(&mut self, proc_: i32, serial: u32, body: &[u8]) {
        let h = Header::new(
            remote::PROGRAM,
            remote::VERSION,
            proc_,
            MessageType::Call,
            serial,
            MessageStatus::Ok,
        );
        let frame = encode_frame(&h, body, rpc::frame::MESSAGE_MAX).unwrap();
        self.wr.write_all(&frame).await.unwrap();
    }

    async fn reply(&mut self) -> Message {
        match tokio::time::timeout(DEADLINE, self.rd.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("no reply within the deadline: {other:?}"),
        }
    }

    /// Asserts nothing arrives for a moment (the call was not dispatched).
    async fn quiet(&mut self, what: &str) {
        let r = tokio::time::timeout(Duration::from_millis(200), self.rd.next()).await;
        assert!(r.is_err(), "{what}: a reply arrived: {r:?}");
    }
}

fn dom_args() -> Vec<u8> {
    xdr::to_bytes(&DomainArgs {
        dom: NonnullDomain {
            name: "vm".into(),
            uuid: [7; 16],
            id: 1,
        },
    })
    .to_vec()
}

fn error_of(m: &Message) -> RemoteError {
    assert_eq!(m.header.message_status(), Some(MessageStatus::Error));
    xdr::from_bytes(&m.body).unwrap()
}

#[tokio::test]
async fn priority_call_answers_while_the_normal_slots_wait() {
    let f = start(Config {
        max_inflight_per_client: 2,
        max_priority_inflight_per_client: 1,
        ..Config::default()
    })
    .await;
    let mut c = Raw::connect(&f.rw).await;
    let args = dom_args();
    c.call(p::DOMAIN_SUSPEND, 1, &args).await;
    c.call(p::DOMAIN_SUSPEND, 2, &args).await;
    f.handler.wait_for_waiting(2).await;

    // Both normal slots wait; destroy on the same connection still runs.
    c.call(p::DOMAIN_DESTROY, 3, &args).await;
    let m = c.reply().await;
    assert_eq!(m.header.serial, 3, "first reply is destroy's");
    assert_eq!(m.header.message_status(), Some(MessageStatus::Ok));
    assert_eq!(f.handler.waiting.load(Ordering::SeqCst), 2);

    // A normal call read now waits for a normal slot, undispatched.
    c.call(p::CONNECT_GET_TYPE, 4, &[]).await;
    c.quiet("get_type while both slots wait").await;
    assert_eq!(f.handler.started_count(p::CONNECT_GET_TYPE), 0);

    // One suspend finishes: its reply, then get_type runs in its slot.
    f.handler.suspend_gate.add_permits(1);
    let mut serials = vec![c.reply().await.header.serial, c.reply().await.header.serial];
    serials.sort_unstable();
    assert!(serials == [1, 4] || serials == [2, 4], "{serials:?}");
    f.handler.suspend_gate.add_permits(1);
    let last = c.reply().await.header.serial;
    assert!(last == 1 || last == 2, "{last}");
}

#[tokio::test]
async fn priority_lane_is_bounded_and_reading_stops_one_message_ahead() {
    let f = start(Config {
        max_inflight_per_client: 1,
        max_priority_inflight_per_client: 1,
        ..Config::default()
    })
    .await;
    let mut c = Raw::connect(&f.rw).await;
    let args = dom_args();
    // The normal slot and the priority lane both wait.
    c.call(p::DOMAIN_SUSPEND, 1, &args).await;
    c.call(p::DOMAIN_RESUME, 2, &args).await;
    f.handler.wait_for_waiting(2).await;
    // A third priority call is read and waits for a slot; the message
    // after it is not read at all.
    c.call(p::DOMAIN_DESTROY, 3, &args).await;
    c.call(p::DOMAIN_DESTROY, 4, &args).await;
    c.quiet("destroy with every slot taken").await;
    assert_eq!(f.handler.started_count(p::DOMAIN_DESTROY), 0);

    // The priority lane frees: the destroy read ahead runs, then the next.
    f.handler.resume_gate.add_permits(1);
    let mut serials = Vec::new();
    for _ in 0..3 {
        serials.push(c.reply().await.header.serial);
    }
    serials.sort_unstable();
    assert_eq!(serials, [2, 3, 4]);
    f.handler.suspend_gate.add_permits(1);
    assert_eq!(c.reply().await.header.serial, 1);
}

#[tokio::test]
async fn table_decides_read_only_access_and_names_unserved_procedures() {
    let f = start(Config::default()).await;
    let mut ro = Raw::connect(&f.ro).await;
    // A Write row is refused before its handler runs, naming it.
    ro.call(p::DOMAIN_DESTROY, 1, &dom_args()).await;
    let e = error_of(&ro.reply().await);
    assert_eq!(e.code, ErrorCode::OperationDenied.as_i32());
    assert_eq!(
        e.message.as_deref(),
        Some("operation forbidden: read only access prevents DOMAIN_DESTROY (12)")
    );
    assert_eq!(f.handler.started_count(p::DOMAIN_DESTROY), 0);
    // A Read row runs there.
    ro.call(p::CONNECT_GET_TYPE, 2, &[]).await;
    let m = ro.reply().await;
    assert_eq!(m.header.message_status(), Some(MessageStatus::Ok));
    let r: remote::ConnectGetTypeRet = xdr::from_bytes(&m.body).unwrap();
    assert_eq!(r.type_, "QEMU");

    // No row: NO_SUPPORT on either socket, named the same way.
    let mut rw = Raw::connect(&f.rw).await;
    for (c, serial) in [(&mut ro, 3), (&mut rw, 1)] {
        for (proc_, name) in [
            (p::DOMAIN_BLOCK_STATS, "DOMAIN_BLOCK_STATS (64)"),
            (p::NODE_GET_CPU_MAP, "NODE_GET_CPU_MAP (293)"),
            (99_999, "unknown procedure (99999)"),
        ] {
            c.call(proc_, serial, &[]).await;
            let e = error_of(&c.reply().await);
            assert_eq!(e.code, ErrorCode::NoSupport.as_i32(), "{name}");
            assert_eq!(
                e.message.as_deref(),
                Some(
                    format!("this function is not supported by the connection driver: {name}")
                        .as_str()
                )
            );
        }
    }
    // Undecodable arguments: an RPC error naming the procedure.
    rw.call(p::DOMAIN_SUSPEND, 9, b"\0\0").await;
    let e = error_of(&rw.reply().await);
    assert_eq!(e.code, ErrorCode::Rpc.as_i32());
    assert!(
        e.message
            .as_deref()
            .unwrap()
            .starts_with("cannot decode arguments of procedure DOMAIN_SUSPEND (34)"),
        "{e:?}"
    );
    assert_eq!(f.handler.started_count(p::DOMAIN_SUSPEND), 0);
}

#[test]
fn a_table_refuses_unknown_and_duplicate_rows() {
    let err = Table::<Gated>::new([Row::new(99_999, Read, Normal, get_type)]).unwrap_err();
    assert_eq!(err, rpc::dispatch::TableError::Unknown(99_999));
    let err = Table::<Gated>::new([
        Row::new(p::CONNECT_GET_TYPE, Read, Normal, get_type),
        Row::new(p::CONNECT_GET_TYPE, Read, Priority, get_type),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "procedure table: CONNECT_GET_TYPE (3) has more than one row"
    );
}
