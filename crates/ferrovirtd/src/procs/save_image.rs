//! The XML inside save images: `virsh save-image-dumpxml` and
//! `save-image-define` (`save-image-edit` is those two in a row).
//!
//! As in libvirt, reading the XML is allowed on the read-only socket
//! unless the secure flag is asked for; replacing it is mutating and was
//! refused before reaching here.

use bytes::Bytes;
use qemu::Driver;
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainSaveImageDefineXmlArgs, DomainSaveImageGetXmlDescArgs, DomainSaveImageGetXmlDescRet,
    procedure as p,
};
use rpc::server::{decode_args, encode_ret};
use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::dispatch::Daemon;
use crate::procs::longjobs::{SAVE_PAUSED, SAVE_RUNNING, abs_path, running_flag};
use crate::wire::{check_flags, vir};

type Reply = Result<Bytes, VirError>;

/// VIR_DOMAIN_SAVE_IMAGE_XML_SECURE (= VIR_DOMAIN_XML_SECURE).
const XML_SECURE: u32 = 1;

/// Serves a save-image procedure, or `None` if `proc_` is not one.
pub(crate) async fn call(d: &Daemon, ctx: &CallContext, proc_: i32, args: &[u8]) -> Option<Reply> {
    let drv = &d.driver;
    Some(match proc_ {
        p::DOMAIN_SAVE_IMAGE_GET_XML_DESC => get_xml_desc(drv, ctx, decode_args(proc_, args)).await,
        p::DOMAIN_SAVE_IMAGE_DEFINE_XML => define_xml(drv, decode_args(proc_, args)).await,
        _ => return None,
    })
}

async fn get_xml_desc(
    drv: &Driver,
    ctx: &CallContext,
    a: Result<DomainSaveImageGetXmlDescArgs, VirError>,
) -> Reply {
    let a = a?;
    check_flags("virDomainSaveImageGetXMLDesc", a.flags, XML_SECURE)?;
    if ctx.readonly && a.flags & XML_SECURE != 0 {
        return Err(VirError::new(
            ErrorCode::OperationDenied,
            ErrorDomain::Remote,
            "operation forbidden: virDomainSaveImageGetXMLDesc with secure flag",
        ));
    }
    // No secrets are kept in the XML, so the secure flag changes nothing.
    let xml = drv.save_image_xml(&abs_path(&a.file)?).await.map_err(vir)?;
    encode_ret(&DomainSaveImageGetXmlDescRet { xml })
}

async fn define_xml(drv: &Driver, a: Result<DomainSaveImageDefineXmlArgs, VirError>) -> Reply {
    let a = a?;
    check_flags(
        "virDomainSaveImageDefineXML",
        a.flags,
        SAVE_RUNNING | SAVE_PAUSED,
    )?;
    let after = running_flag(a.flags)?;
    drv.save_image_define(&abs_path(&a.file)?, &a.dxml, after)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}
