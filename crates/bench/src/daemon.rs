//! Starting, stopping and restarting the daemons under test.
//!
//! * ferrovirtd: through `testkit` (`ferrovirtd --root DIR --config
//!   DIR/ferrovirtd.toml`), a fresh root per scenario under the bench's
//!   work directory. Stopped with SIGTERM; the QEMUs it leaves running (by
//!   design they outlive the daemon) are destroyed through the RPC first,
//!   and any leftover is killed by pid (their command lines name DIR).
//! * libvirtd: the libvirt harness's `start-libvirtd.sh` /
//!   `stop-libvirtd.sh` (private mount namespace, own state dir, sockets,
//!   reaper), with `LVB_STATE` set to the bench's own state dir. Stopped by
//!   the stop script (`--undefine --kill`: libvirtd and every process in
//!   its namespace).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use testkit::daemon::{Ferrovirtd, Spec};

use crate::client;
use crate::error::{BenchError, BenchResult};
use crate::stats::DaemonMemory;

/// How long ferrovirtd may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Paths and facts of everything the bench drives.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    /// Work directory of this run (ferrovirtd roots, proxy state, sockets).
    pub work: PathBuf,
    pub ferrovirtd: PathBuf,
    pub qemu_sim: PathBuf,
    pub qemu: PathBuf,
    /// The libvirt harness directory (start-libvirtd.sh, stop-libvirtd.sh,
    /// qmp-proxy.py), when libvirtd or the proxy rows are measured.
    pub libvirt_harness: Option<PathBuf>,
    /// `LVB_STATE` of the private libvirtd.
    pub lvb_state: PathBuf,
    /// ferrovirtd's monitor deadline.
    pub monitor_timeout_s: u64,
    /// Whether real QEMU runs under KVM (the driver's probe said so).
    pub kvm: bool,
}

impl Env {
    /// A file of the libvirt harness.
    pub(crate) fn harness_file(&self, name: &str) -> BenchResult<PathBuf> {
        self.libvirt_harness
            .as_ref()
            .map(|dir| dir.join(name))
            .ok_or(BenchError::Unsupported(
                "this needs the libvirt harness (--libvirt-harness DIR)",
            ))
    }
}

/// The daemon measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DaemonKind {
    Ferrovirtd,
    Libvirtd,
}

impl DaemonKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DaemonKind::Ferrovirtd => "ferrovirtd",
            DaemonKind::Libvirtd => "libvirtd",
        }
    }
}

/// Which QEMU a VM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Emu {
    /// Real qemu-system-x86_64.
    #[serde(rename = "QEMU")]
    Real,
    /// Real QEMU behind the libvirt harness's qmp-proxy.py.
    #[serde(rename = "QEMU via qmp-proxy")]
    Proxy,
    /// qemu-sim (ferrovirtd only).
    #[serde(rename = "qemu-sim")]
    Sim,
}

impl Emu {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Emu::Real => "QEMU",
            Emu::Proxy => "QEMU via qmp-proxy",
            Emu::Sim => "qemu-sim",
        }
    }
}

enum Process {
    Ferrovirtd(Ferrovirtd),
    /// libvirtd runs under the harness's reaper; we know its pid only.
    Libvirtd {
        pid: u32,
    },
}

pub(crate) struct Daemon {
    pub kind: DaemonKind,
    pub env: Env,
    pub socket: PathBuf,
    /// ferrovirtd: its root; libvirtd: `LVB_STATE`.
    pub root: PathBuf,
    process: Process,
    /// Set when the daemon stopped answering; stop() then skips the
    /// destroys through the RPC.
    pub wedged: bool,
}

impl Daemon {
    pub(crate) fn start(kind: DaemonKind, env: &Env, tag: &str) -> BenchResult<Daemon> {
        match kind {
            DaemonKind::Ferrovirtd => Self::start_ferrovirtd(env, tag),
            DaemonKind::Libvirtd => Self::start_libvirtd(env, false),
        }
    }

    /// A daemon with its storage driver: libvirtd is started with every
    /// driver its package ships, not only the QEMU one.
    pub(crate) fn start_with_storage(
        kind: DaemonKind,
        env: &Env,
        tag: &str,
    ) -> BenchResult<Daemon> {
        match kind {
            DaemonKind::Ferrovirtd => Self::start_ferrovirtd(env, tag),
            DaemonKind::Libvirtd => Self::start_libvirtd(env, true),
        }
    }

    fn start_ferrovirtd(env: &Env, tag: &str) -> BenchResult<Daemon> {
        Self::start_ferrovirtd_in(env, tag, None, "")
    }

