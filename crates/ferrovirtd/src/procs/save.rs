//! Save, restore and managed save, and the XML inside save images
//! (`virsh save-image-dumpxml` / `save-image-define`; `save-image-edit` is
//! those two in a row).
//!
//! The driver runs save and restore as async jobs driven by QEMU events;
//! these handlers only translate libvirt's arguments and flags.

use qemu::{AfterRestore, SaveOptions};
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainFlagsArgs, DomainRestoreArgs, DomainRestoreFlagsArgs, DomainSaveArgs,
    DomainSaveFlagsArgs, DomainSaveImageDefineXmlArgs, DomainSaveImageGetXmlDescArgs,
    DomainSaveImageGetXmlDescRet,
};
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{abs_path, forbidden, invalid_arg, vir};

/// The `virDomainSaveRestoreFlags` save and restore accept. Bypassing the
/// page cache is accepted and not done (it changes speed, not results).
const SAVE_RESTORE_FLAGS: u32 = f::SAVE_BYPASS_CACHE | f::SAVE_RUNNING | f::SAVE_PAUSED;

pub(crate) async fn save(d: &Daemon, _: &CallContext, a: DomainSaveArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.save(&dom, &abs_path(&a.to)?).await.map_err(vir)
}

/// `virsh save DOM FILE [--xml XML] [--running|--paused]`.
pub(crate) async fn save_flags(d: &Daemon, _: &CallContext, a: DomainSaveFlagsArgs) -> Reply<()> {
    flags::check("virDomainSaveFlags", a.flags, SAVE_RESTORE_FLAGS)?;
    let opts = SaveOptions {
        xml: a.dxml,
        after_restore: run_after(a.flags)?,
    };
    let dom = d.domain(&a.dom)?;
    d.driver
        .save_with(&dom, &abs_path(&a.to)?, &opts)
        .await
        .map_err(vir)
}

pub(crate) async fn restore(d: &Daemon, _: &CallContext, a: DomainRestoreArgs) -> Reply<()> {
    d.driver
        .restore(&abs_path(&a.from)?, None, None)
        .await
        .map_err(vir)?;
    Ok(())
}

/// `virsh restore FILE [--xml XML] [--running|--paused]`.
pub(crate) async fn restore_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainRestoreFlagsArgs,
) -> Reply<()> {
    flags::check("virDomainRestoreFlags", a.flags, SAVE_RESTORE_FLAGS)?;
    d.driver
        .restore(&abs_path(&a.from)?, run_after(a.flags)?, a.dxml.as_deref())
        .await
        .map_err(vir)?;
    Ok(())
}

/// `VIR_DOMAIN_SAVE_RUNNING` / `_PAUSED`: whether the restored guest runs;
/// `None` (the state it was saved in) when neither is given.
fn run_after(flags: u32) -> Result<Option<AfterRestore>, VirError> {
    match (flags & f::SAVE_RUNNING != 0, flags & f::SAVE_PAUSED != 0) {
        (true, true) => Err(invalid_arg("--running and --paused are exclusive")),
        (true, false) => Ok(Some(AfterRestore::Running)),
        (false, true) => Ok(Some(AfterRestore::Paused)),
        (false, false) => Ok(None),
    }
}

pub(crate) async fn managed_save(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check("virDomainManagedSave", a.flags, f::SAVE_BYPASS_CACHE)?;
    let dom = d.domain(&a.dom)?;
    d.driver.managed_save(&dom).await.map_err(vir)
}

pub(crate) async fn managed_save_remove(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<()> {
    flags::check("virDomainManagedSaveRemove", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver.managed_save_remove(&dom).await.map_err(vir)
}

/// `virsh save-image-dumpxml FILE [--security-info]`. As in libvirt the
/// read-only socket may read the XML, but not with the secure flag. No
/// secrets are kept in the XML, so the flag changes nothing otherwise.
pub(crate) async fn save_image_get_xml_desc(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainSaveImageGetXmlDescArgs,
) -> Reply<DomainSaveImageGetXmlDescRet> {
    flags::check(
        "virDomainSaveImageGetXMLDesc",
        a.flags,
        f::SAVE_IMAGE_XML_SECURE,
    )?;
    if ctx.readonly && a.flags & f::SAVE_IMAGE_XML_SECURE != 0 {
        return Err(forbidden("virDomainSaveImageGetXMLDesc with secure flag"));
    }
    let secure = a.flags & f::SAVE_IMAGE_XML_SECURE != 0;
    let xml = d
        .driver
        .save_image_xml_with(&abs_path(&a.file)?, secure)
        .await
        .map_err(vir)?;
    Ok(DomainSaveImageGetXmlDescRet { xml })
}

/// `virsh save-image-define FILE XML [--running|--paused]`.
pub(crate) async fn save_image_define_xml(
    d: &Daemon,
    _: &CallContext,
    a: DomainSaveImageDefineXmlArgs,
) -> Reply<()> {
    flags::check(
        "virDomainSaveImageDefineXML",
        a.flags,
        f::SAVE_RUNNING | f::SAVE_PAUSED,
    )?;
    let running = run_after(a.flags)?;
    d.driver
        .save_image_define(&abs_path(&a.file)?, &a.dxml, running)
        .await
        .map_err(vir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_and_paused() {
        assert_eq!(run_after(0).unwrap(), None);
        assert_eq!(
            run_after(f::SAVE_RUNNING).unwrap(),
            Some(AfterRestore::Running)
        );
        assert_eq!(
            run_after(f::SAVE_PAUSED | f::SAVE_BYPASS_CACHE).unwrap(),
            Some(AfterRestore::Paused)
        );
        let e = run_after(f::SAVE_RUNNING | f::SAVE_PAUSED).unwrap_err();
        assert_eq!(e.code, virterror::ErrorCode::InvalidArg);
    }
}
