//! What a running guest is asked to do: suspend, resume, ACPI shutdown and
//! reboot, reset, and the reset + cont that turns a guest power-off into a
//! reboot.

use joblock::NormalJob;
use qmp::commands::{Cont, Stop, SystemPowerdown, SystemReset};

use crate::actions;
use crate::jobs;
use crate::object::Domain;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::state::{DomainState, paused, running};
use crate::store::status;
use crate::{Error, Result};

/// `virsh suspend`.
pub(crate) async fn suspend(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Suspend, owner, s.cfg.job_wait).await?;
    let ctx = {
        let mut g = dom.lock();
        let ctx = g.active_ctx()?;
        match g.state().state {
            DomainState::Paused => return Ok(()),
            DomainState::Running => {}
            _ => return Err(Error::OperationInvalid("domain is not running".into())),
        }
        g.expect_pause(ctx.generation, Some(paused::USER));
        ctx
    };
    if let Err(e) = dom.qmp(&Stop, s.cfg.monitor_timeout).await {
        dom.lock().expect_pause(ctx.generation, None);
        return Err(e);
    }
    // The STOP event may not have been handled yet: apply it now; the
    // handler will then see "already paused" and do nothing.
    dom.lock()
        .paused_by_command(dom, &s.hub, ctx.generation, paused::USER);
    // Written before the call returns, so a daemon killed right after still
    // knows why the guest is paused (the reason is ours; QEMU only knows
    // the state).
    status::persist(s, dom)
}

/// `virsh resume`.
pub(crate) async fn resume(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Resume, owner, s.cfg.job_wait).await?;
    let ctx = dom.lock().active_ctx()?;
    match dom.state().state {
        DomainState::Running => return Ok(()),
        DomainState::Paused => {}
        _ => return Err(Error::OperationInvalid("domain is not paused".into())),
    }
    dom.qmp(&Cont, s.cfg.monitor_timeout).await?;
    resumed(s, dom, &ctx, running::UNPAUSED);
    status::persist(s, dom)
}

/// Applies a `cont` that succeeded (unless the RESUME event already did)
/// and has the status file rewritten.
pub(crate) fn resumed(s: &Shared, dom: &Domain, ctx: &RunCtx, reason: i32) {
    if dom
        .lock()
        .resumed_by_command(dom, &s.hub, ctx.generation, reason)
    {
        ctx.actions.set(actions::PERSIST);
    }
}

/// `virsh shutdown` (ACPI power button). Returns once QEMU was asked; the
/// guest's SHUTDOWN event and on_poweroff do the rest.
pub(crate) async fn shutdown(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
    {
        let mut g = dom.lock();
        let generation = g.active_ctx()?.generation;
        g.set_fake_reboot(generation, false);
    }
    dom.qmp(&SystemPowerdown, s.cfg.monitor_timeout).await?;
    Ok(())
}

/// `virsh reboot`: ACPI power button with the fake-reboot flag, so the
/// guest's SHUTDOWN becomes reset + cont instead of a stop.
pub(crate) async fn reboot(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
    let ctx = {
        let mut g = dom.lock();
        let ctx = g.active_ctx()?;
        g.set_fake_reboot(ctx.generation, true);
        ctx
    };
    ctx.actions.set(actions::PERSIST);
    let res = dom.qmp(&SystemPowerdown, s.cfg.monitor_timeout).await;
    if res.is_err() {
        dom.lock().set_fake_reboot(ctx.generation, false);
    }
    res.map(|_| ())
}

/// `virsh reset`.
pub(crate) async fn reset(s: &Shared, dom: &Domain, owner: &str) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, owner, s.cfg.job_wait).await?;
    dom.lock().active_ctx()?;
    dom.qmp(&SystemReset, s.cfg.monitor_timeout).await?;
    Ok(())
}

/// reset + cont after a guest power-off (fake reboot, on_poweroff or
/// on_crash = restart).
///
/// Unlike a user's `resume`, nobody waits on this, so the state is left
/// to QEMU's RESUME event: applying it on cont's reply could overtake the
/// RESET event still queued before it and emit RESUMED before REBOOT.
/// (A lost RESUME is caught by the resync every overflow triggers.)
pub(crate) async fn restart_guest(s: &Shared, dom: &Domain, ctx: &RunCtx) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "fake reboot", s.cfg.job_wait).await?;
    let t = s.cfg.monitor_timeout;
    dom.qmp(&SystemReset, t).await?;
    dom.lock().expect_resume(ctx.generation, running::BOOTED);
    dom.qmp(&Cont, t).await?;
    dom.lock().rebooted(ctx.generation);
    Ok(())
}
