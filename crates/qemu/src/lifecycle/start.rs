//! Starting a domain: booting it, or loading saved state into a fresh
//! QEMU (`-incoming defer`). The caller holds a job.
//!
//! The start is recorded before anything outside the daemon exists for it
//! (see `store::status::Phase`): first an O(1) proof that no QEMU of the
//! domain is alive ([`claim`]), then the intent record, then the host's
//! preparation (NVRAM, swtpm, cgroups: `host::prepare`), then the spawn,
//! then the pid. A daemon killed at any instant of this leaves a record
//! that names the domain, so the next daemon finds its QEMU (and kills it:
//! the start did not complete) rather than orphan it or start a second.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::Accel;
use qmp::commands::{Cont, QueryChardev};

use super::{host, stop};
use crate::config::StartStage;
use crate::emulator::liveness::{self, RunLock};
use crate::emulator::monitor;
use crate::emulator::process::{self, Process};
use crate::events;
use crate::jobs;
use crate::nics;
use crate::object::Domain;
use crate::object::Started;
use crate::object::def::Def;
use crate::object::run::{RunCtx, RunStart};
use crate::shared::Shared;
use crate::state::StopCause;
use crate::store::{files, status};
use crate::{Error, Result};

/// How long a start waits for a stale monitor socket to refuse a
/// connection before it counts as alive.
const SOCKET_PROBE: Duration = Duration::from_secs(1);

/// Where QEMU finds what it inherits: the run lock at the first number
/// (`confine::FIRST_TARGET`), the listening monitor socket next, then the
/// taps in interface order, then the sockets of serials and channels.
const MONITOR_FD: i32 = confine::FIRST_TARGET + 1;
const FIRST_TAP_FD: i32 = confine::FIRST_TARGET + 2;

/// Names, in the environment of a QEMU that runs as its own user, the
/// pidfile the exec helper wrote for it: how a restarted daemon tells its
/// QEMUs from others when their arguments name no file of the root.
pub(crate) const PIDFILE_ENV: &str = "FERROVIRT_PIDFILE";

/// Where a started QEMU gets its guest's state from (`-incoming defer`,
/// then `migrate-incoming`), and the definition that goes with it.
pub(crate) struct Incoming {
    pub(crate) def: Arc<Def>,
    pub(crate) from: IncomingFrom,
}

/// The stream an incoming QEMU reads.
pub(crate) enum IncomingFrom {
    /// A save image, positioned at its migration stream (handed to QEMU).
    /// `consume` names a managed-save image: removed once QEMU holds the
    /// state and before the guest runs, so a guest never runs twice from
    /// one image (a start killed after that ends like a power cut, not in
    /// a stale resume).
    Image {
        image: std::fs::File,
        consume: Option<PathBuf>,
    },
    /// Another host's migration: QEMU listens on this `migrate-incoming`
    /// URI (as `flags` ask: TLS, post-copy); the start returns with the
    /// guest paused, waiting for it.
    Migration {
        listen: String,
        flags: jobs::migration::MigrateFlags,
    },
}

/// Boots a defined, inactive domain.
pub(crate) async fn boot(s: &Arc<Shared>, dom: &Arc<Domain>, paused: bool) -> Result<()> {
    start_from(s, dom, paused, None).await
}

/// Starts a domain, booting it or (with `incoming`) restoring saved state.
/// On failure QEMU is killed and the run cleaned up without a STOPPED
/// event (no STARTED was emitted).
pub(crate) async fn start_from(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    paused: bool,
    incoming: Option<Incoming>,
) -> Result<()> {
    // SPICE has no "first free port" of its own: the port the driver
    // checked may be taken by another process before QEMU binds it. A boot
    // that failed only for that is tried again with the next free port.
    let mut tries = SPICE_PORT_TRIES;
    loop {
        match start_once(s, dom, paused, incoming.as_ref()).await {
            Err(e) if incoming.is_none() && tries > 1 && host::lost_display_port(&e) => {
                tracing::info!(
                    domain = dom.name(),
                    "SPICE port taken meanwhile; trying another"
                );
                tries -= 1;
            }
            res => return res,
        }
    }
}

/// How many times a boot is tried when its SPICE port was taken.
const SPICE_PORT_TRIES: u32 = 3;

