//! Facts about this host for NODE_GET_INFO, GET_HOSTNAME and
//! GET_CAPABILITIES, read from /proc so they are true; its CPU and memory
//! statistics are in [`stats`].

pub(crate) mod stats;

use std::fs;

use rpc::protocol::remote::{NodeGetInfoRet, model_chars};

/// `virNodeInfo`: one NUMA node and socket, every CPU a core.
pub(crate) fn node_info() -> NodeGetInfoRet {
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| i32::try_from(n.get()).unwrap_or(i32::MAX));
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mhz = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("cpu MHz"))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i32);
    NodeGetInfoRet {
        model: model_chars(std::env::consts::ARCH),
        memory: mem_total_kib(),
        cpus,
        mhz,
        nodes: 1,
        sockets: 1,
        cores: cpus,
        threads: 1,
    }
}

fn mem_total_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A minimal, truthful capabilities document: this host's arch and the one
/// guest type we run (hvm on x86_64 with the default emulator).
pub(crate) fn capabilities_xml(emulator: &str, kvm: bool) -> String {
    let arch = std::env::consts::ARCH;
    let mut domains = String::from("      <domain type='qemu'/>\n");
    if kvm {
        domains.push_str("      <domain type='kvm'/>\n");
    }
    format!(
        "<capabilities>\n  <host>\n    <cpu>\n      <arch>{arch}</arch>\n    </cpu>\n  </host>\n\
         \n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='{arch}'>\n      <wordsize>64</wordsize>\n      \
         <emulator>{emulator}</emulator>\n      <machine>q35</machine>\n      <machine>pc</machine>\n{domains}    </arch>\n  </guest>\n\n</capabilities>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_reads_real_memory_and_cpus() {
        let n = node_info();
        assert!(n.memory > 0);
        assert!(n.cpus >= 1);
    }

    #[test]
    fn capabilities_name_kvm_only_when_available() {
        assert!(capabilities_xml("/usr/bin/qemu-system-x86_64", true).contains("type='kvm'"));
        assert!(!capabilities_xml("/usr/bin/qemu-system-x86_64", false).contains("type='kvm'"));
    }
}
