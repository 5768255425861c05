//! Facts about this host for NODE_GET_INFO, GET_HOSTNAME and
//! GET_CAPABILITIES, read from /proc so they are true; its CPU and memory
//! statistics are in [`stats`].

pub(crate) mod stats;
mod topology;

use std::fs;
use std::path::Path;

use topology::Topology;

use rpc::protocol::remote::{NodeGetInfoRet, model_chars};

/// `virNodeInfo`: the NUMA cells, and sockets per cell, cores per socket
/// and threads per core from sysfs.
pub(crate) fn node_info() -> NodeGetInfoRet {
    let topology = Topology::read(Path::new("/sys"));
    let (sockets, cores, threads) = topology.shape();
    let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let nodes = i32::try_from(topology.cells.len()).unwrap_or(1);
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
        nodes,
        sockets: int(sockets),
        cores: int(cores),
        threads: int(threads),
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

/// A truthful capabilities document: this host's arch and the one guest
/// type we run (hvm on x86_64), with the machine types of the emulator
/// (from its probe; the pc and q35 aliases when it was not probed) and
/// the guest features libvirt lists for it. Only the machine families the
/// driver runs are listed.
pub(crate) fn capabilities_xml(
    emulator: &str,
    kvm: bool,
    caps: Option<&::domain::EmulatorCaps>,
) -> String {
    let arch = std::env::consts::ARCH;
    let mut domains = String::from("      <domain type='qemu'/>\n");
    if kvm {
        domains.push_str("      <domain type='kvm'/>\n");
    }
    format!(
        "<capabilities>\n  <host>\n{host}  </host>\n\
         \n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='{arch}'>\n      <wordsize>64</wordsize>\n      \
         <emulator>{emulator}</emulator>\n{machines}{domains}    </arch>\n{FEATURES}  </guest>\n\n</capabilities>\n",
        machines = machines_xml(caps),
        host = host_xml(arch, &Topology::read(Path::new("/sys"))),
    )
}

/// `<host>`'s content: uuid, CPU and its topology, power management,
/// IOMMU, NUMA cells and the security model (none: QEMU is confined by
/// namespaces and seccomp, not by a labelling model).
fn host_xml(arch: &str, topology: &Topology) -> String {
    let (sockets, cores, threads) = topology.shape();
    let iommu = fs::read_dir("/sys/kernel/iommu_groups").is_ok_and(|mut d| d.next().is_some());
    let mut x = String::new();
    if let Some(uuid) = host_uuid() {
        x.push_str(&format!("    <uuid>{uuid}</uuid>\n"));
    }
    x.push_str(&format!(
        "    <cpu>\n      <arch>{arch}</arch>\n      \
         <topology sockets='{sockets}' dies='1' cores='{cores}' threads='{threads}'/>\n    </cpu>\n\
         \x20   <power_management/>\n    <iommu support='{}'/>\n",
        if iommu { "yes" } else { "no" }
    ));
    x.push_str(&topology.to_xml());
    x.push_str("    <secmodel>\n      <model>none</model>\n      <doi>0</doi>\n    </secmodel>\n");
    x
}

/// The host's UUID: the SMBIOS system UUID when readable, else the
/// machine id written as a UUID (as libvirt falls back to).
fn host_uuid() -> Option<String> {
    if let Ok(s) = fs::read_to_string("/sys/class/dmi/id/product_uuid") {
        let s = s.trim().to_lowercase();
        if uuid::Uuid::parse_str(&s).is_ok() {
            return Some(s);
        }
    }
    let id = fs::read_to_string("/etc/machine-id").ok()?;
    uuid::Uuid::try_parse(id.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// The guest features libvirt reports for x86_64 QEMU guests.
const FEATURES: &str = "    <features>\n      <acpi default='on' toggle='yes'/>\n      \
    <apic default='on' toggle='no'/>\n      <cpuselection/>\n      <deviceboot/>\n      \
    <disksnapshot default='on' toggle='no'/>\n    </features>\n";

fn machines_xml(caps: Option<&::domain::EmulatorCaps>) -> String {
    let supported = |name: &str| ::domain::MachineFamily::of(name).is_some();
    let Some(caps) = caps.filter(|c| !c.machines.is_empty()) else {
        return "      <machine>q35</machine>\n      <machine>pc</machine>\n".into();
    };
    let mut out = String::new();
    for m in caps.machines.iter().filter(|m| supported(&m.name)) {
        let max = m
            .cpu_max
            .map(|n| format!(" maxCpus='{n}'"))
            .unwrap_or_default();
        out.push_str(&format!("      <machine{max}>{}</machine>\n", m.name));
        if let Some(alias) = &m.alias {
            out.push_str(&format!(
                "      <machine canonical='{}'{max}>{alias}</machine>\n",
                m.name
            ));
        }
    }
    out
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
        assert!(capabilities_xml("/usr/bin/qemu-system-x86_64", true, None).contains("type='kvm'"));
        assert!(
            !capabilities_xml("/usr/bin/qemu-system-x86_64", false, None).contains("type='kvm'")
        );
    }

    #[test]
    fn capabilities_list_the_emulators_machines_and_features() {
        let m = |name: &str, alias: Option<&str>| ::domain::MachineType {
            name: name.into(),
            alias: alias.map(Into::into),
            cpu_max: Some(288),
            ..Default::default()
        };
        let caps = ::domain::EmulatorCaps {
            machines: vec![m("pc-q35-7.2", Some("q35")), m("microvm", None)],
            ..Default::default()
        };
        let x = capabilities_xml("/e", false, Some(&caps));
        assert!(
            x.contains("<machine maxCpus='288'>pc-q35-7.2</machine>"),
            "{x}"
        );
        assert!(
            x.contains("<machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>"),
            "{x}"
        );
        assert!(
            !x.contains("microvm"),
            "unsupported machines are not offered: {x}"
        );
        assert!(x.contains("<acpi default='on' toggle='yes'/>"), "{x}");
    }
}