async fn start_once(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    paused: bool,
    incoming: Option<&Incoming>,
) -> Result<()> {
    let (def, persistent) = {
        let g = dom.lock();
        g.check_can_start(dom.name())?;
        match &incoming {
            Some(inc) => (inc.def.clone(), g.persistent()),
            None => (g.def().clone(), g.persistent()),
        }
    };
    let (cmd, run) = command_line(s, dom, &def, incoming.is_some()).await?;
    let (ctx, process) = launch(s, dom, &def, persistent, &cmd, &run).await?;
    let taps: Vec<Option<String>> = dom.lock().run().map_or_else(Vec::new, |r| {
        r.taps()
            .iter()
            .map(|t| t.as_ref().map(|t| t.name.clone()))
            .collect()
    });
    dom.lock().update_live(ctx.generation, |d| {
        d.with_live(|l| {
            l.run_dir = Some(run.run_dir.clone());
            l.spice_port = run.spice_port;
            l.taps = taps;
        })
    });
    match finish_start(s, dom, &ctx, &process, paused, incoming).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::info!(domain = dom.name(), error = %e, "start failed");
            let _ = process.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(10), process.exited()).await;
            stop::cleanup(s, dom, ctx.generation, Some(StopCause::StartFailed));
            Err(e)
        }
    }
}

/// Proves, in O(1), that no QEMU of `dom` is alive, and takes the run lock
/// its QEMU will inherit. A live one (even one no record names) fails the
/// start with its pid: a start never runs a second QEMU, and never unlinks
/// a live QEMU's monitor socket. Files of a QEMU that is gone are removed.
async fn claim(s: &Shared, dom: &Domain) -> Result<RunLock> {
    let uuid = dom.uuid();
    let alive = |pid: Option<i32>| {
        let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        Error::Qemu(format!(
            "a QEMU process{pid} of domain '{}' is still running; not starting another",
            dom.name()
        ))
    };
    let pidfile = s.layout.pidfile(&uuid);
    let lock = RunLock::acquire(&s.layout.run_lock(&uuid))
        .map_err(|e| Error::io("cannot take the domain's run lock", e))?
        .ok_or_else(|| alive(liveness::pidfile_holder(&pidfile)))?;
    if let Some(pid) = liveness::pidfile_holder(&pidfile) {
        return Err(alive(Some(pid)));
    }
    let socket = s.layout.monitor_socket(&uuid);
    if monitor_listens(&socket).await {
        return Err(alive(None));
    }
    // Left by a QEMU that was killed: QEMU would replace them itself.
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pidfile);
    Ok(lock)
}

/// Whether something accepts connections on the monitor socket `path`.
async fn monitor_listens(path: &Path) -> bool {
    if !path.exists() {
        return false;
    }
    matches!(
        tokio::time::timeout(SOCKET_PROBE, tokio::net::UnixStream::connect(path)).await,
        Ok(Ok(_)) | Err(_)
    )
}

/// Claims the domain, creates the taps of its NICs, records the intent
/// (naming the taps), prepares the host, then spawns QEMU (which inherits
/// the run lock and the taps) and begins the run. On failure nothing it
/// made is left: the taps and the host's preparation are released and the
/// intent removed.
async fn launch(
    s: &Shared,
    dom: &Arc<Domain>,
    def: &Def,
    persistent: bool,
    cmd: &CommandLine,
    run: &host::Prepared,
) -> Result<(Arc<RunCtx>, Arc<Process>)> {
    let lock = claim(s, dom).await?;
    let socket = s.layout.monitor_socket(&dom.uuid());
    let monitor = bind_monitor(&socket)?;
    let (taps, argv) = taps_and_argv(s, def, cmd, run).await?;
    let records = taps.records();
    let id = s.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let owned = s.owned.hold(dom.uuid(), run.owned.clone());
    let intent = status::StatusRecord::intent(
        dom,
        persistent,
        id,
        &def.live(id),
        socket,
        records.clone(),
        owned.clone(),
    );
    if let Err(e) = status::record_intent(s, dom, &intent) {
        nics::release(s, &records);
        s.owned.release(dom.uuid(), &owned);
        return Err(e);
    }
    let prepared = match nics::apply_bandwidth(s, def.domain(), &records).await {
        Ok(()) => host::prepare(s, def, run, &owned).await,
        Err(e) => Err(e),
    };
    let spawned = match prepared.and_then(|()| cmd.bind_sockets(def, run)) {
        Ok(sockets) => {
            let h = Handover {
                lock: &lock,
                monitor: &monitor,
                taps: &taps,
                sockets: &sockets,
                owned: owned.clone(),
            };
            spawn(s, dom, def, &argv, id, h)
        }
        Err(e) => Err(e),
    };
    // QEMU holds the run lock, the monitor socket and the taps from here
    // on (or nothing was spawned, and they go with the daemon's
    // descriptors). The daemon's copy of the listener must be gone before
    // it connects: a QEMU that dies then closes the last one, and the
    // connection ends instead of waiting in the backlog.
    drop(lock);
    drop(monitor);
    drop(taps);
    if spawned.is_err() {
        nics::release(s, &records);
        s.owned.release(dom.uuid(), &owned);
        host::release(s, def, &dom.uuid());
        status::remove(s, dom);
    }
    spawned
}

