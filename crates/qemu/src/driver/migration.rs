//! Live migration: the five phases of libvirt's protocol v3 (source:
//! begin, perform, confirm; destination: prepare, finish) and the tuning
//! commands that apply while one runs.

use std::sync::Arc;

use joblock::NormalJob;
use qmp::commands::{MigrateSetParameters, QueryMigrateParameters};

use super::Driver;
use crate::jobs::migration::{MigrateFlags, MigrationParams, incoming, outgoing};
use crate::object::Domain;
use crate::{Error, Result, jobs};

impl Driver {
    /// Begin (source): the XML the destination runs and the cookie.
    /// `owner` names the connection driving it (see
    /// [`Driver::abandon_migrations`]).
    pub async fn migrate_begin(
        &self,
        dom: &Arc<Domain>,
        params: &MigrationParams,
        flags: MigrateFlags,
        owner: u64,
    ) -> Result<(String, Vec<u8>)> {
        outgoing::begin(&self.s, dom, params, flags, owner).await
    }

    /// Prepare (destination): a paused QEMU waiting for the stream; the
    /// cookie and the URI the source sends to. Offline: nothing starts.
    pub async fn migrate_prepare(
        &self,
        params: &MigrationParams,
        cookie: &[u8],
        flags: MigrateFlags,
        owner: u64,
    ) -> Result<(Vec<u8>, String)> {
        if flags.offline {
            incoming::incoming_def(params)?;
            let host = self.s.cfg.migration.address.clone();
            return Ok((Vec::new(), format!("tcp:{}", host.unwrap_or_default())));
        }
        incoming::prepare(&self.s, params, cookie, flags, owner).await
    }

    /// Perform (source): migrates and waits for completion; the guest is
    /// left paused here until confirm. A failure resumes it.
    pub async fn migrate_perform(
        &self,
        dom: &Arc<Domain>,
        params: &MigrationParams,
        cookie: &[u8],
        flags: MigrateFlags,
    ) -> Result<Vec<u8>> {
        outgoing::perform(&self.s, dom, params, cookie, flags).await
    }

    /// Finish (destination): runs the arrived guest (or kills it when
    /// `cancelled`), and with `persist_dest` defines it.
    pub async fn migrate_finish(
        &self,
        params: &MigrationParams,
        cookie: &[u8],
        flags: MigrateFlags,
        cancelled: bool,
    ) -> Result<Arc<Domain>> {
        let def = incoming::incoming_def(params)?;
        if flags.offline {
            if cancelled {
                return Err(Error::OperationFailed("migration was cancelled".into()));
            }
            let xml = incoming::persistent_def(params)?.to_xml();
            return self.define_xml(&xml).await;
        }
        let dom = match self.lookup_by_uuid(&def.uuid()) {
            Ok(dom) => dom,
            Err(e) => {
                // Its QEMU died and the transient domain went with it.
                self.s.migrations.forget(&def.uuid());
                return Err(e);
            }
        };
        incoming::finish(&self.s, &dom, cookie, flags, cancelled).await?;
        if flags.persist_dest {
            let xml = incoming::persistent_def(params)?.to_xml();
            self.define_xml(&xml).await?;
        }
        Ok(dom)
    }

    /// Confirm (source): stops the source's QEMU once the guest runs on
    /// the destination (with `undefine_source`, removes the definition),
    /// or resumes the guest here when `cancelled`.
    pub async fn migrate_confirm(
        &self,
        dom: &Arc<Domain>,
        flags: MigrateFlags,
        cancelled: bool,
    ) -> Result<()> {
        outgoing::confirm(&self.s, dom, cancelled).await?;
        if !cancelled && flags.undefine_source && dom.is_persistent() {
            self.undefine(dom).await?;
        }
        Ok(())
    }

    /// The connection `owner` closed: the migrations it drives are undone
    /// (the guest stays on, or goes back to, the source; an incoming QEMU
    /// is killed), now if they wait for their next phase, else when the
    /// phase under way ends.
    pub async fn abandon_migrations(&self, owner: u64) {
        for (uuid, p) in self.s.migrations.abandon(owner) {
            if let Ok(dom) = self.lookup_by_uuid(&uuid) {
                jobs::migration::undo(&self.s, &dom, p).await;
            }
        }
    }

    /// `migrate-postcopy`: switches the outgoing migration of `dom`
    /// (started with `postcopy`) to post-copy.
    pub async fn migrate_start_postcopy(&self, dom: &Arc<Domain>) -> Result<()> {
        outgoing::start_postcopy(&self.s, dom).await
    }

    /// `migrate-setspeed` (MiB/s; 0 = unlimited).
    pub async fn migrate_set_max_speed(&self, dom: &Arc<Domain>, mib: u64) -> Result<()> {
        let limit = if mib == 0 {
            jobs::migration::UNLIMITED_MIB
        } else {
            mib.min(jobs::migration::UNLIMITED_MIB)
        };
        self.migration_op(dom, &outgoing::max_bandwidth(limit))
            .await
    }

    /// `migrate-getspeed` (MiB/s).
    pub async fn migrate_max_speed(&self, dom: &Arc<Domain>) -> Result<u64> {
        let p = self.migration_parameters(dom).await?;
        Ok(p.max_bandwidth.unwrap_or(0) / (1024 * 1024))
    }

    /// `migrate-setmaxdowntime` (ms).
    pub async fn migrate_set_max_downtime(&self, dom: &Arc<Domain>, ms: u64) -> Result<()> {
        let mut m = serde_json::Map::new();
        m.insert("downtime-limit".into(), ms.into());
        self.migration_op(dom, &MigrateSetParameters(m)).await
    }

    /// `migrate-getmaxdowntime` (ms).
    pub async fn migrate_max_downtime(&self, dom: &Arc<Domain>) -> Result<u64> {
        let p = self.migration_parameters(dom).await?;
        Ok(p.downtime_limit.unwrap_or(0))
    }

    async fn migration_op(&self, dom: &Domain, cmd: &MigrateSetParameters) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(
            dom,
            NormalJob::MigrationOp,
            "migrate tuning",
            s.cfg.job_wait,
        )
        .await?;
        dom.qmp(cmd, s.cfg.monitor_timeout).await?;
        Ok(())
    }

    async fn migration_parameters(
        &self,
        dom: &Domain,
    ) -> Result<qmp::commands::MigrationParameters> {
        dom.qmp(&QueryMigrateParameters, self.s.cfg.monitor_timeout)
            .await
    }
}
