//! libvirt's remote protocol: XDR, framing, the REMOTE and KEEPALIVE
//! programs, a generic server and an async client.
//!
//! `virsh`, libvirt-python and every libvirt client speak this protocol to
//! libvirtd; ferrovirtd speaks it too, so they drive it unchanged.
//!
//! # Layers
//!
//! | module | concern |
//! |---|---|
//! | [`xdr`] | strict XDR encoder/decoder, the [`xdr::Xdr`] trait, [`xdr_struct!`] |
//! | [`header`] | `virNetMessageHeader` |
//! | [`frame`] | length-prefixed framing and size limits, tokio codec |
//! | [`protocol::remote`] | procedure numbers and names, wire structs |
//! | [`dispatch`] | the procedure table: typed handlers, read-only access, lane |
//! | [`protocol::keepalive`] | PING/PONG |
//! | [`server`] | [`Server`], [`Handler`], [`CallContext`] |
//! | `connection` | one client: reader, writer, bounded output queue ([`EventSink`]) |
//! | [`stream`] | libvirt streams: [`Stream`], their framing and both bounds |
//! | `fdio` | the socket with descriptor passing (`CALL_WITH_FDS`, `REPLY_WITH_FDS`) |
//! | [`client`] | async [`Client`] for tests and benchmarks |
//! | [`metrics`] | clients, output queues, drops, call latency per procedure |
//!
//! # Plugging in a handler (what ferrovirtd does)
//!
//! A handler serves calls from a [`dispatch::Table`]: one row per
//! procedure, with a typed `async fn` handler, whether the read-only socket
//! may call it, and whether it must never queue behind other work.
//!
//! ```no_run
//! use bytes::Bytes;
//! use rpc::dispatch::{Access::*, Lane, Lane::*, Row, Table};
//! use rpc::protocol::remote::{self, procedure as p};
//! use rpc::{CallContext, Config, Handler, Server};
//! use virterror::VirError;
//!
//! struct Daemon {
//!     table: Table<Daemon>,
//! }
//!
//! async fn get_type(_: &Daemon, _: &CallContext, _: ()) -> Result<remote::ConnectGetTypeRet, VirError> {
//!     Ok(remote::ConnectGetTypeRet { type_: "QEMU".into() })
//! }
//!
//! async fn lookup(_: &Daemon, _: &CallContext, a: remote::DomainLookupByNameArgs) -> Result<remote::DomainRet, VirError> {
//!     // ... look `a.name` up in the driver ...
//!     # let _ = a;
//!     Err(rpc::server::unsupported_procedure(p::DOMAIN_LOOKUP_BY_NAME))
//! }
//!
//! impl Handler for Daemon {
//!     async fn call(&self, ctx: CallContext, proc_: i32, args: Bytes) -> Result<Bytes, VirError> {
//!         self.table.call(self, &ctx, proc_, args).await
//!     }
//!     fn is_mutating(&self, proc_: i32) -> bool {
//!         self.table.is_mutating(proc_)
//!     }
//!     fn lane(&self, proc_: i32) -> Lane {
//!         self.table.lane(proc_)
//!     }
//!     fn on_disconnect(&self, client: rpc::ClientId) { /* drop its event callbacks */ }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let table = Table::new([
//!     Row::new(p::CONNECT_GET_TYPE, Read, Priority, get_type),
//!     Row::new(p::DOMAIN_LOOKUP_BY_NAME, Read, Priority, lookup),
//! ])?;
//! let server = Server::new(Config::default(), Daemon { table });
//! let rw = tokio::net::UnixListener::bind("/run/ferrovirt/sock")?;
//! let ro = tokio::net::UnixListener::bind("/run/ferrovirt/sock-ro")?;
//! let s2 = server.clone();
//! tokio::spawn(async move { s2.serve(ro, true).await });
//! tokio::spawn({ let s = server.clone(); async move { s.serve(rw, false).await } });
//! // on SIGTERM:
//! server.shutdown();
//! server.wait_closed().await;
//! # Ok(()) }
//! ```
//!
//! Events: keep `ctx.events` (an [`EventSink`], cheap to clone) in the
//! registration made by `CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`, and
//! push with `sink.try_send_event_xdr(procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE, &msg)`.
//! It never blocks. An `Err` means the client is gone or was just
//! disconnected for not reading: drop the registration.
//! `Handler::on_disconnect` is called once per client after all its calls
//! finished — the place to drop all its registrations.
//!
//! Streams: the handler of a call that opens one (`DOMAIN_OPEN_CONSOLE`,
//! `STORAGE_VOL_UPLOAD`, ...) calls [`CallContext::open_stream`] and hands
//! the [`Stream`] to a task that feeds or drains it; data flows once the
//! call is answered. Descriptors: [`CallContext::take_fds`] gives those a
//! `CALL_WITH_FDS` brought, [`CallContext::add_reply_fd`] passes one back
//! with the reply (`REPLY_WITH_FDS`).
//!
//! # Adding a procedure
//!
//! Every libvirt 9.0 procedure number is already in
//! [`protocol::remote::procedure`]. Write the handler and add its row to
//! the server's table; if its argument or return shape is not in
//! [`protocol::remote`] yet, define it there with [`xdr_struct!`].
//!
//! # Limits and what happens at each (per client unless stated)
//!
//! | limit | default | at the limit |
//! |---|---|---|
//! | message size (`max_message`, ≤ `VIR_NET_MESSAGE_MAX` 32 MiB) | 32 MiB | length word rejected before the body is buffered; error reply if the header arrived, then the client (only) is closed |
//! | malformed frame (length < 28, unknown type/status) | — | error reply (`VIR_ERR_RPC`) when the header was readable, queued replies drain (`drain_timeout`), client closed |
//! | XDR strings / arrays | protocol maxima (`REMOTE_STRING_MAX` 4 MiB, …) | decoding error → the handler returns an error reply; connection kept |
//! | `max_clients` (all sockets) | 5000 | new connection accepted and closed at once, warning logged |
//! | `max_inflight_per_client` | 16 | calls run as concurrent tasks; when all are taken the server reads one more message and stops reading that client until a slot frees. PINGs read before the pause are answered; while paused our keepalive does not count the client's silence |
//! | `max_priority_inflight_per_client` | 4 | extra slots only [`dispatch::Lane::Priority`] calls (destroy, lookups, snapshot queries, connection calls) may use, so they run while the normal slots are taken by calls that wait; when these are taken too, the priority call waits like a normal one |
//! | output queue `max_queued_messages` / `max_queued_bytes` | 1024 / 8 MiB | the push that does not fit disconnects the client (logged with the queue depth); stream data is counted apart (below). A message larger than max_queued_bytes is accepted into an empty queue |
//! | keepalive | 5 s × 5 | after `interval` of silence we PING; after `count` unanswered PINGs the client is dropped. Starts once the client shows keepalive support (see [`Config::keepalive_on_connect`]) |
//! | unknown or unserved procedure | — | `VIR_ERR_NO_SUPPORT` naming it as `NAME (number)` ([`server::unsupported_procedure`]), on either socket |
//! | unknown program / version | — | error reply `VIR_ERR_NO_SUPPORT`, connection kept |
//! | `max_streams_per_client` | 16 | opening one more stream fails the call (`VIR_ERR_OPERATION_FAILED`) |
//! | `max_stream_queued_bytes` / `max_stream_queued_messages` | 1 MiB / 64 | stream data queued on top of the output queue; at the bound the stream's source waits (is not read) — never dropped, never a disconnect; keepalive cuts a client that stops answering |
//! | `max_stream_inbound_bytes` | 1 MiB | stream data read and not yet consumed by its sink; at the bound the client is not read until the sink catches up (keepalive does not count that pause; a client that closes its end meanwhile is let go at the next keepalive tick) |
//! | descriptors per message | 32 (`VIR_NET_MESSAGE_NUM_FDS_MAX`) | more announced, fewer delivered, or more than 32 unclaimed: protocol error, client closed |
//! | `STREAM` message for no open stream | — | data for a stream that ended here is dropped (as libvirtd does); a finish or abort of it answered; one for a stream never opened gets a `STREAM` error (`VIR_ERR_NO_SUPPORT`) |
//! | mutating procedure on the read-only socket | — | `VIR_ERR_OPERATION_DENIED` reply, connection kept |
//!
//! Inbound memory per client is at most (max_inflight_per_client +
//! max_priority_inflight_per_client + 2) × max_message +
//! max_stream_inbound_bytes: the arguments of the running calls, the one
//! call read ahead while it waits for a slot, the read buffer, and stream
//! data its sinks have not taken. Outbound: max_queued_bytes +
//! max_stream_queued_bytes + one message.

pub mod client;
mod connection;
pub mod dispatch;
pub mod error;
mod fdio;
pub mod frame;
pub mod header;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod stream;
pub mod tls;
mod transport;
pub mod xdr;

pub use client::{Client, ClientConfig, Event, Events};
pub use connection::{Dropped, EventSink};
pub use error::{ClientError, CodecError, FrameError, XdrError};
pub use fdio::MAX_FDS;
pub use metrics::ServerMetrics;
pub use server::{CallContext, ClientId, Config, Handler, Server};
pub use stream::{Incoming, Stream, StreamData, StreamError, StreamReceiver};
pub use transport::Transport;
