//! `CONNECT_GET_ALL_DOMAIN_STATS` (`virsh domstats`): one record per
//! domain, each group's fields under libvirt's names, from the driver's
//! statistics cache. Every domain answers at once whatever its monitor
//! does: a domain whose figures are stale says so in its state group
//! (`state.stats.stale`, `.age`, `.reason`) and keeps its last figures.

use qemu::{DiskDesc, DomainStats, Sample};
use rpc::CallContext;
use rpc::protocol::remote::{
    CONNECT_GET_ALL_DOMAIN_STATS_MAX, ConnectGetAllDomainStatsArgs, ConnectGetAllDomainStatsRet,
    DomainStatsRecord,
};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use super::params::{Params, count};
use crate::dispatch::Daemon;
use crate::flags::connect as c;
use crate::flags::{self, domain as f};
use crate::procs::domain::DomainListFilter;
use crate::wire::wire_domain;

/// The groups this daemon reports.
const SUPPORTED: u32 = f::STATS_STATE
    | f::STATS_CPU_TOTAL
    | f::STATS_BALLOON
    | f::STATS_VCPU
    | f::STATS_INTERFACE
    | f::STATS_BLOCK
    | f::STATS_PERF
    | f::STATS_IOTHREAD;

pub(crate) async fn get_all_domain_stats(
    d: &Daemon,
    _: &CallContext,
    a: ConnectGetAllDomainStatsArgs,
) -> Reply<ConnectGetAllDomainStatsRet> {
    let known = c::GET_ALL_DOMAINS_STATS_FILTERS
        | c::GET_ALL_DOMAINS_STATS_NOWAIT
        | c::GET_ALL_DOMAINS_STATS_BACKING
        | c::GET_ALL_DOMAINS_STATS_ENFORCE_STATS;
    flags::check("virConnectGetAllDomainStats", a.flags, known)?;
    let groups = groups(a.stats, a.flags)?;
    let filter = DomainListFilter::from_flags(a.flags & c::GET_ALL_DOMAINS_STATS_FILTERS)?;
    let backing = a.flags & c::GET_ALL_DOMAINS_STATS_BACKING != 0;
    let doms = if a.doms.is_empty() {
        d.driver.all_domains()
    } else {
        a.doms
            .iter()
            .map(|w| d.domain(w))
            .collect::<Result<Vec<_>, _>>()?
    };
    let ret_stats = doms
        .iter()
        .filter(|dom| filter.matches(&dom.summary(), || d.driver.has_managed_save(dom)))
        .map(|dom| DomainStatsRecord {
            dom: wire_domain(dom),
            params: record(&d.driver.stats(dom), groups, backing).0,
        })
        .collect();
    Ok(ConnectGetAllDomainStatsRet { ret_stats })
}

/// The groups to report: all supported for 0; with ENFORCE_STATS an
/// unsupported bit is an error, as in libvirt.
fn groups(stats: u32, flags: u32) -> Result<u32, VirError> {
    if stats == 0 {
        return Ok(SUPPORTED);
    }
    let extra = stats & !SUPPORTED;
    if extra != 0 && flags & c::GET_ALL_DOMAINS_STATS_ENFORCE_STATS != 0 {
        return Err(VirError::new(
            ErrorCode::ArgumentUnsupported,
            ErrorDomain::Qemu,
            format!(
                "argument unsupported: Stats types bits 0x{extra:x} are not supported by this daemon"
            ),
        ));
    }
    Ok(stats & SUPPORTED)
}

