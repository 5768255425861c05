//! CPU models: their names, the baseline of several CPUs, and whether the
//! hypervisor can provide a CPU — from QEMU's own expansion of its models
//! (probed on first use, once per emulator binary).

use std::path::Path;
use std::sync::Arc;

use domain::cpu_models::{self, BaselineOptions, CpuCompare, CpuFeatureMap};
use domain::{Accel, DomainType};

use super::Driver;
use crate::{Error, Result};

/// Which hypervisor a CPU is compared against or combined for: an
/// emulator and a virtualization type; `virttype` `None` means any model
/// the emulator knows, runnable or not (the host-only baseline).
#[derive(Debug, Clone, Copy)]
pub struct CpuTarget<'a> {
    pub emulator: Option<&'a Path>,
    pub virttype: Option<DomainType>,
}

impl Driver {
    /// `virsh cpu-models x86_64`: the named models the default emulator
    /// has (not `host`, `max` or `base`, which are modes, not models).
    pub async fn cpu_model_names(&self) -> Result<Vec<String>> {
        let caps = self.emulator_caps(None).await?;
        Ok(caps
            .cpu_models
            .iter()
            .filter(|m| !["host", "max", "base"].contains(&m.name.as_str()))
            .map(|m| m.name.clone())
            .collect())
    }

    /// `virsh hypervisor-cpu-baseline` / `cpu-baseline`: the CPU all of
    /// `cpus` (`<cpu>` documents) can run, on a model the target runs.
    pub async fn cpu_baseline(
        &self,
        target: CpuTarget<'_>,
        cpus: &[String],
        opts: BaselineOptions,
    ) -> Result<String> {
        let specs = cpus
            .iter()
            .map(|x| cpu_models::parse_cpu(x))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(cpu_err)?;
        let map = self.cpu_data(target).await?;
        let runs = runnable(&map, target);
        let opts = BaselineOptions {
            provided_only: target.virttype.is_some(),
            ..opts
        };
        cpu_models::baseline(&specs, &map, runs, opts).map_err(cpu_err)
    }

    /// `virsh hypervisor-cpu-compare`: whether the target can provide
    /// `cpu`, and the features (or model) it lacks.
    pub async fn cpu_compare(
        &self,
        target: CpuTarget<'_>,
        cpu: &str,
    ) -> Result<(CpuCompare, Vec<String>)> {
        let spec = cpu_models::parse_cpu(cpu).map_err(cpu_err)?;
        let map = self.cpu_data(target).await?;
        let runs = runnable(&map, target);
        cpu_models::compare(&spec, &map, runs).map_err(cpu_err)
    }

    /// The emulator's caps and its models' features under `virttype`'s
    /// accelerator (TCG's when there is none: any model counts then).
    async fn cpu_data(&self, target: CpuTarget<'_>) -> Result<Arc<CpuFeatureMap>> {
        let path = target
            .emulator
            .unwrap_or(Path::new(domain::DEFAULT_EMULATOR));
        let accel = match target.virttype {
            Some(DomainType::Kvm) => Accel::Kvm,
            Some(DomainType::Qemu) | None => Accel::Tcg,
        };
        let s = &self.s;
        s.caps
            .cpu_features(path, accel, &s.layout.caps_dir, s.cfg.monitor_timeout)
            .await
    }
}

/// Whether a model runs as it is under the target's accelerator; any
/// model when the target names none.
fn runnable<'a>(map: &'a CpuFeatureMap, target: CpuTarget<'_>) -> impl Fn(&str) -> bool + 'a {
    let any = target.virttype.is_none();
    move |name| any || map.runnable.contains(name)
}

fn cpu_err(e: cpu_models::CpuModelError) -> Error {
    Error::Xml(virterror::ToVirError::to_vir_error(&e))
}
