//! Definitions: define, undefine, create (transient), autostart, and
//! starting a defined domain.

use std::sync::Arc;

use joblock::NormalJob;

use super::Driver;
use crate::emulator::firmware;
use crate::jobs;
use crate::lifecycle::{StartOptions, start};
use crate::object::Domain;
use crate::object::def::Def;
use crate::store::{files, status};
use crate::{Error, Result};

impl Driver {
    /// Parses XML into a definition with concrete firmware and, when the
    /// emulator answers the probe, its versioned machine type (`q35` →
    /// `pc-q35-7.2`), as libvirt stores them at define time.
    async fn new_def(&self, xml: &str) -> Result<Def> {
        let mut def = Def::parse(xml)?;
        def.check_emulator()?;
        let descriptors = firmware::load(&self.s.cfg.firmware_dirs());
        def.resolve_firmware(&descriptors, &self.s.layout.nvram_dir)?;
        match self.emulator_caps(Some(def.emulator())).await {
            Ok(caps) => def.resolve_machine(&caps)?,
            // Start probes again and reports why it cannot.
            Err(e) => tracing::debug!(error = %e, "machine type kept as written"),
        }
        Ok(def)
    }

    /// Defines (or updates) a persistent domain from XML.
    pub async fn define_xml(&self, xml: &str) -> Result<Arc<Domain>> {
        let def = Arc::new(self.new_def(xml).await?);
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
    /// An existing NVRAM file refuses it, as libvirt does (see
    /// [`Driver::undefine_with`]).
    pub async fn undefine(&self, dom: &Arc<Domain>) -> Result<()> {
        self.undefine_with(dom, UndefineOptions::default()).await
    }

    /// `virsh undefine [--nvram|--keep-nvram] [--tpm|--keep-tpm]`.
    pub async fn undefine_with(&self, dom: &Arc<Domain>, opts: UndefineOptions) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, "undefine", s.cfg.job_wait).await?;
        let _d = s.define_lock.lock().await;
        if !dom.is_persistent() {
            return Err(Error::OperationInvalid(
                "cannot undefine transient domain".into(),
            ));
        }
        let def = dom.def_for_xml(true);
        let nvram = nvram_to_remove(&def, opts.nvram)?;
        if let Some(p) = nvram {
            files::remove(&p)
                .map_err(|e| Error::io(format!("cannot remove nvram {}", p.display()), e))?;
        }
        if !dom.is_active() {
            remove_tpm_state(s, &def, opts.tpm);
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
        let def = Arc::new(self.new_def(xml).await?);
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

/// What undefine does with a file of guest state (NVRAM, TPM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatePolicy {
    /// libvirt's default: an NVRAM file refuses the undefine; TPM state
    /// is removed unless the definition asks to keep it.
    #[default]
    Default,
    /// `--nvram`, `--tpm`.
    Remove,
    /// `--keep-nvram`, `--keep-tpm`.
    Keep,
}

/// `virDomainUndefineFlags` about guest state files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndefineOptions {
    pub nvram: StatePolicy,
    pub tpm: StatePolicy,
}

/// The NVRAM file undefine must remove; an existing one without a policy
/// refuses the undefine.
fn nvram_to_remove(def: &Def, policy: StatePolicy) -> Result<Option<std::path::PathBuf>> {
    let Some((path, _)) = def.domain().nvram() else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    match policy {
        StatePolicy::Remove => Ok(Some(path.to_path_buf())),
        StatePolicy::Keep => Ok(None),
        StatePolicy::Default => Err(Error::OperationInvalid(
            "cannot undefine domain with nvram".into(),
        )),
    }
}

/// Removes the emulated TPM's state unless kept (by flag or by
/// `persistent_state='yes'`).
fn remove_tpm_state(s: &crate::shared::Shared, def: &Def, policy: StatePolicy) {
    let Some(tpm) = def.domain().tpm() else {
        return;
    };
    let keep = match policy {
        StatePolicy::Keep => true,
        StatePolicy::Remove => false,
        StatePolicy::Default => tpm.persistent_state == Some(true),
    };
    let dir = s.layout.swtpm_state(&def.uuid());
    if !keep
        && let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove TPM state");
    }
}
