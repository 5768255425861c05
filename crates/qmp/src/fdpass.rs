//! Passing a file descriptor with a command (SCM_RIGHTS).
//!
//! QEMU's `getfd`/`add-fd` take the descriptor from the ancillary data of
//! the bytes carrying the command, so the descriptor must travel with the
//! command's first bytes, in one `sendmsg`. tokio cannot send ancillary
//! data, so this is the one raw syscall of the crate.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};

/// Sends (a prefix of) `data` on the non-blocking UNIX socket `sock` with
/// `fd` attached. Returns the number of bytes sent; the kernel attaches the
/// descriptor to those bytes, so the caller writes the rest normally.
pub(crate) fn send_with_fd(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<usize> {
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(data)];
    // MSG_NOSIGNAL: a dead QEMU must give EPIPE, not kill the daemon.
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(io::Error::from)
}
