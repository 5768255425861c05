//! One client connection: a reader (framing, routing, keepalive, in-flight
//! slots, stream data), a writer draining the bounded output queue, and the
//! call tasks.
//!
//! Every byte the server sends to a client — replies, error replies, PONGs,
//! PINGs, events, stream data — goes through one bounded queue
//! ([`OutQueue`]). Nothing but stream data ever waits for queue space: a
//! push that does not fit disconnects the client, because a client that
//! lets its queue fill is not reading, and the daemon must not grow on its
//! behalf: each client's outgoing queue is bounded and a client that does
//! not read is disconnected. Stream data has a share of its own
//! (`max_stream_queued_bytes`) and waits for room in it instead, so that a
//! stream's source pauses while the client does not read (see `stream.rs`).
//!
//! Inbound, each call runs in one of the client's in-flight slots
//! ([`Slots`]): `max_inflight_per_client` normal ones plus a small lane of
//! `max_priority_inflight_per_client` that only [`Lane::Priority`] calls may
//! use. When no slot is free for the call just read, the reader stops
//! reading until one is: it reads at most one message ahead. So a client
//! whose normal slots are all taken by calls waiting for a job can still
//! destroy the domain or look it up on the same connection, and inbound
//! memory stays bounded (see the crate documentation for the figure).
//! Stream data from the client is handed to its stream within the
//! client's inbound stream budget; at the bound the reader stops likewise.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::dispatch::Lane;
use crate::error::{CodecError, FrameError};
use crate::fdio::{FrameReader, Received};
use crate::frame::encode_frame;
use crate::header::{Header, MessageStatus, MessageType};
use crate::metrics::ServerMetrics;
use crate::protocol::keepalive;
use crate::protocol::remote::{self, RemoteError, procedure};
use crate::server::{
    CallContext, CallExtras, ClientId, Config, Handler, Inner, describe_procedure,
};
use crate::stream::{self, Lookup, Raw, Registry};
use crate::transport::{Conn, Transport, WriteSide};
use crate::xdr::{self, Xdr};

/// Why a push to a client's output queue failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// The client is gone (or going); forget registrations that point at it.
    #[error("client is closed")]
    Closed,
    /// The client's output queue was full; the client has been disconnected.
    #[error("client output queue full: client disconnected")]
    QueueFull,
    /// The message exceeds the protocol's maximum size; nothing was sent.
    #[error("message too large for the protocol")]
    TooLarge,
}

/// One frame waiting to be written, with the descriptors that follow it.
struct OutItem {
    frame: Bytes,
    fds: Vec<OwnedFd>,
    /// Stream data: counted in the stream share until written.
    stream: bool,
}

struct OutQueue {
    items: VecDeque<OutItem>,
    /// Bytes of every frame in `items`.
    bytes: usize,
    /// Stream frames in `items`, and their bytes.
    stream_msgs: usize,
    stream_bytes: usize,
    /// Bytes of the stream frame the writer is writing (0 if none): it
    /// still counts against the stream share.
    stream_writing: usize,
    closed: bool,
    /// Close once everything queued has been written.
    drain_then_close: bool,
}

/// State shared by the reader, the writer, call tasks and event sinks.
pub(crate) struct ClientShared {
    id: ClientId,
    out: Mutex<OutQueue>,
    out_ready: Notify,
    /// Cancelled when the client must go now (overflow, shutdown, EOF).
    closing: CancellationToken,
    keepalive_enabled: AtomicBool,
    max_msgs: usize,
    max_bytes: usize,
    max_message: usize,
    /// Signalled when stream frames were written (room for more).
    stream_room: Notify,
    max_stream_msgs: usize,
    max_stream_bytes: usize,
    /// The client's open streams.
    streams: Mutex<Registry>,
    /// Bytes of stream data read from the client and not yet consumed by
    /// a sink (`max_stream_inbound_bytes` permits).
    inbound: Arc<Semaphore>,
    max_inbound: usize,
    metrics: Arc<ServerMetrics>,
}

