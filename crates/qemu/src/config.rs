//! Driver configuration and the on-disk layout under its root.
//!
//! Everything the driver persists lives under one root so that a test (or a
//! second daemon) can run beside a production one without sharing state, and
//! so that a restarted daemon finds exactly what the previous one left.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// UNIX socket paths are limited to 108 bytes including the NUL.
pub(crate) const UNIX_PATH_MAX: usize = 107;

/// How the driver is tuned. `DriverConfig::new(root)` gives production
/// defaults; tests shorten the deadlines.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// All state lives under this directory (see [`Layout`]).
    pub root: PathBuf,
    /// Deadline for acquiring a domain's job lock.
    pub job_wait: Duration,
    /// Deadline of every monitor command (and of the QMP greeting).
    pub monitor_timeout: Duration,
    /// SIGTERM → SIGKILL delay of a non-graceful destroy.
    pub destroy_grace: Duration,
    /// Bounds of each VM's QMP event queue (the qmp crate coalesces past it).
    pub events: qmp::EventLimits,
    /// Capacity of each subscriber's queue; a subscriber that falls this far
    /// behind is dropped rather than allowed to grow the daemon.
    pub subscriber_queue: usize,
    /// Global bound on concurrent event-handling work across all VMs, so
    /// 10,000 busy VMs share a fixed amount of handler work.
    pub max_parallel_handlers: usize,
    /// Start domains marked autostart when the driver opens.
    pub autostart: bool,
    /// Where firmware descriptors are read, lowest priority first (QEMU's
    /// `/usr/share/qemu/firmware`, then `/etc/qemu/firmware`).
    pub firmware_dirs: Vec<PathBuf>,
    /// The statistics poller (see [`crate::StatsConfig`]).
    pub stats: crate::stats::StatsConfig,
    /// A test aid: every start stops forever at this point, so a test can
    /// kill the daemon at exactly that instant. `None` in production.
    pub pause_point: Option<PausePoint>,
    /// How long `detach-device` waits for the guest to release a device
    /// (QEMU's DEVICE_DELETED) before it returns with the removal still
    /// pending; the event completes it whenever it comes.
    pub unplug_timeout: Duration,
    /// How each QEMU is confined.
    pub confinement: Confinement,
    /// Where incoming migrations listen.
    pub migration: crate::jobs::migration::MigrationConfig,
}

/// QEMU's own system-call filter as libvirt sets it: on, and denying
/// obsolete calls, privilege changes, new processes and resource control.
pub const DEFAULT_SANDBOX: &str =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// How each QEMU is confined. A guest that has broken out into its QEMU
/// process finds itself filtered (seccomp), without new privileges, and
/// with a `/dev` that holds only what its guest uses.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// The exec helper every QEMU is started through (`ferrovirt-exec`,
    /// installed beside the daemon).
    pub exec_helper: PathBuf,
    /// QEMU's `-sandbox` argument; `None` leaves QEMU unfiltered.
    pub sandbox: Option<String>,
    /// A private mount namespace per QEMU, whose `/dev` holds only the
    /// nodes its guest needs. Needs root (CAP_SYS_ADMIN).
    pub mount_namespace: bool,
    /// The user and groups each guest's QEMU runs as; `None` keeps the
    /// daemon's own. QEMU then reaches the daemon's directories through
    /// nothing but the descriptors it is handed (monitor, run lock, taps,
    /// its log).
    pub creds: Option<confine::Creds>,
    /// With `creds`: give QEMU's user the files its guest opens by path
    /// for the guest's life (libvirt's `dynamic_ownership`).
    pub dynamic_ownership: bool,
}

impl Default for Confinement {
    fn default() -> Self {
        Self {
            exec_helper: confine::default_helper(),
            sandbox: Some(DEFAULT_SANDBOX.to_owned()),
            mount_namespace: nix::unistd::geteuid().is_root(),
            creds: None,
            dynamic_ownership: true,
        }
    }
}

/// Where a start stops for a test (see [`DriverConfig::pause_point`]):
/// having written `marker` (the domain's name and QEMU's pid, one line),
/// it waits forever.
#[derive(Debug, Clone)]
pub struct PausePoint {
    pub at: StartStage,
    pub marker: PathBuf,
}

/// How far a start has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartStage {
    /// QEMU was spawned; its pid is not recorded yet.
    Spawned,
    /// The start completed and its status record says so (an incoming
    /// migration's QEMU listens for the stream), before the start returns.
    Recorded,
}

