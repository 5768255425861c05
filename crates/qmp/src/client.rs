//! The QMP client: one connection, a reader task, a writer task, and cheap
//! [`Monitor`] handles.
//!
//! Design points, each for a failure mode of a hostile or hung QEMU:
//!
//! * **Reader task** owns the read half. It matches replies to commands by
//!   id through a map of oneshot senders and pushes events into the bounded
//!   [`EventQueue`](crate::events), which never blocks it. So a reply is
//!   never stuck behind events nobody consumes.
//! * **Writer task** owns the write half and writes each command's bytes
//!   whole. A caller that gives up (timeout, dropped future) therefore
//!   cannot leave half a command on the wire, which would corrupt every
//!   later command.
//! * **Every command has a deadline.** On expiry its pending entry is
//!   removed; a late reply then has an unknown id and is dropped (logged at
//!   most once per interval, with a count).
//! * **Close is final and total.** EOF, a protocol error, an I/O error, or
//!   [`Monitor::close`] fails every in-flight command with
//!   [`QmpError::Closed`] carrying the reason, ends the event stream after
//!   what was queued, and makes later commands fail at once. The pending map
//!   and the closed flag share one lock, so no command can register after
//!   the close and wait forever.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::codec::{Message, MessageReader, ReadError, encode_request};
use crate::config::Config;
use crate::error::{CloseReason, ProtocolError, QmpError};
use crate::events::{EventQueue, EventQueueStats, Events, RawEvent};
use crate::fdpass::send_with_fd;
use crate::greeting::Greeting;
use crate::ratelimit::LogLimiter;
use crate::types::commands::{Command, QmpCapabilities};

/// Commands queued for the writer beyond this make callers wait (within
/// their deadline) instead of growing memory when QEMU stops reading.
const WRITE_QUEUE: usize = 256;

/// At most one warning per this interval for each kind of bad message.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

type Reply = Result<Value, QmpError>;

/// Counters of a connection, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorStats {
    /// Commands handed to the writer.
    pub commands_sent: u64,
    /// Commands in flight now.
    pub pending: usize,
    /// Replies whose command had already given up (timeout, cancel), or
    /// duplicates.
    pub late_replies: u64,
    /// Replies without id or with an id we never used.
    pub unknown_replies: u64,
    /// Messages we did not understand and ignored.
    pub ignored_messages: u64,
    /// Bytes read from the socket.
    pub bytes_read: u64,
    /// Capacity of the reader's line buffer: the framing memory.
    pub read_buffer_capacity: usize,
    /// The event queue.
    pub events: EventQueueStats,
}

#[derive(Debug, Default)]
struct Counters {
    commands_sent: AtomicU64,
    late_replies: AtomicU64,
    unknown_replies: AtomicU64,
    ignored_messages: AtomicU64,
    bytes_read: AtomicU64,
    read_buffer_capacity: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    closed: Option<CloseReason>,
}

#[derive(Debug)]
struct WriteReq {
    bytes: Vec<u8>,
    fd: Option<OwnedFd>,
}

