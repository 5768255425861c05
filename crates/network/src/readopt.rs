//! Opening after a restart (or a SIGKILL): every status record is either
//! re-adopted or torn down, and whatever this root's daemon left that no
//! record claims is removed. Nothing is leaked, nothing duplicated.

use std::sync::Arc;

use crate::driver::NetworkDriver;
use crate::host::dnsmasq::Files;
use crate::host::{link, proc};
use crate::network::Network;
use crate::store::{Phase, Status};
use crate::xml::NetworkDef;
use crate::{Error, Result};

impl NetworkDriver {
    pub(crate) async fn readopt_all(&self) {
        let files = durable::list_with_ext(&self.s.layout.state_dir, "xml").unwrap_or_default();
        for path in files {
            let status = durable::read_bounded(&path)
                .map_err(|e| e.to_string())
                .and_then(|x| Status::parse(&x).map_err(|e| e.to_string()));
            match status {
                Ok(st) => self.readopt(st).await,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "removing an unreadable network status record");
                    let _ = durable::remove(&path);
                }
            }
        }
        self.sweep_orphans().await;
    }

    async fn readopt(&self, st: Status) {
        let name = st.def.name.clone();
        let status_path = self.s.layout.status(&name);
        if st.phase == Phase::Starting {
            tracing::info!(network = %name, "removing what an interrupted start left");
            self.tear_down_logged(&st.def).await;
            let _ = durable::remove(&status_path);
            return;
        }
        let Some(net) = self.network_for(&st.def) else {
            tracing::error!(network = %name, "status record conflicts with a definition; tearing it down");
            self.tear_down_logged(&st.def).await;
            let _ = durable::remove(&status_path);
            return;
        };
        match self.adopt(&st.def).await {
            Ok(pid) => self.go_live(&net, Arc::new(st.def), pid),
            Err(e) => {
                tracing::warn!(network = %name, error = %e, "cannot re-adopt the network; it is stopped now");
                self.tear_down_logged(&st.def).await;
                let _ = durable::remove(&status_path);
                if !net.is_persistent() {
                    self.remove(&net);
                }
            }
        }
    }

    /// The network object a status record belongs to (a transient one is
    /// created), or `None` when the record clashes with a definition.
    fn network_for(&self, def: &NetworkDef) -> Option<Arc<Network>> {
        match self.find_same(def) {
            Ok(Some(n)) => Some(n),
            Ok(None) => {
                let n = Network::new(Arc::new(def.clone()), false);
                self.insert(&n);
                Some(n)
            }
            Err(_) => None,
        }
    }

    /// Checks that the bridge is there and ours, puts back missing
    /// firewall rules, and keeps exactly one dnsmasq. Returns its pid.
    async fn adopt(&self, def: &NetworkDef) -> Result<Option<i32>> {
        let bridge = def
            .bridge_name()
            .ok_or_else(|| Error::Internal("status record without a bridge".into()))?;
        let h = link::connect()?;
        match link::get(&h, bridge).await? {
            Some(l) if l.is_ours(&def.name) => {}
            _ => return Err(Error::Internal(format!("bridge {bridge} is gone"))),
        }
        let rules = self.s.nft.rules(def, bridge);
        if !rules.is_empty() && !self.s.nft.has_rules(def, bridge).await? {
            tracing::warn!(network = %def.name, "firewall rules were missing; adding them again");
            self.s.nft.apply(bridge, &rules).await?;
        }
        if !crate::host::dnsmasq::needed(def) {
            return Ok(None);
        }
        let files = Files::new(&self.s.layout, &def.name);
        if let Some(pid) = self.s.dnsmasq.adopt(&files).await {
            return Ok(Some(pid));
        }
        tracing::warn!(network = %def.name, "dnsmasq was not running; starting it");
        Ok(Some(self.s.dnsmasq.start(def, bridge, &files).await?))
    }

    /// Removes firewall chains and dnsmasq processes of this root that no
    /// active network owns.
    async fn sweep_orphans(&self) {
        let live: Vec<(String, String)> = self
            .all()
            .iter()
            .filter_map(|n| {
                let g = n.lock();
                let l = g.live.as_ref()?;
                Some((l.def.name.clone(), l.def.bridge_name()?.to_owned()))
            })
            .collect();
        let bridges: Vec<&str> = live.iter().map(|(_, b)| b.as_str()).collect();
        if let Err(e) = self.s.nft.remove_where(|b| !bridges.contains(&b)).await {
            tracing::error!(error = %e, "cannot remove stale firewall chains");
        }
        let prefix = format!("--conf-file={}/", self.s.layout.state_dir.display());
        for pid in proc::find_prefix(&self.s.cfg.dnsmasq, &prefix) {
            let owned = live.iter().any(|(name, _)| {
                proc::is_ours(
                    pid,
                    &self.s.cfg.dnsmasq,
                    &Files::new(&self.s.layout, name).conf_arg(),
                )
            });
            if !owned {
                tracing::warn!(pid, "stopping a dnsmasq no active network owns");
                proc::terminate(pid, self.s.cfg.stop_grace).await;
            }
        }
    }
}
