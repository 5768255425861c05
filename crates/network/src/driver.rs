//! The network driver handle: definitions, lookups, lists and events.
//! Starting and stopping is in `lifecycle.rs`, re-adoption in
//! `readopt.rs`, `virNetworkUpdate` in `update.rs`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use joblock::NormalJob;

use crate::events::{Listeners, NetworkLifecycle, NetworkListener};
use crate::host::dnsmasq::Dnsmasq;
use crate::host::link;
use crate::host::nft::Nft;
use crate::host::tc::Tc;
use crate::network::{Network, NetworkSummary};
use crate::store::Layout;
use crate::xml::NetworkDef;
use crate::{Error, Result};

/// When a dying dnsmasq is restarted, and when the driver gives up.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// More deaths than this within `window` and the network is degraded.
    pub max_restarts: u32,
    pub window: Duration,
    /// Wait before the first restart; doubled at each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// How the network driver runs.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The daemon's state root (see `store.rs` for what lives where).
    pub root: PathBuf,
    /// How long an operation waits for its network's job lock.
    pub job_wait: Duration,
    pub dnsmasq: PathBuf,
    /// The user dnsmasq runs as once started.
    pub dnsmasq_user: String,
    pub nft: PathBuf,
    pub tc: PathBuf,
    /// The nftables table (family `ip`) this daemon owns. Two daemons
    /// sharing a network namespace need two names.
    pub nft_table: String,
    /// Deadline of every helper run (nft, tc, a dnsmasq start).
    pub helper_timeout: Duration,
    /// SIGTERM to SIGKILL when dnsmasq is stopped.
    pub stop_grace: Duration,
    pub restart: RestartPolicy,
    /// Define the `default` network (NAT on 192.168.122.0/24, bridge
    /// virbr0) on the first start; it is set to autostart only when its
    /// subnet collides with no route of the host.
    pub default_network: bool,
    /// Start autostart networks when the driver opens.
    pub autostart: bool,
}

impl NetworkConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            job_wait: Duration::from_secs(30),
            dnsmasq: PathBuf::from("/usr/sbin/dnsmasq"),
            dnsmasq_user: "root".into(),
            nft: PathBuf::from("/usr/sbin/nft"),
            tc: PathBuf::from("/usr/sbin/tc"),
            nft_table: "ferrovirt".into(),
            helper_timeout: Duration::from_secs(10),
            stop_grace: Duration::from_secs(5),
            restart: RestartPolicy {
                max_restarts: 5,
                window: Duration::from_secs(60),
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(10),
            },
            default_network: true,
            autostart: true,
        }
    }
}

/// `virConnectListAllNetworks` filters; `None` means either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkFilter {
    pub active: Option<bool>,
    pub persistent: Option<bool>,
    pub autostart: Option<bool>,
}

impl NetworkFilter {
    /// From `virConnectListAllNetworksFlags` bits; both bits of a group
    /// (or neither) mean either. Unknown bits are refused.
    pub fn from_flags(flags: u32) -> Result<Self> {
        if flags & !0x3f != 0 {
            return Err(Error::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                flags & !0x3f
            )));
        }
        let pick = |yes: u32, no: u32| match (flags & yes != 0, flags & no != 0) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        Ok(Self {
            active: pick(2, 1),
            persistent: pick(4, 8),
            autostart: pick(16, 32),
        })
    }

    pub fn matches(&self, s: &NetworkSummary) -> bool {
        self.active.is_none_or(|a| a == s.active)
            && self.persistent.is_none_or(|p| p == s.persistent)
            && self.autostart.is_none_or(|a| a == s.autostart)
    }
}

#[derive(Default)]
struct Registry {
    by_name: HashMap<String, Arc<Network>>,
    by_uuid: HashMap<uuid::Uuid, Arc<Network>>,
}

