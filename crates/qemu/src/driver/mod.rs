//! The driver handle: the public async API the daemon calls.
//!
//! `Driver` is a cheap clone of an `Arc`. Queries (info, state, XML, list,
//! lookups) read the domain's snapshot and never take a job or touch the
//! monitor, so they never wait behind a job. Modify operations take a job
//! with the configured deadline. Definitions are in [`definitions`], the
//! long jobs in [`jobs`].

mod cpu;
mod definitions;
mod devices;
mod jobs;
mod migration;
mod nics;
mod plug;
mod stats;

pub use cpu::CpuTarget;
pub use definitions::{StatePolicy, UndefineOptions};
pub use nics::{BandwidthChange, LiveNic, RateChange};

use std::path::Path;
use std::sync::Arc;

use domain::EmulatorCaps;

pub use devices::Screenshot;

use crate::config::DriverConfig;
use crate::emulator::firmware;
use crate::events::hub::{Listener, Subscription};
use crate::lifecycle::host::swtpm;
use crate::lifecycle::{StartOptions, power, stop};
use crate::object::{ControlInfo, Domain, DomainInfo, DomainSummary};
use crate::shared::Shared;
use crate::state::StateReason;
use crate::store::{files, readopt, reconcile};
use crate::{Error, Result};

/// Which domains [`Driver::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    All,
    Active,
    Inactive,
}

/// The driver. Clone freely.
#[derive(Clone)]
pub struct Driver {
    s: Arc<Shared>,
}

impl Driver {
    /// Opens the driver on `cfg.root`: loads definitions, re-adopts running
    /// QEMUs from status files, then starts autostart domains.
    pub async fn open(cfg: DriverConfig) -> Result<Driver> {
        Self::open_with_network(cfg, None).await
    }

    /// [`Driver::open`] with the network driver that makes the taps of
    /// guest NICs (`<interface type='network'|'bridge'|'ethernet'>`).
    pub async fn open_with_network(
        cfg: DriverConfig,
        network: Option<network::NetworkDriver>,
    ) -> Result<Driver> {
        let layout = cfg.layout();
        layout
            .create_all()
            .map_err(|e| Error::io(format!("cannot create {}", cfg.root.display()), e))?;
        layout
            .check_socket_len()
            .map_err(Error::ConfigUnsupported)?;
        let lock = reconcile::lock_driver(&layout).await?;
        for dir in layout.written_dirs() {
            files::sweep_temp_files(dir);
        }
        let s = Arc::new(Shared::new(cfg, layout, lock, network));
        let began = std::time::Instant::now();
        // Definitions, status records and the process scan are read at
        // once; reconciling needs all three.
        let definitions = {
            let s = s.clone();
            tokio::task::spawn_blocking(move || readopt::load_definitions(&s))
        };
        let survey = reconcile::survey(&s).await?;
        definitions
            .await
            .map_err(|e| Error::Internal(format!("loading the definitions failed: {e}")))?;
        let surveyed = began.elapsed();
        reconcile::reconcile(&s, survey).await;
        tracing::info!(
            domains = s.registry.len(),
            surveyed_ms = surveyed.as_millis(),
            reconciled_ms = (began.elapsed() - surveyed).as_millis(),
            "definitions loaded and running QEMUs re-adopted"
        );
        crate::stats::poller::spawn(&s);
        let driver = Driver { s };
        if driver.s.cfg.autostart {
            driver.autostart().await;
        }
        Ok(driver)
    }

    /// Starts every autostart domain that is not running, in parallel.
    async fn autostart(&self) {
        let mut set = tokio::task::JoinSet::new();
        for dom in self.s.registry.all() {
            if dom.autostart() && !dom.is_active() {
                let d = self.clone();
                set.spawn(async move {
                    if let Err(e) = d.start(&dom, false).await {
                        tracing::error!(domain = dom.name(), error = %e, "autostart failed");
                    }
                });
            }
        }
        while set.join_next().await.is_some() {}
    }

    pub fn config(&self) -> &DriverConfig {
        &self.s.cfg
    }

    /// Whether KVM runs guests on this host in useful time (probed once,
    /// on first call, by booting a one-sector guest).
    pub async fn kvm_available(&self) -> bool {
        self.s.kvm_available().await
    }

    /// What `emulator` (the default emulator when `None`) supports: QEMU's
    /// version, machine types, CPU models, device models. Probed once per
    /// binary and cached; concurrent callers share one probe.
    pub async fn emulator_caps(&self, emulator: Option<&Path>) -> Result<Arc<EmulatorCaps>> {
        let path = emulator.unwrap_or(Path::new(domain::DEFAULT_EMULATOR));
        let s = &self.s;
        s.caps
            .get(path, &s.layout.caps_dir, s.cfg.monitor_timeout)
            .await
    }

    /// A bounded stream of lifecycle events of all domains.
    pub fn subscribe(&self) -> Subscription {
        self.s.hub.subscribe()
    }

