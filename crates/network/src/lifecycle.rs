//! Starting and stopping networks.
//!
//! A start records its intent first (status record, phase `starting`),
//! then builds the bridge and its address, the firewall chains, the
//! bandwidth limits and dnsmasq, then marks the record `active`. Any
//! failure tears down everything the record names, so a failed start
//! leaves nothing behind; a daemon killed mid-way leaves the record, and
//! the next open tears down the same way (`readopt.rs`).

use std::sync::Arc;

use crate::driver::NetworkDriver;
use crate::events::NetworkLifecycle;
use crate::host::dnsmasq::{self, Files};
use crate::host::{link, routes, tc};
use crate::network::{Live, Network};
use crate::store::{Phase, Status};
use crate::xml::{ForwardMode, NetworkDef};
use crate::{Error, Result};

impl NetworkDriver {
    /// Creates and starts a transient network.
    pub async fn create(&self, xml: &str) -> Result<Arc<Network>> {
        let mut def = NetworkDef::parse(xml)?;
        let net = {
            let _d = self.s.define_lock.lock().await;
            if let Some(same) = self.find_same(&def)? {
                return Err(Error::OperationInvalid(format!(
                    "network is already active as '{}'",
                    same.name()
                )));
            }
            self.settle_bridge(&mut def, None).await?;
            let net = Network::new(Arc::new(def), false);
            self.insert(&net);
            net
        };
        match self.start(&net).await {
            Ok(()) => Ok(net),
            Err(e) => {
                net.lock().removed = true;
                self.remove(&net);
                Err(e)
            }
        }
    }

    /// Starts an inactive network.
    pub async fn start(&self, net: &Arc<Network>) -> Result<()> {
        let _job = self.job(net, "net-start").await?;
        let mut def = {
            let g = net.lock();
            if g.live.is_some() {
                return Err(Error::OperationInvalid("network is already active".into()));
            }
            (*g.config).clone()
        };
        if def.mac.is_none() {
            def.mac = Some(crate::addr::MacAddr::generate());
        }
        let pid = {
            let _h = self.s.host_lock.lock().await;
            self.check_start(&def, net).await?;
            Status {
                phase: Phase::Starting,
                def: def.clone(),
            }
            .write(&self.s.layout)?;
            match self.bring_up(&def).await {
                Ok(pid) => pid,
                Err(e) => {
                    self.tear_down_logged(&def).await;
                    let _ = durable::remove(&self.s.layout.status(&def.name));
                    return Err(e);
                }
            }
        };
        Status {
            phase: Phase::Active,
            def: def.clone(),
        }
        .write(&self.s.layout)?;
        self.go_live(net, Arc::new(def), pid);
        Ok(())
    }

    /// Records the running state, starts supervising dnsmasq, and tells
    /// the listeners.
    pub(crate) fn go_live(&self, net: &Arc<Network>, def: Arc<NetworkDef>, pid: Option<i32>) {
        let mut live = Live::new(def, pid);
        if let Some(pid) = pid {
            live.supervisor = Some(crate::supervise::spawn(self.s.clone(), net.clone(), pid));
        }
        let mut g = net.lock();
        g.live = Some(live);
        g.emit(&self.s.listeners, NetworkLifecycle::Started);
    }

    /// Refuses a start whose bridge name or subnet is taken.
    async fn check_start(&self, def: &NetworkDef, net: &Network) -> Result<()> {
        let bridge = def
            .bridge_name()
            .ok_or_else(|| Error::Internal("network has no bridge name".into()))?;
        let h = link::connect()?;
        if link::get(&h, bridge).await?.is_some() {
            return Err(Error::Internal(format!(
                "bridge name '{bridge}' already in use."
            )));
        }
        let other_live = self
            .all()
            .into_iter()
            .filter(|n| !std::ptr::eq(n.as_ref(), net))
            .any(|n| {
                n.lock()
                    .live
                    .as_ref()
                    .is_some_and(|l| l.def.bridge_name() == Some(bridge))
            });
        if other_live {
            return Err(Error::Internal(format!(
                "bridge name '{bridge}' already in use."
            )));
        }
        self.subnet_conflict(def)
    }

    /// libvirt's check that no route (another network's bridge, a host
    /// interface) already covers the network's subnet.
    pub(crate) fn subnet_conflict(&self, def: &NetworkDef) -> Result<()> {
        let Some(subnet) = def.ip.as_ref().map(|ip| ip.subnet()) else {
            return Ok(());
        };
        let own = def.bridge_name().unwrap_or_default();
        for other in self.all() {
            let g = other.lock();
            let Some(l) = g.live.as_ref().filter(|l| l.def.name != def.name) else {
                continue;
            };
            if l.def
                .ip
                .as_ref()
                .is_some_and(|ip| ip.subnet().overlaps(subnet))
            {
                return Err(routes::in_use(l.def.bridge_name().unwrap_or_default()));
            }
        }
        let table = routes::read()?;
        match routes::collision(&table, subnet, own) {
            Some(r) => Err(routes::in_use(&r.iface)),
            None => Ok(()),
        }
    }

