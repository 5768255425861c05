//! Starting, stopping and restarting the daemons under test.
//!
//! * ferrovirtd: `ferrovirtd --root DIR --config DIR/ferrovirtd.toml`, a
//!   fresh root per scenario under the bench's work directory; sockets in
//!   `DIR/run/`. Stopped with SIGTERM by PID; the QEMUs it leaves running
//!   (by design they outlive the daemon) are destroyed through the RPC
//!   first and any leftover is killed by PID (their command lines name DIR).
//! * libvirtd 9.0: the anchors' `start-libvirtd.sh` / `stop-libvirtd.sh`
//!   (private mount namespace, own state dir, sockets, reaper), with
//!   `LVB_STATE` set to the bench's own state dir. Stopped by PID by the
//!   stop script (`--undefine --kill`: libvirtd and every process in its
//!   namespace).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{self, Res};
use crate::util;

/// Paths of everything the bench drives.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    /// Work directory of this run (ferrovirtd roots, proxy state, sockets).
    pub work: PathBuf,
    pub ferrovirtd: PathBuf,
    pub qemu_sim: PathBuf,
    pub qemu: PathBuf,
    /// `shared/anchors/libvirt`
    pub anchors: PathBuf,
    /// `LVB_STATE` of the private libvirtd
    pub lvb_state: PathBuf,
    /// ferrovirtd's monitor deadline (s)
    pub monitor_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ferro,
    Libvirt,
}

/// Which QEMU a VM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emu {
    /// real qemu-system-x86_64
    Real,
    /// real QEMU behind the anchors' qmp-proxy.py
    Proxy,
    /// qemu-sim (ferrovirtd only)
    Sim,
}

pub(crate) struct Daemon {
    pub kind: Kind,
    pub env: Env,
    pub sock: PathBuf,
    /// ferrovirtd: its root; libvirtd: LVB_STATE
    pub root: PathBuf,
    child: Option<Child>,
    pid: i32,
    /// Set when the daemon stopped answering; stop() then kills it.
    pub wedged: bool,
    cfg: PathBuf,
}

