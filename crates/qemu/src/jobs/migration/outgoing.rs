//! The source's side: begin (job, definition, cookie), perform (QEMU's
//! `migrate` to the destination's URI, followed to completion) and confirm
//! (stop the source's QEMU as migrated, or resume the guest here).
//!
//! Between the phases the domain's `MigrationOut` async job waits in the
//! driver's [`super::Table`]. A failed perform undoes itself (the client
//! does not confirm a perform that failed); a cancelled confirm resumes
//! the guest where it was.

use std::sync::Arc;
use std::time::SystemTime;

use joblock::{AllowList, AsyncKind, NormalJob};
use qmp::commands::{
    Cont, Migrate, MigrateCancel, MigrateSetCapabilities, MigrateSetParameters,
    MigrationCapabilityStatus, QueryMigrate, Quit, Stop,
};

use super::{Cookie, MigrateFlags, MigrationParams, Pending};
use crate::events::hub::Hub;
use crate::jobs::stats::{CompletedJob, RamStats};
use crate::lifecycle::{power, stop};
use crate::object::def::Def;
use crate::object::run::RunCtx;
use crate::object::{AsyncJobInfo, Domain, JobOutcome};
use crate::shared::Shared;
use crate::state::{DomainState, StopCause, paused, running};
use crate::store::status;
use crate::{Error, Result, jobs};

const KIND: AsyncKind = AsyncKind::MigrationOut;

/// Jobs allowed beside an outgoing migration (libvirt's mask: queries,
/// abort, suspend, migration tuning; destroy is always allowed).
fn allowed() -> AllowList {
    AllowList::DEFAULT
        .with(NormalJob::Suspend)
        .with(NormalJob::MigrationOp)
}

/// An outgoing migration between its phases.
pub(crate) struct Outgoing {
    job: joblock::AsyncJob,
    /// The run being migrated; `None` for an offline migration.
    ctx: Option<Arc<RunCtx>>,
    was_running: bool,
    started: SystemTime,
    /// What perform moved, for `domjobinfo --completed`.
    ram: RamStats,
    downtime_ms: Option<u64>,
}

/// Begin: takes the job and returns the XML the destination runs (the
/// live definition, or `dest_xml` if it describes the same guest) and the
/// cookie. Offline: the persistent definition, nothing is recorded.
pub(crate) async fn begin(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    params: &MigrationParams,
    flags: MigrateFlags,
    owner: u64,
) -> Result<(String, Vec<u8>)> {
    let new_def = params.dest_xml.as_deref().map(Def::parse).transpose()?;
    let phase = s.migrations.first_phase(dom, owner)?;
    let job = jobs::begin_async(dom, KIND, allowed(), "migrate", s.cfg.job_wait).await?;
    let started = SystemTime::now();
    let (xml, ctx, was_running) = if flags.offline {
        (offline_xml(dom, flags, new_def.as_ref())?, None, false)
    } else {
        let (xml, ctx, was_running) = begin_live(dom, started, new_def.as_ref())?;
        // Recorded before anything moves: a daemon restarted mid-way
        // finds the job and puts the guest back (see `readopt`).
        if let Err(e) = status::persist(s, dom) {
            dom.lock().end_job(None);
            return Err(e);
        }
        (xml, Some(ctx), was_running)
    };
    let out = Outgoing {
        job,
        ctx,
        was_running,
        started,
        ram: RamStats::default(),
        downtime_ms: None,
    };
    if let Some(p) = phase.park(Pending::Out(out)) {
        super::undo(s, dom, p).await;
        return Err(super::gone());
    }
    Ok((xml, Cookie::new(dom).to_bytes()))
}

fn offline_xml(dom: &Domain, flags: MigrateFlags, new: Option<&Def>) -> Result<String> {
    if !flags.persist_dest {
        return Err(Error::InvalidArg(
            "offline migration requires --persistent".into(),
        ));
    }
    if !dom.is_persistent() {
        return Err(Error::OperationInvalid(
            "offline migration of a transient domain".into(),
        ));
    }
    let def = dom.def_for_xml(true);
    migration_xml(&def, new)
}

/// Checks the domain can migrate and records the job.
fn begin_live(
    dom: &Domain,
    started: SystemTime,
    new: Option<&Def>,
) -> Result<(String, Arc<RunCtx>, bool)> {
    let mut g = dom.lock();
    let (ctx, was_running) = g.live_job_run()?;
    let xml = migration_xml(&g.current_def(), new)?;
    g.begin_job(AsyncJobInfo {
        operation: KIND.into(),
        started,
        path: None,
        resume_running: was_running,
    });
    Ok((xml, ctx, was_running))
}

