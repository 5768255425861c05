//! An async client of the libvirt remote protocol, over a UNIX socket,
//! plain TCP or TLS: for tests and benchmarks, and for the daemon's own calls to
//! a peer (peer-to-peer migration). Concurrent calls matched by serial,
//! events on a bounded channel, keepalive PINGs answered.
//!
//! The reader task never blocks on the event channel: when the consumer
//! falls behind, events are dropped and counted ([`Client::dropped_events`])
//! so replies keep flowing. A test that wants a client which stops reading
//! altogether should use a raw socket instead.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tracing::debug;

use crate::error::ClientError;
use crate::frame::{MESSAGE_MAX, Message, MessageCodec, encode_frame};
use crate::header::{Header, MessageStatus, MessageType};
use crate::protocol::keepalive;
use crate::protocol::remote::{self, procedure};
use crate::xdr::{self, Xdr};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Capacity of the event channel.
    pub event_capacity: usize,
    /// Largest message accepted or sent (header + body).
    pub max_message: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            event_capacity: 1024,
            max_message: MESSAGE_MAX,
        }
    }
}

/// A server-pushed message (event).
#[derive(Debug, Clone)]
pub struct Event {
    pub prog: u32,
    pub procedure: i32,
    pub body: Bytes,
}

impl Event {
    pub fn decode<T: Xdr>(&self) -> Result<T, ClientError> {
        Ok(xdr::from_bytes(&self.body)?)
    }
}

/// Receiving end of the event channel. `recv` returns `None` once the
/// connection is closed and queued events are consumed.
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

type Pending = HashMap<u32, oneshot::Sender<Result<Message, ClientError>>>;

/// The writing half of the connection, whatever carries it.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

struct Inner {
    writer: tokio::sync::Mutex<Writer>,
    /// `None` once the connection is closed: no new call may wait.
    pending: Mutex<Option<Pending>>,
    serial: AtomicU32,
    dropped_events: AtomicU64,
    pings_answered: AtomicU64,
    max_message: usize,
    events: Mutex<Option<Events>>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn write(&self, frame: &[u8]) -> Result<(), ClientError> {
        let mut w = self.writer.lock().await;
        w.write_all(frame).await?;
        Ok(())
    }
}

/// A connection to a libvirt-protocol server. Cheap to clone; the
/// connection closes when the last clone is dropped or on [`Client::close`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.reader.get_mut().ok().and_then(|r| r.take()) {
            h.abort();
        }
    }
}

