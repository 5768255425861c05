//! One client connection: a reader (framing, dispatch, keepalive, in-flight
//! bound), a writer draining the bounded output queue, and the call tasks.
//!
//! Every byte the server sends to a client — replies, error replies, PONGs,
//! PINGs, events — goes through one bounded queue ([`OutQueue`]). Nothing
//! ever waits for queue space: a push that does not fit disconnects the
//! client, because a client that lets its queue fill is not reading, and
//! the daemon must not grow on its behalf (DESIGN requirement 8).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::error::{CodecError, FrameError};
use crate::frame::{MessageCodec, encode_frame};
use crate::header::{Header, MessageStatus, MessageType};
use crate::protocol::keepalive;
use crate::protocol::remote::{self, RemoteError, procedure};
use crate::server::{CallContext, ClientId, Handler, Inner, describe_procedure};
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

struct OutQueue {
    items: VecDeque<Bytes>,
    bytes: usize,
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
}

impl ClientShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutQueue> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // queue itself is always consistent between statements.
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a complete frame, or disconnects the client if it does not
    /// fit.
    fn push(&self, frame: Bytes) -> Result<(), Dropped> {
        let mut q = self.lock();
        if q.closed {
            return Err(Dropped::Closed);
        }
        let len = frame.len();
        let full = q.items.len() >= self.max_msgs
            || (!q.items.is_empty() && q.bytes + len > self.max_bytes);
        if full {
            let (msgs, bytes) = (q.items.len(), q.bytes);
            q.closed = true;
            q.items.clear();
            q.bytes = 0;
            drop(q);
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
        q.items.push_back(frame);
        drop(q);
        self.out_ready.notify_one();
        Ok(())
    }

    fn push_message(&self, header: &Header, body: &[u8]) -> Result<(), Dropped> {
        let frame = encode_frame(header, body, self.max_message).map_err(|_| Dropped::TooLarge)?;
        self.push(frame)
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
        q.items.clear();
        q.bytes = 0;
        drop(q);
        self.closing.cancel();
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

pub(crate) async fn run<H: Handler>(
    stream: UnixStream,
    id: ClientId,
    readonly: bool,
    server: Arc<Inner<H>>,
) {
    let cfg = &server.cfg;
    let shared = Arc::new(ClientShared {
        id,
        out: Mutex::new(OutQueue {
            items: VecDeque::new(),
            bytes: 0,
            closed: false,
            drain_then_close: false,
        }),
        out_ready: Notify::new(),
        closing: CancellationToken::new(),
        keepalive_enabled: AtomicBool::new(cfg.keepalive_on_connect),
        max_msgs: cfg.max_queued_messages,
        max_bytes: cfg.max_queued_bytes,
        max_message: cfg.max_message,
    });
    info!(client = %id, readonly, "client connected");
    server.handler.on_connect(id, readonly);

    let (rd, wr) = stream.into_split();
    let mut writer = tokio::spawn(write_loop(wr, shared.clone()));
    let inflight = Arc::new(Semaphore::new(cfg.max_inflight_per_client));
    let sink = EventSink {
        shared: shared.clone(),
    };

    let reason = read_loop(rd, &shared, &sink, readonly, &inflight, &server).await;
    match &reason {
        CloseReason::Eof | CloseReason::Closed | CloseReason::Shutdown => {
            info!(client = %id, %reason, "client disconnected")
        }
        _ => warn!(client = %id, %reason, "closing client"),
    }
    let drained = match reason {
        CloseReason::Protocol(_) | CloseReason::Shutdown => {
            shared.close_after_drain();
            tokio::time::timeout(cfg.drain_timeout, &mut writer)
                .await
                .is_ok()
        }
        _ => false,
    };
    shared.close_now();
    if !drained {
        let _ = writer.await;
    }
    // Wait until every call of this client has finished so on_disconnect is
    // the last thing the handler hears about it.
    let n = u32::try_from(cfg.max_inflight_per_client).unwrap_or(u32::MAX);
    let _ = inflight.acquire_many(n).await;
    server.handler.on_disconnect(id);
    debug!(client = %id, "client finished");
}

async fn write_loop(wr: OwnedWriteHalf, shared: Arc<ClientShared>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let next = {
            let mut q = shared.lock();
            match q.items.pop_front() {
                Some(b) => {
                    q.bytes -= b.len();
                    Some(b)
                }
                None if q.drain_then_close || shared.closing.is_cancelled() => break,
                None => None,
            }
        };
        let r = match next {
            Some(frame) => {
                tokio::select! {
                    r = w.write_all(&frame) => r,
                    _ = shared.closing.cancelled() => break,
                }
            }
            None => {
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

async fn read_loop<H: Handler>(
    rd: tokio::net::unix::OwnedReadHalf,
    shared: &Arc<ClientShared>,
    sink: &EventSink,
    readonly: bool,
    inflight: &Arc<Semaphore>,
    server: &Arc<Inner<H>>,
) -> CloseReason {
    let cfg = &server.cfg;
    let mut framed = FramedRead::new(rd, MessageCodec::new(cfg.max_message));
    let period = cfg
        .keepalive_interval
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_rx = Instant::now();
    let mut missed: u32 = 0;
    let mut permit: Option<OwnedSemaphorePermit> = None;

    loop {
        if permit.is_none() {
            match inflight.clone().try_acquire_owned() {
                Ok(p) => permit = Some(p),
                Err(_) => {
                    debug!(client = %shared.id, "in-flight bound reached: pausing reads");
                    tokio::select! {
                        p = inflight.clone().acquire_owned() => permit = p.ok(),
                        _ = shared.closing.cancelled() => return CloseReason::Closed,
                        _ = server.shutdown.cancelled() => return CloseReason::Shutdown,
                        _ = ticker.tick() => {
                            // We are the ones not reading: the client's
                            // silence (or unread PONGs) is not its fault.
                            last_rx = Instant::now();
                            missed = 0;
                        }
                    }
                    continue;
                }
            }
        }

        let frame = tokio::select! {
            _ = shared.closing.cancelled() => return CloseReason::Closed,
            _ = server.shutdown.cancelled() => return CloseReason::Shutdown,
            _ = ticker.tick() => {
                if cfg.keepalive_interval.is_some()
                    && shared.keepalive_enabled.load(Ordering::Relaxed)
                    && last_rx.elapsed() >= period
                {
                    if missed >= cfg.keepalive_count {
                        return CloseReason::KeepaliveTimeout;
                    }
                    missed += 1;
                    debug!(client = %shared.id, missed, "sending keepalive PING");
                    if shared.push_message(&keepalive::header(keepalive::PROC_PING), &[]).is_err() {
                        return CloseReason::Closed;
                    }
                }
                continue;
            }
            f = framed.next() => f,
        };

        let msg = match frame {
            None => return CloseReason::Eof,
            Some(Err(CodecError::Io(e))) => return CloseReason::Io(e),
            Some(Err(CodecError::Frame(e))) => {
                if let Some(h) = e.header()
                    && matches!(
                        h.message_type(),
                        Some(MessageType::Call | MessageType::CallWithFds) | None
                    )
                {
                    let err = rpc_error(format!("protocol error: {e}"));
                    let _ = shared
                        .push_message(&h.reply(MessageStatus::Error), &error_frame_body(&err));
                }
                return CloseReason::Protocol(e);
            }
            Some(Ok(m)) => m,
        };
        last_rx = Instant::now();
        missed = 0;

        let h = msg.header;
        let Some(mtype) = h.message_type() else {
            // The codec rejects unknown types; keep the reader total anyway.
            continue;
        };
        let reply_err = |err: VirError| {
            let _ = shared.push_message(&h.reply(MessageStatus::Error), &error_frame_body(&err));
        };

        if h.prog == keepalive::PROGRAM {
            shared.keepalive_enabled.store(true, Ordering::Relaxed);
            if mtype == MessageType::Message && h.proc_ == keepalive::PROC_PING {
                if shared
                    .push_message(&keepalive::header(keepalive::PROC_PONG), &[])
                    .is_err()
                {
                    return CloseReason::Closed;
                }
            } else if mtype == MessageType::Call {
                reply_err(VirError::new(
                    ErrorCode::NoSupport,
                    ErrorDomain::Rpc,
                    format!("unknown keepalive procedure {}", h.proc_),
                ));
            }
            continue;
        }

        match mtype {
            MessageType::Call => {}
            MessageType::CallWithFds => {
                reply_err(VirError::new(
                    ErrorCode::NoSupport,
                    ErrorDomain::Rpc,
                    "file descriptor passing is not supported by this server",
                ));
                continue;
            }
            MessageType::Stream | MessageType::StreamHole => {
                let err = VirError::new(
                    ErrorCode::NoSupport,
                    ErrorDomain::Rpc,
                    "streams are not supported by this server",
                );
                let mut eh = h;
                eh.status = MessageStatus::Error as u32;
                let _ = shared.push_message(&eh, &error_frame_body(&err));
                continue;
            }
            MessageType::Message | MessageType::Reply | MessageType::ReplyWithFds => {
                debug!(client = %shared.id, ?mtype, prog = h.prog, proc_ = h.proc_, "ignoring unexpected message type from client");
                continue;
            }
        }

        if h.prog != remote::PROGRAM {
            reply_err(VirError::new(
                ErrorCode::NoSupport,
                ErrorDomain::Rpc,
                format!("unknown program {:#x}", h.prog),
            ));
            continue;
        }
        if h.vers != remote::VERSION {
            reply_err(VirError::new(
                ErrorCode::NoSupport,
                ErrorDomain::Rpc,
                format!("unsupported version {} of the remote program", h.vers),
            ));
            continue;
        }
        if readonly && server.handler.is_mutating(h.proc_) {
            reply_err(VirError::new(
                ErrorCode::OperationDenied,
                ErrorDomain::Remote,
                format!(
                    "operation forbidden: read only access prevents {}",
                    describe_procedure(h.proc_)
                ),
            ));
            continue;
        }
        if h.proc_ == procedure::CONNECT_SUPPORTS_FEATURE
            && let Ok(a) = xdr::from_bytes::<remote::ConnectSupportsFeatureArgs>(&msg.body)
            && a.feature == remote::feature::PROGRAM_KEEPALIVE
        {
            shared.keepalive_enabled.store(true, Ordering::Relaxed);
        }

        let Some(p) = permit.take() else { continue };
        let ctx = CallContext {
            client: shared.id,
            readonly,
            serial: h.serial,
            events: sink.clone(),
        };
        let handler = server.handler.clone();
        let shared2 = shared.clone();
        let body = msg.body;
        tokio::spawn(async move {
            let _permit = p;
            let fut = handler.call(ctx, h.proc_, body);
            let result = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(_) => {
                    warn!(client = %shared2.id, procedure = %describe_procedure(h.proc_), "handler panicked");
                    Err(VirError::new(
                        ErrorCode::InternalError,
                        ErrorDomain::Rpc,
                        format!(
                            "internal error: handler of {} failed",
                            describe_procedure(h.proc_)
                        ),
                    ))
                }
            };
            let pushed = match result {
                Ok(ret) => match shared2.push_message(&h.reply(MessageStatus::Ok), &ret) {
                    Err(Dropped::TooLarge) => shared2.push_message(
                        &h.reply(MessageStatus::Error),
                        &error_frame_body(&rpc_error(format!(
                            "reply of {} too large ({} bytes)",
                            describe_procedure(h.proc_),
                            ret.len()
                        ))),
                    ),
                    r => r,
                },
                Err(e) => {
                    debug!(client = %shared2.id, procedure = %describe_procedure(h.proc_), error = %e.message, "call failed");
                    shared2.push_message(&h.reply(MessageStatus::Error), &error_frame_body(&e))
                }
            };
            if let Err(e) = pushed {
                debug!(client = %shared2.id, error = %e, "reply dropped");
            }
        });
    }
}