#[derive(Debug)]
struct Shared {
    command_timeout: Duration,
    greeting: Greeting,
    next_id: AtomicU64,
    state: Mutex<State>,
    writer: mpsc::Sender<WriteReq>,
    close_tx: watch::Sender<Option<CloseReason>>,
    events: Arc<EventQueue>,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing we do under this lock can panic half-way, so a poisoned
        // lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the connection once; later calls are no-ops (the first reason
    /// wins, which is the cause rather than a consequence).
    fn shutdown(&self, reason: CloseReason) {
        let pending = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(reason.clone());
            std::mem::take(&mut st.pending)
        };
        match &reason {
            CloseReason::Eof | CloseReason::Local => {
                tracing::debug!(%reason, in_flight = pending.len(), "QMP monitor closed")
            }
            _ => tracing::warn!(%reason, in_flight = pending.len(), "QMP monitor closed"),
        }
        for (_, tx) in pending {
            // The receiver may be gone (caller cancelled): nothing to do.
            let _ = tx.send(Err(QmpError::Closed(reason.clone())));
        }
        self.events.close();
        self.close_tx.send_replace(Some(reason));
    }

    fn close_reason(&self) -> CloseReason {
        self.lock().closed.clone().unwrap_or(CloseReason::Local)
    }

    /// Routes one message from the reader.
    fn dispatch(&self, msg: Message, len: usize, logs: &mut Logs) {
        match msg {
            Message::Return { id, value } => self.complete(id, Ok(value), logs),
            Message::Error { id, class, desc } => {
                self.complete(id, Err(QmpError::Command { class, desc }), logs)
            }
            Message::Event {
                name,
                data,
                timestamp,
            } => self.events.push(RawEvent {
                name,
                data,
                timestamp,
                size: len,
            }),
            Message::Greeting(_) | Message::Unrecognized => {
                self.counters
                    .ignored_messages
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = logs.ignored.hit() {
                    tracing::warn!(suppressed, "ignoring unexpected QMP message");
                }
            }
        }
    }

    fn complete(&self, id: Option<Value>, reply: Reply, logs: &mut Logs) {
        let num = id.as_ref().and_then(Value::as_u64);
        let tx = num.and_then(|n| self.lock().pending.remove(&n));
        match tx {
            Some(tx) => {
                // Receiver gone = caller cancelled after we looked: fine.
                let _ = tx.send(reply);
            }
            None => {
                // Ids are handed out in order, so a known-shaped id below
                // the counter belongs to a command that gave up (or is a
                // duplicate); anything else was never ours.
                let late = num.is_some_and(|n| n < self.next_id.load(Ordering::Relaxed));
                if late {
                    self.counters.late_replies.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = logs.late.hit() {
                        tracing::info!(
                            ?id,
                            suppressed,
                            "dropping late QMP reply (command gave up)"
                        );
                    }
                } else {
                    self.counters
                        .unknown_replies
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = logs.unknown.hit() {
                        tracing::warn!(?id, suppressed, "dropping QMP reply with unknown id");
                    }
                }
            }
        }
    }
}

/// Per-reader log limiters.
struct Logs {
    late: LogLimiter,
    unknown: LogLimiter,
    ignored: LogLimiter,
}

impl Logs {
    fn new() -> Self {
        Logs {
            late: LogLimiter::new(LOG_INTERVAL),
            unknown: LogLimiter::new(LOG_INTERVAL),
            ignored: LogLimiter::new(LOG_INTERVAL),
        }
    }
}

/// Closes the connection when the last [`Monitor`] clone is dropped, so a
/// forgotten connection does not keep its tasks and socket alive.
#[derive(Debug)]
struct HandleGuard(Arc<Shared>);

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.0.shutdown(CloseReason::Local);
    }
}

/// Removes a command's pending entry however its future ends (reply,
/// timeout, or the caller dropping it), so cancelled commands never leak.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(&self.id);
    }
}

/// A handle to one QMP connection. Cheap to clone; `Send + Sync`. The
/// connection closes when [`close`](Self::close) is called, when QEMU goes
/// away, or when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
    _guard: Arc<HandleGuard>,
}

impl Monitor {
    /// Connects to a QMP UNIX socket and performs the handshake (greeting,
    /// `qmp_capabilities`), all within `cfg.greeting_timeout`.
    pub async fn connect(path: &Path, cfg: Config) -> Result<(Monitor, Events), QmpError> {
        let deadline = Instant::now() + cfg.greeting_timeout;
        let stream = Self::dial(path, &cfg, deadline).await?;
        Self::handshake(stream, cfg, deadline).await
    }

