//! The host's NUMA topology as the kernel's sysfs describes it: cells,
//! their memory and page pools, distances, and CPUs with their socket,
//! die, core and thread siblings. GET_CAPABILITIES reports it in libvirt's
//! `<topology>`; NODE_GET_INFO summarises it.

use std::fs;
use std::path::Path;

use super::stats::{meminfo_kib, parse_list};

/// One CPU of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cpu {
    pub(crate) id: u32,
    pub(crate) socket: u32,
    pub(crate) die: u32,
    pub(crate) core: u32,
    /// The kernel's `thread_siblings_list` (e.g. "0,4" or "0-1").
    pub(crate) siblings: String,
}

/// One NUMA cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cell {
    pub(crate) id: u32,
    pub(crate) memory_kib: u64,
    /// (page size KiB, pages in the pool): the base pages, then each
    /// huge page size.
    pub(crate) pages: Vec<(u64, u64)>,
    /// (cell, distance) to every cell, itself included.
    pub(crate) distances: Vec<(u32, u32)>,
    pub(crate) cpus: Vec<Cpu>,
}

/// The host's cells (one cell holding every CPU when the kernel has no
/// NUMA information).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    pub(crate) cells: Vec<Cell>,
}

/// The base page size, KiB.
fn base_page_kib() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).map_or(4, |b| (b / 1024).max(1))
}

impl Topology {
    /// Reads the topology under `sys` (`/sys` on a real host).
    pub(crate) fn read(sys: &Path) -> Self {
        let nodes = sys.join("devices/system/node");
        let online = fs::read_to_string(nodes.join("online"))
            .map(|s| parse_list(s.trim()))
            .unwrap_or_default();
        let page = base_page_kib();
        let mut cells: Vec<Cell> = online
            .iter()
            .map(|&id| read_cell(sys, &nodes.join(format!("node{id}")), id, page))
            .collect();
        if cells.is_empty() {
            cells.push(whole_host(sys, page));
        }
        Self { cells }
    }

    /// (sockets per cell, cores per socket, threads per core), as
    /// virNodeInfo counts them: from the first cell.
    pub(crate) fn shape(&self) -> (u32, u32, u32) {
        let Some(cell) = self.cells.first().filter(|c| !c.cpus.is_empty()) else {
            return (1, 1, 1);
        };
        let mut sockets: Vec<u32> = cell.cpus.iter().map(|c| c.socket).collect();
        sockets.sort_unstable();
        sockets.dedup();
        let mut cores: Vec<(u32, u32, u32)> = cell
            .cpus
            .iter()
            .map(|c| (c.socket, c.die, c.core))
            .collect();
        cores.sort_unstable();
        cores.dedup();
        let n = |v: usize| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
        let per_socket = n(cores.len()) / n(sockets.len());
        let threads = n(cell.cpus.len()) / n(cores.len());
        (n(sockets.len()), per_socket.max(1), threads.max(1))
    }

    /// libvirt's `<topology>` element, indented for `<host>`.
    pub(crate) fn to_xml(&self) -> String {
        let mut x = format!("    <topology>\n      <cells num='{}'>\n", self.cells.len());
        for c in &self.cells {
            x.push_str(&format!("        <cell id='{}'>\n", c.id));
            x.push_str(&format!(
                "          <memory unit='KiB'>{}</memory>\n",
                c.memory_kib
            ));
            for (size, count) in &c.pages {
                x.push_str(&format!(
                    "          <pages unit='KiB' size='{size}'>{count}</pages>\n"
                ));
            }
            if !c.distances.is_empty() {
                x.push_str("          <distances>\n");
                for (id, value) in &c.distances {
                    x.push_str(&format!(
                        "            <sibling id='{id}' value='{value}'/>\n"
                    ));
                }
                x.push_str("          </distances>\n");
            }
            x.push_str(&format!("          <cpus num='{}'>\n", c.cpus.len()));
            for p in &c.cpus {
                x.push_str(&format!(
                    "            <cpu id='{}' socket_id='{}' die_id='{}' core_id='{}' siblings='{}'/>\n",
                    p.id, p.socket, p.die, p.core, p.siblings
                ));
            }
            x.push_str("          </cpus>\n        </cell>\n");
        }
        x.push_str("      </cells>\n    </topology>\n");
        x
    }
}

