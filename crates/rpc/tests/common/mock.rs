//! A mock handler: just enough of the REMOTE program for `virsh version`
//! and `virsh list --all`, plus test procedures (numbers ≥ 10000) to drive
//! the server's concurrency and event paths. Shared by the tests and by
//! `examples/mock_server.rs`.

#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use rpc::protocol::remote::{self, procedure};
use rpc::server::{decode_args, encode_ret, unsupported_procedure};
use rpc::{CallContext, ClientId, EventSink, Handler, Incoming, Stream};
use tokio::sync::{Notify, Semaphore};
use virterror::VirError;

/// Returns its `u32` argument.
pub const P_ECHO: i32 = 10_001;
/// Waits for a permit of `Mock::gate`, then returns its `u32` argument.
pub const P_BLOCK: i32 = 10_002;
/// Panics.
pub const P_PANIC: i32 = 10_003;
/// Opens a stream (sparse if its `u32` argument is 1) that sends back
/// what it receives: data as data, holes as holes; confirms a finish or
/// an abort.
pub const P_STREAM_ECHO: i32 = 10_010;
/// Opens a stream and sends its `u64` argument's worth of pattern bytes
/// (`Mock::pattern`), then the end of data; confirms the client's finish.
pub const P_STREAM_SOURCE: i32 = 10_011;
/// Opens a stream that takes one message per permit of
/// `Mock::sink_gate`, counting and digesting the data.
pub const P_STREAM_SINK: i32 = 10_012;
/// Opens a stream, then fails.
pub const P_STREAM_FAIL: i32 = 10_013;
/// Returns the descriptors the call brought, in the same order.
pub const P_FD_ECHO: i32 = 10_014;

pub struct Mock {
    /// Every procedure called, in arrival order at the handler.
    pub seen: Mutex<Vec<i32>>,
    /// Procedures answered with NO_SUPPORT.
    pub unknown: Mutex<Vec<i32>>,
    /// Features asked with CONNECT_SUPPORTS_FEATURE.
    pub features: Mutex<Vec<i32>>,
    /// Released by tests to let P_BLOCK calls finish.
    pub gate: Semaphore,
    /// P_BLOCK calls currently waiting.
    pub blocked: AtomicUsize,
    pub changed: Notify,
    /// Sinks registered with CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY.
    pub sinks: Mutex<Vec<EventSink>>,
    pub connected: Mutex<Vec<ClientId>>,
    pub disconnected: Mutex<Vec<ClientId>>,
    /// Bytes `P_STREAM_SOURCE` streams have queued for their clients.
    pub source_sent: AtomicUsize,
    /// Streams that ended (their task returned).
    pub streams_ended: AtomicUsize,
    /// Released by tests to let `P_STREAM_SINK` take messages.
    pub sink_gate: Semaphore,
    /// Data bytes `P_STREAM_SINK` took, and their digest.
    pub sink_bytes: AtomicUsize,
    pub sink_digest: Mutex<u64>,
    me: Mutex<Option<std::sync::Weak<Mock>>>,
}

impl Default for Mock {
    fn default() -> Self {
        Self {
            seen: Mutex::default(),
            unknown: Mutex::default(),
            features: Mutex::default(),
            gate: Semaphore::new(0),
            blocked: AtomicUsize::new(0),
            changed: Notify::new(),
            sinks: Mutex::default(),
            connected: Mutex::default(),
            disconnected: Mutex::default(),
            source_sent: AtomicUsize::new(0),
            streams_ended: AtomicUsize::new(0),
            sink_gate: Semaphore::new(0),
            sink_bytes: AtomicUsize::new(0),
            sink_digest: Mutex::new(DIGEST_SEED),
            me: Mutex::new(None),
        }
    }
}

const DIGEST_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `data`, continuing from `h`.
pub fn digest(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The digest of nothing, to continue from.
pub fn digest_seed() -> u64 {
    DIGEST_SEED
}

impl Mock {
    pub fn seen(&self) -> Vec<i32> {
        self.seen.lock().unwrap().clone()
    }

    pub fn sinks(&self) -> Vec<EventSink> {
        self.sinks.lock().unwrap().clone()
    }

    pub fn disconnected(&self) -> Vec<ClientId> {
        self.disconnected.lock().unwrap().clone()
    }

    /// Byte `i` of what `P_STREAM_SOURCE` sends.
    pub fn pattern(i: usize) -> u8 {
        (i % 251) as u8
    }

    fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// Waits (with a deadline) until `cond` holds; re-checked on every
    /// state change of the mock.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Mock) -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let notified = self.changed.notified();
            if cond(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                assert!(cond(self), "timed out waiting for {what}");
                return;
            }
        }
    }
}

fn u32_arg(proc_: i32, args: &[u8]) -> Result<u32, VirError> {
    decode_args::<u32>(proc_, args)
}

