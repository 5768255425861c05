//! One table from REMOTE procedure numbers to typed handlers.
//!
//! A [`Row`] binds a procedure number to its handler, a plain
//! `async fn(&S, &CallContext, Args) -> Result<Ret, VirError>` (`()` for
//! no arguments or no return value), and to the two facts the server needs
//! before it runs a call: whether the read-only socket may call it
//! ([`Access`]) and whether it may wait behind the client's other calls
//! ([`Lane`]). Arguments are decoded and return values encoded here, in one
//! place, for every procedure; handlers only see typed values.
//!
//! ```
//! use rpc::CallContext;
//! use rpc::dispatch::{Access::*, Lane::*, Row, Table};
//! use rpc::protocol::remote::{ConnectGetTypeRet, procedure as p};
//! use virterror::VirError;
//!
//! struct Daemon;
//!
//! async fn get_type(_: &Daemon, _: &CallContext, _: ()) -> Result<ConnectGetTypeRet, VirError> {
//!     Ok(ConnectGetTypeRet { type_: "QEMU".into() })
//! }
//!
//! let table = Table::new([Row::new(p::CONNECT_GET_TYPE, Read, Priority, get_type)]).unwrap();
//! assert!(!table.is_mutating(p::CONNECT_GET_TYPE));
//! // A procedure without a row is answered VIR_ERR_NO_SUPPORT, on either socket.
//! assert!(!table.is_mutating(p::DOMAIN_DESTROY));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use virterror::VirError;

use crate::protocol::remote::procedure_name;
use crate::server::{
    CallContext, decode_args, describe_procedure, encode_ret, unsupported_procedure,
};
use crate::xdr::Xdr;

/// Whether the read-only socket may call a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads state only: allowed on the read-only socket.
    Read,
    /// Changes something: refused on the read-only socket with
    /// `VIR_ERR_OPERATION_DENIED` before the handler runs.
    Write,
}

/// Which of a client's in-flight slots a call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lane {
    /// One of the client's `max_inflight_per_client` slots. When they are
    /// all taken the server reads at most one more message from the client
    /// and waits for a slot.
    #[default]
    Normal,
    /// Never waits behind other work (no job lock, no monitor command):
    /// runs in a normal slot when one is free, otherwise in the client's
    /// small reserved lane (`max_priority_inflight_per_client`), so it
    /// answers even while the client's other calls are all blocked.
    Priority,
}

/// The future of one call: the encoded reply body or the error to send.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Bytes, VirError>> + Send + 'a>>;

type Call<S> = Box<dyn for<'a> Fn(&'a S, &'a CallContext, Bytes) -> CallFuture<'a> + Send + Sync>;

/// A handler of a procedure with arguments `A` and return value `R`:
/// implemented by every `async fn(&S, &CallContext, A) -> Result<R, VirError>`
/// whose future is `Send`. (A helper trait, because a plain `Fn` bound
/// cannot name a future that borrows the arguments.)
pub trait Procedure<'a, S: 'a, A, R>: Fn(&'a S, &'a CallContext, A) -> Self::Future {
    type Future: Future<Output = Result<R, VirError>> + Send + 'a;
}

impl<'a, S: 'a, A, R, F, Fut> Procedure<'a, S, A, R> for F
where
    F: Fn(&'a S, &'a CallContext, A) -> Fut,
    Fut: Future<Output = Result<R, VirError>> + Send + 'a,
{
    type Future = Fut;
}

/// One procedure: its number, access, lane and handler.
pub struct Row<S> {
    procedure: i32,
    access: Access,
    lane: Lane,
    call: Call<S>,
}

impl<S: Sync + 'static> Row<S> {
    /// A row for `procedure`, served by `handler`.
    pub fn new<A, R, F>(procedure: i32, access: Access, lane: Lane, handler: F) -> Self
    where
        A: Xdr,
        R: Xdr,
        F: for<'a> Procedure<'a, S, A, R> + Send + Sync + 'static,
    {
        let call: Call<S> =
            Box::new(
                move |state, ctx, args| match decode_args::<A>(procedure, &args) {
                    Ok(a) => {
                        let reply = handler(state, ctx, a);
                        Box::pin(async move { encode_ret(&reply.await?) })
                    }
                    Err(e) => Box::pin(std::future::ready(Err(e))),
                },
            );
        Self {
            procedure,
            access,
            lane,
            call,
        }
    }
}

impl<S> Row<S> {
    pub fn procedure(&self) -> i32 {
        self.procedure
    }

    pub fn access(&self) -> Access {
        self.access
    }

    pub fn lane(&self) -> Lane {
        self.lane
    }
}

impl<S> fmt::Debug for Row<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("procedure", &describe_procedure(self.procedure))
            .field("access", &self.access)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

/// Why a table could not be built: both are mistakes in the table itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("procedure table: {0} is not a procedure of libvirt 9.0")]
    Unknown(i32),
    #[error("procedure table: {0} has more than one row")]
    Duplicate(String),
}

/// Every procedure a server serves, by number.
pub struct Table<S> {
    rows: BTreeMap<i32, Row<S>>,
}

impl<S> fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rows.values()).finish()
    }
}

impl<S: Sync + 'static> Table<S> {
    /// Builds the table; every number must be a libvirt procedure and
    /// appear once.
    pub fn new(rows: impl IntoIterator<Item = Row<S>>) -> Result<Self, TableError> {
        let mut map = BTreeMap::new();
        for row in rows {
            let number = row.procedure;
            if procedure_name(number).is_none() {
                return Err(TableError::Unknown(number));
            }
            if map.insert(number, row).is_some() {
                return Err(TableError::Duplicate(describe_procedure(number)));
            }
        }
        Ok(Self { rows: map })
    }

    /// The row of `procedure`, if it is served.
    pub fn row(&self, procedure: i32) -> Option<&Row<S>> {
        self.rows.get(&procedure)
    }

    /// Every row, by procedure number.
    pub fn rows(&self) -> impl Iterator<Item = &Row<S>> {
        self.rows.values()
    }

    /// Whether the read-only socket must refuse `procedure`. A procedure
    /// without a row changes nothing: it is answered `VIR_ERR_NO_SUPPORT`
    /// on either socket, as clients probing for a feature expect.
    pub fn is_mutating(&self, procedure: i32) -> bool {
        self.row(procedure)
            .is_some_and(|r| r.access == Access::Write)
    }

    /// The lane of `procedure` (normal for one without a row: its answer
    /// is immediate anyway).
    pub fn lane(&self, procedure: i32) -> Lane {
        self.row(procedure).map_or(Lane::Normal, |r| r.lane)
    }

    /// Runs `procedure`: decodes `args`, calls its handler, encodes the
    /// return value. `VIR_ERR_NO_SUPPORT` for a procedure without a row.
    pub fn call<'a>(
        &'a self,
        state: &'a S,
        ctx: &'a CallContext,
        procedure: i32,
        args: Bytes,
    ) -> CallFuture<'a> {
        match self.row(procedure) {
            Some(row) => (row.call)(state, ctx, args),
            None => Box::pin(std::future::ready(Err(unsupported_procedure(procedure)))),
        }
    }
}
