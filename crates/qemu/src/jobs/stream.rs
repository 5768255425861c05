//! Waiting on QEMU's migration stream, whatever it carries (a save image,
//! a state dump, a guest moving to or from another host): the job is
//! woken by the MIGRATION events the event task publishes on the run's
//! progress watch, and re-reads query-migrate periodically and after an
//! overflow, since events are hints (they may be coalesced).

use std::time::Duration;

use qmp::MigrationStatus;
use qmp::commands::QueryMigrate;
use tokio::sync::watch;

use crate::jobs::stats::RamStats;
use crate::object::Domain;
use crate::object::run::{Progress, RunCtx};
use crate::shared::Shared;
use crate::{Error, Result};

/// Re-read query-migrate at least this often while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Where a migration stream stands when a wait for it ends well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// Everything was sent.
    Completed,
    /// The migration switched to post-copy: the guest runs on the
    /// destination, which pulls the pages it still lacks.
    Postcopy,
}

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
    wait(s, dom, ctx, progress, what, false).await.map(|_| ())
}

/// What else ends a wait on a migration stream than its completion.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Until {
    /// The switch to post-copy ends it too, well ([`Reached::Postcopy`]).
    pub(crate) postcopy: bool,
    /// A stream that moves no byte for this long fails it (see
    /// [`StallWatch`]).
    pub(crate) stall: Option<Duration>,
}

/// Waits for the stream of the job named `what` as `until` says: its
/// completion, and maybe the switch to post-copy, or a stall.
pub(crate) async fn wait_for(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    progress: &mut watch::Receiver<Progress>,
    what: &str,
    until: Until,
) -> Result<Reached> {
    let waited = wait(s, dom, ctx, progress, what, until.postcopy);
    match until.stall {
        None => waited.await,
        Some(stall) => tokio::select! {
            r = waited => r,
            e = stalled(s, dom, stall, what) => Err(e),
        },
    }
}

async fn wait(
    s: &Shared,
    dom: &Domain,
    ctx: &RunCtx,
    progress: &mut watch::Receiver<Progress>,
    what: &str,
    postcopy: bool,
) -> Result<Reached> {
    let mut seen_overflows = 0;
    loop {
        let (status, closed, overflowed) = {
            let p = progress.borrow_and_update();
            (p.migration.clone(), p.closed, p.overflowed)
        };
        match status {
            Some(MigrationStatus::Completed) => return Ok(Reached::Completed),
            Some(MigrationStatus::PostcopyActive) if postcopy => return Ok(Reached::Postcopy),
            // QEMU waits for a recovery this driver does not offer.
            Some(MigrationStatus::PostcopyPaused) => {
                return Err(Error::OperationFailed(format!(
                    "{what} broke off in post-copy"
                )));
            }
            Some(MigrationStatus::Failed) => return Err(failed(s, dom, what).await),
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

/// A failed stream's error, with QEMU's reason when it gives one.
async fn failed(s: &Shared, dom: &Domain, what: &str) -> Error {
    let why = dom
        .qmp(&QueryMigrate, s.cfg.monitor_timeout)
        .await
        .ok()
        .and_then(|m| m.error_desc);
    match why {
        Some(why) => Error::OperationFailed(format!("{what} failed: {why}")),
        None => Error::OperationFailed(format!("{what} failed")),
    }
}

/// The stall policy of a transfer (a migration stream, disk copies) as a
/// plain value: fed the progress counter at each look, it tells when the
/// counter has not moved for `stall`.
#[derive(Debug)]
pub(crate) struct StallWatch<T> {
    last: Option<T>,
    moved_at: std::time::Instant,
    stall: Duration,
}

impl<T: PartialEq> StallWatch<T> {
    pub(crate) fn new(stall: Duration, now: std::time::Instant) -> Self {
        Self {
            last: None,
            moved_at: now,
            stall,
        }
    }

    /// Records `seen` at `now`; true once it has stayed the same for the
    /// stall time (the first look always counts as movement).
    pub(crate) fn stalled(&mut self, seen: T, now: std::time::Instant) -> bool {
        if self.last.as_ref() != Some(&seen) {
            self.last = Some(seen);
            self.moved_at = now;
            return false;
        }
        now.saturating_duration_since(self.moved_at) >= self.stall
    }
}

/// How often a stream's progress is checked for a stall.
const STALL_POLL: Duration = Duration::from_secs(1);

/// Returns once QEMU's migration stream (whatever it carries) has moved
/// no byte for `stall`: a cut network or a hung disk, on which QEMU would
/// otherwise wait for many minutes.
async fn stalled(s: &Shared, dom: &Domain, stall: Duration, what: &str) -> Error {
    let mut watch = StallWatch::new(stall, std::time::Instant::now());
    loop {
        tokio::time::sleep(STALL_POLL).await;
        let sent = dom
            .qmp(&QueryMigrate, s.cfg.monitor_timeout)
            .await
            .ok()
            .and_then(|m| RamStats::from_query_migrate(&m))
            .map(|r| r.transferred);
        if watch.stalled(sent, std::time::Instant::now()) {
            return Error::OperationFailed(format!(
                "{what} sent nothing for {} s",
                stall.as_secs()
            ));
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::StallWatch;

    #[test]
    fn a_counter_that_stops_moving_stalls_after_the_limit_and_not_before() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = StallWatch::new(Duration::from_secs(10), t0);
        assert!(!w.stalled(5_u64, at(0)));
        assert!(!w.stalled(5, at(9)));
        assert!(w.stalled(5, at(10)));
        // Movement restarts the clock.
        assert!(!w.stalled(6, at(11)));
        assert!(!w.stalled(6, at(20)));
        assert!(w.stalled(6, at(21)));
        // An unreadable counter that stays unreadable stalls too.
        let mut w = StallWatch::new(Duration::from_secs(1), t0);
        assert!(!w.stalled(None::<u64>, at(0)));
        assert!(w.stalled(None, at(1)));
    }
}
