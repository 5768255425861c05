//! The firewall of each network in nftables, through the `nft` binary (a
//! supervised child with a deadline).
//!
//! All rules live in one table owned by the daemon (`ip ferrovirt` by
//! default). Each network gets its own base chains, named after its
//! bridge (`BRIDGE_fwd` on the forward hook, `BRIDGE_nat` on postrouting
//! for NAT), so a network's rules are added and removed as a unit, in one
//! `nft` transaction, without touching another network's. The table is
//! removed with the last chain, so a host with no active network has no
//! trace of the daemon in its ruleset.

use std::path::PathBuf;
use std::time::Duration;

use crate::addr::Subnet;
use crate::host::cmd;
use crate::xml::{ForwardMode, NetworkDef};
use crate::{Error, Result};

const SUFFIXES: [&str; 2] = ["_fwd", "_nat"];

/// How to run nft, and the table the daemon owns.
#[derive(Debug, Clone)]
pub(crate) struct Nft {
    pub binary: PathBuf,
    pub table: String,
    pub deadline: Duration,
}

/// The chains a network on `bridge` may own.
fn chain_names(bridge: &str) -> [String; 2] {
    SUFFIXES.map(|s| format!("{bridge}{s}"))
}

/// The bridge a chain of ours belongs to.
pub(crate) fn chain_bridge(chain: &str) -> Option<&str> {
    SUFFIXES.iter().find_map(|s| chain.strip_suffix(s))
}

impl Nft {
    /// The `nft -f` commands that add the rules of `def` on `bridge`
    /// (empty for an open network, which has none).
    pub(crate) fn rules(&self, def: &NetworkDef, bridge: &str) -> String {
        let t = format!("ip {}", self.table);
        let fwd = format!("{bridge}_fwd");
        let mut s = format!("add table {t}\n");
        let subnet = def.ip.as_ref().map(|ip| ip.subnet());
        let mode = def.forward.mode;
        let dev_in = def
            .forward
            .dev
            .as_ref()
            .map(|d| format!("iifname \"{d}\" "))
            .unwrap_or_default();
        let dev_out = def
            .forward
            .dev
            .as_ref()
            .map(|d| format!("oifname \"{d}\" "))
            .unwrap_or_default();
        let (routed, net) = match (mode, subnet) {
            (ForwardMode::Open, _) => return String::new(),
            (ForwardMode::Nat | ForwardMode::Route, Some(n)) => (true, n.to_string()),
            _ => (false, String::new()),
        };
        s += &format!(
            "add chain {t} {fwd} {{ type filter hook forward priority filter; policy accept; }}\n"
        );
        if routed {
            let state = if mode == ForwardMode::Nat {
                "ct state related,established "
            } else {
                ""
            };
            s += &format!(
                "add rule {t} {fwd} {dev_in}oifname \"{bridge}\" ip daddr {net} {state}accept\n"
            );
            s += &format!(
                "add rule {t} {fwd} iifname \"{bridge}\" {dev_out}ip saddr {net} accept\n"
            );
        }
        s += &format!("add rule {t} {fwd} iifname \"{bridge}\" oifname \"{bridge}\" accept\n");
        s += &format!("add rule {t} {fwd} oifname \"{bridge}\" reject\n");
        s += &format!("add rule {t} {fwd} iifname \"{bridge}\" reject\n");
        if let (ForwardMode::Nat, Some(n)) = (mode, subnet) {
            s += &self.nat_rules(def, bridge, n, &dev_out);
        }
        s
    }

    fn nat_rules(&self, def: &NetworkDef, bridge: &str, n: Subnet, dev_out: &str) -> String {
        let t = format!("ip {}", self.table);
        let nat = format!("{bridge}_nat");
        let (lo, hi) = def.forward.nat_ports.unwrap_or((1024, 65535));
        let mut s = format!(
            "add chain {t} {nat} {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
        );
        s += &format!("add rule {t} {nat} ip saddr {n} ip daddr 224.0.0.0/24 return\n");
        s += &format!("add rule {t} {nat} ip saddr {n} ip daddr 255.255.255.255 return\n");
        s += &format!(
            "add rule {t} {nat} {dev_out}meta l4proto {{ tcp, udp }} ip saddr {n} ip daddr != {n} masquerade to :{lo}-{hi}\n"
        );
        s += &format!("add rule {t} {nat} {dev_out}ip saddr {n} ip daddr != {n} masquerade\n");
        s
    }

    /// The names of the chains in our table (empty when there is none).
    pub(crate) async fn chains(&self) -> Result<Vec<String>> {
        let out = cmd::run(
            &self.binary,
            &["-j", "list", "table", "ip", &self.table],
            None,
            self.deadline,
        )
        .await?;
        if !out.success {
            if out.message.contains("No such file or directory") {
                return Ok(Vec::new());
            }
            return Err(Error::Helper(format!(
                "nft list table failed: {}",
                out.message
            )));
        }
        parse_chains(&out.stdout)
    }

