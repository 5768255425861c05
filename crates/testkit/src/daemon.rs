//! A `ferrovirtd` process on a root of its own.
//!
//! Layout under the root, as the daemon makes it: `run/libvirt-sock` and
//! `run/libvirt-sock-ro` (its sockets); the harness adds `ferrovirtd.toml`
//! (the config it was given), `ferrovirtd.log` (its stderr, appended
//! across restarts) and `qemu-files/` (see [`Ferrovirtd::qemu_dir`]).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{Error, processes, wait};

/// How long a daemon may take to listen after it was spawned.
pub const STARTUP: Duration = Duration::from_secs(60);
/// How long processes killed at clean-up may take to disappear.
const CLEANUP: Duration = Duration::from_secs(10);

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The `ferrovirtd` binary.
    pub binary: PathBuf,
    /// Its `--root`; created if missing.
    pub root: PathBuf,
    /// TOML written to `ROOT/ferrovirtd.toml` and passed with `--config`.
    pub config: String,
    /// Its `--log` filter.
    pub log_filter: String,
    /// A network namespace (made by the test, `ip netns add`) to run the
    /// daemon in. Without one the daemon runs in the host's namespace and
    /// is configured to leave the host's networking alone: no default
    /// network and no network autostart.
    pub netns: Option<String>,
}

/// What every daemon outside a test's network namespace is told, so that
/// no test ever changes the host's own networking.
const NO_HOST_NETWORKING: &str = "default_network = false\nnetwork_autostart = false\n";

/// A running (or stopped) daemon. Dropping it SIGKILLs the daemon and
/// every process whose command line names its root (the QEMUs and
/// simulators it started, which outlive it by design), so a failed test
/// or bench step leaves nothing behind.
#[derive(Debug)]
pub struct Ferrovirtd {
    spec: Spec,
    child: Option<Child>,
}

impl Ferrovirtd {
    /// Writes the config, spawns the daemon and waits until its socket
    /// accepts connections.
    pub fn start(spec: Spec) -> Result<Ferrovirtd, Error> {
        // The daemon starts QEMU through the exec helper installed beside it.
        if let Some(dir) = spec
            .binary
            .parent()
            .filter(|_| spec.binary.ends_with("ferrovirtd"))
        {
            crate::binaries::build_in(dir, "qemu", confine::HELPER_NAME)?;
        }
        std::fs::create_dir_all(&spec.root)
            .map_err(Error::io(format!("create {}", spec.root.display())))?;
        traversable(&spec.root)?;
        crate::account::qemu_user_dir(&qemu_dir(&spec.root))?;
        let config = config_path(&spec.root);
        let text = match spec.netns {
            Some(_) => spec.config.clone(),
            None => format!("{NO_HOST_NETWORKING}{}", spec.config),
        };
        std::fs::write(&config, text).map_err(Error::io(format!("write {}", config.display())))?;
        let mut daemon = Ferrovirtd { spec, child: None };
        daemon.spawn()?;
        Ok(daemon)
    }

    /// Starts the daemon process on the same root (SIGKILLing one still
    /// running) and waits until its socket accepts connections.
    pub fn spawn(&mut self) -> Result<(), Error> {
        self.spawn_with_env(&[])
    }

