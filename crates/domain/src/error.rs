//! Errors of the domain XML layer and their libvirt error numbers.
//!
//! Every variant maps to exactly one `virErrorNumber` so that `virsh define`
//! against ferrovirt fails with the same code a libvirt client would get from
//! libvirtd for the same mistake (scripts match on codes, users on messages).

use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainXmlError {
    /// The text is not well-formed XML (or uses a DOCTYPE, which we refuse
    /// so that entity expansion can never be used against the daemon).
    #[error("XML error: {0}")]
    Malformed(String),
    /// Well-formed, but structurally wrong: wrong root, a required element or
    /// attribute missing, a conflict between elements (libvirt raises
    /// VIR_ERR_XML_ERROR for these).
    #[error("XML error: {0}")]
    Structure(String),
    /// An element this implementation does not know. Reported rather than
    /// dropped: a silently ignored element is a guest that differs from
    /// what the user asked for.
    #[error("unsupported configuration: unknown element <{0}>")]
    UnknownElement(String),
    /// An attribute this implementation does not know, same reasoning.
    #[error("unsupported configuration: unknown attribute '{attr}' of <{element}>")]
    UnknownAttribute { element: String, attr: String },
    /// A known element or attribute with a value we do not support
    /// (`what` names it, e.g. "disk bus" or "<interface type>").
    #[error("unsupported configuration: {what} '{value}' is not supported{detail}")]
    Unsupported {
        what: String,
        value: String,
        detail: String,
    },
    /// A value that cannot be parsed or is out of range (bad unit, overflow,
    /// vcpu 0, memory too small, bad uuid/mac).
    #[error("invalid value '{value}' for {what}: {reason}")]
    InvalidValue {
        what: String,
        value: String,
        reason: String,
    },
    /// `<os><type>` other than hvm (VIR_ERR_OS_TYPE, as libvirt).
    #[error("unknown OS type: {0}")]
    OsType(String),
    /// `<name>` absent or empty (VIR_ERR_NO_NAME, as libvirt).
    #[error("missing name information in domain")]
    MissingName,
    /// A disk of device 'disk' with no `<source>` (VIR_ERR_NO_SOURCE).
    #[error("missing source information for disk '{0}'")]
    NoSource(String),
    /// A launch-time problem caused by the caller's parameters rather than
    /// the XML (e.g. KVM requested but the emulator reports no KVM).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DomainXmlError {
    pub(crate) fn structure(msg: impl Into<String>) -> Self {
        Self::Structure(msg.into())
    }

    pub(crate) fn unsupported(what: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Unsupported {
            what: what.into(),
            value: value.into(),
            detail: String::new(),
        }
    }

    pub(crate) fn unsupported_because(
        what: impl Into<String>,
        value: impl Into<String>,
        detail: impl AsRef<str>,
    ) -> Self {
        Self::Unsupported {
            what: what.into(),
            value: value.into(),
            detail: format!(": {}", detail.as_ref()),
        }
    }

    pub(crate) fn invalid(
        what: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            what: what.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The libvirt error number a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::Structure(_) => ErrorCode::XmlError,
            Self::UnknownElement(_) | Self::UnknownAttribute { .. } | Self::Unsupported { .. } => {
                ErrorCode::ConfigUnsupported
            }
            Self::InvalidValue { .. } => ErrorCode::XmlDetail,
            Self::MissingName => ErrorCode::NoName,
            Self::OsType(_) => ErrorCode::OsType,
            Self::NoSource(_) => ErrorCode::NoSource,
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
    }
}
