//! Waiting for a condition with a deadline.
//!
//! Every wait polls a condition that says the awaited thing happened (a
//! socket accepts, a process is gone, a log line appeared) and gives up at
//! a deadline; the pause between polls only paces the polling.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::Error;

/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(10);

/// Polls `done` until it holds (true) or `timeout` passes (false).
pub fn until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`until`] for async code: the pause yields to the runtime.
pub async fn until_async(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `done` until it holds; fails the calling test, naming `what`,
/// after `timeout`.
#[allow(
    clippy::panic,
    reason = "a test helper: a missed deadline fails the test that waits"
)]
pub fn wait_until(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    if !until(timeout, done) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Polls until `path` exists.
pub fn for_path(path: &Path, timeout: Duration) -> Result<(), Error> {
    if until(timeout, || path.exists()) {
        Ok(())
    } else {
        Err(Error::Timeout {
            what: format!("{} to appear", path.display()),
            after: timeout,
        })
    }
}

/// Waits for `child` to exit; `None` if it still runs at the deadline.
pub fn for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Waits for `child` to exit and kills it (SIGKILL) at the deadline;
/// `None` when it had to be killed.
pub fn for_exit_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let status = for_exit(child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reports_a_condition_that_never_holds() {
        let start = Instant::now();
        assert!(!until(Duration::from_millis(50), || false));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn until_returns_as_soon_as_the_condition_holds() {
        let mut polls = 0;
        assert!(until(Duration::from_secs(10), || {
            polls += 1;
            polls == 3
        }));
        assert_eq!(polls, 3);
    }

    #[test]
    fn for_exit_or_kill_kills_a_child_that_outlives_the_deadline() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(for_exit_or_kill(&mut child, Duration::from_millis(50)).is_none());
        assert!(child.try_wait().unwrap().is_some(), "killed and reaped");
    }
}