impl ClientShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutQueue> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // queue itself is always consistent between statements.
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn id(&self) -> ClientId {
        self.id
    }

    pub(crate) fn streams(&self) -> std::sync::MutexGuard<'_, Registry> {
        // As for the queue: consistent between statements.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a complete frame, or disconnects the client if it does not
    /// fit.
    fn push(&self, frame: Bytes) -> Result<(), Dropped> {
        self.push_item(OutItem {
            frame,
            fds: Vec::new(),
            stream: false,
        })
    }

    fn push_item(&self, item: OutItem) -> Result<(), Dropped> {
        let frame = &item.frame;
        let mut q = self.lock();
        if q.closed {
            return Err(Dropped::Closed);
        }
        let len = frame.len();
        // Stream frames have their own share (see `push_stream`).
        let msgs = q.items.len() - q.stream_msgs;
        let bytes = q.bytes - q.stream_bytes;
        let full = msgs >= self.max_msgs || (msgs > 0 && bytes + len > self.max_bytes);
        if full {
            let cleared = q.items.len();
            q.closed = true;
            q.items.clear();
            q.bytes = 0;
            q.stream_msgs = 0;
            q.stream_bytes = 0;
            drop(q);
            self.stream_room.notify_waiters();
            self.metrics.dequeued(cleared);
            self.metrics.dropped_slow.inc();
            warn!(
                client = %self.id,
                queued_messages = msgs,
                queued_bytes = bytes,
                "client does not read: output queue full, disconnecting"
            );
            self.closing.cancel();
            return Err(Dropped::QueueFull);
        }
        q.bytes += len;
        q.items.push_back(item);
        let depth = q.items.len();
        drop(q);
        self.metrics.enqueued(depth);
        self.out_ready.notify_one();
        Ok(())
    }

    pub(crate) fn push_message(&self, header: &Header, body: &[u8]) -> Result<(), Dropped> {
        let frame = encode_frame(header, body, self.max_message).map_err(|_| Dropped::TooLarge)?;
        self.push(frame)
    }

    /// Queues a frame of stream data, waiting while the stream share of
    /// the queue is full (a frame always fits a share with nothing in it).
    /// Never disconnects the client; fails only once it is gone.
    pub(crate) async fn push_stream(&self, header: &Header, body: &[u8]) -> Result<(), Dropped> {
        let frame = encode_frame(header, body, self.max_message).map_err(|_| Dropped::TooLarge)?;
        let len = frame.len();
        loop {
            let room = self.stream_room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut q = self.lock();
                if q.closed {
                    return Err(Dropped::Closed);
                }
                let used = q.stream_bytes + q.stream_writing;
                let used_msgs = q.stream_msgs + usize::from(q.stream_writing > 0);
                let fits = used_msgs == 0
                    || (used_msgs < self.max_stream_msgs && used + len <= self.max_stream_bytes);
                if fits {
                    q.stream_msgs += 1;
                    q.stream_bytes += len;
                    q.bytes += len;
                    q.items.push_back(OutItem {
                        frame,
                        fds: Vec::new(),
                        stream: true,
                    });
                    let depth = q.items.len();
                    drop(q);
                    self.metrics.enqueued(depth);
                    self.out_ready.notify_one();
                    return Ok(());
                }
            }
            tokio::select! {
                _ = room => {}
                _ = self.closing.cancelled() => return Err(Dropped::Closed),
            }
        }
    }

    /// The next frame to write (a stream frame stays in the stream share
    /// until [`ClientShared::written`]).
    fn pop(&self) -> Next {
        let mut q = self.lock();
        match q.items.pop_front() {
            Some(item) => {
                q.bytes -= item.frame.len();
                self.metrics.dequeued(1);
                if item.stream {
                    q.stream_msgs -= 1;
                    q.stream_bytes -= item.frame.len();
                    q.stream_writing = item.frame.len();
                }
                Next::Item(item)
            }
            None if q.drain_then_close || self.closing.is_cancelled() => Next::Done,
            None => Next::Empty,
        }
    }

    /// The frame `item` was written.
    fn written(&self, item: &OutItem) {
        if item.stream {
            self.lock().stream_writing = 0;
            self.stream_room.notify_waiters();
        }
    }

    /// Stops accepting new messages; the writer finishes what is queued.
    fn close_after_drain(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.drain_then_close = true;
        drop(q);
        self.out_ready.notify_one();
    }

    fn close_now(&self) {
        let mut q = self.lock();
        q.closed = true;
        let left = q.items.len();
        q.items.clear();
        q.bytes = 0;
        q.stream_msgs = 0;
        q.stream_bytes = 0;
        q.stream_writing = 0;
        drop(q);
        self.metrics.dequeued(left);
        self.closing.cancel();
        self.stream_room.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Queue depth (messages, bytes), for tests and diagnostics.
    fn depth(&self) -> (usize, usize) {
        let q = self.lock();
        (q.items.len(), q.bytes)
    }
}

