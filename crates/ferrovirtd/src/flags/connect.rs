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

// virConnectGetAllDomainStatsFlags (the list filters are the
// LIST_DOMAINS_* bits above, bits 0-7)
pub(crate) const GET_ALL_DOMAINS_STATS_FILTERS: u32 = 0xff;
pub(crate) const GET_ALL_DOMAINS_STATS_NOWAIT: u32 = 1 << 29;
pub(crate) const GET_ALL_DOMAINS_STATS_BACKING: u32 = 1 << 30;
pub(crate) const GET_ALL_DOMAINS_STATS_ENFORCE_STATS: u32 = 1 << 31;

// virConnectBaselineCPUFlags
pub(crate) const BASELINE_CPU_EXPAND_FEATURES: u32 = 1 << 0;
pub(crate) const BASELINE_CPU_MIGRATABLE: u32 = 1 << 1;

// virConnectCompareCPUFlags
pub(crate) const COMPARE_CPU_FAIL_INCOMPATIBLE: u32 = 1 << 0;
pub(crate) const COMPARE_CPU_VALIDATE_XML: u32 = 1 << 1;
