//! One sample of a running domain's statistics: what one poller round
//! learned from QEMU and from `/proc`, already mapped onto the domain's
//! definition (disks by target, vCPUs by index).
//!
//! Memory per sample is bounded by the definition, never by what QEMU
//! sends: block entries are kept only for the definition's disks (and at
//! most [`MAX_BACKING`] backing images each), vCPUs only up to the
//! definition's count, I/O threads up to [`MAX_IOTHREADS`].

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use qmp::commands::{
    BalloonGuestStats, BlockStatsEntry, CpuInfoFast, IothreadInfo, NamedBlockNode,
};

use super::procfs;
use crate::nics::TapRecord;
use crate::object::def::{Def, DiskInfo};

/// Backing images reported per disk (deeper ones are left out).
pub const MAX_BACKING: usize = 32;
/// I/O threads reported per domain.
pub const MAX_IOTHREADS: usize = 64;

/// One sample of a running domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the round that produced it ended.
    pub taken: Instant,
    pub taken_wall: SystemTime,
    pub cpu: Option<CpuTimes>,
    /// QEMU's resident memory, KiB.
    pub rss_kib: Option<u64>,
    pub balloon: Option<Balloon>,
    pub vcpus: Vec<Vcpu>,
    /// Per disk in definition order, each followed by its backing images.
    pub blocks: Vec<Block>,
    pub iothreads: Vec<Iothread>,
    /// Per NIC in definition order.
    pub nets: Vec<Net>,
}

/// One NIC: its host tap and the tap's counters from the guest's side
/// (`None` for user-mode networking, which has no host device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub tap: Option<String>,
    pub counters: Option<network::InterfaceStats>,
}

/// CPU time of the QEMU process, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub total_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
}

/// The balloon: what the guest has, and its own memory statistics when it
/// reports them (a polling period is set and the guest driver answers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Balloon {
    pub current_kib: u64,
    pub guest: Option<GuestMemory>,
}

/// The guest's memory statistics (KiB, or counts for faults and huge
/// pages), as libvirt reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestMemory {
    pub swap_in_kib: Option<u64>,
    pub swap_out_kib: Option<u64>,
    pub major_faults: Option<u64>,
    pub minor_faults: Option<u64>,
    pub unused_kib: Option<u64>,
    pub available_kib: Option<u64>,
    pub usable_kib: Option<u64>,
    pub disk_caches_kib: Option<u64>,
    pub hugetlb_pgalloc: Option<u64>,
    pub hugetlb_pgfail: Option<u64>,
    /// Seconds since the epoch of the guest's last report.
    pub last_update: Option<u64>,
}

/// One vCPU and its host thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vcpu {
    pub index: u32,
    pub thread_id: u64,
    /// CPU time of the thread, ns.
    pub time_ns: Option<u64>,
    /// Time runnable but waiting for a host CPU, ns.
    pub wait_ns: Option<u64>,
    /// The host CPU it last ran on.
    pub host_cpu: Option<i32>,
}

/// One block node of a disk: the disk's top (`backing_index` 0) or one of
/// its backing images.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    /// The disk's target (`vda`).
    pub target: String,
    pub backing_index: u32,
    pub path: Option<String>,
    pub counters: BlockCounters,
    /// Highest offset written (QEMU's `wr_highest_offset`).
    pub allocation: Option<u64>,
    /// Size the guest sees.
    pub capacity: Option<u64>,
    /// Bytes the image occupies on the host.
    pub physical: Option<u64>,
}

/// I/O counters of a block node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockCounters {
    pub rd_reqs: Option<u64>,
    pub rd_bytes: Option<u64>,
    pub rd_times_ns: Option<u64>,
    pub wr_reqs: Option<u64>,
    pub wr_bytes: Option<u64>,
    pub wr_times_ns: Option<u64>,
    pub fl_reqs: Option<u64>,
    pub fl_times_ns: Option<u64>,
    /// Failed requests of any kind.
    pub errors: Option<u64>,
}

/// An I/O thread's polling parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iothread {
    pub id: u32,
    pub poll_max_ns: Option<u64>,
    pub poll_grow: Option<u64>,
    pub poll_shrink: Option<u64>,
}

/// What a round's QMP queries returned (each may have failed on its own).
#[derive(Debug, Default)]
pub(crate) struct Replies {
    pub(crate) blockstats: Vec<BlockStatsEntry>,
    pub(crate) nodes: Vec<NamedBlockNode>,
    pub(crate) balloon_bytes: Option<u64>,
    pub(crate) guest: Option<BalloonGuestStats>,
    pub(crate) cpus: Vec<CpuInfoFast>,
    pub(crate) iothreads: Vec<IothreadInfo>,
}

