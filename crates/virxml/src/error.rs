//! Errors of XML parsing and validation, each with the libvirt error number
//! a client gets for the same mistake from libvirtd.

use virterror::ErrorCode;

/// What is wrong with a document. The caller adds the error domain (domain,
/// storage, network) when it turns this into a `VirError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The text is not well-formed XML, is too large or too deep, or uses a
    /// DOCTYPE (refused so that entity expansion can never be used against
    /// the daemon).
    #[error("XML error: {0}")]
    Malformed(String),
    /// Well-formed, but structurally wrong: wrong root, a required element
    /// or attribute missing, two elements in conflict.
    #[error("XML error: {0}")]
    Structure(String),
    /// An element this implementation does not know. Reported rather than
    /// dropped: silently ignoring it would give the user something other
    /// than what was asked for.
    #[error("unsupported configuration: unknown element <{0}>")]
    UnknownElement(String),
    /// An attribute this implementation does not know, same reasoning.
    #[error("unsupported configuration: unknown attribute '{attr}' of <{element}>")]
    UnknownAttribute { element: String, attr: String },
    /// A known element or attribute with a value that is not supported.
    #[error("unsupported configuration: {what} '{value}' is not supported{detail}")]
    Unsupported {
        what: String,
        value: String,
        detail: String,
    },
    /// A value that cannot be parsed or is out of range.
    #[error("invalid value '{value}' for {what}: {reason}")]
    InvalidValue {
        what: String,
        value: String,
        reason: String,
    },
    /// A number too large for its type (VIR_ERR_OVERFLOW, as libvirt's
    /// scaled-integer parser reports it).
    #[error("value too large: {0}")]
    Overflow(String),
}

impl XmlError {
    pub fn malformed(msg: impl std::fmt::Display) -> Self {
        Self::Malformed(msg.to_string())
    }

    pub fn structure(msg: impl Into<String>) -> Self {
        Self::Structure(msg.into())
    }

    pub fn unsupported(what: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Unsupported {
            what: what.into(),
            value: value.into(),
            detail: String::new(),
        }
    }

    pub fn unsupported_because(
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

    pub fn invalid(
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
            Self::Overflow(_) => ErrorCode::Overflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(XmlError::malformed("x").code(), ErrorCode::XmlError);
        assert_eq!(
            XmlError::unsupported("pool type", "iscsi").code(),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            XmlError::invalid("<capacity>", "x", "not a number").code(),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            XmlError::unsupported_because("pool type", "rbd", "only 'dir' is").to_string(),
            "unsupported configuration: pool type 'rbd' is not supported: only 'dir' is"
        );
    }
}
