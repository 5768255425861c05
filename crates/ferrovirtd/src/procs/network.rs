//! Virtual network procedures. Lists, lookups, XML and leases read the
//! network driver's snapshot (no job, never queued); everything that
//! changes a network is a job on it in the driver.

use std::sync::Arc;

use network::{
    Network, NetworkFilter, NetworkSummary, Update, UpdateCommand, UpdateFlags, UpdateSection,
};
use rpc::CallContext;
use rpc::protocol::remote::{
    CallbackIdArgs, ConnectListAllNetworksArgs, ConnectListAllNetworksRet,
    ConnectNetworkEventRegisterAnyArgs, IntRet, MaxNamesArgs, NameArgs, NamesRet, NetworkArgs,
    NetworkDhcpLease, NetworkFlagsArgs, NetworkGetDhcpLeasesArgs, NetworkGetDhcpLeasesRet,
    NetworkRet, NetworkSetAutostartArgs, NetworkUpdateArgs, NonnullNetwork, NumRet, UuidArgs,
    XmlFlagsArgs, XmlRet,
};
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, network as f};
use crate::relay::{Object, Style};
use crate::wire::{invalid_arg, vir};

fn wire_net(name: &str, uuid: uuid::Uuid) -> NonnullNetwork {
    NonnullNetwork {
        name: name.to_owned(),
        uuid: *uuid.as_bytes(),
    }
}

fn net_ret(n: &Arc<Network>) -> NetworkRet {
    NetworkRet {
        net: wire_net(n.name(), n.uuid()),
    }
}

impl Daemon {
    /// The network a client names, by UUID as libvirt looks it up.
    fn net(&self, n: &NonnullNetwork) -> Result<Arc<Network>, VirError> {
        let uuid = uuid::Uuid::from_bytes(n.uuid);
        self.network.lookup_by_uuid(&uuid).map_err(|e| {
            let mut err = vir(e);
            err.message = format!(
                "Network not found: no network with matching uuid '{uuid}' ({})",
                n.name
            );
            err
        })
    }
}

fn count(n: usize) -> NumRet {
    NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    }
}

fn names(list: Vec<NetworkSummary>, max: i32) -> NamesRet {
    let max = usize::try_from(max).unwrap_or(0);
    NamesRet {
        names: list.into_iter().take(max).map(|n| n.name).collect(),
    }
}

fn active(yes: bool) -> NetworkFilter {
    NetworkFilter {
        active: Some(yes),
        ..NetworkFilter::default()
    }
}

/// libvirt's filter groups: within a group any bit matches, across groups
/// all must.
fn list_filter(flags: u32) -> Result<NetworkFilter, VirError> {
    let all = f::CONNECT_LIST_NETWORKS_INACTIVE
        | f::CONNECT_LIST_NETWORKS_ACTIVE
        | f::CONNECT_LIST_NETWORKS_PERSISTENT
        | f::CONNECT_LIST_NETWORKS_TRANSIENT
        | f::CONNECT_LIST_NETWORKS_AUTOSTART
        | f::CONNECT_LIST_NETWORKS_NO_AUTOSTART;
    flags::check("virConnectListAllNetworks", flags, all)?;
    let pick = |yes: u32, no: u32| match (flags & yes != 0, flags & no != 0) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    Ok(NetworkFilter {
        active: pick(
            f::CONNECT_LIST_NETWORKS_ACTIVE,
            f::CONNECT_LIST_NETWORKS_INACTIVE,
        ),
        persistent: pick(
            f::CONNECT_LIST_NETWORKS_PERSISTENT,
            f::CONNECT_LIST_NETWORKS_TRANSIENT,
        ),
        autostart: pick(
            f::CONNECT_LIST_NETWORKS_AUTOSTART,
            f::CONNECT_LIST_NETWORKS_NO_AUTOSTART,
        ),
    })
}

// ---- lists and lookups ----

