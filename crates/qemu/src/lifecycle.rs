//! Domain lifecycle operations (start, destroy, shutdown, reboot, reset,
//! suspend, resume), the cleanup of a stopped QEMU, and the per-run action
//! task that runs follow-up work needing a job.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use joblock::NormalJob;

use crate::actions;
use crate::def::{Accel, Def, LifecycleAction};
use crate::domain::{Domain, Run, RunCtx, command};
use crate::driver::Shared;
use crate::events;
use crate::jobs;
use crate::monitor;
use crate::persist::{self, StatusRecord};
use crate::process::{self, Process};
use crate::state::{
    DomainState, EventKind, LifecycleKind as L, StateReason, StopCause, detail, paused, running,
};
use crate::{Error, Result};

/// Picks the accelerator: KVM when the definition asks for it (and fails
/// clearly when the host cannot), TCG for type='qemu'.
async fn choose_accel(s: &Shared, def: &Def) -> Result<Accel> {
    match def.accel() {
        Accel::Kvm if !crate::driver::kvm_available(s).await => Err(Error::ConfigUnsupported(
            "domain type 'kvm' requested but KVM cannot run guests on this host".into(),
        )),
        a => Ok(a),
    }
}

/// Where a restore loads the guest's state from (`-incoming defer`, then
/// `migrate-incoming`), and the definition saved with it.
pub(crate) struct Incoming {
    pub def: Arc<Def>,
    /// The image, positioned at its migration stream (handed to QEMU).
    pub image: std::fs::File,
}

/// Starts a defined, inactive domain. Caller holds a job.
pub(crate) async fn start_locked(s: &Arc<Shared>, dom: &Arc<Domain>, paused: bool) -> Result<()> {
    start_from(s, dom, paused, None).await
}

/// Starts a domain, booting it or (with `incoming`) restoring saved state.
/// Caller holds a job.
pub(crate) async fn start_from(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    paused: bool,
    incoming: Option<Incoming>,
) -> Result<()> {
    let def = {
        let g = dom.lock();
        if g.removed {
            return Err(Error::NoDomain(format!(
                "no domain with name '{}'",
                dom.name()
            )));
        }
        if g.state.state.is_active() {
            return Err(Error::AlreadyActive);
        }
        match &incoming {
            Some(inc) => inc.def.clone(),
            None => g.def.clone(),
        }
    };
    let accel = choose_accel(s, &def).await?;
    def.check_emulator()?;
    def.check_disks()?;
    let caps = s
        .caps
        .get(def.emulator(), &s.layout.caps_dir, s.cfg.monitor_timeout)
        .await?;
    let socket = s.layout.monitor_socket(&dom.uuid());
    let _ = std::fs::remove_file(&socket);
    let mut argv = def.argv(&socket, accel, &caps)?;
    argv.push("-no-shutdown".into());
    if incoming.is_some() {
        argv.extend(["-incoming".into(), "defer".into()]);
    }
    let id = s.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = s.layout.log(dom.name());
    log_header(&log, dom.name(), id, &argv);
    let process = Arc::new(
        process::spawn(&argv, def.env(), &log)
            .map_err(|e| Error::io(format!("cannot execute {}", def.emulator().display()), e))?,
    );
    let start_time = process::start_time(process.pid()).unwrap_or(0);
    let ctx = {
        let mut g = dom.lock();
        g.generation += 1;
        let ctx = RunCtx::new(g.generation);
        g.id = Some(id);
        g.live = Some(Arc::new(def.live(id)));
        g.run = Some(Run {
            ctx: ctx.clone(),
            process: process.clone(),
            start_time,
            socket: socket.clone(),
            monitor: None,
            unresponsive: false,
            shutdown_seen: None,
            fake_reboot: false,
            kill_reason: None,
            pending_pause: None,
            pending_resume: None,
            owed_stop: 0,
            owed_resume: 0,
            pivoted_nodes: Vec::new(),
        });
        g.state = StateReason::new(DomainState::Paused, paused::STARTING_UP);
        ctx
    };
    s.registry.set_id(id, dom);
    let image = incoming.map(|i| i.image);
    match finish_start(s, dom, &ctx, &process, paused, image.as_ref()).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(domain = dom.name(), error = %e, "start failed");
            let _ = process.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(10), process.exited()).await;
            cleanup(s, dom, ctx.generation, Some(StopCause::StartFailed));
            Err(e)
        }
    }
}

