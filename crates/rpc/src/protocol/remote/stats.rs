//! Wire structures of the statistics procedures: bulk domain statistics,
//! per-device counters, CPU and memory statistics of domains and of the
//! host.

use super::{DOMAIN_LIST_MAX, NonnullDomain, TypedParam};
use crate::xdr::Opaque;
use crate::xdr_struct;

/// `REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX`: typed parameters per domain
/// in one bulk statistics record.
pub const CONNECT_GET_ALL_DOMAIN_STATS_MAX: usize = 4096;
/// `REMOTE_DOMAIN_BLOCK_STATS_PARAMETERS_MAX`.
pub const DOMAIN_BLOCK_STATS_PARAMETERS_MAX: usize = 16;
/// `REMOTE_DOMAIN_MEMORY_STATS_MAX`.
pub const DOMAIN_MEMORY_STATS_MAX: usize = 1024;
/// `REMOTE_DOMAIN_GET_CPU_STATS_MAX`.
pub const DOMAIN_GET_CPU_STATS_MAX: usize = 2048;
/// `REMOTE_DOMAIN_GET_CPU_STATS_NCPUS_MAX`.
pub const DOMAIN_GET_CPU_STATS_NCPUS_MAX: u32 = 128;
/// `REMOTE_NODE_CPU_STATS_MAX`.
pub const NODE_CPU_STATS_MAX: usize = 16;
/// `REMOTE_NODE_MEMORY_STATS_MAX`.
pub const NODE_MEMORY_STATS_MAX: usize = 16;
/// `REMOTE_NODE_MAX_CELLS`.
pub const NODE_MAX_CELLS: usize = 1024;
/// `REMOTE_VCPUINFO_MAX`.
pub const VCPUINFO_MAX: usize = 16_384;
/// `REMOTE_CPUMAPS_MAX` (bytes).
pub const CPUMAPS_MAX: usize = 8_388_608;
/// `REMOTE_CPUMAP_MAX` (bytes).
pub const CPUMAP_MAX: usize = 2048;

