//! The destination's side: prepare (a QEMU started paused with
//! `-incoming defer`, listening on a port of the migration range) and
//! finish (wait for the stream to complete, then run the guest; or, when
//! the migration failed or was cancelled, kill that QEMU and forget a
//! domain made for it, leaving nothing behind).

use std::sync::Arc;
use std::time::SystemTime;

use joblock::{AllowList, AsyncKind, NormalJob};
use qmp::commands::{Cont, Quit, Stop};

use super::ports::PortLease;
use super::storage::{self, CookieDisk, CopyStorage, NbdServer, Precreated};
use super::{Cookie, MigrateFlags, MigrationParams, Pending};
use crate::events::hub::Hub;
use crate::jobs::stats::{CompletedJob, RamStats};
use crate::jobs::stream::{self, Reached, Until};
use crate::lifecycle::start::{self, Incoming as StartFrom, IncomingFrom};
use crate::lifecycle::{power, stop};
use crate::object::def::Def;
use crate::object::run::RunCtx;
use crate::object::{AsyncJobInfo, Domain};
use crate::shared::Shared;
use crate::state::{StopCause, paused, running};
use crate::store::status;
use crate::{Error, Result, jobs};

const KIND: AsyncKind = AsyncKind::MigrationIn;

/// An incoming migration between prepare and finish.
pub(crate) struct Incoming {
    job: joblock::AsyncJob,
    ctx: Arc<RunCtx>,
    /// The domain was made for this migration (forgotten if it fails).
    created: bool,
    started: SystemTime,
    /// The guest's downtime the source measured (perform's cookie).
    downtime_ms: Option<u64>,
    /// Held until finish: no other migration is handed this port (none
    /// when the client chose the port).
    _port: Option<PortLease>,
    /// The images prepare created, removed if the migration fails.
    precreated: Precreated,
    /// The port QEMU's NBD server takes the disks on (a storage copy).
    nbd: Option<PortLease>,
    /// The migration switched to post-copy: the guest runs here while its
    /// remaining pages arrive, so a failure from then on cannot be undone
    /// by killing this QEMU (see [`Incoming::postcopy_failed`]).
    in_postcopy: bool,
}

/// What prepare needs for a storage copy: how much is copied, the disks
/// and what the source said of them.
struct StorageCopy {
    mode: CopyStorage,
    disks: Vec<crate::object::def::DiskInfo>,
    announced: Vec<CookieDisk>,
}

/// Parses the definition the source sent, under the destination's name.
pub(crate) fn incoming_def(params: &MigrationParams) -> Result<Def> {
    let xml = params
        .dest_xml
        .as_deref()
        .ok_or_else(|| Error::InvalidArg("no domain XML for the destination".into()))?;
    named(params, Def::parse(xml)?)
}

/// What `--persistent` defines on the destination: the persistent
/// definition the source sent (else the one it runs), under the
/// destination's name.
pub(crate) fn persistent_def(params: &MigrationParams) -> Result<Def> {
    match params.persistent_xml.as_deref() {
        Some(xml) => named(params, Def::parse(xml)?),
        None => incoming_def(params),
    }
}

/// `def` renamed to `destination_name`, when that is given.
fn named(params: &MigrationParams, def: Def) -> Result<Def> {
    match params.dest_name.as_deref() {
        Some(name) if name != def.name() => def.renamed(name),
        _ => Ok(def),
    }
}

