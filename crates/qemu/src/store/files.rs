//! Crash-safe files: definitions, autostart markers and status records.
//!
//! Every write is atomic (temp file in the same directory, write, fsync,
//! rename, fsync the directory) so that a daemon killed at any instant
//! leaves either the old or the new file, never a torn one, and a
//! restarted daemon finds every definition and running VM. The `durable`
//! crate does it for every driver; this is the driver's name for it.

pub(crate) use durable::{
    atomic_write, list_with_ext, read_bounded, remove, sweep_temp_files, sync_dir, temp_sibling,
};
