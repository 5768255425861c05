//! `-daemonize` and `-pidfile`.
//!
//! A manager starting QEMU with `-daemonize` treats the parent's exit as
//! "started": it then reads the pidfile and connects to the monitor. So the
//! parent exits only when the child reports readiness over a pipe, after the
//! pidfile is locked and the monitor sockets listen; if the child fails
//! first, the parent exits 1. Must run before any thread or runtime exists.
//!
//! The pidfile is locked as QEMU locks it: a POSIX write lock taken before
//! any socket exists and held until the process exits.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{FcntlArg, fcntl};
use nix::unistd::{ForkResult, fork, pipe, setsid};

/// The child's end of the readiness pipe.
pub(crate) struct Ready(Option<std::fs::File>);

impl Ready {
    /// Not daemonized: nothing to report.
    pub(crate) fn none() -> Ready {
        Ready(None)
    }

    /// Tells the waiting parent the child is ready, and detaches from the
    /// terminal like QEMU: stdio goes to /dev/null, cwd to `/`.
    pub(crate) fn done(mut self) {
        let Some(mut w) = self.0.take() else { return };
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for fd in 0..=2 {
                // SAFETY: dup2 onto the standard descriptors we own.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        let _ = std::env::set_current_dir("/");
        let _ = w.write_all(&[0]);
    }
}

/// Forks. Returns in the child (new session) only; the parent waits for
/// [`Ready::done`] and exits 0, or exits 1 if the child dies first.
pub(crate) fn daemonize() -> Result<Ready, String> {
    let (r, w): (OwnedFd, OwnedFd) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: called before any other thread exists.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut r = std::fs::File::from(r);
            let mut b = [1u8; 1];
            let code = match r.read(&mut b) {
                Ok(1) if b[0] == 0 => 0,
                _ => 1,
            };
            std::process::exit(code);
        }
        ForkResult::Child => {
            drop(r);
            setsid().map_err(|e| format!("setsid: {e}"))?;
            Ok(Ready(Some(std::fs::File::from(w))))
        }
    }
}

/// Creates and write-locks the pidfile as QEMU does, and writes our pid
/// into it. The lock is held as long as the returned file is open, which
/// the caller keeps for the life of the process: a manager tests it to
/// know, without a scan, that this instance still runs (and which pid it
/// has). A second instance with the same pidfile fails here, before it
/// creates any socket, so it can never replace the first one's monitor.
pub(crate) fn lock_pidfile(path: &Path) -> Result<std::fs::File, String> {
    let err = |e: String| format!("cannot create PID file: {e}");
    let file = loop {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(format!("Cannot open pid file: {e}")))?;
        let locked_inode = file
            .metadata()
            .map_err(|e| err(format!("Cannot stat file: {e}")))?
            .ino();
        let lock = libc::flock {
            l_type: libc::F_WRLCK as i16,
            l_whence: libc::SEEK_SET as i16,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&lock))
            .map_err(|e| err(format!("Cannot lock pid file: {}", e.desc())))?;
        // The path may have been unlinked or replaced by an instance that
        // exited meanwhile: the lock must be on the file the path names.
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == locked_inode => break file,
            _ => continue,
        }
    };
    file.set_len(0)
        .and_then(|()| (&file).write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(|e| err(format!("Failed to write pid file: {e}")))?;
    Ok(file)
}
