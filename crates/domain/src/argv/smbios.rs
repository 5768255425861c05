//! `-smbios` from `<sysinfo>` when `<os><smbios mode='sysinfo'/>`.

use super::{Args, Ctx, esc};
use crate::def::*;
use crate::error::DomainXmlError;

pub(super) fn smbios(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let def = cx.def;
    if def.os.smbios != Some(SmbiosMode::Sysinfo) {
        return Ok(());
    }
    let Some(s) = &def.sysinfo else {
        return Err(DomainXmlError::structure(
            "<smbios mode='sysinfo'/> needs a <sysinfo type='smbios'> block",
        ));
    };
    if let Some(u) = s.entry(SysinfoBlock::System, "uuid")
        && crate::parse::parse_uuid(u).ok() != Some(def.uuid)
    {
        return Err(DomainXmlError::structure(format!(
            "the sysinfo system uuid '{u}' differs from the domain's uuid"
        )));
    }
    for (block, entries) in &s.blocks {
        if entries.is_empty() {
            continue;
        }
        let mut t = format!("type={}", block.smbios_type());
        for (k, v) in entries {
            t.push_str(&format!(",{k}={}", esc(v)));
        }
        a.opt("-smbios", t);
    }
    if !s.oem_strings.is_empty() {
        let mut t = "type=11".to_string();
        for v in &s.oem_strings {
            t.push_str(&format!(",value={}", esc(v)));
        }
        a.opt("-smbios", t);
    }
    Ok(())
}
