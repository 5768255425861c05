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
    MigrateStartPostcopy, QueryMigrate, Quit, Stop,
};

use super::storage::{self, CopyStorage, Mirror};
use super::{Cookie, MigrateFlags, MigrationParams, Pending};
use crate::events::hub::Hub;
use crate::jobs::stats::{CompletedJob, RamStats};
use crate::jobs::stream::{self, Reached, Until};
use crate::lifecycle::{power, stop};
use crate::object::def::{Def, DiskInfo};
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
    /// The disks copied to the destination (none when storage is shared).
    disks: Vec<DiskInfo>,
    /// Their copies under way in QEMU, ended before perform returns.
    mirrors: Vec<Mirror>,
    /// Perform returned at the switch to post-copy: the guest runs on the
    /// destination, which still pulls pages from this QEMU. Confirm waits
    /// for the end of the stream; a failure from then on cannot resume the
    /// guest here (see [`Outgoing::postcopy_failed`]).
    postcopy: bool,
    /// QEMU was given the stream's TLS credentials (taken back if the
    /// guest stays here).
    tls: bool,
    /// Perform completed: the guest's state is on the destination, which
    /// may run it once finished. Only confirm, from the client that knows
    /// how finish went, may resume it here (see [`Outgoing::abandon`]).
    sent: bool,
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
    let phase = s.migrations.first_phase(dom, owner, flags)?;
    let job = jobs::begin_async(dom, KIND, allowed(), "migrate", s.cfg.job_wait).await?;
    let started = SystemTime::now();
    let mut cookie = Cookie::new(dom);
    let disks = match copied_disks(dom, params, flags).await {
        Ok((disks, announced)) => {
            cookie.disks = announced;
            disks
        }
        Err(e) => return Err(e),
    };
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
        disks,
        mirrors: Vec::new(),
        postcopy: false,
        tls: false,
        sent: false,
    };
    let wait = s.cfg.migration.finish_timeout;
    if let Some(p) = phase.park_until(s, dom, Pending::Out(out), wait) {
        super::undo(s, dom, p).await;
        return Err(super::gone());
    }
    Ok((xml, cookie.to_bytes()))
}

