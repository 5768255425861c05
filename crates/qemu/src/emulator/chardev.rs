//! Opening the host side of a guest's character device for a console
//! session: the slave of QEMU's pseudo-terminal, put in raw mode as
//! libvirt does, or a connection to the UNIX socket QEMU listens on.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::termios;

use crate::object::def::ChardevEndpoint;

/// Opens `endpoint` non-blocking, ready for a stream pump.
pub(crate) fn open(endpoint: &ChardevEndpoint) -> io::Result<OwnedFd> {
    match endpoint {
        ChardevEndpoint::Pty(path) => open_pty(path),
        ChardevEndpoint::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        }
    }
}

fn open_pty(path: &std::path::Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let raw = nix::fcntl::open(path, flags, Mode::empty())?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let mut t = termios::tcgetattr(fd.as_fd())?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(fd.as_fd(), termios::SetArg::TCSANOW, &t)?;
    Ok(fd)
}
