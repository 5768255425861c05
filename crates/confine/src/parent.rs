//! The daemon's side: start the helper with `posix_spawn`, hand it the
//! descriptors, and learn whether the program was exec'd.

use std::fs::File;
use std::io::{self, IoSlice, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::Plan;

/// The longest failure report read from the helper.
const MAX_REPORT: u64 = 4096;

/// One program to start through the helper.
pub struct Spawn<'a> {
    /// The helper binary.
    pub helper: &'a Path,
    /// What the helper does; its `fd_targets` name where each of `fds`
    /// lands, in order.
    pub plan: &'a Plan,
    /// The program and its arguments.
    pub argv: &'a [String],
    /// Added to the daemon's environment.
    pub env: &'a [(String, String)],
    /// The program's stdout and stderr (stdin is /dev/null).
    pub output: File,
    /// Descriptors the program inherits.
    pub fds: &'a [BorrowedFd<'a>],
    /// How long the helper may take to exec the program.
    pub deadline: Duration,
}

/// Starts `s.argv` through the helper and returns its pid once the program
/// has been exec'd (the process is the caller's unreaped child). A helper
/// that fails reports why; it is killed and reaped before the error
/// returns, as is one that does not finish within the deadline.
pub fn spawn(s: Spawn<'_>) -> io::Result<i32> {
    if s.fds.len() != s.plan.fd_targets.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "one descriptor number per handed-over descriptor",
        ));
    }
    let (ours, theirs) = UnixStream::pair()?;
    let err = s.output.try_clone()?;
    let child = Command::new(s.helper)
        .args(s.plan.to_args())
        .args(s.argv)
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(s.output))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start the exec helper {}: {e}", s.helper.display()),
            )
        })?;
    let pid = i32::try_from(child.id())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pid out of range"))?;
    // The Command (and with it our copy of the helper's end) is gone, so
    // the helper's exec closing its end is the socket's end-of-file.
    match hand_over(&ours, s.fds).and_then(|()| outcome(ours, s.deadline)) {
        Ok(()) => Ok(pid),
        Err(e) => {
            kill_and_reap(pid);
            Err(e)
        }
    }
}

/// Sends the descriptors with one byte of data, in the order of the plan.
fn hand_over(sock: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&[0])],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

/// End-of-file with nothing read: the program was exec'd. Anything else is
/// the helper's report of what failed.
fn outcome(sock: UnixStream, deadline: Duration) -> io::Result<()> {
    sock.set_read_timeout(Some(deadline))?;
    let mut report = String::new();
    match sock.take(MAX_REPORT).read_to_string(&mut report) {
        Ok(0) => Ok(()),
        Ok(_) => Err(io::Error::other(report.trim().to_owned())),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the exec helper did not start the program within {deadline:?}"),
            ))
        }
        Err(e) => Err(e),
    }
}

fn kill_and_reap(pid: i32) {
    // SAFETY: `pid` is our own unreaped child, so it cannot have been
    // reused; kill and a blocking waitpid touch only it.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}