/// Builds a sample from a round's replies and `/proc`.
pub(crate) fn build(def: &Def, pivoted: &[(String, String)], pid: i32, r: Replies) -> Sample {
    let cpu = procfs::process_times(pid).map(|t| CpuTimes {
        total_ns: procfs::process_cpu_ns(pid).unwrap_or(t.user_ns + t.system_ns),
        user_ns: t.user_ns,
        system_ns: t.system_ns,
    });
    Sample {
        taken: Instant::now(),
        taken_wall: SystemTime::now(),
        cpu,
        rss_kib: procfs::rss_kib(pid),
        balloon: r.balloon_bytes.map(|b| Balloon {
            current_kib: b / 1024,
            guest: r.guest.as_ref().and_then(guest_memory),
        }),
        vcpus: vcpus(def, pid, &r.cpus),
        blocks: blocks(def, pivoted, &r.blockstats, &r.nodes),
        iothreads: r
            .iothreads
            .iter()
            .filter_map(iothread)
            .take(MAX_IOTHREADS)
            .collect(),
        nets: Vec::new(),
    }
}

/// The NICs of a run with their taps' counters, by interface index (a
/// tap that cannot be read has no counters).
pub(crate) fn nets(taps: &[Option<TapRecord>], nics: usize) -> Vec<Net> {
    (0..nics)
        .map(|i| {
            let tap = taps.get(i).cloned().flatten().map(|t| t.name);
            let counters = tap.as_deref().and_then(|t| network::tap_counters(t).ok());
            Net { tap, counters }
        })
        .collect()
}

fn kib(v: Option<u64>) -> Option<u64> {
    v.map(|b| b / 1024)
}

/// libvirt's units: sizes in KiB, counts as they are. A guest that never
/// reported (`last-update` 0) has no statistics.
fn guest_memory(g: &BalloonGuestStats) -> Option<GuestMemory> {
    let s = &g.stats;
    if g.last_update.unwrap_or(0) == 0 {
        return None;
    }
    Some(GuestMemory {
        swap_in_kib: kib(s.swap_in),
        swap_out_kib: kib(s.swap_out),
        major_faults: s.major_faults,
        minor_faults: s.minor_faults,
        unused_kib: kib(s.free_memory),
        available_kib: kib(s.total_memory),
        usable_kib: kib(s.available_memory),
        disk_caches_kib: kib(s.disk_caches),
        hugetlb_pgalloc: s.htlb_pgalloc,
        hugetlb_pgfail: s.htlb_pgfail,
        last_update: g.last_update,
    })
}

fn vcpus(def: &Def, pid: i32, cpus: &[CpuInfoFast]) -> Vec<Vcpu> {
    let max = u64::from(def.vcpus());
    cpus.iter()
        .filter_map(|c| {
            let index = c.cpu_index.filter(|i| *i < max)?;
            let tid = c.thread_id?;
            let t = procfs::thread_times(pid, tid);
            Some(Vcpu {
                index: u32::try_from(index).ok()?,
                thread_id: tid,
                time_ns: t.map(|t| t.user_ns + t.system_ns),
                wait_ns: procfs::thread_wait_ns(pid, tid),
                host_cpu: t.and_then(|t| t.processor),
            })
        })
        .take(def.vcpus() as usize)
        .collect()
}

fn iothread(i: &IothreadInfo) -> Option<Iothread> {
    // libvirt names I/O threads `iothreadN`; QEMU reports that id.
    let id = i.id.strip_prefix("iothread")?.parse().ok()?;
    Some(Iothread {
        id,
        poll_max_ns: i.poll_max_ns,
        poll_grow: i.poll_grow,
        poll_shrink: i.poll_shrink,
    })
}

/// The disk a top-level entry is of: by device or node name, or by a
/// node a block job pivoted a disk onto.
fn disk_of(def: &Def, pivoted: &[(String, String)], e: &BlockStatsEntry) -> Option<DiskInfo> {
    let node = e.node_name.as_deref();
    def.disk_of_qmp(e.device.as_deref(), node, e.qdev.as_deref())
        .or_else(|| {
            let (_, target) = pivoted.iter().find(|(n, _)| Some(n.as_str()) == node)?;
            def.disk(target)
        })
}

fn blocks(
    def: &Def,
    pivoted: &[(String, String)],
    stats: &[BlockStatsEntry],
    nodes: &[NamedBlockNode],
) -> Vec<Block> {
    let by_node: HashMap<&str, &NamedBlockNode> = nodes
        .iter()
        .filter_map(|n| Some((n.node_name.as_deref()?, n)))
        .collect();
    let mut found: Vec<(usize, Vec<Block>)> = stats
        .iter()
        .filter_map(|e| {
            let disk = disk_of(def, pivoted, e)?;
            Some((disk.index, chain(&disk, e, &by_node)))
        })
        .collect();
    found.sort_by_key(|(i, _)| *i);
    found.dedup_by_key(|(i, _)| *i);
    found.into_iter().flat_map(|(_, c)| c).collect()
}

