//! `virNetworkUpdate`: static DHCP hosts and DNS host records, added,
//! modified or deleted in the persistent definition, the running network,
//! or both. A live change rewrites dnsmasq's hosts files and sends it
//! SIGHUP, which re-reads them without dropping a lease.

use std::sync::Arc;

use virxml::XmlError;

use crate::driver::NetworkDriver;
use crate::host::dnsmasq::{self, Files};
use crate::host::proc;
use crate::network::Network;
use crate::store::{Phase, Status};
use crate::xml::{DhcpHost, DnsHost, NetworkDef};
use crate::{Error, Result};

/// `virNetworkUpdateCommand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateCommand {
    Modify = 1,
    Delete = 2,
    AddLast = 3,
    AddFirst = 4,
}

impl UpdateCommand {
    pub fn from_raw(v: u32) -> Result<Self> {
        Ok(match v {
            1 => Self::Modify,
            2 => Self::Delete,
            3 => Self::AddLast,
            4 => Self::AddFirst,
            _ => {
                return Err(Error::Unsupported(format!(
                    "unrecognized network update command code {v}"
                )));
            }
        })
    }
}

/// `virNetworkUpdateSection` values this driver changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateSection {
    /// `<ip>/<dhcp>/<host>`.
    IpDhcpHost,
    /// `<dns>/<host>`.
    DnsHost,
}

impl UpdateSection {
    /// Maps libvirt's number; known sections this driver does not change
    /// get libvirt's "can't update" error.
    pub fn from_raw(v: u32, network: &str) -> Result<Self> {
        let name = match v {
            4 => return Ok(Self::IpDhcpHost),
            10 => return Ok(Self::DnsHost),
            1 => "bridge",
            2 => "domain",
            3 => "ip",
            5 => "dhcp range",
            6 => "forward",
            7 => "forward interface",
            8 => "forward pf",
            9 => "portgroup",
            11 => "dns txt",
            12 => "dns srv",
            _ => {
                return Err(Error::Unsupported(
                    "can't update unrecognized section of network".into(),
                ));
            }
        };
        Err(Error::Unsupported(format!(
            "can't update '{name}' section of network '{network}'"
        )))
    }
}

/// `virNetworkUpdateFlags`; neither set means "current" (the running
/// network if active, else the definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpdateFlags {
    pub live: bool,
    pub config: bool,
}

impl UpdateFlags {
    pub fn from_raw(v: u32) -> Result<Self> {
        if v & !3 != 0 {
            return Err(Error::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                v & !3
            )));
        }
        Ok(Self {
            live: v & 1 != 0,
            config: v & 2 != 0,
        })
    }
}

/// One update request.
#[derive(Debug, Clone)]
pub struct Update<'a> {
    pub command: UpdateCommand,
    pub section: UpdateSection,
    /// Which `<ip>` (-1: the one with DHCP). One `<ip>` is supported.
    pub parent_index: i32,
    pub xml: &'a str,
    pub flags: UpdateFlags,
}

