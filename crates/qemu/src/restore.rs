//! Opening the driver: load definitions, re-adopt running QEMUs from their
//! status files, then autostart (requirement 9).
//!
//! A QEMU is re-adopted only if its PID is alive *and* is the same process
//! (start time from /proc/PID/stat matches the record, and its command line
//! carries the domain's uuid), checked after opening a pidfd so the answer
//! cannot go stale. An alive QEMU is never started twice: if its monitor
//! does not answer we keep tracking it (unresponsive) rather than orphan or
//! duplicate it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::caps::CapsCache;
use crate::config::DriverConfig;
use crate::def::Def;
use crate::domain::{Domain, JobOutcome, Run, RunCtx, ShutdownBy, command};
use crate::driver::{Driver, Shared};
use crate::jobstats::{CompletedJob, JobEnd, RamStats};
use crate::persist::{self, StatusRecord};
use crate::process::{self, Process};
use crate::registry::Registry;
use crate::state::{StateReason, StopCause};
use crate::subscribers::Hub;
use crate::{Error, Result, events, lifecycle, monitor};

pub(crate) async fn open(cfg: DriverConfig) -> Result<Driver> {
    let layout = cfg.layout();
    layout
        .create_all()
        .map_err(|e| Error::io(format!("cannot create {}", cfg.root.display()), e))?;
    layout
        .check_socket_len()
        .map_err(Error::ConfigUnsupported)?;
    persist::sweep_temp_files(&layout.config_dir);
    persist::sweep_temp_files(&layout.autostart_dir);
    persist::sweep_temp_files(&layout.run_dir);
    let s = Arc::new(Shared {
        qmp: monitor::qmp_config(cfg.monitor_timeout, &cfg.events),
        registry: Registry::default(),
        hub: Hub::new(cfg.subscriber_queue),
        handlers: Semaphore::new(cfg.max_parallel_handlers.max(1)),
        next_id: AtomicU32::new(1),
        define_lock: tokio::sync::Mutex::new(()),
        caps: CapsCache::default(),
        kvm: tokio::sync::OnceCell::new(),
        layout,
        cfg,
    });
    load_definitions(&s);
    readopt_all(&s).await;
    let driver = Driver::from_shared(s.clone());
    if s.cfg.autostart {
        autostart(&driver).await;
    }
    Ok(driver)
}

fn load_definitions(s: &Shared) {
    let files = match persist::list_with_ext(&s.layout.config_dir, "xml") {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot list definitions");
            return;
        }
    };
    for path in files {
        let def = persist::read_bounded(&path)
            .map_err(|e| e.to_string())
            .and_then(|xml| Def::parse(&xml).map_err(|e| e.to_string()));
        let def = match def {
            Ok(d) => Arc::new(d),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "skipping bad definition");
                continue;
            }
        };
        if s.registry.by_name(def.name()).is_some() || s.registry.by_uuid(&def.uuid()).is_some() {
            tracing::error!(file = %path.display(), "skipping duplicate definition");
            continue;
        }
        let dom = Domain::new(def, true);
        dom.lock().autostart = s.layout.autostart_marker(dom.name()).exists();
        s.registry.insert(&dom);
    }
}

async fn readopt_all(s: &Arc<Shared>) {
    let files = persist::list_with_ext(&s.layout.run_dir, "json").unwrap_or_default();
    let mut set = JoinSet::new();
    for path in files {
        let rec = match persist::read_bounded(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| StatusRecord::parse(&t))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "removing bad status file");
                let _ = persist::remove(&path);
                continue;
            }
        };
        let next = rec.id.saturating_add(1);
        s.next_id.fetch_max(next, Ordering::Relaxed);
        let s = s.clone();
        set.spawn(async move { readopt(&s, rec).await });
    }
    while set.join_next().await.is_some() {}
}

/// The domain a status record belongs to, creating a transient one from
/// the live XML if no definition exists.
fn domain_for(s: &Shared, rec: &StatusRecord) -> Option<(Arc<Domain>, Arc<Def>)> {
    let live = match Def::parse(&rec.live_xml) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!(domain = %rec.name, error = %e, "bad live XML in status file");
            return None;
        }
    };
    if let Some(dom) = s.registry.by_uuid(&rec.uuid) {
        return Some((dom, live));
    }
    if s.registry.by_name(&rec.name).is_some() {
        tracing::error!(domain = %rec.name, "status file clashes with another definition");
        return None;
    }
    let dom = Domain::new(live.clone(), false);
    s.registry.insert(&dom);
    Some((dom, live))
}

/// Opens a pidfd for the recorded pid and checks it is still our QEMU.
fn find_alive(rec: &StatusRecord) -> Option<Process> {
    let p = Process::open(rec.pid, false).ok()?;
    if p.has_exited() {
        return None;
    }
    let same_start = process::start_time(rec.pid) == Some(rec.pid_start_time);
    let same_vm = process::cmdline_contains(rec.pid, &rec.uuid.to_string());
    (same_start && same_vm).then_some(p)
}

