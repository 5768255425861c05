//! `-daemonize` and `-pidfile`.
//!
//! A manager starting QEMU with `-daemonize` treats the parent's exit as
//! "started": it then reads the pidfile and connects to the monitor. So the
//! parent exits only when the child reports readiness over a pipe, after the
//! monitor sockets listen and the pidfile is written; if the child fails
//! first, the parent exits 1. Must run before any thread or runtime exists.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

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

/// Writes the pidfile atomically (temp file + rename) so a reader never
/// sees it empty or half-written.
pub(crate) fn write_pidfile(path: &Path) -> Result<(), String> {
    let pid = std::process::id();
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{pid}.tmp"));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{pid}\n").as_bytes())?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot create PID file: {}: {e}", path.display())
    })
}