fn log_header(log: &std::path::Path, name: &str, id: u32, argv: &[String]) {
    let line = format!("--- starting domain {name} (id {id}): {}\n", argv.join(" "));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
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
    let (mon, events) =
        monitor::connect(&socket, &s.qmp, process, s.cfg.monitor_timeout, Some(&log)).await?;
    {
        let mut g = dom.lock();
        let run = g
            .run_of(ctx.generation)
            .ok_or_else(|| Error::Qemu("domain was destroyed during startup".into()))?;
        run.monitor = Some(mon);
    }
    events::spawn_run_tasks(s, dom, ctx, Some(events), process.clone());
    fill_ptys(s, dom, ctx).await;
    // Persist before the guest runs: a daemon killed from here on finds it.
    persist_status(s, dom)?;
    if let Some(image) = incoming {
        jobs::restore_image::load(s, dom, ctx, image).await?;
    }
    if !paused {
        command(dom, s.cfg.monitor_timeout, "cont", None).await?;
    }
    {
        let mut g = dom.lock();
        if g.run_of(ctx.generation).is_none() {
            return Err(Error::Qemu("domain was destroyed during startup".into()));
        }
        let (det, reason) = match incoming {
            Some(_) => (detail::STARTED_RESTORED, running::RESTORED),
            None => (detail::STARTED_BOOTED, running::BOOTED),
        };
        let booted = EventKind::lifecycle(L::Started, det);
        if paused {
            let st = StateReason::new(DomainState::Paused, paused::USER);
            g.set_state(dom, &s.hub, st, Some(booted));
            g.emit(
                dom,
                &s.hub,
                EventKind::lifecycle(L::Suspended, detail::SUSPENDED_PAUSED),
            );
        } else {
            let st = StateReason::new(DomainState::Running, reason);
            g.set_state(dom, &s.hub, st, Some(booted));
        }
    }
    persist_status(s, dom)
}

/// Records the pty paths QEMU allocated for pty serials in the live
/// definition, so `dumpxml` shows `<source path='/dev/pts/N'/>` as libvirt
/// does. Best effort: a failure leaves the paths out, nothing else.
pub(crate) async fn fill_ptys(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let ids = dom.def_for_xml(false).serial_chardev_ids();
    if ids.is_empty() {
        return;
    }
    let Ok(v) = command(dom, s.cfg.monitor_timeout, "query-chardev", None).await else {
        return;
    };
    let ptys = ids
        .iter()
        .map(|id| {
            v.as_array()?
                .iter()
                .find(|c| monitor::str_field(c, "label") == Some(id))
                .and_then(|c| monitor::str_field(c, "filename"))
                .and_then(|f| f.strip_prefix("pty:"))
                .map(str::to_owned)
        })
        .collect();
    let mut g = dom.lock();
    if g.run_of(ctx.generation).is_some()
        && let Some(live) = g.live.clone()
    {
        g.live = Some(Arc::new(live.with_ptys(ptys)));
    }
}

/// Writes the status record of the current run (nothing if not running).
/// The per-domain persist lock orders writes against the removal in
/// [`cleanup`], so a late write never resurrects a stopped domain's file.
pub(crate) fn persist_status(s: &Shared, dom: &Domain) -> Result<()> {
    let _p = dom.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
    let (mut rec, live) = {
        let g = dom.lock();
        let Some(run) = g.run.as_ref() else {
            return Ok(());
        };
        let rec = StatusRecord {
            version: persist::STATUS_VERSION,
            name: dom.name().to_owned(),
            uuid: dom.uuid(),
            id: g.id.unwrap_or(0),
            pid: run.process.pid(),
            pid_start_time: run.start_time,
            monitor: run.socket.clone(),
            state: g.state,
            persistent: g.persistent,
            live_xml: String::new(),
            shutdown_seen: run.shutdown_seen.is_some(),
            fake_reboot: run.fake_reboot,
            job: g.job.as_ref().map(|j| persist::JobRecord {
                kind: j.kind.clone(),
                path: j.path.clone().unwrap_or_default(),
                resume_running: j.resume_running,
                started_ms: j
                    .started
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            }),
            block_job: g.block_job.clone(),
            completed_job: g.completed_job.clone(),
        };
        (rec, g.live.clone().unwrap_or_else(|| g.def.clone()))
    };
    rec.live_xml = live.to_xml();
    let path = s.layout.status(&dom.uuid());
    persist::atomic_write(&path, &rec.to_bytes())
        .map_err(|e| Error::io(format!("cannot write status file {}", path.display()), e))
}

