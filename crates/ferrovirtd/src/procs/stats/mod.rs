//! Statistics procedures of domains: bulk statistics ([`bulk`]) and the
//! per-device calls (`domblkstat`, `domifstat`, `dommemstat`, `cpu-stats`,
//! `domblkinfo`, `vcpuinfo`). Figures QEMU knows come from the driver's
//! statistics cache (at most one poller interval plus one round old, see
//! `qemu::StatsConfig::max_age`); figures the host knows (CPU times, image
//! file sizes) are read when asked. No call takes a job or waits on a
//! monitor, except setting the balloon's period, which is a change.

pub(crate) mod bulk;
mod image;
mod params;

use qemu::{Block, DomainStats, Sample};
use rpc::CallContext;
use rpc::protocol::remote::{
    CPUMAPS_MAX, DOMAIN_GET_CPU_STATS_MAX, DOMAIN_GET_CPU_STATS_NCPUS_MAX, DOMAIN_MEMORY_STATS_MAX,
    DomainBlockStatsFlagsArgs, DomainBlockStatsFlagsRet, DomainBlockStatsRet,
    DomainGetBlockInfoArgs, DomainGetBlockInfoRet, DomainGetCpuStatsArgs, DomainGetCpuStatsRet,
    DomainGetVcpusArgs, DomainGetVcpusRet, DomainInterfaceStatsRet, DomainMemoryStat,
    DomainMemoryStatsArgs, DomainMemoryStatsRet, DomainPathArgs, DomainSetMemoryStatsPeriodArgs,
    VCPUINFO_MAX, VcpuInfo,
};
use rpc::xdr::Opaque;
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{invalid_arg, vir};
use params::Params;

pub(crate) use bulk::get_all_domain_stats;

fn not_running() -> VirError {
    VirError::new(
        ErrorCode::OperationInvalid,
        ErrorDomain::Qemu,
        "Requested operation is not valid: domain is not running",
    )
}

/// The sample of a running domain, or the error a client sees: not
/// running, or no round has answered yet in this run.
fn sample(s: &DomainStats) -> Result<&Sample, VirError> {
    if !s.active {
        return Err(not_running());
    }
    s.sample.as_deref().ok_or_else(|| {
        let why = s.freshness.reason.as_deref().unwrap_or("no statistics yet");
        VirError::new(
            ErrorCode::OperationFailed,
            ErrorDomain::Qemu,
            format!("operation failed: statistics not available: {why}"),
        )
    })
}

/// The disk `path` names (its target or its source), as libvirt looks
/// disks up.
fn disk_target(s: &DomainStats, path: &str) -> Result<String, VirError> {
    s.disks
        .iter()
        .find(|d| d.target == path || d.source.as_deref() == Some(std::path::Path::new(path)))
        .map(|d| d.target.clone())
        .ok_or_else(|| {
            invalid_arg(format!(
                "invalid argument: disk '{path}' not found in domain"
            ))
        })
}

/// The top block entry of disk `target`, or every disk's top for "".
fn tops<'a>(sample: &'a Sample, s: &DomainStats, path: &str) -> Result<Vec<&'a Block>, VirError> {
    let target = (!path.is_empty())
        .then(|| disk_target(s, path))
        .transpose()?;
    Ok(sample
        .blocks
        .iter()
        .filter(|b| b.backing_index == 0 && target.as_ref().is_none_or(|t| *t == b.target))
        .collect())
}