/// A cloneable handle to push server-initiated messages (events) to one
/// client. Pushing never blocks; see [`Dropped`].
#[derive(Clone)]
pub struct EventSink {
    shared: Arc<ClientShared>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("client", &self.shared.id)
            .finish()
    }
}

impl EventSink {
    pub fn client(&self) -> ClientId {
        self.shared.id
    }

    /// Sends a REMOTE-program `MESSAGE` (an event) with an encoded body.
    /// `Err(QueueFull)` means the client was just disconnected for not
    /// reading; `Err(Closed)` that it is gone: in both cases drop the
    /// registration.
    pub fn try_send_event(&self, procedure: i32, body: Bytes) -> Result<(), Dropped> {
        self.try_send_message(remote::PROGRAM, remote::VERSION, procedure, &body)
    }

    /// [`EventSink::try_send_event`] with a typed message.
    pub fn try_send_event_xdr<T: Xdr>(&self, procedure: i32, msg: &T) -> Result<(), Dropped> {
        self.try_send_event(procedure, xdr::to_bytes(msg))
    }

    /// A `MESSAGE` of any program.
    pub fn try_send_message(
        &self,
        prog: u32,
        vers: u32,
        procedure: i32,
        body: &[u8],
    ) -> Result<(), Dropped> {
        let h = Header::new(
            prog,
            vers,
            procedure,
            MessageType::Message,
            0,
            MessageStatus::Ok,
        );
        self.shared.push_message(&h, body)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Resolves when the client is being disconnected.
    pub async fn closed(&self) {
        self.shared.closing.cancelled().await
    }

    /// Disconnects the client (queued messages are discarded).
    pub fn close(&self) {
        info!(client = %self.shared.id, "client closed by handler");
        self.shared.close_now();
    }

    /// Starts our keepalive PINGs to this client (see
    /// `Config::keepalive_on_connect`).
    pub fn enable_keepalive(&self) {
        self.shared.keepalive_enabled.store(true, Ordering::Relaxed);
    }

    /// Messages and bytes waiting in the client's output queue.
    pub fn queue_depth(&self) -> (usize, usize) {
        self.shared.depth()
    }
}

/// Why a connection ended (logged).
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error("end of file")]
    Eof,
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(FrameError),
    #[error("keepalive timeout: PINGs unanswered")]
    KeepaliveTimeout,
    #[error("closed")]
    Closed,
    #[error("server shutdown")]
    Shutdown,
}

fn error_frame_body(e: &VirError) -> Bytes {
    xdr::to_bytes(&RemoteError::from(e))
}

fn rpc_error(msg: impl Into<String>) -> VirError {
    VirError::new(ErrorCode::Rpc, ErrorDomain::Rpc, msg)
}

fn no_support(msg: impl Into<String>) -> VirError {
    VirError::new(ErrorCode::NoSupport, ErrorDomain::Rpc, msg)
}

impl ClientShared {
    fn new(id: ClientId, cfg: &Config, metrics: Arc<ServerMetrics>) -> Self {
        Self {
            id,
            out: Mutex::new(OutQueue {
                items: VecDeque::new(),
                bytes: 0,
                stream_msgs: 0,
                stream_bytes: 0,
                stream_writing: 0,
                closed: false,
                drain_then_close: false,
            }),
            out_ready: Notify::new(),
            closing: CancellationToken::new(),
            keepalive_enabled: AtomicBool::new(cfg.keepalive_on_connect),
            max_msgs: cfg.max_queued_messages,
            max_bytes: cfg.max_queued_bytes,
            max_message: cfg.max_message,
            stream_room: Notify::new(),
            max_stream_msgs: cfg.max_stream_queued_messages,
            max_stream_bytes: cfg.max_stream_queued_bytes,
            streams: Mutex::new(Registry::new(cfg.max_streams_per_client)),
            inbound: Arc::new(Semaphore::new(cfg.max_stream_inbound_bytes)),
            max_inbound: cfg.max_stream_inbound_bytes,
            metrics,
        }
    }

