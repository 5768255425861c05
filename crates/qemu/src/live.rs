//! Changes of a guest's resources besides devices: its memory through
//! the balloon (`setmem`, and `setmaxmem --config`), its vCPU counts in
//! the definition (`setvcpus --config`), a disk's size (`blockresize`),
//! and a disk's write threshold (`domblkthreshold`, whose
//! BLOCK_WRITE_THRESHOLD event becomes BLOCK_THRESHOLD).

use std::sync::Arc;

use joblock::NormalJob;
use qmp::commands::{Balloon, BlockResize, BlockSetWriteThreshold};

use crate::hotplug::{Impact, write_config};
use crate::jobs;
use crate::object::Domain;
use crate::object::def::Def;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// `virDomainSetMemoryFlags`: the guest's current memory (`maximum`:
/// its maximum, in the definition only), in KiB.
pub(crate) async fn set_memory(
    s: &Shared,
    dom: &Domain,
    kib: u64,
    impact: Impact,
    maximum: bool,
) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "setmem", s.cfg.job_wait).await?;
    let (def, impact) = crate::hotplug::prepare(dom, impact)?;
    if maximum && impact.live {
        return Err(Error::OperationInvalid(
            "cannot resize the maximum memory on an active domain".into(),
        ));
    }
    if kib == 0 {
        return Err(Error::InvalidArg(
            "memory size must be greater than zero".into(),
        ));
    }
    let config = match impact.config {
        true => {
            let (c, ()) = def.changed(|d| {
                if maximum {
                    d.memory_kib = kib;
                    d.current_memory_kib = d.current_memory_kib.min(kib);
                } else {
                    d.current_memory_kib = kib;
                }
                Ok(())
            })?;
            if c.current_memory_kib() > c.max_memory_kib() {
                return Err(Error::InvalidArg(
                    "cannot set memory higher than max memory".into(),
                ));
            }
            Some(c)
        }
        false => None,
    };
    if impact.live {
        balloon(s, dom, kib).await?;
    }
    match config {
        Some(c) => write_config(s, dom, c).await,
        None => Ok(()),
    }
}

/// `virDomainSetVcpusFlags`: vCPUs at boot (`maximum`: the maximum), in
/// the definition. A running guest's vCPUs do not change (no vCPU
/// hot-plug): `VIR_ERR_OPERATION_UNSUPPORTED`.
pub(crate) async fn set_vcpus(
    s: &Shared,
    dom: &Domain,
    n: u32,
    impact: Impact,
    maximum: bool,
) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "setvcpus", s.cfg.job_wait).await?;
    let (def, impact) = crate::hotplug::prepare(dom, impact)?;
    if n == 0 {
        return Err(Error::InvalidArg("vCPU count must be at least 1".into()));
    }
    if impact.live && maximum {
        return Err(Error::InvalidArg(
            "maximum vcpu count of a running domain can't be modified".into(),
        ));
    }
    if impact.live {
        crate::hotplug::vcpus::set_live(s, dom, n).await?;
        if !impact.config {
            return Ok(());
        }
    }
    if !maximum && n > def.max_vcpus() {
        return Err(Error::InvalidArg(format!(
            "requested vcpus is greater than max allowable vcpus for the persistent domain: {n} > {}",
            def.max_vcpus()
        )));
    }
    let (c, ()) = def.changed(|d| {
        let max = if maximum { n } else { d.vcpus };
        let current = if maximum { d.boot_vcpus().min(n) } else { n };
        d.vcpus = max;
        d.current_vcpus = (current < max).then_some(current);
        Ok(())
    })?;
    // The whole definition must still hold (CPU topology, NUMA cells,
    // pinning name vCPUs).
    let checked = Def::parse(&c.to_xml())?;
    write_config(s, dom, checked).await
}

async fn balloon(s: &Shared, dom: &Domain, kib: u64) -> Result<()> {
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    if kib > live.max_memory_kib() {
        return Err(Error::InvalidArg(
            "cannot set memory higher than max memory".into(),
        ));
    }
    if !live.has_balloon() {
        return Err(Error::OperationInvalid(
            "Unable to change memory of active domain without the balloon device and guest OS balloon driver".into(),
        ));
    }
    let value = kib.saturating_mul(1024);
    dom.qmp(&Balloon { value }, s.cfg.monitor_timeout).await?;
    let (with, ()) = live.changed(|d| {
        d.current_memory_kib = kib;
        Ok(())
    })?;
    dom.lock().update_live(ctx.generation, |_| with);
    status::persist(s, dom)
}

/// The (format, storage) nodes of the running guest's disk `name`
/// (target or source path).
fn disk_nodes(dom: &Domain, name: &str) -> Result<(String, String)> {
    let g = dom.lock();
    g.active_ctx()?;
    let live = g.live().cloned().ok_or(Error::NotRunning)?;
    let disk = live
        .disk(name)
        .filter(|d| d.source.is_some())
        .ok_or_else(|| {
            Error::InvalidArg(format!("disk '{name}' was not found in the domain config"))
        })?;
    Ok((disk.format_node, disk.storage_node))
}

/// `virDomainBlockResize`: disk `name` becomes `bytes` long.
pub(crate) async fn block_resize(s: &Shared, dom: &Domain, name: &str, bytes: u64) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "blockresize", s.cfg.job_wait).await?;
    let (node_name, _) = disk_nodes(dom, name)?;
    let cmd = BlockResize {
        node_name,
        size: bytes,
    };
    dom.qmp(&cmd, s.cfg.monitor_timeout).await.map(|_| ())
}

/// `virDomainSetBlockThreshold`: one BLOCK_THRESHOLD event when the guest
/// writes past `threshold` bytes of disk `name` (0: none).
pub(crate) async fn set_block_threshold(
    s: &Shared,
    dom: &Arc<Domain>,
    name: &str,
    threshold: u64,
) -> Result<()> {
    let _job = jobs::begin(dom, NormalJob::Modify, "domblkthreshold", s.cfg.job_wait).await?;
    // On the storage node, as libvirt sets it: the threshold is about the
    // host's allocation (a thin volume filling up), not guest offsets.
    let (_, node_name) = disk_nodes(dom, name)?;
    let cmd = BlockSetWriteThreshold {
        node_name,
        write_threshold: threshold,
    };
    dom.qmp(&cmd, s.cfg.monitor_timeout).await.map(|_| ())
}