/// Tears down the bookkeeping of run `generation` after its QEMU is gone
/// (or is being killed): shutoff state, STOPPED event, files removed, a
/// transient domain forgotten. Returns false if that run was already
/// cleaned up (by whoever got here first).
pub(crate) fn cleanup(
    s: &Shared,
    dom: &Arc<Domain>,
    generation: u64,
    cause: Option<StopCause>,
) -> bool {
    let (run, id, transient) = {
        let mut g = dom.lock();
        if g.run_of(generation).is_none() {
            return false;
        }
        let Some(run) = g.run.take() else {
            return false;
        };
        let cause = cause
            .or(run.kill_reason)
            .or(run.shutdown_seen.map(|_| StopCause::Shutdown))
            .unwrap_or(StopCause::Failed);
        let id = g.id.take();
        g.live = None;
        g.job = None;
        let ev = cause
            .stopped_detail()
            .map(|d| EventKind::lifecycle(L::Stopped, d));
        g.set_state(
            dom,
            &s.hub,
            StateReason::shutoff(cause.shutoff_reason()),
            ev,
        );
        let transient = !g.persistent;
        if transient {
            g.removed = true;
        }
        (run, id, transient)
    };
    if let Some(id) = id {
        s.registry.clear_id(id, dom);
    }
    if transient {
        s.registry.remove(dom);
        dom.jobs.close("transient domain stopped");
    }
    if let Some(m) = &run.monitor {
        m.close();
    }
    run.ctx.update_progress(|p| p.closed = true);
    run.process.reap();
    {
        let _p = dom.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let status = s.layout.status(&dom.uuid());
        if let Err(e) = persist::remove(&status) {
            tracing::warn!(domain = dom.name(), error = %e, "cannot remove status file");
        }
    }
    let _ = std::fs::remove_file(&run.socket);
    true
}

/// Kills QEMU first (freeing any job stuck on its monitor), then takes the
/// destroy job — queued ahead of everything — to clean up (requirement 6).
pub(crate) async fn destroy(s: &Shared, dom: &Arc<Domain>, graceful: bool) -> Result<()> {
    let (process, generation) = {
        let mut g = dom.lock();
        let generation = g.generation;
        let run = g.run.as_mut().ok_or(Error::NotRunning)?;
        run.kill_reason.get_or_insert(StopCause::Destroyed);
        (run.process.clone(), generation)
    };
    let gone = process
        .terminate(s.cfg.destroy_grace, !graceful)
        .await
        .map_err(|e| Error::io("cannot kill QEMU", e))?;
    if !gone {
        if let Some(run) = dom.lock().run_of(generation) {
            run.kill_reason = None;
        }
        return Err(Error::Qemu(format!(
            "failed to terminate process {} with SIGTERM",
            process.pid()
        )));
    }
    let _job = jobs::begin_destroy(dom, "destroy", s.cfg.job_wait).await;
    cleanup(s, dom, generation, Some(StopCause::Destroyed));
    Ok(())
}

/// Checks the domain can take a monitor command, returning its run context.
fn active_ctx(dom: &Domain) -> Result<Arc<RunCtx>> {
    let g = dom.lock();
    match (&g.run, g.state.state) {
        (Some(run), st) if st.is_active() => Ok(run.ctx.clone()),
        _ => Err(Error::NotRunning),
    }
}

/// `virsh suspend`.
pub(crate) async fn suspend(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Suspend, owner, s.cfg.job_wait).await?;
    let ctx = active_ctx(dom)?;
    {
        let mut g = dom.lock();
        match g.state.state {
            DomainState::Paused => return Ok(()),
            DomainState::Running => {}
            _ => return Err(Error::OperationInvalid("domain is not running".into())),
        }
        if let Some(run) = g.run_of(ctx.generation) {
            run.pending_pause = Some(paused::USER);
        }
    }
    let res = command(dom, s.cfg.monitor_timeout, "stop", None).await;
    let mut g = dom.lock();
    if res.is_err() {
        if let Some(run) = g.run_of(ctx.generation) {
            run.pending_pause = None;
        }
        return res.map(|_| ());
    }
    // The STOP event may not have been handled yet: apply it now; the
    // handler will then see "already paused" and do nothing.
    if g.state.state == DomainState::Running
        && let Some(run) = g.run_of(ctx.generation)
    {
        run.owed_stop += 1;
        let ev = EventKind::lifecycle(L::Suspended, detail::SUSPENDED_PAUSED);
        g.set_state(
            dom,
            &s.hub,
            StateReason::new(DomainState::Paused, paused::USER),
            Some(ev),
        );
    }
    drop(g);
    persist_user_change(s, dom);
    Ok(())
}

