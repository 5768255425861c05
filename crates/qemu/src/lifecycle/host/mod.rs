//! What a run needs from the host besides QEMU itself: its run directory,
//! the UEFI variable store, an emulated TPM (swtpm), a SPICE port, huge
//! pages; and once QEMU is up (paused), the set-up that has no safe
//! command-line form: display passwords and the rest of the start-up QMP
//! steps, thread pinning and cgroup limits. The guest runs only after all
//! of it succeeded; [`release`] undoes it when the run ends.

pub(crate) mod cgroup;
mod nvram;
pub(crate) mod owner;
pub(crate) mod pinning;
pub(crate) mod swtpm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::{DomainDef, GraphicsDef, StartupAction};
use qmp::commands::{
    ExpirePassword, QomSet, QueryCpusFast, QueryIothreads, QueryVnc, SetLink, SetPassword,
};

use crate::object::Domain;
use crate::object::def::Def;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::{Error, Result};

/// What [`prepare`] set up for the run.
pub(crate) struct Prepared {
    pub(crate) run_dir: PathBuf,
    pub(crate) spice_port: Option<u16>,
    /// The files to give QEMU's user, with their owners now (see
    /// [`owner`]); empty where QEMU runs as the daemon's user or dynamic
    /// ownership is off.
    pub(crate) owned: Vec<owner::Owned>,
}

fn swtpm_paths(s: &Shared, def: &DomainDef, run_dir: &Path) -> swtpm::SwtpmPaths {
    swtpm::SwtpmPaths {
        state: s.layout.swtpm_state(&def.uuid),
        socket: domain::tpm_socket(&domain::LaunchParams {
            domain_run_dir: run_dir.to_path_buf(),
            ..Default::default()
        }),
        pidfile: s.layout.swtpm_pidfile(&def.uuid),
        log: s.layout.log_dir.join(format!("{}-swtpm.log", def.name)),
        socket_owner: s.cfg.confinement.creds.as_ref().map(|c| (c.uid, c.gid)),
    }
}

/// What the command line needs to know before QEMU starts: the run
/// directory and a SPICE port.
pub(crate) fn plan(s: &Shared, dom: &Domain, def: &Def) -> Result<Prepared> {
    let c = &s.cfg.confinement;
    let owned = match &c.creds {
        Some(creds) if c.dynamic_ownership => owner::plan(def.domain(), creds)?,
        _ => Vec::new(),
    };
    Ok(Prepared {
        run_dir: s.layout.domain_run_dir(&dom.uuid()),
        spice_port: spice_port(s, &dom.uuid(), def.domain())?,
        owned,
    })
}

/// Whether a start failed because QEMU could not bind its SPICE port (taken
/// by another process after the driver checked it).
pub(crate) fn lost_display_port(e: &Error) -> bool {
    e.to_string().contains("Failed to open SPICE sockets")
}

/// Before QEMU starts: the run directory, NVRAM, huge pages, the files
/// given to QEMU's user (`owned`, already in the status record), swtpm.
pub(crate) async fn prepare(
    s: &Shared,
    def: &Def,
    run: &Prepared,
    owned: &[owner::Owned],
) -> Result<()> {
    let d = def.domain();
    create_private_dir(&run.run_dir, s.cfg.confinement.creds.as_ref())?;
    nvram::ensure(d)?;
    check_hugepages(d)?;
    if let Some(creds) = &s.cfg.confinement.creds {
        owner::apply(owned, creds)?;
    }
    if let Some(tpm) = d.tpm() {
        swtpm::start(tpm, &swtpm_paths(s, d, &run.run_dir)).await?;
    }
    Ok(())
}

/// The run's own directory (or one inside it; mode 0700), given to
/// QEMU's user when QEMU runs as one.
pub(crate) fn create_private_dir(dir: &Path, creds: Option<&confine::Creds>) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    match creds {
        Some(c) => std::os::unix::fs::chown(dir, Some(c.uid), Some(c.gid))
            .map_err(|e| Error::io(format!("cannot give {} to QEMU's user", dir.display()), e)),
        None => Ok(()),
    }
}

/// Huge pages come from the host's reserved pool: refuse clearly when it
/// cannot hold the guest, rather than let QEMU fail obscurely.
fn check_hugepages(d: &DomainDef) -> Result<()> {
    if d.memory_backing
        .as_ref()
        .is_none_or(|b| b.hugepages.is_none())
    {
        return Ok(());
    }
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let free_kib = field("HugePages_Free:") * field("Hugepagesize:");
    if free_kib < d.memory_kib {
        return Err(Error::ConfigUnsupported(format!(
            "memoryBacking hugepages: the guest needs {} KiB of huge pages but the host has {free_kib} KiB free (see /proc/sys/vm/nr_hugepages)",
            d.memory_kib
        )));
    }
    Ok(())
}

/// SPICE has no "first free port" of its own: with autoport, the first
/// port from 5900 up that no other domain of this daemon holds and that
/// binds on the listen address. It stays reserved for `uuid` until the run
/// is released.
fn spice_port(s: &Shared, uuid: &uuid::Uuid, d: &DomainDef) -> Result<Option<u16>> {
    let Some(GraphicsDef::Spice(g)) = d
        .devices
        .graphics
        .iter()
        .find(|g| matches!(g, GraphicsDef::Spice(_)))
    else {
        return Ok(None);
    };
    if g.port.is_some() {
        return Ok(None);
    }
    let mut held = s.display_ports.lock().unwrap_or_else(|e| e.into_inner());
    held.remove(uuid);
    let port = (5900..=65535u16)
        .find(|p| {
            !held.values().any(|h| h == p) && std::net::TcpListener::bind((g.listen, *p)).is_ok()
        })
        .ok_or_else(|| Error::Internal("no free port for the SPICE display".into()))?;
    held.insert(*uuid, port);
    Ok(Some(port))
}