    /// Creates everything the network is made of; returns dnsmasq's pid.
    async fn bring_up(&self, def: &NetworkDef) -> Result<Option<i32>> {
        let bridge = def.bridge_name().unwrap_or_default();
        let h = link::connect()?;
        let spec = link::BridgeSpec {
            name: bridge,
            network: &def.name,
            mac: def.mac,
            mtu: def.mtu,
            stp: def.bridge.stp,
            delay: def.bridge.delay,
        };
        let index = link::create_bridge(&h, &spec).await?;
        if let Some(ip) = &def.ip {
            link::add_ipv4(&h, index, ip.subnet()).await?;
        }
        link::set_up(&h, index).await?;
        if matches!(def.forward.mode, ForwardMode::Nat | ForwardMode::Route) {
            enable_forwarding()?;
        }
        let rules = self.s.nft.rules(def, bridge);
        if !rules.is_empty() {
            self.s.nft.apply(bridge, &rules).await?;
        }
        if let Some(bw) = def.bandwidth.filter(|b| !b.is_empty()) {
            self.s.tc.apply(bridge, index, &bw).await?;
        }
        if !dnsmasq::needed(def) {
            return Ok(None);
        }
        let files = Files::new(&self.s.layout, &def.name);
        Ok(Some(self.s.dnsmasq.start(def, bridge, &files).await?))
    }

    /// Removes everything a network on `def` may have on the host: its
    /// dnsmasq, its firewall chains, its bridge (only if it carries our
    /// alias for this network).
    pub(crate) async fn tear_down(&self, def: &NetworkDef) -> Result<()> {
        let files = Files::new(&self.s.layout, &def.name);
        self.s.dnsmasq.stop_all(&files).await;
        dnsmasq::remove_run_files(&files);
        let mut first_err = None;
        let Some(bridge) = def.bridge_name() else {
            return Ok(());
        };
        if let Err(e) = self.s.nft.remove(bridge).await {
            first_err.get_or_insert(e);
        }
        let res = async {
            let h = link::connect()?;
            let Some(l) = link::get(&h, bridge).await? else {
                return Ok(());
            };
            if !l.is_ours(&def.name) {
                tracing::warn!(bridge, "not removing a bridge this daemon did not create");
                return Ok(());
            }
            link::delete(&h, &tc::ifb_name(l.index)).await?;
            link::delete(&h, bridge).await
        }
        .await;
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    pub(crate) async fn tear_down_logged(&self, def: &NetworkDef) {
        if let Err(e) = self.tear_down(def).await {
            tracing::error!(network = %def.name, error = %e, "cannot remove everything of the network");
        }
    }

    /// Stops a running network: dnsmasq, firewall rules and bridge go.
    pub async fn destroy(&self, net: &Arc<Network>) -> Result<()> {
        let _job = self.job(net, "net-destroy").await?;
        let (def, supervisor) = {
            let mut g = net.lock();
            let Some(live) = g.live.as_mut() else {
                return Err(Error::OperationInvalid("network is not active".into()));
            };
            (live.def.clone(), live.supervisor.take())
        };
        if let Some(sup) = supervisor {
            crate::supervise::stop(sup, self.s.cfg.helper_timeout).await;
        }
        let _h = self.s.host_lock.lock().await;
        let res = self.tear_down(&def).await;
        let status = self.s.layout.status(&def.name);
        match &res {
            // The next open removes what is left.
            Err(_) => {
                let _ = Status {
                    phase: Phase::Starting,
                    def: (*def).clone(),
                }
                .write(&self.s.layout);
            }
            Ok(()) => {
                durable::remove(&status)
                    .map_err(|e| Error::io(format!("cannot remove {}", status.display()), e))?;
            }
        }
        self.go_inactive(net);
        res
    }

    /// Marks the network stopped (a transient one disappears).
    pub(crate) fn go_inactive(&self, net: &Arc<Network>) {
        let mut g = net.lock();
        g.live = None;
        g.emit(&self.s.listeners, NetworkLifecycle::Stopped);
        let transient = !g.persistent;
        if transient {
            g.removed = true;
        }
        drop(g);
        if transient {
            self.remove(net);
        }
    }
}

/// Turns on IPv4 forwarding in this network namespace (NAT and routed
/// networks need it; it is never turned off, as in libvirt).
fn enable_forwarding() -> Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| Error::io("cannot enable IP forwarding", e))
}
