//! The driver handle: the public async API the RPC layer calls.
//!
//! `Driver` is a cheap clone of an `Arc`. Queries (info, state, XML, list,
//! lookups) read the domain's snapshot and never take a job or touch the
//! monitor, so they never wait behind a job (requirement 5). Modify
//! operations take a job with the configured deadline.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use joblock::NormalJob;
use tokio::sync::Semaphore;

use crate::caps::CapsCache;
use crate::config::{DriverConfig, Layout};
use crate::def::Def;
use crate::domain::{AsyncJobInfo, ControlInfo, Domain, DomainInfo, DomainSummary, JobOutcome};
use crate::jobstats::RamStats;
use crate::registry::Registry;
use crate::state::{EventKind, LifecycleKind as L, StateReason, detail};
use crate::subscribers::{Hub, Subscription};
use crate::{Error, Result, jobs, lifecycle, persist};

/// State shared by the driver and its per-VM tasks.
pub(crate) struct Shared {
    pub cfg: DriverConfig,
    pub layout: Layout,
    pub qmp: qmp::Config,
    pub registry: Registry,
    pub hub: Hub,
    /// Bounds concurrent event-handling work across all VMs.
    pub handlers: Semaphore,
    pub next_id: AtomicU32,
    /// Serialises define/undefine/create so name and uuid stay unique
    /// together. Never taken by lookups or per-VM operations.
    pub define_lock: tokio::sync::Mutex<()>,
    pub caps: CapsCache,
    /// Whether KVM runs guests here ([`crate::caps::kvm_works`]): probed
    /// once, on first need, so opening the driver never waits for it.
    pub kvm: tokio::sync::OnceCell<bool>,
}

/// Whether KVM runs guests here, probing the default emulator on first use.
pub(crate) async fn kvm_available(s: &Shared) -> bool {
    *s.kvm
        .get_or_init(|| {
            crate::caps::kvm_works(
                Path::new(domain::DEFAULT_EMULATOR),
                &s.layout.caps_dir,
                crate::caps::KVM_PROBE_DEADLINE,
            )
        })
        .await
}

/// Which domains [`Driver::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    All,
    Active,
    Inactive,
}

/// `virDomainJobType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum JobType {
    None = 0,
    Bounded = 1,
    Unbounded = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5,
}

/// `virDomainGetJobInfo` / `domjobinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStats {
    pub job_type: JobType,
    /// "save", ...
    pub operation: Option<String>,
    pub elapsed_ms: u64,
    /// Guest memory moved by a migration-based job (the only data a save
    /// moves, so also its data totals).
    pub ram: RamStats,
    /// QEMU's migration status, when a migration-based job runs.
    pub status: Option<String>,
    /// Set for a job that ended: whether it completed, and why not.
    pub success: Option<bool>,
    pub error: Option<String>,
}

/// The driver. Clone freely.
#[derive(Clone)]
pub struct Driver {
    pub(crate) s: Arc<Shared>,
}

impl Driver {
    /// Opens the driver on `cfg.root`: loads definitions, re-adopts running
    /// QEMUs from status files, then starts autostart domains.
    pub async fn open(cfg: DriverConfig) -> Result<Driver> {
        crate::restore::open(cfg).await
    }

    pub(crate) fn from_shared(s: Arc<Shared>) -> Self {
        Self { s }
    }

    pub fn config(&self) -> &DriverConfig {
        &self.s.cfg
    }

    /// Whether KVM runs guests on this host in useful time (probed once,
    /// on first call; see [`crate::caps::kvm_works`]).
    pub async fn kvm_available(&self) -> bool {
        kvm_available(&self.s).await
    }

    /// A bounded stream of lifecycle events of all domains.
    pub fn subscribe(&self) -> Subscription {
        self.s.hub.subscribe()
    }

    /// Calls `f` synchronously for every domain event; see
    /// [`crate::subscribers::Hub::add_listener`] for the rules `f` must obey.
    pub fn add_event_listener(&self, f: crate::subscribers::Listener) {
        self.s.hub.add_listener(f)
    }

    /// Ends a subscription early (its stream ends with `Closed`).
    pub fn unsubscribe(&self, id: u64) {
        self.s.hub.unsubscribe(id)
    }

