//! Processes we started and must find again: a scan of `/proc` for the
//! ones whose command line names one of our files, and a pidfd to learn
//! when one exits without being its parent (an adopted dnsmasq is not our
//! child).

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::{Error, Result};

/// The arguments of process `pid`, or `None` when it is gone.
pub(crate) fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether `args` are `BIN ... ARG ...` for a binary named like `bin`.
fn matches(args: &[String], bin: &Path, arg: &str) -> bool {
    let name = bin.file_name().map(|n| n.to_string_lossy().into_owned());
    let first = args.first().and_then(|a| {
        Path::new(a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    first.is_some() && first == name && args.iter().any(|a| a == arg)
}

/// Whether process `pid` runs `bin` with the argument `arg`.
pub(crate) fn is_ours(pid: i32, bin: &Path, arg: &str) -> bool {
    cmdline(pid).is_some_and(|a| matches(&a, bin, arg))
}

/// Every live process running `bin` with the argument `arg` (zombies
/// excluded: they have no command line).
pub(crate) fn find(bin: &Path, arg: &str) -> Vec<i32> {
    scan(|args| matches(args, bin, arg))
}

/// Every live process running `bin` with an argument starting with
/// `prefix`.
pub(crate) fn find_prefix(bin: &Path, prefix: &str) -> Vec<i32> {
    scan(|args| {
        args.iter()
            .find(|a| a.starts_with(prefix))
            .is_some_and(|a| matches(args, bin, a))
    })
}

fn scan(pick: impl Fn(&[String]) -> bool) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| cmdline(*pid).is_some_and(|a| pick(&a)))
        .collect();
    out.sort_unstable();
    out
}

/// A handle that becomes readable when a process exits.
pub(crate) struct PidFd {
    fd: AsyncFd<OwnedFd>,
}

impl PidFd {
    /// Opens a pidfd for `pid`; fails when the process is gone.
    pub(crate) fn open(pid: i32) -> Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new file
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Error::io(
                format!("cannot watch process {pid}"),
                std::io::Error::last_os_error(),
            ));
        }
        let raw = i32::try_from(fd).map_err(|_| Error::Helper("pidfd out of range".into()))?;
        // SAFETY: `raw` is a descriptor the kernel just returned to us and
        // nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `owned` is an open pidfd that the AsyncFd owns from here
        // on, so it stays open and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(|e| Error::Helper(format!("cannot register pidfd: {e}")))?;
        Ok(Self { fd })
    }

    /// Resolves when the process has exited.
    pub(crate) async fn exited(&self) {
        // A pidfd only ever becomes readable at exit; an error here means
        // the descriptor is unusable, which we treat the same way.
        let _ = self.fd.readable().await;
    }
}

/// SIGTERM, then SIGKILL after `grace`; waits until the process is gone
/// (at most `grace` twice over).
pub(crate) async fn terminate(pid: i32, grace: Duration) {
    let Ok(watch) = PidFd::open(pid) else {
        return; // already gone
    };
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    if tokio::time::timeout(grace, watch.exited()).await.is_ok() {
        return;
    }
    tracing::warn!(pid, "process ignored SIGTERM; killing it");
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = tokio::time::timeout(grace, watch.exited()).await;
}

/// Sends SIGHUP (reload) to `pid`.
pub(crate) fn hangup(pid: i32) -> Result<()> {
    kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| {
        Error::io(
            format!("cannot signal process {pid}"),
            std::io::Error::from(e),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_watches_and_terminates() {
        let marker = format!("ferrovirt-proc-test-{}", std::process::id());
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "trap 'kill $!; exit' TERM; sleep 30 & wait", &marker])
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while find(Path::new("/bin/sh"), &marker) != vec![pid] {
            assert!(std::time::Instant::now() < deadline, "child never appeared");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(is_ours(pid, Path::new("/usr/bin/sh"), &marker));
        assert!(!is_ours(pid, Path::new("/usr/sbin/dnsmasq"), &marker));
        let reaper = std::thread::spawn(move || child.wait());
        terminate(pid, Duration::from_secs(5)).await;
        reaper.join().unwrap().unwrap();
        assert!(find(Path::new("/bin/sh"), &marker).is_empty());
    }
}
