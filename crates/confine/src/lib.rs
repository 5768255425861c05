//! How QEMU is started: through a small exec helper, so that the daemon
//! never forks its own address space.
//!
//! The daemon starts the helper with `posix_spawn` (the standard library
//! takes that path because no `pre_exec` hook is set), which costs the same
//! at 10 VMs as at 10,000: no page tables are copied. The helper is a fresh,
//! single-threaded process, so it may do what a `pre_exec` hook could not
//! do safely: it takes the descriptors QEMU must inherit from a control
//! socket, starts a session, writes and locks QEMU's pidfile, builds a
//! private mount namespace with a minimal `/dev`, switches to QEMU's own
//! user and groups, forbids new privileges, and execs QEMU. It reports a
//! failure on the control socket; the socket closing on exec means success.
//!
//! [`Plan`] is the policy as a plain value (what the helper is asked to
//! do); [`parent`] is the daemon's side; [`child`] the helper's.

pub mod child;
pub mod parent;
mod plan;

pub use plan::{Creds, FIRST_TARGET, MAX_FDS, MAX_GROUPS, Plan, PlanError, TARGET_LIMIT};

/// The helper's file name; it is installed beside the daemon.
pub const HELPER_NAME: &str = "ferrovirt-exec";

/// Where the helper is looked for by default: beside the running program,
/// or one directory up when that is a test binary in cargo's `deps/`.
pub fn default_helper() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    let beside = dir.join(HELPER_NAME);
    match dir.parent() {
        Some(up) if !beside.exists() && dir.ends_with("deps") => up.join(HELPER_NAME),
        _ => beside,
    }
}
