//! An async QMP (QEMU Machine Protocol) client that can be trusted with a
//! hostile QEMU.
//!
//! A QEMU process is as untrusted as the guest inside it: a compromised one
//! can send anything. This crate therefore guarantees, per connection:
//!
//! * bounded memory — lines are capped ([`Config::max_line`]), events go to a
//!   bounded, coalescing queue ([`events`]), and nothing else grows with
//!   what QEMU sends;
//! * no stall — replies are matched by id by a reader that never waits for
//!   the event consumer, and every command has a deadline;
//! * no panic — malformed input is a [`ProtocolError`] that closes the
//!   connection with a clear [`CloseReason`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), qmp::QmpError> {
//! use qmp::{Config, Monitor, commands::QueryStatus};
//! let (mon, mut events) = Monitor::connect("/run/vm.qmp".as_ref(), Config::default()).await?;
//! let status = mon.execute(&QueryStatus).await?;
//! println!("{:?}", status.status);
//! while let Some(item) = events.recv().await {
//!     println!("{item:?}");
//! }
//! # Ok(()) }
//! ```

mod client;
pub mod codec;
mod config;
mod error;
pub mod events;
mod fdpass;
mod greeting;
mod ratelimit;
pub mod types;

pub use client::{Monitor, MonitorStats};
pub use config::{Config, EventLimits};
pub use error::{CloseReason, ProtocolError, QmpError};
pub use events::{Event, EventItem, EventKind, Events, Overflow, Timestamp, TryRecvError};
pub use greeting::Greeting;
pub use types::commands::{self, Command};
pub use types::{JobStatus, MigrationStatus, RunState};