    /// Calls `f` synchronously for every domain event. `f` runs under the
    /// emitting domain's state lock (that keeps each VM's events in
    /// order), so it must not block or call the driver.
    pub fn add_event_listener(&self, f: Listener) {
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

    /// Starts a defined domain (`virsh start [--paused]`), resuming from
    /// its managed-save image if it has one.
    pub async fn start(&self, dom: &Arc<Domain>, paused: bool) -> Result<()> {
        let opts = StartOptions {
            paused,
            force_boot: false,
        };
        self.start_with(dom, opts).await
    }

    /// `virsh start` with every option (`--force-boot` discards a
    /// managed-save image and boots).
    pub async fn start_with(&self, dom: &Arc<Domain>, opts: StartOptions) -> Result<()> {
        self.start_defined(dom, opts).await
    }

    /// Kills QEMU (SIGTERM, then SIGKILL after the grace period unless
    /// `graceful`) and cleans up. Never queued behind other work.
    pub async fn destroy(&self, dom: &Arc<Domain>, graceful: bool) -> Result<()> {
        stop::destroy(&self.s, dom, graceful).await
    }

    /// ACPI shutdown request.
    pub async fn shutdown(&self, dom: &Arc<Domain>) -> Result<()> {
        power::shutdown(&self.s, dom, "shutdown").await
    }

    /// ACPI reboot (fake reboot: the guest's power-off becomes reset + cont).
    pub async fn reboot(&self, dom: &Arc<Domain>) -> Result<()> {
        power::reboot(&self.s, dom, "reboot").await
    }

    /// Hard reset.
    pub async fn reset(&self, dom: &Arc<Domain>) -> Result<()> {
        power::reset(&self.s, dom, "reset").await
    }

    /// Pauses the vCPUs.
    pub async fn suspend(&self, dom: &Arc<Domain>) -> Result<()> {
        power::suspend(&self.s, dom, "suspend").await
    }

    /// Resumes the vCPUs.
    pub async fn resume(&self, dom: &Arc<Domain>) -> Result<()> {
        power::resume(&self.s, dom, "resume").await
    }

    /// `virDomainGetInfo`, from the snapshot: never waits for a job.
    pub fn info(&self, dom: &Domain) -> DomainInfo {
        dom.info()
    }

    /// vCPUs (online, at most) of the live definition, or of the
    /// persistent one with `config`, from the snapshot.
    pub fn vcpus(&self, dom: &Domain, config: bool) -> (u32, u32) {
        let def = dom.def_for_xml(config);
        (def.vcpus(), def.max_vcpus())
    }

    /// `virDomainGetState`, from the snapshot.
    pub fn state(&self, dom: &Domain) -> StateReason {
        dom.state()
    }

    /// `virDomainGetControlInfo`: a job, an unresponsive monitor, or a
    /// status file that could not be written.
    pub fn control_info(&self, dom: &Domain) -> ControlInfo {
        dom.control_info()
    }

    /// `virDomainGetXMLDesc`: the live definition unless `inactive`,
    /// without secrets.
    pub fn get_xml(&self, dom: &Domain, inactive: bool) -> Result<String> {
        self.get_xml_with(dom, inactive, false)
    }

    /// `virDomainGetXMLDesc` with `VIR_DOMAIN_XML_SECURE` (`secure`): the
    /// graphics passwords too. The caller decides who may ask for it.
    pub fn get_xml_with(&self, dom: &Domain, inactive: bool, secure: bool) -> Result<String> {
        Ok(dom.def_for_xml(inactive).to_xml_for(secure))
    }

    /// `virConnectGetDomainCapabilities` for `emulator` (the default when
    /// `None`), `machine` (q35 when `None`) and virtualization type:
    /// probed facts only (see `domain::domcaps`). Type `kvm` where KVM
    /// does not run guests is libvirt's error.
    pub async fn domain_capabilities(
        &self,
        emulator: Option<&Path>,
        machine: Option<&str>,
        virttype: domain::DomainType,
    ) -> Result<String> {
        let path = emulator.unwrap_or(Path::new(domain::DEFAULT_EMULATOR));
        let caps = self.emulator_caps(Some(path)).await?;
        let firmware = firmware::load(&self.s.cfg.firmware_dirs());
        let input = domain::domcaps::DomcapsInput {
            caps: &caps,
            emulator: &path.to_string_lossy(),
            virttype,
            machine,
            kvm_usable: self.kvm_available().await,
            firmware: &firmware,
            swtpm: swtpm::available(),
        };
        domain::domcaps::domain_capabilities(&input)
            .map_err(|e| Error::Xml(virterror::ToVirError::to_vir_error(&e)))
    }

    pub fn get_autostart(&self, dom: &Domain) -> bool {
        dom.autostart()
    }

    /// Number of domains known.
    pub fn len(&self) -> usize {
        self.s.registry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.s.registry.is_empty()
    }
}