/// The disk's top node and its backing images, top first.
fn chain(
    disk: &DiskInfo,
    top: &BlockStatsEntry,
    nodes: &HashMap<&str, &NamedBlockNode>,
) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur = Some(top);
    while let Some(e) = cur {
        if out.len() > MAX_BACKING {
            break;
        }
        let index = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let node = e.node_name.as_deref().and_then(|n| nodes.get(n));
        let image = node.and_then(|n| n.image.as_ref());
        let path = if index == 0 {
            disk.source
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
        } else {
            node.and_then(|n| n.file.clone())
        };
        let written = e.parent.as_ref().and_then(|p| p.stats.wr_highest_offset);
        out.push(Block {
            target: disk.target.clone(),
            backing_index: index,
            path,
            counters: counters(e),
            allocation: written.or(e.stats.wr_highest_offset),
            capacity: image.and_then(|i| i.virtual_size),
            physical: image.and_then(|i| i.actual_size.or(i.virtual_size)),
        });
        cur = e.backing.as_deref();
    }
    out
}

fn counters(e: &BlockStatsEntry) -> BlockCounters {
    let s = &e.stats;
    let errors = [
        s.failed_rd_operations,
        s.failed_wr_operations,
        s.failed_flush_operations,
    ];
    BlockCounters {
        rd_reqs: s.rd_operations,
        rd_bytes: s.rd_bytes,
        rd_times_ns: s.rd_total_time_ns,
        wr_reqs: s.wr_operations,
        wr_bytes: s.wr_bytes,
        wr_times_ns: s.wr_total_time_ns,
        fl_reqs: s.flush_operations,
        fl_times_ns: s.flush_total_time_ns,
        errors: errors.iter().flatten().copied().reduce(u64::saturating_add),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> Def {
        Def::parse(
            "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory><vcpu>2</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='/top.qcow2'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='disk'><source file='/b.img'/><target dev='sda' bus='sata'/></disk>\
             </devices></domain>",
        )
        .expect("valid XML")
    }

    fn replies() -> Replies {
        let stats = serde_json::json!([
            {"device": "", "node-name": "libvirt-2-format", "stats": {"rd_bytes": 2}},
            {"device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
             "node-name": "libvirt-1-format",
             "stats": {"rd_bytes": 512, "rd_operations": 1, "wr_bytes": 4096,
                       "failed_rd_operations": 1, "failed_wr_operations": 2},
             "parent": {"node-name": "libvirt-1-storage", "stats": {"wr_highest_offset": 8192}},
             "backing": {"node-name": "base-fmt", "stats": {"rd_bytes": 7},
                         "backing": {"node-name": "base2", "stats": {}}}},
            {"device": "", "node-name": "made-up-by-qemu", "stats": {"rd_bytes": 9}}
        ]);
        let nodes = serde_json::json!([
            {"node-name": "libvirt-1-format", "file": "/top.qcow2",
             "image": {"virtual-size": 1000, "actual-size": 300}},
            {"node-name": "base-fmt", "file": "/base.qcow2", "image": {"virtual-size": 1000}}
        ]);
        let cpus = serde_json::json!([
            {"cpu-index": 0, "thread-id": std::process::id()},
            {"cpu-index": 7, "thread-id": 1},
            {"cpu-index": 1, "thread-id": std::process::id()}
        ]);
        Replies {
            blockstats: serde_json::from_value(stats).unwrap(),
            nodes: serde_json::from_value(nodes).unwrap(),
            balloon_bytes: Some(64 << 20),
            guest: None,
            cpus: serde_json::from_value(cpus).unwrap(),
            iothreads: Vec::new(),
        }
    }

    #[test]
    fn replies_map_onto_the_definition() {
        let me = i32::try_from(std::process::id()).unwrap();
        let s = build(&def(), &[], me, replies());
        let names: Vec<(&str, u32)> = s
            .blocks
            .iter()
            .map(|b| (b.target.as_str(), b.backing_index))
            .collect();
        assert_eq!(names, vec![("vda", 0), ("vda", 1), ("vda", 2), ("sda", 0)]);
        let top = &s.blocks[0];
        assert_eq!(top.path.as_deref(), Some("/top.qcow2"));
        assert_eq!(top.counters.rd_bytes, Some(512));
        assert_eq!(top.counters.errors, Some(3));
        assert_eq!(top.allocation, Some(8192), "the file node's highest offset");
        assert_eq!((top.capacity, top.physical), (Some(1000), Some(300)));
        let base = &s.blocks[1];
        assert_eq!(base.path.as_deref(), Some("/base.qcow2"));
        assert_eq!(base.physical, Some(1000), "no actual size: not thin");
        assert_eq!(s.vcpus.len(), 2, "vCPU 7 is beyond the definition");
        assert!(s.vcpus[0].time_ns.is_some());
        assert_eq!(s.balloon.as_ref().map(|b| b.current_kib), Some(65536));
        assert!(s.cpu.is_some_and(|c| c.total_ns > 0));
    }

    #[test]
    fn a_backing_chain_from_qemu_is_cut_at_the_bound() {
        let mut e = serde_json::json!({"node-name": "n0", "stats": {}});
        for i in 1..100 {
            e = serde_json::json!({"node-name": format!("n{i}"), "stats": {}, "backing": e});
        }
        e["node-name"] = "libvirt-1-format".into();
        let r = Replies {
            blockstats: vec![serde_json::from_value(e).unwrap()],
            ..Replies::default()
        };
        let s = build(&def(), &[], 1, r);
        assert_eq!(s.blocks.len(), MAX_BACKING + 1);
    }
}