impl NetworkDriver {
    /// `virNetworkUpdate`.
    pub async fn update(&self, net: &Arc<Network>, u: &Update<'_>) -> Result<()> {
        let _job = self.job(net, "net-update").await?;
        let (config, live, persistent) = {
            let g = net.lock();
            (
                g.config.clone(),
                g.live.as_ref().map(|l| l.def.clone()),
                g.persistent,
            )
        };
        let (to_live, to_config) = match (u.flags.live, u.flags.config) {
            (false, false) => (live.is_some(), live.is_none()),
            f => f,
        };
        if to_live && live.is_none() {
            return Err(Error::OperationInvalid("network is not running".into()));
        }
        if to_config && !persistent {
            return Err(Error::OperationInvalid(
                "cannot change persistent config of a transient network".into(),
            ));
        }
        let new_config = to_config.then(|| edited(&config, u)).transpose()?;
        let new_live = match (to_live, &live) {
            (true, Some(l)) => Some(edited(l, u)?),
            _ => None,
        };
        if let Some(def) = &new_config {
            let path = self.s.layout.definition(&def.name);
            durable::atomic_write(&path, def.to_xml().as_bytes())
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        if let Some(def) = &new_live {
            self.apply_live(net, def)?;
        }
        let mut g = net.lock();
        if let Some(def) = new_config {
            g.config = Arc::new(def);
        }
        if let Some(def) = new_live {
            if !g.persistent {
                g.config = Arc::new(def.clone());
            }
            if let Some(l) = g.live.as_mut() {
                l.def = Arc::new(def);
            }
        }
        Ok(())
    }

    /// Rewrites the hosts files and status record, then makes dnsmasq
    /// re-read them.
    fn apply_live(&self, net: &Network, def: &NetworkDef) -> Result<()> {
        Status {
            phase: Phase::Active,
            def: def.clone(),
        }
        .write(&self.s.layout)?;
        let files = Files::new(&self.s.layout, &def.name);
        dnsmasq::write_hosts(def, &files)?;
        let pid = net.lock().live.as_ref().and_then(|l| l.dnsmasq);
        if let Some(pid) = pid.filter(|p| proc::is_ours(*p, &self.s.cfg.dnsmasq, &files.conf_arg()))
        {
            proc::hangup(pid)?;
        }
        Ok(())
    }
}

/// `def` with the update applied.
fn edited(def: &NetworkDef, u: &Update<'_>) -> Result<NetworkDef> {
    let mut def = def.clone();
    let el = virxml::parse_document(u.xml)?;
    if el.name != "host" {
        return Err(XmlError::structure(format!(
            "unexpected element <{}>, expecting <host>, while updating network '{}'",
            el.name, def.name
        ))
        .into());
    }
    match u.section {
        UpdateSection::IpDhcpHost => dhcp_host(&mut def, u, &el)?,
        UpdateSection::DnsHost => dns_host(&mut def, u.command, &el)?,
    }
    Ok(def)
}

fn dhcp_host(def: &mut NetworkDef, u: &Update<'_>, el: &virxml::XmlElement) -> Result<()> {
    let name = def.name.clone();
    let host = DhcpHost::parse(el, &name, u.command == UpdateCommand::Delete)?;
    let Some(ip) = def.ip.as_mut().filter(|_| u.parent_index <= 0) else {
        let at = if u.parent_index > 0 {
            format!(" at index {}", u.parent_index)
        } else {
            String::new()
        };
        return Err(Error::OperationInvalid(format!(
            "couldn't update dhcp host entry - no <ip> element found{at} in network '{name}'"
        )));
    };
    let same = |h: &DhcpHost| {
        (host.mac.is_some() && h.mac == host.mac)
            || (host.name.is_some() && h.name == host.name)
            || (host.ip.is_some() && h.ip == host.ip)
    };
    match u.command {
        UpdateCommand::AddFirst | UpdateCommand::AddLast => {
            if ip.dhcp_hosts.iter().any(same) {
                return Err(Error::OperationInvalid(format!(
                    "there is an existing dhcp host entry in network '{name}' that matches \"{}\"",
                    host.describe()
                )));
            }
            ip.dhcp_ranges.get_or_insert_with(Vec::new);
            let at = if u.command == UpdateCommand::AddFirst {
                0
            } else {
                ip.dhcp_hosts.len()
            };
            ip.dhcp_hosts.insert(at, host);
        }
        UpdateCommand::Modify => {
            let i = ip.dhcp_hosts.iter().position(same).ok_or_else(|| {
                Error::OperationInvalid(format!(
                    "couldn't locate an existing dhcp host entry with \"mac='{}'\" \"name='{}'\" \"ip='{}'\" in network '{name}'",
                    host.mac.map_or("unknown".into(), |m| m.to_string()),
                    host.name.as_deref().unwrap_or("(null)"),
                    host.ip.map_or("unknown".into(), |i| i.to_string()),
                ))
            })?;
            ip.dhcp_hosts[i] = host;
        }
        UpdateCommand::Delete => {
            let all_match = |h: &DhcpHost| {
                host.mac.is_none_or(|m| h.mac.is_none_or(|hm| hm == m))
                    && host
                        .name
                        .as_ref()
                        .is_none_or(|n| h.name.as_ref() == Some(n))
                    && host.ip.is_none_or(|i| h.ip == Some(i))
            };
            let i = ip.dhcp_hosts.iter().position(all_match).ok_or_else(|| {
                Error::OperationInvalid(format!(
                    "couldn't locate a matching dhcp host entry in network '{name}'"
                ))
            })?;
            ip.dhcp_hosts.remove(i);
        }
    }
    Ok(())
}

fn dns_host(def: &mut NetworkDef, cmd: UpdateCommand, el: &virxml::XmlElement) -> Result<()> {
    let name = def.name.clone();
    if cmd == UpdateCommand::Modify {
        return Err(Error::Unsupported(
            "DNS HOST records cannot be modified, only added or deleted".into(),
        ));
    }
    let add = cmd != UpdateCommand::Delete;
    let host = DnsHost::parse(el, &name, !add)?;
    let found: Vec<usize> = def
        .dns_hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            h.ip == host.ip || (!add && h.hostnames.iter().any(|n| host.hostnames.contains(n)))
        })
        .map(|(i, _)| i)
        .collect();
    if add {
        if !found.is_empty() {
            return Err(Error::OperationInvalid(format!(
                "there is already at least one DNS HOST record with a matching field in network {name}"
            )));
        }
        let at = if cmd == UpdateCommand::AddFirst {
            0
        } else {
            def.dns_hosts.len()
        };
        def.dns_hosts.insert(at, host);
        return Ok(());
    }
    match found.as_slice() {
        [] => Err(Error::OperationInvalid(format!(
            "couldn't locate a matching DNS HOST record in network {name}"
        ))),
        [i] => {
            def.dns_hosts.remove(*i);
            Ok(())
        }
        _ => Err(Error::OperationInvalid(format!(
            "multiple matching DNS HOST records were found in network {name}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virterror::ErrorCode;

    fn def() -> NetworkDef {
        NetworkDef::parse(
            "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp>\
             <range start='10.0.0.10' end='10.0.0.20'/>\
             <host mac='52:54:00:00:00:01' name='a' ip='10.0.0.2'/></dhcp></ip></network>",
        )
        .unwrap()
    }

    fn up(command: UpdateCommand, section: UpdateSection, xml: &str) -> Update<'_> {
        Update {
            command,
            section,
            parent_index: -1,
            xml,
            flags: UpdateFlags::default(),
        }
    }

    #[test]
    fn dhcp_hosts() {
        let d = edited(
            &def(),
            &up(
                UpdateCommand::AddFirst,
                UpdateSection::IpDhcpHost,
                "<host mac='52:54:00:00:00:02' name='b' ip='10.0.0.3'/>",
            ),
        )
        .unwrap();
        assert_eq!(
            d.ip.as_ref().unwrap().dhcp_hosts[0].name.as_deref(),
            Some("b")
        );
        let e = edited(
            &d,
            &up(
                UpdateCommand::AddLast,
                UpdateSection::IpDhcpHost,
                "<host mac='52:54:00:00:00:09' name='z' ip='10.0.0.3'/>",
            ),
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationInvalid);
        assert!(
            e.to_string()
                .contains("there is an existing dhcp host entry in network 'n'"),
            "{e}"
        );
        let d = edited(
            &d,
            &up(
                UpdateCommand::Modify,
                UpdateSection::IpDhcpHost,
                "<host mac='52:54:00:00:00:02' name='b' ip='10.0.0.4'/>",
            ),
        )
        .unwrap();
        assert_eq!(
            d.ip.as_ref().unwrap().dhcp_hosts[0].ip,
            Some("10.0.0.4".parse().unwrap())
        );
        let d = edited(
            &d,
            &up(
                UpdateCommand::Delete,
                UpdateSection::IpDhcpHost,
                "<host name='a'/>",
            ),
        )
        .unwrap();
        assert_eq!(d.ip.as_ref().unwrap().dhcp_hosts.len(), 1);
        let e = edited(
            &d,
            &up(
                UpdateCommand::Delete,
                UpdateSection::IpDhcpHost,
                "<host name='a'/>",
            ),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("couldn't locate a matching dhcp host entry"),
            "{e}"
        );
        let e = edited(
            &d,
            &up(UpdateCommand::Delete, UpdateSection::IpDhcpHost, "<range/>"),
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::XmlError);
    }

    #[test]
    fn dns_hosts_and_sections() {
        let d = edited(
            &def(),
            &up(
                UpdateCommand::AddLast,
                UpdateSection::DnsHost,
                "<host ip='10.0.0.9'><hostname>db</hostname></host>",
            ),
        )
        .unwrap();
        assert_eq!(d.dns_hosts.len(), 1);
        assert!(
            edited(
                &d,
                &up(
                    UpdateCommand::AddLast,
                    UpdateSection::DnsHost,
                    "<host ip='10.0.0.9'><hostname>x</hostname></host>"
                )
            )
            .is_err()
        );
        let e = edited(
            &d,
            &up(
                UpdateCommand::Modify,
                UpdateSection::DnsHost,
                "<host ip='10.0.0.9'><hostname>x</hostname></host>",
            ),
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationUnsupported);
        let d = edited(
            &d,
            &up(
                UpdateCommand::Delete,
                UpdateSection::DnsHost,
                "<host><hostname>db</hostname></host>",
            ),
        )
        .unwrap();
        assert!(d.dns_hosts.is_empty());
        assert_eq!(
            UpdateSection::from_raw(1, "n").unwrap_err().to_string(),
            "Operation not supported: can't update 'bridge' section of network 'n'"
        );
        assert_eq!(
            UpdateCommand::from_raw(9).unwrap_err().code(),
            ErrorCode::OperationUnsupported
        );
        assert_eq!(
            UpdateFlags::from_raw(3).unwrap(),
            UpdateFlags {
                live: true,
                config: true
            }
        );
    }
}