    /// ferrovirtd inside the network namespace `netns` (the caller's, see
    /// `testkit::netns`), with `extra` appended to its configuration.
    pub(crate) fn start_ferrovirtd_in(
        env: &Env,
        tag: &str,
        netns: Option<&str>,
        extra: &str,
    ) -> BenchResult<Daemon> {
        let root = env.work.join(format!("fv-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        let process = Ferrovirtd::start(Spec {
            binary: env.ferrovirtd.clone(),
            root: root.clone(),
            config: format!(
                "monitor_timeout_secs = {}\ndestroy_grace_secs = 3\nmax_clients = 20000\n{extra}",
                env.monitor_timeout_s
            ),
            log_filter: "warn".into(),
            netns: netns.map(str::to_owned),
        })?;
        Ok(Daemon {
            kind: DaemonKind::Ferrovirtd,
            env: env.clone(),
            socket: process.socket(),
            root,
            process: Process::Ferrovirtd(process),
            wedged: false,
        })
    }

    fn start_libvirtd(env: &Env, all_drivers: bool) -> BenchResult<Daemon> {
        // A clean slate: a previous run's libvirtd (ours only) and domains.
        let _ = Self::stop_script(env)?.status();
        let out = Self::harness_command(env, "start-libvirtd.sh")?
            .env("LVB_QEMU_ONLY", if all_drivers { "0" } else { "1" })
            .stderr(Stdio::piped())
            .output()
            .map_err(BenchError::io("start-libvirtd.sh"))?;
        if !out.status.success() {
            return Err(BenchError::Refused {
                what: "start-libvirtd.sh".into(),
                answer: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let pid_file = env.lvb_state.join("libvirtd.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(BenchError::io(format!("read {}", pid_file.display())))?;
        let pid = pid.trim().parse().map_err(|_| BenchError::Refused {
            what: format!("{} holds no pid", pid_file.display()),
            answer: pid.clone(),
        })?;
        Ok(Daemon {
            kind: DaemonKind::Libvirtd,
            env: env.clone(),
            socket: env.lvb_state.join("sock/libvirt-sock"),
            root: env.lvb_state.clone(),
            process: Process::Libvirtd { pid },
            wedged: false,
        })
    }

    fn harness_command(env: &Env, script: &str) -> BenchResult<Command> {
        let mut command = Command::new(env.harness_file(script)?);
        command
            .env("LVB_STATE", &env.lvb_state)
            .env("LVB_QEMU_REAL", &env.qemu)
            .stdin(Stdio::null());
        Ok(command)
    }

    /// `stop-libvirtd.sh --undefine --kill`, quiet.
    fn stop_script(env: &Env) -> BenchResult<Command> {
        let mut command = Self::harness_command(env, "stop-libvirtd.sh")?;
        command
            .args(["--undefine", "--kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(command)
    }

    pub(crate) fn label(&self) -> &'static str {
        self.kind.name()
    }

    /// The daemon's pid while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::Ferrovirtd(process) => process.pid(),
            Process::Libvirtd { pid } => Some(*pid),
        }
    }

    /// Its memory and threads now; `None` once it is gone.
    pub(crate) fn memory(&self) -> Option<DaemonMemory> {
        self.pid().and_then(DaemonMemory::of)
    }

    /// SIGKILLs ferrovirtd (its QEMUs keep running) and starts it again on
    /// the same root; returns when the socket accepts connections.
    pub(crate) fn kill_and_restart(&mut self) -> BenchResult<()> {
        match &mut self.process {
            Process::Ferrovirtd(process) => Ok(process.spawn()?),
            Process::Libvirtd { .. } => Err(BenchError::Unsupported(
                "the bench restarts ferrovirtd only",
            )),
        }
    }

    /// Stops the daemon and everything it started.
    pub(crate) async fn stop(self) {
        match self.process {
            Process::Ferrovirtd(mut process) => {
                if !self.wedged {
                    destroy_everything(&self.socket).await;
                }
                process.terminate(STOP_GRACE);
                if let Err(error) = process.kill_processes_under_root() {
                    eprintln!("bench: {error}");
                }
            }
            Process::Libvirtd { .. } => {
                let stopped = tokio::task::spawn_blocking(move || {
                    Self::stop_script(&self.env).and_then(|mut command| {
                        command.status().map_err(BenchError::io("stop-libvirtd.sh"))
                    })
                })
                .await;
                if let Ok(Err(error)) = stopped {
                    eprintln!("bench: {error}");
                }
            }
        }
    }

    /// `<emulator>` for this daemon and kind of QEMU.
    pub(crate) fn emulator(&self, emu: Emu) -> BenchResult<PathBuf> {
        match (self.kind, emu) {
            (_, Emu::Real) => Ok(self.env.qemu.clone()),
            (DaemonKind::Libvirtd, Emu::Proxy) => Ok(self.env.lvb_state.join("bin/qemu-lvb-proxy")),
            (DaemonKind::Ferrovirtd, Emu::Proxy) => self.proxy_shim(),
            (DaemonKind::Ferrovirtd, Emu::Sim) => Ok(self.env.qemu_sim.clone()),
            (DaemonKind::Libvirtd, Emu::Sim) => {
                Err(BenchError::Unsupported("libvirtd does not run qemu-sim"))
            }
        }
    }

    /// The shim start-libvirtd.sh generates for libvirtd, with our own
    /// state directory for the proxy's control sockets.
    fn proxy_shim(&self) -> BenchResult<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let state = self.root.join("proxy");
        let ctl = state.join("ctl");
        // The proxy runs as QEMU's user and writes there.
        testkit::account::qemu_user_dir(&state)?;
        testkit::account::qemu_user_dir(&ctl)?;
        let shim = self.root.join("qemu-proxy");
        if shim.exists() {
            return Ok(shim);
        }
        let script = format!(
            "#!/bin/sh\nexec /usr/bin/python3 -I -S {} --lvb-state {} --lvb-real {} -- \"$@\"\n",
            self.env.harness_file("qmp-proxy.py")?.display(),
            state.display(),
            self.env.qemu.display()
        );
        let what = format!("write {}", shim.display());
        std::fs::write(&shim, script).map_err(BenchError::io(what.clone()))?;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))
            .map_err(BenchError::io(what))?;
        Ok(shim)
    }

