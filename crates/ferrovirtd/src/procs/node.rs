//! The host's CPU and memory statistics (`virsh nodecpustats`,
//! `nodememstats`, `freecell`, `nodecpumap`), read from `/proc` and `/sys`
//! when asked.

use rpc::CallContext;
use rpc::protocol::remote::{
    NODE_CPU_STATS_MAX, NODE_MAX_CELLS, NODE_MEMORY_STATS_MAX, NodeGetCellsFreeMemoryArgs,
    NodeGetCellsFreeMemoryRet, NodeGetCpuMapArgs, NodeGetCpuMapRet, NodeGetCpuStatsArgs,
    NodeGetCpuStatsRet, NodeGetFreeMemoryRet, NodeGetMemoryStatsArgs, NodeGetMemoryStatsRet,
    NodeStat,
};
use rpc::xdr::Opaque;
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, node as n};
use crate::host::stats as host;
use crate::wire::invalid_arg;

fn unreadable(what: &str) -> VirError {
    VirError::new(
        ErrorCode::InternalError,
        ErrorDomain::None,
        format!("internal error: cannot read {what}"),
    )
}

/// libvirt's two-call convention: with `nparams` 0 only the count.
fn stats_reply(v: Vec<(&'static str, u64)>, nparams: i32, max: usize) -> (Vec<NodeStat>, i32) {
    let total = i32::try_from(v.len()).unwrap_or(i32::MAX);
    if nparams == 0 {
        return (Vec::new(), total);
    }
    let keep = usize::try_from(nparams).unwrap_or(0).min(max);
    let params: Vec<NodeStat> = v
        .into_iter()
        .take(keep)
        .map(|(field, value)| NodeStat {
            field: field.to_owned(),
            value,
        })
        .collect();
    let n = i32::try_from(params.len()).unwrap_or(i32::MAX);
    (params, n)
}

pub(crate) async fn get_cpu_stats(
    _: &Daemon,
    _: &CallContext,
    a: NodeGetCpuStatsArgs,
) -> Reply<NodeGetCpuStatsRet> {
    flags::check("virNodeGetCPUStats", a.flags, 0)?;
    if a.nparams < 0 {
        return Err(invalid_arg(
            "invalid argument: nparams must not be negative",
        ));
    }
    let cpu = match a.cpu_num {
        n::CPU_STATS_ALL_CPUS => None,
        c => Some(
            u32::try_from(c)
                .map_err(|_| invalid_arg(format!("invalid argument: Invalid cpuNum {c}")))?,
        ),
    };
    let v = host::cpu_stats(cpu)
        .ok_or_else(|| invalid_arg(format!("invalid argument: Invalid cpuNum {}", a.cpu_num)))?;
    let (params, nparams) = stats_reply(v, a.nparams, NODE_CPU_STATS_MAX);
    Ok(NodeGetCpuStatsRet { params, nparams })
}

pub(crate) async fn get_memory_stats(
    _: &Daemon,
    _: &CallContext,
    a: NodeGetMemoryStatsArgs,
) -> Reply<NodeGetMemoryStatsRet> {
    flags::check("virNodeGetMemoryStats", a.flags, 0)?;
    if a.nparams < 0 {
        return Err(invalid_arg(
            "invalid argument: nparams must not be negative",
        ));
    }
    let cell = match a.cell_num {
        n::MEMORY_STATS_ALL_CELLS => None,
        c => Some(
            u32::try_from(c)
                .map_err(|_| invalid_arg(format!("invalid argument: Invalid cell number {c}")))?,
        ),
    };
    let v = host::memory_stats(cell).ok_or_else(|| {
        invalid_arg(format!(
            "invalid argument: Invalid cell number {}",
            a.cell_num
        ))
    })?;
    let (params, nparams) = stats_reply(v, a.nparams, NODE_MEMORY_STATS_MAX);
    Ok(NodeGetMemoryStatsRet { params, nparams })
}

pub(crate) async fn get_free_memory(
    _: &Daemon,
    _: &CallContext,
    _: (),
) -> Reply<NodeGetFreeMemoryRet> {
    let free_mem = host::free_memory_bytes().ok_or_else(|| unreadable("/proc/meminfo"))?;
    Ok(NodeGetFreeMemoryRet { free_mem })
}

/// Free memory of `maxcells` NUMA cells from `start_cell`.
pub(crate) async fn get_cells_free_memory(
    _: &Daemon,
    _: &CallContext,
    a: NodeGetCellsFreeMemoryArgs,
) -> Reply<NodeGetCellsFreeMemoryRet> {
    let cells = host::cell_count();
    let start = u32::try_from(a.start_cell)
        .ok()
        .filter(|s| *s < cells)
        .ok_or_else(|| {
            invalid_arg(format!(
                "invalid argument: start cell {} out of range (0-{})",
                a.start_cell,
                cells - 1
            ))
        })?;
    let max = usize::try_from(a.maxcells)
        .ok()
        .filter(|m| *m <= NODE_MAX_CELLS)
        .ok_or_else(|| invalid_arg("invalid argument: maxcells > REMOTE_NODE_MAX_CELLS"))?;
    let cells = (start..cells)
        .take(max)
        .map(|c| host::cell_free_bytes(c).unwrap_or(0))
        .collect();
    Ok(NodeGetCellsFreeMemoryRet { cells })
}

pub(crate) async fn get_cpu_map(
    _: &Daemon,
    _: &CallContext,
    a: NodeGetCpuMapArgs,
) -> Reply<NodeGetCpuMapRet> {
    flags::check("virNodeGetCPUMap", a.flags, 0)?;
    let (map, online, total) = host::cpu_map();
    Ok(NodeGetCpuMapRet {
        cpumap: Opaque(if a.need_map != 0 { map } else { Vec::new() }),
        online: if a.need_online != 0 { online } else { 0 },
        ret: i32::try_from(total).unwrap_or(i32::MAX),
    })
}
