//! Unplugging: the request to QEMU, recorded as pending first, and the
//! bounded wait for the guest's release (the removal itself is the
//! DEVICE_DELETED event's, see `removal`).

use qmp::commands::DeviceDel;

use crate::object::Domain;
use crate::object::run::Progress;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// Asks QEMU to unplug `alias` and waits (bounded) for the guest to
/// release it. Past the wait the removal stays pending and succeeds
/// later; a guest that refuses it is an error.
pub(super) async fn unplug(s: &Shared, dom: &Domain, alias: &str) -> Result<()> {
    let ctx = dom.lock().active_ctx()?;
    let mut progress = ctx.progress.subscribe();
    let already = {
        let mut g = dom.lock();
        let pending = g
            .run_of(ctx.generation)
            .map(|r| r.pending_unplug().to_vec());
        g.unplug_requested(ctx.generation, alias);
        pending.is_some_and(|p| p.iter().any(|a| a == alias))
    };
    // Intent first: a daemon killed from here on still completes it.
    status::persist(s, dom)?;
    let cmd = DeviceDel {
        id: alias.to_owned(),
    };
    if let Err(e) = dom.qmp(&cmd, s.cfg.monitor_timeout).await {
        // A repeated request QEMU refuses leaves the first one pending.
        if !already {
            dom.lock().unplug_refused(ctx.generation, alias);
            status::persist_in_background(s, dom);
        }
        return Err(e);
    }
    let wait = wait_released(dom, ctx.generation, &mut progress, alias);
    match tokio::time::timeout(s.cfg.unplug_timeout, wait).await {
        Ok(r) => r,
        Err(_) => {
            tracing::info!(
                domain = dom.name(),
                device = alias,
                "guest has not released the device yet: removal pending"
            );
            Ok(())
        }
    }
}

/// Waits until device `alias` left the live definition (or QEMU is
/// gone); an error if the guest refused to release it.
async fn wait_released(
    dom: &Domain,
    generation: u64,
    progress: &mut tokio::sync::watch::Receiver<Progress>,
    alias: &str,
) -> Result<()> {
    loop {
        if progress.borrow_and_update().closed {
            // QEMU is gone, and the device with it.
            return Ok(());
        }
        let (present, pending) = {
            let g = dom.lock();
            let present = g
                .live()
                .is_some_and(|l| crate::object::devices::has_device(l, alias));
            let pending = g
                .run_of(generation)
                .is_some_and(|r| r.pending_unplug().iter().any(|a| a == alias));
            (present, pending)
        };
        match (present, pending) {
            (false, _) => return Ok(()),
            (true, false) => {
                return Err(Error::Qemu(format!(
                    "unplug of device '{alias}' was rejected by the guest"
                )));
            }
            (true, true) => {}
        }
        if progress.changed().await.is_err() {
            return Ok(());
        }
    }
}
