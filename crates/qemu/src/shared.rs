//! What the driver and every per-VM task share: configuration, on-disk
//! layout, the registry, the event hub and the global bounds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::config::{DriverConfig, Layout};
use crate::emulator::caps::CapsCache;
use crate::emulator::{kvm, monitor};
use crate::events::hub::Hub;
use crate::object::registry::Registry;
use crate::stats::health::Health;
use crate::store::reconcile::DriverLock;

/// State shared by the driver and its per-VM tasks.
pub(crate) struct Shared {
    pub(crate) cfg: DriverConfig,
    pub(crate) layout: Layout,
    pub(crate) qmp: qmp::Config,
    pub(crate) registry: Registry,
    /// The driver's own health, for metrics.
    pub(crate) health: Arc<Health>,
    pub(crate) hub: Hub,
    /// Bounds concurrent event-handling work across all VMs.
    pub(crate) handlers: Semaphore,
    pub(crate) next_id: AtomicU32,
    /// Serialises define/undefine/create so name and uuid stay unique
    /// together. Never taken by lookups or per-VM operations.
    pub(crate) define_lock: Mutex<()>,
    pub(crate) caps: CapsCache,
    /// Whether KVM runs guests here ([`kvm::kvm_works`]): probed once, on
    /// first need, so opening the driver never waits for it.
    pub(crate) kvm: OnceCell<bool>,
    /// SPICE ports chosen for this daemon's domains, by domain, so two
    /// starts never pick the same one (see `lifecycle::host`). A short
    /// lock, never held across an await.
    pub(crate) display_ports: std::sync::Mutex<std::collections::BTreeMap<uuid::Uuid, u16>>,
    /// The files given to QEMU's user, by the running guests holding them.
    pub(crate) owned: crate::lifecycle::host::owner::Holdings,
    /// Makes the taps of guest NICs; `None` in a daemon without networks
    /// (such guests are then refused).
    pub(crate) network: Option<network::NetworkDriver>,
    /// Migrations waiting for their next phase.
    pub(crate) migrations: crate::jobs::migration::Table,
    /// The ports incoming migrations listen on.
    pub(crate) migration_ports: Arc<crate::jobs::migration::ports::Ports>,
    /// The root's lock, held as long as the driver or any of its tasks
    /// lives.
    _root: DriverLock,
}

impl Shared {
    pub(crate) fn new(
        cfg: DriverConfig,
        layout: Layout,
        root: DriverLock,
        network: Option<network::NetworkDriver>,
    ) -> Self {
        let health = Arc::new(Health::default());
        Self {
            qmp: monitor::qmp_config(cfg.monitor_timeout, &cfg.events),
            registry: Registry::new(health.clone()),
            health,
            hub: Hub::new(cfg.subscriber_queue),
            handlers: Semaphore::new(cfg.max_parallel_handlers.max(1)),
            next_id: AtomicU32::new(1),
            define_lock: Mutex::new(()),
            caps: CapsCache::new(cfg.confinement.exec_helper.clone()),
            kvm: OnceCell::new(),
            display_ports: std::sync::Mutex::default(),
            owned: Default::default(),
            network,
            migrations: crate::jobs::migration::Table::default(),
            migration_ports: crate::jobs::migration::ports::Ports::new(
                cfg.migration.port_min,
                cfg.migration.port_max,
            ),
            _root: root,
            layout,
            cfg,
        }
    }

    /// Whether KVM runs guests here, probing the default emulator on first use.
    pub(crate) async fn kvm_available(&self) -> bool {
        *self
            .kvm
            .get_or_init(|| {
                kvm::kvm_works(Path::new(domain::DEFAULT_EMULATOR), &self.layout.caps_dir)
            })
            .await
    }
}
