//! Finding processes by an argument and killing them.
//!
//! QEMUs (and simulators) outlive the daemon that started them by design,
//! so a test or a bench run cleans up by pid: every process whose command
//! line names its root, a domain's uuid, or a run tag.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Error, wait};

/// Live (non-zombie) pids whose command line has an argument containing
/// `needle`: the driver's own lookup, so a harness sees processes the way
/// the daemon's re-adoption does. Never this process.
pub fn with_arg(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    qemu::process::pids_with_arg(needle)
        .into_iter()
        .filter_map(|pid| u32::try_from(pid).ok())
        .filter(|pid| *pid != me)
        .collect()
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    kill(Pid::from_raw(raw), signal)
}

/// SIGKILLs every process whose command line mentions `needle` and waits
/// (up to `timeout`) until none is left; returns how many were killed.
pub fn kill_with_arg(needle: &str, timeout: Duration) -> Result<usize, Error> {
    let pids = with_arg(needle);
    for pid in &pids {
        // Gone already is fine: that is the goal.
        let _ = signal(*pid, Signal::SIGKILL);
    }
    if pids.is_empty() || wait::until(timeout, || with_arg(needle).is_empty()) {
        Ok(pids.len())
    } else {
        Err(Error::Timeout {
            what: format!("the processes mentioning {needle} to exit after SIGKILL"),
            after: timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_with_arg_leaves_no_matching_process() {
        let tag = format!("testkit-kill-{}", std::process::id());
        // A shell blocked reading its stdin: no child of its own.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line", &tag])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(wait::until(Duration::from_secs(10), || !with_arg(&tag).is_empty()));
        let killed = kill_with_arg(&tag, Duration::from_secs(10));
        // Our own child stays a zombie until reaped: reap it, then check.
        let status = child.wait().unwrap();
        assert_eq!(killed.unwrap(), 1);
        assert_eq!(status.code(), None, "ended by a signal");
        assert!(with_arg(&tag).is_empty());
    }
}
