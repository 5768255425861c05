//! Errors of the storage driver, each with the libvirt error number a client
//! gets from libvirtd for the same situation.

use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};
use virxml::XmlError;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad pool or volume XML (code from the XML layer).
    #[error("{0}")]
    Xml(#[from] XmlError),
    /// No pool by that name, uuid, volume or path.
    #[error("Storage pool not found: {0}")]
    NoPool(String),
    /// No volume by that name, key or path.
    #[error("Storage volume not found: {0}")]
    NoVolume(String),
    /// A pool with that name or uuid, or on that target, already exists.
    #[error("operation failed: {0}")]
    PoolExists(String),
    /// A volume of that name already exists in the pool.
    #[error("storage volume already exists: '{0}'")]
    VolumeExists(String),
    /// The pool or volume is in the wrong state for the request (inactive,
    /// active, in use by a running domain, being built).
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    /// The operation was valid but could not be done (not enough space).
    #[error("operation failed: {0}")]
    OperationFailed(String),
    /// An argument is out of range or contradicts another.
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// A valid request this driver does not implement.
    #[error("Operation not supported: {0}")]
    Unsupported(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// qemu-img (or another helper) failed or stalled.
    #[error("internal error: {0}")]
    Helper(String),
    /// A job on the pool could not be had in time.
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
            Self::NoPool(_) => ErrorCode::NoStoragePool,
            Self::NoVolume(_) => ErrorCode::NoStorageVol,
            Self::PoolExists(_) | Self::OperationFailed(_) => ErrorCode::OperationFailed,
            Self::VolumeExists(_) => ErrorCode::StorageVolExist,
            Self::OperationInvalid(_) => ErrorCode::OperationInvalid,
            Self::InvalidArg(_) => ErrorCode::InvalidArg,
            Self::Unsupported(_) => ErrorCode::OperationUnsupported,
            Self::Io { .. } => ErrorCode::SystemError,
            Self::Helper(_) => ErrorCode::InternalError,
            Self::Job(e) => match e {
                joblock::JobError::Timeout { .. } => ErrorCode::OperationTimeout,
                _ => ErrorCode::OperationInvalid,
            },
        }
    }
}

impl ToVirError for Error {
    fn to_vir_error(&self) -> VirError {
        VirError::new(self.code(), ErrorDomain::Storage, self.to_string())
    }
}