/// After QEMU is up and before the guest runs: the start-up QMP steps,
/// the VNC port for the live XML, then pinning and cgroups.
pub(crate) async fn configure(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    def: &Def,
    pid: i32,
) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    let d = def.domain();
    for action in domain::startup_actions(d) {
        run_action(dom, action, t).await?;
    }
    note_vnc_port(dom, ctx, d, t).await;
    let pins = pinning::Pins::of(d);
    if pins.is_empty() && !cgroup::needed(d) {
        return Ok(());
    }
    let threads = threads(dom, pid, t).await?;
    apply_pins(&pins, &threads, dom, t).await?;
    cgroup::apply(d, &threads)
}

/// The port QEMU's VNC server bound, for the live XML (best effort: a
/// failure leaves the port out, nothing else).
async fn note_vnc_port(dom: &Domain, ctx: &RunCtx, d: &DomainDef, t: Duration) {
    if !d
        .devices
        .graphics
        .iter()
        .any(|g| matches!(g, GraphicsDef::Vnc(_)))
    {
        return;
    }
    let Ok(info) = dom.qmp(&QueryVnc, t).await else {
        return;
    };
    let port = info.service.and_then(|p| p.parse::<u16>().ok());
    if port.is_some() {
        dom.lock()
            .update_live(ctx.generation, |def| def.with_live(|l| l.vnc_port = port));
    }
}

async fn run_action(dom: &Domain, a: StartupAction, t: Duration) -> Result<()> {
    match a {
        StartupAction::SetPassword {
            protocol,
            password,
            connected,
        } => {
            let cmd = SetPassword {
                protocol: protocol.into(),
                password,
                connected: connected.map(|c| c.as_str().to_string()),
            };
            dom.qmp(&cmd, t).await.map(drop)
        }
        StartupAction::ExpirePassword { protocol, time } => {
            let cmd = ExpirePassword {
                protocol: protocol.into(),
                time,
            };
            dom.qmp(&cmd, t).await.map(drop)
        }
        StartupAction::BalloonStatsPeriod(p) => {
            let cmd = QomSet {
                path: "/machine/peripheral/balloon0".into(),
                property: "guest-stats-polling-interval".into(),
                value: serde_json::json!(p),
            };
            dom.qmp(&cmd, t).await.map(drop)
        }
        StartupAction::LinkDown(name) => dom.qmp(&SetLink { name, up: false }, t).await.map(drop),
    }
}

/// QEMU's threads: vCPUs from `query-cpus-fast`, the rest from /proc.
pub(crate) async fn threads(dom: &Domain, pid: i32, t: Duration) -> Result<cgroup::Threads> {
    let cpus = dom.qmp(&QueryCpusFast, t).await?;
    let vcpus: Vec<(u32, i32)> = cpus
        .iter()
        .filter_map(|c| {
            Some((
                u32::try_from(c.cpu_index?).ok()?,
                i32::try_from(c.thread_id?).ok()?,
            ))
        })
        .collect();
    let all: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| Error::io(format!("cannot list the threads of QEMU {pid}"), e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let others = all
        .into_iter()
        .filter(|t| !vcpus.iter().any(|(_, v)| v == t))
        .collect();
    Ok(cgroup::Threads { pid, vcpus, others })
}

async fn apply_pins(
    p: &pinning::Pins,
    th: &cgroup::Threads,
    dom: &Domain,
    t: Duration,
) -> Result<()> {
    for (i, set) in &p.vcpus {
        if let Some((_, tid)) = th.vcpus.iter().find(|(v, _)| v == i) {
            pinning::pin(*tid, set, &format!("vcpupin of vCPU {i}"))?;
        }
    }
    let mut iothread_tids = Vec::new();
    if !p.iothreads.is_empty() {
        for io in dom.qmp(&QueryIothreads, t).await? {
            let id = io
                .id
                .strip_prefix("iothread")
                .and_then(|n| n.parse::<u32>().ok());
            let tid = io.thread_id.and_then(|t| i32::try_from(t).ok());
            if let (Some(id), Some(tid)) = (id, tid) {
                iothread_tids.push(tid);
                if let Some((_, set)) = p.iothreads.iter().find(|(x, _)| *x == id) {
                    pinning::pin(tid, set, &format!("iothreadpin of iothread {id}"))?;
                }
            }
        }
    }
    if let Some(set) = &p.emulator {
        for tid in th.others.iter().filter(|x| !iothread_tids.contains(x)) {
            pinning::pin(*tid, set, "emulatorpin")?;
        }
    }
    Ok(())
}

/// After the run: cgroups, a swtpm still running, the run directory.
pub(crate) fn release(s: &Shared, def: &Def, uuid: &uuid::Uuid) {
    s.display_ports
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(uuid);
    let d = def.domain();
    cgroup::remove(d);
    let run_dir = s.layout.domain_run_dir(uuid);
    if d.tpm().is_some() {
        swtpm::stop(&swtpm_paths(s, d, &run_dir));
    }
    if let Err(e) = std::fs::remove_dir_all(&run_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %run_dir.display(), error = %e, "cannot remove the run directory");
    }
}
