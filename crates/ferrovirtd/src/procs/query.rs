//! Domain queries answered from the driver's snapshot: no job, no monitor,
//! so they never wait behind other work.

use rpc::CallContext;
use rpc::protocol::remote::{
    DomainArgs, DomainFlagsArgs, DomainGetAutostartRet, DomainGetControlInfoRet, DomainGetInfoRet,
    DomainGetMaxMemoryRet, DomainGetOsTypeRet, DomainGetStateRet, DomainGetXmlDescRet,
    DomainHasManagedSaveImageRet, DomainIsActiveRet, DomainIsPersistentRet, DomainIsUpdatedRet,
    NumRet,
};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{forbidden, vir};

pub(crate) async fn get_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainGetInfoRet> {
    let i = d.driver.info(&*d.domain(&a.dom)?);
    Ok(DomainGetInfoRet {
        state: u8::try_from(i.state.as_i32()).unwrap_or(0),
        max_mem: i.max_mem_kib,
        memory: i.memory_kib,
        nr_virt_cpu: u16::try_from(i.nr_virt_cpu).unwrap_or(u16::MAX),
        cpu_time: i.cpu_time_ns,
    })
}

pub(crate) async fn get_state(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainGetStateRet> {
    flags::check("virDomainGetState", a.flags, 0)?;
    let s = d.driver.state(&*d.domain(&a.dom)?);
    Ok(DomainGetStateRet {
        state: s.state.as_i32(),
        reason: s.reason,
    })
}

pub(crate) async fn get_control_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainGetControlInfoRet> {
    flags::check("virDomainGetControlInfo", a.flags, 0)?;
    let c = d.driver.control_info(&*d.domain(&a.dom)?);
    Ok(DomainGetControlInfoRet {
        state: c.state as u32,
        details: c.details,
        state_time: c.state_time_ms,
    })
}

/// `virsh dumpxml`. As in libvirt, the read-only socket may not ask for
/// `VIR_DOMAIN_XML_SECURE`, which adds the graphics passwords; a
/// migratable XML is the inactive one.
pub(crate) async fn get_xml_desc(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainGetXmlDescRet> {
    flags::check(
        "virDomainGetXMLDesc",
        a.flags,
        f::XML_SECURE | f::XML_INACTIVE | f::XML_UPDATE_CPU | f::XML_MIGRATABLE,
    )?;
    if ctx.readonly && a.flags & f::XML_SECURE != 0 {
        return Err(forbidden("virDomainGetXMLDesc with secure flag"));
    }
    let inactive = a.flags & (f::XML_INACTIVE | f::XML_MIGRATABLE) != 0;
    let secure = a.flags & f::XML_SECURE != 0;
    let xml = d
        .driver
        .get_xml_with(&*d.domain(&a.dom)?, inactive, secure)
        .map_err(vir)?;
    Ok(DomainGetXmlDescRet { xml })
}

/// Only hardware-virtualised guests are run.
pub(crate) async fn get_os_type(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainGetOsTypeRet> {
    d.domain(&a.dom)?;
    Ok(DomainGetOsTypeRet {
        type_: "hvm".into(),
    })
}

pub(crate) async fn is_active(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainIsActiveRet> {
    Ok(DomainIsActiveRet {
        active: i32::from(d.domain(&a.dom)?.is_active()),
    })
}

pub(crate) async fn is_persistent(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainIsPersistentRet> {
    Ok(DomainIsPersistentRet {
        persistent: i32::from(d.domain(&a.dom)?.is_persistent()),
    })
}

/// Always 0: the driver does not track whether the persistent definition
/// of a running domain differs from the one it runs.
pub(crate) async fn is_updated(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainIsUpdatedRet> {
    d.domain(&a.dom)?;
    Ok(DomainIsUpdatedRet { updated: 0 })
}

pub(crate) async fn get_autostart(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainGetAutostartRet> {
    Ok(DomainGetAutostartRet {
        autostart: i32::from(d.driver.get_autostart(&*d.domain(&a.dom)?)),
    })
}

pub(crate) async fn get_max_memory(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainGetMaxMemoryRet> {
    Ok(DomainGetMaxMemoryRet {
        memory: d.driver.info(&*d.domain(&a.dom)?).max_mem_kib,
    })
}

/// A stat of the image file, no job.
pub(crate) async fn has_managed_save_image(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainHasManagedSaveImageRet> {
    flags::check("virDomainHasManagedSaveImage", a.flags, 0)?;
    Ok(DomainHasManagedSaveImageRet {
        result: i32::from(d.driver.has_managed_save(&*d.domain(&a.dom)?)),
    })
}

pub(crate) async fn get_max_vcpus(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<NumRet> {
    let dom = d.domain(&a.dom)?;
    num(d.driver.vcpus(&dom, !dom.is_active()).1)
}

/// `virsh vcpucount`: vCPUs online at boot (`<vcpu current>`) or at most
/// (`VIR_DOMAIN_VCPU_MAXIMUM`), of the live definition or the persistent
/// one (`VIR_DOMAIN_VCPU_CONFIG`, also for an inactive domain). There is
/// no vCPU hotplug, so the online count is the one the domain started
/// with. Counting what the guest sees (`VIR_DOMAIN_VCPU_GUEST`) needs the
/// guest agent, which ferrovirtd does not talk to; as in libvirt the
/// read-only socket may not ask at all.
pub(crate) async fn get_vcpus_flags(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<NumRet> {
    flags::check(
        "virDomainGetVcpusFlags",
        a.flags,
        f::VCPU_LIVE | f::VCPU_CONFIG | f::VCPU_MAXIMUM | f::VCPU_GUEST,
    )?;
    if a.flags & f::VCPU_GUEST != 0 {
        if ctx.readonly {
            return Err(forbidden(
                "read only access prevents virDomainGetVcpusFlags",
            ));
        }
        return Err(VirError::new(
            ErrorCode::ArgumentUnsupported,
            ErrorDomain::Qemu,
            "argument unsupported: QEMU guest agent is not configured",
        ));
    }
    let dom = d.domain(&a.dom)?;
    let config = a.flags & f::VCPU_CONFIG != 0 || !dom.is_active();
    let (current, max) = d.driver.vcpus(&dom, config);
    num(if a.flags & f::VCPU_MAXIMUM != 0 {
        max
    } else {
        current
    })
}

fn num(n: u32) -> Reply<NumRet> {
    Ok(NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    })
}