    /// [`Ferrovirtd::spawn`] with extra environment variables for this
    /// daemon process only (a later `spawn` starts without them).
    pub fn spawn_with_env(&mut self, env: &[(&str, &std::ffi::OsStr)]) -> Result<(), Error> {
        self.kill();
        // A child the killed daemon was forking (a QEMU, qemu-img) holds a
        // copy of its listening sockets until it execs: a connection to the
        // old path would then be accepted into a backlog nobody serves.
        // Without the files, only the new daemon's sockets answer.
        for stale in [self.socket(), self.ro_socket()] {
            let _ = std::fs::remove_file(stale);
        }
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io(format!("open {}", log_path.display())))?;
        let mut cmd = match &self.spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.spec.binary);
                c
            }
            None => Command::new(&self.spec.binary),
        };
        let child = cmd
            .arg("--root")
            .arg(&self.spec.root)
            .arg("--config")
            .arg(config_path(&self.spec.root))
            .arg("--log")
            .arg(&self.spec.log_filter)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(Error::io(format!("spawn {}", self.spec.binary.display())))?;
        self.child = Some(child);
        self.wait_listening()
    }

    /// Polls the socket until it accepts a connection; fails at once if
    /// the daemon exits, or at the start-up deadline.
    fn wait_listening(&mut self) -> Result<(), Error> {
        let socket = self.socket();
        let mut exited = None;
        let listening = match self.child.as_mut() {
            Some(child) => wait::until(STARTUP, || {
                exited = child.try_wait().ok().flatten();
                exited.is_some() || UnixStream::connect(&socket).is_ok()
            }),
            None => false,
        };
        match exited {
            Some(status) => Err(Error::ExitedEarly {
                binary: self.spec.binary.clone(),
                status,
                log: self.log_path(),
            }),
            None if listening => Ok(()),
            None => Err(Error::Timeout {
                what: format!("ferrovirtd to listen on {}", socket.display()),
                after: STARTUP,
            }),
        }
    }

    /// How the daemon process ended, if it did (without being killed
    /// through this handle).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then up to `grace` for the daemon to exit, then SIGKILL.
    /// Returns its exit status, `None` when it had to be killed (or was
    /// not running). Its QEMUs keep running.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = processes::signal(child.id(), Signal::SIGTERM);
        wait::for_exit_or_kill(&mut child, grace)
    }

    /// SIGKILLs the daemon and reaps it; its QEMUs keep running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILLs every process whose command line names the root and waits
    /// until they are gone; returns how many there were.
    pub fn kill_processes_under_root(&self) -> Result<usize, Error> {
        processes::kill_with_arg(&self.spec.root.to_string_lossy(), CLEANUP)
    }

    pub fn root(&self) -> &Path {
        &self.spec.root
    }

    /// A directory under the root where the daemon's QEMUs (real or
    /// simulated), running as their own user, may create files: qemu-sim's
    /// control sockets.
    pub fn qemu_dir(&self) -> PathBuf {
        qemu_dir(&self.spec.root)
    }

    /// The read-write socket.
    pub fn socket(&self) -> PathBuf {
        self.spec.root.join("run/libvirt-sock")
    }

    /// The read-only socket.
    pub fn ro_socket(&self) -> PathBuf {
        self.spec.root.join("run/libvirt-sock-ro")
    }

    /// The libvirt URI of the read-write socket.
    pub fn uri(&self) -> String {
        uri_of(&self.socket())
    }

    /// The libvirt URI of the read-only socket.
    pub fn ro_uri(&self) -> String {
        uri_of(&self.ro_socket())
    }

    /// The daemon's stderr, appended across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.spec.root.join("ferrovirtd.log")
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Ferrovirtd {
    fn drop(&mut self) {
        self.kill();
        let _ = self.kill_processes_under_root();
    }
}

/// Makes the root searchable but not listable by others (0711), as
/// libvirt's `/var/lib/libvirt/images`: QEMU's own user reaches the disks,
/// variable stores and logs a test puts there by name, while the daemon's
/// state directories below stay its own (0700).
fn traversable(root: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(ROOT_MODE))
        .map_err(Error::io(format!("chmod {}", root.display())))
}

/// The mode of every daemon root the harness starts.
pub const ROOT_MODE: u32 = 0o711;

fn qemu_dir(root: &Path) -> PathBuf {
    root.join("qemu-files")
}

fn config_path(root: &Path) -> PathBuf {
    root.join("ferrovirtd.toml")
}

/// `qemu+unix:///system?socket=PATH`, the URI virsh and libvirt-python use.
pub fn uri_of(socket: &Path) -> String {
    format!("qemu+unix:///system?socket={}", socket.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in daemon: a shell that exits at once.
    #[test]
    fn a_daemon_that_exits_during_start_up_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let err = Ferrovirtd::start(Spec {
            binary: PathBuf::from("/bin/false"),
            root: dir.path().join("root"),
            config: String::new(),
            log_filter: "info".into(),
            netns: None,
        })
        .unwrap_err();
        match err {
            Error::ExitedEarly { log, .. } => assert!(log.ends_with("ferrovirtd.log")),
            other => panic!("expected ExitedEarly, got {other}"),
        }
    }
}
