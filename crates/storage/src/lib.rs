//! The storage driver: libvirt's storage pools and volumes.
//!
//! Directory pools (`type='dir'`) hold raw and qcow2 volumes. Every object
//! obeys the daemon's rules:
//!
//! - **queries never wait**: lists, info and XML read a snapshot under a
//!   short lock; no job, no I/O beyond a `stat`;
//! - **long operations are jobs**: creating, cloning, wiping and resizing
//!   a volume take a shared job on its pool (volumes build in parallel; the
//!   pool cannot be stopped under them), FIFO-fair with a deadline, and the
//!   heavy part runs in a bounded set of supervised `qemu-img` children or
//!   blocking threads, each with a stall deadline;
//! - **transfers are jobs too**: an upload or download (`vol-upload`,
//!   `vol-download`) holds a shared job on its pool for its life; a volume
//!   being written is used by nothing else, one being read is not written
//!   or deleted (see `transfer.rs`);
//! - **nothing half-made**: a volume is built under a hidden partial name
//!   and renamed into place when whole; definitions and the state of active
//!   pools are written atomically, so a daemon killed at any instant
//!   re-adopts its active pools and sweeps what an interrupted build left.
//!
//! Entry point: [`StorageDriver::open`].

mod driver;
mod error;
pub mod events;
mod pool;
pub mod probe;
mod qemu_img;
mod refresh;
mod store;
mod transfer;
mod volops;
mod volume;
pub mod xml;

pub use driver::{BuildMode, PoolFilter, StorageConfig, StorageDriver, VolumeUsers};
pub use error::{Error, Result};
pub use events::{PoolEvent, PoolEventKind, PoolLifecycle, PoolListener};
pub use pool::{Pool, PoolInfo, PoolState, PoolSummary};
pub use transfer::{Download, Piece, TransferRange, Upload};
pub use volops::{CreateOptions, ResizeOptions, ResolvedVolume, WipeAlgorithm};
pub use volume::{Building, VolInfo, VolType, Volume};
pub use xml::{PoolDef, PoolType, VolFormat, VolumeDef};
