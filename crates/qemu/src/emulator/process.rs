//! QEMU processes: spawn, watch, signal, reap, and recognise after restart.
//!
//! A pidfd names one process for its whole life, so signals never hit a
//! recycled PID and exit can be awaited for processes that are not our
//! children (adopted after a daemon restart). QEMU runs in its own session
//! so it outlives the daemon (a restarted daemon re-adopts it) and is not
//! killed by a signal aimed at the daemon's process group.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// A process named by a pidfd.
#[derive(Debug)]
pub(crate) struct Process {
    pid: i32,
    fd: AsyncFd<OwnedFd>,
    /// We spawned it, so we must reap it.
    child: bool,
}

impl Process {
    /// Opens a pidfd for `pid`. For a process that is not our child the
    /// caller must verify identity (start time, cmdline) *after* this call:
    /// from then on the pidfd pins the process.
    pub(crate) fn open(pid: i32, child: bool) -> io::Result<Self> {
        if pid <= 1 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad pid"));
        }
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a fresh fd that we now own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: `owned` is a valid pidfd that the AsyncFd owns (and so
        // keeps open) for its whole lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { pid, fd, child })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `sig` to exactly this process (no PID-reuse race). ESRCH (it
    /// is already gone) counts as success.
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: plain syscall; null siginfo is allowed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Non-blocking: has the process exited?
    pub(crate) fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// Resolves when the process has exited, then reaps it if it is ours.
    /// Cancel-safe.
    pub(crate) async fn exited(&self) {
        loop {
            match self.fd.readable().await {
                Ok(mut guard) => {
                    if self.has_exited() {
                        break;
                    }
                    guard.clear_ready();
                }
                // The reactor is gone (runtime shutting down): fall back to
                // polling rather than report a false exit.
                Err(_) => {
                    if self.has_exited() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        self.reap();
    }

    /// Collects our child's exit status so it does not stay a zombie.
    pub(crate) fn reap(&self) {
        if self.child {
            // SAFETY: WNOHANG waitpid on a pid that is our child.
            unsafe {
                let mut status = 0;
                libc::waitpid(self.pid, &mut status, libc::WNOHANG);
            }
        }
    }

    /// SIGTERM, then SIGKILL after `grace` unless it exits first. Returns
    /// once the process is gone (bounded by `grace` + a short SIGKILL wait).
    pub(crate) async fn terminate(
        &self,
        grace: Duration,
        force_after_grace: bool,
    ) -> io::Result<bool> {
        self.signal(libc::SIGTERM)?;
        if tokio::time::timeout(grace, self.exited()).await.is_ok() {
            return Ok(true);
        }
        if !force_after_grace {
            return Ok(false);
        }
        self.signal(libc::SIGKILL)?;
        // SIGKILL cannot be blocked; a process in uninterruptible sleep can
        // still take a moment, so wait a bounded time.
        Ok(tokio::time::timeout(Duration::from_secs(10), self.exited())
            .await
            .is_ok())
    }
}

/// How a QEMU is started: through the exec helper, which follows `plan`
/// (session, private `/dev`, no new privileges) and hands QEMU `inherit`.
pub(crate) struct Launch<'a> {
    /// The exec helper binary.
    pub(crate) helper: &'a Path,
    /// What the helper does before exec; its descriptor numbers are filled
    /// in here, one per `inherit`.
    pub(crate) plan: confine::Plan,
    /// Stay open in QEMU (every other descriptor of the daemon is
    /// close-on-exec): the run lock QEMU holds for its whole life.
    pub(crate) inherit: Vec<BorrowedFd<'a>>,
}

/// How long the helper may take from its start to exec'ing QEMU.
const EXEC_DEADLINE: Duration = Duration::from_secs(10);

/// Spawns `argv[0]` with `argv[1..]` through the exec helper, in a new
/// session, stdin from /dev/null, stdout/stderr appended to `log`. Returns
/// it with a pidfd. `env` is added to the daemon's environment
/// (`qemu:commandline` env).
///
/// The daemon's address space is never forked: the helper is started with
/// `posix_spawn`. When this returns, QEMU has been exec'd (the helper
/// reports a failure before then, and is reaped).
pub(crate) fn spawn(
    argv: &[String],
    env: &[(String, String)],
    log: &Path,
    launch: Launch<'_>,
) -> io::Result<Process> {
    let output = OpenOptions::new().create(true).append(true).open(log)?;
    let mut plan = launch.plan;
    plan.fd_targets = (confine::FIRST_TARGET..)
        .take(launch.inherit.len())
        .collect();
    let pid = confine::parent::spawn(confine::parent::Spawn {
        helper: launch.helper,
        plan: &plan,
        argv,
        env,
        output,
        fds: &launch.inherit,
        deadline: EXEC_DEADLINE,
    })?;
    // The child is ours and unreaped, so the PID cannot have been reused.
    match Process::open(pid, true) {
        Ok(p) => Ok(p),
        Err(e) => {
            // SAFETY: kill + reap our own child so it is not orphaned.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
            Err(e)
        }
    }
}

/// The fields of `/proc/PID/stat` after the command name (which may contain
/// spaces and parentheses, so split at the *last* ')').
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Field 22 (starttime, clock ticks since boot): with the PID it identifies
/// one process instance.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    // Fields after ')' start at field 3, so field 22 is index 19.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// CPU time of the whole process (all its threads), in nanoseconds:
/// virDomainGetInfo's cpuTime.
///
/// Read from the process's CPU clock (`clock_getcpuclockid` +
/// `clock_gettime`): one system call with nanosecond resolution. Reading
/// `/proc/PID/stat` instead (a path walk, an open, the kernel formatting
/// some 50 fields, our parsing) was a third of the daemon's CPU under a
/// `GET_INFO` load, measured with perf; its clock-tick resolution was
/// coarser too. The stat file remains the fallback.
pub fn cpu_time_ns(pid: i32) -> Option<u64> {
    process_clock_ns(pid).or_else(|| stat_cpu_time_ns(pid))
}

/// Linux's largest PID (`PID_MAX_LIMIT`). The CPU clock id encodes the
/// PID shifted left by 3 bits: a larger one, or 0, would name the calling
/// process itself.
const PID_MAX_LIMIT: i32 = 1 << 22;

fn process_clock_ns(pid: i32) -> Option<u64> {
    if pid <= 0 || pid > PID_MAX_LIMIT {
        return None;
    }
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid out-pointer for the call.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// utime + stime of `/proc/PID/stat`, in nanoseconds.
fn stat_cpu_time_ns(pid: i32) -> Option<u64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick = u64::try_from(tick).ok().filter(|t| *t > 0)?;
    Some((utime + stime).saturating_mul(1_000_000_000 / tick))
}

/// Whether `/proc/PID/cmdline` contains `needle` as (part of) an argument.
pub(crate) fn cmdline_contains(pid: i32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .any(|arg| String::from_utf8_lossy(arg).contains(needle))
        })
        .unwrap_or(false)
}

/// PIDs whose command line mentions `needle`, or, for a QEMU that runs as
/// its own user, whose pidfile (named in its environment) does (tests and
/// tools count the QEMUs of a root or uuid with it; the driver itself
/// never needs it).
pub fn pids_with_arg(needle: &str) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            !is_zombie(*pid)
                && (cmdline_contains(*pid, needle) || pidfile_env_contains(*pid, needle))
        })
        .collect()
}