    /// [`connect`](Self::connect), with `first` sent right behind
    /// `qmp_capabilities` instead of after its reply: QEMU runs a
    /// connection's commands in order, so `first` runs once capabilities
    /// are negotiated, and both answers come back in one exchange (a
    /// daemon re-attaching to thousands of QEMUs halves its round trips).
    /// `first`'s own outcome is returned beside the connection, within
    /// `cfg.greeting_timeout` too.
    pub async fn connect_then<C: Command>(
        path: &Path,
        cfg: Config,
        first: &C,
    ) -> Result<(Monitor, Events, Result<C::Response, QmpError>), QmpError> {
        let deadline = Instant::now() + cfg.greeting_timeout;
        let stream = Self::dial(path, &cfg, deadline).await?;
        let timeout = cfg.greeting_timeout;
        let (monitor, events) = Self::greet(stream, cfg, deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        // `join!` polls in order, and each call queues its line on its
        // first poll, so capabilities are written before `first`.
        let (negotiated, answer) = tokio::join!(
            Self::negotiate(&monitor, left, timeout),
            monitor.execute_timeout(first, left)
        );
        negotiated?;
        Ok((monitor, events, answer))
    }

    async fn dial(path: &Path, cfg: &Config, deadline: Instant) -> Result<UnixStream, QmpError> {
        match tokio::time::timeout_at(deadline, UnixStream::connect(path)).await {
            Err(_) => Err(QmpError::HandshakeTimeout {
                after: cfg.greeting_timeout,
            }),
            Ok(Err(source)) => Err(QmpError::Connect {
                path: path.to_owned(),
                source,
            }),
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// Uses an already connected stream (e.g. a socketpair end whose other
    /// end was passed to QEMU, or a reconnect after a daemon restart) and
    /// performs the handshake within `cfg.greeting_timeout`.
    pub async fn from_stream(
        stream: UnixStream,
        cfg: Config,
    ) -> Result<(Monitor, Events), QmpError> {
        let deadline = Instant::now() + cfg.greeting_timeout;
        Self::handshake(stream, cfg, deadline).await
    }

    async fn handshake(
        stream: UnixStream,
        cfg: Config,
        deadline: Instant,
    ) -> Result<(Monitor, Events), QmpError> {
        let timeout = cfg.greeting_timeout;
        let (monitor, events) = Self::greet(stream, cfg, deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        Self::negotiate(&monitor, left, timeout).await?;
        Ok((monitor, events))
    }

    /// Reads QEMU's greeting by `deadline` and starts the connection's
    /// reader and writer; capabilities are not negotiated yet.
    async fn greet(
        stream: UnixStream,
        cfg: Config,
        deadline: Instant,
    ) -> Result<(Monitor, Events), QmpError> {
        let (read, write) = stream.into_split();
        let mut reader = MessageReader::new(read, cfg.max_line);
        let timeout = QmpError::HandshakeTimeout {
            after: cfg.greeting_timeout,
        };
        let greeting = match reader.next_until(deadline).await {
            None => return Err(timeout),
            Some(Ok((Message::Greeting(v), _))) => {
                Greeting::from_value(&v).map_err(|e| QmpError::Closed(CloseReason::Protocol(e)))?
            }
            Some(Ok(_)) => {
                return Err(QmpError::Closed(CloseReason::Protocol(
                    ProtocolError::BadGreeting("first message is not a greeting".into()),
                )));
            }
            Some(Err(e)) => return Err(QmpError::Closed(read_error_reason(e))),
        };

        let (writer_tx, writer_rx) = mpsc::channel(WRITE_QUEUE);
        let (close_tx, close_rx) = watch::channel(None);
        let events = Arc::new(EventQueue::new(cfg.events));
        let shared = Arc::new(Shared {
            command_timeout: cfg.command_timeout,
            greeting,
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            writer: writer_tx,
            close_tx,
            events: events.clone(),
            counters: Counters::default(),
        });
        tokio::spawn(reader_task(shared.clone(), reader, close_rx.clone()));
        tokio::spawn(writer_task(shared.clone(), write, writer_rx, close_rx));
        let monitor = Monitor {
            _guard: Arc::new(HandleGuard(shared.clone())),
            shared,
        };
        Ok((monitor, Events::new(events)))
    }

    /// Sends `qmp_capabilities` and waits `left` for its answer; a late
    /// one is a handshake that took longer than `timeout` in all.
    async fn negotiate(
        monitor: &Monitor,
        left: Duration,
        timeout: Duration,
    ) -> Result<(), QmpError> {
        match monitor
            .execute_timeout(&QmpCapabilities::default(), left)
            .await
        {
            Ok(_) => Ok(()),
            Err(QmpError::Timeout { .. }) => Err(QmpError::HandshakeTimeout { after: timeout }),
            Err(e @ QmpError::Command { .. }) => Err(QmpError::Negotiation(Box::new(e))),
            Err(e) => Err(e),
        }
    }

    /// What QEMU announced on connect.
    pub fn greeting(&self) -> &Greeting {
        &self.shared.greeting
    }

    /// Runs a typed command with the default deadline.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Response, QmpError> {
        self.execute_timeout(cmd, self.shared.command_timeout).await
    }

    /// Runs a typed command with deadline `t`.
    pub async fn execute_timeout<C: Command>(
        &self,
        cmd: &C,
        t: Duration,
    ) -> Result<C::Response, QmpError> {
        let args = encode_args(cmd)?;
        let value = self.call(C::NAME, args, t, None).await?;
        decode_reply::<C>(value)
    }

    /// Runs a typed command with `fd` attached (SCM_RIGHTS), as `getfd`
    /// requires. The descriptor is duplicated, so the caller keeps its own.
    pub async fn execute_with_fd<C: Command>(
        &self,
        cmd: &C,
        fd: BorrowedFd<'_>,
    ) -> Result<C::Response, QmpError> {
        let args = encode_args(cmd)?;
        let owned = fd
            .try_clone_to_owned()
            .map_err(|source| QmpError::FdPassing {
                command: C::NAME.to_owned(),
                source,
            })?;
        let value = self
            .call(C::NAME, args, self.shared.command_timeout, Some(owned))
            .await?;
        decode_reply::<C>(value)
    }

    /// Runs any command by name; `t` defaults to `Config::command_timeout`.
    pub async fn execute_raw(
        &self,
        name: &str,
        args: Option<Value>,
        t: Option<Duration>,
    ) -> Result<Value, QmpError> {
        self.call(name, args, t.unwrap_or(self.shared.command_timeout), None)
            .await
    }

    async fn call(
        &self,
        name: &str,
        args: Option<Value>,
        t: Duration,
        fd: Option<OwnedFd>,
    ) -> Result<Value, QmpError> {
        let shared = &*self.shared;
        let deadline = Instant::now() + t;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes =
            encode_request(name, args.as_ref(), id).map_err(|message| QmpError::Encode {
                command: name.to_owned(),
                message,
            })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = shared.lock();
            if let Some(reason) = &st.closed {
                return Err(QmpError::Closed(reason.clone()));
            }
            st.pending.insert(id, tx);
        }
        let _guard = PendingGuard { shared, id };
        let exchange = async {
            if shared.writer.send(WriteReq { bytes, fd }).await.is_err() {
                return Err(QmpError::Closed(shared.close_reason()));
            }
            shared
                .counters
                .commands_sent
                .fetch_add(1, Ordering::Relaxed);
            match rx.await {
                Ok(reply) => reply,
                // Only possible if the entry was removed without an answer,
                // which shutdown never does; report the close anyway.
                Err(_) => Err(QmpError::Closed(shared.close_reason())),
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(QmpError::Timeout {
                command: name.to_owned(),
                after: t,
            }),
        }
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Resolves with the reason when the connection is gone.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.shared.close_tx.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or(CloseReason::Local),
            Err(_) => self.shared.close_reason(),
        }
    }

    /// Closes the connection: in-flight commands fail with
    /// `Closed(Local)`, the event stream ends after what was queued.
    pub fn close(&self) {
        self.shared.shutdown(CloseReason::Local);
    }

    /// Counters and memory figures of this connection.
    pub fn stats(&self) -> MonitorStats {
        let c = &self.shared.counters;
        MonitorStats {
            commands_sent: c.commands_sent.load(Ordering::Relaxed),
            pending: self.shared.lock().pending.len(),
            late_replies: c.late_replies.load(Ordering::Relaxed),
            unknown_replies: c.unknown_replies.load(Ordering::Relaxed),
            ignored_messages: c.ignored_messages.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            read_buffer_capacity: c.read_buffer_capacity.load(Ordering::Relaxed),
            events: self.shared.events.stats(),
        }
    }
}

/// Arguments as JSON, or `None` when the command takes none (unit struct or
/// empty object): QEMU rejects `"arguments": null`.
fn encode_args<C: Command>(cmd: &C) -> Result<Option<Value>, QmpError> {
    match serde_json::to_value(cmd) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::Object(m)) if m.is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(QmpError::Encode {
            command: C::NAME.to_owned(),
            message: e.to_string(),
        }),
    }
}