    /// Number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.s.hub.len()
    }

    pub fn lookup_by_name(&self, name: &str) -> Result<Arc<Domain>> {
        self.s
            .registry
            .by_name(name)
            .ok_or_else(|| Error::NoDomain(format!("no domain with matching name '{name}'")))
    }

    pub fn lookup_by_uuid(&self, uuid: &uuid::Uuid) -> Result<Arc<Domain>> {
        self.s
            .registry
            .by_uuid(uuid)
            .ok_or_else(|| Error::NoDomain(format!("no domain with matching uuid '{uuid}'")))
    }

    pub fn lookup_by_id(&self, id: u32) -> Result<Arc<Domain>> {
        self.s
            .registry
            .by_id(id)
            .ok_or_else(|| Error::NoDomain(format!("no domain with matching id {id}")))
    }

    /// Snapshot of the domains selected by `filter`, sorted by name.
    pub fn list(&self, filter: ListFilter) -> Vec<DomainSummary> {
        self.s
            .registry
            .all()
            .iter()
            .map(|d| d.summary())
            .filter(|d| match filter {
                ListFilter::All => true,
                ListFilter::Active => d.state.state.is_active(),
                ListFilter::Inactive => !d.state.state.is_active(),
            })
            .collect()
    }

    /// Defines (or updates) a persistent domain from XML.
    pub async fn define_xml(&self, xml: &str) -> Result<Arc<Domain>> {
        let def = Arc::new(Def::parse(xml)?);
        def.check_emulator()?;
        let s = &self.s;
        let _d = s.define_lock.lock().await;
        let existing = self.find_same(&def)?;
        let path = s.layout.definition(def.name());
        persist::atomic_write(&path, def.to_xml().as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        let dom = match existing {
            Some(dom) => {
                let mut g = dom.lock();
                let was_persistent = g.persistent;
                g.def = def;
                g.persistent = true;
                let det = if was_persistent {
                    detail::DEFINED_UPDATED
                } else {
                    detail::DEFINED_ADDED
                };
                g.emit(&dom, &s.hub, EventKind::lifecycle(L::Defined, det));
                drop(g);
                dom
            }
            None => {
                let dom = Domain::new(def, true);
                s.registry.insert(&dom);
                let g = dom.lock();
                g.emit(
                    &dom,
                    &s.hub,
                    EventKind::lifecycle(L::Defined, detail::DEFINED_ADDED),
                );
                drop(g);
                dom
            }
        };
        if dom.is_active() {
            // The status file holds the persistent flag.
            let _ = lifecycle::persist_status(s, &dom);
        }
        Ok(dom)
    }

    /// The domain `def` redefines, or a DomExist error if it clashes with
    /// a different one (same name, other uuid, or the reverse).
    pub(crate) fn find_same(&self, def: &Def) -> Result<Option<Arc<Domain>>> {
        let by_name = self.s.registry.by_name(def.name());
        let by_uuid = self.s.registry.by_uuid(&def.uuid());
        match (by_name, by_uuid) {
            (Some(a), Some(b)) if Arc::ptr_eq(&a, &b) => Ok(Some(a)),
            (Some(a), _) => Err(Error::DomainExists(format!(
                "domain '{}' already exists with uuid {}",
                a.name(),
                a.uuid()
            ))),
            (None, Some(b)) => Err(Error::DomainExists(format!(
                "domain '{}' is already defined with uuid {}",
                b.name(),
                b.uuid()
            ))),
            (None, None) => Ok(None),
        }
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
        persist::remove(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        let _ = persist::remove(&s.layout.autostart_marker(dom.name()));
        let active = {
            let mut g = dom.lock();
            g.persistent = false;
            g.autostart = false;
            g.emit(
                dom,
                &s.hub,
                EventKind::lifecycle(L::Undefined, detail::UNDEFINED_REMOVED),
            );
            let active = g.state.state.is_active();
            if !active {
                g.removed = true;
            }
            active
        };
        if active {
            let _ = lifecycle::persist_status(s, dom);
        } else {
            s.registry.remove(dom);
            dom.jobs.close("domain undefined");
        }
        Ok(())
    }

    /// Starts a defined domain (`virsh start [--paused]`), resuming from
    /// its managed-save image if it has one.
    pub async fn start(&self, dom: &Arc<Domain>, paused: bool) -> Result<()> {
        self.start_with(dom, paused, false).await
    }

    /// `start` with `--force-boot`: discard a managed-save image and boot.
    pub async fn start_with(
        &self,
        dom: &Arc<Domain>,
        paused: bool,
        force_boot: bool,
    ) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(dom, NormalJob::Modify, "start", s.cfg.job_wait).await?;
        let image = jobs::restore_image::managed_path(s, dom.name());
        if image.exists() && !dom.is_active() {
            if !force_boot {
                return jobs::restore_image::start_managed(s, dom, paused).await;
            }
            persist::remove(&image)
                .map_err(|e| Error::io(format!("cannot remove {}", image.display()), e))?;
        }
        lifecycle::start_locked(s, dom, paused).await
    }

    /// Creates and starts a transient domain (`virsh create`).
    pub async fn create_xml(&self, xml: &str, paused: bool) -> Result<Arc<Domain>> {
        let def = Arc::new(Def::parse(xml)?);
        def.check_emulator()?;
        let s = &self.s;
        let dom = {
            let _d = s.define_lock.lock().await;
            if self.find_same(&def)?.is_some() {
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
            lifecycle::start_locked(s, &dom, paused).await
        }
        .await;
        if let Err(e) = res {
            if !dom.is_active() {
                dom.lock().removed = true;
                s.registry.remove(&dom);
                dom.jobs.close("transient domain failed to start");
            }
            return Err(e);
        }
        Ok(dom)
    }

    /// Kills QEMU (SIGTERM, then SIGKILL after the grace period unless
    /// `graceful`) and cleans up. Never queued behind other work.
    pub async fn destroy(&self, dom: &Arc<Domain>, graceful: bool) -> Result<()> {
        lifecycle::destroy(&self.s, dom, graceful).await
    }

    /// ACPI shutdown request.
    pub async fn shutdown(&self, dom: &Arc<Domain>) -> Result<()> {
        lifecycle::shutdown(&self.s, dom, "shutdown").await
    }

    /// ACPI reboot (fake reboot: the guest's power-off becomes reset + cont).
    pub async fn reboot(&self, dom: &Arc<Domain>) -> Result<()> {
        lifecycle::reboot(&self.s, dom, "reboot").await
    }

    /// Hard reset.
    pub async fn reset(&self, dom: &Arc<Domain>) -> Result<()> {
        lifecycle::reset(&self.s, dom, "reset").await
    }

    /// Pauses the vCPUs.
    pub async fn suspend(&self, dom: &Arc<Domain>) -> Result<()> {
        lifecycle::suspend(&self.s, dom, "suspend").await
    }

    /// Resumes the vCPUs.
    pub async fn resume(&self, dom: &Arc<Domain>) -> Result<()> {
        lifecycle::resume(&self.s, dom, "resume").await
    }

    /// `virDomainGetInfo`, from the snapshot: never waits for a job.
    pub fn info(&self, dom: &Domain) -> DomainInfo {
        dom.info()
    }

    /// `virDomainGetState`, from the snapshot.
    pub fn state(&self, dom: &Domain) -> StateReason {
        dom.state()
    }

    /// `virDomainGetControlInfo`: shows a job or an unresponsive monitor.
    pub fn control_info(&self, dom: &Domain) -> ControlInfo {
        dom.control_info()
    }

    /// `virDomainGetXMLDesc`: the live definition unless `inactive`.
    pub fn get_xml(&self, dom: &Domain, inactive: bool) -> Result<String> {
        Ok(dom.def_for_xml(inactive).to_xml())
    }

    pub fn get_autostart(&self, dom: &Domain) -> bool {
        dom.autostart()
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
            persist::atomic_write(&marker, dom.uuid().to_string().as_bytes())
        } else {
            persist::remove(&marker)
        };
        res.map_err(|e| Error::io(format!("cannot update {}", marker.display()), e))?;
        dom.lock().autostart = on;
        Ok(())
    }

    /// Whether the domain has a managed-save image (a stat, no job).
    pub fn has_managed_save(&self, dom: &Domain) -> bool {
        jobs::restore_image::managed_path(&self.s, dom.name()).exists()
    }

    /// `virsh managedsave`: save to the daemon's image; `start` resumes.
    pub async fn managed_save(&self, dom: &Arc<Domain>) -> Result<()> {
        if !dom.is_persistent() {
            return Err(Error::OperationInvalid(
                "cannot do managed save for transient domain".into(),
            ));
        }
        let path = jobs::restore_image::managed_path(&self.s, dom.name());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        let opts = jobs::save::SaveOptions::default();
        jobs::save::save(&self.s, dom, &path, &opts).await
    }

    /// `virsh managedsave-remove`.
    pub async fn managed_save_remove(&self, dom: &Arc<Domain>) -> Result<()> {
        let s = &self.s;
        let _job =
            jobs::begin(dom, NormalJob::Modify, "managedsave-remove", s.cfg.job_wait).await?;
        let path = jobs::restore_image::managed_path(s, dom.name());
        persist::remove(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))
    }

    /// `virsh restore FILE [--running|--paused] [--xml DXML]`: `dxml`
    /// replaces the image's XML if it describes the same guest.
    pub async fn restore(
        &self,
        path: &Path,
        paused: Option<bool>,
        dxml: Option<&str>,
    ) -> Result<Arc<Domain>> {
        jobs::restore_image::restore(self, path, paused, dxml).await
    }

    /// `virsh save-image-dumpxml FILE`: the XML a complete image carries.
    pub async fn save_image_xml(&self, path: &Path) -> Result<String> {
        jobs::image_xml::get_xml(path).await
    }

    /// `virsh save-image-define FILE XML [--running|--paused]`: replaces
    /// the image's XML (same guest only) and, with `running`, the state a
    /// restore starts it in.
    pub async fn save_image_define(
        &self,
        path: &Path,
        xml: &str,
        running: Option<bool>,
    ) -> Result<()> {
        jobs::image_xml::define_xml(path, xml, running).await
    }

    /// Starts a block job (`blockcopy`, `blockpull`, `blockcommit`);
    /// `bandwidth` in bytes/s, 0 = unlimited.
    pub async fn block_job_start(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        spec: jobs::blockjob::BlockJobSpec,
        bandwidth: u64,
    ) -> Result<()> {
        jobs::blockjob::start(&self.s, dom, disk, spec, bandwidth).await
    }

    /// `blockjob --abort [--pivot] [--async]`.
    pub async fn block_job_abort(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        pivot: bool,
        asynchronous: bool,
    ) -> Result<()> {
        jobs::blockjob::abort(&self.s, dom, disk, pivot, asynchronous).await
    }

    /// `blockjob --bandwidth` (bytes/s).
    pub async fn block_job_set_speed(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        bytes: u64,
    ) -> Result<()> {
        jobs::blockjob::set_speed(&self.s, dom, disk, bytes).await
    }

    /// `blockjob --info`: `None` when the disk has no job.
    pub async fn block_job_info(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
    ) -> Result<Option<jobs::blockjob::BlockJobInfo>> {
        jobs::blockjob::info(&self.s, dom, disk).await
    }

    /// The running block job as the driver tracks it.
    pub fn block_job(&self, dom: &Domain) -> Option<jobs::blockjob::BlockJobState> {
        dom.lock().block_job.clone()
    }

    /// `domjobinfo`: the running async job with QEMU's migration progress.
    /// Reads QEMU without a job (query-migrate is read-only), so it never
    /// waits behind the job it reports on.
    pub async fn job_info(&self, dom: &Domain) -> Result<JobStats> {
        let Some(job) = dom.async_job() else {
            return Ok(JobStats::none());
        };
        let mut st = JobStats::none();
        st.job_type = JobType::Unbounded;
        st.operation = Some(job.kind.clone());
        st.elapsed_ms = crate::jobstats::elapsed_ms(job.started);
        let t = self.s.cfg.monitor_timeout;
        if let Ok(v) = crate::domain::command(dom, t, "query-migrate", None).await {
            st.status = crate::monitor::str_field(&v, "status").map(str::to_owned);
            st.ram = RamStats::from_query_migrate(&v).unwrap_or_default();
        }
        Ok(st)
    }

    /// `domjobinfo --completed [--keep-completed]`: statistics of the last
    /// async job that ended, or job type None. As in libvirt, reading them
    /// discards them unless `keep`; the status file then forgets them too.
    pub fn completed_job_stats(&self, dom: &Domain, keep: bool) -> JobStats {
        let Some(done) = dom.read_completed_job(keep) else {
            return JobStats::none();
        };
        if !keep {
            let _ = lifecycle::persist_status(&self.s, dom);
        }
        done.stats()
    }

    /// The running async job as recorded by the driver.
    pub fn async_job(&self, dom: &Domain) -> Option<AsyncJobInfo> {
        dom.async_job()
    }

    /// Outcome of the last async job (also one that ran across a restart).
    pub fn last_job(&self, dom: &Domain) -> Option<JobOutcome> {
        dom.last_job()
    }

    /// `domjobabort`: cancels the running async job.
    pub async fn abort_job(&self, dom: &Arc<Domain>) -> Result<()> {
        jobs::save::abort(&self.s, dom).await
    }

    /// `virsh save`: pause, write the state to `path`, stop QEMU.
    pub async fn save(&self, dom: &Arc<Domain>, path: &Path) -> Result<()> {
        self.save_with(dom, path, &jobs::save::SaveOptions::default())
            .await
    }

    /// `virsh save` with `--xml` / `--running` / `--paused`.
    pub async fn save_with(
        &self,
        dom: &Arc<Domain>,
        path: &Path,
        opts: &jobs::save::SaveOptions,
    ) -> Result<()> {
        jobs::save::save(&self.s, dom, path, opts).await
    }

    /// Number of domains known.
    pub fn len(&self) -> usize {
        self.s.registry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.s.registry.is_empty()
    }
}

impl JobStats {
    pub fn none() -> Self {
        Self {
            job_type: JobType::None,
            operation: None,
            elapsed_ms: 0,
            ram: RamStats::default(),
            status: None,
            success: None,
            error: None,
        }
    }
}
