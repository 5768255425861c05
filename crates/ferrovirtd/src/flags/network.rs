//! `virNetwork*` flags and enums of `libvirt-network.h`, under libvirt's
//! names without the `VIR_NETWORK_` prefix (`VIR_NETWORK_XML_INACTIVE`
//! becomes `XML_INACTIVE`; the list filters keep `CONNECT_`). Only the
//! values the daemon reads.

// virNetworkXMLFlags
pub(crate) const XML_INACTIVE: u32 = 1 << 0;

// virNetworkDefineFlags / virNetworkCreateFlags
pub(crate) const DEFINE_VALIDATE: u32 = 1 << 0;
pub(crate) const CREATE_VALIDATE: u32 = 1 << 0;

// virConnectListAllNetworksFlags (`VIR_CONNECT_LIST_NETWORKS_*`)
pub(crate) const CONNECT_LIST_NETWORKS_INACTIVE: u32 = 1 << 0;
pub(crate) const CONNECT_LIST_NETWORKS_ACTIVE: u32 = 1 << 1;
pub(crate) const CONNECT_LIST_NETWORKS_PERSISTENT: u32 = 1 << 2;
pub(crate) const CONNECT_LIST_NETWORKS_TRANSIENT: u32 = 1 << 3;
pub(crate) const CONNECT_LIST_NETWORKS_AUTOSTART: u32 = 1 << 4;
pub(crate) const CONNECT_LIST_NETWORKS_NO_AUTOSTART: u32 = 1 << 5;

// virNetworkEventID
pub(crate) const EVENT_ID_LIFECYCLE: i32 = 0;
