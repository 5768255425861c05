//! The errors a client gets from the secret driver, with libvirt's codes
//! and wording (`VIR_FROM_SECRET`).

use virterror::{ErrorCode, ErrorDomain, VirError};
use virxml::XmlError;

pub(crate) fn err(code: ErrorCode, message: impl Into<String>) -> VirError {
    VirError::new(code, ErrorDomain::Secret, message)
}

/// `VIR_ERR_INTERNAL_ERROR`: libvirt's code for most invalid definitions.
pub(crate) fn internal(message: impl std::fmt::Display) -> VirError {
    err(
        ErrorCode::InternalError,
        format!("internal error: {message}"),
    )
}

/// `VIR_ERR_XML_ERROR`.
pub(crate) fn xml(message: impl std::fmt::Display) -> VirError {
    err(ErrorCode::XmlError, format!("XML error: {message}"))
}

/// An error of the shared XML layer, with the code it chose.
pub(crate) fn from_xml(e: &XmlError) -> VirError {
    err(e.code(), e.to_string())
}

/// `VIR_ERR_NO_SECRET`.
pub(crate) fn no_secret(what: impl std::fmt::Display) -> VirError {
    err(ErrorCode::NoSecret, format!("Secret not found: {what}"))
}

pub(crate) fn no_uuid(uuid: &uuid::Uuid) -> VirError {
    no_secret(format_args!("no secret with matching uuid '{uuid}'"))
}

/// A failed write or removal under the daemon's root.
pub(crate) fn io(what: impl std::fmt::Display, e: &std::io::Error) -> VirError {
    err(ErrorCode::SystemError, format!("{what}: {e}"))
}
