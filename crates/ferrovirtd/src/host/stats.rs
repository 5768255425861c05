//! The host's CPU and memory statistics as libvirt's node calls report
//! them, read from `/proc` and `/sys` at each call (a file read, never a
//! wait).

use std::fs;
use std::path::Path;

/// `NODE_GET_CPU_STATS` fields, in libvirt's order: nanoseconds spent in
/// kernel, user, idle and iowait, of one CPU (`Some(n)`) or of all.
pub(crate) fn cpu_stats(cpu: Option<u32>) -> Option<Vec<(&'static str, u64)>> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let want = cpu.map_or_else(|| "cpu".to_owned(), |n| format!("cpu{n}"));
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(want.as_str()))?;
    parse_cpu_line(line, ns_per_tick()?)
}

fn ns_per_tick() -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t)
        .ok()
        .filter(|t| *t > 0)
        .map(|t| 1_000_000_000 / t)
}

/// `cpuN user nice system idle iowait irq softirq ...` (clock ticks).
fn parse_cpu_line(line: &str, ns: u64) -> Option<Vec<(&'static str, u64)>> {
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0).saturating_mul(ns);
    // libvirt counts nice time as user time and irq/softirq as kernel.
    Some(vec![
        ("kernel", get(2) + get(5) + get(6)),
        ("user", get(0) + get(1)),
        ("idle", get(3)),
        ("iowait", get(4)),
    ])
}

/// `/sys/devices/system/cpu/{present,online}` as a list of CPU numbers.
fn cpu_list(which: &str) -> Vec<u32> {
    fs::read_to_string(format!("/sys/devices/system/cpu/{which}"))
        .map(|s| parse_list(s.trim()))
        .unwrap_or_default()
}

/// A kernel CPU or node list such as `0-3,8,10-11`.
pub(super) fn parse_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let mut ends = part.splitn(2, '-').map(|x| x.trim().parse::<u32>().ok());
        match (ends.next().flatten(), ends.next()) {
            (Some(a), None) => out.push(a),
            (Some(a), Some(Some(b))) if b >= a && b - a < 65_536 => out.extend(a..=b),
            _ => {}
        }
    }
    out
}

/// `NODE_GET_CPU_MAP`: the online CPUs as a bitmap, how many are online,
/// and how many CPUs the host has (highest present number + 1).
pub(crate) fn cpu_map() -> (Vec<u8>, u32, u32) {
    let present = cpu_list("present");
    let online = cpu_list("online");
    let total = present.iter().max().map_or_else(
        || u32::try_from(online.len()).unwrap_or(0),
        |m| m.saturating_add(1),
    );
    let mut map = vec![0u8; total.div_ceil(8) as usize];
    for cpu in &online {
        if let Some(b) = map.get_mut((cpu / 8) as usize) {
            *b |= 1 << (cpu % 8);
        }
    }
    let n_online = u32::try_from(online.len()).unwrap_or(u32::MAX);
    (map, n_online, total)
}

/// `key:  value kB` lines of a meminfo file, in KiB.
pub(super) fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        if name.split_whitespace().last()? != key {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The NUMA nodes of the host (`None`: no NUMA information; one node).
fn numa_nodes() -> Option<Vec<u32>> {
    let s = fs::read_to_string("/sys/devices/system/node/online").ok()?;
    let v = parse_list(s.trim());
    (!v.is_empty()).then_some(v)
}

/// `NODE_GET_MEMORY_STATS` fields (KiB): total, free, buffers, cached for
/// the host; total and free for one NUMA cell.
pub(crate) fn memory_stats(cell: Option<u32>) -> Option<Vec<(&'static str, u64)>> {
    match cell {
        None => {
            let t = fs::read_to_string("/proc/meminfo").ok()?;
            Some(vec![
                ("total", meminfo_kib(&t, "MemTotal")?),
                ("free", meminfo_kib(&t, "MemFree")?),
                ("buffers", meminfo_kib(&t, "Buffers").unwrap_or(0)),
                ("cached", meminfo_kib(&t, "Cached").unwrap_or(0)),
            ])
        }
        Some(n) => {
            let (total, free) = cell_memory_kib(n)?;
            Some(vec![("total", total), ("free", free)])
        }
    }
}

/// Total and free memory of NUMA cell `n`, KiB (cell 0 is the whole host
/// when the kernel reports no NUMA nodes).
fn cell_memory_kib(n: u32) -> Option<(u64, u64)> {
    let path = format!("/sys/devices/system/node/node{n}/meminfo");
    if Path::new(&path).exists() {
        let t = fs::read_to_string(path).ok()?;
        return Some((meminfo_kib(&t, "MemTotal")?, meminfo_kib(&t, "MemFree")?));
    }
    if n == 0 && numa_nodes().is_none() {
        let t = fs::read_to_string("/proc/meminfo").ok()?;
        return Some((meminfo_kib(&t, "MemTotal")?, meminfo_kib(&t, "MemFree")?));
    }
    None
}

/// Number of NUMA cells (at least 1).
pub(crate) fn cell_count() -> u32 {
    numa_nodes()
        .and_then(|v| v.iter().max().map(|m| m + 1))
        .unwrap_or(1)
}

/// Free memory of cell `n`, bytes.
pub(crate) fn cell_free_bytes(n: u32) -> Option<u64> {
    cell_memory_kib(n).map(|(_, free)| free * 1024)
}

/// `NODE_GET_FREE_MEMORY`: the host's free memory, bytes.
pub(crate) fn free_memory_bytes() -> Option<u64> {
    let t = fs::read_to_string("/proc/meminfo").ok()?;
    Some(meminfo_kib(&t, "MemFree")? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_in_libvirt_terms() {
        let v = parse_cpu_line("cpu  10 2 30 400 5 6 7 0 0 0", 10_000_000).expect("parse");
        assert_eq!(
            v,
            vec![
                ("kernel", 430_000_000),
                ("user", 120_000_000),
                ("idle", 4_000_000_000),
                ("iowait", 50_000_000)
            ]
        );
        assert!(parse_cpu_line("cpu0 x y", 1).is_none());
    }

    #[test]
    fn lists_and_meminfo() {
        assert_eq!(parse_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_list(""), Vec::<u32>::new());
        assert_eq!(parse_list("5-2,x"), Vec::<u32>::new());
        let t = "MemTotal:  1000 kB\nMemFree:  300 kB\nSwapCached: 9 kB\nCached: 5 kB\n";
        assert_eq!(meminfo_kib(t, "MemFree"), Some(300));
        assert_eq!(meminfo_kib(t, "Cached"), Some(5));
        let t = "Node 0 MemTotal:  1000 kB\nNode 0 MemFree:  300 kB\n";
        assert_eq!(meminfo_kib(t, "MemFree"), Some(300));
    }

    #[test]
    fn this_host_is_readable() {
        let all = cpu_stats(None).expect("/proc/stat");
        assert_eq!(all.len(), 4);
        assert!(cpu_stats(Some(0)).is_some());
        assert!(cpu_stats(Some(1_000_000)).is_none());
        let (map, online, total) = cpu_map();
        assert!(online >= 1 && total >= online);
        assert_eq!(map.iter().map(|b| b.count_ones()).sum::<u32>(), online);
        let mem = memory_stats(None).expect("/proc/meminfo");
        assert!(mem[0].1 >= mem[1].1, "total >= free");
        assert!(cell_free_bytes(0).is_some());
        assert!(cell_count() >= 1);
        assert!(free_memory_bytes().expect("free") > 0);
    }
}