/// Binds the monitor socket QEMU listens on (it inherits the listener, so
/// it needs no access to the run directory). A file left at `path` was
/// removed by [`claim`].
fn bind_monitor(path: &Path) -> Result<UnixListener> {
    UnixListener::bind(path).map_err(|e| {
        Error::io(
            format!("cannot bind the monitor socket {}", path.display()),
            e,
        )
    })
}

/// The taps of `def`'s NICs, and QEMU's argv that hands them over. The
/// taps are held only by the daemon until QEMU inherits them: a daemon
/// killed before the intent names them takes them along (see `nics`). On
/// failure none is left.
async fn taps_and_argv(
    s: &Shared,
    def: &Def,
    cmd: &CommandLine,
    run: &host::Prepared,
) -> Result<(nics::Taps, Vec<String>)> {
    let taps = nics::create(s, def.domain()).await?;
    match cmd.argv(def, run, taps.fds_from(FIRST_TAP_FD)) {
        Ok(argv) => Ok((taps, argv)),
        Err(e) => {
            nics::release(s, &taps.records());
            Err(e)
        }
    }
}

/// What QEMU's command line is built from, checked before anything
/// outside the daemon exists; only the taps' descriptors are missing.
struct CommandLine {
    accel: Accel,
    caps: Arc<domain::EmulatorCaps>,
    socket: PathBuf,
    incoming: bool,
    vhost_net: bool,
    /// QEMU's `-sandbox` argument, if any.
    sandbox: Option<String>,
    /// QEMU's `-pidfile`; `None` when the exec helper writes it (QEMU runs
    /// as a user that cannot write the run directory).
    pidfile: Option<PathBuf>,
    /// The daemon binds the sockets of serials and channels in bind mode
    /// and QEMU inherits them (it runs as a user that could not create
    /// them in the domain's run directory).
    bind_sockets: bool,
}

impl CommandLine {
    /// Binds the sockets QEMU inherits for its serials and channels (see
    /// `bind_sockets`), in the order of the argv's descriptor numbers. A
    /// file left at a path is replaced, as QEMU replaces it.
    fn bind_sockets(&self, def: &Def, run: &host::Prepared) -> Result<Vec<UnixListener>> {
        if !self.bind_sockets {
            return Ok(Vec::new());
        }
        let paths = def.domain().listening_sockets(&run.run_dir);
        paths
            .iter()
            .map(|p| {
                let _ = std::fs::remove_file(p);
                UnixListener::bind(p)
                    .map_err(|e| Error::io(format!("cannot bind {}", p.display()), e))
            })
            .collect()
    }

    /// QEMU's argv, with `taps` (the descriptor of each interface's tap,
    /// by index) for QEMU to inherit.
    fn argv(&self, def: &Def, run: &host::Prepared, taps: Vec<Option<i32>>) -> Result<Vec<String>> {
        // After the taps, in the order of `listening_sockets`.
        let after_taps = FIRST_TAP_FD
            .saturating_add(i32::try_from(taps.iter().flatten().count()).unwrap_or(i32::MAX));
        let bound_sockets = if self.bind_sockets {
            let paths = def.domain().listening_sockets(&run.run_dir);
            paths.into_iter().zip(after_taps..).collect()
        } else {
            Vec::new()
        };
        let launch = domain::LaunchParams {
            bound_sockets,
            domain_run_dir: run.run_dir.clone(),
            accel: self.accel,
            taps,
            vhost_net: self.vhost_net,
            spice_port: run.spice_port,
            monitor_fd: Some(MONITOR_FD),
            pidfile: self.pidfile.clone(),
            ..Default::default()
        };
        let mut argv = def.argv(&self.socket, &self.caps, launch)?;
        // The driver decides what a guest power-off means (on_poweroff, fake
        // reboot), so QEMU must stay alive for it.
        argv.push("-no-shutdown".into());
        if let Some(sandbox) = &self.sandbox {
            argv.extend(["-sandbox".into(), sandbox.clone()]);
        }
        if self.incoming {
            argv.extend(["-incoming".into(), "defer".into()]);
        }
        Ok(argv)
    }
}

