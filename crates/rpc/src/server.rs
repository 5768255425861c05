//! The generic RPC server: accepts connections on UNIX sockets, frames and
//! dispatches messages, answers keepalive, and hands REMOTE calls to a
//! [`Handler`]. It knows nothing about domains; the daemon's handler does.
//!
//! See the crate documentation for the limits and what happens at each.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::connection::ClientShared;
pub use crate::connection::{Dropped, EventSink};
use crate::dispatch::Lane;
use crate::frame::MESSAGE_MAX;
use crate::metrics::ServerMetrics;
use crate::protocol::remote;
use crate::stream::{Key as StreamKey, Stream};
use crate::transport::Conn;
use crate::xdr::{self, Xdr};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Server limits. The defaults follow libvirtd where libvirtd has one.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections served at once, over all sockets of this server. An
    /// excess connection is accepted and closed immediately (the client sees
    /// end-of-file at once instead of hanging in the backlog) and logged.
    pub max_clients: usize,
    /// Calls of one client running concurrently. At the bound the server
    /// reads at most one more message from that client (see
    /// `max_priority_inflight_per_client`) and then stops reading it until a
    /// call finishes.
    pub max_inflight_per_client: usize,
    /// Extra in-flight slots per client that only [`Lane::Priority`] calls
    /// may use: a destroy, a lookup or a state query read while the normal
    /// slots are all taken (say, by calls waiting for a job) still runs. A
    /// priority call read when these are taken too waits like a normal one.
    /// 0 disables the lane.
    pub max_priority_inflight_per_client: usize,
    /// Messages waiting to be written to one client.
    pub max_queued_messages: usize,
    /// Bytes waiting to be written to one client. A single message larger
    /// than this is still accepted into an empty queue.
    pub max_queued_bytes: usize,
    /// Largest message (header + body) accepted or sent; at most
    /// [`MESSAGE_MAX`] (`VIR_NET_MESSAGE_MAX`).
    pub max_message: usize,
    /// How long the connection must be silent before we PING; `None`
    /// disables our pings (PINGs from the client are always answered).
    pub keepalive_interval: Option<Duration>,
    /// Unanswered PINGs after which the client is dropped.
    pub keepalive_count: u32,
    /// Ping every client from the start. When false (libvirtd's behaviour),
    /// pinging starts once the client shows it speaks KEEPALIVE: it sent a
    /// KEEPALIVE message, asked `CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE)`,
    /// or the handler called [`EventSink::enable_keepalive`]. Old clients
    /// that do not answer pings are thus never dropped for it.
    pub keepalive_on_connect: bool,
    /// After a protocol error or on shutdown, how long queued replies may
    /// take to drain before the socket is closed anyway.
    pub drain_timeout: Duration,
    /// Streams one client may have open at once (consoles, volume
    /// transfers, screenshots); opening one more fails.
    pub max_streams_per_client: usize,
    /// Stream data (bytes) queued for one client on top of
    /// `max_queued_bytes`. At the bound a stream's source waits (it is not
    /// read) until the client reads; the client is never disconnected for
    /// it.
    pub max_stream_queued_bytes: usize,
    /// Stream messages queued for one client on top of
    /// `max_queued_messages` (holes are small: this bounds them).
    pub max_stream_queued_messages: usize,
    /// Stream data read from one client that no sink has consumed yet. At
    /// the bound the server stops reading the client until a sink catches
    /// up.
    pub max_stream_inbound_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_clients: 5000,
            max_inflight_per_client: 16,
            max_priority_inflight_per_client: 4,
            max_queued_messages: 1024,
            max_queued_bytes: 8 * 1024 * 1024,
            max_message: MESSAGE_MAX,
            keepalive_interval: Some(Duration::from_secs(5)),
            keepalive_count: 5,
            keepalive_on_connect: false,
            drain_timeout: Duration::from_secs(1),
            max_streams_per_client: 16,
            max_stream_queued_bytes: 1024 * 1024,
            max_stream_queued_messages: 64,
            max_stream_inbound_bytes: 1024 * 1024,
        }
    }
}