pub(crate) struct Shared {
    pub cfg: NetworkConfig,
    pub layout: Layout,
    /// Every network. Read-locked for lookups and lists, write-locked to
    /// add or remove one; never held across an await.
    registry: RwLock<Registry>,
    /// Serialises define/create/undefine so that names, uuids and bridge
    /// names stay unique together. Lookups never take it.
    pub define_lock: tokio::sync::Mutex<()>,
    /// Serialises what reads and changes shared host state: choosing a
    /// bridge name, the subnet checks and the bridge creation of a start,
    /// and edits of the shared nftables table.
    pub host_lock: tokio::sync::Mutex<()>,
    pub listeners: Listeners,
    pub dnsmasq: Dnsmasq,
    pub nft: Nft,
    pub tc: Tc,
}

/// The network driver. Clone freely.
#[derive(Clone)]
pub struct NetworkDriver {
    pub(crate) s: Arc<Shared>,
}

impl NetworkDriver {
    /// Opens the driver: loads definitions, re-adopts active networks
    /// (removing whatever an interrupted start left), defines the default
    /// network on the first start, then autostarts.
    pub async fn open(cfg: NetworkConfig) -> Result<Self> {
        let layout = Layout::new(&cfg.root);
        let first = layout
            .create_all()
            .map_err(|e| Error::io(format!("cannot create {}", layout.config_dir.display()), e))?;
        let s = Arc::new(Shared {
            dnsmasq: Dnsmasq {
                binary: cfg.dnsmasq.clone(),
                user: cfg.dnsmasq_user.clone(),
                deadline: cfg.helper_timeout,
                grace: cfg.stop_grace,
            },
            nft: Nft {
                binary: cfg.nft.clone(),
                table: cfg.nft_table.clone(),
                deadline: cfg.helper_timeout,
            },
            tc: Tc {
                binary: cfg.tc.clone(),
                deadline: cfg.helper_timeout,
            },
            layout,
            registry: RwLock::default(),
            define_lock: tokio::sync::Mutex::new(()),
            host_lock: tokio::sync::Mutex::new(()),
            listeners: Listeners::default(),
            cfg,
        });
        let drv = Self { s };
        drv.load_definitions();
        drv.readopt_all().await;
        if first && drv.s.cfg.default_network {
            drv.define_default().await;
        }
        if drv.s.cfg.autostart {
            drv.autostart_all().await;
        }
        Ok(drv)
    }

    /// Calls `f` for every network event; see [`NetworkListener`].
    pub fn add_event_listener(&self, f: NetworkListener) {
        self.s.listeners.add(f);
    }

    fn reg(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.s.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn reg_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.s.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, net: &Arc<Network>) {
        let mut r = self.reg_mut();
        r.by_name.insert(net.name().to_owned(), net.clone());
        r.by_uuid.insert(net.uuid(), net.clone());
    }

    pub(crate) fn remove(&self, net: &Network) {
        let mut r = self.reg_mut();
        r.by_name.remove(net.name());
        r.by_uuid.remove(&net.uuid());
        net.jobs.close("network removed");
    }

    // ---- lookups and lists: snapshots, no job ----