impl Daemon {
    pub(crate) fn label(&self) -> &'static str {
        match self.kind {
            Kind::Ferro => "ferrovirtd",
            Kind::Libvirt => "libvirtd",
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn start(kind: Kind, env: &Env, tag: &str) -> Res<Daemon> {
        match kind {
            Kind::Ferro => Self::start_ferro(env, tag),
            Kind::Libvirt => Self::start_libvirt(env),
        }
    }

    fn start_ferro(env: &Env, tag: &str) -> Res<Daemon> {
        let root = env.work.join(format!("fv-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(client::es)?;
        let cfg = root.join("ferrovirtd.toml");
        std::fs::write(
            &cfg,
            format!(
                "monitor_timeout_secs = {}\ndestroy_grace_secs = 3\nmax_clients = 20000\n",
                env.monitor_timeout_s
            ),
        )
        .map_err(client::es)?;
        let mut d = Daemon {
            kind: Kind::Ferro,
            env: env.clone(),
            sock: root.join("run/libvirt-sock"),
            root,
            child: None,
            pid: 0,
            wedged: false,
            cfg,
        };
        d.spawn_ferro()?;
        Ok(d)
    }

    fn spawn_ferro(&mut self) -> Res<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("ferrovirtd.log"))
            .map_err(client::es)?;
        let child = Command::new(&self.env.ferrovirtd)
            .arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(&self.cfg)
            .arg("--log")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.env.ferrovirtd.display()))?;
        self.pid = child.id() as i32;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&self.sock).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("ferrovirtd exited during start-up: {st}"));
            }
            if Instant::now() > deadline {
                return Err("ferrovirtd did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// SIGKILLs ferrovirtd (its QEMUs keep running) and starts it again on
    /// the same root; returns when the socket accepts connections.
    pub(crate) fn kill9_and_restart(&mut self) -> Res<()> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn_ferro()
    }

    fn lvb_cmd(env: &Env, script: &str) -> Command {
        let mut c = Command::new(env.anchors.join(script));
        c.env("LVB_STATE", &env.lvb_state)
            .env("LVB_QEMU_REAL", &env.qemu)
            .stdin(Stdio::null());
        c
    }

    fn start_libvirt(env: &Env) -> Res<Daemon> {
        // a clean slate: a previous run's libvirtd (ours only) and domains
        let _ = Self::lvb_cmd(env, "stop-libvirtd.sh")
            .args(["--undefine", "--kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let out = Self::lvb_cmd(env, "start-libvirtd.sh")
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("start-libvirtd.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "start-libvirtd.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let pid: i32 = std::fs::read_to_string(env.lvb_state.join("libvirtd.pid"))
            .map_err(client::es)?
            .trim()
            .parse()
            .map_err(client::es)?;
        Ok(Daemon {
            kind: Kind::Libvirt,
            env: env.clone(),
            sock: env.lvb_state.join("sock/libvirt-sock"),
            root: env.lvb_state.clone(),
            child: None,
            pid,
            wedged: false,
            cfg: env.lvb_state.join("libvirtd.conf"),
        })
    }

    /// Stops the daemon and everything it started. ferrovirtd: destroy all
    /// domains via RPC (unless wedged), SIGTERM, then kill leftovers by PID.
    pub(crate) async fn stop(mut self) {
        match self.kind {
            Kind::Ferro => {
                if !self.wedged
                    && let Ok(c) = client::open_timeout(&self.sock, Duration::from_secs(5)).await
                {
                    if let Ok(doms) = c.list_all_domains(1).await {
                        destroy_all(&c, doms, 32).await;
                    }
                    c.close().await;
                }
                self.terminate_ferro();
                let root = self.root.clone();
                let n = util::kill_processes_under(&root) + util::kill_run_vms();
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            Kind::Libvirt => {
                let env = self.env.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    Self::lvb_cmd(&env, "stop-libvirtd.sh")
                        .args(["--undefine", "--kill"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                })
                .await;
            }
        }
    }

    fn terminate_ferro(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain syscall on our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// `<emulator>` for this daemon and kind of QEMU.
    pub(crate) fn emulator(&self, emu: Emu) -> Res<PathBuf> {
        match (self.kind, emu) {
            (_, Emu::Real) => Ok(self.env.qemu.clone()),
            (Kind::Libvirt, Emu::Proxy) => Ok(self.env.lvb_state.join("bin/qemu-lvb-proxy")),
            (Kind::Ferro, Emu::Proxy) => {
                // the same shim start-libvirtd.sh generates, with our own
                // state directory for the proxy's control sockets
                let state = self.root.join("proxy");
                std::fs::create_dir_all(state.join("ctl")).map_err(client::es)?;
                let shim = self.root.join("qemu-proxy");
                if !shim.exists() {
                    std::fs::write(
                        &shim,
                        format!(
                            "#!/bin/sh\nexec /usr/bin/python3 -I -S {} --lvb-state {} --lvb-real {} -- \"$@\"\n",
                            self.env.anchors.join("qmp-proxy.py").display(),
                            state.display(),
                            self.env.qemu.display()
                        ),
                    )
                    .map_err(client::es)?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))
                        .map_err(client::es)?;
                }
                Ok(shim)
            }
            (Kind::Ferro, Emu::Sim) => Ok(self.env.qemu_sim.clone()),
            (Kind::Libvirt, Emu::Sim) => Err("libvirtd does not run qemu-sim".into()),
        }
    }

    /// Control socket of the QMP proxy of domain `name`.
    pub(crate) fn proxy_ctl(&self, name: &str) -> PathBuf {
        match self.kind {
            Kind::Libvirt => self.env.lvb_state.join("ctl").join(format!("{name}.sock")),
            Kind::Ferro => self.root.join("proxy/ctl").join(format!("{name}.sock")),
        }
    }

    /// Domain XML for this daemon: q35, 64 MiB, 1 vCPU, no disk, KVM when
    /// usable. `extra` goes to `<qemu:commandline>`.
    pub(crate) fn domain_xml(&self, name: &str, emu: Emu, extra: &[String]) -> Res<String> {
        let emulator = self.emulator(emu)?;
        let vtype = if emu == Emu::Sim {
            "qemu"
        } else if util::kvm_usable() {
            "kvm"
        } else {
            "qemu"
        };
        // leftovers are found by PID through `guest=<run tag>` (util::kill_run_vms)
        let args: Vec<String> = extra.to_vec();
        let cmdline = if args.is_empty() {
            String::new()
        } else {
            let a: String = args
                .iter()
                .map(|a| format!("    <qemu:arg value='{a}'/>\n"))
                .collect();
            format!("  <qemu:commandline>\n{a}  </qemu:commandline>\n")
        };
        Ok(format!(
            "<domain type='{vtype}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
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
{cmdline}</domain>
",
            emulator.display()
        ))
    }
}

pub(crate) fn anchors_default() -> PathBuf {
    Path::new("/work/shared/anchors/libvirt").to_path_buf()
}

/// Destroys `doms` with at most `par` calls in flight.
pub(crate) async fn destroy_all(
    c: &rpc::Client,
    doms: Vec<rpc::protocol::remote::NonnullDomain>,
    par: usize,
) {
    let mut set = tokio::task::JoinSet::new();
    for d in doms {
        while set.len() >= par {
            let _ = set.join_next().await;
        }
        let c = c.clone();
        set.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(15), c.destroy(&d)).await;
        });
    }
    while set.join_next().await.is_some() {}
}
