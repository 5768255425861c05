//! libvirt streams on one connection: the bulk data of `virsh console`,
//! `vol-upload`, `vol-download` and `screenshot`.
//!
//! A call that opens a stream (`DOMAIN_OPEN_CONSOLE` with serial 7, say)
//! is answered first; from then on both sides send messages of that
//! procedure and serial:
//!
//! | type | status | body | from the client | from the daemon |
//! |---|---|---|---|---|
//! | `STREAM` | `CONTINUE` | raw bytes | data | data; empty = end of data |
//! | `STREAM_HOLE` | `CONTINUE` | `virNetStreamHole` | a run of zeros (sparse streams only) | the same |
//! | `STREAM` | `OK` | empty | done sending (`virStreamFinish`) | confirms a finish or an abort |
//! | `STREAM` | `ERROR` | client: empty; daemon: `remote_error` | abort (`virStreamAbort`) | the stream failed |
//!
//! Data is never acknowledged; flow control is the socket's, and both
//! directions are bounded here:
//!
//! - **daemon → client**: [`Stream::send`] waits while the client's queued
//!   stream data is at `max_stream_queued_bytes` (or
//!   `max_stream_queued_messages`), so a client that stops reading stops
//!   the source (a chardev, a file) from being read. Stream data is never
//!   dropped and never gets the client disconnected, unlike events; a
//!   client that stops answering is cut by keepalive.
//! - **client → daemon**: what the client sent and no sink consumed yet
//!   is at most `max_stream_inbound_bytes` (plus one message) per client;
//!   at that bound the server stops reading the client's socket until the
//!   sinks catch up, so a client that floods a console cannot grow the
//!   daemon.
//!
//! Late messages for a stream that ended on this connection are dropped
//! (data) or answered (finish, abort), as libvirt's daemon drops them; a
//! message for a stream that never existed gets a `STREAM` error.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::connection::ClientShared;
use crate::header::{Header, MessageStatus, MessageType};
use crate::protocol::remote::{self, RemoteError};
use crate::server::{ClientId, describe_procedure};
use crate::xdr::{self, Decoder, Encoder};

/// `VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`: the most data libvirt puts in one
/// stream message, and so do we.
pub const CHUNK_MAX: usize = 262_120;

/// Messages the client sent on one stream and its sink has not taken yet
/// (data is also bounded in bytes, per client).
const INCOMING_MESSAGES: usize = 64;

/// How many ended streams a connection remembers, so that their late
/// messages are dropped quietly rather than answered as unknown.
const REMEMBER_CLOSED: usize = 32;

/// A stream is named by the procedure and serial of the call that opened
/// it.
pub(crate) type Key = (i32, u32);

/// What the client sent on a stream.
#[derive(Debug)]
pub enum Incoming {
    /// Bytes for the sink.
    Data(StreamData),
    /// A run of this many zero bytes (sparse streams only).
    Hole(u64),
    /// The client sent everything (`virStreamFinish`): make it durable,
    /// then [`Stream::confirm`] (or [`Stream::fail`]).
    Finish,
    /// The client gave up (`virStreamAbort`): stop, then
    /// [`Stream::confirm`].
    Abort,
}

/// Data from the client. Holding it holds part of the client's inbound
/// budget: drop it once written.
#[derive(Debug)]
pub struct StreamData {
    bytes: Bytes,
    _credit: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for StreamData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why a stream operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The client is gone, or the stream ended.
    #[error("the stream is closed")]
    Closed,
    /// Holes may only be sent on a sparse stream.
    #[error("the stream is not sparse")]
    NotSparse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Opened by a call that has not been answered yet.
    Pending,
    /// The call's reply is queued: data may follow it.
    Open,
    Closed,
}

struct Entry {
    tx: mpsc::Sender<Incoming>,
    phase: watch::Sender<Phase>,
    sparse: bool,
}

/// Where a message from the client goes.
pub(crate) enum Lookup {
    Open(mpsc::Sender<Incoming>, bool),
    /// Ended on this connection a short while ago.
    Ended,
    Unknown,
}

/// The streams of one client.
pub(crate) struct Registry {
    open: HashMap<Key, Entry>,
    ended: VecDeque<Key>,
    max: usize,
}

