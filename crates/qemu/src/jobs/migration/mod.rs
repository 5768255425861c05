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
use std::time::Duration;

use qmp::MigrationStatus;
use qmp::commands::{MigrateIncoming, MigrateSetCapabilities};
use tokio::sync::watch;

pub(crate) use cookie::Cookie;

use crate::object::Domain;
use crate::object::run::{Progress, RunCtx};
use crate::shared::Shared;
use crate::{Error, Result};

/// Re-read query-migrate at least this often while a migration runs:
/// events are hints (they may be coalesced).
const POLL: Duration = Duration::from_millis(500);

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

/// The migrations waiting for their next phase, by domain uuid. At most
/// one per domain (each holds the domain's async job), so bounded by the
/// number of domains. A short lock, never held across an await.
#[derive(Default)]
pub(crate) struct Table {
    pending: std::sync::Mutex<HashMap<uuid::Uuid, Pending>>,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `p` for the next phase of `dom`'s migration.
    pub(crate) fn park(&self, dom: &Domain, p: Pending) {
        self.lock().insert(dom.uuid(), p);
    }

    /// Drops what waits for a domain that is gone (its QEMU died and a
    /// transient domain went with it): its job and its port.
    pub(crate) fn forget(&self, uuid: &uuid::Uuid) {
        self.lock().remove(uuid);
    }

    /// Takes `dom`'s outgoing migration for its next phase.
    pub(crate) fn take_out(&self, dom: &Domain) -> Result<outgoing::Outgoing> {
        let mut g = self.lock();
        match g.remove(&dom.uuid()) {
            Some(Pending::Out(o)) => Ok(o),
            Some(other) => {
                g.insert(dom.uuid(), other);
                Err(no_migration(dom, "outgoing"))
            }
            None => Err(no_migration(dom, "outgoing")),
        }
    }

    /// Takes `dom`'s incoming migration for its next phase.
    pub(crate) fn take_in(&self, dom: &Domain) -> Result<incoming::Incoming> {
        let mut g = self.lock();
        match g.remove(&dom.uuid()) {
            Some(Pending::In(i)) => Ok(i),
            Some(other) => {
                g.insert(dom.uuid(), other);
                Err(no_migration(dom, "incoming"))
            }
            None => Err(no_migration(dom, "incoming")),
        }
    }
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

/// Waits until QEMU's migration (either direction) completed, woken by
/// the event task; re-reads query-migrate periodically and after
/// overflows. `what` names the side in errors.
async fn wait_completed(
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
                return Err(Error::Aborted(format!("{what}: job cancelled")));
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
            super::save::poll_migration(s, dom, ctx).await;
        }
    }
}