impl DriverConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            root: root.into(),
            job_wait: Duration::from_secs(30),
            monitor_timeout: Duration::from_secs(30),
            destroy_grace: Duration::from_secs(5),
            events: qmp::EventLimits::default(),
            subscriber_queue: 1024,
            max_parallel_handlers: 2 * cores,
            autostart: true,
            firmware_dirs: ["/usr/share/qemu/firmware", "/etc/qemu/firmware"]
                .map(PathBuf::from)
                .to_vec(),
            stats: crate::stats::StatsConfig::default(),
            pause_point: None,
            unplug_timeout: Duration::from_secs(5),
            confinement: Confinement::default(),
            migration: crate::jobs::migration::MigrationConfig::default(),
        }
    }

    /// The firmware descriptor directories as strings.
    pub(crate) fn firmware_dirs(&self) -> Vec<&str> {
        self.firmware_dirs
            .iter()
            .filter_map(|p| p.to_str())
            .collect()
    }

    /// The on-disk layout under `root`.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.root)
    }
}

/// Default root: `/var/lib/ferrovirt` for root (like libvirt's system
/// instance), otherwise a per-user directory (like `qemu:///session`).
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/ferrovirt");
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ferrovirt");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/ferrovirt"),
        None => PathBuf::from("/tmp/ferrovirt"),
    }
}

