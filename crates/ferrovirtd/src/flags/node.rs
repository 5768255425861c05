//! `virNode*` flags and enums of `libvirt-host.h`, under libvirt's names
//! without the `VIR_NODE_` prefix.

/// `VIR_NODE_CPU_STATS_ALL_CPUS`: the whole host in `virNodeGetCPUStats`.
pub(crate) const CPU_STATS_ALL_CPUS: i32 = -1;
/// `VIR_NODE_MEMORY_STATS_ALL_CELLS`: the whole host in
/// `virNodeGetMemoryStats`.
pub(crate) const MEMORY_STATS_ALL_CELLS: i32 = -1;
