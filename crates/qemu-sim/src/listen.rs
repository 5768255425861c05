//! Monitor and control listening sockets.
//!
//! They are created with std after the pidfile is locked (a second
//! instance with the same pidfile stops before it could replace them) and
//! before a daemonized parent exits, and handed to tokio afterwards. An inherited `fd=N` must be
//! a listening UNIX socket: anything else is a manager bug worth a clear
//! startup error rather than a silent hang.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::args::{Config, MonitorSpec};

pub(crate) struct Bound {
    monitors: Vec<UnixListener>,
    control: Option<UnixListener>,
    cleanup: Vec<PathBuf>,
}

/// Binds a UNIX socket, replacing a stale file as QEMU does.
fn bind_path(p: &Path, what: &str) -> Result<UnixListener, String> {
    match std::fs::remove_file(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{what} {}: cannot unlink: {e}", p.display())),
    }
    UnixListener::bind(p).map_err(|e| format!("{what} {}: Failed to bind socket: {e}", p.display()))
}

fn adopt_fd(n: RawFd) -> Result<UnixListener, String> {
    let mut accepting: libc::c_int = 0;
    let mut domain: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the ints; it fails
    // cleanly on a descriptor that is closed or not a socket.
    let ok = unsafe {
        libc::getsockopt(
            n,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        ) == 0
            && libc::getsockopt(
                n,
                libc::SOL_SOCKET,
                libc::SO_DOMAIN,
                (&mut domain as *mut libc::c_int).cast(),
                &mut len,
            ) == 0
    };
    if !ok || accepting == 0 || domain != libc::AF_UNIX {
        return Err(format!("chardev: fd {n} is not a listening UNIX socket"));
    }
    // SAFETY: the descriptor was handed to us on the command line to own,
    // and is a listening UNIX socket (checked above). Close-on-exec keeps it
    // out of migration `exec:` children.
    unsafe {
        libc::fcntl(n, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok(UnixListener::from_raw_fd(n))
    }
}

pub(crate) fn bind_all(cfg: &Config) -> Result<Bound, String> {
    let mut b = Bound {
        monitors: Vec::new(),
        control: None,
        cleanup: Vec::new(),
    };
    for m in &cfg.monitors {
        match m {
            MonitorSpec::Path(p) => {
                b.monitors.push(bind_path(p, "monitor")?);
                b.cleanup.push(p.clone());
            }
            MonitorSpec::Fd(n) => b.monitors.push(adopt_fd(*n)?),
        }
    }
    if let Some(p) = &cfg.sim.control {
        b.control = Some(bind_path(p, "-sim-control")?);
        b.cleanup.push(p.clone());
    }
    Ok(b)
}

type Tokio = (
    Vec<tokio::net::UnixListener>,
    Option<tokio::net::UnixListener>,
    Vec<PathBuf>,
);

impl Bound {
    /// Must run inside the runtime.
    pub(crate) fn into_tokio(self) -> Result<Tokio, String> {
        let conv = |l: UnixListener| {
            l.set_nonblocking(true)
                .and_then(|_| tokio::net::UnixListener::from_std(l))
                .map_err(|e| format!("socket: {e}"))
        };
        let mut mons = Vec::with_capacity(self.monitors.len());
        for l in self.monitors {
            mons.push(conv(l)?);
        }
        let control = match self.control {
            Some(l) => Some(conv(l)?),
            None => None,
        };
        Ok((mons, control, self.cleanup))
    }
}