    /// Ends every open stream with a `STREAM` error saying `why`, so that
    /// its client reports it (a console client otherwise only learns of
    /// the closed connection).
    fn fail_streams(&self, why: &str) {
        let err = VirError::new(
            ErrorCode::OperationAborted,
            ErrorDomain::Streams,
            format!("operation aborted: {why}"),
        );
        let body = error_frame_body(&err);
        for (proc_, serial) in self.streams().close_all() {
            let h = Header::new(
                remote::PROGRAM,
                remote::VERSION,
                proc_,
                MessageType::Stream,
                serial,
                MessageStatus::Error,
            );
            let _ = self.push_message(&h, &body);
        }
    }

    /// Queues an error reply to the call (or message) `h`.
    fn reply_error(&self, h: &Header, err: &VirError) {
        let _ = self.push_message(&h.reply(MessageStatus::Error), &error_frame_body(err));
    }
}

pub(crate) async fn run<H: Handler>(
    conn: Conn,
    id: ClientId,
    readonly: bool,
    server: Arc<Inner<H>>,
) {
    let cfg = &server.cfg;
    let shared = Arc::new(ClientShared::new(id, cfg, server.metrics.clone()));
    let transport = conn.transport();
    info!(client = %id, readonly, ?transport, "client connected");
    server.handler.on_connect(id, readonly);

    let (rd, wr, socket) = conn.split();
    let writer = tokio::spawn(write_loop(wr, shared.clone()));
    let slots = Slots::new(cfg);
    let mut reader = Reader {
        server: &server,
        shared: &shared,
        sink: EventSink {
            shared: shared.clone(),
        },
        readonly,
        transport,
        slots: &slots,
        keepalive: Keepalive::new(cfg),
    };
    let reason = read_loop(FrameReader::new(rd, socket, cfg.max_message), &mut reader).await;
    close(&shared, writer, reason, cfg.drain_timeout).await;
    shared.streams().close_all();
    // Every call of this client has finished before on_disconnect, so it
    // is the last thing the handler hears about the client.
    slots.all_free().await;
    server.handler.on_disconnect(id);
    debug!(client = %id, "client finished");
}

/// Ends the connection: after a protocol error or on shutdown the queued
/// replies get `drain_timeout` to be written, otherwise they are dropped.
async fn close(
    shared: &ClientShared,
    mut writer: JoinHandle<()>,
    reason: CloseReason,
    drain_timeout: Duration,
) {
    match &reason {
        CloseReason::Eof | CloseReason::Closed | CloseReason::Shutdown => {
            info!(client = %shared.id, %reason, "client disconnected")
        }
        _ => warn!(client = %shared.id, %reason, "closing client"),
    }
    if matches!(reason, CloseReason::Shutdown) {
        shared.fail_streams("the daemon is shutting down");
    }
    let drained = match reason {
        CloseReason::Protocol(_) | CloseReason::Shutdown => {
            shared.close_after_drain();
            tokio::time::timeout(drain_timeout, &mut writer)
                .await
                .is_ok()
        }
        _ => false,
    };
    shared.close_now();
    if !drained {
        let _ = writer.await;
    }
}

/// What the writer does next.
enum Next {
    Item(OutItem),
    /// Nothing queued: flush and wait.
    Empty,
    /// Closing (or drained): stop.
    Done,
}

type Writer = BufWriter<WriteSide>;

async fn write_loop(wr: WriteSide, shared: Arc<ClientShared>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let r = match shared.pop() {
            Next::Item(item) => {
                let r = tokio::select! {
                    r = write_item(&mut w, &item) => r,
                    _ = shared.closing.cancelled() => break,
                };
                shared.written(&item);
                r
            }
            Next::Empty => {
                // Queue empty: push what is buffered, then wait for more.
                let r = tokio::select! {
                    r = w.flush() => r,
                    _ = shared.closing.cancelled() => break,
                };
                if r.is_ok() {
                    tokio::select! {
                        _ = shared.out_ready.notified() => {}
                        _ = shared.closing.cancelled() => break,
                    }
                }
                r
            }
            Next::Done => break,
        };
        if let Err(e) = r {
            debug!(client = %shared.id, error = %e, "write failed");
            shared.close_now();
            return;
        }
    }
    // Only a drain ends here uncancelled; a client that does not read must
    // not hold the writer, so the final flush also yields to cancellation.
    tokio::select! {
        _ = async {
            let _ = w.flush().await;
            let _ = w.shutdown().await;
        } => {}
        _ = shared.closing.cancelled() => {}
    }
}

