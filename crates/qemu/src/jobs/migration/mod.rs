//! Live migration between two daemons, in libvirt's five phases (v3 with
//! parameters): begin, perform and confirm on the source
//! ([`outgoing`]), prepare and finish on the destination ([`incoming`]).
//!
//! Each side holds its async job (`MigrationOut`, `MigrationIn`) from the
//! first phase to the last, across the separate calls of the client (or
//! peer daemon) driving it: between calls the job waits in [`Table`]. The
//! guest's state crosses in QEMU's own migration stream (`migrate` on the
//! source, `-incoming defer` + `migrate-incoming` on the destination);
//! both sides follow it through MIGRATION events on the run's progress
//! watch, so other events, queries and destroy are never held up by it.

mod cookie;
pub(crate) mod incoming;
pub(crate) mod outgoing;
pub(crate) mod ports;
mod storage;
mod tls;

use std::collections::HashMap;
use std::sync::Arc;

use qmp::commands::{MigrateIncoming, MigrateSetCapabilities};

pub(crate) use cookie::Cookie;
pub use storage::CopyStorage;

use crate::events::hub::Hub;
use crate::jobs::stats::CompletedJob;
use crate::object::{Domain, JobOutcome};
use crate::shared::Shared;
use crate::state::EventKind;
use crate::{Error, Result};

/// The `VIR_MIGRATE_*` flags the driver acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateFlags {
    /// `--live`: the guest runs while its memory is copied (otherwise it
    /// is paused first).
    pub live: bool,
    /// `--persistent`: define the domain on the destination.
    pub persist_dest: bool,
    /// `--undefinesource`: remove the source's definition once done.
    pub undefine_source: bool,
    /// `--suspend` (or a paused source): leave the guest paused on the
    /// destination.
    pub paused: bool,
    /// `--offline`: move the definition only.
    pub offline: bool,
    /// `--auto-converge`: QEMU throttles the guest's vCPUs when memory is
    /// dirtied faster than it is sent (source only).
    pub auto_converge: bool,
    /// `--compressed`: QEMU's XBZRLE page deltas (libvirt's default
    /// compression method; source only).
    pub compressed: bool,
    /// `--copy-storage-all` / `--copy-storage-inc`: the disks are copied
    /// with the guest.
    pub copy_storage: CopyStorage,
    /// `--postcopy`: both QEMUs may switch to post-copy (`migrate-postcopy`
    /// asks for it): the guest then runs on the destination while the
    /// pages it lacks are pulled from the source.
    pub postcopy: bool,
    /// `--tls`: QEMU's stream is TLS, with the credentials of
    /// [`MigrationConfig::tls_dir`] on both sides.
    pub tls: bool,
}

/// The typed parameters (`VIR_MIGRATE_PARAM_*`) the driver understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationParams {
    /// `migrate_uri`: where the source's QEMU sends the stream
    /// (`tcp:HOST:PORT`); the destination's prepare answers it.
    pub uri: Option<String>,
    /// `destination_name` (`virsh migrate --dname`): the name the domain
    /// takes on the destination (the same uuid); its own when absent.
    pub dest_name: Option<String>,
    /// `destination_xml`: the definition the destination runs.
    pub dest_xml: Option<String>,
    /// `persistent_xml`: the definition `--persistent` stores.
    pub persistent_xml: Option<String>,
    /// `bandwidth` in MiB/s (0 = unlimited).
    pub bandwidth_mib: Option<u64>,
    /// `bandwidth.postcopy` in MiB/s: the rate after the switch to
    /// post-copy (0 = unlimited, QEMU's default).
    pub postcopy_bandwidth_mib: Option<u64>,
    /// `listen_address`: where the destination's QEMU listens.
    pub listen_address: Option<String>,
    /// `migrate_disks`: the disks (by target) a storage copy takes; empty
    /// = every writable disk.
    pub migrate_disks: Vec<String>,
}

/// Where migrations are received (libvirt's `migration_address` and
/// `migration_port_min/max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationConfig {
    /// The address incoming QEMUs listen on and the source is told to
    /// connect to; `None` = listen on every address and tell the source
    /// this host's name.
    pub address: Option<String>,
    /// First and last port an incoming QEMU may listen on.
    pub port_min: u16,
    pub port_max: u16,
    /// A migration whose stream moves no byte for this long fails.
    pub stall_timeout: std::time::Duration,
    /// An incoming migration not finished this long after its prepare is
    /// undone.
    pub finish_timeout: std::time::Duration,
    /// Where `--tls` migrations take QEMU's credentials from (libvirt's
    /// `migrate_tls_x509_cert_dir`, QEMU's file names).
    pub tls_dir: std::path::PathBuf,
    /// Whether the destination requires and verifies the source's
    /// certificate (`migrate_tls_x509_verify`).
    pub tls_verify: bool,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            address: None,
            port_min: 49152,
            port_max: 49215,
            stall_timeout: std::time::Duration::from_secs(30),
            finish_timeout: std::time::Duration::from_secs(600),
            tls_dir: std::path::PathBuf::from("/etc/pki/qemu"),
            tls_verify: true,
        }
    }
}