/// Checks what QEMU will need, plans the host's side of the run and checks
/// that QEMU's command line builds (with stand-ins for the taps' descriptors).
/// Nothing outside the daemon is touched yet.
async fn command_line(
    s: &Shared,
    dom: &Domain,
    def: &Def,
    incoming: bool,
) -> Result<(CommandLine, host::Prepared)> {
    let accel = choose_accel(s, def).await?;
    def.check_emulator()?;
    def.check_disks()?;
    nics::check(def.domain())?;
    let caps = s
        .caps
        .get(def.emulator(), &s.layout.caps_dir, s.cfg.monitor_timeout)
        .await?;
    let run = host::plan(s, dom, def)?;
    let cmd = CommandLine {
        accel,
        caps,
        socket: s.layout.monitor_socket(&dom.uuid()),
        incoming,
        // QEMU opens /dev/vhost-net itself: only as the daemon's user.
        vhost_net: s.cfg.confinement.creds.is_none() && vhost_net_usable(),
        sandbox: s.cfg.confinement.sandbox.clone(),
        pidfile: s
            .cfg
            .confinement
            .creds
            .is_none()
            .then(|| s.layout.pidfile(&dom.uuid())),
        bind_sockets: s.cfg.confinement.creds.is_some(),
    };
    let stand_ins = def
        .domain()
        .devices
        .interfaces
        .iter()
        .map(|n| (n.itype != domain::InterfaceType::User).then_some(-1))
        .collect();
    cmd.argv(def, &run, stand_ins)?;
    Ok((cmd, run))
}

/// Whether QEMU can open `/dev/vhost-net` (it runs as the daemon's user):
/// without it tap NICs run without vhost, as libvirt falls back.
pub(crate) fn vhost_net_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vhost-net")
        .is_ok()
}

/// Picks the accelerator: KVM when the definition asks for it (and fails
/// clearly when the host cannot run KVM guests), TCG for type='qemu'.
async fn choose_accel(s: &Shared, def: &Def) -> Result<Accel> {
    match def.accel() {
        Accel::Kvm if !s.kvm_available().await => Err(Error::ConfigUnsupported(
            "domain type 'kvm' requested but KVM cannot run guests on this host".into(),
        )),
        a => Ok(a),
    }
}

/// What a spawned QEMU takes over from its start: the descriptors it
/// inherits, and the files given to its user.
struct Handover<'a> {
    lock: &'a RunLock,
    monitor: &'a UnixListener,
    taps: &'a nics::Taps,
    /// Serials' and channels' listening sockets (see `bind_sockets`).
    sockets: &'a [UnixListener],
    owned: Vec<host::owner::Owned>,
}

/// Spawns QEMU as domain `id`, handing it the run lock, the monitor and
/// the taps, and begins the run (paused, starting up).
fn spawn(
    s: &Shared,
    dom: &Arc<Domain>,
    def: &Def,
    argv: &[String],
    id: u32,
    h: Handover<'_>,
) -> Result<(Arc<RunCtx>, Arc<Process>)> {
    use std::os::fd::AsFd;
    let log = s.layout.log(dom.name());
    log_header(&log, dom.name(), id, argv);
    // The run lock, the monitor, the taps, the chardev sockets: see
    // MONITOR_FD and `CommandLine::argv`.
    let mut inherit = vec![h.lock.fd(), h.monitor.as_fd()];
    inherit.extend(h.taps.inherited());
    inherit.extend(h.sockets.iter().map(AsFd::as_fd));
    let plan = confinement(s, def, &dom.uuid());
    let mut env = def.env().to_vec();
    if let Some(pidfile) = &plan.pidfile {
        env.push((PIDFILE_ENV.to_owned(), pidfile.display().to_string()));
    }
    let launch = process::Launch {
        helper: &s.cfg.confinement.exec_helper,
        plan,
        inherit,
    };
    let process = Arc::new(
        process::spawn(argv, &env, &log, launch)
            .map_err(|e| Error::io(format!("cannot execute {}", def.emulator().display()), e))?,
    );
    let start = RunStart {
        process: process.clone(),
        start_time: process::start_time(process.pid()).unwrap_or(0),
        socket: s.layout.monitor_socket(&dom.uuid()),
        taps: h.taps.records(),
        owned: h.owned,
    };
    let ctx = dom.lock().start_run(id, def, start);
    s.registry.set_id(id, dom);
    Ok((ctx, process))
}

