//! Error types of the rpc crate, one per layer, so a caller can tell a
//! malformed peer (protocol) from a broken socket (I/O) from an error the
//! remote side reported on purpose (a `remote_error`).

use crate::header::Header;

/// A value could not be decoded from XDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    #[error("truncated XDR data: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("XDR length {len} exceeds the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("non-zero XDR padding")]
    NonZeroPadding,
    #[error("invalid XDR boolean {0}")]
    InvalidBool(u32),
    #[error("invalid XDR enum value {0}")]
    InvalidEnum(i32),
    #[error("invalid XDR union discriminant {0}")]
    InvalidDiscriminant(i32),
    #[error("integer {0} out of range for its type")]
    OutOfRange(i64),
    #[error("XDR string is not valid UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the XDR data")]
    TrailingBytes(usize),
}

/// The byte stream does not carry a valid libvirt RPC message. Fatal for
/// the connection: after it the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length word announces more than `VIR_NET_MESSAGE_MAX` (or our
    /// configured limit). Rejected before any buffer is grown.
    #[error("message length {len} exceeds the limit {max}")]
    TooLarge {
        len: usize,
        max: usize,
        header: Option<Header>,
    },
    /// The length word is smaller than length + header.
    #[error("message length {0} is shorter than the header")]
    TooShort(usize),
    /// The header's type or status is not a known value.
    #[error("invalid message header: {reason}")]
    BadHeader {
        reason: &'static str,
        header: Option<Header>,
    },
    /// The stream ended in the middle of a message.
    #[error("connection closed in the middle of a message ({0} bytes buffered)")]
    TruncatedAtEof(usize),
    /// An outgoing message would exceed the limit (a bug or a reply too big
    /// for the protocol); it is never written.
    #[error("outgoing message of {0} bytes exceeds the protocol limit")]
    OutgoingTooLarge(usize),
}

impl FrameError {
    /// The header of the offending message, when it could be read: the
    /// server then answers with an error reply before closing.
    pub fn header(&self) -> Option<&Header> {
        match self {
            FrameError::TooLarge { header, .. } | FrameError::BadHeader { header, .. } => {
                header.as_ref()
            }
            _ => None,
        }
    }
}

/// Errors of the codec: framing or the socket underneath.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An error of a [`crate::client::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    #[error("cannot decode reply: {0}")]
    Xdr(#[from] XdrError),
    /// The server answered with a `remote_error`.
    #[error("remote error: {}", .0.message.as_deref().unwrap_or("(no message)"))]
    Remote(Box<crate::protocol::remote::RemoteError>),
    #[error("connection closed")]
    Closed,
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Frame(f) => ClientError::Frame(f),
            CodecError::Io(i) => ClientError::Io(i),
        }
    }
}

impl ClientError {
    /// The libvirt error code when the server reported one.
    pub fn remote_code(&self) -> Option<i32> {
        match self {
            ClientError::Remote(e) => Some(e.code),
            _ => None,
        }
    }
}
