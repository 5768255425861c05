//! Waiting on QEMU's migration stream, whatever it carries (a save image,
//! a state dump, a guest moving to or from another host): the job is
//! woken by the MIGRATION events the event task publishes on the run's
//! progress watch, and re-reads query-migrate periodically and after an
//! overflow, since events are hints (they may be coalesced).

use std::time::Duration;

use qmp::MigrationStatus;
use qmp::commands::QueryMigrate;
use tokio::sync::watch;

use crate::object::Domain;
use crate::object::run::{Progress, RunCtx};
use crate::shared::Shared;
use crate::{Error, Result};

/// Re-read query-migrate at least this often while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Waits until the migration the job named `what` runs has completed.
/// No wakeup is lost: `progress` was subscribed before the migration
/// started, and each turn reads the latest value before it waits for the
/// next change.
pub(crate) async fn wait_completed(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    progress: &mut watch::Receiver<Progress>,
    what: &str,
) -> Result<()> {
    let mut seen_overflows = 0;
    loop {
        let (status, closed, overflowed) = {
            let p = progress.borrow_and_update();
            (p.migration.clone(), p.closed, p.overflowed)
        };
        match status {
            Some(MigrationStatus::Completed) => return Ok(()),
            Some(MigrationStatus::Failed) => {
                return Err(Error::OperationFailed(format!("{what} failed")));
            }
            Some(MigrationStatus::Cancelled) => {
                return Err(Error::Aborted(format!("{what} job cancelled")));
            }
            _ => {}
        }
        if closed {
            return Err(Error::OperationFailed(format!("QEMU exited during {what}")));
        }
        let changed = tokio::time::timeout(POLL, progress.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            return Err(Error::OperationFailed(format!("QEMU exited during {what}")));
        }
        if changed.is_err() || overflowed != seen_overflows {
            seen_overflows = overflowed;
            poll_migration(s, dom, ctx).await;
        }
    }
}

/// Re-reads the migration status into the progress watch.
pub(crate) async fn poll_migration(s: &Shared, dom: &Domain, ctx: &RunCtx) {
    if let Ok(m) = dom.qmp(&QueryMigrate, s.cfg.monitor_timeout).await
        && let Some(st) = m.status
    {
        ctx.update_progress(|p| p.migration = Some(st));
    }
}
