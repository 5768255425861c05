//! Comparing and combining CPU definitions against what an emulator's
//! named CPU models hold: the baseline of several CPUs (the richest model
//! they all can run, plus the features they share beyond it) and whether
//! a hypervisor can provide a CPU.
//!
//! Feature names are QEMU's canonical property names (`lahf-lm`,
//! `sse4.2`, `pclmulqdq`), the names `-cpu` takes; libvirt's spellings of
//! the same features (`lahf_lm`, `sse4_2`, `pclmuldq`) are read as those.
//! What each model holds comes from QEMU itself (a static expansion of
//! every model, see [`CpuFeatureMap`]), so no table of models is kept here.

use std::collections::{BTreeMap, BTreeSet};

use virxml::{XmlElement, XmlError, XmlWriter, parse_document};

/// Every named model's features, and what the hypervisor can give a guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuFeatureMap {
    /// Features each named model turns on (`max`, `host` and `base`
    /// excluded), in QEMU's canonical names.
    pub models: BTreeMap<String, BTreeSet<String>>,
    /// The features of `max` under the accelerator the probe ran with:
    /// everything that hypervisor can provide.
    pub max: BTreeSet<String>,
    /// The models that accelerator runs as they are.
    pub runnable: BTreeSet<String>,
}

/// One CPU as a client describes it: a model, a vendor, and the features
/// it adds to or removes from the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSpec {
    pub model: String,
    pub vendor: Option<String>,
    pub enabled: BTreeSet<String>,
    pub disabled: BTreeSet<String>,
}

/// `virCPUCompareResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum CpuCompare {
    Incompatible = 0,
    Identical = 1,
    Superset = 2,
}

/// Why a baseline or comparison could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuModelError {
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("Unknown CPU model {0}")]
    UnknownModel(String),
    #[error("CPU vendors do not match")]
    VendorMismatch,
    #[error("no CPU model can run the features all the CPUs share")]
    NoModel,
    #[error("no CPUs given")]
    NoCpus,
}

impl virterror::ToVirError for CpuModelError {
    fn to_vir_error(&self) -> virterror::VirError {
        use virterror::{ErrorCode, ErrorDomain, VirError};
        let code = match self {
            CpuModelError::Xml(e) => e.code(),
            CpuModelError::UnknownModel(_) => ErrorCode::InternalError,
            CpuModelError::VendorMismatch | CpuModelError::NoModel => ErrorCode::OperationFailed,
            CpuModelError::NoCpus => ErrorCode::InvalidArg,
        };
        VirError::new(code, ErrorDomain::Qemu, self.to_string())
    }
}

/// The same feature under libvirt's spelling and QEMU's.
fn canonical(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    let aliased = match n.as_str() {
        "pclmuldq" => "pclmulqdq",
        "sse3" => "pni",
        "sse4_1" | "sse4-1" => "sse4.1",
        "sse4_2" | "sse4-2" => "sse4.2",
        "i64" => "lm",
        "xd" => "nx",
        "ffxsr" => "fxsr-opt",
        "fxsr_opt" => "fxsr-opt",
        "cmp_legacy" => "cmp-legacy",
        "tsc_adjust" => "tsc-adjust",
        "hv_spinlocks" => "hv-spinlocks",
        other => return other.replace('_', "-"),
    };
    aliased.to_owned()
}

/// Reads a `<cpu>` element in either of libvirt's forms: the host's
/// (`<feature name>` means present) or a guest's (`<feature policy>`).
pub fn parse_cpu(xml: &str) -> Result<CpuSpec, CpuModelError> {
    let root = parse_document(xml)?;
    if root.local_name() != "cpu" {
        return Err(XmlError::structure(format!(
            "expected a <cpu> element, found <{}>",
            root.local_name()
        ))
        .into());
    }
    cpu_spec(&root)
}

fn cpu_spec(el: &XmlElement) -> Result<CpuSpec, CpuModelError> {
    let model = el
        .child_text("model")
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| XmlError::structure("a CPU without a <model> cannot be compared"))?;
    let mut spec = CpuSpec {
        model,
        vendor: el.child_text("vendor").map(|v| v.trim().to_owned()),
        ..CpuSpec::default()
    };
    for f in el.children_named("feature") {
        let name = canonical(f.req_attr("cpu/feature", "name")?);
        match f.attr("policy").unwrap_or("require") {
            "require" | "force" | "optional" => spec.enabled.insert(name),
            "disable" | "forbid" => spec.disabled.insert(name),
            other => {
                return Err(
                    XmlError::invalid("cpu/feature policy", other, "unknown policy").into(),
                );
            }
        };
    }
    Ok(spec)
}