/// Writes one frame, then the descriptors it announces (each after
/// everything before it reached the socket).
async fn write_item(w: &mut Writer, item: &OutItem) -> std::io::Result<()> {
    w.write_all(&item.frame).await?;
    if item.fds.is_empty() {
        return Ok(());
    }
    w.flush().await?;
    let sock = w.get_ref().unix().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "descriptors cannot be passed on this transport",
        )
    })?;
    for fd in &item.fds {
        crate::fdio::send_fd(sock, fd.as_fd()).await?;
    }
    Ok(())
}

/// A client's in-flight slots: the normal ones and the priority lane.
struct Slots {
    normal: Arc<Semaphore>,
    priority: Arc<Semaphore>,
    normal_count: u32,
    priority_count: u32,
}

impl Slots {
    fn new(cfg: &Config) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (normal_count, priority_count) = (
            count(cfg.max_inflight_per_client),
            count(cfg.max_priority_inflight_per_client),
        );
        Self {
            normal: Arc::new(Semaphore::new(normal_count as usize)),
            priority: Arc::new(Semaphore::new(priority_count as usize)),
            normal_count,
            priority_count,
        }
    }

    /// A free slot for a call of `lane`: a normal one first; the priority
    /// lane only for priority calls, so it stays free for them.
    fn try_take(&self, lane: Lane) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.normal.clone().try_acquire_owned() {
            return Some(p);
        }
        match lane {
            Lane::Priority => self.priority.clone().try_acquire_owned().ok(),
            Lane::Normal => None,
        }
    }

    /// Waits for a slot for a call of `lane` (cancellation-safe). `None`
    /// only if a semaphore was closed, which never happens.
    async fn take(&self, lane: Lane) -> Option<OwnedSemaphorePermit> {
        match lane {
            Lane::Normal => self.normal.clone().acquire_owned().await.ok(),
            Lane::Priority => tokio::select! {
                p = self.normal.clone().acquire_owned() => p.ok(),
                p = self.priority.clone().acquire_owned() => p.ok(),
            },
        }
    }

    /// Resolves once every call holding a slot has finished.
    async fn all_free(&self) {
        let _ = self.normal.acquire_many(self.normal_count).await;
        let _ = self.priority.acquire_many(self.priority_count).await;
    }
}

/// Our keepalive towards one client: a PING after `interval` of silence,
/// the client dropped after `count` unanswered ones.
struct Keepalive {
    ticker: Interval,
    period: Duration,
    /// Our pings are configured at all (`keepalive_interval` is set).
    configured: bool,
    count: u32,
    last_rx: Instant,
    missed: u32,
}

impl Keepalive {
    fn new(cfg: &Config) -> Self {
        let period = cfg
            .keepalive_interval
            .unwrap_or(Duration::from_secs(3600 * 24 * 365));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticker,
            period,
            configured: cfg.keepalive_interval.is_some(),
            count: cfg.keepalive_count,
            last_rx: Instant::now(),
            missed: 0,
        }
    }

    /// The client showed it is alive (any message), or we are the ones not
    /// reading, so its silence is not its fault.
    fn heard(&mut self) {
        self.last_rx = Instant::now();
        self.missed = 0;
    }

    /// A tick while the client is being read: PING it if it has been
    /// silent for a period; give up after `count` unanswered PINGs.
    fn on_tick(&mut self, shared: &ClientShared) -> Result<(), CloseReason> {
        let due = self.configured
            && shared.keepalive_enabled.load(Ordering::Relaxed)
            && self.last_rx.elapsed() >= self.period;
        if !due {
            return Ok(());
        }
        if self.missed >= self.count {
            return Err(CloseReason::KeepaliveTimeout);
        }
        self.missed += 1;
        debug!(client = %shared.id, missed = self.missed, "sending keepalive PING");
        shared
            .push_message(&keepalive::header(keepalive::PROC_PING), &[])
            .map_err(|_| CloseReason::Closed)
    }
}

/// A REMOTE call read from the client, ready to run once it has a slot.
struct Call {
    header: Header,
    body: Bytes,
    lane: Lane,
    /// Descriptors a `CALL_WITH_FDS` brought.
    fds: Vec<OwnedFd>,
}

/// Stream data (or a finish or abort) for one of the client's streams.
struct Delivery {
    tx: tokio::sync::mpsc::Sender<stream::Incoming>,
    raw: Raw,
}