fn sum(blocks: &[&Block], f: impl Fn(&Block) -> Option<u64>) -> i64 {
    let total = blocks
        .iter()
        .filter_map(|b| f(b))
        .fold(0u64, u64::saturating_add);
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// `virsh domblkstat DOM DISK` (legacy form). An empty path sums every
/// disk, as libvirt does; `errs` is not known to QEMU (-1).
pub(crate) async fn block_stats(
    d: &Daemon,
    _: &CallContext,
    a: DomainPathArgs,
) -> Reply<DomainBlockStatsRet> {
    let s = d.driver.stats(&*d.domain(&a.dom)?);
    let b = tops(sample(&s)?, &s, &a.path)?;
    Ok(DomainBlockStatsRet {
        rd_req: sum(&b, |b| b.counters.rd_reqs),
        rd_bytes: sum(&b, |b| b.counters.rd_bytes),
        wr_req: sum(&b, |b| b.counters.wr_reqs),
        wr_bytes: sum(&b, |b| b.counters.wr_bytes),
        errs: -1,
    })
}

/// `virsh domblkstat` with typed parameters, in libvirt's order.
pub(crate) async fn block_stats_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainBlockStatsFlagsArgs,
) -> Reply<DomainBlockStatsFlagsRet> {
    flags::check(
        "virDomainBlockStatsFlags",
        a.flags,
        f::TYPED_PARAM_STRING_OKAY,
    )?;
    let nparams = usize::try_from(a.nparams)
        .map_err(|_| invalid_arg("invalid argument: nparams must not be negative"))?;
    let s = d.driver.stats(&*d.domain(&a.dom)?);
    let b = tops(sample(&s)?, &s, &a.path)?;
    let mut p = Params::default();
    p.llong("wr_bytes", sum(&b, |b| b.counters.wr_bytes));
    p.llong("wr_operations", sum(&b, |b| b.counters.wr_reqs));
    p.llong("rd_bytes", sum(&b, |b| b.counters.rd_bytes));
    p.llong("rd_operations", sum(&b, |b| b.counters.rd_reqs));
    p.llong("flush_operations", sum(&b, |b| b.counters.fl_reqs));
    p.llong("wr_total_times", sum(&b, |b| b.counters.wr_times_ns));
    p.llong("rd_total_times", sum(&b, |b| b.counters.rd_times_ns));
    p.llong("flush_total_times", sum(&b, |b| b.counters.fl_times_ns));
    Ok(limited(p, nparams))
}

/// With `nparams` 0 the client asks how many there are (libvirt's
/// two-call convention); otherwise it gets at most `nparams`.
fn limited(mut p: Params, nparams: usize) -> DomainBlockStatsFlagsRet {
    let total = i32::try_from(p.len()).unwrap_or(i32::MAX);
    if nparams == 0 {
        return DomainBlockStatsFlagsRet {
            params: Vec::new(),
            nparams: total,
        };
    }
    p.0.truncate(nparams);
    DomainBlockStatsFlagsRet {
        nparams: i32::try_from(p.len()).unwrap_or(i32::MAX),
        params: p.0,
    }
}

/// `virsh domifstat DOM IFACE`: a NIC named by its tap or MAC address,
/// counted on its tap from the guest's side. A user-mode NIC has no host
/// device to count on and is refused as unsupported; an unknown one is an
/// invalid path.
pub(crate) async fn interface_stats(
    d: &Daemon,
    _: &CallContext,
    a: DomainPathArgs,
) -> Reply<DomainInterfaceStatsRet> {
    let dom = d.domain(&a.dom)?;
    let nics = d.driver.live_nics(&dom).map_err(|_| not_running())?;
    let Some(nic) = nics.iter().find(|n| n.is_named(&a.path)) else {
        return Err(invalid_arg(format!(
            "invalid argument: '{}' is not a known interface",
            a.path
        )));
    };
    if let Some(tap) = &nic.tap {
        let c = d.network.tap_stats(tap).map_err(vir)?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        return Ok(DomainInterfaceStatsRet {
            rx_bytes: n(c.rx_bytes),
            rx_packets: n(c.rx_packets),
            rx_errs: n(c.rx_errs),
            rx_drop: n(c.rx_drop),
            tx_bytes: n(c.tx_bytes),
            tx_packets: n(c.tx_packets),
            tx_errs: n(c.tx_errs),
            tx_drop: n(c.tx_drop),
        });
    }
    Err(VirError::new(
        ErrorCode::OperationUnsupported,
        ErrorDomain::Qemu,
        format!(
            "Operation not supported: interface '{}' is user-mode networking, which has no host device to count traffic on",
            a.path
        ),
    ))
}