/// The XML the destination gets: `def`, or `new` if it keeps the ABI;
/// with secrets (the destination needs the guest's passwords).
fn migration_xml(def: &Def, new: Option<&Def>) -> Result<String> {
    match new {
        None => Ok(def.to_xml_for(true)),
        Some(new) => {
            def.check_abi(new)?;
            Ok(new.to_xml_for(true))
        }
    }
}

/// Perform: migrates to `params.uri` and waits for QEMU to complete; the
/// source's guest is then paused ("migration") until confirm. A failure
/// is undone here (the guest resumes, the job ends).
pub(crate) async fn perform(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    params: &MigrationParams,
    flags: MigrateFlags,
) -> Result<Vec<u8>> {
    let (phase, mut out) = s.migrations.take_out(dom)?;
    let mut cookie = Cookie::new(dom);
    let res = match out.ctx.clone() {
        Some(ctx) => out.migrate(s, dom, &ctx, params, flags).await,
        None => Ok(()),
    };
    match res {
        Ok(()) => {
            cookie.downtime_ms = out.downtime_ms;
            if let Some(p) = phase.park(Pending::Out(out)) {
                super::undo(s, dom, p).await;
                return Err(super::gone());
            }
            Ok(cookie.to_bytes())
        }
        Err(e) => {
            out.undo(s, dom, &e).await;
            Err(e)
        }
    }
}

/// Confirm: with the guest running on the destination, stops the source's
/// QEMU as migrated; `cancelled`, resumes the guest here.
pub(crate) async fn confirm(s: &Arc<Shared>, dom: &Arc<Domain>, cancelled: bool) -> Result<()> {
    let (_phase, out) = s.migrations.take_out(dom)?;
    if cancelled {
        let e = Error::Aborted("migration cancelled on the destination".into());
        out.undo(s, dom, &e).await;
        return Ok(());
    }
    if let Some(ctx) = &out.ctx {
        stop_migrated(s, dom, ctx).await;
    }
    out.end(dom, &s.hub, None);
    Ok(())
}

impl Outgoing {
    async fn migrate(
        &mut self,
        s: &Shared,
        dom: &Domain,
        ctx: &RunCtx,
        params: &MigrationParams,
        flags: MigrateFlags,
    ) -> Result<()> {
        if !flags.live && dom.state().state == DomainState::Running {
            self.pause(s, dom, ctx).await?;
        }
        let uri = params
            .uri
            .as_deref()
            .ok_or_else(|| Error::InvalidArg("no migration URI".into()))?;
        let t = s.cfg.monitor_timeout;
        ctx.update_progress(|p| p.migration = None);
        // Subscribed before `migrate`, so its events cannot be missed.
        let mut progress = ctx.progress.subscribe();
        {
            let _n = self
                .job
                .nested(NormalJob::MigrationOp, s.cfg.job_wait)
                .await
                .map_err(|e| jobs::map_err(dom, e))?;
            super::enable_events(s, dom).await;
            if let Some(caps) = capabilities(flags) {
                dom.qmp(&caps, t).await?;
            }
            if let Some(mib) = params.bandwidth_mib.filter(|m| *m > 0) {
                dom.qmp(&max_bandwidth(mib), t).await?;
            }
            // QEMU stops the guest itself for the last pass.
            dom.lock()
                .expect_pause(ctx.generation, Some(paused::MIGRATION));
            dom.qmp(
                &Migrate {
                    uri: uri.to_owned(),
                    ..Migrate::default()
                },
                t,
            )
            .await?;
        }
        jobs::stream::wait_completed(s, dom, ctx, &mut progress, "migration").await?;
        if let Ok(m) = dom.qmp(&QueryMigrate, t).await {
            self.ram = RamStats::from_query_migrate(&m).unwrap_or_default();
            self.downtime_ms = m.downtime;
        }
        Ok(())
    }

    /// The migration did not happen: QEMU's is cancelled, the guest
    /// resumes if it ran, the job ends as failed (or cancelled).
    pub(super) async fn undo(self, s: &Shared, dom: &Domain, why: &Error) {
        let ours = |ctx: &RunCtx| dom.lock().run_of(ctx.generation).is_some();
        if let Some(ctx) = &self.ctx
            && ours(ctx)
            && !self.job.destroyed()
        {
            let t = s.cfg.monitor_timeout;
            let _ = dom.qmp(&MigrateCancel, t).await;
            dom.lock().expect_pause(ctx.generation, None);
            if self.was_running && dom.state().state == DomainState::Paused {
                self.resume(s, dom, ctx).await;
            }
            status::persist_in_background(s, dom);
        }
        self.end(dom, &s.hub, Some(why));
    }