/// Identifies one client connection for the lifetime of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client#{}", self.0)
    }
}

/// What a handler knows about the call it serves.
#[derive(Clone)]
pub struct CallContext {
    pub client: ClientId,
    /// The client connected through the read-only socket. Mutating
    /// procedures were already refused; this is for finer checks (flags).
    pub readonly: bool,
    /// How the client is connected (descriptors pass on UNIX sockets only).
    pub transport: crate::Transport,
    /// Serial of the call (for logs).
    pub serial: u32,
    /// Push events to this client; clone it into event registrations.
    pub events: EventSink,
    pub(crate) call: Arc<CallExtras>,
}

impl CallContext {
    /// The procedure being called.
    pub fn procedure(&self) -> i32 {
        self.call.header.proc_
    }

    /// Opens the stream of this call (`sparse` when the client asked for
    /// holes). It carries data only once the call is answered; if the
    /// call fails, the stream ends with it. One stream per call.
    pub fn open_stream(&self, sparse: bool) -> Result<Stream, VirError> {
        let key = (self.call.header.proc_, self.call.header.serial);
        let mut slot = self.call.lock_stream();
        if slot.is_some() {
            return Err(VirError::new(
                ErrorCode::InternalError,
                ErrorDomain::Rpc,
                "internal error: a call opens at most one stream",
            ));
        }
        let stream = Stream::register(self.call.client.clone(), key, sparse)?;
        *slot = Some(key);
        Ok(stream)
    }

    /// The descriptors the client passed with this call
    /// (`CALL_WITH_FDS`), in order; empty after the first take.
    pub fn take_fds(&self) -> Vec<OwnedFd> {
        std::mem::take(&mut *lock(&self.call.fds_in))
    }

    /// Passes `fd` back to the client with the reply
    /// (`REPLY_WITH_FDS`); dropped (closed) if the call fails.
    pub fn add_reply_fd(&self, fd: OwnedFd) {
        lock(&self.call.fds_out).push(fd);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while holding it; the
    // vectors inside are consistent between statements.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a call has beyond its arguments: its header, the descriptors it
/// brought and returns, and the stream it opened.
pub(crate) struct CallExtras {
    client: Arc<ClientShared>,
    header: crate::header::Header,
    fds_in: Mutex<Vec<OwnedFd>>,
    fds_out: Mutex<Vec<OwnedFd>>,
    stream: Mutex<Option<StreamKey>>,
}

impl CallExtras {
    pub(crate) fn new(
        client: Arc<ClientShared>,
        header: crate::header::Header,
        fds: Vec<OwnedFd>,
    ) -> Self {
        Self {
            client,
            header,
            fds_in: Mutex::new(fds),
            fds_out: Mutex::new(Vec::new()),
            stream: Mutex::new(None),
        }
    }

    fn lock_stream(&self) -> MutexGuard<'_, Option<StreamKey>> {
        lock(&self.stream)
    }

    /// The stream the call opened, if any.
    pub(crate) fn stream(&self) -> Option<StreamKey> {
        *self.lock_stream()
    }

    pub(crate) fn take_reply_fds(&self) -> Vec<OwnedFd> {
        std::mem::take(&mut *lock(&self.fds_out))
    }
}

/// The daemon's side of the server: executes REMOTE procedures.
pub trait Handler: Send + Sync + 'static {
    /// Executes one call. `args` is the XDR body of the call; the returned
    /// bytes are the XDR body of the reply. An error becomes a
    /// `remote_error` reply (virsh prints its message). Unknown procedures
    /// should return [`unsupported_procedure`] (`VIR_ERR_NO_SUPPORT`).
    ///
    /// Calls of one client run concurrently (up to
    /// `Config::max_inflight_per_client`) and their replies may be sent out
    /// of order. A call runs to completion even if its client disconnects
    /// (the reply is then discarded): the future is never cancelled midway.
    fn call(
        &self,
        ctx: CallContext,
        procedure: i32,
        args: Bytes,
    ) -> impl Future<Output = Result<Bytes, VirError>> + Send;

