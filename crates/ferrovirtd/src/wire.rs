//! Conversions between the driver's types and libvirt's wire types, and
//! the errors handlers share.

use std::path::PathBuf;
use std::sync::Arc;

use qemu::{Domain, DomainEvent, DomainSummary, Driver};
use rpc::protocol::remote::{NonnullDomain, NonnullSecret};
use secret::SecretHandle;
use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

/// The `remote_nonnull_domain` a client uses to name `dom` from now on.
pub(crate) fn wire_domain(dom: &Domain) -> NonnullDomain {
    nonnull_domain(dom.name(), dom.uuid(), dom.id())
}

/// The `remote_nonnull_domain` of a listed domain.
pub(crate) fn listed_domain(s: DomainSummary) -> NonnullDomain {
    NonnullDomain {
        name: s.name,
        uuid: *s.uuid.as_bytes(),
        id: wire_id(s.id),
    }
}

/// The `remote_nonnull_domain` an event names.
pub(crate) fn event_domain(ev: &DomainEvent) -> NonnullDomain {
    NonnullDomain {
        name: ev.name.clone(),
        uuid: *ev.uuid.as_bytes(),
        id: ev.id,
    }
}

fn nonnull_domain(name: &str, uuid: uuid::Uuid, id: Option<u32>) -> NonnullDomain {
    NonnullDomain {
        name: name.to_owned(),
        uuid: *uuid.as_bytes(),
        id: wire_id(id),
    }
}

/// The `remote_nonnull_secret` a client names a secret by.
pub(crate) fn wire_secret(h: &SecretHandle) -> NonnullSecret {
    NonnullSecret {
        uuid: *h.uuid.as_bytes(),
        usage_type: h.usage_type as i32,
        usage_id: h.usage_id.clone(),
    }
}

/// A domain id on the wire: -1 for an inactive domain.
pub(crate) fn wire_id(id: Option<u32>) -> i32 {
    id.map_or(-1, |id| i32::try_from(id).unwrap_or(i32::MAX))
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

pub(crate) fn invalid_arg(msg: impl Into<String>) -> VirError {
    VirError::new(ErrorCode::InvalidArg, ErrorDomain::Remote, msg)
}

/// `VIR_ERR_OPERATION_DENIED`, for what the read-only socket may not ask
/// even of a procedure it may call (a flag such as `VIR_DOMAIN_XML_SECURE`).
pub(crate) fn forbidden(what: &str) -> VirError {
    VirError::new(
        ErrorCode::OperationDenied,
        ErrorDomain::Remote,
        format!("operation forbidden: {what}"),
    )
}

/// A path argument; libvirt's daemon resolves no relative paths.
pub(crate) fn abs_path(p: &str) -> Result<PathBuf, VirError> {
    if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(invalid_arg(format!("path '{p}' is not absolute")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() {
        assert_eq!(wire_id(None), -1);
        assert_eq!(wire_id(Some(7)), 7);
        assert_eq!(wire_id(Some(u32::MAX)), i32::MAX);
        assert!(abs_path("/a/b").is_ok());
        assert_eq!(abs_path("a").unwrap_err().code, ErrorCode::InvalidArg);
    }
}