impl CpuFeatureMap {
    /// The features a CPU has: its model's, with its own changes.
    fn features_of(&self, cpu: &CpuSpec) -> Result<BTreeSet<String>, CpuModelError> {
        let base = self
            .models
            .get(&cpu.model)
            .ok_or_else(|| CpuModelError::UnknownModel(cpu.model.clone()))?;
        let mut f: BTreeSet<String> = base.union(&cpu.enabled).cloned().collect();
        f.retain(|x| !cpu.disabled.contains(x));
        Ok(f)
    }

    /// The richest model `allowed` accepts whose features all lie in
    /// `have` (ties go to the first name).
    fn best_model(&self, have: &BTreeSet<String>, allowed: impl Fn(&str) -> bool) -> Option<&str> {
        let mut best: Option<(&str, usize)> = None;
        for (name, f) in &self.models {
            if !allowed(name) || !f.is_subset(have) {
                continue;
            }
            if best.is_none_or(|(_, n)| f.len() > n) {
                best = Some((name, f.len()));
            }
        }
        best.map(|(n, _)| n)
    }
}

/// How a baseline is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BaselineOptions {
    /// `VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES`: list every feature, not
    /// only those beyond the model.
    pub expand: bool,
    /// `VIR_CONNECT_BASELINE_CPU_MIGRATABLE`: leave out features that
    /// block migration.
    pub migratable: bool,
    /// For a hypervisor: keep only the features it can provide (its
    /// `max`), so the result runs there.
    pub provided_only: bool,
}

/// Features a guest cannot be migrated with.
const NOT_MIGRATABLE: &[&str] = &["invtsc"];

/// The CPU every one of `cpus` can run: the richest model `allowed`
/// accepts within the features they share (and, for a hypervisor, it
/// provides), and those features beyond the model, as a
/// `<cpu mode='custom' match='exact'>` element.
pub fn baseline(
    cpus: &[CpuSpec],
    map: &CpuFeatureMap,
    allowed: impl Fn(&str) -> bool,
    opts: BaselineOptions,
) -> Result<String, CpuModelError> {
    let first = cpus.first().ok_or(CpuModelError::NoCpus)?;
    let vendor = first.vendor.clone();
    if cpus
        .iter()
        .any(|c| c.vendor.is_some() && c.vendor != vendor)
    {
        return Err(CpuModelError::VendorMismatch);
    }
    let mut shared = map.features_of(first)?;
    for c in &cpus[1..] {
        let f = map.features_of(c)?;
        shared.retain(|x| f.contains(x));
    }
    if opts.migratable {
        shared.retain(|x| !NOT_MIGRATABLE.contains(&x.as_str()));
    }
    if opts.provided_only {
        shared.retain(|x| map.max.contains(x));
    }
    let model = map
        .best_model(&shared, allowed)
        .ok_or(CpuModelError::NoModel)?;
    let in_model = &map.models[model];
    let listed: Vec<&String> = if opts.expand {
        shared.iter().collect()
    } else {
        shared.difference(in_model).collect()
    };
    Ok(cpu_xml(model, vendor.as_deref(), &listed))
}

fn cpu_xml(model: &str, vendor: Option<&str>, features: &[&String]) -> String {
    let mut w = XmlWriter::new();
    w.open(
        "cpu",
        &[("mode", "custom".into()), ("match", "exact".into())],
    );
    w.text_elem("model", &[("fallback", "forbid".into())], model);
    if let Some(v) = vendor {
        w.text_elem("vendor", &[], v);
    }
    for f in features {
        w.empty(
            "feature",
            &[("policy", "require".into()), ("name", f.to_string())],
        );
    }
    w.close("cpu");
    w.finish()
}

