//! vCPU and emulator pinning (`virsh vcpupin`, `virsh emulatorpin`): live
//! through the CPU affinity of QEMU's threads (a vCPU's thread from
//! `query-cpus-fast`, the emulator's as every other thread but the I/O
//! threads), and in the definition as `<cputune><vcpupin>` /
//! `<emulatorpin>`, applied at the next start. The definition (live or
//! persistent) is what the pin queries report, as libvirt's do.

use domain::{CpuSet, DomainDef};
use joblock::NormalJob;
use qmp::commands::QueryIothreads;
use qmp::types::stats::QueryCpusFast;

use super::{Impact, prepare, write_config};
use crate::jobs;
use crate::lifecycle::host::{pinning, threads};
use crate::object::Domain;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// What a pin applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinTarget {
    /// vCPU number N.
    Vcpu(u32),
    /// QEMU's threads other than the vCPUs' and the I/O threads'.
    Emulator,
}

/// The pins of a definition, each resolved to the host CPUs it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinInfo {
    /// By vCPU number, every vCPU the definition has.
    pub vcpus: Vec<CpuSet>,
    pub emulator: CpuSet,
}

/// Pins `target` to `set`, where `impact` says.
pub(crate) async fn pin(
    s: &Shared,
    dom: &Domain,
    target: PinTarget,
    set: CpuSet,
    impact: Impact,
) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "pin", s.cfg.job_wait).await?;
    let (def, impact) = prepare(dom, impact)?;
    if set.is_empty() {
        return Err(Error::InvalidArg("Empty cpu list for pinning".into()));
    }
    let config = match impact.config {
        true => {
            check_vcpu(def.domain(), target, "persistent")?;
            Some(def.changed(|d| set_pin(d, target, &set))?.0)
        }
        false => None,
    };
    if impact.live {
        pin_live(s, dom, target, &set).await?;
    }
    match config {
        Some(c) => write_config(s, dom, c).await,
        None => Ok(()),
    }
}

fn check_vcpu(d: &DomainDef, target: PinTarget, which: &str) -> Result<()> {
    match target {
        PinTarget::Vcpu(v) if v >= d.vcpus => Err(Error::InvalidArg(format!(
            "vcpu {v} is out of range of {which} cpu count {}",
            d.vcpus
        ))),
        _ => Ok(()),
    }
}

fn set_pin(d: &mut DomainDef, target: PinTarget, set: &CpuSet) -> Result<(), domain::DeviceError> {
    match target {
        PinTarget::Vcpu(v) => {
            let pins = &mut d.cputune.vcpupins;
            pins.retain(|(x, _)| *x != v);
            pins.push((v, set.clone()));
            pins.sort_by_key(|(x, _)| *x);
        }
        PinTarget::Emulator => d.cputune.emulatorpin = Some(set.clone()),
    }
    Ok(())
}

/// Sets the affinity of the running QEMU's threads, then records the pin
/// in the live definition.
async fn pin_live(s: &Shared, dom: &Domain, target: PinTarget, set: &CpuSet) -> Result<()> {
    let (ctx, live, pid) = {
        let g = dom.lock();
        let pid = g
            .run()
            .map(|r| r.process().pid())
            .ok_or(Error::NotRunning)?;
        (
            g.active_ctx()?,
            g.live().cloned().ok_or(Error::NotRunning)?,
            pid,
        )
    };
    let t = s.cfg.monitor_timeout;
    match target {
        PinTarget::Vcpu(v) => {
            let cpus = dom.qmp(&QueryCpusFast, t).await?;
            let tid = cpus
                .iter()
                .find(|c| c.cpu_index == Some(u64::from(v)))
                .and_then(|c| i32::try_from(c.thread_id?).ok());
            let Some(tid) = tid else {
                return Err(Error::InvalidArg(format!(
                    "vcpu {v} is out of range of live cpu count {}",
                    cpus.len()
                )));
            };
            pinning::pin(tid, set, &format!("vcpupin of vCPU {v}"))?;
        }
        PinTarget::Emulator => {
            let th = threads(dom, pid, t).await?;
            let io: Vec<i32> = dom
                .qmp(&QueryIothreads, t)
                .await?
                .iter()
                .filter_map(|x| i32::try_from(x.thread_id?).ok())
                .collect();
            for tid in th.others.iter().filter(|x| !io.contains(x)) {
                pinning::pin(*tid, set, "emulatorpin")?;
            }
        }
    }
    let (with, ()) = live.changed(|d| set_pin(d, target, set))?;
    dom.lock().update_live(ctx.generation, |_| with);
    status::persist(s, dom)
}

/// The pins of the live definition (`config`: the persistent one): an
/// explicit pin, else `<vcpu cpuset>`, else every host CPU.
pub(crate) fn info(dom: &Domain, config: bool) -> Result<PinInfo> {
    let def = {
        let g = dom.lock();
        match (config, g.live()) {
            (false, Some(l)) => l.clone(),
            (false, None) => return Err(Error::NotRunning),
            (true, _) => g.def().clone(),
        }
    };
    let d = def.domain();
    let all = host_cpus()?;
    let default = d.vcpu_cpuset.clone().unwrap_or_else(|| all.clone());
    let vcpus = (0..d.vcpus)
        .map(|v| {
            let pinned = d.cputune.vcpupins.iter().find(|(x, _)| *x == v);
            pinned.map_or_else(|| default.clone(), |(_, s)| s.clone())
        })
        .collect();
    let emulator = d.cputune.emulatorpin.clone().unwrap_or(default);
    Ok(PinInfo { vcpus, emulator })
}

/// The host's CPUs (`/sys/devices/system/cpu/present`).
fn host_cpus() -> Result<CpuSet> {
    let path = "/sys/devices/system/cpu/present";
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("cannot read {path}"), e))?;
    CpuSet::parse("present CPUs", text.trim())
        .map_err(|e| Error::Internal(format!("cannot parse {path}: {e}")))
}