    /// Whether a procedure modifies anything, so is refused with
    /// `VIR_ERR_OPERATION_DENIED` on the read-only socket before
    /// [`Handler::call`] sees it. The default refuses everything there; a
    /// handler serving from a [`Table`](crate::dispatch::Table) answers with
    /// [`Table::is_mutating`](crate::dispatch::Table::is_mutating).
    fn is_mutating(&self, _procedure: i32) -> bool {
        true
    }

    /// Which in-flight slots a call of `procedure` may use (see
    /// [`Lane`]). The default is [`Lane::Normal`] for every procedure.
    fn lane(&self, _procedure: i32) -> Lane {
        Lane::Normal
    }

    /// A client connected.
    fn on_connect(&self, _client: ClientId, _readonly: bool) {}

    /// A client is gone and every call it made has finished: drop its event
    /// registrations. Called exactly once per client, last.
    fn on_disconnect(&self, _client: ClientId) {}
}

/// Decodes call arguments, mapping failure to the error libvirtd sends for
/// undecodable arguments.
pub fn decode_args<T: Xdr>(procedure: i32, args: &[u8]) -> Result<T, VirError> {
    xdr::from_bytes(args).map_err(|e| {
        VirError::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            format!(
                "cannot decode arguments of procedure {}: {e}",
                describe_procedure(procedure)
            ),
        )
    })
}

/// Encodes a reply body.
pub fn encode_ret<T: Xdr>(ret: &T) -> Result<Bytes, VirError> {
    Ok(xdr::to_bytes(ret))
}

/// The error for a procedure the handler does not implement.
pub fn unsupported_procedure(procedure: i32) -> VirError {
    VirError::new(
        ErrorCode::NoSupport,
        ErrorDomain::Remote,
        format!(
            "this function is not supported by the connection driver: {}",
            describe_procedure(procedure)
        ),
    )
}

/// How every message and log line names a REMOTE procedure:
/// `DOMAIN_BLOCK_STATS (64)`, or `unknown procedure (99999)` for a number
/// libvirt 9.0 does not define.
pub fn describe_procedure(procedure: i32) -> String {
    let name = remote::procedure_name(procedure).unwrap_or("unknown procedure");
    format!("{name} ({procedure})")
}

pub(crate) struct Inner<H> {
    pub(crate) cfg: Config,
    pub(crate) handler: Arc<H>,
    pub(crate) shutdown: CancellationToken,
    clients: Arc<Semaphore>,
    tracker: TaskTracker,
    next_id: AtomicU64,
    pub(crate) metrics: Arc<ServerMetrics>,
}

/// A server; clone it freely (all clones are the same server). Serve any
/// number of sockets with it, typically a read-write and a read-only one.
pub struct Server<H> {
    inner: Arc<Inner<H>>,
}

impl<H> Clone for Server<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<H: Handler> Server<H> {
    pub fn new(config: Config, handler: H) -> Self {
        Self::with_handler(config, Arc::new(handler))
    }

    pub fn with_handler(mut config: Config, handler: Arc<H>) -> Self {
        config.max_message = config
            .max_message
            .clamp(crate::header::HEADER_LEN, MESSAGE_MAX);
        config.max_inflight_per_client = config.max_inflight_per_client.max(1);
        config.max_queued_messages = config.max_queued_messages.max(1);
        let clients = Arc::new(Semaphore::new(config.max_clients));
        Self {
            inner: Arc::new(Inner {
                cfg: config,
                handler,
                shutdown: CancellationToken::new(),
                clients,
                tracker: TaskTracker::new(),
                next_id: AtomicU64::new(1),
                metrics: Arc::new(ServerMetrics::default()),
            }),
        }
    }