/// Prepare: starts the destination's QEMU waiting for the stream and
/// returns the cookie and the URI the source's QEMU is to send to.
pub(crate) async fn prepare(
    s: &Arc<Shared>,
    params: &MigrationParams,
    cookie: &[u8],
    flags: MigrateFlags,
    owner: u64,
) -> Result<(Vec<u8>, String)> {
    let announced = Cookie::parse(cookie)?.map(|c| c.disks).unwrap_or_default();
    let def = Arc::new(incoming_def(params)?);
    let copy = StorageCopy {
        mode: flags.copy_storage,
        disks: match flags.copy_storage {
            CopyStorage::None => Vec::new(),
            _ => storage::selected(&def, &params.migrate_disks)?,
        },
        announced,
    };
    let (dom, created) = claim(s, &def).await?;
    let mut made = Precreated::default();
    let res = match s.migrations.first_phase(&dom, owner, flags) {
        Ok(phase) => start_incoming(s, &dom, def, params, &copy, flags, &mut made)
            .await
            .map(|(inc, uri)| (phase, inc, uri)),
        Err(e) => Err(e),
    };
    let (phase, mut inc, uri) = match res {
        Ok(r) => r,
        Err(e) => {
            made.remove();
            if created && !dom.is_active() {
                forget(s, &dom);
            }
            return Err(e);
        }
    };
    inc.created = created;
    inc.precreated = made;
    let mut out = Cookie::new(&dom);
    match inc.serve_disks(s, &dom, params, &uri, &copy.disks).await {
        Ok(nbd) => out.nbd = nbd,
        Err(e) => {
            inc.abandon(s, &dom, &e).await;
            return Err(e);
        }
    }
    let wait = s.cfg.migration.finish_timeout;
    if let Some(p) = phase.park_until(s, &dom, Pending::In(inc), wait) {
        super::undo(s, &dom, p).await;
        return Err(super::gone());
    }
    Ok((out.to_bytes(), uri))
}

/// The domain the guest arrives in: an inactive definition of the same
/// guest, or a new transient domain.
async fn claim(s: &Shared, def: &Arc<Def>) -> Result<(Arc<Domain>, bool)> {
    let _d = s.define_lock.lock().await;
    match s.registry.find_same(def.name(), &def.uuid())? {
        Some(dom) if dom.is_active() => Err(Error::OperationInvalid(format!(
            "domain '{}' is already active",
            dom.name()
        ))),
        Some(dom) => Ok((dom, false)),
        None => {
            let dom = Domain::new(def.clone(), false);
            s.registry.insert(&dom);
            Ok((dom, true))
        }
    }
}

fn forget(s: &Shared, dom: &Arc<Domain>) {
    dom.lock().forget();
    s.registry.remove(dom);
    dom.jobs.close("incoming migration failed");
}

/// Takes the job and a port, and starts QEMU listening on it.
async fn start_incoming(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    def: Arc<Def>,
    params: &MigrationParams,
    copy: &StorageCopy,
    flags: MigrateFlags,
    made: &mut Precreated,
) -> Result<(Incoming, String)> {
    let job = jobs::begin_async(
        dom,
        KIND,
        AllowList::DEFAULT,
        "migrate (incoming)",
        s.cfg.job_wait,
    )
    .await?;
    let (host, port) = endpoint(s, params)?;
    let listen_addr = listen_address(s, params);
    let lease = match port {
        Some(_) => None,
        None => Some(s.migration_ports.reserve(&listen_addr)?),
    };
    let port = port.or(lease.as_ref().map(|l| l.port)).unwrap_or_default();
    let started = SystemTime::now();
    let record = (s.layout.migration_dir.as_path(), dom.uuid());
    storage::precreate(record, &copy.disks, &copy.announced, copy.mode, made).await?;
    let from = IncomingFrom::Migration {
        listen: format!("tcp:{}:{port}", bracketed(&listen_addr)),
        flags,
    };
    // The job is the domain's before its QEMU exists, so every status
    // record of this run names it: QEMU listens for the stream before the
    // start returns, and a daemon killed at any instant from then on comes
    // back knowing this QEMU holds an unfinished incoming migration (and
    // kills it), never taking it for a guest to keep.
    dom.lock().begin_job(AsyncJobInfo {
        operation: KIND.into(),
        started,
        path: None,
        resume_running: true,
    });
    let launched = start::start_from(s, dom, true, Some(StartFrom { def, from })).await;
    let ctx = launched.and_then(|()| dom.lock().active_ctx());
    let ctx = match ctx {
        Ok(ctx) => ctx,
        Err(e) => {
            dom.lock().end_job(None);
            return Err(e);
        }
    };
    let uri = format!("tcp:{}:{port}", bracketed(&host));
    let inc = Incoming {
        job,
        ctx,
        created: false,
        started,
        downtime_ms: None,
        _port: lease,
        precreated: Precreated::default(),
        nbd: None,
        in_postcopy: false,
    };
    Ok((inc, uri))
}