/// A migration between two of its phases: the side's async job and what
/// the next phase needs.
pub(crate) enum Pending {
    Out(outgoing::Outgoing),
    In(incoming::Incoming),
}

/// A migration's place in the table: waiting for its next phase, or in
/// one (`abandoned` once the connection that drives it closed).
enum Slot {
    Parked(Box<Pending>),
    Busy { abandoned: bool },
}

struct Entry {
    /// The connection that drives this side (an opaque number from the
    /// caller): when it closes, the migration is undone.
    owner: u64,
    /// This wait among all of the table's: renewed each time the
    /// migration parks, so a deadline set for one wait never undoes a
    /// later wait or a later migration of the same domain.
    id: u64,
    /// Started with `--postcopy`: `migrate-postcopy` may switch it.
    postcopy: bool,
    slot: Slot,
}

/// The migrations in progress, by domain uuid. At most one per domain
/// (each holds the domain's async job), so bounded by the number of
/// domains. A short lock, never held across an await.
#[derive(Default)]
pub(crate) struct Table {
    entries: std::sync::Mutex<HashMap<uuid::Uuid, Entry>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One phase running: its entry is busy until [`Phase::park`] hands the
/// migration to the next phase; dropped without it, the entry goes.
pub(crate) struct Phase<'a> {
    table: &'a Table,
    uuid: uuid::Uuid,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The first phase of a migration of `dom` driven by `owner`.
    pub(crate) fn first_phase(
        &self,
        dom: &Domain,
        owner: u64,
        flags: MigrateFlags,
    ) -> Result<Phase<'_>> {
        let mut g = self.lock();
        if g.contains_key(&dom.uuid()) {
            return Err(Error::OperationInvalid(format!(
                "domain '{}' is already being migrated",
                dom.name()
            )));
        }
        let slot = Slot::Busy { abandoned: false };
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let postcopy = flags.postcopy;
        g.insert(
            dom.uuid(),
            Entry {
                owner,
                id,
                postcopy,
                slot,
            },
        );
        Ok(Phase {
            table: self,
            uuid: dom.uuid(),
        })
    }

    /// Takes `dom`'s parked migration for its next phase.
    fn take(&self, dom: &Domain, which: &str) -> Result<(Phase<'_>, Pending)> {
        let mut g = self.lock();
        let entry = g
            .get_mut(&dom.uuid())
            .ok_or_else(|| no_migration(dom, which))?;
        let Slot::Parked(_) = entry.slot else {
            return Err(no_migration(dom, which));
        };
        let Slot::Parked(p) = std::mem::replace(&mut entry.slot, Slot::Busy { abandoned: false })
        else {
            return Err(no_migration(dom, which));
        };
        let p = *p;
        let phase = Phase {
            table: self,
            uuid: dom.uuid(),
        };
        Ok((phase, p))
    }

    /// Takes `dom`'s outgoing migration for its next phase.
    pub(crate) fn take_out(&self, dom: &Domain) -> Result<(Phase<'_>, outgoing::Outgoing)> {
        match self.take(dom, "outgoing")? {
            (phase, Pending::Out(o)) => Ok((phase, o)),
            (phase, other) => {
                drop(phase.park(other));
                Err(no_migration(dom, "outgoing"))
            }
        }
    }

    /// Takes `dom`'s incoming migration for its next phase.
    pub(crate) fn take_in(&self, dom: &Domain) -> Result<(Phase<'_>, incoming::Incoming)> {
        match self.take(dom, "incoming")? {
            (phase, Pending::In(i)) => Ok((phase, i)),
            (phase, other) => {
                drop(phase.park(other));
                Err(no_migration(dom, "incoming"))
            }
        }
    }

    /// The connection `owner` closed: its parked migrations are handed
    /// back to be undone, and those in a phase are marked so that the
    /// phase undoes them when it ends.
    pub(crate) fn abandon(&self, owner: u64) -> Vec<(uuid::Uuid, Pending)> {
        let mut g = self.lock();
        let mine: Vec<uuid::Uuid> = g
            .iter()
            .filter(|(_, e)| e.owner == owner)
            .map(|(u, _)| *u)
            .collect();
        let mut undo = Vec::new();
        for uuid in mine {
            let Some(e) = g.get_mut(&uuid) else { continue };
            match &mut e.slot {
                Slot::Busy { abandoned } => *abandoned = true,
                Slot::Parked(_) => {
                    if let Some(Entry {
                        slot: Slot::Parked(p),
                        ..
                    }) = g.remove(&uuid)
                    {
                        undo.push((uuid, *p));
                    }
                }
            }
        }
        undo
    }

    /// Takes migration `id` of `uuid` if it still waits for its next
    /// phase (its deadline passed).
    fn take_expired(&self, uuid: &uuid::Uuid, id: u64) -> Option<Pending> {
        let mut g = self.lock();
        match g.get(uuid) {
            Some(e) if e.id == id && matches!(e.slot, Slot::Parked(_)) => {}
            _ => return None,
        }
        match g.remove(uuid) {
            Some(Entry {
                slot: Slot::Parked(p),
                ..
            }) => Some(*p),
            _ => None,
        }
    }

    /// Whether the migration of `uuid` was started with `--postcopy`.
    pub(crate) fn postcopy_allowed(&self, uuid: &uuid::Uuid) -> bool {
        self.lock().get(uuid).is_some_and(|e| e.postcopy)
    }

    /// Drops what waits for a domain that is gone (its QEMU died and a
    /// transient domain went with it): its job and its port.
    pub(crate) fn forget(&self, uuid: &uuid::Uuid) {
        self.lock().remove(uuid);
    }
}