/// What the reader does with one message.
enum Route {
    /// Dealt with here: a PONG, an error reply, or nothing.
    Handled,
    /// A call for the handler.
    Call(Call),
    /// For a stream: handed over once there is room.
    Stream(Delivery),
    /// The client must go.
    Close(CloseReason),
}

/// The reading side of one connection.
struct Reader<'a, H> {
    server: &'a Arc<Inner<H>>,
    shared: &'a Arc<ClientShared>,
    sink: EventSink,
    readonly: bool,
    transport: Transport,
    slots: &'a Slots,
    keepalive: Keepalive,
}

async fn read_loop<H: Handler>(mut frames: FrameReader, r: &mut Reader<'_, H>) -> CloseReason {
    loop {
        let msg = match r.next_message(&mut frames).await {
            Ok(m) => m,
            Err(reason) => return reason,
        };
        let call = match r.route(msg) {
            Route::Handled => continue,
            Route::Close(reason) => return reason,
            Route::Stream(d) => match r.deliver(d, &frames).await {
                Ok(()) => continue,
                Err(reason) => return reason,
            },
            Route::Call(call) => call,
        };
        let permit = match r.slots.try_take(call.lane) {
            Some(p) => p,
            // The one message read ahead: nothing more is read until it
            // has a slot.
            None => match r.wait_for_slot(call.lane, &frames).await {
                Ok(p) => p,
                Err(reason) => return reason,
            },
        };
        r.spawn_call(call, permit);
    }
}