/// Where the incoming QEMU listens: `listen_address`, else
/// `migration_address`, else every address.
fn listen_address(s: &Shared, params: &MigrationParams) -> String {
    params
        .listen_address
        .clone()
        .or_else(|| s.cfg.migration.address.clone())
        .unwrap_or_else(|| "0.0.0.0".into())
}

/// The host the source is told to send to, and the port if the client
/// chose one (`migrate_uri` `tcp:HOST[:PORT]`, as `virsh migrate
/// --migrateuri` passes it); else `migration_address` or this host's name.
fn endpoint(s: &Shared, params: &MigrationParams) -> Result<(String, Option<u16>)> {
    let default_host = || {
        s.cfg
            .migration
            .address
            .clone()
            .unwrap_or_else(super::cookie::hostname)
    };
    let Some(uri) = &params.uri else {
        return Ok((default_host(), None));
    };
    let rest = uri
        .strip_prefix("tcp://")
        .or_else(|| uri.strip_prefix("tcp:"))
        .ok_or_else(|| {
            Error::InvalidArg(format!("migration URI '{uri}' is not tcp:HOST[:PORT]"))
        })?;
    parse_host_port(rest)
        .map(|(h, p)| (h.unwrap_or_else(default_host), p))
        .ok_or_else(|| Error::InvalidArg(format!("migration URI '{uri}' is not tcp:HOST[:PORT]")))
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` (an empty host: `None`).
fn parse_host_port(s: &str) -> Option<(Option<String>, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        (h, rest.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => None,
    };
    let host = (!host.is_empty()).then(|| host.to_owned());
    Some((host, port))
}

/// The host of a `tcp:HOST:PORT` migration URI (what the destination's
/// certificate must name).
pub(crate) fn uri_host(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("tcp://")
        .or_else(|| uri.strip_prefix("tcp:"))?;
    parse_host_port(rest).and_then(|(h, _)| h)
}

/// An IPv6 address in URI form.
fn bracketed(addr: &str) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    }
}

/// Finish: once the stream completed, runs the guest (or leaves it paused
/// with `flags.paused`). `cancelled` (the source failed), or a stream
/// that did not complete, kills QEMU and forgets a domain made for the
/// migration, and fails.
pub(crate) async fn finish(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    cookie: &[u8],
    flags: MigrateFlags,
    cancelled: bool,
) -> Result<()> {
    let (_phase, mut inc) = s.migrations.take_in(dom)?;
    // What the source measured (a foreign cookie is not fatal here: the
    // guest's state has already arrived).
    inc.downtime_ms = Cookie::parse(cookie)
        .ok()
        .flatten()
        .and_then(|c| c.downtime_ms);
    if cancelled {
        let e = Error::OperationFailed("migration was cancelled by the source".into());
        inc.abandon(s, dom, &e).await;
        return Err(Error::MigrateFinishOk);
    }
    let res = inc.complete(s, dom, flags).await;
    if flags.tls {
        super::tls::disable(s, dom).await;
    }
    match res {
        Ok(()) => {
            inc.end(dom, &s.hub, None);
            status::persist_in_background(s, dom);
            Ok(())
        }
        Err(e) if inc.in_postcopy => {
            inc.postcopy_failed(s, dom, &e).await;
            Err(e)
        }
        Err(e) => {
            inc.abandon(s, dom, &e).await;
            Err(e)
        }
    }
}

impl Incoming {
    /// With a storage copy: QEMU's NBD server exports `disks` on a port of
    /// the migration range, at the host of `uri` (what the source is told).
    async fn serve_disks(
        &mut self,
        s: &Shared,
        dom: &Domain,
        params: &MigrationParams,
        uri: &str,
        disks: &[crate::object::def::DiskInfo],
    ) -> Result<Option<NbdServer>> {
        if disks.is_empty() {
            return Ok(None);
        }
        let listen = listen_address(s, params);
        let lease = s.migration_ports.reserve(&listen)?;
        let port = lease.port;
        self.nbd = Some(lease);
        storage::serve(s, dom, disks, &listen, port).await?;
        let host = uri_host(uri).unwrap_or_else(super::cookie::hostname);
        Ok(Some(NbdServer { host, port }))
    }

    async fn complete(&mut self, s: &Shared, dom: &Domain, flags: MigrateFlags) -> Result<()> {
        let ctx = self.ctx.clone();
        let mut progress = ctx.progress.subscribe();
        let what = "incoming migration";
        // No stall deadline here: the source watches the stream it sends.
        let until = Until {
            postcopy: flags.postcopy,
            stall: None,
        };
        let reached = stream::wait_for(s, dom, &ctx, &mut progress, what, until).await?;
        if self.nbd.is_some() {
            storage::stop_serving(s, dom).await?;
        }
        // The guest's state and disks are here: from now on its images are
        // never removed (a daemon killed before the guest runs leaves them
        // rather than take them from a guest that might run on them).
        self.precreated.keep();
        if reached == Reached::Postcopy {
            // The guest runs here and pulls the pages it still lacks.
            self.in_postcopy = true;
            if !flags.paused {
                self.resume(s, dom, running::POSTCOPY).await?;
            }
            stream::wait_completed(s, dom, &ctx, &mut progress, what).await?;
            dom.lock().postcopy_ended(dom, &s.hub, ctx.generation, true);
        }
        if flags.paused {
            dom.lock().kept_paused(dom, &s.hub, ctx.generation);
            return Ok(());
        }
        if reached == Reached::Completed {
            self.resume(s, dom, running::MIGRATED).await?;
        }
        Ok(())
    }

    /// Runs the arrived guest, as `reason` says.
    async fn resume(&self, s: &Shared, dom: &Domain, reason: i32) -> Result<()> {
        let ctx = &self.ctx;
        let _n = self
            .job
            .nested(NormalJob::Resume, s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        dom.lock().expect_resume(ctx.generation, reason);
        dom.qmp(&Cont, s.cfg.monitor_timeout).await?;
        power::resumed(s, dom, ctx, reason);
        Ok(())
    }

    /// Post-copy broke off: part of the guest's memory is here, the rest
    /// on the source, so neither QEMU may go. The guest is paused "post-copy
    /// failed" on both sides (as libvirt leaves it) for the administrator
    /// to settle; the domain and its images stay.
    async fn postcopy_failed(self, s: &Arc<Shared>, dom: &Arc<Domain>, why: &Error) {
        let generation = self.ctx.generation;
        tracing::error!(domain = dom.name(), error = %why, "incoming post-copy migration failed; guest left paused");
        dom.lock()
            .expect_pause(generation, Some(paused::POSTCOPY_FAILED));
        let _ = dom.qmp(&Stop, s.cfg.monitor_timeout).await;
        dom.lock().postcopy_ended(dom, &s.hub, generation, false);
        self.end(dom, &s.hub, Some(why));
        status::persist_in_background(s, dom);
    }

    /// Kills the QEMU that never got (or never ran) the guest, and forgets
    /// a domain made for it.
    pub(super) async fn abandon(mut self, s: &Arc<Shared>, dom: &Arc<Domain>, why: &Error) {
        let generation = self.ctx.generation;
        let process = dom.lock().begin_kill(generation, StopCause::Failed);
        if let Some(process) = process {
            let _ = dom.qmp(&Quit, s.cfg.monitor_timeout).await;
            let _ = process.terminate(s.cfg.destroy_grace, true).await;
            stop::cleanup(s, dom, generation, Some(StopCause::Failed));
        }
        self.precreated.remove();
        let created = self.created;
        self.end(dom, &s.hub, Some(why));
        if created && !dom.is_active() && !dom.is_persistent() {
            forget(s, dom);
        }
    }

    fn end(&self, dom: &Domain, hub: &Hub, failure: Option<&Error>) {
        let mut done =
            CompletedJob::failed_with(KIND.into(), self.started, RamStats::default(), failure);
        done.downtime_ms = self.downtime_ms.filter(|_| failure.is_none());
        super::end_job(dom, hub, done, failure);
    }
}

/// An incoming migration that ran across a daemon restart: nobody can
/// finish it (the finish call went to the old daemon), so its QEMU is
/// killed, as the source resumes the guest when its migration fails.
pub(crate) async fn readopt(s: &Arc<Shared>, dom: &Arc<Domain>, ctx: &RunCtx) {
    if in_postcopy(s, dom).await {
        // The source can no longer run the guest: this QEMU holds it.
        tracing::warn!(
            domain = dom.name(),
            "incoming migration interrupted by a daemon restart in post-copy; the guest stays here"
        );
        dom.lock().end_job(None);
        return;
    }
    tracing::info!(
        domain = dom.name(),
        "incoming migration interrupted by a daemon restart; stopping its QEMU"
    );
    let process = dom.lock().begin_kill(ctx.generation, StopCause::Failed);
    if let Some(process) = process {
        let _ = process.terminate(s.cfg.destroy_grace, true).await;
        stop::cleanup(s, dom, ctx.generation, Some(StopCause::Failed));
    }
    dom.lock().end_job(None);
}

/// Whether QEMU (if its monitor answers) says its incoming migration
/// switched to post-copy.
async fn in_postcopy(s: &Shared, dom: &Domain) -> bool {
    if dom.lock().monitor().is_none() {
        return false;
    }
    dom.qmp(&qmp::commands::QueryMigrate, s.cfg.monitor_timeout)
        .await
        .ok()
        .and_then(|m| m.status)
        .is_some_and(|st| st.is_postcopy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_uris_name_a_host_and_maybe_a_port() {
        let hp = |s: &str| parse_host_port(s);
        assert_eq!(hp("h"), Some((Some("h".into()), None)));
        assert_eq!(hp("h:49200"), Some((Some("h".into()), Some(49200))));
        assert_eq!(hp("[::1]:5"), Some((Some("::1".into()), Some(5))));
        assert_eq!(hp("[::1]"), Some((Some("::1".into()), None)));
        assert_eq!(hp(":7"), Some((None, Some(7))));
        assert_eq!(hp("h:x"), None);
        assert_eq!(hp("h:0"), None);
        assert_eq!(hp("[::1"), None);
        assert_eq!(bracketed("::1"), "[::1]");
        assert_eq!(bracketed("10.0.0.1"), "10.0.0.1");
    }

    const XML: &str = "<domain type='qemu'><name>vm</name>\
        <uuid>0b0c5a5e-5b8e-4c1f-9a43-2d7b5d1b3c11</uuid>\
        <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
        <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>";

    #[test]
    fn the_destination_name_renames_both_definitions_and_keeps_the_uuid() {
        let persistent = XML.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
        let mut params = MigrationParams {
            dest_xml: Some(XML.into()),
            persistent_xml: Some(persistent),
            ..MigrationParams::default()
        };
        assert_eq!(incoming_def(&params).unwrap().name(), "vm");
        params.dest_name = Some("vm2".into());
        let live = incoming_def(&params).unwrap();
        let kept = persistent_def(&params).unwrap();
        assert_eq!((live.name(), kept.name()), ("vm2", "vm2"));
        assert_eq!(live.uuid(), kept.uuid());
        assert_eq!(
            kept.vcpus(),
            2,
            "the persistent definition, not the live one"
        );
        params.persistent_xml = None;
        assert_eq!(persistent_def(&params).unwrap().vcpus(), 1);
        for bad in ["a/b", "..", "-x", ""] {
            params.dest_name = Some(bad.into());
            let e = incoming_def(&params).unwrap_err();
            assert!(matches!(e, Error::Xml(_)), "{bad}: {e}");
        }
    }
}