impl Registry {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            open: HashMap::new(),
            ended: VecDeque::new(),
            max,
        }
    }

    fn insert(
        &mut self,
        key: Key,
        sparse: bool,
    ) -> Result<(mpsc::Receiver<Incoming>, watch::Receiver<Phase>), VirError> {
        if self.open.len() >= self.max {
            return Err(VirError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Streams,
                format!(
                    "operation failed: too many open streams on this connection (at most {})",
                    self.max
                ),
            ));
        }
        let (tx, rx) = mpsc::channel(INCOMING_MESSAGES);
        let (phase, phase_rx) = watch::channel(Phase::Pending);
        self.open.insert(key, Entry { tx, phase, sparse });
        Ok((rx, phase_rx))
    }

    /// The call that opened `key` was answered: data may flow.
    pub(crate) fn activate(&mut self, key: Key) {
        if let Some(e) = self.open.get(&key) {
            e.phase.send_replace(Phase::Open);
        }
    }

    /// Ends `key`; later messages for it are dropped quietly.
    pub(crate) fn remove(&mut self, key: Key) {
        if let Some(e) = self.open.remove(&key) {
            e.phase.send_replace(Phase::Closed);
            self.ended.push_back(key);
            if self.ended.len() > REMEMBER_CLOSED {
                self.ended.pop_front();
            }
        }
    }

    /// The client is going: every stream ends (their receivers see
    /// `None`). Returns those that had been answered (the client knows
    /// them).
    pub(crate) fn close_all(&mut self) -> Vec<Key> {
        self.open
            .drain()
            .filter_map(|(key, e)| {
                let was = e.phase.send_replace(Phase::Closed);
                (was == Phase::Open).then_some(key)
            })
            .collect()
    }

    pub(crate) fn lookup(&self, key: Key) -> Lookup {
        match self.open.get(&key) {
            Some(e) => Lookup::Open(e.tx.clone(), e.sparse),
            None if self.ended.contains(&key) => Lookup::Ended,
            None => Lookup::Unknown,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

/// A message of a stream as read, before it has inbound budget.
#[derive(Debug)]
pub(crate) enum Raw {
    Data(Bytes),
    Hole(u64),
    Finish,
    Abort,
}

impl Raw {
    /// Decodes a `STREAM` or `STREAM_HOLE` message from the client.
    pub(crate) fn parse(h: &Header, body: Bytes) -> Result<Raw, VirError> {
        let hole = h.message_type() == Some(MessageType::StreamHole);
        Ok(match h.message_status() {
            Some(MessageStatus::Continue) if hole => Raw::Hole(parse_hole(&body)?),
            Some(MessageStatus::Continue) => Raw::Data(body),
            Some(MessageStatus::Ok) => Raw::Finish,
            Some(MessageStatus::Error) | None => Raw::Abort,
        })
    }
}

/// `virNetStreamHole`: `hyper length; unsigned int flags` (no flags are
/// defined).
fn parse_hole(body: &[u8]) -> Result<u64, VirError> {
    let mut d = Decoder::new(body);
    let parsed = (|| {
        let len = d.get_i64()?;
        let flags = d.get_u32()?;
        d.finish()?;
        Ok::<_, crate::XdrError>((len, flags))
    })();
    match parsed {
        Ok((len, 0)) if len >= 0 => Ok(len.unsigned_abs()),
        Ok(_) => Err(stream_rpc_error("malformed stream hole")),
        Err(e) => Err(stream_rpc_error(format!("malformed stream hole: {e}"))),
    }
}

fn stream_rpc_error(msg: impl Into<String>) -> VirError {
    VirError::new(ErrorCode::Rpc, ErrorDomain::Rpc, msg)
}

/// Waits for inbound budget for `raw` (data only) and hands it to the
/// stream; returns at once if the stream ends meanwhile. The caller does
/// not read the socket while this runs.
pub(crate) async fn deliver(
    tx: mpsc::Sender<Incoming>,
    credit: Arc<Semaphore>,
    budget: usize,
    raw: Raw,
) {
    let item = match raw {
        Raw::Data(bytes) => {
            let need = u32::try_from(bytes.len().min(budget)).unwrap_or(u32::MAX);
            let permit = tokio::select! {
                p = credit.acquire_many_owned(need) => p.ok(),
                _ = tx.closed() => return,
            };
            Incoming::Data(StreamData {
                bytes,
                _credit: permit,
            })
        }
        Raw::Hole(n) => Incoming::Hole(n),
        Raw::Finish => Incoming::Finish,
        Raw::Abort => Incoming::Abort,
    };
    // A closed receiver means the stream ended meanwhile: drop the item.
    let _ = tx.send(item).await;
}

/// One stream of a client, held by whatever feeds or drains it (a console
/// session, a volume transfer). Get one with
/// [`CallContext::open_stream`](crate::CallContext::open_stream) in the
/// handler of the call that opens it.
///
/// End it with [`Stream::send_eof`] and then the client's finish
/// ([`Stream::confirm`]), or with [`Stream::fail`]. Dropped without either,
/// the client gets a stream error.
pub struct Stream {
    key: Key,
    client: Arc<ClientShared>,
    phase: watch::Receiver<Phase>,
    /// `None` once [`Stream::take_receiver`] took it.
    incoming: Option<mpsc::Receiver<Incoming>>,
    sparse: bool,
    opened: AtomicBool,
    ended: bool,
}

/// The client's direction of a stream, apart from the stream, so that one
/// task can wait on both directions at once (a console).
#[derive(Debug)]
pub struct StreamReceiver {
    incoming: mpsc::Receiver<Incoming>,
}

impl StreamReceiver {
    /// The next message from the client; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// The next message if one is already here.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.incoming.try_recv().ok()
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("client", &self.client.id())
            .field("procedure", &describe_procedure(self.key.0))
            .field("serial", &self.key.1)
            .field("sparse", &self.sparse)
            .finish()
    }
}

impl Stream {
    /// Registers the stream of the call `key` (pending until the call is
    /// answered).
    pub(crate) fn register(
        client: Arc<ClientShared>,
        key: Key,
        sparse: bool,
    ) -> Result<Stream, VirError> {
        let (incoming, phase) = client.streams().insert(key, sparse)?;
        Ok(Stream {
            key,
            client,
            phase,
            incoming: Some(incoming),
            sparse,
            opened: AtomicBool::new(false),
            ended: false,
        })
    }

    /// The client this stream belongs to.
    pub fn client(&self) -> ClientId {
        self.client.id()
    }

    /// Whether the client asked for holes (`*_SPARSE_STREAM`).
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// The next message from the client; `None` once the client is gone
    /// (or the receiver was taken).
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.incoming.as_mut()?.recv().await
    }

    /// The next message if one is already here.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.incoming.as_mut()?.try_recv().ok()
    }

    /// Resolves once the stream has ended: the client went away (or the
    /// stream was confirmed or failed). For a task that may be waiting on
    /// something else entirely (a device that takes no input).
    pub async fn closed(&self) {
        let _ = self.phase.clone().wait_for(|p| *p == Phase::Closed).await;
    }

    /// Takes the client's direction out of the stream (after this,
    /// [`Stream::recv`] returns `None`).
    pub fn take_receiver(&mut self) -> StreamReceiver {
        let incoming = self.incoming.take().unwrap_or_else(|| {
            // Taken twice: an empty, closed receiver.
            let (_, rx) = mpsc::channel(1);
            rx
        });
        StreamReceiver { incoming }
    }

    /// Sends `data` (in messages of at most [`CHUNK_MAX`] bytes), waiting
    /// while the client's queued stream data is at its bound. Sends
    /// nothing before the reply to the opening call.
    pub async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        for chunk in data.chunks(CHUNK_MAX) {
            self.push(MessageType::Stream, MessageStatus::Continue, chunk)
                .await?;
        }
        Ok(())
    }

    /// Sends a hole of `len` zero bytes (sparse streams only).
    pub async fn send_hole(&self, len: u64) -> Result<(), StreamError> {
        if !self.sparse {
            return Err(StreamError::NotSparse);
        }
        let mut e = Encoder::with_capacity(12);
        e.put_i64(i64::try_from(len).unwrap_or(i64::MAX));
        e.put_u32(0);
        let body = e.finish();
        self.push(MessageType::StreamHole, MessageStatus::Continue, &body)
            .await
    }

    /// Tells the client there is no more data; it then finishes (or
    /// aborts), which [`Stream::recv`] returns.
    pub async fn send_eof(&self) -> Result<(), StreamError> {
        self.push(MessageType::Stream, MessageStatus::Continue, &[])
            .await
    }

    /// Confirms the client's finish or abort, and ends the stream.
    pub async fn confirm(mut self) {
        let _ = self.end(MessageStatus::Ok, Bytes::new()).await;
    }

    /// Ends the stream with an error the client reports.
    pub async fn fail(mut self, err: &VirError) {
        let body = xdr::to_bytes(&RemoteError::from(err));
        let _ = self.end(MessageStatus::Error, body).await;
    }

    async fn end(&mut self, status: MessageStatus, body: Bytes) -> Result<(), StreamError> {
        let opened = self.opened().await;
        self.ended = true;
        self.client.streams().remove(self.key);
        opened?;
        self.push(MessageType::Stream, status, &body).await
    }

    /// Waits until the opening call was answered.
    async fn opened(&self) -> Result<(), StreamError> {
        if self.opened.load(Ordering::Relaxed) {
            return Ok(());
        }
        let phase = self
            .phase
            .clone()
            .wait_for(|p| *p != Phase::Pending)
            .await
            .map(|p| *p)
            .map_err(|_| StreamError::Closed)?;
        match phase {
            Phase::Open => {
                self.opened.store(true, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(StreamError::Closed),
        }
    }

    async fn push(
        &self,
        mtype: MessageType,
        status: MessageStatus,
        body: &[u8],
    ) -> Result<(), StreamError> {
        self.opened().await?;
        let h = self.header(mtype, status);
        self.client
            .push_stream(&h, body)
            .await
            .map_err(|_| StreamError::Closed)
    }

    fn header(&self, mtype: MessageType, status: MessageStatus) -> Header {
        Header::new(
            remote::PROGRAM,
            remote::VERSION,
            self.key.0,
            mtype,
            self.key.1,
            status,
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.client.streams().remove(self.key);
        if *self.phase.borrow() == Phase::Open {
            let err = VirError::new(
                ErrorCode::InternalError,
                ErrorDomain::Streams,
                "internal error: the stream was closed by the daemon",
            );
            let h = self.header(MessageType::Stream, MessageStatus::Error);
            let _ = self
                .client
                .push_message(&h, &xdr::to_bytes(&RemoteError::from(&err)));
        }
    }
}

/// The answer to a message for a stream this connection does not have
/// open: `None` to drop it quietly.
pub(crate) fn answer_unknown(h: &Header, raw: &Raw, lookup: &Lookup) -> Option<(Header, Bytes)> {
    let mut reply = *h;
    reply.msg_type = MessageType::Stream as u32;
    match (lookup, raw) {
        (Lookup::Ended, Raw::Data(_) | Raw::Hole(_)) => None,
        (Lookup::Ended, Raw::Abort) => {
            reply.status = MessageStatus::Ok as u32;
            Some((reply, Bytes::new()))
        }
        (Lookup::Ended, Raw::Finish) => {
            reply.status = MessageStatus::Error as u32;
            let err = stream_rpc_error("the stream is closed");
            Some((reply, xdr::to_bytes(&RemoteError::from(&err))))
        }
        _ => {
            reply.status = MessageStatus::Error as u32;
            let err = VirError::new(
                ErrorCode::NoSupport,
                ErrorDomain::Rpc,
                format!(
                    "no stream of {} with serial {} is open on this connection",
                    describe_procedure(h.proc_),
                    h.serial
                ),
            );
            Some((reply, xdr::to_bytes(&RemoteError::from(&err))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: MessageType, s: MessageStatus) -> Header {
        Header::new(remote::PROGRAM, 1, 209, t, 4, s)
    }

    #[test]
    fn messages_parse_as_libvirt_sends_them() {
        let data = Raw::parse(
            &header(MessageType::Stream, MessageStatus::Continue),
            Bytes::from_static(b"abc"),
        )
        .unwrap();
        assert!(matches!(data, Raw::Data(b) if &b[..] == b"abc"));
        let mut e = Encoder::new();
        e.put_i64(1 << 40);
        e.put_u32(0);
        let hole = Raw::parse(
            &header(MessageType::StreamHole, MessageStatus::Continue),
            e.finish(),
        )
        .unwrap();
        assert!(matches!(hole, Raw::Hole(n) if n == 1 << 40));
        let fin = Raw::parse(
            &header(MessageType::Stream, MessageStatus::Ok),
            Bytes::new(),
        );
        assert!(matches!(fin, Ok(Raw::Finish)));
        let abort = Raw::parse(
            &header(MessageType::Stream, MessageStatus::Error),
            Bytes::new(),
        );
        assert!(matches!(abort, Ok(Raw::Abort)));
    }

    #[test]
    fn bad_holes_are_refused() {
        let h = header(MessageType::StreamHole, MessageStatus::Continue);
        let mut e = Encoder::new();
        e.put_i64(-1);
        e.put_u32(0);
        assert!(Raw::parse(&h, e.finish()).is_err());
        let mut e = Encoder::new();
        e.put_i64(5);
        e.put_u32(1);
        assert!(Raw::parse(&h, e.finish()).is_err());
        assert!(Raw::parse(&h, Bytes::from_static(b"short")).is_err());
    }

    #[test]
    fn registry_bounds_open_streams_and_remembers_ended_ones() {
        let mut r = Registry::new(2);
        let _a = r.insert((201, 1), false).unwrap();
        let _b = r.insert((201, 2), true).unwrap();
        assert_eq!(
            r.insert((201, 3), false).unwrap_err().code,
            ErrorCode::OperationFailed
        );
        assert!(matches!(r.lookup((201, 2)), Lookup::Open(_, true)));
        r.remove((201, 2));
        assert!(matches!(r.lookup((201, 2)), Lookup::Ended));
        assert!(matches!(r.lookup((201, 9)), Lookup::Unknown));
        for i in 0..(REMEMBER_CLOSED as u32 + 5) {
            let _ = r.insert((5, i), false).unwrap();
            r.remove((5, i));
        }
        assert_eq!(r.ended.len(), REMEMBER_CLOSED);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn unknown_and_ended_streams_are_answered_as_libvirt_clients_expect() {
        let h = header(MessageType::Stream, MessageStatus::Continue);
        let data = Raw::Data(Bytes::from_static(b"x"));
        assert!(answer_unknown(&h, &data, &Lookup::Ended).is_none());
        let (rh, _) = answer_unknown(&h, &Raw::Abort, &Lookup::Ended).unwrap();
        assert_eq!(rh.message_status(), Some(MessageStatus::Ok));
        let (rh, body) = answer_unknown(&h, &data, &Lookup::Unknown).unwrap();
        assert_eq!(rh.message_status(), Some(MessageStatus::Error));
        let e: RemoteError = xdr::from_bytes(&body).unwrap();
        assert_eq!(e.code, ErrorCode::NoSupport.as_i32());
    }

    #[tokio::test]
    async fn delivery_waits_for_budget_and_gives_up_when_the_stream_ends() {
        let credit = Arc::new(Semaphore::new(10));
        let (tx, mut rx) = mpsc::channel(4);
        deliver(
            tx.clone(),
            credit.clone(),
            10,
            Raw::Data(Bytes::from(vec![1; 8])),
        )
        .await;
        assert_eq!(credit.available_permits(), 2);
        // Over the budget: waits until the first data is dropped.
        let pending = tokio::spawn(deliver(
            tx.clone(),
            credit.clone(),
            10,
            Raw::Data(Bytes::from(vec![2; 30])),
        ));
        tokio::task::yield_now().await;
        assert!(!pending.is_finished());
        let first = rx.recv().await.unwrap();
        drop(first);
        pending.await.unwrap();
        assert!(matches!(rx.recv().await, Some(Incoming::Data(d)) if d.len() == 30));
        // A stream that ends releases a delivery waiting for budget.
        let hog = credit.clone().acquire_many_owned(10).await.unwrap();
        let waiting = tokio::spawn(deliver(
            tx,
            credit.clone(),
            10,
            Raw::Data(Bytes::from(vec![3; 4])),
        ));
        drop(rx);
        waiting.await.unwrap();
        drop(hog);
    }
}
