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
//! | [`protocol::remote`] | procedure numbers and wire structs |
//! | [`protocol::keepalive`] | PING/PONG |
//! | [`server`] | [`Server`], [`Handler`], [`CallContext`] |
//! | `connection` | one client: reader, writer, bounded output queue ([`EventSink`]) |
//! | [`client`] | async [`Client`] for tests and benchmarks |
//!
//! # Plugging in a handler (what ferrovirtd does)
//!
//! ```no_run
//! use bytes::Bytes;
//! use rpc::protocol::remote::{self, procedure};
//! use rpc::server::{decode_args, encode_ret, unsupported_procedure};
//! use rpc::{CallContext, Config, Handler, Server};
//! use virterror::VirError;
//!
//! struct Daemon;
//!
//! impl Handler for Daemon {
//!     async fn call(&self, ctx: CallContext, proc_: i32, args: Bytes) -> Result<Bytes, VirError> {
//!         match proc_ {
//!             procedure::CONNECT_GET_TYPE => encode_ret(&remote::ConnectGetTypeRet { type_: "QEMU".into() }),
//!             procedure::DOMAIN_LOOKUP_BY_NAME => {
//!                 let a: remote::DomainLookupByNameArgs = decode_args(proc_, &args)?;
//!                 // ... look it up in the driver ...
//!                 # let _ = (a, ctx);
//!                 Err(unsupported_procedure(proc_))
//!             }
//!             _ => Err(unsupported_procedure(proc_)),
//!         }
//!     }
//!     fn on_disconnect(&self, client: rpc::ClientId) { /* drop its event callbacks */ }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::new(Config::default(), Daemon);
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
//! # Adding a procedure
//!
//! See [`protocol::remote`]: number in `procedures!`, structs with
//! [`xdr_struct!`], read-only classification in
//! [`protocol::remote::is_read_only_safe`]; then a match arm in the handler.
//!
//! # Limits and what happens at each (per client unless stated)
//!
//! | limit | default | at the limit |
//! |---|---|---|
//! | message size (`max_message`, ≤ `VIR_NET_MESSAGE_MAX` 32 MiB) | 32 MiB | length word rejected before the body is buffered; error reply if the header arrived, then the client (only) is closed |
//! | malformed frame (length < 28, unknown type/status) | — | error reply (`VIR_ERR_RPC`) when the header was readable, queued replies drain (`drain_timeout`), client closed |
//! | XDR strings / arrays | protocol maxima (`REMOTE_STRING_MAX` 4 MiB, …) | decoding error → the handler returns an error reply; connection kept |
//! | `max_clients` (all sockets) | 5000 | new connection accepted and closed at once, warning logged |
//! | `max_inflight_per_client` | 16 | calls run as concurrent tasks; at the bound the server stops reading that client until one finishes. PINGs read before the pause are answered; while paused our keepalive does not count the client's silence |
//! | output queue `max_queued_messages` / `max_queued_bytes` | 1024 / 8 MiB | the push that does not fit disconnects the client (logged with the queue depth); memory per client ≤ max_queued_bytes + one message. A message larger than max_queued_bytes is accepted into an empty queue |
//! | keepalive | 5 s × 5 | after `interval` of silence we PING; after `count` unanswered PINGs the client is dropped. Starts once the client shows keepalive support (see [`Config::keepalive_on_connect`]) |
//! | unknown procedure | — | the handler returns `VIR_ERR_NO_SUPPORT` ([`server::unsupported_procedure`]) |
//! | unknown program / version, `CALL_WITH_FDS`, `STREAM` | — | error reply `VIR_ERR_NO_SUPPORT` (STREAM: a STREAM/ERROR message), connection kept |
//! | mutating procedure on the read-only socket | — | `VIR_ERR_OPERATION_DENIED` reply, connection kept |
//!
//! Inbound memory per client is at most (max_inflight + 1) × max_message
//! (arguments of running calls plus the read buffer).

pub mod client;
mod connection;
pub mod error;
pub mod frame;
pub mod header;
pub mod protocol;
pub mod server;
pub mod xdr;

pub use client::{Client, ClientConfig, Event, Events};
pub use connection::{Dropped, EventSink};
pub use error::{ClientError, CodecError, FrameError, XdrError};
pub use server::{CallContext, ClientId, Config, Handler, Server};
