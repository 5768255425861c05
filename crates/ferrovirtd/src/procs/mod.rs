//! The handlers of the REMOTE procedures, grouped by what they act on.
//! Each is an `async fn(&Daemon, &CallContext, Args) -> Reply<Ret>` named
//! in the procedure table (`dispatch.rs`), which decodes its arguments and
//! encodes its return value.

pub(crate) mod blockjob;
pub(crate) mod connect;
pub(crate) mod cpu;
pub(crate) mod devices;
pub(crate) mod domain;
pub(crate) mod dump;
pub(crate) mod events;
pub(crate) mod interfaces;
pub(crate) mod jobs;
pub(crate) mod migration;
pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod peer;
pub(crate) mod pins;
pub(crate) mod query;
pub(crate) mod save;
pub(crate) mod secret;
pub(crate) mod stats;
pub(crate) mod storage;
pub(crate) mod streams;

/// What a handler returns: the typed return value or the error to send.
pub(crate) type Reply<T> = Result<T, virterror::VirError>;