impl Phase<'_> {
    /// Keeps `p` for the next phase; `Some(p)` back when the connection
    /// driving it is gone, for the caller to undo.
    #[must_use]
    pub(crate) fn park(self, p: Pending) -> Option<Pending> {
        self.park_ticket(p).err().map(|b| *b)
    }

    /// [`Phase::park`], and undoes the migration if its next phase has
    /// not come within `after` (a client that hangs, or keeps its
    /// connection and never calls).
    #[must_use]
    pub(crate) fn park_until(
        self,
        s: &Arc<Shared>,
        dom: &Arc<Domain>,
        p: Pending,
        after: std::time::Duration,
    ) -> Option<Pending> {
        match self.park_ticket(p) {
            Ok(ticket) => {
                expire_after(s, dom, ticket, after);
                None
            }
            Err(p) => Some(*p),
        }
    }

    /// Parks `p` under a fresh ticket (returned), or hands it back.
    fn park_ticket(self, p: Pending) -> std::result::Result<u64, Box<Pending>> {
        let ticket = self
            .table
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut g = self.table.lock();
        match g.get_mut(&self.uuid) {
            Some(e) if matches!(e.slot, Slot::Busy { abandoned: false }) => {
                e.slot = Slot::Parked(Box::new(p));
                e.id = ticket;
                Ok(ticket)
            }
            _ => Err(Box::new(p)),
        }
    }
}

impl Drop for Phase<'_> {
    fn drop(&mut self) {
        let mut g = self.table.lock();
        if matches!(
            g.get(&self.uuid),
            Some(Entry {
                slot: Slot::Busy { .. },
                ..
            })
        ) {
            g.remove(&self.uuid);
        }
    }
}

/// Undoes a migration whose driving connection closed: the source's
/// guest stays (or resumes) here, the destination's QEMU is killed.
pub(crate) async fn undo(s: &Arc<Shared>, dom: &Arc<Domain>, p: Pending) {
    tracing::info!(
        domain = dom.name(),
        "the connection driving its migration closed; undoing it"
    );
    let e = gone();
    match p {
        Pending::Out(o) => o.abandon(s, dom, &e).await,
        Pending::In(i) => i.abandon(s, dom, &e).await,
    }
}

/// `domjobabort` cancelled QEMU's migration: an outgoing one's disk
/// copies are cancelled too.
pub(crate) async fn aborted(s: &Shared, dom: &Domain) {
    let out = dom
        .async_job()
        .is_some_and(|j| j.operation == crate::state::JobOperation::MigrationOut);
    if out {
        storage::cancel_copies(s, dom).await;
    }
}

/// How far an outgoing migration's disk copies are (none without them).
pub(crate) async fn disk_progress(
    s: &Shared,
    dom: &Domain,
) -> Option<crate::jobs::stats::DiskStats> {
    storage::progress(s, dom).await
}

/// Driver open: removes the images incoming migrations that never
/// finished created (see `storage::Precreated`).
pub(crate) fn sweep_precreated(dir: &std::path::Path) {
    storage::sweep(dir);
}