    pub fn lookup_by_name(&self, name: &str) -> Result<Arc<Network>> {
        self.reg()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoNetwork(format!("no network with matching name '{name}'")))
    }

    pub fn lookup_by_uuid(&self, uuid: &uuid::Uuid) -> Result<Arc<Network>> {
        self.reg()
            .by_uuid
            .get(uuid)
            .cloned()
            .ok_or_else(|| Error::NoNetwork(format!("no network with matching uuid '{uuid}'")))
    }

    /// Every network, sorted by name.
    pub fn all(&self) -> Vec<Arc<Network>> {
        let mut v: Vec<_> = self.reg().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// `virConnectListAllNetworks`.
    pub fn list(&self, filter: NetworkFilter) -> Vec<NetworkSummary> {
        self.all()
            .iter()
            .map(|n| n.summary())
            .filter(|s| filter.matches(s))
            .collect()
    }

    // ---- definitions ----

    /// Defines (or redefines) a persistent network.
    pub async fn define(&self, xml: &str) -> Result<Arc<Network>> {
        let mut def = NetworkDef::parse(xml)?;
        let _d = self.s.define_lock.lock().await;
        let existing = self.find_same(&def)?;
        self.settle_bridge(&mut def, existing.as_deref()).await?;
        if def.mac.is_none() {
            def.mac = existing
                .as_ref()
                .and_then(|n| n.config().mac)
                .or_else(|| Some(crate::addr::MacAddr::generate()));
        }
        let path = self.s.layout.definition(&def.name);
        durable::atomic_write(&path, def.to_xml().as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        let def = Arc::new(def);
        let net = match existing {
            Some(net) => {
                let mut g = net.lock();
                g.config = def;
                g.persistent = true;
                g.emit(&self.s.listeners, NetworkLifecycle::Defined);
                drop(g);
                net
            }
            None => {
                let net = Network::new(def, true);
                self.insert(&net);
                net.lock()
                    .emit(&self.s.listeners, NetworkLifecycle::Defined);
                net
            }
        };
        Ok(net)
    }

    /// The network `def` redefines, or libvirt's error if it clashes with
    /// another by name or uuid.
    pub(crate) fn find_same(&self, def: &NetworkDef) -> Result<Option<Arc<Network>>> {
        let r = self.reg();
        let by_name = r.by_name.get(&def.name).cloned();
        let by_uuid = r.by_uuid.get(&def.uuid).cloned();
        drop(r);
        match (by_name, by_uuid) {
            (Some(a), Some(b)) if Arc::ptr_eq(&a, &b) => Ok(Some(a)),
            (_, Some(b)) => Err(Error::Exists(format!(
                "network '{}' is already defined with uuid {}",
                b.name(),
                b.uuid()
            ))),
            (Some(a), None) => Err(Error::Exists(format!(
                "network '{}' already exists with uuid {}",
                def.name,
                a.uuid()
            ))),
            (None, None) => Ok(None),
        }
    }

    /// Picks a bridge name when none (or a `%d` template) is given, and
    /// refuses one another network uses, as libvirt does at define.
    pub(crate) async fn settle_bridge(
        &self,
        def: &mut NetworkDef,
        same: Option<&Network>,
    ) -> Result<()> {
        let others: Vec<String> = self
            .all()
            .iter()
            .filter(|n| same.is_none_or(|s| !std::ptr::eq(n.as_ref(), s)))
            .flat_map(|n| {
                let g = n.lock();
                let live = g
                    .live
                    .as_ref()
                    .and_then(|l| l.def.bridge_name().map(str::to_owned));
                [g.config.bridge_name().map(str::to_owned), live]
            })
            .flatten()
            .collect();
        if let Some(name) = def.bridge_name() {
            if others.iter().any(|o| o == name) {
                return Err(Error::Internal(format!(
                    "bridge name '{name}' already in use."
                )));
            }
            return Ok(());
        }
        let template = def.bridge.name.clone().unwrap_or_else(|| "virbr%d".into());
        let h = link::connect()?;
        let host: Vec<String> = link::all(&h).await?.into_iter().map(|l| l.name).collect();
        let free = (0..256)
            .map(|n| template.replacen("%d", &n.to_string(), 1))
            .find(|c| !others.contains(c) && !host.contains(c) && crate::xml::valid_bridge_name(c))
            .ok_or_else(|| Error::Internal(format!("Bridge generation exceeded max id {}", 256)))?;
        def.bridge.name = Some(free);
        Ok(())
    }

    /// Removes a network's persistent definition; a running network
    /// becomes transient and goes when it stops.
    pub async fn undefine(&self, net: &Arc<Network>) -> Result<()> {
        let _job = self.job(net, "net-undefine").await?;
        let _d = self.s.define_lock.lock().await;
        if !net.is_persistent() {
            return Err(Error::OperationInvalid(format!(
                "network '{}' is transient",
                net.name()
            )));
        }
        let def_path = self.s.layout.definition(net.name());
        durable::remove(&def_path)
            .map_err(|e| Error::io(format!("cannot remove {}", def_path.display()), e))?;
        let _ = durable::remove(&self.s.layout.autostart(net.name()));
        let mut g = net.lock();
        g.persistent = false;
        g.autostart = false;
        g.emit(&self.s.listeners, NetworkLifecycle::Undefined);
        let gone = g.live.is_none();
        if gone {
            g.removed = true;
            let _ = std::fs::remove_file(self.s.layout.leases(net.name()));
        }
        drop(g);
        if gone {
            self.remove(net);
        }
        Ok(())
    }

    pub async fn set_autostart(&self, net: &Arc<Network>, on: bool) -> Result<()> {
        let _job = self.job(net, "net-autostart").await?;
        if !net.is_persistent() {
            return Err(Error::OperationInvalid(
                "cannot set autostart for transient network".into(),
            ));
        }
        let marker = self.s.layout.autostart(net.name());
        let res = if on {
            durable::atomic_write(&marker, b"")
        } else {
            durable::remove(&marker)
        };
        res.map_err(|e| Error::io(format!("cannot update {}", marker.display()), e))?;
        net.lock().autostart = on;
        Ok(())
    }

    /// Takes the exclusive job on `net`; `what` names it in the errors of
    /// others that wait for it.
    pub(crate) async fn job(&self, net: &Network, what: &str) -> Result<joblock::JobGuard> {
        Ok(net
            .jobs
            .acquire(NormalJob::Modify, what, self.s.cfg.job_wait)
            .await?)
    }

    // ---- opening ----

    fn load_definitions(&self) {
        let files = durable::list_with_ext(&self.s.layout.config_dir, "xml").unwrap_or_default();
        for path in files {
            let def = durable::read_bounded(&path)
                .map_err(|e| e.to_string())
                .and_then(|x| NetworkDef::parse(&x).map_err(|e| e.to_string()));
            match def {
                Ok(def) if self.find_same(&def).is_ok_and(|s| s.is_none()) => {
                    let net = Network::new(Arc::new(def), true);
                    net.lock().autostart = self.s.layout.autostart(net.name()).exists();
                    self.insert(&net);
                }
                Ok(_) => {
                    tracing::error!(file = %path.display(), "skipping duplicate network definition")
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "skipping bad network definition")
                }
            }
        }
    }

    /// libvirt ships a `default` NAT network; so does the daemon. It only
    /// autostarts when its subnet is free on this host.
    async fn define_default(&self) {
        if self.lookup_by_name("default").is_ok() {
            return;
        }
        let xml = "<network><name>default</name><forward mode='nat'/>\
                   <bridge name='virbr0' stp='on' delay='0'/>\
                   <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
                   <range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>";
        let res = async {
            let net = self.define(xml).await?;
            match self.subnet_conflict(&net.config()) {
                Ok(()) => self.set_autostart(&net, true).await,
                Err(e) => {
                    tracing::info!(reason = %e, "the default network is defined but will not autostart");
                    Ok(())
                }
            }
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot define the default network");
        }
    }

    async fn autostart_all(&self) {
        for net in self.all() {
            let (want, active) = {
                let g = net.lock();
                (g.autostart, g.live.is_some())
            };
            if want
                && !active
                && let Err(e) = self.start(&net).await
            {
                tracing::warn!(network = net.name(), error = %e, "cannot autostart network");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_flags() {
        let f = NetworkFilter::from_flags(2 | 4 | 32).unwrap();
        assert_eq!(
            (f.active, f.persistent, f.autostart),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(
            NetworkFilter::from_flags(1 | 2).unwrap(),
            NetworkFilter::default()
        );
        assert!(NetworkFilter::from_flags(64).is_err());
    }
}
