//! Whether a QEMU lives for a domain, answered in O(1) from two locks,
//! never from a scan of /proc:
//!
//! - the **run lock** (`run/qemu/UUID.lock`): an open-file-description
//!   write lock the driver takes before it spawns QEMU, on a descriptor the
//!   child inherits. From the fork on, the lock is held by the domain's
//!   QEMU (the driver closes its own copy once QEMU runs), so it covers the
//!   instants before QEMU itself has locked anything, and it is released
//!   by the kernel when the last process holding it exits, however it
//!   exits.
//! - **QEMU's pidfile lock** (`run/qemu/UUID.pid`): QEMU write-locks its
//!   pidfile early in its start and holds the lock until it exits (qemu-sim
//!   does the same). A POSIX lock names its holder, so it tells *which*
//!   process runs, for the error a refused start reports.
//!
//! A run lock that cannot be taken, or a pidfile someone holds, means a
//! QEMU of this domain is alive: a start then fails naming it rather than
//! run a second one, and re-adoption kills or adopts it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

/// The run lock, held by the driver from before the spawn until QEMU runs
/// (QEMU holds it from the fork on through the inherited descriptor).
#[derive(Debug)]
pub(crate) struct RunLock {
    file: File,
}

impl RunLock {
    /// Takes the run lock at `path` (creating the file); `None` when a
    /// process (a QEMU of an earlier start) holds it.
    pub(crate) fn acquire(path: &Path) -> io::Result<Option<RunLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let lock = whole_file(libc::F_WRLCK);
        match fcntl(file.as_raw_fd(), FcntlArg::F_OFD_SETLK(&lock)) {
            Ok(_) => Ok(Some(RunLock { file })),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The descriptor QEMU inherits (close-on-exec in the driver, cleared
    /// in the child only).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Whether some process holds the run lock at `path` (a missing file is
/// held by nobody).
pub(crate) fn run_lock_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut probe = whole_file(libc::F_WRLCK);
    match fcntl(file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) => i32::from(probe.l_type) != libc::F_UNLCK,
        // Cannot tell: assume alive, the safe answer for a start.
        Err(_) => true,
    }
}

/// The pid of the process holding QEMU's pidfile lock at `path`, if any.
pub(crate) fn pidfile_holder(path: &Path) -> Option<i32> {
    let file = File::open(path).ok()?;
    // A read lock conflicts with QEMU's write lock, and testing for it
    // needs only read access.
    let mut probe = whole_file(libc::F_RDLCK);
    fcntl(file.as_raw_fd(), FcntlArg::F_GETLK(&mut probe)).ok()?;
    (i32::from(probe.l_type) != libc::F_UNLCK).then_some(probe.l_pid)
}

/// A lock of type `ty` over the whole file.
fn whole_file(ty: i32) -> libc::flock {
    libc::flock {
        // F_RDLCK, F_WRLCK and F_UNLCK are 0, 1 and 2.
        l_type: i16::try_from(ty).unwrap_or(0),
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lock_is_exclusive_and_released_with_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.lock");
        assert!(!run_lock_held(&path), "no file: nobody holds it");
        let lock = RunLock::acquire(&path).unwrap().expect("free");
        assert!(run_lock_held(&path));
        assert!(RunLock::acquire(&path).unwrap().is_none(), "held");
        drop(lock);
        // Released when the last reference to the description goes: a
        // process another test thread forks at that instant holds a copy
        // until its exec closes it (close-on-exec), so poll briefly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while run_lock_held(&path) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!run_lock_held(&path));
        assert!(RunLock::acquire(&path).unwrap().is_some(), "free again");
    }

    #[test]
    fn pidfile_holder_names_the_process_holding_a_posix_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.pid");
        assert_eq!(pidfile_holder(&path), None, "no file");
        std::fs::write(&path, b"1\n").unwrap();
        assert_eq!(pidfile_holder(&path), None, "nobody holds it");
        // flock(1) takes flock locks; a POSIX lock is what QEMU takes, so
        // hold one from a child that locks with fcntl through python.
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(
                "import fcntl,sys,time\n\
                 f=open(sys.argv[1],'r+')\n\
                 fcntl.lockf(f,fcntl.LOCK_EX)\n\
                 print('locked',flush=True)\n\
                 time.sleep(60)",
            )
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        io::BufRead::read_line(&mut io::BufReader::new(out), &mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        let pid = i32::try_from(child.id()).unwrap();
        assert_eq!(pidfile_holder(&path), Some(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(pidfile_holder(&path), None, "released at exit");
    }
}