    /// A migration that is not live pauses the guest first.
    async fn pause(&self, s: &Shared, dom: &Domain, ctx: &RunCtx) -> Result<()> {
        let _n = self
            .job
            .nested(NormalJob::Suspend, s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        dom.lock()
            .expect_pause(ctx.generation, Some(paused::MIGRATION));
        dom.qmp(&Stop, s.cfg.monitor_timeout).await?;
        dom.lock()
            .paused_by_command(dom, &s.hub, ctx.generation, paused::MIGRATION);
        Ok(())
    }

    async fn resume(&self, s: &Shared, dom: &Domain, ctx: &RunCtx) {
        let Ok(_n) = self.job.nested(NormalJob::Resume, s.cfg.job_wait).await else {
            return;
        };
        let reason = running::MIGRATION_CANCELED;
        dom.lock().expect_resume(ctx.generation, reason);
        if dom.qmp(&Cont, s.cfg.monitor_timeout).await.is_ok() {
            power::resumed(s, dom, ctx, reason);
        }
    }

    /// Ends the job, failed with `failure` if any, recording its
    /// statistics.
    fn end(self, dom: &Domain, hub: &Hub, failure: Option<&Error>) {
        let mut done = CompletedJob::failed_with(KIND.into(), self.started, self.ram, failure);
        done.downtime_ms = self.downtime_ms.filter(|_| failure.is_none());
        super::end_job(dom, hub, done, failure);
    }
}

/// The guest runs on the destination: stop this QEMU as "migrated".
async fn stop_migrated(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx) {
    let Some(process) = dom.lock().begin_kill(ctx.generation, StopCause::Migrated) else {
        return;
    };
    // Best effort: the SIGTERM that follows stops it either way.
    let _ = dom.qmp(&Quit, s.cfg.monitor_timeout).await;
    let _ = process.terminate(s.cfg.destroy_grace, true).await;
    stop::cleanup(s, dom, ctx.generation, Some(StopCause::Migrated));
}

/// The migration capabilities `flags` ask for, if any.
fn capabilities(flags: MigrateFlags) -> Option<MigrateSetCapabilities> {
    let on = |name: &str| MigrationCapabilityStatus {
        capability: name.into(),
        state: true,
    };
    let mut capabilities = Vec::new();
    if flags.auto_converge {
        capabilities.push(on("auto-converge"));
    }
    if flags.compressed {
        capabilities.push(on("xbzrle"));
    }
    (!capabilities.is_empty()).then_some(MigrateSetCapabilities { capabilities })
}

/// `migrate-setspeed`: QEMU's `max-bandwidth` in bytes/s.
pub(crate) fn max_bandwidth(mib: u64) -> MigrateSetParameters {
    let mut m = serde_json::Map::new();
    m.insert(
        "max-bandwidth".into(),
        mib.saturating_mul(1024 * 1024).into(),
    );
    MigrateSetParameters(m)
}

/// An outgoing migration that ran across a daemon restart. Still under
/// way (or failed): cancelled, and the guest resumed here if it ran, as
/// the client's perform failed with the old daemon. Completed: the guest
/// may already run on the destination, so it stays paused here (never on
/// two hosts); `virsh destroy` or `resume` settles it.
pub(crate) async fn readopt(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    ctx: &Arc<RunCtx>,
    job: &status::JobRecord,
) {
    let t = s.cfg.monitor_timeout;
    let st = dom.qmp(&QueryMigrate, t).await.ok().and_then(|m| m.status);
    let message = if st == Some(qmp::MigrationStatus::Completed) {
        "interrupted by daemon restart after the guest's state was sent; left paused".to_owned()
    } else {
        let _ = dom.qmp(&MigrateCancel, t).await;
        dom.lock().expect_pause(ctx.generation, None);
        if job.resume_running && dom.state().state == DomainState::Paused {
            let reason = running::MIGRATION_CANCELED;
            dom.lock().expect_resume(ctx.generation, reason);
            if dom.qmp(&Cont, t).await.is_ok() {
                power::resumed(s, dom, ctx, reason);
            }
        }
        "interrupted by daemon restart; the guest stays here".to_owned()
    };
    let mut g = dom.lock();
    g.end_job(Some(JobOutcome {
        operation: KIND.into(),
        success: false,
        message,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_qemu_capabilities() {
        assert_eq!(capabilities(MigrateFlags::default()), None);
        let both = MigrateFlags {
            auto_converge: true,
            compressed: true,
            ..MigrateFlags::default()
        };
        let names: Vec<String> = capabilities(both)
            .unwrap()
            .capabilities
            .into_iter()
            .filter(|c| c.state)
            .map(|c| c.capability)
            .collect();
        assert_eq!(names, ["auto-converge", "xbzrle"]);
        assert_eq!(max_bandwidth(2).0["max-bandwidth"], 2 * 1024 * 1024);
    }
}