impl Client {
    /// Connects to a UNIX socket.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        Self::connect_with(path, ClientConfig::default()).await
    }

    pub async fn connect_with(
        path: impl AsRef<Path>,
        cfg: ClientConfig,
    ) -> Result<Client, ClientError> {
        let s = UnixStream::connect(path).await?;
        Ok(Self::from_stream(s, cfg))
    }

    /// Connects over plain TCP (`qemu+tcp://HOST:PORT/`) to `addr`
    /// (`HOST:PORT`).
    pub async fn connect_tcp(addr: &str, cfg: ClientConfig) -> Result<Client, ClientError> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self::from_io(s, cfg))
    }

    /// Connects over TLS (`qemu+tls://HOST:PORT/`) to `addr` (`HOST:PORT`),
    /// whose certificate must name `host`, presenting `files`' client
    /// certificate.
    pub async fn connect_tls(
        addr: &str,
        host: &str,
        files: &crate::tls::TlsClientFiles,
        cfg: ClientConfig,
    ) -> Result<Client, ClientError> {
        let s = crate::tls::connect(addr, host, files).await?;
        Ok(Self::from_io(s, cfg))
    }

    /// Wraps a connected stream; must be called inside a tokio runtime.
    pub fn from_stream(stream: UnixStream, cfg: ClientConfig) -> Client {
        Self::from_io(stream, cfg)
    }

    /// Wraps any connected byte stream; must be called inside a tokio
    /// runtime.
    pub fn from_io<S>(stream: S, cfg: ClientConfig) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(cfg.event_capacity.max(1));
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(Box::new(wr)),
            pending: Mutex::new(Some(HashMap::new())),
            serial: AtomicU32::new(1),
            dropped_events: AtomicU64::new(0),
            pings_answered: AtomicU64::new(0),
            max_message: cfg.max_message,
            events: Mutex::new(Some(Events { rx })),
            reader: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let framed = FramedRead::new(rd, MessageCodec::new(cfg.max_message));
        let handle = tokio::spawn(read_loop(framed, weak, tx));
        if let Ok(mut r) = inner.reader.lock() {
            *r = Some(handle);
        }
        Client { inner }
    }

    /// Takes the event receiver (once).
    pub fn take_events(&self) -> Option<Events> {
        self.inner.events.lock().ok().and_then(|mut e| e.take())
    }

    /// Events dropped because the event channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.inner.dropped_events.load(Ordering::Relaxed)
    }

    /// Keepalive PINGs from the server that we answered.
    pub fn pings_answered(&self) -> u64 {
        self.inner.pings_answered.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.inner.pending().is_none()
    }

    /// Calls a REMOTE procedure with typed arguments and return value.
    pub async fn call<A: Xdr, R: Xdr>(&self, procedure: i32, args: &A) -> Result<R, ClientError> {
        let body = self
            .call_raw(
                remote::PROGRAM,
                remote::VERSION,
                procedure,
                xdr::to_bytes(args),
            )
            .await?;
        Ok(xdr::from_bytes(&body)?)
    }

    /// Calls any program's procedure with an encoded body; returns the
    /// encoded reply body or the server's error.
    pub async fn call_raw(
        &self,
        prog: u32,
        vers: u32,
        procedure: i32,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let serial = self.inner.serial.fetch_add(1, Ordering::Relaxed);
        let h = Header::new(
            prog,
            vers,
            procedure,
            MessageType::Call,
            serial,
            MessageStatus::Ok,
        );
        let frame = encode_frame(&h, &body, self.inner.max_message)?;
        let (tx, rx) = oneshot::channel();
        match self.inner.pending().as_mut() {
            Some(p) => {
                p.insert(serial, tx);
            }
            None => return Err(ClientError::Closed),
        }
        if let Err(e) = self.inner.write(&frame).await {
            if let Some(p) = self.inner.pending().as_mut() {
                p.remove(&serial);
            }
            return Err(e);
        }
        let reply = rx.await.map_err(|_| ClientError::Closed)??;
        Ok(reply.body)
    }

    /// Writes raw bytes to the socket (tests: malformed input).
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.inner.write(bytes).await
    }

    /// Sends a keepalive PING (the server answers with PONG, which the
    /// reader consumes silently).
    pub async fn send_ping(&self) -> Result<(), ClientError> {
        let f = encode_frame(
            &keepalive::header(keepalive::PROC_PING),
            &[],
            self.inner.max_message,
        )?;
        self.inner.write(&f).await
    }

    /// Closes the connection; pending calls fail with `Closed`.
    pub async fn close(&self) {
        let mut w = self.inner.writer.lock().await;
        let _ = w.shutdown().await;
        drop(w);
        if let Some(h) = self.inner.reader.lock().ok().and_then(|mut r| r.take()) {
            h.abort();
        }
        fail_all(&self.inner);
    }

    // ---- typed conveniences ----

    /// `CONNECT_OPEN` with the URI name (e.g. `qemu:///system`).
    pub async fn open(&self, name: Option<&str>, flags: u32) -> Result<(), ClientError> {
        let args = remote::ConnectOpenArgs {
            name: name.map(str::to_owned),
            flags,
        };
        self.call(procedure::CONNECT_OPEN, &args).await
    }

    pub async fn connect_close(&self) -> Result<(), ClientError> {
        self.call(procedure::CONNECT_CLOSE, &()).await
    }

    pub async fn get_type(&self) -> Result<String, ClientError> {
        let r: remote::ConnectGetTypeRet = self.call(procedure::CONNECT_GET_TYPE, &()).await?;
        Ok(r.type_)
    }

    pub async fn num_of_domains(&self) -> Result<i32, ClientError> {
        let r: remote::NumRet = self.call(procedure::CONNECT_NUM_OF_DOMAINS, &()).await?;
        Ok(r.num)
    }

    pub async fn list_all_domains(
        &self,
        flags: u32,
    ) -> Result<Vec<remote::NonnullDomain>, ClientError> {
        let r: remote::ConnectListAllDomainsRet = self
            .call(
                procedure::CONNECT_LIST_ALL_DOMAINS,
                &remote::ConnectListAllDomainsArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.domains)
    }

    pub async fn lookup_by_name(&self, name: &str) -> Result<remote::NonnullDomain, ClientError> {
        let r: remote::DomainRet = self
            .call(
                procedure::DOMAIN_LOOKUP_BY_NAME,
                &remote::DomainLookupByNameArgs { name: name.into() },
            )
            .await?;
        Ok(r.dom)
    }

    pub async fn domain_get_info(
        &self,
        dom: &remote::NonnullDomain,
    ) -> Result<remote::DomainGetInfoRet, ClientError> {
        self.call(
            procedure::DOMAIN_GET_INFO,
            &remote::DomainArgs { dom: dom.clone() },
        )
        .await
    }

    pub async fn domain_get_state(
        &self,
        dom: &remote::NonnullDomain,
    ) -> Result<remote::DomainGetStateRet, ClientError> {
        self.call(
            procedure::DOMAIN_GET_STATE,
            &remote::DomainFlagsArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn define_xml(&self, xml: &str) -> Result<remote::NonnullDomain, ClientError> {
        let r: remote::DomainRet = self
            .call(
                procedure::DOMAIN_DEFINE_XML_FLAGS,
                &remote::DomainDefineXmlFlagsArgs {
                    xml: xml.into(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.dom)
    }

    /// `DOMAIN_CREATE_WITH_FLAGS`; returns the domain with its new id.
    pub async fn create(
        &self,
        dom: &remote::NonnullDomain,
    ) -> Result<remote::NonnullDomain, ClientError> {
        let r: remote::DomainRet = self
            .call(
                procedure::DOMAIN_CREATE_WITH_FLAGS,
                &remote::DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.dom)
    }

    pub async fn destroy(&self, dom: &remote::NonnullDomain) -> Result<(), ClientError> {
        self.call(
            procedure::DOMAIN_DESTROY_FLAGS,
            &remote::DomainFlagsArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
        .await
    }

    /// Registers a lifecycle callback (optionally for one domain); returns
    /// the callbackID carried by `DOMAIN_EVENT_CALLBACK_LIFECYCLE` events.
    pub async fn register_lifecycle_callback(
        &self,
        dom: Option<remote::NonnullDomain>,
    ) -> Result<i32, ClientError> {
        let r: remote::ConnectDomainEventCallbackRegisterAnyRet = self
            .call(
                procedure::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                &remote::ConnectDomainEventCallbackRegisterAnyArgs {
                    event_id: remote::event_id::LIFECYCLE,
                    dom,
                },
            )
            .await?;
        Ok(r.callback_id)
    }

    pub async fn deregister_callback(&self, callback_id: i32) -> Result<(), ClientError> {
        self.call(
            procedure::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
            &remote::ConnectDomainEventCallbackDeregisterAnyArgs { callback_id },
        )
        .await
    }
}

fn fail_all(inner: &Inner) {
    let pending = inner.pending().take();
    if let Some(p) = pending {
        for (_, tx) in p {
            let _ = tx.send(Err(ClientError::Closed));
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut framed: FramedRead<R, MessageCodec>,
    inner: std::sync::Weak<Inner>,
    events: mpsc::Sender<Event>,
) {
    while let Some(item) = framed.next().await {
        let Some(inner) = inner.upgrade() else { return };
        let msg = match item {
            Ok(m) => m,
            Err(e) => {
                debug!(error = %e, "client connection error");
                break;
            }
        };
        let h = msg.header;
        match h.message_type() {
            Some(MessageType::Reply | MessageType::ReplyWithFds) => on_reply(&inner, msg),
            Some(MessageType::Message) if h.prog == keepalive::PROGRAM => {
                if h.proc_ == keepalive::PROC_PING {
                    answer_ping(&inner).await;
                }
            }
            Some(MessageType::Message) => {
                let ev = Event {
                    prog: h.prog,
                    procedure: h.proc_,
                    body: msg.body,
                };
                if events.try_send(ev).is_err() {
                    inner.dropped_events.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => debug!(?other, "ignoring message"),
        }
    }
    if let Some(inner) = inner.upgrade() {
        fail_all(&inner);
    }
}

/// Hands a reply to the call waiting for its serial.
fn on_reply(inner: &Inner, msg: Message) {
    let h = msg.header;
    let Some(tx) = inner.pending().as_mut().and_then(|p| p.remove(&h.serial)) else {
        debug!(serial = h.serial, "reply for unknown serial");
        return;
    };
    let r = if h.message_status() == Some(MessageStatus::Error) {
        match xdr::from_bytes::<remote::RemoteError>(&msg.body) {
            Ok(e) => Err(ClientError::Remote(Box::new(e))),
            Err(e) => Err(ClientError::Xdr(e)),
        }
    } else {
        Ok(msg)
    };
    let _ = tx.send(r);
}

async fn answer_ping(inner: &Inner) {
    let pong = keepalive::header(keepalive::PROC_PONG);
    if let Ok(f) = encode_frame(&pong, &[], inner.max_message) {
        let _ = inner.write(&f).await;
        inner.pings_answered.fetch_add(1, Ordering::Relaxed);
    }
}