impl Mock {
    /// The stream tasks need the mock beyond the call; the tests hand the
    /// server an `Arc<Mock>` and register it here.
    fn self_arc(&self) -> std::sync::Arc<Mock> {
        self.me
            .lock()
            .unwrap()
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
            .expect("Mock::register_arc was called")
    }

    /// Lets stream tasks reach the mock (call once after wrapping it).
    pub fn register_arc(me: &std::sync::Arc<Mock>) {
        *me.me.lock().unwrap() = Some(std::sync::Arc::downgrade(me));
    }
}

async fn echo(mut st: Stream, m: std::sync::Arc<Mock>) {
    while let Some(item) = st.recv().await {
        let r = match item {
            Incoming::Data(d) => st.send(&d).await,
            Incoming::Hole(n) => st.send_hole(n).await,
            Incoming::Finish | Incoming::Abort => {
                st.confirm().await;
                break;
            }
        };
        if r.is_err() {
            break;
        }
    }
    m.streams_ended.fetch_add(1, Ordering::SeqCst);
    m.changed();
}

async fn source(mut st: Stream, n: u64, m: std::sync::Arc<Mock>) {
    let chunk: Vec<u8> = (0..rpc::stream::CHUNK_MAX).map(Mock::pattern).collect();
    let mut left = usize::try_from(n).unwrap();
    let mut ok = true;
    while left > 0 && ok {
        let len = left.min(chunk.len());
        ok = st.send(&chunk[..len]).await.is_ok();
        if ok {
            left -= len;
            m.source_sent.fetch_add(len, Ordering::SeqCst);
            m.changed();
        }
    }
    if ok && st.send_eof().await.is_ok() {
        while let Some(item) = st.recv().await {
            if matches!(item, Incoming::Finish | Incoming::Abort) {
                st.confirm().await;
                break;
            }
        }
    }
    m.streams_ended.fetch_add(1, Ordering::SeqCst);
    m.changed();
}

async fn sink(mut st: Stream, m: std::sync::Arc<Mock>) {
    loop {
        match m.sink_gate.acquire().await {
            Ok(p) => p.forget(),
            Err(_) => break,
        }
        match st.recv().await {
            Some(Incoming::Data(d)) => {
                let mut h = m.sink_digest.lock().unwrap();
                *h = digest(*h, &d);
                drop(h);
                m.sink_bytes.fetch_add(d.len(), Ordering::SeqCst);
                m.changed();
            }
            Some(Incoming::Hole(_)) => {}
            Some(Incoming::Finish | Incoming::Abort) => {
                st.confirm().await;
                break;
            }
            None => break,
        }
    }
    m.streams_ended.fetch_add(1, Ordering::SeqCst);
    m.changed();
}