    pub fn handler(&self) -> &Arc<H> {
        &self.inner.handler
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// What the server counts (clients, queues, call latency).
    pub fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.inner.metrics
    }

    /// Clients currently connected (including those whose calls are
    /// finishing after a disconnect).
    pub fn client_count(&self) -> usize {
        self.inner.cfg.max_clients - self.inner.clients.available_permits()
    }

    /// Accepts and serves connections until [`Server::shutdown`]. Every
    /// client of this listener is read-only when `readonly` is true.
    pub async fn serve(&self, listener: UnixListener, readonly: bool) -> io::Result<()> {
        while let Some(stream) = self.accept(|| listener.accept()).await {
            self.admit(readonly, async move { Ok(Conn::Unix(stream)) });
        }
        Ok(())
    }

    /// Accepts and serves TCP connections until [`Server::shutdown`]:
    /// plain (`qemu+tcp://`, no authentication) without `tls`, else TLS
    /// with a verified client certificate (`qemu+tls://`). A handshake
    /// runs in the connection's own task, counted against `max_clients`
    /// and bounded by a deadline, so a client that stalls it delays no one.
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        tls: Option<Arc<crate::tls::TlsServer>>,
    ) -> io::Result<()> {
        while let Some(stream) = self.accept(|| listener.accept()).await {
            let _ = stream.set_nodelay(true);
            match &tls {
                None => self.admit(false, async move { Ok(Conn::tcp(stream)) }),
                Some(t) => {
                    let t = t.clone();
                    self.admit(false, async move { t.accept(stream).await });
                }
            }
        }
        Ok(())
    }

    /// The next accepted connection; `None` once shut down. Accept errors
    /// (EMFILE and friends) back off instead of spinning: the connection
    /// stays in the backlog until descriptors free up.
    async fn accept<S, P, A, F>(&self, accept: F) -> Option<S>
    where
        F: Fn() -> A,
        A: Future<Output = io::Result<(S, P)>>,
    {
        let inner = &self.inner;
        loop {
            let accepted = tokio::select! {
                _ = inner.shutdown.cancelled() => return None,
                r = accept() => r,
            };
            match accepted {
                Ok((s, _)) => return Some(s),
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::select! {
                        _ = inner.shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }

    /// Serves one accepted connection in its own task once `conn` (a
    /// handshake, or nothing) yields it, if a client slot is free.
    fn admit(&self, readonly: bool, conn: impl Future<Output = io::Result<Conn>> + Send + 'static) {
        let inner = &self.inner;
        let Ok(permit) = inner.clients.clone().try_acquire_owned() else {
            inner.metrics.rejected.inc();
            warn!(
                max_clients = inner.cfg.max_clients,
                "too many clients: closing new connection"
            );
            return;
        };
        let id = ClientId(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let inner2 = inner.clone();
        inner.tracker.spawn(async move {
            let conn = tokio::select! {
                _ = inner2.shutdown.cancelled() => return,
                c = tokio::time::timeout(HANDSHAKE_DEADLINE, conn) => c,
            };
            let conn = match conn {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return warn!(client = %id, error = %e, "connection refused"),
                Err(_) => return warn!(client = %id, "handshake not finished in time"),
            };
            inner2.metrics.connected();
            crate::connection::run(conn, id, readonly, inner2.clone()).await;
            inner2.metrics.disconnected();
            drop(permit);
        });
    }

    /// Stops accepting on every socket and closes every client (queued
    /// replies get `drain_timeout` to be written). Returns at once; await
    /// [`Server::wait_closed`] for completion.
    pub fn shutdown(&self) {
        info!("server shutting down");
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
    }

    /// Resolves when shutdown was requested and every connection is gone
    /// (and `on_disconnect` was called for each).
    pub async fn wait_closed(&self) {
        self.inner.shutdown.cancelled().await;
        self.inner.tracker.wait().await;
    }
}
