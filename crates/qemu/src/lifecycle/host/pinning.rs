//! vCPU, emulator and I/O thread pinning (`<cputune>` pins, `<vcpu
//! cpuset>`) through the threads' CPU affinity.

use nix::sched::{CpuSet as Affinity, sched_setaffinity};
use nix::unistd::Pid;

use domain::{CpuSet, DomainDef};

use crate::{Error, Result};

/// Which host CPUs each thread may use.
pub(crate) struct Pins {
    /// (vCPU index, its set).
    pub(crate) vcpus: Vec<(u32, CpuSet)>,
    pub(crate) emulator: Option<CpuSet>,
    /// (I/O thread id, its set).
    pub(crate) iothreads: Vec<(u32, CpuSet)>,
}

impl Pins {
    /// The pins of `def`: an explicit pin wins; `<vcpu cpuset>` is the
    /// default for vCPUs and the emulator, as in libvirt.
    pub(crate) fn of(def: &DomainDef) -> Self {
        let default = def.vcpu_cpuset.clone();
        let vcpus = (0..def.vcpus)
            .filter_map(|i| {
                let pinned = def.cputune.vcpupins.iter().find(|(v, _)| *v == i);
                pinned
                    .map(|(_, s)| s.clone())
                    .or_else(|| default.clone())
                    .map(|s| (i, s))
            })
            .collect();
        Pins {
            vcpus,
            emulator: def.cputune.emulatorpin.clone().or(default),
            iothreads: def.cputune.iothreadpins.clone(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.vcpus.is_empty() && self.emulator.is_none() && self.iothreads.is_empty()
    }
}

/// Sets `tid`'s affinity to `set`; CPUs the host does not have are an
/// error naming them.
pub(crate) fn pin(tid: i32, set: &CpuSet, what: &str) -> Result<()> {
    let mut a = Affinity::new();
    for cpu in set.iter() {
        a.set(cpu as usize).map_err(|_| {
            Error::ConfigUnsupported(format!(
                "{what}: CPU {cpu} is beyond what this host can address"
            ))
        })?;
    }
    sched_setaffinity(Pid::from_raw(tid), &a).map_err(|e| {
        Error::ConfigUnsupported(format!(
            "{what}: cannot pin to host CPUs {set} ({e}; the host has CPUs 0..{})",
            host_cpus().saturating_sub(1)
        ))
    })
}

fn host_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
