//! A network: its definitions, whether it runs, and the snapshot every
//! query reads.

use std::sync::{Arc, Mutex, MutexGuard};

use joblock::JobLock;

use crate::events::{Listeners, NetworkEvent, NetworkLifecycle};
use crate::xml::NetworkDef;

/// How a running network is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// dnsmasq kept dying and is no longer restarted: guests get no new
    /// DHCP leases or DNS answers until the network is restarted.
    Degraded(String),
}

/// A snapshot of a network for lists and `net-info`.
#[derive(Debug, Clone)]
pub struct NetworkSummary {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    /// The bridge of the running network, else the configured one.
    pub bridge: Option<String>,
    pub health: Health,
    /// The running dnsmasq, if the network has one.
    pub dnsmasq_pid: Option<i32>,
    /// How often dnsmasq was restarted since the network started.
    pub dnsmasq_restarts: u32,
}

/// The supervisor task of a running network's dnsmasq.
pub(crate) struct Supervisor {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// What exists only while the network runs.
pub(crate) struct Live {
    /// The definition it runs with (bridge name resolved); live updates
    /// change it.
    pub def: Arc<NetworkDef>,
    pub dnsmasq: Option<i32>,
    pub restarts: u32,
    pub health: Health,
    pub supervisor: Option<Supervisor>,
}

impl Live {
    pub(crate) fn new(def: Arc<NetworkDef>, dnsmasq: Option<i32>) -> Self {
        Self {
            def,
            dnsmasq,
            restarts: 0,
            health: Health::Ok,
            supervisor: None,
        }
    }
}

pub(crate) struct NetInner {
    /// The persistent definition (a transient network's own definition).
    pub config: Arc<NetworkDef>,
    pub live: Option<Live>,
    pub persistent: bool,
    pub autostart: bool,
    /// Gone from the registry (undefined, or a transient network stopped).
    pub removed: bool,
}

impl NetInner {
    /// Emits a lifecycle event; call with the lock held.
    pub(crate) fn emit(&self, listeners: &Listeners, lifecycle: NetworkLifecycle) {
        listeners.emit(&NetworkEvent {
            name: self.config.name.clone(),
            uuid: self.config.uuid,
            lifecycle,
        });
    }
}

/// One network. Its name and uuid never change.
pub struct Network {
    name: String,
    uuid: uuid::Uuid,
    /// Changes (start, destroy, undefine, update, autostart) take an
    /// exclusive job: FIFO-fair, with a deadline. Queries take none.
    pub(crate) jobs: JobLock,
    /// A short lock, never held across an await; events are emitted under
    /// it so that each network's events follow its state in order.
    inner: Mutex<NetInner>,
}

impl Network {
    pub(crate) fn new(def: Arc<NetworkDef>, persistent: bool) -> Arc<Self> {
        Arc::new(Self {
            name: def.name.clone(),
            uuid: def.uuid,
            jobs: JobLock::new(),
            inner: Mutex::new(NetInner {
                config: def,
                live: None,
                persistent,
                autostart: false,
                removed: false,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, NetInner> {
        // A panic while holding this lock leaves plain data behind, never a
        // broken invariant worth refusing every later call for.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.lock().live.is_some()
    }

    pub fn is_persistent(&self) -> bool {
        self.lock().persistent
    }

    pub fn autostart(&self) -> bool {
        self.lock().autostart
    }

    /// The persistent (inactive) definition.
    pub fn config(&self) -> Arc<NetworkDef> {
        self.lock().config.clone()
    }

    /// The running definition, else the persistent one.
    pub fn current(&self) -> Arc<NetworkDef> {
        let g = self.lock();
        g.live
            .as_ref()
            .map_or_else(|| g.config.clone(), |l| l.def.clone())
    }

    /// `net-dumpxml [--inactive]`.
    pub fn to_xml(&self, inactive: bool) -> String {
        if inactive {
            self.config().to_xml()
        } else {
            self.current().to_xml()
        }
    }

    /// `virNetworkGetBridgeName`.
    pub fn bridge_name(&self) -> Option<String> {
        self.current().bridge_name().map(str::to_owned)
    }

    pub fn summary(&self) -> NetworkSummary {
        let g = self.lock();
        let current = g.live.as_ref().map_or(&g.config, |l| &l.def);
        NetworkSummary {
            name: self.name.clone(),
            uuid: self.uuid,
            active: g.live.is_some(),
            persistent: g.persistent,
            autostart: g.autostart,
            bridge: current.bridge_name().map(str::to_owned),
            health: g.live.as_ref().map_or(Health::Ok, |l| l.health.clone()),
            dnsmasq_pid: g.live.as_ref().and_then(|l| l.dnsmasq),
            dnsmasq_restarts: g.live.as_ref().map_or(0, |l| l.restarts),
        }
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("name", &self.name)
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}