impl<H: Handler> Reader<'_, H> {
    /// The next message, answering keepalive ticks meanwhile. A malformed
    /// frame gets an error reply when its header was readable, then the
    /// client is closed.
    async fn next_message(&mut self, frames: &mut FrameReader) -> Result<Received, CloseReason> {
        loop {
            let frame = tokio::select! {
                _ = self.shared.closing.cancelled() => return Err(CloseReason::Closed),
                _ = self.server.shutdown.cancelled() => return Err(CloseReason::Shutdown),
                _ = self.keepalive.ticker.tick() => {
                    self.keepalive.on_tick(self.shared)?;
                    continue;
                }
                f = frames.next() => f,
            };
            return match frame {
                None => Err(CloseReason::Eof),
                Some(Err(CodecError::Io(e))) => Err(CloseReason::Io(e)),
                Some(Err(CodecError::Frame(e))) => {
                    self.reply_frame_error(&e);
                    Err(CloseReason::Protocol(e))
                }
                Some(Ok(m)) => {
                    self.keepalive.heard();
                    Ok(m)
                }
            };
        }
    }

    fn reply_frame_error(&self, e: &FrameError) {
        if let Some(h) = e.header()
            && matches!(
                h.message_type(),
                Some(MessageType::Call | MessageType::CallWithFds) | None
            )
        {
            self.shared
                .reply_error(h, &rpc_error(format!("protocol error: {e}")));
        }
    }

    /// Waits for a slot for the call read ahead; meanwhile nothing is read.
    async fn wait_for_slot(
        &mut self,
        lane: Lane,
        frames: &FrameReader,
    ) -> Result<OwnedSemaphorePermit, CloseReason> {
        debug!(client = %self.shared.id, ?lane, "no free in-flight slot: pausing reads");
        self.paused(self.slots.take(lane), frames)
            .await?
            .ok_or(CloseReason::Closed)
    }

    /// Hands stream data to its stream, waiting (without reading) while
    /// the client's inbound stream budget is spent.
    async fn deliver(&mut self, d: Delivery, frames: &FrameReader) -> Result<(), CloseReason> {
        let credit = self.shared.inbound.clone();
        let budget = self.shared.max_inbound;
        self.paused(stream::deliver(d.tx, credit, budget, d.raw), frames)
            .await
    }

    /// Runs `f` while the client is not read: closing and shutdown still
    /// end it, and keepalive does not count the client's silence (we are
    /// the ones not reading). A client that closes its end meanwhile is
    /// seen at each keepalive tick (a sink that never drains would
    /// otherwise hold it, and what it holds, for ever).
    async fn paused<T>(
        &mut self,
        f: impl Future<Output = T>,
        frames: &FrameReader,
    ) -> Result<T, CloseReason> {
        tokio::pin!(f);
        loop {
            tokio::select! {
                v = &mut f => return Ok(v),
                _ = self.shared.closing.cancelled() => return Err(CloseReason::Closed),
                _ = self.server.shutdown.cancelled() => return Err(CloseReason::Shutdown),
                _ = self.keepalive.ticker.tick() => {
                    if frames.peer_closed() {
                        return Err(CloseReason::Eof);
                    }
                    self.keepalive.heard();
                }
            }
        }
    }

    /// Sorts one message: keepalive, a REMOTE call, stream data, or
    /// something we answer (or ignore) here.
    fn route(&self, msg: Received) -> Route {
        let Received { message, fds } = msg;
        let h = message.header;
        let Some(mtype) = h.message_type() else {
            // The codec rejects unknown types; keep the reader total anyway.
            return Route::Handled;
        };
        if h.prog == keepalive::PROGRAM {
            return self.on_keepalive(&h, mtype);
        }
        match mtype {
            MessageType::Call | MessageType::CallWithFds => self.route_call(h, message.body, fds),
            MessageType::Stream | MessageType::StreamHole => self.route_stream(h, message.body),
            MessageType::Message | MessageType::Reply | MessageType::ReplyWithFds => {
                debug!(client = %self.shared.id, ?mtype, prog = h.prog, proc_ = h.proc_, "ignoring unexpected message type from client");
                Route::Handled
            }
        }
    }

    /// Any KEEPALIVE message shows the client speaks it; a PING gets a PONG.
    fn on_keepalive(&self, h: &Header, mtype: MessageType) -> Route {
        self.shared.keepalive_enabled.store(true, Ordering::Relaxed);
        if mtype == MessageType::Message && h.proc_ == keepalive::PROC_PING {
            let pong = keepalive::header(keepalive::PROC_PONG);
            if self.shared.push_message(&pong, &[]).is_err() {
                return Route::Close(CloseReason::Closed);
            }
        } else if mtype == MessageType::Call {
            let err = no_support(format!("unknown keepalive procedure {}", h.proc_));
            self.shared.reply_error(h, &err);
        }
        Route::Handled
    }

    fn route_call(&self, h: Header, body: Bytes, fds: Vec<OwnedFd>) -> Route {
        if let Err(err) = self.admit(&h) {
            self.shared.reply_error(&h, &err);
            return Route::Handled;
        }
        if h.proc_ == procedure::CONNECT_SUPPORTS_FEATURE
            && let Ok(a) = xdr::from_bytes::<remote::ConnectSupportsFeatureArgs>(&body)
            && a.feature == remote::feature::PROGRAM_KEEPALIVE
        {
            self.shared.keepalive_enabled.store(true, Ordering::Relaxed);
        }
        let lane = self.server.handler.lane(h.proc_);
        Route::Call(Call {
            header: h,
            body,
            lane,
            fds,
        })
    }

    /// A message of a stream: to the stream if it is open here, else
    /// dropped or answered (see `stream.rs`).
    fn route_stream(&self, h: Header, body: Bytes) -> Route {
        let key = (h.proc_, h.serial);
        let ours = h.prog == remote::PROGRAM && h.vers == remote::VERSION;
        let lookup = match ours {
            true => self.shared.streams().lookup(key),
            false => Lookup::Unknown,
        };
        let raw = match Raw::parse(&h, body) {
            Ok(raw) => raw,
            Err(err) => return self.fail_stream(&h, &lookup, &err),
        };
        match lookup {
            Lookup::Open(_, false) if matches!(raw, Raw::Hole(_)) => {
                let err = rpc_error("Unexpected stream hole");
                self.fail_stream(&h, &lookup, &err)
            }
            Lookup::Open(tx, _) => Route::Stream(Delivery { tx, raw }),
            _ => {
                if let Some((rh, rb)) = stream::answer_unknown(&h, &raw, &lookup) {
                    let _ = self.shared.push_message(&rh, &rb);
                }
                Route::Handled
            }
        }
    }

    /// A stream message the protocol does not allow: the stream (if open)
    /// ends with `err`, the connection stays.
    fn fail_stream(&self, h: &Header, lookup: &Lookup, err: &VirError) -> Route {
        warn!(client = %self.shared.id, procedure = %describe_procedure(h.proc_), serial = h.serial, error = %err.message, "bad stream message");
        if matches!(lookup, Lookup::Open(..)) {
            self.shared.streams().remove((h.proc_, h.serial));
        }
        let mut eh = *h;
        eh.msg_type = MessageType::Stream as u32;
        eh.status = MessageStatus::Error as u32;
        let _ = self.shared.push_message(&eh, &error_frame_body(err));
        Route::Handled
    }

    /// Whether this server runs the call at all: the REMOTE program in our
    /// version, and nothing mutating from the read-only socket.
    fn admit(&self, h: &Header) -> Result<(), VirError> {
        if h.prog != remote::PROGRAM {
            return Err(no_support(format!("unknown program {:#x}", h.prog)));
        }
        if h.vers != remote::VERSION {
            return Err(no_support(format!(
                "unsupported version {} of the remote program",
                h.vers
            )));
        }
        if self.readonly && self.server.handler.is_mutating(h.proc_) {
            return Err(VirError::new(
                ErrorCode::OperationDenied,
                ErrorDomain::Remote,
                format!(
                    "operation forbidden: read only access prevents {}",
                    describe_procedure(h.proc_)
                ),
            ));
        }
        Ok(())
    }

    /// Runs the call in its own task, holding its slot until the reply is
    /// queued; a stream the call opened starts once its reply is queued.
    fn spawn_call(&self, call: Call, permit: OwnedSemaphorePermit) {
        let extras = Arc::new(CallExtras::new(self.shared.clone(), call.header, call.fds));
        let ctx = CallContext {
            client: self.shared.id,
            readonly: self.readonly,
            transport: self.transport,
            serial: call.header.serial,
            events: self.sink.clone(),
            call: extras.clone(),
        };
        let handler = self.server.handler.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let result = run_call(&*handler, ctx, &call.header, call.body).await;
            shared.metrics.call(call.header.proc_, t0.elapsed());
            let sent = send_reply(&shared, &call.header, result, extras.take_reply_fds());
            if let Some(key) = extras.stream() {
                let mut streams = shared.streams();
                match sent {
                    true => streams.activate(key),
                    false => streams.remove(key),
                }
            }
        });
    }
}

