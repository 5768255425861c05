//! Errors of the domain XML layer and their libvirt error numbers.
//!
//! Every variant maps to exactly one `virErrorNumber` so that `virsh define`
//! against ferrovirt fails with the same code a libvirt client would get from
//! libvirtd for the same mistake (scripts match on codes, users on messages).
//! What every libvirt document shares (malformed XML, unknown elements,
//! unsupported or invalid values) is `virxml`'s [`XmlError`]; the variants
//! here are the domain's own.

use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};
use virxml::XmlError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainXmlError {
    /// A mistake any libvirt document can have (see [`XmlError`]).
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// `<os><type>` other than hvm (VIR_ERR_OS_TYPE, as libvirt).
    #[error("unknown OS type: {0}")]
    OsType(String),
    /// `<name>` absent or empty (VIR_ERR_NO_NAME, as libvirt).
    #[error("missing name information in domain")]
    MissingName,
    /// A disk of device 'disk' with no `<source>` (VIR_ERR_NO_SOURCE).
    #[error("missing source information for disk '{0}'")]
    NoSource(String),
    /// No installed firmware satisfies the request (VIR_ERR_OPERATION_FAILED,
    /// as libvirt reports it).
    #[error("operation failed: {0}")]
    NoFirmware(String),
    /// A launch-time problem caused by the caller's parameters rather than
    /// the XML (e.g. KVM requested but the emulator reports no KVM).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DomainXmlError {
    pub(crate) fn structure(msg: impl Into<String>) -> Self {
        XmlError::structure(msg).into()
    }

    pub(crate) fn unknown_element(path: impl Into<String>) -> Self {
        XmlError::UnknownElement(path.into()).into()
    }

    pub(crate) fn unsupported(what: impl Into<String>, value: impl Into<String>) -> Self {
        XmlError::unsupported(what, value).into()
    }

    pub(crate) fn unsupported_because(
        what: impl Into<String>,
        value: impl Into<String>,
        detail: impl AsRef<str>,
    ) -> Self {
        XmlError::unsupported_because(what, value, detail).into()
    }

    pub(crate) fn invalid(
        what: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        XmlError::invalid(what, value, reason).into()
    }

    /// The libvirt error number a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Xml(e) => e.code(),
            Self::MissingName => ErrorCode::NoName,
            Self::OsType(_) => ErrorCode::OsType,
            Self::NoSource(_) => ErrorCode::NoSource,
            Self::NoFirmware(_) => ErrorCode::OperationFailed,
            Self::InvalidArgument(_) => ErrorCode::InvalidArg,
        }
    }
}

impl ToVirError for DomainXmlError {
    fn to_vir_error(&self) -> VirError {
        VirError::new(self.code(), ErrorDomain::Domain, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_domain() {
        let e = DomainXmlError::unsupported("disk bus", "usb");
        let v = e.to_vir_error();
        assert_eq!(v.code, ErrorCode::ConfigUnsupported);
        assert_eq!(v.domain, ErrorDomain::Domain);
        assert_eq!(
            v.message,
            "unsupported configuration: disk bus 'usb' is not supported"
        );
        assert_eq!(DomainXmlError::MissingName.code(), ErrorCode::NoName);
        assert_eq!(
            DomainXmlError::unknown_element("devices/hostdev").code(),
            ErrorCode::ConfigUnsupported
        );
    }
}