/// `virsh dommemstat`: the guest's statistics (when its balloon driver
/// reports them), the balloon's size and QEMU's resident memory, in
/// `virDomainMemoryStatTags` order, at most `max_stats`.
pub(crate) async fn memory_stats(
    d: &Daemon,
    _: &CallContext,
    a: DomainMemoryStatsArgs,
) -> Reply<DomainMemoryStatsRet> {
    flags::check("virDomainMemoryStats", a.flags, 0)?;
    if a.max_stats as usize > DOMAIN_MEMORY_STATS_MAX {
        return Err(invalid_arg(
            "invalid argument: maxStats > REMOTE_DOMAIN_MEMORY_STATS_MAX",
        ));
    }
    let s = d.driver.stats(&*d.domain(&a.dom)?);
    let sample = sample(&s)?;
    let mut stats = Vec::new();
    let mut put = |tag: i32, v: Option<u64>| {
        if let Some(val) = v {
            stats.push(DomainMemoryStat { tag, val });
        }
    };
    let balloon = sample.balloon.as_ref();
    if let Some(g) = balloon.and_then(|b| b.guest.as_ref()) {
        put(f::MEMORY_STAT_SWAP_IN, g.swap_in_kib);
        put(f::MEMORY_STAT_SWAP_OUT, g.swap_out_kib);
        put(f::MEMORY_STAT_MAJOR_FAULT, g.major_faults);
        put(f::MEMORY_STAT_MINOR_FAULT, g.minor_faults);
        put(f::MEMORY_STAT_UNUSED, g.unused_kib);
        put(f::MEMORY_STAT_AVAILABLE, g.available_kib);
        put(f::MEMORY_STAT_USABLE, g.usable_kib);
        put(f::MEMORY_STAT_LAST_UPDATE, g.last_update);
        put(f::MEMORY_STAT_DISK_CACHES, g.disk_caches_kib);
        put(f::MEMORY_STAT_HUGETLB_PGALLOC, g.hugetlb_pgalloc);
        put(f::MEMORY_STAT_HUGETLB_PGFAIL, g.hugetlb_pgfail);
    }
    put(
        f::MEMORY_STAT_ACTUAL_BALLOON,
        Some(balloon.map_or(s.cur_mem_kib, |b| b.current_kib)),
    );
    put(f::MEMORY_STAT_RSS, sample.rss_kib);
    stats.truncate(a.max_stats as usize);
    Ok(DomainMemoryStatsRet { stats })
}

/// `virsh dommemstat --period N [--live]`: only the running guest's
/// period is kept (no persistent `<stats period>` in the definition).
pub(crate) async fn set_memory_stats_period(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainSetMemoryStatsPeriodArgs,
) -> Reply<()> {
    flags::check(
        "virDomainSetMemoryStatsPeriod",
        a.flags,
        f::AFFECT_LIVE | f::AFFECT_CONFIG,
    )?;
    let period = u32::try_from(a.period)
        .map_err(|_| invalid_arg("invalid argument: period must be a positive number"))?;
    let dom = d.domain(&a.dom)?;
    let live = a.flags & f::AFFECT_LIVE != 0 || (a.flags == 0 && dom.is_active());
    if a.flags & f::AFFECT_CONFIG != 0 || !live {
        return Err(VirError::new(
            ErrorCode::ArgumentUnsupported,
            ErrorDomain::Qemu,
            "argument unsupported: the memory statistics period can be set on a running domain only",
        ));
    }
    let owner = format!("remote DOMAIN_SET_MEMORY_STATS_PERIOD from {}", ctx.client);
    d.driver
        .set_memory_stats_period(&dom, period, &owner)
        .await
        .map_err(vir)
}