/// One domain's record.
pub(crate) fn record(s: &DomainStats, groups: u32, backing: bool) -> Params {
    let mut p = Params::default();
    let sample = s.sample.as_deref();
    if groups & f::STATS_STATE != 0 {
        state(&mut p, s);
    }
    if groups & f::STATS_CPU_TOTAL != 0 {
        cpu_total(&mut p, sample);
    }
    if groups & f::STATS_BALLOON != 0 {
        balloon(&mut p, s, sample);
    }
    if groups & f::STATS_VCPU != 0 {
        vcpu(&mut p, s, sample);
    }
    if groups & f::STATS_INTERFACE != 0 {
        interfaces(&mut p, s, sample);
    }
    if groups & f::STATS_BLOCK != 0 {
        block(&mut p, s, sample, backing);
    }
    if groups & f::STATS_IOTHREAD != 0 {
        iothread(&mut p, sample);
    }
    // STATS_PERF: no perf events are enabled on any domain, so the group
    // is empty (libvirt reports only enabled events).
    p.0.truncate(CONNECT_GET_ALL_DOMAIN_STATS_MAX);
    p
}

/// `net.count`, then per NIC with a host tap its name and counters (a
/// user-mode NIC has no host device: counted, not described, as libvirt).
fn interfaces(p: &mut Params, s: &DomainStats, sample: Option<&Sample>) {
    p.uint("net.count", count(s.nics.len()));
    let Some(nets) = sample.map(|x| &x.nets) else {
        return;
    };
    for (i, n) in nets.iter().enumerate() {
        let (Some(tap), Some(c)) = (&n.tap, &n.counters) else {
            continue;
        };
        p.string(format!("net.{i}.name"), tap.clone());
        for (k, v) in [
            ("rx.bytes", c.rx_bytes),
            ("rx.pkts", c.rx_packets),
            ("rx.errs", c.rx_errs),
            ("rx.drop", c.rx_drop),
            ("tx.bytes", c.tx_bytes),
            ("tx.pkts", c.tx_packets),
            ("tx.errs", c.tx_errs),
            ("tx.drop", c.tx_drop),
        ] {
            p.ullong(format!("net.{i}.{k}"), v);
        }
    }
}

fn state(p: &mut Params, s: &DomainStats) {
    p.int("state.state", s.state.state.as_i32());
    p.int("state.reason", s.state.reason);
    if !s.active {
        return;
    }
    let fresh = &s.freshness;
    p.boolean("state.stats.stale", fresh.stale);
    if let Some(age) = fresh.age {
        p.ullong(
            "state.stats.age",
            u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        );
    }
    if let Some(r) = &fresh.reason {
        p.string("state.stats.reason", r.clone());
    }
}

fn cpu_total(p: &mut Params, sample: Option<&Sample>) {
    if let Some(c) = sample.and_then(|s| s.cpu) {
        p.ullong("cpu.time", c.total_ns);
        p.ullong("cpu.user", c.user_ns);
        p.ullong("cpu.system", c.system_ns);
    }
}

fn balloon(p: &mut Params, s: &DomainStats, sample: Option<&Sample>) {
    let live = sample.and_then(|x| x.balloon.as_ref());
    p.ullong(
        "balloon.current",
        live.map_or(s.cur_mem_kib, |b| b.current_kib),
    );
    p.ullong("balloon.maximum", s.max_mem_kib);
    let Some(sample) = sample else { return };
    if let Some(g) = live.and_then(|b| b.guest.as_ref()) {
        p.opt_ullong("balloon.swap_in", g.swap_in_kib);
        p.opt_ullong("balloon.swap_out", g.swap_out_kib);
        p.opt_ullong("balloon.major_fault", g.major_faults);
        p.opt_ullong("balloon.minor_fault", g.minor_faults);
        p.opt_ullong("balloon.unused", g.unused_kib);
        p.opt_ullong("balloon.available", g.available_kib);
    }
    p.opt_ullong("balloon.rss", sample.rss_kib);
    if let Some(g) = live.and_then(|b| b.guest.as_ref()) {
        p.opt_ullong("balloon.usable", g.usable_kib);
        p.opt_ullong("balloon.last-update", g.last_update);
        p.opt_ullong("balloon.disk_caches", g.disk_caches_kib);
        p.opt_ullong("balloon.hugetlb_pgalloc", g.hugetlb_pgalloc);
        p.opt_ullong("balloon.hugetlb_pgfail", g.hugetlb_pgfail);
    }
}

