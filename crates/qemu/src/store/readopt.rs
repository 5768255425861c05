//! Start-up, one record at a time: loading the persistent definitions,
//! and adopting the QEMU of a completed start (or settling a run whose
//! QEMU is gone). `reconcile` decides which records come here.
//!
//! A QEMU is re-adopted only if its PID is alive *and* is the same process
//! (start time from /proc/PID/stat matches the record, and its command line
//! carries the domain's uuid), checked after opening a pidfd so the answer
//! cannot go stale. An alive QEMU is never started twice: if its monitor
//! does not answer we keep tracking it (unresponsive) rather than orphan or
//! duplicate it. A job that ran across the restart is finished by the job's
//! own module (`jobs::save::readopt`, `jobs::blockjob::readopt`).

use std::sync::Arc;

use qmp::commands::{QueryStatus, StatusInfo};

use super::files;
use super::status::{self, StatusRecord};
use crate::emulator::process::{self, Process};
use crate::events;
use crate::jobs::migration::{incoming, outgoing};
use crate::jobs::{blockjob, dump, save};
use crate::lifecycle;
use crate::object::def::Def;
use crate::object::run::{RunCtx, RunStart};
use crate::object::{Adopted, Domain};
use crate::shared::Shared;
use crate::state::{JobOperation, StopCause};

/// Registers every persistent definition under the config directory.
pub(crate) fn load_definitions(s: &Shared) {
    let files = match files::list_with_ext(&s.layout.config_dir, "xml") {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot list definitions");
            return;
        }
    };
    for path in files {
        let def = files::read_bounded(&path)
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
        let autostart = s.layout.autostart_marker(dom.name()).exists();
        dom.lock().set_autostart(autostart);
        s.registry.insert(&dom);
    }
}

