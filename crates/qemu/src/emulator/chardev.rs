//! Opening the host side of a guest's character device for a console
//! session: the slave of QEMU's pseudo-terminal, put in raw mode as
//! libvirt does, or a connection to the UNIX socket QEMU listens on.
//!
//! A pty is also locked the way libvirt (and screen, minicom, cu) lock a
//! tty: a UUCP lock file `LCK..pts_N` in the lock directory holding the
//! owner's pid. Another live owner refuses the open; a dead one's file is
//! stale and replaced. Where the directory cannot be written (not root)
//! the pty opens unlocked, and the session cannot claim to be safe.

use std::io::{self, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::termios;

use crate::object::def::ChardevEndpoint;
use crate::{Error, Result};

/// Where tty lock files live (libvirt's default on Linux).
pub(crate) const LOCK_DIR: &str = "/var/lock";

/// An open character device of a console session.
#[derive(Debug)]
pub struct OpenChardev {
    /// Non-blocking; a pty in raw mode.
    pub fd: OwnedFd,
    /// The tty's lock file, held while this lives; `None` for a socket
    /// or where no lock could be taken.
    pub lock: Option<TtyLock>,
}

/// A UUCP lock file of a tty, removed on drop.
#[derive(Debug)]
pub struct TtyLock {
    path: PathBuf,
}

impl Drop for TtyLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens `endpoint` non-blocking, ready for a stream pump.
pub(crate) fn open(endpoint: &ChardevEndpoint, lock_dir: &Path) -> Result<OpenChardev> {
    match endpoint {
        ChardevEndpoint::Pty(path) => {
            let lock = lock_tty(lock_dir, path)?;
            let fd = open_pty(path).map_err(|e| cannot_open(path, e))?;
            Ok(OpenChardev { fd, lock })
        }
        ChardevEndpoint::Unix(path) => {
            let s = UnixStream::connect(path).map_err(|e| cannot_open(path, e))?;
            s.set_nonblocking(true).map_err(|e| cannot_open(path, e))?;
            Ok(OpenChardev {
                fd: s.into(),
                lock: None,
            })
        }
    }
}

fn cannot_open(path: &Path, e: io::Error) -> Error {
    Error::io(
        format!("cannot open character device '{}'", path.display()),
        e,
    )
}

fn open_pty(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let raw = nix::fcntl::open(path, flags, Mode::empty())?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut t = termios::tcgetattr(fd.as_fd())?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(fd.as_fd(), termios::SetArg::TCSANOW, &t)?;
    Ok(fd)
}

/// `LCK..pts_3` for `/dev/pts/3`.
fn lock_path(dir: &Path, tty: &Path) -> PathBuf {
    let s = tty.to_string_lossy();
    let name = s.strip_prefix("/dev/").unwrap_or(&s).replace('/', "_");
    dir.join(format!("LCK..{name}"))
}

/// Takes the tty's lock file; `None` where the directory cannot be
/// written. A file of a live process is refused with libvirt's error.
fn lock_tty(dir: &Path, tty: &Path) -> Result<Option<TtyLock>> {
    let path = lock_path(dir, tty);
    for _ in 0..2 {
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path);
        match created {
            Ok(mut f) => {
                let _ = writeln!(f, "{:>10}", std::process::id());
                return Ok(Some(TtyLock { path }));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if let Some(pid) = live_owner(&path) {
                    return Err(Error::InUse(format!(
                        "Requested device '{}' is locked by lock file '{}' held by process {pid}",
                        tty.display(),
                        path.display()
                    )));
                }
                // Stale: its owner is gone (a killed daemon, say).
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// The pid in a lock file if that process lives (and is not us: our own
/// sessions are kept apart by the daemon, so one of ours is stale).
fn live_owner(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    if pid <= 0 || pid.unsigned_abs() == std::process::id() {
        return None;
    }
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
        .map_or_else(|e| e == nix::errno::Errno::EPERM, |()| true);
    alive.then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_libvirts_and_stale_ones_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let tty = Path::new("/dev/pts/42");
        assert_eq!(lock_path(dir.path(), tty), dir.path().join("LCK..pts_42"));
        let lock = lock_tty(dir.path(), tty).unwrap().expect("writable dir");
        let text = std::fs::read_to_string(dir.path().join("LCK..pts_42")).unwrap();
        assert_eq!(text, format!("{:>10}\n", std::process::id()));
        drop(lock);
        assert!(!dir.path().join("LCK..pts_42").exists());
        // A live process's lock (our parent's pid is alive) refuses.
        let parent = std::os::unix::process::parent_id();
        std::fs::write(dir.path().join("LCK..pts_42"), format!("{parent:>10}\n")).unwrap();
        let e = lock_tty(dir.path(), tty).unwrap_err();
        assert!(
            e.to_string().contains(&format!("held by process {parent}")),
            "{e}"
        );
        // A dead process's lock is stale.
        std::fs::write(dir.path().join("LCK..pts_42"), "  999999999\n").unwrap();
        assert!(lock_tty(dir.path(), tty).unwrap().is_some());
        // No lock directory: open unlocked.
        assert!(
            lock_tty(&dir.path().join("missing"), tty)
                .unwrap()
                .is_none()
        );
    }
}
