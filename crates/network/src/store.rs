//! Where networks live on disk, and the status record that makes a start
//! crash-safe.
//!
//! ```text
//! ROOT/etc/network/NAME.xml          persistent definitions
//! ROOT/etc/network/autostart/NAME    autostart markers
//! ROOT/run/network/NAME.xml          status record of a network being
//!                                    started or active (transient ones too)
//! ROOT/run/network/NAME.conf         dnsmasq's configuration
//! ROOT/run/network/NAME.pid          dnsmasq's pid file
//! ROOT/run/network/NAME.hostsfile    static DHCP hosts (mac,ip,name)
//! ROOT/run/network/NAME.addnhosts    DNS host records
//! ROOT/lib/network/NAME.leases       dnsmasq's lease file (kept across
//!                                    restarts of the network)
//! ```
//!
//! The status record is written *before* anything is created on the host,
//! with the phase `starting`, and moved to `active` once the bridge, the
//! firewall rules and dnsmasq are all up. A daemon killed in between finds
//! `starting` at its next open and removes whatever the record names;
//! `active` is re-adopted. Every write is atomic (`durable`).

use std::io;
use std::path::{Path, PathBuf};

use virxml::{XmlElement, XmlError};

use crate::xml::NetworkDef;

/// Paths of the network driver's state.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub config_dir: PathBuf,
    pub autostart_dir: PathBuf,
    pub state_dir: PathBuf,
    pub lease_dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            config_dir: root.join("etc/network"),
            autostart_dir: root.join("etc/network/autostart"),
            state_dir: root.join("run/network"),
            lease_dir: root.join("lib/network"),
        }
    }

    /// Creates the directories; returns whether the configuration
    /// directory is new (the daemon's first start with networks).
    pub(crate) fn create_all(&self) -> io::Result<bool> {
        let first = !self.config_dir.exists();
        let dirs = [
            &self.config_dir,
            &self.autostart_dir,
            &self.state_dir,
            &self.lease_dir,
        ];
        for d in dirs {
            std::fs::create_dir_all(d)?;
        }
        for d in dirs {
            durable::sweep_temp_files(d);
        }
        Ok(first)
    }

    pub(crate) fn definition(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    pub(crate) fn autostart(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(name)
    }

    pub(crate) fn status(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.xml"))
    }

    pub(crate) fn run_file(&self, name: &str, ext: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.{ext}"))
    }

    pub(crate) fn leases(&self, name: &str) -> PathBuf {
        self.lease_dir.join(format!("{name}.leases"))
    }
}

/// How far a start got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Host resources may be half made: remove them.
    Starting,
    /// Everything was up: re-adopt it.
    Active,
}

/// The status record of a started (or starting) network.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub phase: Phase,
    /// The live definition, with the bridge name resolved.
    pub def: NetworkDef,
}

impl Status {
    pub(crate) fn to_xml(&self) -> String {
        let phase = match self.phase {
            Phase::Starting => "starting",
            Phase::Active => "active",
        };
        let mut out = format!("<networkstatus phase='{phase}'>\n");
        for line in self.def.to_xml().lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("</networkstatus>\n");
        out
    }

    pub(crate) fn parse(xml: &str) -> crate::Result<Self> {
        let root = virxml::parse_document(xml)?;
        let phase = match (root.name.as_str(), root.attr("phase")) {
            ("networkstatus", Some("starting")) => Phase::Starting,
            ("networkstatus", Some("active")) => Phase::Active,
            _ => return Err(XmlError::structure("not a network status record").into()),
        };
        let net: &XmlElement = root
            .child("network")
            .ok_or_else(|| XmlError::structure("status record without <network>"))?;
        Ok(Self {
            phase,
            def: NetworkDef::from_element(net)?,
        })
    }

    pub(crate) fn write(&self, layout: &Layout) -> crate::Result<()> {
        let path = layout.status(&self.def.name);
        durable::atomic_write(&path, self.to_xml().as_bytes())
            .map_err(|e| crate::Error::io(format!("cannot write {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        let def = NetworkDef::parse(
            "<network><name>n</name><bridge name='br7'/><ip address='10.7.0.1' prefix='24'/></network>",
        )
        .unwrap();
        let st = Status {
            phase: Phase::Starting,
            def: def.clone(),
        };
        let back = Status::parse(&st.to_xml()).unwrap();
        assert_eq!(back.phase, Phase::Starting);
        assert_eq!(back.def, def);
        assert!(Status::parse("<network><name>n</name></network>").is_err());
    }
}