    /// Replaces the rules of the network on `bridge` with `script` (from
    /// [`Nft::rules`]) in one transaction.
    pub(crate) async fn apply(&self, bridge: &str, script: &str) -> Result<()> {
        let existing = self.chains().await?;
        let mut batch = self.delete_commands(&existing, |c| chain_bridge(c) == Some(bridge));
        batch.push_str(script);
        if batch.is_empty() {
            return Ok(());
        }
        cmd::run_ok(&self.binary, &["-f", "-"], Some(&batch), self.deadline).await?;
        Ok(())
    }

    /// Removes the chains of every bridge for which `drop` is true, and
    /// the table when nothing else is left in it.
    pub(crate) async fn remove_where(&self, drop: impl Fn(&str) -> bool) -> Result<()> {
        let existing = self.chains().await?;
        if existing.is_empty() {
            return Ok(());
        }
        let ours = |c: &str| chain_bridge(c).is_some_and(&drop);
        let batch = if existing.iter().all(|c| ours(c)) {
            format!("delete table ip {}\n", self.table)
        } else {
            self.delete_commands(&existing, ours)
        };
        if batch.is_empty() {
            return Ok(());
        }
        cmd::run_ok(&self.binary, &["-f", "-"], Some(&batch), self.deadline).await?;
        Ok(())
    }

    /// Removes the rules of the network on `bridge`.
    pub(crate) async fn remove(&self, bridge: &str) -> Result<()> {
        self.remove_where(|b| b == bridge).await
    }

    /// Whether every chain a network on `bridge` needs is present.
    pub(crate) async fn has_rules(&self, def: &NetworkDef, bridge: &str) -> Result<bool> {
        let existing = self.chains().await?;
        let script = self.rules(def, bridge);
        Ok(chain_names(bridge)
            .iter()
            .filter(|c| script.contains(&format!(" {c} {{")))
            .all(|c| existing.contains(c)))
    }

    fn delete_commands(&self, existing: &[String], pick: impl Fn(&str) -> bool) -> String {
        let mut s = String::new();
        for c in existing.iter().filter(|c| pick(c)) {
            s += &format!(
                "flush chain ip {t} {c}\ndelete chain ip {t} {c}\n",
                t = self.table
            );
        }
        s
    }
}

/// Chain names out of `nft -j list table` output.
fn parse_chains(json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::Helper(format!("cannot parse nft's JSON output: {e}")))?;
    let items = v
        .get("nftables")
        .and_then(|n| n.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|i| i.get("chain")?.get("name")?.as_str().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nft() -> Nft {
        Nft {
            binary: "/usr/sbin/nft".into(),
            table: "ferrovirt".into(),
            deadline: Duration::from_secs(5),
        }
    }

    fn def(forward: &str) -> NetworkDef {
        NetworkDef::parse(&format!(
            "<network><name>n</name>{forward}<ip address='10.5.0.1' prefix='24'/></network>"
        ))
        .unwrap()
    }

    #[test]
    fn rules_per_mode() {
        let nat = nft().rules(&def("<forward mode='nat' dev='eth0'/>"), "br5");
        assert!(nat.contains("add chain ip ferrovirt br5_nat"), "{nat}");
        assert!(nat.contains("oifname \"eth0\" meta l4proto { tcp, udp } ip saddr 10.5.0.0/24 ip daddr != 10.5.0.0/24 masquerade to :1024-65535"), "{nat}");
        assert!(nat.contains("ct state related,established accept"), "{nat}");
        let route = nft().rules(&def("<forward mode='route'/>"), "br5");
        assert!(
            !route.contains("_nat") && !route.contains("ct state"),
            "{route}"
        );
        assert!(
            route.contains("oifname \"br5\" ip daddr 10.5.0.0/24 accept"),
            "{route}"
        );
        let iso = nft().rules(&def(""), "br5");
        assert!(
            iso.contains("iifname \"br5\" reject") && !iso.contains("saddr"),
            "{iso}"
        );
        assert!(
            nft()
                .rules(&def("<forward mode='open'/>"), "br5")
                .is_empty()
        );
    }

    #[test]
    fn chain_names_and_json() {
        assert_eq!(chain_bridge("virbr0_fwd"), Some("virbr0"));
        assert_eq!(chain_bridge("virbr0_nat"), Some("virbr0"));
        assert_eq!(chain_bridge("other"), None);
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "ip", "name": "ferrovirt"}},
            {"chain": {"family": "ip", "table": "ferrovirt", "name": "virbr0_fwd"}}, {"rule": {"chain": "virbr0_fwd"}}]}"#;
        assert_eq!(parse_chains(json).unwrap(), vec!["virbr0_fwd".to_string()]);
        assert!(parse_chains("garbage").is_err());
    }
}