/// Writes the status file before a user's state change returns, so a
/// daemon killed right after still knows why the guest is paused or
/// running (the reason is ours; QEMU only knows the state).
fn persist_user_change(s: &Shared, dom: &Domain) {
    if let Err(e) = persist_status(s, dom) {
        tracing::warn!(domain = dom.name(), error = %e, "cannot persist status");
    }
}

/// `virsh resume`.
pub(crate) async fn resume(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Resume, owner, s.cfg.job_wait).await?;
    let ctx = active_ctx(dom)?;
    match dom.state().state {
        DomainState::Running => return Ok(()),
        DomainState::Paused => {}
        _ => return Err(Error::OperationInvalid("domain is not paused".into())),
    }
    command(dom, s.cfg.monitor_timeout, "cont", None).await?;
    mark_running(s, dom, &ctx, running::UNPAUSED);
    persist_user_change(s, dom);
    Ok(())
}

/// Tells the RESUME handler which reason the coming `cont` has.
pub(crate) fn expect_resume(dom: &Domain, ctx: &RunCtx, reason: i32) {
    if let Some(run) = dom.lock().run_of(ctx.generation) {
        run.pending_resume = Some(reason);
    }
}

/// Applies a `cont` that succeeded, unless the RESUME event already did.
pub(crate) fn mark_running(s: &Shared, dom: &Domain, ctx: &RunCtx, reason: i32) {
    let mut g = dom.lock();
    if g.run_of(ctx.generation).is_none() || g.state.state == DomainState::Running {
        return;
    }
    if let Some(run) = g.run_of(ctx.generation) {
        run.pending_pause = None;
        run.pending_resume = None;
        run.owed_resume += 1;
    }
    let ev = EventKind::lifecycle(L::Resumed, detail::RESUMED_UNPAUSED);
    g.set_state(
        dom,
        &s.hub,
        StateReason::new(DomainState::Running, reason),
        Some(ev),
    );
    ctx.actions.set(actions::PERSIST);
}

/// `virsh shutdown` (ACPI power button). Returns once QEMU was asked; the
/// guest's SHUTDOWN event and on_poweroff do the rest.
pub(crate) async fn shutdown(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
    let ctx = active_ctx(dom)?;
    if let Some(run) = dom.lock().run_of(ctx.generation) {
        run.fake_reboot = false;
    }
    command(dom, s.cfg.monitor_timeout, "system_powerdown", None).await?;
    Ok(())
}

/// `virsh reboot`: ACPI power button with the fake-reboot flag, so the
/// guest's SHUTDOWN becomes reset + cont instead of a stop.
pub(crate) async fn reboot(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
    let ctx = active_ctx(dom)?;
    if let Some(run) = dom.lock().run_of(ctx.generation) {
        run.fake_reboot = true;
    }
    ctx.actions.set(actions::PERSIST);
    let res = command(dom, s.cfg.monitor_timeout, "system_powerdown", None).await;
    if res.is_err()
        && let Some(run) = dom.lock().run_of(ctx.generation)
    {
        run.fake_reboot = false;
    }
    res.map(|_| ())
}

/// `virsh reset`.
pub(crate) async fn reset(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
    active_ctx(dom)?;
    command(dom, s.cfg.monitor_timeout, "system_reset", None).await?;
    Ok(())
}

/// The per-run task that runs coalesced follow-up actions. Ends when its
/// run stops.
pub(crate) async fn action_loop(s: Arc<Shared>, dom: Arc<Domain>, ctx: Arc<RunCtx>) {
    loop {
        let bits = ctx.actions.wait().await;
        if bits & actions::RESYNC != 0 {
            resync(&s, &dom, &ctx).await;
        }
        if bits & actions::CRASH != 0 {
            on_crash(&s, &dom, &ctx).await;
        }
        if bits & actions::POWEROFF != 0 {
            on_poweroff(&s, &dom, &ctx).await;
        }
        if bits & actions::PERSIST != 0 {
            let _permit = s.handlers.acquire().await;
            if let Err(e) = persist_status(&s, &dom) {
                tracing::warn!(domain = dom.name(), error = %e, "cannot persist status");
            }
        }
        if bits & actions::STOPPED != 0 {
            on_stopped(&s, &dom, &ctx).await;
            return;
        }
    }
}

