//! CPU models: `virsh cpu-models`, `cpu-baseline`,
//! `hypervisor-cpu-baseline` and `hypervisor-cpu-compare`, and the choice
//! of emulator and virtualization type they share with
//! `domcapabilities`.

use std::path::Path;

use ::domain::DomainType;
use ::domain::cpu_models::{BaselineOptions, CpuCompare};
use qemu::CpuTarget;
use rpc::CallContext;
use rpc::protocol::remote::{
    ConnectBaselineCpuArgs, ConnectBaselineCpuRet, ConnectBaselineHypervisorCpuArgs,
    ConnectCompareCpuRet, ConnectCompareHypervisorCpuArgs, ConnectGetCpuModelNamesArgs,
    ConnectGetCpuModelNamesRet,
};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, connect as f};
use crate::wire::{invalid_arg, vir};

/// The emulator and virtualization type a hypervisor call names, checked
/// as libvirt checks them: the arch must be one the emulator serves, the
/// emulator an absolute path, and the type defaults to kvm only where KVM
/// runs guests.
pub(crate) async fn hypervisor<'a>(
    d: &Daemon,
    emulator: Option<&'a str>,
    arch: Option<&str>,
    virttype: Option<&str>,
) -> Result<(Option<&'a Path>, DomainType), VirError> {
    if let Some(arch) = arch.filter(|x| *x != "x86_64") {
        return Err(invalid_arg(format!(
            "unable to find any emulator to serve '{arch}' architecture"
        )));
    }
    let virttype = match virttype {
        Some("kvm") => DomainType::Kvm,
        Some("qemu") => DomainType::Qemu,
        Some(o) => return Err(invalid_arg(format!("unknown virttype: {o}"))),
        None if d.driver.kvm_available().await => DomainType::Kvm,
        None => DomainType::Qemu,
    };
    let emulator = emulator.map(Path::new);
    if let Some(e) = emulator.filter(|e| !e.is_absolute()) {
        return Err(invalid_arg(format!(
            "emulator binary '{}' must be an absolute path",
            e.display()
        )));
    }
    Ok((emulator, virttype))
}

/// `virsh cpu-models ARCH`.
pub(crate) async fn get_cpu_model_names(
    d: &Daemon,
    _: &CallContext,
    a: ConnectGetCpuModelNamesArgs,
) -> Reply<ConnectGetCpuModelNamesRet> {
    flags::check("virConnectGetCPUModelNames", a.flags, 0)?;
    if a.arch != "x86_64" {
        return Err(invalid_arg(format!(
            "cannot find CPU models for architecture '{}'",
            a.arch
        )));
    }
    let models = d.driver.cpu_model_names().await.map_err(vir)?;
    let ret = i32::try_from(models.len()).unwrap_or(i32::MAX);
    let models = if a.need_results != 0 {
        models
    } else {
        Vec::new()
    };
    Ok(ConnectGetCpuModelNamesRet { models, ret })
}

fn baseline_options(api: &str, flags: u32) -> Result<BaselineOptions, VirError> {
    flags::check(
        api,
        flags,
        f::BASELINE_CPU_EXPAND_FEATURES | f::BASELINE_CPU_MIGRATABLE,
    )?;
    Ok(BaselineOptions {
        expand: flags & f::BASELINE_CPU_EXPAND_FEATURES != 0,
        migratable: flags & f::BASELINE_CPU_MIGRATABLE != 0,
        ..BaselineOptions::default()
    })
}

/// `virsh cpu-baseline FILE`: over every model the emulator knows.
pub(crate) async fn baseline_cpu(
    d: &Daemon,
    _: &CallContext,
    a: ConnectBaselineCpuArgs,
) -> Reply<ConnectBaselineCpuRet> {
    let opts = baseline_options("virConnectBaselineCPU", a.flags)?;
    let target = CpuTarget {
        emulator: None,
        virttype: None,
    };
    let cpu = d
        .driver
        .cpu_baseline(target, &a.xml_cpus, opts)
        .await
        .map_err(vir)?;
    Ok(ConnectBaselineCpuRet { cpu })
}

/// `virsh hypervisor-cpu-baseline FILE`: over the models the hypervisor
/// runs as they are.
pub(crate) async fn baseline_hypervisor_cpu(
    d: &Daemon,
    _: &CallContext,
    a: ConnectBaselineHypervisorCpuArgs,
) -> Reply<ConnectBaselineCpuRet> {
    let opts = baseline_options("virConnectBaselineHypervisorCPU", a.flags)?;
    let (emulator, virttype) = hypervisor(
        d,
        a.emulator.as_deref(),
        a.arch.as_deref(),
        a.virttype.as_deref(),
    )
    .await?;
    let target = CpuTarget {
        emulator,
        virttype: Some(virttype),
    };
    let cpu = d
        .driver
        .cpu_baseline(target, &a.xml_cpus, opts)
        .await
        .map_err(vir)?;
    Ok(ConnectBaselineCpuRet { cpu })
}

/// `virsh hypervisor-cpu-compare FILE [--error]`.
pub(crate) async fn compare_hypervisor_cpu(
    d: &Daemon,
    _: &CallContext,
    a: ConnectCompareHypervisorCpuArgs,
) -> Reply<ConnectCompareCpuRet> {
    flags::check(
        "virConnectCompareHypervisorCPU",
        a.flags,
        f::COMPARE_CPU_FAIL_INCOMPATIBLE | f::COMPARE_CPU_VALIDATE_XML,
    )?;
    let (emulator, virttype) = hypervisor(
        d,
        a.emulator.as_deref(),
        a.arch.as_deref(),
        a.virttype.as_deref(),
    )
    .await?;
    let target = CpuTarget {
        emulator,
        virttype: Some(virttype),
    };
    let (result, missing) = d
        .driver
        .cpu_compare(target, &a.xml_cpu)
        .await
        .map_err(vir)?;
    if result == CpuCompare::Incompatible && a.flags & f::COMPARE_CPU_FAIL_INCOMPATIBLE != 0 {
        return Err(VirError::new(
            ErrorCode::CpuIncompatible,
            ErrorDomain::Qemu,
            format!(
                "the CPU is incompatible with host CPU: Host CPU does not provide required features: {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(ConnectCompareCpuRet {
        result: result as i32,
    })
}