fn decode_reply<C: Command>(value: Value) -> Result<C::Response, QmpError> {
    serde_json::from_value(value).map_err(|e| QmpError::Decode {
        command: C::NAME.to_owned(),
        message: e.to_string(),
    })
}

fn read_error_reason(e: ReadError) -> CloseReason {
    match e {
        ReadError::Eof => CloseReason::Eof,
        ReadError::Protocol(p) => CloseReason::Protocol(p),
        ReadError::Io(e) => CloseReason::from_io("read", &e),
    }
}

async fn reader_task(
    shared: Arc<Shared>,
    mut reader: MessageReader<OwnedReadHalf>,
    mut close_rx: watch::Receiver<Option<CloseReason>>,
) {
    let mut logs = Logs::new();
    let reason = loop {
        let next = tokio::select! {
            biased;
            _ = close_rx.wait_for(Option::is_some) => return,
            next = reader.next() => next,
        };
        match next {
            Ok((msg, len)) => shared.dispatch(msg, len, &mut logs),
            Err(e) => break read_error_reason(e),
        }
        let c = &shared.counters;
        c.bytes_read.store(reader.bytes_read(), Ordering::Relaxed);
        c.read_buffer_capacity
            .store(reader.buffer_capacity(), Ordering::Relaxed);
    };
    let c = &shared.counters;
    c.bytes_read.store(reader.bytes_read(), Ordering::Relaxed);
    c.read_buffer_capacity
        .store(reader.buffer_capacity(), Ordering::Relaxed);
    shared.shutdown(reason);
}

