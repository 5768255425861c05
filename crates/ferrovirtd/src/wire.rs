//! Conversions between the driver's types and libvirt's wire types.

use std::sync::Arc;

use qemu::{Domain, Driver};
use rpc::protocol::remote::NonnullDomain;
use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

/// The `remote_nonnull_domain` a client uses to name `dom` from now on.
pub(crate) fn wire_domain(dom: &Domain) -> NonnullDomain {
    NonnullDomain {
        name: dom.name().to_owned(),
        uuid: *dom.uuid().as_bytes(),
        id: dom.id().map_or(-1, |id| id as i32),
    }
}

/// Finds the domain a client names. libvirt's own server looks domains up
/// by UUID (names can be reused after undefine + define), so do we.
pub(crate) fn resolve(driver: &Driver, dom: &NonnullDomain) -> Result<Arc<Domain>, VirError> {
    let uuid = uuid::Uuid::from_bytes(dom.uuid);
    driver.lookup_by_uuid(&uuid).map_err(|e| {
        let mut err = e.to_vir_error();
        err.message = format!(
            "Domain not found: no domain with matching uuid '{uuid}' ({})",
            dom.name
        );
        err
    })
}

/// Maps any driver error to what the client will see.
pub(crate) fn vir<E: ToVirError>(e: E) -> VirError {
    e.to_vir_error()
}

/// A flag the procedure does not implement: refused by name, never ignored.
pub(crate) fn unsupported_flags(what: &str, flags: u32) -> VirError {
    // libvirt's own flag check reports VIR_ERR_INVALID_ARG.
    VirError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Qemu,
        format!("unsupported flags (0x{flags:x}) in function {what}"),
    )
}

/// Refuses unknown bits of `flags`.
pub(crate) fn check_flags(what: &str, flags: u32, allowed: u32) -> Result<(), VirError> {
    match flags & !allowed {
        0 => Ok(()),
        extra => Err(unsupported_flags(what, extra)),
    }
}

pub(crate) fn invalid_arg(msg: impl Into<String>) -> VirError {
    VirError::new(ErrorCode::InvalidArg, ErrorDomain::Remote, msg)
}
