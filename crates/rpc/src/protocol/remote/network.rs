//! Wire structures of the virtual network procedures.

use super::{NonnullNetwork, OBJECT_LIST_MAX};
use crate::xdr_struct;

/// `REMOTE_NETWORK_DHCP_LEASES_MAX`.
pub const NETWORK_DHCP_LEASES_MAX: usize = 65_536;

xdr_struct! {
    /// Arguments that are just a network.
    pub struct NetworkArgs {
        pub net: NonnullNetwork,
    }

    /// Arguments that are a network and flags.
    pub struct NetworkFlagsArgs {
        pub net: NonnullNetwork,
        pub flags: u32,
    }

    /// A return value that is just a network.
    pub struct NetworkRet {
        pub net: NonnullNetwork,
    }

    /// `remote_network_set_autostart_args`.
    pub struct NetworkSetAutostartArgs {
        pub net: NonnullNetwork,
        pub autostart: i32,
    }

    /// `remote_network_update_args`. libvirt's clients send the section in
    /// `command` and the command in `section` (see the daemon's handler).
    pub struct NetworkUpdateArgs {
        pub net: NonnullNetwork,
        pub command: u32,
        pub section: u32,
        pub parent_index: i32,
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_connect_list_all_networks_args`.
    pub struct ConnectListAllNetworksArgs {
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_connect_list_all_networks_ret`.
    pub struct ConnectListAllNetworksRet {
        pub nets: Vec<NonnullNetwork> [max = OBJECT_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_connect_network_event_register_any_args`.
    pub struct ConnectNetworkEventRegisterAnyArgs {
        pub event_id: i32,
        pub net: Option<NonnullNetwork>,
    }

    /// `remote_network_event_lifecycle_msg`.
    pub struct NetworkEventLifecycleMsg {
        pub callback_id: i32,
        pub net: NonnullNetwork,
        pub event: i32,
        pub detail: i32,
    }

    /// `remote_network_dhcp_lease`.
    pub struct NetworkDhcpLease {
        pub iface: String,
        pub expirytime: i64,
        pub type_: i32,
        pub mac: Option<String>,
        pub iaid: Option<String>,
        pub ipaddr: String,
        pub prefix: u32,
        pub hostname: Option<String>,
        pub clientid: Option<String>,
    }

    /// `remote_network_get_dhcp_leases_args`.
    pub struct NetworkGetDhcpLeasesArgs {
        pub net: NonnullNetwork,
        pub mac: Option<String>,
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_network_get_dhcp_leases_ret`.
    pub struct NetworkGetDhcpLeasesRet {
        pub leases: Vec<NetworkDhcpLease> [max = NETWORK_DHCP_LEASES_MAX],
        pub ret: u32,
    }
}