/// What the exec helper does for this guest's QEMU: a private `/dev` with
/// the nodes the guest uses (when mount namespaces are configured), the
/// configured user (the helper then writes QEMU's pidfile), and no new
/// privileges either way.
fn confinement(s: &Shared, def: &Def, uuid: &uuid::Uuid) -> confine::Plan {
    let c = &s.cfg.confinement;
    let mut plan = if c.mount_namespace {
        let disks = def.disk_paths();
        confine::Plan::guest(
            def.accel() == Accel::Kvm,
            disks.iter().map(PathBuf::as_path),
        )
    } else {
        confine::Plan {
            no_new_privs: true,
            ..confine::Plan::default()
        }
    };
    plan.creds = c.creds.clone();
    if plan.creds.is_some() {
        plan.pidfile = Some(s.layout.pidfile(uuid));
    }
    plan
}

fn log_header(log: &Path, name: &str, id: u32, argv: &[String]) {
    let line = format!("--- starting domain {name} (id {id}): {}\n", argv.join(" "));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

fn gone_during_startup() -> Error {
    Error::Qemu("domain was destroyed during startup".into())
}

async fn finish_start(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    ctx: &Arc<RunCtx>,
    process: &Arc<Process>,
    paused: bool,
    incoming: Option<&Incoming>,
) -> Result<()> {
    pause_point(s, dom, process, StartStage::Spawned).await;
    // The pid on disk: a restarted daemon finds this QEMU without a scan.
    status::persist(s, dom)?;
    let socket = s.layout.monitor_socket(&dom.uuid());
    let log = s.layout.log(dom.name());
    let t = s.cfg.monitor_timeout;
    let (mon, events) = monitor::connect(&socket, &s.qmp, process, t, Some(&log)).await?;
    if !dom.lock().attach_monitor(ctx.generation, mon) {
        return Err(gone_during_startup());
    }
    events::spawn_run_tasks(s, dom, ctx, Some(events), process.clone());
    fill_ptys(s, dom, ctx).await;
    host::configure(s, dom, ctx, &dom.def_for_xml(false), process.pid()).await?;
    jobs::migration::unthrottle(s, dom).await;
    let how = match incoming.map(|i| &i.from) {
        None => Started::Booted,
        Some(IncomingFrom::Image { image, consume }) => {
            jobs::restore::load(s, dom, ctx, image).await?;
            if let Some(path) = consume {
                files::remove(path)
                    .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
            }
            Started::Restored
        }
        Some(IncomingFrom::Migration { listen, flags }) => {
            jobs::migration::listen(s, dom, listen, *flags).await?;
            Started::Migrated
        }
    };
    let paused = paused || how == Started::Migrated;
    if !paused {
        dom.qmp(&Cont, t).await?;
    }
    if !dom
        .lock()
        .boot_complete(dom, &s.hub, ctx.generation, paused, how)
    {
        return Err(gone_during_startup());
    }
    status::persist(s, dom)?;
    pause_point(s, dom, process, StartStage::Recorded).await;
    Ok(())
}

/// The test aid of `DriverConfig::pause_point`: at `stage`, if that is the
/// pause point, writes the marker (domain name and QEMU's pid), then this
/// start never returns.
async fn pause_point(s: &Shared, dom: &Domain, process: &Process, stage: StartStage) {
    let Some(marker) = s
        .cfg
        .pause_point
        .as_ref()
        .filter(|p| p.at == stage)
        .map(|p| &p.marker)
    else {
        return;
    };
    let line = format!("{} {}\n", dom.name(), process.pid());
    if let Err(e) = std::fs::write(marker, line) {
        tracing::error!(marker = %marker.display(), error = %e, "cannot write the pause marker");
    }
    tracing::warn!(
        domain = dom.name(),
        pid = process.pid(),
        ?stage,
        "start paused (a pause point is set)"
    );
    std::future::pending::<()>().await;
}

/// Records the pty paths QEMU allocated for pty serials in the live
/// definition, so `dumpxml` shows `<source path='/dev/pts/N'/>` as libvirt
/// does. Best effort: a failure leaves the paths out, nothing else.
pub(crate) async fn fill_ptys(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let ids = dom.def_for_xml(false).serial_chardev_ids();
    if ids.is_empty() {
        return;
    }
    let Ok(chardevs) = dom.qmp(&QueryChardev, s.cfg.monitor_timeout).await else {
        return;
    };
    let ptys = ids
        .iter()
        .map(|id| {
            chardevs
                .iter()
                .find(|c| c.label == *id)
                .and_then(|c| c.filename.strip_prefix("pty:"))
                .map(str::to_owned)
        })
        .collect();
    dom.lock().set_serial_ptys(ctx.generation, ptys);
}