/// Whether the pidfile `/proc/PID/environ` names contains `needle`.
fn pidfile_env_contains(pid: i32, needle: &str) -> bool {
    env_pidfile(pid).is_some_and(|v| v.contains(needle))
}

/// The pidfile the exec helper named in `pid`'s environment: a QEMU run
/// as another user names none on its command line.
pub fn env_pidfile(pid: i32) -> Option<String> {
    let key = format!("{}=", crate::lifecycle::start::PIDFILE_ENV);
    nul_separated(&format!("/proc/{pid}/environ"))?
        .iter()
        .find_map(|e| e.strip_prefix(&key).map(str::to_owned))
}

/// Who a process of this driver's root belongs to (see [`Ownership`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// The QEMU of the domain with this uuid: an argument names its
    /// pidfile or monitor socket (`RUN_DIR/UUID.pid`, `RUN_DIR/UUID.qmp`).
    Domain(uuid::Uuid),
    /// A capability or KVM probe: an argument names a file under the
    /// probe directory.
    Probe,
}

/// Tells the processes of one root from every other process by their
/// arguments, which name files under the root's run and probe
/// directories.
#[derive(Debug, Clone)]
pub(crate) struct Ownership {
    run_prefix: String,
    probe_prefix: String,
}

impl Ownership {
    pub(crate) fn new(run_dir: &Path, probe_dir: &Path) -> Self {
        let prefix = |d: &Path| format!("{}/", d.display());
        Self {
            run_prefix: prefix(run_dir),
            probe_prefix: prefix(probe_dir),
        }
    }