fn vcpu(p: &mut Params, s: &DomainStats, sample: Option<&Sample>) {
    p.uint("vcpu.current", s.vcpus);
    p.uint("vcpu.maximum", s.vcpus);
    for v in sample.map(|x| x.vcpus.as_slice()).unwrap_or_default() {
        let n = v.index;
        p.int(format!("vcpu.{n}.state"), f::VCPU_RUNNING);
        p.opt_ullong(format!("vcpu.{n}.time"), v.time_ns);
        p.opt_ullong(format!("vcpu.{n}.wait"), v.wait_ns);
    }
}

fn block(p: &mut Params, s: &DomainStats, sample: Option<&Sample>, backing: bool) {
    let mut n = 0usize;
    let mut out = Params::default();
    for disk in &s.disks {
        let entries: Vec<&qemu::Block> = sample
            .map(|x| x.blocks.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|b| b.target == disk.target && (backing || b.backing_index == 0))
            .collect();
        if entries.is_empty() {
            fallback_disk(&mut out, n, disk, s.active);
            n += 1;
            continue;
        }
        for b in entries {
            one_block(&mut out, n, b);
            n += 1;
        }
    }
    p.uint("block.count", count(n));
    p.0.extend(out.0);
}

fn one_block(p: &mut Params, n: usize, b: &qemu::Block) {
    let k = |x: &str| format!("block.{n}.{x}");
    p.string(k("name"), b.target.clone());
    if b.backing_index > 0 {
        p.uint(k("backingIndex"), b.backing_index);
    }
    if let Some(path) = &b.path {
        p.string(k("path"), path.clone());
    }
    let c = &b.counters;
    p.opt_ullong(k("rd.reqs"), c.rd_reqs);
    p.opt_ullong(k("rd.bytes"), c.rd_bytes);
    p.opt_ullong(k("rd.times"), c.rd_times_ns);
    p.opt_ullong(k("wr.reqs"), c.wr_reqs);
    p.opt_ullong(k("wr.bytes"), c.wr_bytes);
    p.opt_ullong(k("wr.times"), c.wr_times_ns);
    p.opt_ullong(k("fl.reqs"), c.fl_reqs);
    p.opt_ullong(k("fl.times"), c.fl_times_ns);
    p.opt_ullong(k("allocation"), b.allocation);
    p.opt_ullong(k("capacity"), b.capacity);
    p.opt_ullong(k("physical"), b.physical);
}

/// A disk without figures from QEMU (inactive domain, empty drive, no
/// sample yet): its name, its path, and for an inactive domain the sizes
/// of its image file.
fn fallback_disk(p: &mut Params, n: usize, disk: &DiskDesc, active: bool) {
    let k = |x: &str| format!("block.{n}.{x}");
    p.string(k("name"), disk.target.clone());
    let Some(src) = &disk.source else { return };
    p.string(k("path"), src.to_string_lossy().into_owned());
    if active {
        return;
    }
    if let Some(sz) = super::image::sizes(disk) {
        p.ullong(k("allocation"), sz.allocation);
        p.ullong(k("capacity"), sz.capacity);
        p.ullong(k("physical"), sz.physical);
    }
}

fn iothread(p: &mut Params, sample: Option<&Sample>) {
    let threads = sample.map(|s| s.iothreads.as_slice()).unwrap_or_default();
    if threads.is_empty() {
        return;
    }
    p.uint("iothread.count", count(threads.len()));
    for t in threads {
        let k = |x: &str| format!("iothread.{}.{x}", t.id);
        p.opt_ullong(k("poll-max-ns"), t.poll_max_ns);
        p.opt_ullong(k("poll-grow"), t.poll_grow);
        p.opt_ullong(k("poll-shrink"), t.poll_shrink);
    }
}