/// `virsh cpu-stats --total`: the QEMU process's CPU time, user and
/// system time (read when asked). Per-CPU figures need per-CPU accounting
/// (cgroup v1 cpuacct), which the daemon does not keep: refused, as
/// libvirt refuses them on a cgroup v2 host.
pub(crate) async fn get_cpu_stats(
    d: &Daemon,
    _: &CallContext,
    a: DomainGetCpuStatsArgs,
) -> Reply<DomainGetCpuStatsRet> {
    flags::check("virDomainGetCPUStats", a.flags, f::TYPED_PARAM_STRING_OKAY)?;
    if a.ncpus > DOMAIN_GET_CPU_STATS_NCPUS_MAX
        || (a.nparams as usize).saturating_mul(a.ncpus as usize) > DOMAIN_GET_CPU_STATS_MAX
    {
        return Err(invalid_arg(
            "invalid argument: nparams * ncpus is too large",
        ));
    }
    let dom = d.domain(&a.dom)?;
    if a.start_cpu != -1 {
        if a.nparams == 0 && a.ncpus == 0 {
            // How many host CPUs there are (virsh asks before per-CPU).
            let (_, _, total) = crate::host::stats::cpu_map();
            return Ok(DomainGetCpuStatsRet {
                params: Vec::new(),
                nparams: i32::try_from(total).unwrap_or(i32::MAX),
            });
        }
        return Err(VirError::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Qemu,
            "Requested operation is not valid: per-CPU statistics need per-CPU CPU accounting, which is not kept",
        ));
    }
    if a.ncpus != 1 {
        return Err(invalid_arg(
            "invalid argument: ncpus must be 1 for the total",
        ));
    }
    let Some(t) = d.driver.cpu_times(&dom) else {
        return Err(not_running());
    };
    let mut p = Params::default();
    p.ullong("cpu_time", t.total_ns);
    p.ullong("user_time", t.user_ns);
    p.ullong("system_time", t.system_ns);
    let total = i32::try_from(p.len()).unwrap_or(i32::MAX);
    if a.nparams == 0 {
        return Ok(DomainGetCpuStatsRet {
            params: Vec::new(),
            nparams: total,
        });
    }
    p.0.truncate(a.nparams as usize);
    Ok(DomainGetCpuStatsRet {
        nparams: i32::try_from(p.len()).unwrap_or(i32::MAX),
        params: p.0,
    })
}

/// `virsh domblkinfo DOM DISK`: the guest size from QEMU while running
/// (else from the image), the bytes the image occupies and its file size
/// from the host.
pub(crate) async fn get_block_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainGetBlockInfoArgs,
) -> Reply<DomainGetBlockInfoRet> {
    flags::check("virDomainGetBlockInfo", a.flags, 0)?;
    let s = d.driver.stats(&*d.domain(&a.dom)?);
    let target = disk_target(&s, &a.path)?;
    let Some(disk) = s.disks.iter().find(|x| x.target == target) else {
        return Err(invalid_arg(format!(
            "invalid argument: disk '{}' not found in domain",
            a.path
        )));
    };
    let Some(sizes) = image::sizes(disk) else {
        return Err(VirError::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Qemu,
            format!("Requested operation is not valid: disk '{target}' has no readable source"),
        ));
    };
    let live_capacity = s
        .sample
        .as_deref()
        .and_then(|x| {
            x.blocks
                .iter()
                .find(|b| b.target == target && b.backing_index == 0)
        })
        .and_then(|b| b.capacity);
    Ok(DomainGetBlockInfoRet {
        allocation: sizes.allocation,
        capacity: live_capacity.unwrap_or(sizes.capacity),
        physical: sizes.physical,
    })
}

/// `virsh vcpuinfo`: each vCPU's state, CPU time and last host CPU (from
/// the cache) and the host CPUs its thread may run on (read when asked).
pub(crate) async fn get_vcpus(
    d: &Daemon,
    _: &CallContext,
    a: DomainGetVcpusArgs,
) -> Reply<DomainGetVcpusRet> {
    let (maxinfo, maplen) = match (usize::try_from(a.maxinfo), usize::try_from(a.maplen)) {
        (Ok(i), Ok(m)) if i <= VCPUINFO_MAX && i.saturating_mul(m) <= CPUMAPS_MAX => (i, m),
        _ => {
            return Err(invalid_arg(
                "invalid argument: maxinfo or maplen out of range",
            ));
        }
    };
    let s = d.driver.stats(&*d.domain(&a.dom)?);
    let sample = sample(&s)?;
    let mut cpumaps = Vec::with_capacity(maxinfo * maplen);
    let info = sample
        .vcpus
        .iter()
        .take(maxinfo)
        .map(|v| {
            cpumaps.extend(qemu::process::affinity_map(v.thread_id, maplen));
            VcpuInfo {
                number: v.index,
                state: f::VCPU_RUNNING,
                cpu_time: v.time_ns.unwrap_or(0),
                cpu: v.host_cpu.unwrap_or(-1),
            }
        })
        .collect();
    cpumaps.resize(maxinfo * maplen, 0);
    Ok(DomainGetVcpusRet {
        info,
        cpumaps: Opaque(cpumaps),
    })
}