    /// The owner named by a command line, if it is one of ours.
    pub(crate) fn of_args<S: AsRef<str>>(&self, args: &[S]) -> Option<Owner> {
        let mut probe = false;
        for arg in args {
            let arg = arg.as_ref();
            if let Some(uuid) = self.domain_in(arg) {
                return Some(Owner::Domain(uuid));
            }
            probe |= arg.contains(&self.probe_prefix);
        }
        probe.then_some(Owner::Probe)
    }

    /// The uuid of `RUN_DIR/UUID.pid` or `RUN_DIR/UUID.qmp` in `arg`
    /// (alone, or inside an option such as `path=...,server=on`).
    fn domain_in(&self, arg: &str) -> Option<uuid::Uuid> {
        let at = arg.find(&self.run_prefix)?;
        let rest = &arg[at + self.run_prefix.len()..];
        let file = rest.split(',').next()?;
        let stem = file
            .strip_suffix(".pid")
            .or_else(|| file.strip_suffix(".qmp"))?;
        stem.parse().ok()
    }

    /// The owner of live process `pid` (None for a zombie, a process
    /// that is gone, or one that is not ours): by its arguments, or for a
    /// QEMU that runs as its own user (whose arguments name no file of
    /// the root) by the pidfile its environment names.
    pub(crate) fn of_pid(&self, pid: i32) -> Option<Owner> {
        if is_zombie(pid) {
            return None;
        }
        let by_args = self.of_args(&nul_separated(&format!("/proc/{pid}/cmdline"))?);
        by_args.or_else(|| self.of_environ(&nul_separated(&format!("/proc/{pid}/environ"))?))
    }

    /// The owner named by a `PIDFILE_ENV=RUN_DIR/UUID.pid` entry.
    fn of_environ(&self, env: &[String]) -> Option<Owner> {
        let key = format!("{}=", crate::lifecycle::start::PIDFILE_ENV);
        let value = env.iter().find_map(|e| e.strip_prefix(&key))?;
        self.domain_in(value).map(Owner::Domain)
    }

    /// Every live process of this root but the calling one: one pass over
    /// /proc, made once when the driver opens (never per start).
    pub(crate) fn scan(&self) -> Vec<(i32, Owner)> {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid != me)
            .filter_map(|pid| Some((pid, self.of_pid(pid)?)))
            .collect()
    }
}