xdr_struct! {
    /// `remote_connect_get_all_domain_stats_args`: an empty `doms` means
    /// every domain (`virConnectGetAllDomainStats`), else exactly these
    /// (`virDomainListGetStats`).
    pub struct ConnectGetAllDomainStatsArgs {
        pub doms: Vec<NonnullDomain> [max = DOMAIN_LIST_MAX],
        pub stats: u32,
        pub flags: u32,
    }

    /// `remote_domain_stats_record`.
    pub struct DomainStatsRecord {
        pub dom: NonnullDomain,
        pub params: Vec<TypedParam> [max = CONNECT_GET_ALL_DOMAIN_STATS_MAX],
    }

    /// `remote_connect_get_all_domain_stats_ret`.
    pub struct ConnectGetAllDomainStatsRet {
        pub ret_stats: Vec<DomainStatsRecord> [max = DOMAIN_LIST_MAX],
    }

    /// `remote_domain_block_stats_args` and
    /// `remote_domain_interface_stats_args`: a domain and a device path.
    pub struct DomainPathArgs {
        pub dom: NonnullDomain,
        pub path: String,
    }

    /// `remote_domain_block_stats_ret`.
    pub struct DomainBlockStatsRet {
        pub rd_req: i64,
        pub rd_bytes: i64,
        pub wr_req: i64,
        pub wr_bytes: i64,
        pub errs: i64,
    }

    /// `remote_domain_block_stats_flags_args`.
    pub struct DomainBlockStatsFlagsArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub nparams: i32,
        pub flags: u32,
    }

    /// `remote_domain_block_stats_flags_ret`: with `nparams` 0 in the call,
    /// no parameters and their count.
    pub struct DomainBlockStatsFlagsRet {
        pub params: Vec<TypedParam> [max = DOMAIN_BLOCK_STATS_PARAMETERS_MAX],
        pub nparams: i32,
    }

    /// `remote_domain_interface_stats_ret`.
    pub struct DomainInterfaceStatsRet {
        pub rx_bytes: i64,
        pub rx_packets: i64,
        pub rx_errs: i64,
        pub rx_drop: i64,
        pub tx_bytes: i64,
        pub tx_packets: i64,
        pub tx_errs: i64,
        pub tx_drop: i64,
    }

    /// `remote_domain_memory_stats_args`.
    pub struct DomainMemoryStatsArgs {
        pub dom: NonnullDomain,
        pub max_stats: u32,
        pub flags: u32,
    }

    /// `remote_domain_memory_stat`: a `virDomainMemoryStatTags` tag and
    /// its value.
    pub struct DomainMemoryStat {
        pub tag: i32,
        pub val: u64,
    }

    /// `remote_domain_memory_stats_ret`.
    pub struct DomainMemoryStatsRet {
        pub stats: Vec<DomainMemoryStat> [max = DOMAIN_MEMORY_STATS_MAX],
    }

    /// `remote_domain_set_memory_stats_period_args`.
    pub struct DomainSetMemoryStatsPeriodArgs {
        pub dom: NonnullDomain,
        pub period: i32,
        pub flags: u32,
    }

    /// `remote_domain_get_cpu_stats_args`.
    pub struct DomainGetCpuStatsArgs {
        pub dom: NonnullDomain,
        pub nparams: u32,
        pub start_cpu: i32,
        pub ncpus: u32,
        pub flags: u32,
    }

    /// `remote_domain_get_cpu_stats_ret`.
    pub struct DomainGetCpuStatsRet {
        pub params: Vec<TypedParam> [max = DOMAIN_GET_CPU_STATS_MAX],
        pub nparams: i32,
    }

    /// `remote_domain_get_block_info_args`.
    pub struct DomainGetBlockInfoArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub flags: u32,
    }

    /// `remote_domain_get_block_info_ret`.
    pub struct DomainGetBlockInfoRet {
        pub allocation: u64,
        pub capacity: u64,
        pub physical: u64,
    }

    /// `remote_domain_get_vcpus_args`.
    pub struct DomainGetVcpusArgs {
        pub dom: NonnullDomain,
        pub maxinfo: i32,
        pub maplen: i32,
    }

    /// `remote_vcpu_info`.
    pub struct VcpuInfo {
        pub number: u32,
        pub state: i32,
        pub cpu_time: u64,
        pub cpu: i32,
    }

    /// `remote_domain_get_vcpus_ret`: `cpumaps` is `maxinfo` maps of
    /// `maplen` bytes each.
    pub struct DomainGetVcpusRet {
        pub info: Vec<VcpuInfo> [max = VCPUINFO_MAX],
        pub cpumaps: Opaque [max = CPUMAPS_MAX],
    }

    /// `remote_node_get_cpu_map_args`.
    pub struct NodeGetCpuMapArgs {
        pub need_map: i32,
        pub need_online: i32,
        pub flags: u32,
    }

    /// `remote_node_get_cpu_map_ret`.
    pub struct NodeGetCpuMapRet {
        pub cpumap: Opaque [max = CPUMAP_MAX],
        pub online: u32,
        pub ret: i32,
    }

    /// `remote_node_get_free_memory_ret`.
    pub struct NodeGetFreeMemoryRet {
        pub free_mem: u64,
    }

    /// `remote_node_get_cells_free_memory_args`.
    pub struct NodeGetCellsFreeMemoryArgs {
        pub start_cell: i32,
        pub maxcells: i32,
    }

    /// `remote_node_get_cells_free_memory_ret`.
    pub struct NodeGetCellsFreeMemoryRet {
        pub cells: Vec<u64> [max = NODE_MAX_CELLS],
    }

    /// `remote_node_get_cpu_stats` and `remote_node_get_memory_stats`: a
    /// field name and its value.
    pub struct NodeStat {
        pub field: String,
        pub value: u64,
    }

    /// `remote_node_get_cpu_stats_args`.
    pub struct NodeGetCpuStatsArgs {
        pub cpu_num: i32,
        pub nparams: i32,
        pub flags: u32,
    }

    /// `remote_node_get_cpu_stats_ret`.
    pub struct NodeGetCpuStatsRet {
        pub params: Vec<NodeStat> [max = NODE_CPU_STATS_MAX],
        pub nparams: i32,
    }

    /// `remote_node_get_memory_stats_args`.
    pub struct NodeGetMemoryStatsArgs {
        pub nparams: i32,
        pub cell_num: i32,
        pub flags: u32,
    }

    /// `remote_node_get_memory_stats_ret`.
    pub struct NodeGetMemoryStatsRet {
        pub params: Vec<NodeStat> [max = NODE_MEMORY_STATS_MAX],
        pub nparams: i32,
    }
}