pub(crate) async fn list_all(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListAllNetworksArgs,
) -> Reply<ConnectListAllNetworksRet> {
    let nets = d.network.list(list_filter(a.flags)?);
    let ret = u32::try_from(nets.len()).unwrap_or(u32::MAX);
    let nets = if a.need_results != 0 {
        nets.iter().map(|n| wire_net(&n.name, n.uuid)).collect()
    } else {
        Vec::new()
    };
    Ok(ConnectListAllNetworksRet { nets, ret })
}

pub(crate) async fn num_of_networks(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    Ok(count(d.network.list(active(true)).len()))
}

pub(crate) async fn list_networks(d: &Daemon, _: &CallContext, a: MaxNamesArgs) -> Reply<NamesRet> {
    Ok(names(d.network.list(active(true)), a.maxnames))
}

pub(crate) async fn num_of_defined_networks(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    Ok(count(d.network.list(active(false)).len()))
}

pub(crate) async fn list_defined_networks(
    d: &Daemon,
    _: &CallContext,
    a: MaxNamesArgs,
) -> Reply<NamesRet> {
    Ok(names(d.network.list(active(false)), a.maxnames))
}

pub(crate) async fn lookup_by_name(d: &Daemon, _: &CallContext, a: NameArgs) -> Reply<NetworkRet> {
    Ok(net_ret(&d.network.lookup_by_name(&a.name).map_err(vir)?))
}

pub(crate) async fn lookup_by_uuid(d: &Daemon, _: &CallContext, a: UuidArgs) -> Reply<NetworkRet> {
    let uuid = uuid::Uuid::from_bytes(a.uuid);
    Ok(net_ret(&d.network.lookup_by_uuid(&uuid).map_err(vir)?))
}

// ---- queries ----

pub(crate) async fn get_xml_desc(
    d: &Daemon,
    _: &CallContext,
    a: NetworkFlagsArgs,
) -> Reply<XmlRet> {
    flags::check("virNetworkGetXMLDesc", a.flags, f::XML_INACTIVE)?;
    let inactive = a.flags & f::XML_INACTIVE != 0;
    Ok(XmlRet {
        xml: d.net(&a.net)?.to_xml(inactive),
    })
}

pub(crate) async fn get_bridge_name(
    d: &Daemon,
    _: &CallContext,
    a: NetworkArgs,
) -> Reply<NameArgs> {
    let net = d.net(&a.net)?;
    let name = net.bridge_name().ok_or_else(|| {
        vir(network::Error::OperationInvalid(format!(
            "network '{}' does not have a bridge name.",
            net.name()
        )))
    })?;
    Ok(NameArgs { name })
}

fn flag(b: bool) -> IntRet {
    IntRet {
        value: i32::from(b),
    }
}

pub(crate) async fn get_autostart(d: &Daemon, _: &CallContext, a: NetworkArgs) -> Reply<IntRet> {
    Ok(flag(d.net(&a.net)?.autostart()))
}

pub(crate) async fn is_active(d: &Daemon, _: &CallContext, a: NetworkArgs) -> Reply<IntRet> {
    Ok(flag(d.net(&a.net)?.is_active()))
}

pub(crate) async fn is_persistent(d: &Daemon, _: &CallContext, a: NetworkArgs) -> Reply<IntRet> {
    Ok(flag(d.net(&a.net)?.is_persistent()))
}

