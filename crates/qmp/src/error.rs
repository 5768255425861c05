//! Errors of the QMP client.
//!
//! The split matters to the driver: a [`QmpError::Command`] means QEMU is
//! alive and refused one command; a [`QmpError::Timeout`] means QEMU did not
//! answer in time (it may be hung, the connection stays usable); a
//! [`QmpError::Closed`] means the monitor is gone for good and every later
//! command fails the same way, so the VM must be marked and (usually)
//! destroyed.

use std::io;
use std::time::Duration;

/// Why a monitor connection ended. Cheap to clone: it is handed to every
/// in-flight command and to every `closed()` waiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// QEMU closed the socket (it exited or was killed). Also used when a
    /// write fails with EPIPE/ECONNRESET: the peer went away, whichever side
    /// noticed first.
    #[error("monitor closed by QEMU (EOF)")]
    Eof,
    /// QEMU broke the protocol; we closed the connection because nothing it
    /// sends afterwards can be trusted to be framed correctly.
    #[error("QMP protocol error: {0}")]
    Protocol(ProtocolError),
    /// An I/O error other than the peer going away.
    #[error("monitor I/O error during {op}: {message}")]
    Io {
        /// `"read"` or `"write"`.
        op: &'static str,
        /// The error kind, for programmatic checks.
        kind: io::ErrorKind,
        /// The error text at the time (io::Error is not Clone).
        message: String,
    },
    /// We closed it: [`crate::Monitor::close`] was called or every
    /// `Monitor` handle was dropped.
    #[error("monitor closed locally")]
    Local,
}

impl CloseReason {
    /// Classify an I/O error: the peer going away is an EOF, not a fault.
    pub(crate) fn from_io(op: &'static str, e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => CloseReason::Eof,
            kind => CloseReason::Io {
                op,
                kind,
                message: e.to_string(),
            },
        }
    }
}

/// A violation of the QMP wire protocol by the peer. Each one closes the
/// connection: after a bad frame we cannot know where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A line longer than `Config::max_line`. We stop reading at the cap
    /// instead of buffering a line of arbitrary size.
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The configured cap.
        max: usize,
    },
    /// The line is not UTF-8 (JSON text must be).
    #[error("invalid UTF-8 at byte {valid_up_to} of a line")]
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON, but not an object, or an object with fields of the wrong
    /// type (e.g. `"event": 5`).
    #[error("malformed QMP message: {0}")]
    Malformed(String),
    /// The first message was not a `{"QMP": ...}` greeting, or the greeting
    /// does not have the documented shape.
    #[error("bad greeting: {0}")]
    BadGreeting(String),
}

/// Error of a QMP operation.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting to the monitor socket failed.
    #[error("cannot connect to QMP socket {path}: {source}")]
    Connect {
        /// The socket path.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No greeting, or no answer to `qmp_capabilities`, within
    /// `Config::greeting_timeout`.
    #[error("QMP handshake timed out after {after:?}")]
    HandshakeTimeout {
        /// The configured deadline.
        after: Duration,
    },
    /// QEMU refused `qmp_capabilities`.
    #[error("QMP capabilities negotiation failed: {0}")]
    Negotiation(Box<QmpError>),
    /// No reply within the command's deadline. The connection stays open;
    /// a reply arriving later is dropped.
    #[error("QMP command {command} timed out after {after:?}")]
    Timeout {
        /// The command name.
        command: String,
        /// The deadline that expired.
        after: Duration,
    },
    /// QEMU answered with an error.
    #[error("QMP command failed: {class}: {desc}")]
    Command {
        /// QEMU's error class (`GenericError`, `DeviceNotFound`, ...).
        class: String,
        /// QEMU's human-readable description.
        desc: String,
    },
    /// The connection is closed (before or while the command ran).
    #[error("QMP monitor closed: {0}")]
    Closed(CloseReason),
    /// The command's arguments could not be serialised (a bug in the caller's
    /// types, never caused by QEMU).
    #[error("cannot encode QMP command {command}: {message}")]
    Encode {
        /// The command name.
        command: String,
        /// serde's message.
        message: String,
    },
    /// QEMU's successful reply does not have the shape of the command's
    /// response type. The connection stays usable.
    #[error("cannot decode reply to QMP command {command}: {message}")]
    Decode {
        /// The command name.
        command: String,
        /// serde's message.
        message: String,
    },
    /// Duplicating the file descriptor to pass with a command failed.
    #[error("cannot prepare file descriptor for QMP command {command}: {source}")]
    FdPassing {
        /// The command name.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl QmpError {
    /// The close reason when this error says the connection is gone.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            QmpError::Closed(r) => Some(r),
            _ => None,
        }
    }
}