/// `REMOTE_DOMAIN_INTERFACE_MAX`: interfaces in one `domifaddr` answer.
pub const DOMAIN_INTERFACE_MAX: usize = 2048;
/// `REMOTE_DOMAIN_IP_ADDR_MAX`: addresses of one interface.
pub const DOMAIN_IP_ADDR_MAX: usize = 2048;

xdr_struct! {
    /// `remote_domain_interface_addresses_args`.
    pub struct DomainInterfaceAddressesArgs {
        pub dom: NonnullDomain,
        pub source: u32,
        pub flags: u32,
    }

    /// `remote_domain_ip_addr`.
    pub struct DomainIpAddr {
        pub type_: i32,
        pub addr: String,
        pub prefix: u32,
    }

    /// `remote_domain_interface`.
    pub struct DomainInterface {
        pub name: String,
        pub hwaddr: Option<String>,
        pub addrs: Vec<DomainIpAddr> [max = DOMAIN_IP_ADDR_MAX],
    }

    /// `remote_domain_interface_addresses_ret`.
    pub struct DomainInterfaceAddressesRet {
        pub ifaces: Vec<DomainInterface> [max = DOMAIN_INTERFACE_MAX],
    }
}

/// `REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX`.
pub const DOMAIN_INTERFACE_PARAMETERS_MAX: usize = 16;

xdr_struct! {
    /// `remote_domain_set_interface_parameters_args`.
    pub struct DomainSetInterfaceParametersArgs {
        pub dom: NonnullDomain,
        pub device: String,
        pub params: Vec<TypedParam> [max = DOMAIN_INTERFACE_PARAMETERS_MAX],
        pub flags: u32,
    }

    /// `remote_domain_get_interface_parameters_args`.
    pub struct DomainGetInterfaceParametersArgs {
        pub dom: NonnullDomain,
        pub device: String,
        pub nparams: i32,
        pub flags: u32,
    }

    /// `remote_domain_get_interface_parameters_ret`.
    pub struct DomainGetInterfaceParametersRet {
        pub params: Vec<TypedParam> [max = DOMAIN_INTERFACE_PARAMETERS_MAX],
        pub nparams: i32,
    }

    /// `remote_domain_pin_vcpu_flags_args`: `cpumap` has a bit per host
    /// CPU, lowest CPU in the lowest bit of the first byte.
    pub struct DomainPinVcpuFlagsArgs {
        pub dom: NonnullDomain,
        pub vcpu: u32,
        pub cpumap: Opaque [max = CPUMAP_MAX],
        pub flags: u32,
    }

    /// `remote_domain_get_vcpu_pin_info_args`.
    pub struct DomainGetVcpuPinInfoArgs {
        pub dom: NonnullDomain,
        pub ncpumaps: i32,
        pub maplen: i32,
        pub flags: u32,
    }

    /// `remote_domain_get_vcpu_pin_info_ret`: `ncpumaps` maps of `maplen`
    /// bytes; `num` of them describe vCPUs.
    pub struct DomainGetVcpuPinInfoRet {
        pub cpumaps: Opaque [max = CPUMAPS_MAX],
        pub num: i32,
    }

    /// `remote_domain_pin_emulator_args`.
    pub struct DomainPinEmulatorArgs {
        pub dom: NonnullDomain,
        pub cpumap: Opaque [max = CPUMAP_MAX],
        pub flags: u32,
    }

    /// `remote_domain_get_emulator_pin_info_args`.
    pub struct DomainGetEmulatorPinInfoArgs {
        pub dom: NonnullDomain,
        pub maplen: i32,
        pub flags: u32,
    }

    /// `remote_domain_get_emulator_pin_info_ret`: one map of `maplen`
    /// bytes; `ret` is 1.
    pub struct DomainGetEmulatorPinInfoRet {
        pub cpumaps: Opaque [max = CPUMAPS_MAX],
        pub ret: i32,
    }
}