impl Handler for Mock {
    async fn call(&self, ctx: CallContext, proc_: i32, args: Bytes) -> Result<Bytes, VirError> {
        self.seen.lock().unwrap().push(proc_);
        self.changed.notify_waiters();
        match proc_ {
            procedure::AUTH_LIST => encode_ret(&remote::AuthListRet {
                types: vec![remote::AuthType::None],
            }),
            procedure::CONNECT_OPEN => {
                let _a: remote::ConnectOpenArgs = decode_args(proc_, &args)?;
                Ok(Bytes::new())
            }
            procedure::CONNECT_CLOSE
            | procedure::CONNECT_REGISTER_CLOSE_CALLBACK
            | procedure::CONNECT_UNREGISTER_CLOSE_CALLBACK => Ok(Bytes::new()),
            procedure::CONNECT_SUPPORTS_FEATURE => {
                let a: remote::ConnectSupportsFeatureArgs = decode_args(proc_, &args)?;
                self.features.lock().unwrap().push(a.feature);
                use remote::feature::*;
                let supported = matches!(
                    a.feature,
                    PROGRAM_KEEPALIVE
                        | REMOTE_EVENT_CALLBACK
                        | REMOTE_CLOSE_CALLBACK
                        | TYPED_PARAM_STRING
                );
                encode_ret(&remote::ConnectSupportsFeatureRet {
                    supported: i32::from(supported),
                })
            }
            procedure::CONNECT_GET_TYPE => encode_ret(&remote::ConnectGetTypeRet {
                type_: "QEMU".into(),
            }),
            procedure::CONNECT_GET_VERSION => {
                encode_ret(&remote::ConnectGetVersionRet { hv_ver: 8_002_000 })
            }
            procedure::CONNECT_GET_LIB_VERSION => {
                encode_ret(&remote::ConnectGetLibVersionRet { lib_ver: 9_000_000 })
            }
            procedure::CONNECT_GET_HOSTNAME => encode_ret(&remote::ConnectGetHostnameRet {
                hostname: "ferrovirt-mock".into(),
            }),
            procedure::CONNECT_GET_URI => encode_ret(&remote::ConnectGetUriRet {
                uri: "qemu:///system".into(),
            }),
            procedure::CONNECT_IS_SECURE => encode_ret(&remote::ConnectIsSecureRet { secure: 1 }),
            procedure::CONNECT_NUM_OF_DOMAINS | procedure::CONNECT_NUM_OF_DEFINED_DOMAINS => {
                encode_ret(&remote::NumRet { num: 0 })
            }
            procedure::CONNECT_LIST_DOMAINS => {
                encode_ret(&remote::ConnectListDomainsRet { ids: vec![] })
            }
            procedure::CONNECT_LIST_DEFINED_DOMAINS => {
                encode_ret(&remote::ConnectListDefinedDomainsRet { names: vec![] })
            }
            procedure::CONNECT_LIST_ALL_DOMAINS => {
                let _a: remote::ConnectListAllDomainsArgs = decode_args(proc_, &args)?;
                encode_ret(&remote::ConnectListAllDomainsRet {
                    domains: vec![],
                    ret: 0,
                })
            }
            procedure::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => {
                let _a: remote::ConnectDomainEventCallbackRegisterAnyArgs =
                    decode_args(proc_, &args)?;
                let mut sinks = self.sinks.lock().unwrap();
                sinks.push(ctx.events.clone());
                let id = i32::try_from(sinks.len()).unwrap_or(i32::MAX);
                drop(sinks);
                self.changed.notify_waiters();
                encode_ret(&remote::ConnectDomainEventCallbackRegisterAnyRet { callback_id: id })
            }
            procedure::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => Ok(Bytes::new()),
            P_ECHO => encode_ret(&u32_arg(proc_, &args)?),
            P_BLOCK => {
                let v = u32_arg(proc_, &args)?;
                self.blocked.fetch_add(1, Ordering::SeqCst);
                self.changed.notify_waiters();
                if let Ok(p) = self.gate.acquire().await {
                    p.forget();
                }
                self.blocked.fetch_sub(1, Ordering::SeqCst);
                self.changed.notify_waiters();
                encode_ret(&v)
            }
            P_PANIC => panic!("mock handler panics on purpose"),
            P_STREAM_ECHO => {
                let sparse = u32_arg(proc_, &args)? == 1;
                let st = ctx.open_stream(sparse)?;
                tokio::spawn(echo(st, self.self_arc()));
                Ok(Bytes::new())
            }
            P_STREAM_SOURCE => {
                let n: u64 = decode_args(proc_, &args)?;
                let st = ctx.open_stream(false)?;
                tokio::spawn(source(st, n, self.self_arc()));
                Ok(Bytes::new())
            }
            P_STREAM_SINK => {
                let st = ctx.open_stream(false)?;
                tokio::spawn(sink(st, self.self_arc()));
                Ok(Bytes::new())
            }
            P_STREAM_FAIL => {
                let _st = ctx.open_stream(false)?;
                Err(VirError::new(
                    virterror::ErrorCode::OperationFailed,
                    virterror::ErrorDomain::Rpc,
                    "the call that opened a stream failed",
                ))
            }
            P_FD_ECHO => {
                for fd in ctx.take_fds() {
                    ctx.add_reply_fd(fd);
                }
                Ok(Bytes::new())
            }
            _ => {
                eprintln!(
                    "mock: unsupported {}",
                    rpc::server::describe_procedure(proc_)
                );
                self.unknown.lock().unwrap().push(proc_);
                Err(unsupported_procedure(proc_))
            }
        }
    }

    fn is_mutating(&self, procedure: i32) -> bool {
        // Test procedures are harmless, and so are the mock's connection
        // and list calls; everything else is refused on the read-only
        // socket.
        use procedure::*;
        let reads = matches!(
            procedure,
            AUTH_LIST
                | CONNECT_OPEN
                | CONNECT_CLOSE
                | CONNECT_SUPPORTS_FEATURE
                | CONNECT_GET_TYPE
                | CONNECT_GET_VERSION
                | CONNECT_GET_LIB_VERSION
                | CONNECT_GET_HOSTNAME
                | CONNECT_GET_URI
                | CONNECT_IS_SECURE
                | CONNECT_REGISTER_CLOSE_CALLBACK
                | CONNECT_UNREGISTER_CLOSE_CALLBACK
                | CONNECT_NUM_OF_DOMAINS
                | CONNECT_NUM_OF_DEFINED_DOMAINS
                | CONNECT_LIST_DOMAINS
                | CONNECT_LIST_DEFINED_DOMAINS
                | CONNECT_LIST_ALL_DOMAINS
                | CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
                | CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY
        );
        !reads && !(10_000..11_000).contains(&procedure)
    }

    fn on_connect(&self, client: ClientId, _readonly: bool) {
        self.connected.lock().unwrap().push(client);
        self.changed.notify_waiters();
    }

    fn on_disconnect(&self, client: ClientId) {
        self.sinks.lock().unwrap().retain(|s| s.client() != client);
        self.disconnected.lock().unwrap().push(client);
        self.changed.notify_waiters();
    }
}