/// The domain a status record belongs to, creating a transient one from
/// the live XML if no definition exists.
pub(super) fn domain_for(s: &Shared, rec: &StatusRecord) -> Option<(Arc<Domain>, Arc<Def>)> {
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
pub(super) fn find_alive(rec: &StatusRecord) -> Option<Process> {
    let p = Process::open(rec.pid, false).ok()?;
    if p.has_exited() {
        return None;
    }
    let same_start = process::start_time(rec.pid) == Some(rec.pid_start_time);
    let same_vm = process::cmdline_contains(rec.pid, &rec.uuid.to_string());
    (same_start && same_vm).then_some(p)
}

/// Adopts the recorded QEMU of `dom`, alive as `process`: reconnects its
/// monitor, re-reads its state, finishes the jobs that ran across the
/// restart.
pub(super) async fn adopt(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    live: &Def,
    rec: &StatusRecord,
    process: Process,
) {
    let process = Arc::new(process);
    // The state is asked for with the handshake: one exchange with each
    // QEMU, not two, when thousands are re-adopted at once.
    let conn = tokio::time::timeout(
        s.cfg.monitor_timeout,
        qmp::Monitor::connect_then(&rec.monitor, s.qmp.clone(), &QueryStatus),
    )
    .await;
    let (monitor, events, status) = match conn {
        Ok(Ok((m, e, st))) => (Some(m), Some(e), st.ok()),
        _ => {
            tracing::warn!(
                domain = dom.name(),
                "monitor did not answer after restart: tracking QEMU as unresponsive"
            );
            (None, None, None)
        }
    };
    let start = RunStart {
        process: process.clone(),
        start_time: rec.pid_start_time,
        socket: rec.monitor.clone(),
        taps: rec.taps.clone(),
        owned: rec.owned.clone(),
    };
    let adopted = Adopted {
        state: rec.state,
        // The definition file decides, not the record: a define or undefine
        // killed between its file and the record ends as the file says.
        persistent: dom.is_persistent(),
        completed_job: rec.completed_job.clone(),
        shutdown_seen: rec.shutdown_seen,
        fake_reboot: rec.fake_reboot,
        monitor,
        pending_unplug: rec.pending_unplug.clone(),
    };
    let ctx = dom.lock().adopt_run(rec.id, live, start, adopted);
    // The handshake's answer stands unless an event changes the state
    // before it is applied (the run's tasks start below).
    let seen = dom.lock().state_version();
    let taps = rec
        .taps
        .iter()
        .map(|t| t.as_ref().map(|t| t.name.clone()))
        .collect();
    dom.lock()
        .update_live(ctx.generation, |d| d.with_live(|l| l.taps = taps));
    s.registry.set_id(rec.id, dom);
    events::spawn_run_tasks(s, dom, &ctx, events, process);
    if dom.lock().monitor().is_some() {
        resync(s, dom, &ctx, rec, status.map(|st| (st, seen))).await;
        lifecycle::start::fill_ptys(s, dom, &ctx).await;
    } else if rec
        .job
        .as_ref()
        .is_some_and(|j| j.operation == JobOperation::MigrationIn)
    {
        // An incoming migration cannot finish once its daemon is gone,
        // whether or not its QEMU answers: never keep it as a guest.
        incoming::readopt(s, dom, &ctx).await;
    }
    status::persist_adopted(s, dom, rec);
}

/// Applies the state QEMU reported at the handshake, with the state
/// version it is current for (asks again if that answer was lost), and
/// finishes the jobs that ran across the restart.
async fn resync(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    ctx: &Arc<RunCtx>,
    rec: &StatusRecord,
    status: Option<(StatusInfo, u64)>,
) {
    let status = match status {
        Some(answer) => Some(answer),
        None => {
            let seen = dom.lock().state_version();
            let st = dom.qmp(&QueryStatus, s.cfg.monitor_timeout).await.ok();
            st.map(|st| (st, seen))
        }
    };
    if let Some((st, seen)) = status {
        // A newer state from an event wins over this answer.
        events::apply_qemu_status(s, dom, ctx, &st.status, seen);
    }
    if let Some(b) = rec.block_job.clone() {
        blockjob::readopt(s, dom, ctx, b);
    }
    if let Some(job) = &rec.job {
        match job.operation {
            JobOperation::MigrationOut => outgoing::readopt(s, dom, ctx, job).await,
            JobOperation::MigrationIn => incoming::readopt(s, dom, ctx).await,
            JobOperation::Dump => dump::readopt(s, dom, ctx, job).await,
            _ => save::readopt(s, dom, ctx, job).await,
        }
    }
    crate::hotplug::reconcile(s, dom, ctx).await;
}

/// The QEMU of a status record is gone (or was killed because its start
/// had not completed): shutoff for `cause` (the record's own when
/// `None`), a save it ran settled by its image, the destination of a block
/// job that never started removed, a transient domain forgotten, the
/// record and the run's files removed.
pub(super) fn mark_dead(
    s: &Shared,
    dom: &Arc<Domain>,
    rec: &StatusRecord,
    cause: Option<StopCause>,
) {
    if let Some(b) = &rec.block_job {
        blockjob::found_dead(b);
    }
    // An incoming migration leaves nothing to settle here: its images
    // are swept by their own record, and the guest never ran on this host.
    let settled_job = rec
        .job
        .as_ref()
        .filter(|j| j.operation != JobOperation::MigrationIn);
    let (outcome, saved) = match settled_job {
        Some(job) => {
            let (outcome, done) = if job.operation == JobOperation::Dump {
                dump::found_dead(job)
            } else {
                save::found_dead(job)
            };
            let saved = outcome.success;
            (Some((outcome, done)), saved)
        }
        None => (None, false),
    };
    let cause = cause.unwrap_or(if saved {
        StopCause::Saved
    } else if rec.shutdown_seen {
        StopCause::Shutdown
    } else {
        StopCause::Failed
    });
    tracing::info!(
        domain = dom.name(),
        pid = rec.pid,
        reason = ?cause,
        "run ended while the daemon was down"
    );
    // As in `adopt`: a domain with no definition file is transient.
    let persistent = dom.is_persistent();
    let forget = {
        let mut g = dom.lock();
        let (last, completed) = match outcome {
            Some((last, done)) => (Some(last), Some(done)),
            None => (None, rec.completed_job.clone()),
        };
        g.found_dead(cause, completed, last, persistent)
    };
    if forget {
        s.registry.remove(dom);
    }
    forget_files(s, rec);
}

/// Removes the status file and monitor socket of a run that is over, and
/// what the run held on the host (taps, cgroups, swtpm, run directory).
pub(super) fn forget_files(s: &Shared, rec: &StatusRecord) {
    // Before the record that names the originals goes.
    s.owned.release(rec.uuid, &rec.owned);
    let path = s.layout.status(&rec.uuid);
    if let Err(e) = files::remove(&path) {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove status file");
    }
    let _ = std::fs::remove_file(&rec.monitor);
    crate::nics::release(s, &rec.taps);
    if let Ok(def) = Def::parse(&rec.live_xml) {
        lifecycle::host::release(s, &def, &rec.uuid);
    }
}
