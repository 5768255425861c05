//! `<tpm>`: a TPM emulated by `swtpm`, which the driver starts beside QEMU.

use super::format_alias;
use crate::error::DomainXmlError;
use crate::values::{check_singletons, named, named_enum, skip_alias, yes_no, yes_no_attr};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<tpm model>`.
    pub enum TpmModel {
        Tis = "tpm-tis",
        Crb = "tpm-crb",
    }
}

named_enum! {
    /// `<backend type>`: only the emulator (swtpm) is supported; host
    /// passthrough is refused by name.
    pub enum TpmBackendType {
        Emulator = "emulator",
    }
}

named_enum! {
    /// `<backend version>`.
    pub enum TpmVersion {
        V1_2 = "1.2",
        V2_0 = "2.0",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmDef {
    pub model: TpmModel,
    pub version: TpmVersion,
    /// `persistent_state='yes'`: the state survives undefine.
    pub persistent_state: Option<bool>,
}

const P: &str = "tpm";

pub(crate) fn parse_tpm(el: &XmlElement) -> Result<TpmDef, DomainXmlError> {
    el.check_attrs(P, &["model"])?;
    el.check_children(P, &["backend", "alias"])?;
    check_singletons(el, P, &["backend", "alias"])?;
    skip_alias(el, P)?;
    let model = match el.attr("model") {
        Some(m) => named("tpm model", m, TpmModel::from_name)?,
        None => TpmModel::Tis,
    };
    let b = el
        .child("backend")
        .ok_or_else(|| DomainXmlError::structure("missing <backend> of <tpm>"))?;
    const B: &str = "tpm/backend";
    b.check_attrs(B, &["type", "version", "persistent_state"])?;
    b.check_children(B, &[])?;
    let ty = b.req_attr(B, "type")?;
    if ty == "passthrough" {
        return Err(DomainXmlError::unsupported_because(
            "tpm backend type",
            ty,
            "host TPM passthrough is not supported; use type='emulator'",
        ));
    }
    named("tpm backend type", ty, TpmBackendType::from_name)?;
    let version = match b.attr("version") {
        Some(v) => named("tpm backend version", v, TpmVersion::from_name)?,
        None => TpmVersion::V2_0,
    };
    if model == TpmModel::Crb && version != TpmVersion::V2_0 {
        return Err(DomainXmlError::unsupported_because(
            "tpm backend version",
            version.as_str(),
            "tpm-crb is a TPM 2.0 interface",
        ));
    }
    Ok(TpmDef {
        model,
        version,
        persistent_state: yes_no_attr(b, B, "persistent_state")?,
    })
}

pub(crate) fn format_tpm(w: &mut XmlWriter, t: &TpmDef, alias: Option<String>) {
    w.open("tpm", &[("model", t.model.as_str().into())]);
    let mut a = vec![
        ("type", "emulator".to_string()),
        ("version", t.version.as_str().to_string()),
    ];
    if let Some(p) = t.persistent_state {
        a.push(("persistent_state", yes_no(p)));
    }
    w.empty("backend", &a);
    format_alias(w, alias);
    w.close("tpm");
}
