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

use std::collections::HashMap;
use std::sync::Arc;

use qmp::commands::{MigrateIncoming, MigrateSetCapabilities};

pub(crate) use cookie::Cookie;

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
}

/// The typed parameters (`VIR_MIGRATE_PARAM_*`) the driver understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationParams {
    /// `migrate_uri`: where the source's QEMU sends the stream
    /// (`tcp:HOST:PORT`); the destination's prepare answers it.
    pub uri: Option<String>,
    /// `destination_name`: must be the domain's own name (renaming is
    /// not supported).
    pub dest_name: Option<String>,
    /// `destination_xml`: the definition the destination runs.
    pub dest_xml: Option<String>,
    /// `persistent_xml`: the definition `--persistent` stores.
    pub persistent_xml: Option<String>,
    /// `bandwidth` in MiB/s (0 = unlimited).
    pub bandwidth_mib: Option<u64>,
    /// `listen_address`: where the destination's QEMU listens.
    pub listen_address: Option<String>,
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
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            address: None,
            port_min: 49152,
            port_max: 49215,
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
    slot: Slot,
}

/// The migrations in progress, by domain uuid. At most one per domain
/// (each holds the domain's async job), so bounded by the number of
/// domains. A short lock, never held across an await.
#[derive(Default)]
pub(crate) struct Table {
    entries: std::sync::Mutex<HashMap<uuid::Uuid, Entry>>,
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
    pub(crate) fn first_phase(&self, dom: &Domain, owner: u64) -> Result<Phase<'_>> {
        let mut g = self.lock();
        if g.contains_key(&dom.uuid()) {
            return Err(Error::OperationInvalid(format!(
                "domain '{}' is already being migrated",
                dom.name()
            )));
        }
        let slot = Slot::Busy { abandoned: false };
        g.insert(dom.uuid(), Entry { owner, slot });
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
        let mut g = self.table.lock();
        let back = match g.get_mut(&self.uuid) {
            Some(e) if matches!(e.slot, Slot::Busy { abandoned: false }) => {
                e.slot = Slot::Parked(Box::new(p));
                None
            }
            _ => Some(p),
        };
        drop(g);
        back
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
        Pending::Out(o) => o.undo(s, dom, &e).await,
        Pending::In(i) => i.abandon(s, dom, &e).await,
    }
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
/// listening on `uri` for the source's stream.
pub(crate) async fn listen(s: &Shared, dom: &Domain, uri: &str) -> Result<()> {
    enable_events(s, dom).await;
    let incoming = MigrateIncoming {
        uri: uri.to_owned(),
    };
    dom.qmp(&incoming, s.cfg.monitor_timeout).await?;
    Ok(())
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