/// Paths of everything the driver keeps on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Persistent definitions: `NAME.xml`.
    pub config_dir: PathBuf,
    /// Autostart markers: `NAME` (empty files).
    pub autostart_dir: PathBuf,
    /// Status of running domains (`UUID.json`) and QMP sockets.
    pub run_dir: PathBuf,
    /// QEMU stdout/stderr: `NAME.log`.
    pub log_dir: PathBuf,
    /// Scratch sockets for capability probes.
    pub caps_dir: PathBuf,
    /// Managed-save images: `NAME.save`.
    pub managed_save_dir: PathBuf,
    /// UEFI variable stores: `NAME_VARS.fd`.
    pub nvram_dir: PathBuf,
    /// Emulated TPM state: `UUID/` per domain.
    pub swtpm_dir: PathBuf,
    /// Each running domain's own directory, `UUID/`, which belongs to its
    /// QEMU's user (see [`Layout::domain_run_dir`]); this one is only
    /// searchable by others (0711), not listable.
    pub domains_dir: PathBuf,
    /// Images an incoming migration created, recorded (`UUID.json`)
    /// before they are and until the migration ends.
    pub migration_dir: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self {
            config_dir: root.join("etc/qemu"),
            autostart_dir: root.join("etc/qemu/autostart"),
            run_dir: root.join("run/qemu"),
            log_dir: root.join("log/qemu"),
            caps_dir: root.join("run/caps"),
            managed_save_dir: root.join("lib/qemu/save"),
            nvram_dir: root.join("lib/qemu/nvram"),
            swtpm_dir: root.join("lib/qemu/swtpm"),
            domains_dir: root.join("run/vm"),
            migration_dir: root.join("lib/qemu/migration"),
        }
    }

    /// Creates every directory. All but the variable stores' and the
    /// domains' own are the daemon's alone (mode 0700, set again on every
    /// open): a QEMU running as its own user reads no definition, status
    /// record or log of another guest. QEMU opens its variable store by
    /// name, so that directory stays searchable; so does the parent of
    /// the domains' own directories (0711).
    pub fn create_all(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for d in [
            &self.config_dir,
            &self.autostart_dir,
            &self.run_dir,
            &self.log_dir,
            &self.caps_dir,
            &self.managed_save_dir,
            &self.nvram_dir,
            &self.swtpm_dir,
            &self.domains_dir,
            &self.migration_dir,
        ] {
            std::fs::create_dir_all(d)?;
        }
        for d in self.private_dirs() {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
        std::fs::set_permissions(&self.domains_dir, std::fs::Permissions::from_mode(0o711))?;
        Ok(())
    }

    fn private_dirs(&self) -> [&Path; 8] {
        [
            &self.config_dir,
            &self.autostart_dir,
            &self.run_dir,
            &self.log_dir,
            &self.caps_dir,
            &self.managed_save_dir,
            &self.swtpm_dir,
            &self.migration_dir,
        ]
    }

    pub fn definition(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    pub fn autostart_marker(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(name)
    }

    pub fn status(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.run_dir.join(format!("{uuid}.json"))
    }

    /// Keyed by uuid (36 bytes), not name, so its length is bounded and
    /// predictable: see [`Layout::check_socket_len`].
    pub fn monitor_socket(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.run_dir.join(format!("{uuid}.qmp"))
    }

    /// A running domain's own directory: sockets of its channels, swtpm
    /// and displays, file-backed RAM. It belongs to QEMU's user (mode
    /// 0700), as libvirt's per-domain directories do, so QEMU creates its
    /// own files there; the daemon keeps nothing it trusts in it. Removed
    /// when the run ends.
    pub fn domain_run_dir(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.domains_dir.join(uuid.to_string())
    }

    /// swtpm's pidfile for domain `uuid`: in the daemon's own directory,
    /// since the pid in it is signalled.
    pub fn swtpm_pidfile(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.run_dir.join(format!("{uuid}.swtpm.pid"))
    }

    /// The emulated TPM state of domain `uuid`.
    pub fn swtpm_state(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.swtpm_dir.join(uuid.to_string())
    }

    /// QEMU's `-pidfile`, which QEMU keeps locked while it runs (the argv
    /// builder derives it from the monitor socket the same way).
    pub fn pidfile(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.monitor_socket(uuid).with_extension("pid")
    }

    /// The run lock the domain's QEMU holds for its whole life (see
    /// `emulator::liveness`). Kept while the domain is known, so that a
    /// start never races the removal of the file it locks.
    pub fn run_lock(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.run_dir.join(format!("{uuid}.lock"))
    }

    /// Held by the open driver, so that a second driver on the same root
    /// cannot re-adopt (and kill) what the first one is starting.
    pub fn driver_lock(&self) -> PathBuf {
        self.run_dir.join("driver.lock")
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// The managed-save image of domain `name` (`virsh managedsave`).
    pub fn managed_save(&self, name: &str) -> PathBuf {
        self.managed_save_dir.join(format!("{name}.save"))
    }

    /// The directories whose temp files a writer killed mid-write may
    /// have left behind (swept when the driver opens).
    pub fn written_dirs(&self) -> [&Path; 5] {
        [
            &self.config_dir,
            &self.autostart_dir,
            &self.run_dir,
            &self.managed_save_dir,
            &self.migration_dir,
        ]
    }

    /// Fails early (at driver open) rather than at the first start when the
    /// root is too deep for a UNIX socket path.
    pub fn check_socket_len(&self) -> Result<(), String> {
        let probe = self.monitor_socket(&uuid::Uuid::nil());
        let len = probe.as_os_str().len();
        if len > UNIX_PATH_MAX {
            return Err(format!(
                "state root too long: monitor socket path {} is {len} bytes, limit {UNIX_PATH_MAX}",
                probe.display()
            ));
        }
        Ok(())
    }
}

/// Domain names become file names: reject what would escape the directory
/// or hide the file (hidden files are skipped when definitions are loaded
/// and swept as temp files).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_root() {
        let l = Layout::new(Path::new("/r"));
        assert_eq!(
            l.managed_save("vm"),
            PathBuf::from("/r/lib/qemu/save/vm.save")
        );
        assert!(l.written_dirs().iter().all(|d| d.starts_with("/r")));
        assert!(l.written_dirs().contains(&l.managed_save_dir.as_path()));
    }

    #[test]
    fn the_daemons_directories_are_its_own_but_the_variable_stores() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path());
        l.create_all().unwrap();
        // Widened by hand: the next open narrows it again.
        std::fs::set_permissions(&l.run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        l.create_all().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for d in [
            &l.config_dir,
            &l.run_dir,
            &l.log_dir,
            &l.managed_save_dir,
            &l.swtpm_dir,
        ] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        assert_ne!(mode(&l.nvram_dir) & 0o001, 0, "QEMU's user opens its store");
        assert_eq!(mode(&l.domains_dir), 0o711, "searchable, not listable");
        assert!(
            l.domain_run_dir(&uuid::Uuid::nil())
                .starts_with(&l.domains_dir)
        );
    }

    #[test]
    fn socket_len_checked() {
        let l = Layout::new(Path::new("/tmp/x"));
        assert!(l.check_socket_len().is_ok());
        let long = "/tmp/".to_string() + &"a".repeat(100);
        assert!(Layout::new(Path::new(&long)).check_socket_len().is_err());
    }

    #[test]
    fn names_validated() {
        assert!(valid_name("vm-1"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name(""));
    }
}
