//! A UEFI guest's variable store: copied from its template the first time
//! the domain starts, kept across runs, removed by `undefine --nvram`.

use std::path::Path;

use domain::DomainDef;

use crate::store::files;
use crate::{Error, Result};

/// Makes sure the NVRAM file exists, copying the template when it does not.
pub(crate) fn ensure(def: &DomainDef) -> Result<()> {
    let Some((path, template)) = def.nvram() else {
        return Ok(());
    };
    if path.exists() {
        return Ok(());
    }
    let template = template.ok_or_else(|| {
        Error::OperationInvalid(format!(
            "unable to find any master var store for loader of domain '{}'",
            def.name
        ))
    })?;
    copy(template, path)
}

/// Copies atomically, so a crash never leaves half a variable store.
fn copy(template: &Path, path: &Path) -> Result<()> {
    let data = std::fs::read(template).map_err(|e| {
        Error::io(
            format!("cannot read NVRAM template {}", template.display()),
            e,
        )
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    files::atomic_write(path, &data)
        .map_err(|e| Error::io(format!("cannot create NVRAM file {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_template_once() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("VARS.fd");
        std::fs::write(&template, b"vars").unwrap();
        let nvram = dir.path().join("nv/vm_VARS.fd");
        let def = DomainDef::parse(&format!(
            "<domain type='qemu'><name>vm</name><memory unit='MiB'>64</memory><os>\
             <type machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/x/CODE.fd</loader>\
             <nvram template='{}'>{}</nvram></os></domain>",
            template.display(),
            nvram.display()
        ))
        .unwrap();
        ensure(&def).unwrap();
        assert_eq!(std::fs::read(&nvram).unwrap(), b"vars");
        std::fs::write(&nvram, b"guest wrote this").unwrap();
        ensure(&def).unwrap();
        assert_eq!(std::fs::read(&nvram).unwrap(), b"guest wrote this");
    }
}
