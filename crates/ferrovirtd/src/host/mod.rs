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
        "<capabilities>\n  <host>\n    <cpu>\n      <arch>{arch}</arch>\n    </cpu>\n  </host>\n\
         \n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='{arch}'>\n      <wordsize>64</wordsize>\n      \
         <emulator>{emulator}</emulator>\n{machines}{domains}    </arch>\n{FEATURES}  </guest>\n\n</capabilities>\n",
        machines = machines_xml(caps),
    )
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
