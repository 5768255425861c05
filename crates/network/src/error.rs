//! Errors of the network driver, each with the libvirt error number a
//! client gets from libvirtd for the same situation.

use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};
use virxml::XmlError;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad network XML (code from the XML layer).
    #[error("{0}")]
    Xml(#[from] XmlError),
    /// A value libvirt refuses as an unsupported configuration, with
    /// libvirt's own wording.
    #[error("unsupported configuration: {0}")]
    ConfigUnsupported(String),
    /// No network by that name or uuid.
    #[error("Network not found: {0}")]
    NoNetwork(String),
    /// Another network already has that name or uuid.
    #[error("operation failed: {0}")]
    Exists(String),
    /// The network is in the wrong state for the request.
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    /// A valid request this driver does not implement.
    #[error("Operation not supported: {0}")]
    Unsupported(String),
    /// An argument is out of range or contradicts another.
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// What libvirt reports as an internal error although the cause is
    /// outside: a DHCP range outside its subnet, a bridge name or a subnet
    /// already in use.
    #[error("internal error: {0}")]
    Internal(String),
    /// A system call or netlink request failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A helper (nft, tc, dnsmasq) failed or missed its deadline.
    #[error("internal error: {0}")]
    Helper(String),
    /// A job on the network could not be had in time.
    #[error("{0}")]
    Job(#[from] joblock::JobError),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// The libvirt error number a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Xml(e) => e.code(),
            Self::ConfigUnsupported(_) => ErrorCode::ConfigUnsupported,
            Self::NoNetwork(_) => ErrorCode::NoNetwork,
            Self::Exists(_) => ErrorCode::OperationFailed,
            Self::OperationInvalid(_) => ErrorCode::OperationInvalid,
            Self::Unsupported(_) => ErrorCode::OperationUnsupported,
            Self::InvalidArg(_) => ErrorCode::InvalidArg,
            Self::Internal(_) | Self::Helper(_) => ErrorCode::InternalError,
            Self::Io { .. } => ErrorCode::SystemError,
            Self::Job(e) => match e {
                joblock::JobError::Timeout { .. } => ErrorCode::OperationTimeout,
                _ => ErrorCode::OperationInvalid,
            },
        }
    }
}

impl ToVirError for Error {
    fn to_vir_error(&self) -> VirError {
        VirError::new(self.code(), ErrorDomain::Network, self.to_string())
    }
}

/// A netlink failure as an I/O error, keeping the kernel's errno.
pub(crate) fn netlink(what: impl Into<String>, e: rtnetlink::Error) -> Error {
    let source = match &e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => std::io::Error::other(other.to_string()),
    };
    Error::io(what, source)
}
