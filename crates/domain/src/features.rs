//! `<features>`: machine and CPU features (ACPI, SMM, VMware port, PMU,
//! the IOAPIC's driver), Hyper-V enlightenments for Windows, and KVM's
//! paravirtual features.

use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, empty_element, named, named_enum, on_off, parse_on_off, uint_attr,
};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<ioapic driver>`.
    pub enum IoapicDriver {
        Kvm = "kvm",
        Qemu = "qemu",
    }
}

named_enum! {
    /// `<hyperv mode>`.
    pub enum HypervMode {
        Custom = "custom",
        Passthrough = "passthrough",
    }
}

named_enum! {
    /// The Hyper-V enlightenments, each `<NAME state='on|off'/>`.
    pub enum HypervFeature {
        Relaxed = "relaxed",
        Vapic = "vapic",
        Spinlocks = "spinlocks",
        Vpindex = "vpindex",
        Runtime = "runtime",
        Synic = "synic",
        Stimer = "stimer",
        Reset = "reset",
        VendorId = "vendor_id",
        Frequencies = "frequencies",
        Reenlightenment = "reenlightenment",
        Tlbflush = "tlbflush",
        Ipi = "ipi",
        Evmcs = "evmcs",
    }
}

impl HypervFeature {
    /// QEMU's `-cpu` property.
    pub fn qemu_prop(self) -> &'static str {
        match self {
            HypervFeature::Relaxed => "hv-relaxed",
            HypervFeature::Vapic => "hv-vapic",
            HypervFeature::Spinlocks => "hv-spinlocks",
            HypervFeature::Vpindex => "hv-vpindex",
            HypervFeature::Runtime => "hv-runtime",
            HypervFeature::Synic => "hv-synic",
            HypervFeature::Stimer => "hv-stimer",
            HypervFeature::Reset => "hv-reset",
            HypervFeature::VendorId => "hv-vendor-id",
            HypervFeature::Frequencies => "hv-frequencies",
            HypervFeature::Reenlightenment => "hv-reenlightenment",
            HypervFeature::Tlbflush => "hv-tlbflush",
            HypervFeature::Ipi => "hv-ipi",
            HypervFeature::Evmcs => "hv-evmcs",
        }
    }
}

named_enum! {
    /// `<kvm>` children.
    pub enum KvmFeature {
        Hidden = "hidden",
        HintDedicated = "hint-dedicated",
        PollControl = "poll-control",
        PvIpi = "pv-ipi",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HypervDef {
    pub mode: Option<HypervMode>,
    pub features: Vec<(HypervFeature, bool)>,
    /// `<spinlocks retries>` (at least 4095).
    pub spinlocks_retries: Option<u32>,
    /// `<vendor_id value>` (at most 12 characters).
    pub vendor_id: Option<String>,
    /// `<stimer><direct state>`.
    pub stimer_direct: Option<bool>,
}

impl HypervDef {
    pub fn is_on(&self, f: HypervFeature) -> bool {
        self.features.iter().any(|(x, on)| *x == f && *on)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    pub acpi: bool,
    pub apic: bool,
    /// `<apic eoi>`: paravirtual end-of-interrupt.
    pub apic_eoi: Option<bool>,
    pub pae: bool,
    /// `<vmport state='on|off'/>` (virt-manager writes `off` for q35).
    pub vmport: Option<bool>,
    pub smm: Option<bool>,
    pub pmu: Option<bool>,
    pub ioapic: Option<IoapicDriver>,
    pub vmcoreinfo: Option<bool>,
    pub pvspinlock: Option<bool>,
    pub hyperv: Option<HypervDef>,
    pub kvm: Vec<(KvmFeature, bool)>,
}

const CHILDREN: &[&str] = &[
    "acpi",
    "apic",
    "pae",
    "vmport",
    "smm",
    "pmu",
    "ioapic",
    "vmcoreinfo",
    "pvspinlock",
    "hyperv",
    "kvm",
];

pub(crate) fn parse_features(el: &XmlElement) -> Result<Features, DomainXmlError> {
    el.check_attrs("features", &[])?;
    el.check_children("features", CHILDREN)?;
    check_singletons(el, "features", CHILDREN)?;
    let mut f = Features::default();
    for c in el.elements() {
        let path = format!("features/{}", c.name);
        match c.name.as_str() {
            "acpi" => {
                empty_element(c, &path)?;
                f.acpi = true;
            }
            "pae" => {
                empty_element(c, &path)?;
                f.pae = true;
            }
            "apic" => {
                c.check_attrs(&path, &["eoi"])?;
                c.check_children(&path, &[])?;
                f.apic = true;
                f.apic_eoi = c
                    .attr("eoi")
                    .map(|v| parse_on_off("<features/apic eoi>", v))
                    .transpose()?;
            }
            "ioapic" => {
                c.check_attrs(&path, &["driver"])?;
                c.check_children(&path, &[])?;
                f.ioapic = Some(named(
                    "ioapic driver",
                    c.req_attr(&path, "driver")?,
                    IoapicDriver::from_name,
                )?);
            }
            "hyperv" => f.hyperv = Some(parse_hyperv(c)?),
            "kvm" => f.kvm = parse_kvm(c)?,
            "smm" => f.smm = Some(parse_smm(c)?),
            _ => {
                let v = state(c, &path)?;
                match c.name.as_str() {
                    "vmport" => f.vmport = Some(v),
                    "pmu" => f.pmu = Some(v),
                    "vmcoreinfo" => f.vmcoreinfo = Some(v),
                    _ => f.pvspinlock = Some(v),
                }
            }
        }
    }
    Ok(f)
}

/// `<X state='on|off'/>` (an absent state means on).
fn state(c: &XmlElement, path: &str) -> Result<bool, DomainXmlError> {
    c.check_attrs(path, &["state"])?;
    c.check_children(path, &[])?;
    c.attr("state")
        .map(|v| parse_on_off(&format!("<{path} state>"), v))
        .unwrap_or(Ok(true))
}

fn parse_smm(c: &XmlElement) -> Result<bool, DomainXmlError> {
    c.check_attrs("features/smm", &["state"])?;
    c.check_children("features/smm", &["tseg"])?;
    if c.child("tseg").is_some() {
        return Err(DomainXmlError::unsupported_because(
            "<features/smm/tseg>",
            "tseg",
            "the SMM TSEG size is not configurable here",
        ));
    }
    c.attr("state")
        .map(|v| parse_on_off("<features/smm state>", v))
        .unwrap_or(Ok(true))
}

fn parse_hyperv(el: &XmlElement) -> Result<HypervDef, DomainXmlError> {
    el.check_attrs("features/hyperv", &["mode"])?;
    let names: Vec<&str> = HypervFeature::ALL.iter().map(|f| f.as_str()).collect();
    el.check_children("features/hyperv", &names)?;
    check_singletons(el, "features/hyperv", &names)?;
    let mut h = HypervDef {
        mode: el
            .attr("mode")
            .map(|m| named("hyperv mode", m, HypervMode::from_name))
            .transpose()?,
        ..HypervDef::default()
    };
    for c in el.elements() {
        let path = format!("features/hyperv/{}", c.name);
        let feat = named("hyperv feature", &c.name, HypervFeature::from_name)?;
        let on = parse_hyperv_feature(c, &path, feat, &mut h)?;
        h.features.push((feat, on));
    }
    Ok(h)
}

fn parse_hyperv_feature(
    c: &XmlElement,
    path: &str,
    feat: HypervFeature,
    h: &mut HypervDef,
) -> Result<bool, DomainXmlError> {
    let extra: &[&str] = match feat {
        HypervFeature::Spinlocks => &["state", "retries"],
        HypervFeature::VendorId => &["state", "value"],
        _ => &["state"],
    };
    c.check_attrs(path, extra)?;
    c.check_children(
        path,
        if feat == HypervFeature::Stimer {
            &["direct"]
        } else {
            &[]
        },
    )?;
    let on = parse_on_off(&format!("<{path} state>"), c.req_attr(path, "state")?)?;
    match feat {
        HypervFeature::Spinlocks if on => {
            let r = uint_attr(c, path, "retries")?.ok_or_else(|| {
                DomainXmlError::structure(
                    "missing attribute 'retries' of <features/hyperv/spinlocks>",
                )
            })?;
            if r < 4095 {
                return Err(DomainXmlError::invalid(
                    "<features/hyperv/spinlocks retries>",
                    r.to_string(),
                    "must be at least 4095",
                ));
            }
            h.spinlocks_retries = Some(r);
        }
        HypervFeature::VendorId if on => {
            let v = c.req_attr(path, "value")?;
            if v.is_empty() || v.len() > 12 || !v.chars().all(|x| x.is_ascii_alphanumeric()) {
                return Err(DomainXmlError::invalid(
                    "<features/hyperv/vendor_id value>",
                    v,
                    "expected 1..12 letters or digits",
                ));
            }
            h.vendor_id = Some(v.to_string());
        }
        HypervFeature::Stimer => {
            if let Some(d) = c.child("direct") {
                h.stimer_direct = Some(state(d, "features/hyperv/stimer/direct")?);
            }
        }
        _ => {}
    }
    Ok(on)
}

fn parse_kvm(el: &XmlElement) -> Result<Vec<(KvmFeature, bool)>, DomainXmlError> {
    el.check_attrs("features/kvm", &[])?;
    let names: Vec<&str> = KvmFeature::ALL.iter().map(|f| f.as_str()).collect();
    el.check_children("features/kvm", &names)?;
    check_singletons(el, "features/kvm", &names)?;
    el.elements()
        .map(|c| {
            let path = format!("features/kvm/{}", c.name);
            let f = named("kvm feature", &c.name, KvmFeature::from_name)?;
            c.check_attrs(&path, &["state"])?;
            c.check_children(&path, &[])?;
            Ok((
                f,
                parse_on_off(&format!("<{path} state>"), c.req_attr(&path, "state")?)?,
            ))
        })
        .collect()
}

pub(crate) fn format_features(w: &mut XmlWriter, f: &Features) {
    if f == &Features::default() {
        return;
    }
    w.open("features", &[]);
    if f.acpi {
        w.empty("acpi", &[]);
    }
    if f.apic {
        let a: Vec<(&str, String)> = f.apic_eoi.map(|e| ("eoi", on_off(e))).into_iter().collect();
        w.empty("apic", &a);
    }
    if f.pae {
        w.empty("pae", &[]);
    }
    if let Some(h) = &f.hyperv {
        format_hyperv(w, h);
    }
    if !f.kvm.is_empty() {
        w.open("kvm", &[]);
        for (k, on) in &f.kvm {
            w.empty(k.as_str(), &[("state", on_off(*on))]);
        }
        w.close("kvm");
    }
    for (name, v) in [
        ("pvspinlock", f.pvspinlock),
        ("pmu", f.pmu),
        ("vmport", f.vmport),
        ("smm", f.smm),
        ("vmcoreinfo", f.vmcoreinfo),
    ] {
        if let Some(v) = v {
            w.empty(name, &[("state", on_off(v))]);
        }
    }
    if let Some(d) = f.ioapic {
        w.empty("ioapic", &[("driver", d.as_str().into())]);
    }
    w.close("features");
}

fn format_hyperv(w: &mut XmlWriter, h: &HypervDef) {
    let a: Vec<(&str, String)> = h
        .mode
        .map(|m| ("mode", m.as_str().to_string()))
        .into_iter()
        .collect();
    if h.features.is_empty() {
        w.empty("hyperv", &a);
        return;
    }
    w.open("hyperv", &a);
    for (feat, on) in &h.features {
        let mut attrs = vec![("state", on_off(*on))];
        match feat {
            HypervFeature::Spinlocks => {
                if let Some(r) = h.spinlocks_retries {
                    attrs.push(("retries", r.to_string()));
                }
            }
            HypervFeature::VendorId => {
                if let Some(v) = &h.vendor_id {
                    attrs.push(("value", v.clone()));
                }
            }
            HypervFeature::Stimer if h.stimer_direct.is_some() => {
                w.open(feat.as_str(), &attrs);
                w.empty(
                    "direct",
                    &[("state", on_off(h.stimer_direct == Some(true)))],
                );
                w.close(feat.as_str());
                continue;
            }
            _ => {}
        }
        w.empty(feat.as_str(), &attrs);
    }
    w.close("hyperv");
}
