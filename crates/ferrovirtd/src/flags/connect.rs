//! `virConnect*` flags and enums of `libvirt-host.h` and
//! `libvirt-domain.h`, under libvirt's names without the `VIR_CONNECT_`
//! prefix. Each group is one libvirt enum; only the values the daemon
//! reads are here. (`virDrvFeature`, which the server itself needs for
//! keepalive, is `rpc::protocol::remote::feature`.)

// virConnectListAllDomainsFlags
pub(crate) const LIST_DOMAINS_ACTIVE: u32 = 1 << 0;
pub(crate) const LIST_DOMAINS_INACTIVE: u32 = 1 << 1;
pub(crate) const LIST_DOMAINS_PERSISTENT: u32 = 1 << 2;
pub(crate) const LIST_DOMAINS_TRANSIENT: u32 = 1 << 3;
pub(crate) const LIST_DOMAINS_RUNNING: u32 = 1 << 4;
pub(crate) const LIST_DOMAINS_PAUSED: u32 = 1 << 5;
pub(crate) const LIST_DOMAINS_SHUTOFF: u32 = 1 << 6;
pub(crate) const LIST_DOMAINS_OTHER: u32 = 1 << 7;
pub(crate) const LIST_DOMAINS_MANAGEDSAVE: u32 = 1 << 8;
pub(crate) const LIST_DOMAINS_NO_MANAGEDSAVE: u32 = 1 << 9;
pub(crate) const LIST_DOMAINS_AUTOSTART: u32 = 1 << 10;
pub(crate) const LIST_DOMAINS_NO_AUTOSTART: u32 = 1 << 11;
pub(crate) const LIST_DOMAINS_HAS_SNAPSHOT: u32 = 1 << 12;
pub(crate) const LIST_DOMAINS_NO_SNAPSHOT: u32 = 1 << 13;
pub(crate) const LIST_DOMAINS_HAS_CHECKPOINT: u32 = 1 << 14;
pub(crate) const LIST_DOMAINS_NO_CHECKPOINT: u32 = 1 << 15;
