//! Starting a domain: booting it, or loading saved state into a fresh
//! QEMU (`-incoming defer`). The caller holds a job.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use domain::Accel;
use qmp::commands::{Cont, QueryChardev};

use super::{host, stop};
use crate::emulator::monitor;
use crate::emulator::process::{self, Process};
use crate::events;
use crate::jobs;
use crate::object::Domain;
use crate::object::def::Def;
use crate::object::run::{RunCtx, RunStart};
use crate::shared::Shared;
use crate::state::StopCause;
use crate::store::status;
use crate::{Error, Result};

/// Where a restore loads the guest's state from (`-incoming defer`, then
/// `migrate-incoming`), and the definition saved with it.
pub(crate) struct Incoming {
    pub(crate) def: Arc<Def>,
    /// The image, positioned at its migration stream (handed to QEMU).
    pub(crate) image: std::fs::File,
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
    let (def, image) = {
        let g = dom.lock();
        g.check_can_start(dom.name())?;
        match incoming {
            Some(inc) => (inc.def, Some(inc.image)),
            None => (g.def().clone(), None),
        }
    };
    let (argv, run) = command_line(s, dom, &def, image.is_some()).await?;
    let (ctx, process) = match spawn(s, dom, &def, &argv) {
        Ok(started) => started,
        Err(e) => {
            host::release(s, &def, &dom.uuid());
            return Err(e);
        }
    };
    dom.lock().update_live(ctx.generation, |d| {
        d.with_live(|l| {
            l.run_dir = Some(run.run_dir.clone());
            l.spice_port = run.spice_port;
        })
    });
    match finish_start(s, dom, &ctx, &process, paused, image.as_ref()).await {
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

/// Checks what QEMU will need, builds its command line and prepares the
/// host for it (see [`host::prepare`]).
async fn command_line(
    s: &Shared,
    dom: &Domain,
    def: &Def,
    incoming: bool,
) -> Result<(Vec<String>, host::Prepared)> {
    let accel = choose_accel(s, def).await?;
    def.check_emulator()?;
    def.check_disks()?;
    let caps = s
        .caps
        .get(def.emulator(), &s.layout.caps_dir, s.cfg.monitor_timeout)
        .await?;
    let socket = s.layout.monitor_socket(&dom.uuid());
    let _ = std::fs::remove_file(&socket);
    let run = host::plan(s, dom, def)?;
    let mut argv = def.argv(&socket, &run.run_dir, accel, &caps, run.spice_port)?;
    if let Err(e) = host::prepare(s, def, &run).await {
        host::release(s, def, &dom.uuid());
        return Err(e);
    }
    // The driver decides what a guest power-off means (on_poweroff, fake
    // reboot), so QEMU must stay alive for it.
    argv.push("-no-shutdown".into());
    if incoming {
        argv.extend(["-incoming".into(), "defer".into()]);
    }
    Ok((argv, run))
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

/// Spawns QEMU and begins the run (paused, starting up).
fn spawn(
    s: &Shared,
    dom: &Arc<Domain>,
    def: &Def,
    argv: &[String],
) -> Result<(Arc<RunCtx>, Arc<Process>)> {
    let id = s.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = s.layout.log(dom.name());
    log_header(&log, dom.name(), id, argv);
    let process = Arc::new(
        process::spawn(argv, def.env(), &log)
            .map_err(|e| Error::io(format!("cannot execute {}", def.emulator().display()), e))?,
    );
    let start = RunStart {
        process: process.clone(),
        start_time: process::start_time(process.pid()).unwrap_or(0),
        socket: s.layout.monitor_socket(&dom.uuid()),
    };
    let ctx = dom.lock().start_run(id, def, start);
    s.registry.set_id(id, dom);
    Ok((ctx, process))
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
    incoming: Option<&std::fs::File>,
) -> Result<()> {
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
    // Persist before the guest runs: a daemon killed from here on finds it.
    status::persist(s, dom)?;
    if let Some(image) = incoming {
        jobs::restore::load(s, dom, ctx, image).await?;
    }
    if !paused {
        dom.qmp(&Cont, t).await?;
    }
    let restored = incoming.is_some();
    if !dom
        .lock()
        .boot_complete(dom, &s.hub, ctx.generation, paused, restored)
    {
        return Err(gone_during_startup());
    }
    status::persist(s, dom)
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
