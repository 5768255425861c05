//! Definitions: define, undefine, create (transient), autostart, and
//! starting a defined domain.

use std::sync::Arc;

use joblock::NormalJob;

use super::Driver;
use crate::jobs;
use crate::lifecycle::{StartOptions, start};
use crate::object::Domain;
use crate::object::def::Def;
use crate::store::{files, status};
use crate::{Error, Result};

impl Driver {
    /// Defines (or updates) a persistent domain from XML.
    pub async fn define_xml(&self, xml: &str) -> Result<Arc<Domain>> {
        let def = Arc::new(Def::parse(xml)?);
        def.check_emulator()?;
        if !crate::config::valid_name(def.name()) {
            return Err(Error::InvalidArg(format!(
                "domain name '{}' cannot name a definition file",
                def.name()
            )));
        }
        let s = &self.s;
        let _d = s.define_lock.lock().await;
        let existing = s.registry.find_same(def.name(), &def.uuid())?;
        let path = s.layout.definition(def.name());
        files::atomic_write(&path, def.to_xml().as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        let dom = match existing {
            Some(dom) => {
                dom.lock().define(&dom, &s.hub, def);
                dom
            }
            None => {
                let dom = Domain::new(def, true);
                s.registry.insert(&dom);
                dom.lock().created(&dom, &s.hub);
                dom
            }
        };
        if dom.is_active() {
            // The status file holds the persistent flag.
            status::persist(s, &dom)?;
        }
        Ok(dom)
    }

    /// Removes a persistent definition; a running domain becomes transient.
    pub async fn undefine(&self, dom: &Arc<Domain>) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, "undefine", s.cfg.job_wait).await?;
        let _d = s.define_lock.lock().await;
        if !dom.is_persistent() {
            return Err(Error::OperationInvalid(
                "cannot undefine transient domain".into(),
            ));
        }
        let path = s.layout.definition(dom.name());
        files::remove(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        let marker = s.layout.autostart_marker(dom.name());
        if let Err(e) = files::remove(&marker) {
            // Harmless: a marker without a definition starts nothing.
            tracing::warn!(domain = dom.name(), error = %e, "cannot remove autostart marker");
        }
        let active = dom.lock().undefine(dom, &s.hub);
        if active {
            // The status file holds the persistent flag.
            status::persist(s, dom)?;
        } else {
            s.registry.remove(dom);
            dom.jobs.close("domain undefined");
        }
        Ok(())
    }

    /// Starts a defined domain, from its managed-save image unless
    /// `force_boot` discards it.
    pub(super) async fn start_defined(&self, dom: &Arc<Domain>, opts: StartOptions) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, "start", s.cfg.job_wait).await?;
        let image = s.layout.managed_save(dom.name());
        if image.exists() && !dom.is_active() {
            if !opts.force_boot {
                return jobs::restore::start_managed(s, dom, opts.paused).await;
            }
            files::remove(&image)
                .map_err(|e| Error::io(format!("cannot remove {}", image.display()), e))?;
        }
        start::boot(s, dom, opts.paused).await
    }

    /// Creates and starts a transient domain (`virsh create`).
    pub async fn create_xml(&self, xml: &str, paused: bool) -> Result<Arc<Domain>> {
        let def = Arc::new(Def::parse(xml)?);
        def.check_emulator()?;
        let s = &self.s;
        let dom = {
            let _d = s.define_lock.lock().await;
            if s.registry.find_same(def.name(), &def.uuid())?.is_some() {
                return Err(Error::DomainExists(format!(
                    "domain '{}' already exists",
                    def.name()
                )));
            }
            let dom = Domain::new(def, false);
            s.registry.insert(&dom);
            dom
        };
        let res = async {
            let _job = jobs::begin(&dom, NormalJob::Modify, "create", s.cfg.job_wait).await?;
            start::boot(s, &dom, paused).await
        }
        .await;
        if let Err(e) = res {
            if !dom.is_active() {
                dom.lock().forget();
                s.registry.remove(&dom);
                dom.jobs.close("transient domain failed to start");
            }
            return Err(e);
        }
        Ok(dom)
    }

    /// Marks a persistent domain to start when the driver opens.
    pub async fn set_autostart(&self, dom: &Arc<Domain>, on: bool) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, "set autostart", s.cfg.job_wait).await?;
        if !dom.is_persistent() {
            return Err(Error::OperationInvalid(
                "cannot set autostart for transient domain".into(),
            ));
        }
        let marker = s.layout.autostart_marker(dom.name());
        let res = if on {
            files::atomic_write(&marker, dom.uuid().to_string().as_bytes())
        } else {
            files::remove(&marker)
        };
        res.map_err(|e| Error::io(format!("cannot update {}", marker.display()), e))?;
        dom.lock().set_autostart(on);
        Ok(())
    }
}