/// The NUL-separated strings of a /proc file (cmdline, environ).
fn nul_separated(path: &str) -> Option<Vec<String>> {
    let raw = std::fs::read(path).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn is_zombie(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The helper as a test binary finds it, with no confinement.
    fn test_launch() -> Launch<'static> {
        // Built here when missing: `cargo test --lib` builds no binaries.
        static HELPER: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
            let dir = testkit::binaries::target_dir().unwrap();
            testkit::binaries::build_in(&dir, "qemu", confine::HELPER_NAME).unwrap()
        });
        Launch {
            helper: &HELPER,
            plan: confine::Plan::default(),
            inherit: Vec::new(),
        }
    }

    #[tokio::test]
    async fn spawn_signal_exit_reap() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let argv: Vec<String> = ["/bin/sh", "-c", "echo hi; exec sleep 30"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = spawn(&argv, &[], &log, test_launch()).unwrap();
        assert!(start_time(p.pid()).is_some());
        // The shell's own exec of sleep briefly leaves an empty cmdline
        // (the new image's argument area is not mapped yet): poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cmdline_contains(p.pid(), "sleep") {
            assert!(std::time::Instant::now() < deadline, "no 'sleep' cmdline");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!p.has_exited());
        assert!(p.terminate(Duration::from_secs(5), true).await.unwrap());
        assert!(p.has_exited());
        // Reaped: no zombie left, the pid is gone.
        assert!(start_time(p.pid()).is_none());
    }

    #[test]
    fn ownership_reads_the_run_and_probe_directories_from_arguments() {
        let o = Ownership::new(Path::new("/r/run/qemu"), Path::new("/r/run/caps"));
        let u = uuid::Uuid::new_v4();
        let pidfile = format!("/r/run/qemu/{u}.pid");
        let chardev = format!("socket,id=charmonitor,path=/r/run/qemu/{u}.qmp,server=on");
        assert_eq!(
            o.of_args(&["qemu", "-pidfile", &pidfile]),
            Some(Owner::Domain(u))
        );
        assert_eq!(
            o.of_args(&["qemu", "-chardev", &chardev]),
            Some(Owner::Domain(u))
        );
        let probe = "unix:/r/run/caps/probe-1-0.qmp,server=on,wait=off";
        assert_eq!(o.of_args(&["qemu", "-qmp", probe]), Some(Owner::Probe));
        // Another root, a log file, a name that is not a uuid: not ours.
        assert_eq!(
            o.of_args(&["qemu", "-pidfile", &format!("/x/run/qemu/{u}.pid")]),
            None
        );
        assert_eq!(o.of_args(&["tail", "/r/run/qemu/notes.pid"]), None);
        assert_eq!(o.of_args(&["ferrovirtd", "--root", "/r"]), None);
        // A QEMU running as its own user: its environment names its pidfile.
        let env = format!("{}={pidfile}", crate::lifecycle::start::PIDFILE_ENV);
        assert_eq!(
            o.of_environ(&["PATH=/bin".into(), env]),
            Some(Owner::Domain(u))
        );
        assert_eq!(o.of_environ(&[format!("OTHER={pidfile}")]), None);
    }

    #[tokio::test]
    async fn a_scan_finds_a_process_by_its_pidfile_argument() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run/qemu");
        let u = uuid::Uuid::new_v4();
        let pidfile = run.join(format!("{u}.pid"));
        // One process whose arguments name the pidfile, as QEMU's do.
        let argv: Vec<String> = vec![
            "/usr/bin/python3".into(),
            "-c".into(),
            "import time; time.sleep(30)".into(),
            pidfile.display().to_string(),
        ];
        let p = spawn(&argv, &[], &dir.path().join("log"), test_launch()).unwrap();
        let o = Ownership::new(&run, &dir.path().join("run/caps"));
        let found = o.scan();
        let ours: Vec<_> = found
            .iter()
            .filter(|(_, w)| *w == Owner::Domain(u))
            .collect();
        assert_eq!(ours, vec![&(p.pid(), Owner::Domain(u))]);
        assert_eq!(o.of_pid(p.pid()), Some(Owner::Domain(u)));
        assert!(p.terminate(Duration::from_secs(5), true).await.unwrap());
        assert_eq!(o.of_pid(p.pid()), None, "gone");
        assert!(!o.scan().iter().any(|(_, w)| *w == Owner::Domain(u)));
    }

    #[test]
    fn own_stat_parses() {
        let me = std::process::id() as i32;
        assert!(start_time(me).unwrap() > 0);
        assert!(cpu_time_ns(me).is_some());
        assert!(start_time(-5).is_none());
    }

    #[test]
    fn cpu_time_is_the_whole_process_in_nanoseconds() {
        let me = i32::try_from(std::process::id()).expect("pid");
        // Burns 50 ms of this thread's own CPU time.
        let spin = || {
            let thread_ns = || {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `ts` is a valid out-pointer for the call.
                unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
            };
            let t0 = thread_ns();
            while thread_ns() < t0 + 50_000_000 {
                std::hint::black_box(0);
            }
        };
        let before = cpu_time_ns(me).expect("clock");
        // Another thread burns CPU: the process clock counts it.
        std::thread::spawn(spin).join().expect("spinner");
        let after = cpu_time_ns(me).expect("clock");
        assert!(after >= before + 50_000_000, "{before} -> {after}");
        let ticks = stat_cpu_time_ns(me).expect("stat");
        assert!(ticks <= after + 20_000_000, "stat {ticks} vs clock {after}");
        assert_eq!(cpu_time_ns(i32::MAX), None, "not ourselves by overflow");
        assert_eq!(cpu_time_ns(0), None, "not ourselves by pid 0");
    }
}