fn read_cell(sys: &Path, dir: &Path, id: u32, page: u64) -> Cell {
    let memory_kib = fs::read_to_string(dir.join("meminfo"))
        .ok()
        .and_then(|t| meminfo_kib(&t, "MemTotal"))
        .unwrap_or(0);
    let cpus = fs::read_to_string(dir.join("cpulist"))
        .map(|s| parse_list(s.trim()))
        .unwrap_or_default();
    let distances = fs::read_to_string(dir.join("distance"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .enumerate()
        .filter_map(|(i, v)| Some((u32::try_from(i).ok()?, v)))
        .collect();
    Cell {
        id,
        memory_kib,
        pages: pages(&dir.join("hugepages"), memory_kib, page),
        distances,
        cpus: cpus.iter().map(|&c| read_cpu(sys, c)).collect(),
    }
}

/// The one cell of a host without NUMA information.
fn whole_host(sys: &Path, page: u64) -> Cell {
    let memory_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_kib(&t, "MemTotal"))
        .unwrap_or(0);
    let cpus = fs::read_to_string(sys.join("devices/system/cpu/online"))
        .map(|s| parse_list(s.trim()))
        .unwrap_or_default();
    Cell {
        id: 0,
        memory_kib,
        pages: pages(&sys.join("kernel/mm/hugepages"), memory_kib, page),
        distances: Vec::new(),
        cpus: cpus.iter().map(|&c| read_cpu(sys, c)).collect(),
    }
}

/// The base pages (memory not in huge pages) and each huge page pool
/// (`hugepages-2048kB/nr_hugepages`).
fn pages(dir: &Path, memory_kib: u64, page: u64) -> Vec<(u64, u64)> {
    let mut huge: Vec<(u64, u64)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let count = fs::read_to_string(e.path().join("nr_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((size, count))
        })
        .collect();
    huge.sort_unstable();
    let in_huge: u64 = huge.iter().map(|(s, c)| s.saturating_mul(*c)).sum();
    let mut all = vec![(page, memory_kib.saturating_sub(in_huge) / page.max(1))];
    all.extend(huge);
    all
}

fn read_cpu(sys: &Path, id: u32) -> Cpu {
    let dir = sys.join(format!("devices/system/cpu/cpu{id}/topology"));
    let num = |f: &str| {
        fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let siblings = fs::read_to_string(dir.join("thread_siblings_list"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| id.to_string());
    Cpu {
        id,
        socket: num("physical_package_id"),
        die: num("die_id"),
        core: num("core_id"),
        siblings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Two cells, two sockets, two cores each with two threads.
    fn fake_sys() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "devices/system/node/online", "0-1\n");
        for (n, cpus, dist) in [(0, "0-3", "10 21"), (1, "4-7", "21 10")] {
            let node = format!("devices/system/node/node{n}");
            write(r, &format!("{node}/cpulist"), cpus);
            write(r, &format!("{node}/distance"), dist);
            write(
                r,
                &format!("{node}/meminfo"),
                &format!("Node {n} MemTotal:  8388608 kB\nNode {n} MemFree: 1 kB\n"),
            );
            write(
                r,
                &format!("{node}/hugepages/hugepages-2048kB/nr_hugepages"),
                "512\n",
            );
            write(
                r,
                &format!("{node}/hugepages/hugepages-1048576kB/nr_hugepages"),
                "0\n",
            );
        }
        for cpu in 0..8u32 {
            let t = format!("devices/system/cpu/cpu{cpu}/topology");
            write(
                r,
                &format!("{t}/physical_package_id"),
                &(cpu / 4).to_string(),
            );
            write(r, &format!("{t}/die_id"), "0");
            write(r, &format!("{t}/core_id"), &((cpu % 4) / 2).to_string());
            let first = cpu - cpu % 2;
            write(
                r,
                &format!("{t}/thread_siblings_list"),
                &format!("{first}-{}", first + 1),
            );
        }
        d
    }

    #[test]
    fn cells_cpus_pages_and_distances_come_from_sysfs() {
        let d = fake_sys();
        let t = Topology::read(d.path());
        assert_eq!(t.cells.len(), 2);
        let c1 = &t.cells[1];
        assert_eq!(c1.memory_kib, 8_388_608);
        assert_eq!(c1.distances, vec![(0, 21), (1, 10)]);
        assert_eq!(c1.cpus.len(), 4);
        assert_eq!(c1.cpus[3].socket, 1);
        assert_eq!(c1.cpus[3].core, 1);
        assert_eq!(c1.cpus[3].siblings, "6-7");
        // 512 huge pages of 2 MiB are taken out of the base pages.
        let base = base_page_kib();
        assert_eq!(c1.pages[0], (base, (8_388_608 - 512 * 2048) / base));
        assert_eq!(&c1.pages[1..], &[(2048, 512), (1_048_576, 0)]);
        assert_eq!(t.shape(), (1, 2, 2));
        let x = t.to_xml();
        assert!(x.contains("<cells num='2'>"), "{x}");
        assert!(
            x.contains("<cpu id='7' socket_id='1' die_id='0' core_id='1' siblings='6-7'/>"),
            "{x}"
        );
        assert!(x.contains("<sibling id='0' value='21'/>"), "{x}");
        assert!(
            x.contains("<pages unit='KiB' size='2048'>512</pages>"),
            "{x}"
        );
    }

    #[test]
    fn a_host_without_numa_is_one_cell_of_every_cpu() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "devices/system/cpu/online", "0-2\n");
        let t = Topology::read(d.path());
        assert_eq!(t.cells.len(), 1);
        assert_eq!(t.cells[0].cpus.len(), 3);
        assert!(t.cells[0].memory_kib > 0, "from /proc/meminfo");
    }

    #[test]
    fn this_host_has_at_least_one_cell_with_cpus() {
        let t = Topology::read(Path::new("/sys"));
        assert!(!t.cells.is_empty());
        assert!(t.cells.iter().map(|c| c.cpus.len()).sum::<usize>() >= 1);
    }
}
