//! Monitor commands of a domain's current run: typed, with a deadline,
//! and with the bookkeeping a deadline implies.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::Domain;
use crate::{Error, Result, actions};

impl Domain {
    /// Runs `cmd` on the current run's monitor within `timeout`.
    ///
    /// A timeout marks the monitor unresponsive (`domcontrol` shows it)
    /// and asks for a resync: the command may still run later, so state
    /// may have diverged. The resync's own query-status then acts as a
    /// health probe (one per monitor deadline) that clears the mark once
    /// QEMU answers again. The log says when QEMU stops answering and when
    /// it answers again, not every timeout in between.
    pub(crate) async fn qmp<C: qmp::Command>(
        &self,
        cmd: &C,
        timeout: Duration,
    ) -> Result<C::Response> {
        let mon = self.lock().monitor().ok_or(Error::NotRunning)?;
        let t0 = std::time::Instant::now();
        let res = mon.execute_timeout(cmd, timeout).await;
        let timed_out = matches!(res, Err(qmp::QmpError::Timeout { .. }));
        if let Some(h) = self.health() {
            h.monitor_command(t0.elapsed(), timed_out);
        }
        let was_unresponsive = {
            let mut g = self.lock();
            let was = g.note_command(timed_out);
            if timed_out && let Some(run) = g.run() {
                run.ctx().actions.set(actions::RESYNC);
            }
            was
        };
        match (timed_out, was_unresponsive) {
            (true, false) => tracing::warn!(
                domain = self.name(),
                command = C::NAME,
                "QEMU monitor unresponsive"
            ),
            (false, true) => tracing::info!(domain = self.name(), "QEMU monitor answers again"),
            _ => {}
        }
        res.map_err(Error::from_qmp)
    }

    /// Adds `fd` to a new descriptor set of QEMU (`add-fd`): QEMU opens
    /// `/dev/fdset/ID` as it. Returns the set's id.
    pub(crate) async fn add_fd(&self, opaque: &str, fd: BorrowedFd<'_>) -> Result<u64> {
        let mon = self.lock().monitor().ok_or(Error::NotRunning)?;
        let cmd = qmp::commands::AddFd {
            fdset_id: None,
            opaque: Some(opaque.to_owned()),
        };
        mon.execute_with_fd(&cmd, fd)
            .await
            .map(|info| info.fdset_id)
            .map_err(Error::from_qmp)
    }

    /// Hands `fd` to QEMU under `fdname` (`getfd`), for a later `fd:` URI.
    pub(crate) async fn pass_fd(&self, fdname: &str, fd: BorrowedFd<'_>) -> Result<()> {
        let mon = self.lock().monitor().ok_or(Error::NotRunning)?;
        let cmd = qmp::commands::Getfd {
            fdname: fdname.to_owned(),
        };
        mon.execute_with_fd(&cmd, fd)
            .await
            .map(|_| ())
            .map_err(Error::from_qmp)
    }
}