/// With a storage copy: the disks copied, and what the destination is
/// told of them.
async fn copied_disks(
    dom: &Domain,
    params: &MigrationParams,
    flags: MigrateFlags,
) -> Result<(Vec<DiskInfo>, Vec<storage::CookieDisk>)> {
    if flags.copy_storage == CopyStorage::None || flags.offline {
        return Ok((Vec::new(), Vec::new()));
    }
    let def = dom.lock().current_def();
    let disks = storage::selected(&def, &params.migrate_disks)?;
    let announced = storage::announce(&disks).await?;
    Ok((disks, announced))
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
    cookie_in: &[u8],
    flags: MigrateFlags,
) -> Result<Vec<u8>> {
    let (phase, mut out) = s.migrations.take_out(dom)?;
    let mut cookie = Cookie::new(dom);
    let res = match (out.ctx.clone(), Cookie::parse(cookie_in)) {
        (_, Err(e)) => Err(e),
        (Some(ctx), Ok(prepared)) => {
            let nbd = prepared.and_then(|c| c.nbd);
            out.migrate(s, dom, &ctx, params, nbd.as_ref(), flags).await
        }
        (None, Ok(_)) => Ok(()),
    };
    match res {
        Ok(()) => {
            cookie.downtime_ms = out.downtime_ms;
            out.sent = true;
            // In post-copy the destination's finish waits for the whole
            // stream, however long: no phase deadline, but the stream is
            // watched for a stall or a failure meanwhile.
            let parked = if out.postcopy {
                let ctx = out.ctx.clone();
                match phase.park_ticket(Pending::Out(out)) {
                    Ok(ticket) => {
                        if let Some(ctx) = ctx {
                            watch_parked_postcopy(s, dom, ctx, ticket);
                        }
                        None
                    }
                    Err(p) => Some(*p),
                }
            } else {
                let wait = s.cfg.migration.finish_timeout;
                phase.park_until(s, dom, Pending::Out(out), wait)
            };
            if let Some(p) = parked {
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

/// A source parked in post-copy until confirm: nobody else looks at its
/// stream until then, which may be long (finish waits for the whole
/// stream). A stream that fails or moves nothing for the stall time
/// (a cut network, which QEMU would notice only at the TCP timeout) ends
/// the migration here as post-copy failed, without waiting for a client.
/// A stream that completes leaves the migration parked for confirm; one
/// that confirm or a gone client took first is theirs.
fn watch_parked_postcopy(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: Arc<RunCtx>, ticket: u64) {
    let (s, dom) = (s.clone(), dom.clone());
    tokio::spawn(async move {
        // Subscribed now: the first look reads the status as it stands,
        // so a failure before this task ran is not missed.
        let mut progress = ctx.progress.subscribe();
        let until = Until {
            stall: Some(s.cfg.migration.stall_timeout),
            ..Until::default()
        };
        let what = "post-copy migration";
        let Err(e) = stream::wait_for(&s, &dom, &ctx, &mut progress, what, until).await else {
            return;
        };
        if let Some(Pending::Out(out)) = s.migrations.take_expired(&dom.uuid(), ticket) {
            out.postcopy_failed(&s, &dom, &e);
        }
    });
}

/// Confirm: with the guest running on the destination, stops the source's
/// QEMU as migrated; `cancelled`, resumes the guest here.
pub(crate) async fn confirm(s: &Arc<Shared>, dom: &Arc<Domain>, cancelled: bool) -> Result<()> {
    let (_phase, mut out) = s.migrations.take_out(dom)?;
    if cancelled {
        let e = Error::Aborted("migration cancelled on the destination".into());
        out.undo(s, dom, &e).await;
        return Ok(());
    }
    if let Some(ctx) = out.ctx.clone() {
        if out.postcopy
            && let Err(e) = out.finish_postcopy(s, dom, &ctx).await
        {
            out.postcopy_failed(s, dom, &e);
            return Err(e);
        }
        stop_migrated(s, dom, &ctx).await;
    }
    out.end(dom, &s.hub, None);
    Ok(())
}

/// `migrate-postcopy`: the outgoing migration of `dom`, started with
/// `--postcopy`, switches to post-copy. QEMU stops the guest here for
/// that; the STOP is reported as "post-copy".
pub(crate) async fn start_postcopy(s: &Shared, dom: &Domain) -> Result<()> {
    let out = dom
        .async_job()
        .is_some_and(|j| j.operation == crate::state::JobOperation::MigrationOut);
    if !out {
        return Err(Error::OperationInvalid(
            "post-copy can only be started while an outgoing migration is in progress".into(),
        ));
    }
    if !s.migrations.postcopy_allowed(&dom.uuid()) {
        return Err(Error::OperationInvalid(
            "switching to post-copy requires the migration to be started with --postcopy".into(),
        ));
    }
    let _job = jobs::begin(
        dom,
        NormalJob::MigrationOp,
        "migrate-postcopy",
        s.cfg.job_wait,
    )
    .await?;
    let generation = dom.lock().active_ctx()?.generation;
    let t = s.cfg.monitor_timeout;
    dom.lock().expect_pause(generation, Some(paused::POSTCOPY));
    if let Err(e) = dom.qmp(&MigrateStartPostcopy, t).await {
        dom.lock().expect_pause(generation, Some(paused::MIGRATION));
        return Err(e);
    }
    Ok(())
}

impl Outgoing {
    async fn migrate(
        &mut self,
        s: &Shared,
        dom: &Domain,
        ctx: &RunCtx,
        params: &MigrationParams,
        nbd: Option<&storage::NbdServer>,
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
        self.copy_disks(s, dom, ctx, nbd, flags.copy_storage, params.bandwidth_mib)
            .await?;
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
            if flags.tls {
                let host = super::incoming::uri_host(uri);
                super::tls::enable(s, dom, super::tls::Endpoint::Client, host.as_deref()).await?;
                self.tls = true;
            }
            if let Some(mib) = params.bandwidth_mib.filter(|m| *m > 0) {
                dom.qmp(&max_bandwidth(mib), t).await?;
            }
            if let Some(mib) = params.postcopy_bandwidth_mib.filter(|_| flags.postcopy) {
                dom.qmp(&max_postcopy_bandwidth(mib), t).await?;
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
        let until = Until {
            postcopy: flags.postcopy,
            stall: Some(s.cfg.migration.stall_timeout),
        };
        let reached = stream::wait_for(s, dom, ctx, &mut progress, "migration", until).await?;
        self.postcopy = reached == Reached::Postcopy;
        self.take_figures(s, dom).await;
        // The guest is paused: the copies write what is left and end.
        let res = storage::end_mirrors(s, dom, &self.mirrors, true, t).await;
        if res.is_ok() {
            self.mirrors.clear();
        }
        res
    }

    /// QEMU's RAM figures and downtime as they stand (best effort: a
    /// migration that ended is not failed for want of its figures).
    async fn take_figures(&mut self, s: &Shared, dom: &Domain) {
        if let Ok(m) = dom.qmp(&QueryMigrate, s.cfg.monitor_timeout).await {
            self.ram = RamStats::from_query_migrate(&m).unwrap_or_default();
            self.downtime_ms = m.downtime.or(self.downtime_ms);
        }
    }

    /// With a storage copy: mirrors each disk into the destination's
    /// export and waits until all are READY.
    async fn copy_disks(
        &mut self,
        s: &Shared,
        dom: &Domain,
        ctx: &RunCtx,
        nbd: Option<&storage::NbdServer>,
        mode: CopyStorage,
        bandwidth_mib: Option<u64>,
    ) -> Result<()> {
        if mode == CopyStorage::None || self.disks.is_empty() {
            return Ok(());
        }
        let nbd = nbd.ok_or_else(|| {
            Error::OperationFailed("the destination offers no disk export to copy to".into())
        })?;
        let mut progress = ctx.progress.subscribe();
        {
            let _n = self
                .job
                .nested(NormalJob::MigrationOp, s.cfg.job_wait)
                .await
                .map_err(|e| jobs::map_err(dom, e))?;
            // The migration's bandwidth limits the disk copies too.
            let speed = bandwidth_mib
                .filter(|m| *m > 0)
                .map(|m| m.saturating_mul(1024 * 1024));
            let mirrors = &mut self.mirrors;
            storage::start_mirrors(s, dom, &self.disks, nbd, mode, speed, mirrors).await?;
        }
        let stall = s.cfg.migration.stall_timeout;
        storage::wait_ready(s, dom, &mut progress, &self.mirrors, stall).await
    }

    /// After the switch to post-copy: waits until QEMU has sent the last
    /// page the destination lacked (or the stream stalls), then takes
    /// QEMU's final figures: it reports the downtime only once the whole
    /// stream is through, not at the switch.
    async fn finish_postcopy(&mut self, s: &Shared, dom: &Domain, ctx: &RunCtx) -> Result<()> {
        let mut progress = ctx.progress.subscribe();
        let until = Until {
            stall: Some(s.cfg.migration.stall_timeout),
            ..Until::default()
        };
        let what = "post-copy migration";
        stream::wait_for(s, dom, ctx, &mut progress, what, until).await?;
        self.take_figures(s, dom).await;
        Ok(())
    }

    /// Post-copy broke off: the destination already ran the guest, so it
    /// cannot resume here; it stays paused "post-copy failed" (as libvirt
    /// leaves it) with its QEMU, for the administrator to settle.
    fn postcopy_failed(self, s: &Shared, dom: &Domain, why: &Error) {
        tracing::error!(domain = dom.name(), error = %why, "post-copy migration failed; guest left paused");
        if let Some(ctx) = &self.ctx {
            dom.lock()
                .postcopy_ended(dom, &s.hub, ctx.generation, false);
        }
        status::persist_in_background(s, dom);
        self.end(dom, &s.hub, Some(why));
    }

    /// The client driving the migration is gone, or its next phase did
    /// not come in time. Before perform completed, the migration is
    /// undone. After, nobody can tell whether the destination runs the
    /// guest, so it stays paused here (libvirt leaves it so too) for the
    /// administrator to settle with `destroy` or `resume`; in post-copy
    /// it is paused "post-copy failed".
    pub(super) async fn abandon(self, s: &Shared, dom: &Domain, why: &Error) {
        if !self.sent || self.postcopy {
            return self.undo(s, dom, why).await;
        }
        tracing::warn!(
            domain = dom.name(),
            error = %why,
            "the guest's state was sent but the migration was not confirmed; left paused here"
        );
        if self.tls {
            super::tls::disable(s, dom).await;
        }
        let e = Error::OperationFailed(format!(
            "{why}; the guest's state was sent, so it stays paused here"
        ));
        self.end(dom, &s.hub, Some(&e));
    }

    /// The migration did not happen: QEMU's is cancelled, the guest
    /// resumes if it ran, the job ends as failed (or cancelled).
    pub(super) async fn undo(self, s: &Shared, dom: &Domain, why: &Error) {
        if self.postcopy {
            return self.postcopy_failed(s, dom, why);
        }
        let ours = |ctx: &RunCtx| dom.lock().run_of(ctx.generation).is_some();
        if let Some(ctx) = &self.ctx
            && ours(ctx)
            && !self.job.destroyed()
        {
            let t = s.cfg.monitor_timeout;
            let _ = dom.qmp(&MigrateCancel, t).await;
            if !self.mirrors.is_empty()
                && let Err(e) = storage::end_mirrors(s, dom, &self.mirrors, false, t).await
            {
                tracing::warn!(domain = dom.name(), error = %e, "disk copies not cancelled");
            }
            dom.lock().expect_pause(ctx.generation, None);
            if self.tls {
                super::tls::disable(s, dom).await;
            }
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
    let capabilities: Vec<_> = [
        (flags.auto_converge, "auto-converge"),
        (flags.compressed, "xbzrle"),
        (flags.postcopy, "postcopy-ram"),
    ]
    .into_iter()
    .filter(|(wanted, _)| *wanted)
    .map(|(_, name)| super::capability_on(name))
    .collect();
    (!capabilities.is_empty()).then_some(MigrateSetCapabilities { capabilities })
}

/// `migrate-setspeed`: QEMU's `max-bandwidth` in bytes/s.
pub(crate) fn max_bandwidth(mib: u64) -> MigrateSetParameters {
    rate("max-bandwidth", mib)
}

/// `bandwidth.postcopy`: QEMU's `max-postcopy-bandwidth` in bytes/s.
fn max_postcopy_bandwidth(mib: u64) -> MigrateSetParameters {
    rate("max-postcopy-bandwidth", mib)
}

/// QEMU's rate parameter `name` (bytes/s) set to `mib` MiB/s.
fn rate(name: &str, mib: u64) -> MigrateSetParameters {
    let mut m = serde_json::Map::new();
    m.insert(name.into(), mib.saturating_mul(1024 * 1024).into());
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
    // In post-copy the destination may already run the guest: as sent.
    let sent = st
        .as_ref()
        .is_some_and(|st| *st == qmp::MigrationStatus::Completed || st.is_postcopy());
    storage::end_leftover_copies(s, dom, sent).await;
    let message = if sent {
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
        let pc = max_postcopy_bandwidth(3).0;
        assert_eq!(pc["max-postcopy-bandwidth"], 3 * 1024 * 1024);
    }
}