async fn writer_task(
    shared: Arc<Shared>,
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<WriteReq>,
    mut close_rx: watch::Receiver<Option<CloseReason>>,
) {
    loop {
        let req = tokio::select! {
            biased;
            _ = close_rx.wait_for(Option::is_some) => return,
            req = rx.recv() => match req {
                Some(r) => r,
                None => return,
            },
        };
        let res = tokio::select! {
            biased;
            _ = close_rx.wait_for(Option::is_some) => return,
            res = write_req(&mut write, req) => res,
        };
        if let Err(e) = res {
            shared.shutdown(CloseReason::from_io("write", &e));
            return;
        }
    }
}

/// Writes one command whole; with a descriptor, the first bytes go out in a
/// `sendmsg` carrying it.
async fn write_req(write: &mut OwnedWriteHalf, req: WriteReq) -> std::io::Result<()> {
    let mut sent = 0;
    if let Some(fd) = &req.fd {
        let stream: &UnixStream = write.as_ref();
        loop {
            stream.writable().await?;
            match stream.try_io(Interest::WRITABLE, || {
                send_with_fd(stream.as_fd(), &req.bytes, fd.as_fd())
            }) {
                Ok(n) => {
                    sent = n;
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }
    write.write_all(&req.bytes[sent..]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_thread_safe() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Monitor>();
        send::<Events>();
        send::<QmpError>();
    }
}
