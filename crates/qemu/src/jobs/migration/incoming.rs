//! The destination's side: prepare (a QEMU started paused with
//! `-incoming defer`, listening on a port of the migration range) and
//! finish (wait for the stream to complete, then run the guest; or, when
//! the migration failed or was cancelled, kill that QEMU and forget a
//! domain made for it, leaving nothing behind).

use std::sync::Arc;
use std::time::SystemTime;

use joblock::{AllowList, AsyncKind, NormalJob};
use qmp::commands::{Cont, Quit};

use super::ports::PortLease;
use super::{Cookie, MigrateFlags, MigrationParams, Pending};
use crate::events::hub::Hub;
use crate::jobs::stats::{CompletedJob, RamStats};
use crate::lifecycle::start::{self, Incoming as StartFrom, IncomingFrom};
use crate::lifecycle::{power, stop};
use crate::object::def::Def;
use crate::object::run::RunCtx;
use crate::object::{AsyncJobInfo, Domain};
use crate::shared::Shared;
use crate::state::{StopCause, running};
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
}

/// Parses the definition the source sent.
pub(crate) fn incoming_def(params: &MigrationParams) -> Result<Def> {
    let xml = params
        .dest_xml
        .as_deref()
        .ok_or_else(|| Error::InvalidArg("no domain XML for the destination".into()))?;
    let def = Def::parse(xml)?;
    if let Some(name) = &params.dest_name
        && name != def.name()
    {
        return Err(Error::ConfigUnsupported(
            "renaming a domain while migrating it is not supported".into(),
        ));
    }
    Ok(def)
}

/// Prepare: starts the destination's QEMU waiting for the stream and
/// returns the cookie and the URI the source's QEMU is to send to.
pub(crate) async fn prepare(
    s: &Arc<Shared>,
    params: &MigrationParams,
    cookie: &[u8],
    owner: u64,
) -> Result<(Vec<u8>, String)> {
    Cookie::parse(cookie)?;
    let def = Arc::new(incoming_def(params)?);
    let (dom, created) = claim(s, &def).await?;
    let res = match s.migrations.first_phase(&dom, owner) {
        Ok(phase) => start_incoming(s, &dom, def, params)
            .await
            .map(|(inc, uri)| (phase, inc, uri)),
        Err(e) => Err(e),
    };
    match res {
        Ok((phase, mut inc, uri)) => {
            inc.created = created;
            if let Some(p) = phase.park(Pending::In(inc)) {
                super::undo(s, &dom, p).await;
                return Err(super::gone());
            }
            Ok((Cookie::new(&dom).to_bytes(), uri))
        }
        Err(e) => {
            if created && !dom.is_active() {
                forget(s, &dom);
            }
            Err(e)
        }
    }
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
    let listen_addr = params
        .listen_address
        .clone()
        .or_else(|| s.cfg.migration.address.clone())
        .unwrap_or_else(|| "0.0.0.0".into());
    let lease = match port {
        Some(_) => None,
        None => Some(s.migration_ports.reserve(&listen_addr)?),
    };
    let port = port.or(lease.as_ref().map(|l| l.port)).unwrap_or_default();
    let started = SystemTime::now();
    let from = IncomingFrom::Migration {
        listen: format!("tcp:{}:{port}", bracketed(&listen_addr)),
    };
    start::start_from(s, dom, true, Some(StartFrom { def, from })).await?;
    let ctx = {
        let mut g = dom.lock();
        let ctx = g.active_ctx()?;
        g.begin_job(AsyncJobInfo {
            operation: KIND.into(),
            started,
            path: None,
            resume_running: true,
        });
        ctx
    };
    status::persist_in_background(s, dom);
    let uri = format!("tcp:{}:{port}", bracketed(&host));
    let inc = Incoming {
        job,
        ctx,
        created: false,
        started,
        downtime_ms: None,
        _port: lease,
    };
    Ok((inc, uri))
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
        return Err(e);
    }
    match inc.complete(s, dom, flags.paused).await {
        Ok(()) => {
            inc.end(dom, &s.hub, None);
            status::persist_in_background(s, dom);
            Ok(())
        }
        Err(e) => {
            inc.abandon(s, dom, &e).await;
            Err(e)
        }
    }
}

impl Incoming {
    async fn complete(&self, s: &Shared, dom: &Domain, paused: bool) -> Result<()> {
        let ctx = &self.ctx;
        let mut progress = ctx.progress.subscribe();
        jobs::stream::wait_completed(s, dom, ctx, &mut progress, "incoming migration").await?;
        if paused {
            dom.lock().kept_paused(dom, &s.hub, ctx.generation);
            return Ok(());
        }
        let _n = self
            .job
            .nested(NormalJob::Resume, s.cfg.job_wait)
            .await
            .map_err(|e| jobs::map_err(dom, e))?;
        dom.lock().expect_resume(ctx.generation, running::MIGRATED);
        dom.qmp(&Cont, s.cfg.monitor_timeout).await?;
        power::resumed(s, dom, ctx, running::MIGRATED);
        Ok(())
    }

    /// Kills the QEMU that never got (or never ran) the guest, and forgets
    /// a domain made for it.
    pub(super) async fn abandon(self, s: &Arc<Shared>, dom: &Arc<Domain>, why: &Error) {
        let generation = self.ctx.generation;
        let process = dom.lock().begin_kill(generation, StopCause::Failed);
        if let Some(process) = process {
            let _ = dom.qmp(&Quit, s.cfg.monitor_timeout).await;
            let _ = process.terminate(s.cfg.destroy_grace, true).await;
            stop::cleanup(s, dom, generation, Some(StopCause::Failed));
        }
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
}