pub(crate) async fn get_dhcp_leases(
    d: &Daemon,
    _: &CallContext,
    a: NetworkGetDhcpLeasesArgs,
) -> Reply<NetworkGetDhcpLeasesRet> {
    flags::check("virNetworkGetDHCPLeases", a.flags, 0)?;
    let net = d.net(&a.net)?;
    let leases = d.network.dhcp_leases(&net, a.mac.as_deref()).map_err(vir)?;
    let ret = u32::try_from(leases.len()).unwrap_or(u32::MAX);
    let leases = if a.need_results != 0 {
        leases
            .into_iter()
            .map(|l| NetworkDhcpLease {
                iface: l.iface,
                expirytime: l.expirytime,
                type_: l.addr_type,
                mac: Some(l.mac),
                iaid: l.iaid,
                ipaddr: l.ipaddr,
                prefix: l.prefix,
                hostname: l.hostname,
                clientid: l.clientid,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(NetworkGetDhcpLeasesRet { leases, ret })
}

// ---- changes ----

pub(crate) async fn define_xml(d: &Daemon, _: &CallContext, a: NameArgs) -> Reply<NetworkRet> {
    Ok(net_ret(&d.network.define(&a.name).await.map_err(vir)?))
}

pub(crate) async fn define_xml_flags(
    d: &Daemon,
    _: &CallContext,
    a: XmlFlagsArgs,
) -> Reply<NetworkRet> {
    // The parser always validates strictly.
    flags::check("virNetworkDefineXMLFlags", a.flags, f::DEFINE_VALIDATE)?;
    Ok(net_ret(&d.network.define(&a.xml).await.map_err(vir)?))
}

pub(crate) async fn create_xml(d: &Daemon, _: &CallContext, a: NameArgs) -> Reply<NetworkRet> {
    Ok(net_ret(&d.network.create(&a.name).await.map_err(vir)?))
}

pub(crate) async fn create_xml_flags(
    d: &Daemon,
    _: &CallContext,
    a: XmlFlagsArgs,
) -> Reply<NetworkRet> {
    flags::check("virNetworkCreateXMLFlags", a.flags, f::CREATE_VALIDATE)?;
    Ok(net_ret(&d.network.create(&a.xml).await.map_err(vir)?))
}

pub(crate) async fn create(d: &Daemon, _: &CallContext, a: NetworkArgs) -> Reply<()> {
    let net = d.net(&a.net)?;
    d.network.start(&net).await.map_err(vir)
}

pub(crate) async fn destroy(d: &Daemon, _: &CallContext, a: NetworkArgs) -> Reply<()> {
    let net = d.net(&a.net)?;
    d.network.destroy(&net).await.map_err(vir)
}

pub(crate) async fn undefine(d: &Daemon, _: &CallContext, a: NetworkArgs) -> Reply<()> {
    let net = d.net(&a.net)?;
    d.network.undefine(&net).await.map_err(vir)
}

pub(crate) async fn set_autostart(
    d: &Daemon,
    _: &CallContext,
    a: NetworkSetAutostartArgs,
) -> Reply<()> {
    let net = d.net(&a.net)?;
    d.network
        .set_autostart(&net, a.autostart != 0)
        .await
        .map_err(vir)
}

/// `virsh net-update`: libvirt's command, section and flag numbers are
/// checked and typed by the network driver. libvirt's clients put the
/// section in the message's `command` field and the command in `section`
/// (the remote driver swaps them, and libvirtd swaps them back), so do we.
pub(crate) async fn update(d: &Daemon, _: &CallContext, a: NetworkUpdateArgs) -> Reply<()> {
    let net = d.net(&a.net)?;
    let (command, section) = (a.section, a.command);
    let u = Update {
        command: UpdateCommand::from_raw(command).map_err(vir)?,
        section: UpdateSection::from_raw(section, net.name()).map_err(vir)?,
        parent_index: a.parent_index,
        xml: &a.xml,
        flags: UpdateFlags::from_raw(a.flags).map_err(vir)?,
    };
    d.network.update(&net, &u).await.map_err(vir)
}

// ---- events ----

pub(crate) async fn event_register_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectNetworkEventRegisterAnyArgs,
) -> Reply<CallbackIdArgs> {
    if a.event_id != f::EVENT_ID_LIFECYCLE {
        return Err(invalid_arg(format!(
            "unsupported network event ID {}",
            a.event_id
        )));
    }
    let only = match &a.net {
        Some(n) => Some(d.net(n)?.uuid()),
        None => None,
    };
    let callback_id = d.relay.register(
        &ctx.events,
        Object::Network,
        a.event_id,
        only,
        Style::Callback,
    )?;
    Ok(CallbackIdArgs { callback_id })
}

pub(crate) async fn event_deregister_any(
    d: &Daemon,
    ctx: &CallContext,
    a: CallbackIdArgs,
) -> Reply<()> {
    d.relay
        .deregister(ctx.client, Object::Network, a.callback_id)
}
