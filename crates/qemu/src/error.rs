//! Driver errors, each mapped to the libvirt error number a client expects.

use std::time::Duration;

use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

/// Every failure of a driver operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Domain not found: {0}")]
    NoDomain(String),
    #[error("operation failed: {0}")]
    DomainExists(String),
    #[error("Requested operation is not valid: domain is not running")]
    NotRunning,
    #[error("Requested operation is not valid: domain is already running")]
    AlreadyActive,
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    /// The job lock was not acquired in time; names who holds it (and since
    /// when) so the user knows what they waited for.
    #[error("Timed out during operation: cannot acquire state change lock ({0})")]
    JobTimeout(String),
    /// QEMU did not answer a monitor command in time; the domain is marked
    /// "monitor unresponsive".
    #[error("Timed out during operation: QEMU monitor did not answer '{command}' within {after:?}")]
    MonitorTimeout { command: String, after: Duration },
    /// QEMU refused a command or its monitor closed.
    #[error("operation failed: {0}")]
    Qemu(String),
    #[error("operation aborted: {0}")]
    Aborted(String),
    /// Something the operation needs is held by another process (a tty
    /// behind its lock file).
    #[error("operation failed: {0}")]
    InUse(String),
    #[error("unsupported configuration: {0}")]
    ConfigUnsupported(String),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// The domain crate rejected the XML; it knows the right code.
    #[error("{0}")]
    Xml(VirError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// A request that names something the domain does not have (a device
    /// by MAC address), as libvirt reports it.
    #[error("operation failed: {0}")]
    OperationFailed(String),
    /// A destination's finish told that the source failed: its side is
    /// undone, and it has nothing to add to the source's own error (the
    /// client keeps that one, as with libvirt's destinations).
    #[error("migration successfully aborted")]
    MigrateFinishOk,
    /// The network driver refused a guest NIC's tap (no such network, not
    /// active, no such bridge); it knows the right code.
    #[error("{0}")]
    Network(network::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Converts a monitor failure. Timeouts keep their own code (68) so a
    /// client can tell "QEMU hung" from "QEMU said no".
    pub(crate) fn from_qmp(e: qmp::QmpError) -> Self {
        match e {
            qmp::QmpError::Timeout { command, after } => Error::MonitorTimeout { command, after },
            other => Error::Qemu(other.to_string()),
        }
    }
}

impl ToVirError for Error {
    fn to_vir_error(&self) -> VirError {
        let code = match self {
            Error::NoDomain(_) => ErrorCode::NoDomain,
            // libvirt reports a name/uuid clash as OPERATION_FAILED.
            Error::DomainExists(_) => ErrorCode::OperationFailed,
            Error::NotRunning | Error::AlreadyActive | Error::OperationInvalid(_) => {
                ErrorCode::OperationInvalid
            }
            Error::JobTimeout(_) | Error::MonitorTimeout { .. } => ErrorCode::OperationTimeout,
            Error::Qemu(_) | Error::InUse(_) => ErrorCode::OperationFailed,
            Error::Aborted(_) => ErrorCode::OperationAborted,
            Error::ConfigUnsupported(_) => ErrorCode::ConfigUnsupported,
            Error::InvalidArg(_) => ErrorCode::InvalidArg,
            Error::Xml(v) => return v.clone(),
            Error::Network(e) => return e.to_vir_error(),
            Error::Io { .. } => ErrorCode::SystemError,
            Error::Internal(_) => ErrorCode::InternalError,
            Error::OperationFailed(_) => ErrorCode::OperationFailed,
            Error::MigrateFinishOk => ErrorCode::MigrateFinishOk,
        };
        VirError::new(code, ErrorDomain::Qemu, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let c = |e: Error| e.to_vir_error().code.as_i32();
        assert_eq!(c(Error::NoDomain("x".into())), 42);
        assert_eq!(c(Error::NotRunning), 55);
        assert_eq!(c(Error::AlreadyActive), 55);
        assert_eq!(c(Error::DomainExists("x".into())), 9);
        assert_eq!(c(Error::JobTimeout("held by modify".into())), 68);
        assert_eq!(c(Error::Qemu("x".into())), 9);
        assert_eq!(c(Error::Internal("x".into())), 1);
        assert_eq!(c(Error::MigrateFinishOk), 93);
        let t = Error::from_qmp(qmp::QmpError::Timeout {
            command: "stop".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(c(t), 68);
    }
}