async fn readopt(s: &Arc<Shared>, rec: StatusRecord) {
    let Some((dom, live)) = domain_for(s, &rec) else {
        // Nothing to attach it to: never leave an unmanaged QEMU behind.
        if let Some(p) = find_alive(&rec) {
            let _ = p.terminate(s.cfg.destroy_grace, true).await;
        }
        let _ = persist::remove(&s.layout.status(&rec.uuid));
        return;
    };
    let Some(process) = find_alive(&rec) else {
        mark_dead(s, &dom, &rec);
        return;
    };
    let process = Arc::new(process);
    let cfg = &s.qmp;
    let conn = tokio::time::timeout(
        s.cfg.monitor_timeout,
        qmp::Monitor::connect(&rec.monitor, cfg.clone()),
    )
    .await;
    let (mon, events) = match conn {
        Ok(Ok((m, e))) => (Some(m), Some(e)),
        _ => {
            tracing::warn!(domain = dom.name(), "monitor did not answer after restart");
            (None, None)
        }
    };
    let ctx = {
        let mut g = dom.lock();
        g.generation += 1;
        let ctx = RunCtx::new(g.generation);
        g.id = Some(rec.id);
        g.live = Some(Arc::new(live.live(rec.id)));
        g.persistent = rec.persistent;
        g.state = rec.state;
        g.completed_job = rec.completed_job.clone();
        g.run = Some(Run {
            ctx: ctx.clone(),
            process: process.clone(),
            start_time: rec.pid_start_time,
            socket: rec.monitor.clone(),
            unresponsive: mon.is_none(),
            monitor: mon,
            shutdown_seen: rec.shutdown_seen.then_some(ShutdownBy::Guest),
            fake_reboot: rec.fake_reboot,
            kill_reason: None,
            pending_pause: None,
            pending_resume: None,
            owed_stop: 0,
            owed_resume: 0,
            pivoted_nodes: Vec::new(),
        });
        ctx
    };
    s.registry.set_id(rec.id, &dom);
    events::spawn_run_tasks(s, &dom, &ctx, events, process);
    if dom.lock().monitor().is_some() {
        resync(s, &dom, &ctx, &rec).await;
        lifecycle::fill_ptys(s, &dom, &ctx).await;
    }
    let _ = lifecycle::persist_status(s, &dom);
}

/// Re-reads state and the outcome of a job that ran across the restart.
async fn resync(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &Arc<RunCtx>, rec: &StatusRecord) {
    let t = s.cfg.monitor_timeout;
    if let Ok(v) = command(dom, t, "query-status", None).await
        && let Some(st) = monitor::str_field(&v, "status")
    {
        events::apply_qemu_status(s, dom, ctx, st);
    }
    if let Some(b) = rec.block_job.clone() {
        crate::jobs::blockjob::readopt(s, dom, ctx, b);
    }
    let Some(job) = &rec.job else { return };
    let reply = command(dom, t, "query-migrate", None).await.ok();
    let status = reply
        .as_ref()
        .and_then(|v| monitor::str_field(v, "status").map(str::to_owned));
    let ram = reply.as_ref().and_then(RamStats::from_query_migrate);
    // The image is complete only once its header says so.
    let completed = status.as_deref() == Some("completed")
        && crate::jobs::saveimage::mark_complete(&job.path).is_ok();
    let (success, message) = match status.as_deref() {
        Some("completed") if completed => {
            // The state reached the file: finish what the old daemon began.
            finish_saved(s, dom, ctx).await;
            (true, String::new())
        }
        other => {
            let _ = command(dom, t, "migrate_cancel", None).await;
            lifecycle::expect_resume(dom, ctx, crate::state::running::SAVE_CANCELED);
            if job.resume_running && command(dom, t, "cont", None).await.is_ok() {
                lifecycle::mark_running(s, dom, ctx, crate::state::running::SAVE_CANCELED);
            }
            let _ = std::fs::remove_file(&job.path);
            (
                false,
                format!(
                    "interrupted by daemon restart (migration {})",
                    other.unwrap_or("unknown")
                ),
            )
        }
    };
    let done = CompletedJob {
        end: if success {
            JobEnd::Completed
        } else {
            JobEnd::Failed
        },
        operation: job.kind.clone(),
        elapsed_ms: now_ms().saturating_sub(job.started_ms),
        ram: ram.filter(|_| success).unwrap_or_default(),
        error: (!success).then(|| message.clone()),
    };
    let mut g = dom.lock();
    g.completed_job = Some(done);
    g.last_job = Some(JobOutcome {
        kind: job.kind.clone(),
        success,
        message,
    });
}

fn now_ms() -> u64 {
    crate::jobstats::elapsed_ms(std::time::UNIX_EPOCH)
}

async fn finish_saved(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx) {
    let process = {
        let mut g = dom.lock();
        let Some(run) = g.run_of(ctx.generation) else {
            return;
        };
        run.kill_reason = Some(StopCause::Saved);
        run.process.clone()
    };
    let _ = process.terminate(s.cfg.destroy_grace, true).await;
    lifecycle::cleanup(s, dom, ctx.generation, Some(StopCause::Saved));
}

/// The QEMU of a status file is gone: shutoff, and forget a transient domain.
fn mark_dead(s: &Shared, dom: &Arc<Domain>, rec: &StatusRecord) {
    let cause = if rec.shutdown_seen {
        StopCause::Shutdown
    } else {
        StopCause::Failed
    };
    tracing::info!(
        domain = dom.name(),
        pid = rec.pid,
        "QEMU gone while the daemon was down"
    );
    {
        let mut g = dom.lock();
        g.state = StateReason::shutoff(cause.shutoff_reason());
        g.completed_job = rec.completed_job.clone();
        if !rec.persistent && !g.persistent {
            g.removed = true;
        }
    }
    if dom.lock().removed {
        s.registry.remove(dom);
    }
    let _ = persist::remove(&s.layout.status(&rec.uuid));
    let _ = std::fs::remove_file(&rec.monitor);
}

async fn autostart(driver: &Driver) {
    let mut set = JoinSet::new();
    for dom in driver.s.registry.all() {
        if dom.autostart() && !dom.is_active() {
            let d = driver.clone();
            set.spawn(async move {
                if let Err(e) = d.start(&dom, false).await {
                    tracing::error!(domain = dom.name(), error = %e, "autostart failed");
                }
            });
        }
    }
    while set.join_next().await.is_some() {}
}