/// QEMU exited or its monitor closed.
async fn on_stopped(s: &Shared, dom: &Arc<Domain>, ctx: &RunCtx) {
    let process = match dom.lock().run_of(ctx.generation) {
        Some(run) => run.process.clone(),
        None => return,
    };
    // A monitor that broke (protocol error) leaves QEMU running but
    // unmanageable: stop it rather than leak it.
    if !process.has_exited() {
        tracing::warn!(
            domain = dom.name(),
            "monitor closed while QEMU runs: killing it"
        );
        let _ = process.terminate(s.cfg.destroy_grace, true).await;
    }
    let job = jobs::begin_destroy(dom, "cleanup after QEMU exit", s.cfg.job_wait).await;
    if let Err(e) = &job {
        tracing::warn!(domain = dom.name(), error = %e, "cleaning up without the job");
    }
    cleanup(s, dom, ctx.generation, None);
}

/// Re-reads state from QEMU after events were coalesced (requirement 3).
async fn resync(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    if dom.lock().run_of(ctx.generation).is_none() {
        return;
    }
    match command(dom, s.cfg.monitor_timeout, "query-status", None).await {
        Ok(v) => {
            if let Some(st) = monitor::str_field(&v, "status") {
                events::apply_qemu_status(s, dom, ctx, st);
            }
        }
        Err(e) => tracing::debug!(domain = dom.name(), error = %e, "resync query-status failed"),
    }
    if dom.lock().job.is_some()
        && let Ok(v) = command(dom, s.cfg.monitor_timeout, "query-migrate", None).await
        && let Some(st) = monitor::str_field(&v, "status")
    {
        let st = st.to_owned();
        ctx.update_progress(|p| p.migration = Some(st));
    }
}

/// The guest powered off (QEMU stays alive thanks to -no-shutdown).
async fn on_poweroff(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let (fake_reboot, action, process) = {
        let mut g = dom.lock();
        let action = g
            .live
            .as_ref()
            .map_or(LifecycleAction::Destroy, |d| d.on_poweroff());
        match g.run_of(ctx.generation) {
            Some(run) if run.kill_reason.is_none() => {
                (run.fake_reboot, action, run.process.clone())
            }
            _ => return,
        }
    };
    match (fake_reboot, action) {
        (true, _) | (false, LifecycleAction::Restart) => {
            if let Err(e) = restart_guest(s, dom, ctx).await {
                tracing::warn!(domain = dom.name(), error = %e, "fake reboot failed");
            }
        }
        (false, LifecycleAction::Preserve) => {}
        (false, LifecycleAction::Destroy) => {
            // Exit is reported by the event task; shutdown_seen makes it
            // "shutoff (shutdown)".
            let _ = process.terminate(s.cfg.destroy_grace, true).await;
        }
    }
}

/// reset + cont after a guest shutdown (fake reboot / on_poweroff=restart).
///
/// Unlike a user's `resume`, nobody waits on this, so the state is left
/// to QEMU's RESUME event: applying it on cont's reply could overtake the
/// RESET event still queued before it and emit RESUMED before REBOOT.
/// (A lost RESUME is caught by the resync every overflow triggers.)
async fn restart_guest(s: &Shared, dom: &Domain, ctx: &RunCtx) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "fake reboot", s.cfg.job_wait).await?;
    command(dom, s.cfg.monitor_timeout, "system_reset", None).await?;
    expect_resume(dom, ctx, running::BOOTED);
    command(dom, s.cfg.monitor_timeout, "cont", None).await?;
    {
        let mut g = dom.lock();
        if let Some(run) = g.run_of(ctx.generation) {
            run.fake_reboot = false;
            run.shutdown_seen = None;
        }
    }
    Ok(())
}

/// GUEST_PANICKED: apply on_crash.
async fn on_crash(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    let (action, process) = {
        let mut g = dom.lock();
        let action = g
            .live
            .as_ref()
            .map_or(LifecycleAction::Destroy, |d| d.on_crash());
        match g.run_of(ctx.generation) {
            Some(run) => {
                if action == LifecycleAction::Destroy {
                    run.kill_reason.get_or_insert(StopCause::Panicked);
                }
                (action, run.process.clone())
            }
            None => return,
        }
    };
    match action {
        LifecycleAction::Destroy => {
            let _ = process.terminate(s.cfg.destroy_grace, true).await;
        }
        LifecycleAction::Restart => {
            if let Err(e) = restart_guest(s, dom, ctx).await {
                tracing::warn!(domain = dom.name(), error = %e, "restart after crash failed");
            }
        }
        LifecycleAction::Preserve => {}
    }
}