/// Runs the handler; a panic becomes an internal-error reply.
async fn run_call<H: Handler>(
    handler: &H,
    ctx: CallContext,
    h: &Header,
    body: Bytes,
) -> Result<Bytes, VirError> {
    let client = ctx.client;
    let fut = handler.call(ctx, h.proc_, body);
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            warn!(client = %client, procedure = %describe_procedure(h.proc_), "handler panicked");
            Err(VirError::new(
                ErrorCode::InternalError,
                ErrorDomain::Rpc,
                format!(
                    "internal error: handler of {} failed",
                    describe_procedure(h.proc_)
                ),
            ))
        }
    }
}

/// Queues the reply to call `h` (with the descriptors the handler passes
/// back, if any); a reply too large for the protocol becomes an error
/// reply. Returns whether a successful reply was queued.
fn send_reply(
    shared: &ClientShared,
    h: &Header,
    result: Result<Bytes, VirError>,
    fds: Vec<OwnedFd>,
) -> bool {
    let err = match result {
        Ok(ret) => match push_ok_reply(shared, h, &ret, fds) {
            Ok(()) => return true,
            Err(Dropped::TooLarge) => rpc_error(format!(
                "reply of {} too large ({} bytes)",
                describe_procedure(h.proc_),
                ret.len()
            )),
            Err(e) => {
                debug!(client = %shared.id, error = %e, "reply dropped");
                return false;
            }
        },
        Err(e) => e,
    };
    debug!(client = %shared.id, procedure = %describe_procedure(h.proc_), error = %err.message, "call failed");
    if let Err(e) = shared.push_message(&h.reply(MessageStatus::Error), &error_frame_body(&err)) {
        debug!(client = %shared.id, error = %e, "reply dropped");
    }
    false
}

/// A successful reply: `REPLY`, or `REPLY_WITH_FDS` whose body starts with
/// the count of the descriptors that follow it.
fn push_ok_reply(
    shared: &ClientShared,
    h: &Header,
    ret: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<(), Dropped> {
    if fds.is_empty() {
        return shared.push_message(&h.reply(MessageStatus::Ok), ret);
    }
    let mut rh = h.reply(MessageStatus::Ok);
    rh.msg_type = MessageType::ReplyWithFds as u32;
    let mut body = Vec::with_capacity(4 + ret.len());
    body.extend_from_slice(&u32::try_from(fds.len()).unwrap_or(u32::MAX).to_be_bytes());
    body.extend_from_slice(ret);
    let frame = encode_frame(&rh, &body, shared.max_message).map_err(|_| Dropped::TooLarge)?;
    shared.push_item(OutItem {
        frame,
        fds,
        stream: false,
    })
}
