//! Stopping a domain: `destroy`, and the cleanup after a QEMU that is gone
//! (or being killed), whoever noticed first.

use std::sync::Arc;

use super::host;
use crate::jobs;
use crate::nics;
use crate::object::Domain;
use crate::shared::Shared;
use crate::state::StopCause;
use crate::store::status;
use crate::{Error, Result};

/// Tears down the bookkeeping of run `generation` after its QEMU is gone
/// (or is being killed): shutoff state and STOPPED event (see
/// `Inner::stop_run`), files removed, a transient domain forgotten.
/// Returns false if that run was already cleaned up (by whoever got here
/// first).
pub(crate) fn cleanup(
    s: &Shared,
    dom: &Arc<Domain>,
    generation: u64,
    cause: Option<StopCause>,
) -> bool {
    let def = dom.def_for_xml(false);
    let Some(stopped) = dom.lock().stop_run(dom, &s.hub, generation, cause) else {
        return false;
    };
    if let Some(id) = stopped.id {
        s.registry.clear_id(id, dom);
    }
    if stopped.transient {
        s.registry.remove(dom);
        dom.jobs.close("transient domain stopped");
    }
    let run = stopped.run;
    if let Some(m) = run.monitor() {
        m.close();
    }
    run.ctx().update_progress(|p| p.closed = true);
    run.process().reap();
    // Before the record that names the originals goes.
    s.owned.release(dom.uuid(), run.owned());
    status::remove(s, dom);
    let _ = std::fs::remove_file(run.socket());
    nics::release(s, run.taps());
    host::release(s, &def, &dom.uuid());
    true
}

/// Kills QEMU first (freeing any job stuck on its monitor), then takes the
/// destroy job, queued ahead of everything, to clean up: destroy is never
/// queued behind other work and always works.
pub(crate) async fn destroy(s: &Shared, dom: &Arc<Domain>, graceful: bool) -> Result<()> {
    let (process, generation) = {
        let mut g = dom.lock();
        let generation = g.run().ok_or(Error::NotRunning)?.ctx().generation;
        let process = g
            .begin_kill(generation, StopCause::Destroyed)
            .ok_or(Error::NotRunning)?;
        (process, generation)
    };
    let gone = process
        .terminate(s.cfg.destroy_grace, !graceful)
        .await
        .map_err(|e| Error::io("cannot kill QEMU", e))?;
    if !gone {
        dom.lock().cancel_kill(generation);
        return Err(Error::Qemu(format!(
            "failed to terminate process {} with SIGTERM",
            process.pid()
        )));
    }
    let _job = jobs::begin_destroy(dom, "destroy", s.cfg.job_wait).await;
    cleanup(s, dom, generation, Some(StopCause::Destroyed));
    Ok(())
}
