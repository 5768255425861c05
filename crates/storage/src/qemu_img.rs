//! `qemu-img` as a supervised child: every run has a stall deadline (no
//! output and no growth of the file it writes for that long means it is
//! stuck, and it is killed), its output is read into a bounded buffer, and
//! dropping the future kills it, so nothing outlives the operation that
//! started it. A daemon killed outright takes its qemu-img runs with it
//! (the parent-death signal), so none goes on writing a partial volume
//! that the next start sweeps away.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, ChildStdout, Command};

use crate::{Error, Result};

/// Most bytes of qemu-img's error output kept for the error message.
const STDERR_KEEP: usize = 4096;

/// How to run qemu-img.
#[derive(Debug, Clone)]
pub(crate) struct QemuImg {
    pub(crate) binary: PathBuf,
    /// A run that shows no progress for this long is killed.
    pub(crate) stall: Duration,
}

/// Progress of a run, in hundredths of a percent, readable while it runs.
#[derive(Debug, Default, Clone)]
pub struct Progress(Arc<AtomicU32>);

impl Progress {
    /// Hundredths of a percent done (0..=10000).
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, v: u32) {
        self.0.store(v.min(10_000), Ordering::Relaxed);
    }
}

/// In the forked child: asks for SIGKILL when the daemon dies. The signal
/// is tied to the thread that forked, a tokio worker that lives as long as
/// the runtime. A daemon that died between fork and prctl is caught by the
/// parent check that follows: the child is then already orphaned.
fn die_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) takes no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

impl QemuImg {
    /// Runs `qemu-img ARGS`. `grows` is a file whose size counts as
    /// progress (the image being written); `progress` receives `-p`
    /// output when the command prints it.
    pub(crate) async fn run(
        &self,
        args: &[OsString],
        grows: Option<&Path>,
        progress: Option<&Progress>,
    ) -> Result<()> {
        let what = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let parent = std::process::id();
        // SAFETY: the hook runs in the forked child before exec and calls
        // only prctl and getppid, which are async-signal-safe, and
        // allocates nothing.
        unsafe {
            cmd.pre_exec(move || die_with_parent(parent));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("cannot run {}", self.binary.display()), e))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::Helper("qemu-img has no output pipes".into()));
        };
        let err_tail = tokio::spawn(read_tail(stderr));
        let watched = self.watch(stdout, grows, progress);
        let status = tokio::select! {
            st = child.wait() => st.map_err(|e| Error::io("cannot wait for qemu-img", e))?,
            stalled = watched => {
                let _ = child.kill().await;
                return Err(Error::Helper(format!(
                    "qemu-img {what} made no progress for {:?} and was killed",
                    stalled
                )));
            }
        };
        let tail = err_tail.await.unwrap_or_default();
        if status.success() {
            if let Some(p) = progress {
                p.set(10_000);
            }
            Ok(())
        } else {
            Err(Error::Helper(format!(
                "qemu-img {what} failed ({status}): {}",
                tail.trim()
            )))
        }
    }

    /// Resolves (with the stall time) once the run has shown no progress
    /// for `self.stall`; never resolves while it progresses. Progress is
    /// output on stdout or growth of `grows`.
    async fn watch(
        &self,
        mut stdout: ChildStdout,
        grows: Option<&Path>,
        progress: Option<&Progress>,
    ) -> Duration {
        let mut last = Instant::now();
        let mut last_size = grows.map(allocated).unwrap_or(0);
        let mut buf = [0u8; 512];
        let mut open = true;
        let tick = (self.stall / 4).max(Duration::from_millis(50));
        loop {
            let read = async {
                if open {
                    stdout.read(&mut buf).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                r = read => match r {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => {
                        last = Instant::now();
                        if let (Some(p), Some(v)) = (progress, parse_progress(&buf[..n])) {
                            p.set(v);
                        }
                    }
                },
                () = tokio::time::sleep(tick) => {
                    let size = grows.map(allocated).unwrap_or(0);
                    if size != last_size {
                        last_size = size;
                        last = Instant::now();
                    }
                    if last.elapsed() >= self.stall {
                        return last.elapsed();
                    }
                }
            }
        }
    }
}

/// Bytes allocated to `path` (0 when it does not exist yet).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks())
}

/// The last `(NN.NN/100%)` in a chunk of `qemu-img -p` output.
fn parse_progress(chunk: &[u8]) -> Option<u32> {
    let s = String::from_utf8_lossy(chunk);
    let start = s.rfind('(')?;
    let rest = &s[start + 1..];
    let num = rest.split('/').next()?.trim();
    let v: f64 = num.parse().ok()?;
    // Bounded by the `min` in `Progress::set`.
    Some((v * 100.0).round().clamp(0.0, 10_000.0) as u32)
}

/// The last `STDERR_KEEP` bytes of a stream.
async fn read_tail(mut s: ChildStderr) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > STDERR_KEEP {
            let cut = tail.len() - STDERR_KEEP;
            tail.drain(..cut);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(
            parse_progress(b"    (0.00/100%)\r    (12.34/100%)\r"),
            Some(1234)
        );
        assert_eq!(parse_progress(b"    (100.00/100%)\r"), Some(10_000));
        assert_eq!(parse_progress(b"nothing"), None);
        assert_eq!(parse_progress(b"(x/100%)"), None);
    }

    #[tokio::test]
    async fn a_stalled_helper_is_killed() {
        // `sleep` stands in for a qemu-img that hangs: no output, no growth.
        let img = QemuImg {
            binary: PathBuf::from("/bin/sleep"),
            stall: Duration::from_millis(300),
        };
        let t = Instant::now();
        let e = img.run(&["30".into()], None, None).await.unwrap_err();
        assert!(e.to_string().contains("made no progress"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn failure_carries_stderr() {
        let img = QemuImg {
            binary: PathBuf::from("/bin/sh"),
            stall: Duration::from_secs(10),
        };
        let e = img
            .run(
                &["-c".into(), "echo broken image >&2; exit 3".into()],
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("broken image"), "{e}");
    }
}