/// Whether the hypervisor can give a guest `cpu`: `Superset` when its
/// model is one `usable` accepts and every feature it needs is offered,
/// else `Incompatible` with the features that are missing (or the model,
/// when the hypervisor cannot run it as it is).
pub fn compare(
    cpu: &CpuSpec,
    map: &CpuFeatureMap,
    usable: impl Fn(&str) -> bool,
) -> Result<(CpuCompare, Vec<String>), CpuModelError> {
    let need = map.features_of(cpu)?;
    let mut missing: Vec<String> = need.difference(&map.max).cloned().collect();
    if !usable(&cpu.model) && missing.is_empty() {
        missing.push(format!("model {}", cpu.model));
    }
    if missing.is_empty() {
        Ok((CpuCompare::Superset, missing))
    } else {
        Ok((CpuCompare::Incompatible, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    fn map() -> CpuFeatureMap {
        let mut models = BTreeMap::new();
        models.insert("small".to_owned(), set(&["fpu", "sse"]));
        models.insert("mid".to_owned(), set(&["fpu", "sse", "sse2"]));
        models.insert("big".to_owned(), set(&["fpu", "sse", "sse2", "avx"]));
        CpuFeatureMap {
            models,
            max: set(&["fpu", "sse", "sse2", "lahf-lm", "sse4.2"]),
            runnable: set(&["small", "mid"]),
        }
    }

    #[test]
    fn baseline_picks_the_richest_model_within_the_shared_features() {
        let a = parse_cpu(
            "<cpu><model>big</model><vendor>Intel</vendor><feature name='lahf_lm'/></cpu>",
        )
        .unwrap();
        let b = parse_cpu(
            "<cpu mode='custom'><model>mid</model><feature policy='require' name='lahf-lm'/>\
             <feature policy='require' name='sse4_2'/></cpu>",
        )
        .unwrap();
        let xml = baseline(
            &[a.clone(), b.clone()],
            &map(),
            |_| true,
            BaselineOptions::default(),
        )
        .unwrap();
        assert!(xml.contains(">mid</model>"), "{xml}");
        assert!(xml.contains("<vendor>Intel</vendor>"), "{xml}");
        assert!(
            xml.contains("name='lahf-lm'") || xml.contains("name=\"lahf-lm\""),
            "{xml}"
        );
        assert!(!xml.contains("sse4.2") && !xml.contains("avx"), "{xml}");
        // A model the hypervisor cannot run is not chosen; expansion lists all.
        let opts = BaselineOptions {
            expand: true,
            ..BaselineOptions::default()
        };
        let xml = baseline(&[a.clone(), b.clone()], &map(), |m| m != "mid", opts).unwrap();
        assert!(xml.contains(">small</model>"), "{xml}");
        for f in ["fpu", "sse", "sse2", "lahf-lm"] {
            assert!(xml.contains(f), "{f}: {xml}");
        }
        // For a hypervisor, only what it provides.
        let c = parse_cpu("<cpu><model>big</model><feature name='vmx'/></cpu>").unwrap();
        let mut opts = BaselineOptions::default();
        let xml = baseline(std::slice::from_ref(&c), &map(), |_| true, opts).unwrap();
        assert!(xml.contains(">big</model>") && xml.contains("vmx"), "{xml}");
        opts.provided_only = true;
        let xml = baseline(&[c], &map(), |_| true, opts).unwrap();
        assert!(
            xml.contains(">mid</model>") && !xml.contains("vmx"),
            "{xml}"
        );
    }

    #[test]
    fn baseline_refuses_what_cannot_be_combined() {
        let m = map();
        let x = |s: &str| parse_cpu(s).unwrap();
        let intel = x("<cpu><model>big</model><vendor>Intel</vendor></cpu>");
        let amd = x("<cpu><model>big</model><vendor>AMD</vendor></cpu>");
        let opts = BaselineOptions::default();
        assert_eq!(
            baseline(&[intel, amd], &m, |_| true, opts),
            Err(CpuModelError::VendorMismatch)
        );
        let unknown = x("<cpu><model>Nehalem-9000</model></cpu>");
        assert!(matches!(
            baseline(&[unknown], &m, |_| true, opts),
            Err(CpuModelError::UnknownModel(_))
        ));
        let bare = x("<cpu><model>small</model><feature policy='disable' name='fpu'/></cpu>");
        assert_eq!(
            baseline(&[bare], &m, |_| true, opts),
            Err(CpuModelError::NoModel)
        );
        assert!(parse_cpu("<cpu><vendor>Intel</vendor></cpu>").is_err());
        assert!(parse_cpu("<domain/>").is_err());
        assert!(
            parse_cpu("<cpu><model>a</model><feature policy='maybe' name='x'/></cpu>").is_err()
        );
        assert_eq!(
            baseline(&[], &m, |_| true, opts),
            Err(CpuModelError::NoCpus)
        );
    }

    #[test]
    fn compare_needs_every_feature_and_a_usable_model() {
        let m = map();
        let ok =
            parse_cpu("<cpu><model>mid</model><feature policy='require' name='sse4.2'/></cpu>")
                .unwrap();
        assert_eq!(
            compare(&ok, &m, |_| true).unwrap(),
            (CpuCompare::Superset, vec![])
        );
        let (r, missing) = compare(&ok, &m, |_| false).unwrap();
        assert_eq!(
            (r, missing),
            (CpuCompare::Incompatible, vec!["model mid".to_owned()])
        );
        let avx = parse_cpu("<cpu><model>big</model></cpu>").unwrap();
        let (r, missing) = compare(&avx, &m, |_| true).unwrap();
        assert_eq!(
            (r, missing),
            (CpuCompare::Incompatible, vec!["avx".to_owned()])
        );
    }
}