    /// qemu-sim's control socket (`-sim-control`) for domain `name`: in a
    /// directory its QEMU's user may create it in.
    pub(crate) fn sim_ctl(&self, name: &str) -> PathBuf {
        let dir = match &self.process {
            Process::Ferrovirtd(process) => process.qemu_dir(),
            Process::Libvirtd { .. } => self.root.clone(),
        };
        dir.join(format!("ctl-{name}.sock"))
    }

    /// Control socket of the QMP proxy of domain `name`.
    pub(crate) fn proxy_ctl(&self, name: &str) -> PathBuf {
        let dir = match self.kind {
            DaemonKind::Libvirtd => self.env.lvb_state.join("ctl"),
            DaemonKind::Ferrovirtd => self.root.join("proxy/ctl"),
        };
        dir.join(format!("{name}.sock"))
    }

    /// Domain XML for this daemon: q35, 64 MiB, 1 vCPU, no disk, KVM when
    /// it works. `extra` goes to `<qemu:commandline>`.
    pub(crate) fn domain_xml(&self, name: &str, emu: Emu, extra: &[String]) -> BenchResult<String> {
        let emulator = self.emulator(emu)?;
        let domain_type = if emu != Emu::Sim && self.env.kvm {
            "kvm"
        } else {
            "qemu"
        };
        Ok(domain_xml(name, domain_type, &emulator, extra))
    }
}

/// Domain XML: q35, 64 MiB, 1 vCPU, no disk; `extra` goes to
/// `<qemu:commandline>`.
pub(crate) fn domain_xml(
    name: &str,
    domain_type: &str,
    emulator: &Path,
    extra: &[String],
) -> String {
    let commandline = if extra.is_empty() {
        String::new()
    } else {
        let args: String = extra
            .iter()
            .map(|arg| format!("    <qemu:arg value='{arg}'/>\n"))
            .collect();
        format!("  <qemu:commandline>\n{args}  </qemu:commandline>\n")
    };
    format!(
        "<domain type='{domain_type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <currentMemory unit='MiB'>64</currentMemory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{}</emulator>
    <controller type='usb' model='none'/>
    <serial type='null'/>
    <memballoon model='none'/>
  </devices>
{commandline}</domain>
",
        emulator.display()
    )
}

/// Destroys every domain of the daemon on `socket`, 32 calls in flight.
async fn destroy_everything(socket: &Path) {
    let Ok(client) = client::open_within(socket, Duration::from_secs(5)).await else {
        return;
    };
    if let Ok(doms) = client.list_all_domains(client::LIST_ACTIVE).await {
        let mut calls = tokio::task::JoinSet::new();
        for dom in doms {
            while calls.len() >= 32 {
                let _ = calls.join_next().await;
            }
            let client = client.clone();
            calls.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(15), client.destroy(&dom)).await;
            });
        }
        while calls.join_next().await.is_some() {}
    }
    client.close().await;
}