/// Undoes the migration of `dom` if it still waits for its next phase
/// under `ticket` after `after`.
fn expire_after(s: &Arc<Shared>, dom: &Arc<Domain>, ticket: u64, after: std::time::Duration) {
    let (s, dom) = (s.clone(), dom.clone());
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let Some(p) = s.migrations.take_expired(&dom.uuid(), ticket) else {
            return;
        };
        let e = Error::OperationFailed(format!(
            "the migration's next phase did not come within {} s",
            after.as_secs()
        ));
        tracing::warn!(domain = dom.name(), error = %e, "undoing the migration");
        match p {
            Pending::Out(o) => o.abandon(&s, &dom, &e).await,
            Pending::In(i) => i.abandon(&s, &dom, &e).await,
        }
    });
}

/// Why a migration was undone by [`undo`].
pub(crate) fn gone() -> Error {
    Error::Aborted("the connection driving the migration closed".into())
}

fn no_migration(dom: &Domain, which: &str) -> Error {
    Error::OperationInvalid(format!(
        "domain '{}' has no {which} migration in progress",
        dom.name()
    ))
}

/// Asks for MIGRATION events (a QEMU without them is still polled).
async fn enable_events(s: &Shared, dom: &Domain) {
    if let Err(e) = dom
        .qmp(&MigrateSetCapabilities::events(), s.cfg.monitor_timeout)
        .await
    {
        tracing::debug!(domain = dom.name(), error = %e, "no migration events");
    }
}

/// The destination's QEMU (started with `-incoming defer`) starts
/// listening on `uri` for the source's stream: with `flags.tls` over TLS,
/// with `flags.postcopy` ready to take the guest in post-copy (QEMU
/// refuses where it cannot, e.g. when it may not use userfaultfd).
pub(crate) async fn listen(s: &Shared, dom: &Domain, uri: &str, flags: MigrateFlags) -> Result<()> {
    enable_events(s, dom).await;
    if flags.tls {
        tls::enable(s, dom, tls::Endpoint::Server, None).await?;
    }
    if flags.postcopy {
        let caps = MigrateSetCapabilities {
            capabilities: vec![capability_on("postcopy-ram")],
        };
        dom.qmp(&caps, s.cfg.monitor_timeout).await.map_err(|e| {
            let why = match e {
                Error::Qemu(m) => m,
                other => other.to_string(),
            };
            Error::OperationFailed(format!(
                "post-copy is not available on the destination ({why}): QEMU needs \
                     userfaultfd, which a QEMU not run as root may use only where \
                     vm.unprivileged_userfaultfd = 1"
            ))
        })?;
    }
    let incoming = MigrateIncoming {
        uri: uri.to_owned(),
    };
    dom.qmp(&incoming, s.cfg.monitor_timeout).await?;
    Ok(())
}

/// libvirt's "unlimited" migration bandwidth, in MiB/s: what
/// `migrate-getspeed` reports when nothing was set.
pub(crate) const UNLIMITED_MIB: u64 = 8_796_093_022_207;

/// A new QEMU migrates unthrottled until `migrate-setspeed` says
/// otherwise, as under libvirt (QEMU's own default is 32 MiB/s). QEMU
/// keeps the value, so it survives a daemon restart. Best effort: a
/// QEMU that refuses only migrates more slowly.
pub(crate) async fn unthrottle(s: &Shared, dom: &Domain) {
    let cmd = outgoing::max_bandwidth(UNLIMITED_MIB);
    if let Err(e) = dom.qmp(&cmd, s.cfg.monitor_timeout).await {
        tracing::debug!(domain = dom.name(), error = %e, "migration bandwidth left at QEMU's default");
    }
}

/// QEMU's migration capability `name`, on.
fn capability_on(name: &str) -> qmp::commands::MigrationCapabilityStatus {
    qmp::commands::MigrationCapabilityStatus {
        capability: name.into(),
        state: true,
    }
}

/// Ends a migration job on this side: its statistics for `domjobinfo
/// --completed` (`done`), its outcome, and JOB_COMPLETED when it
/// completed.
fn end_job(dom: &Domain, hub: &Hub, done: CompletedJob, failure: Option<&Error>) {
    let outcome = JobOutcome {
        operation: done.operation,
        success: failure.is_none(),
        message: failure.map(ToString::to_string).unwrap_or_default(),
    };
    let mut g = dom.lock();
    if failure.is_none() {
        g.emit(
            dom,
            hub,
            EventKind::JobCompleted {
                stats: done.stats(),
            },
        );
    }
    g.set_completed_job(done);
    g.end_job(Some(outcome));
}
