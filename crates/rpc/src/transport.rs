//! What a client connected through: a UNIX socket (descriptors can be
//! passed), plain TCP, or TLS over TCP. The connection code reads and
//! writes either side the same way; only descriptor passing differs.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UnixStream};

/// How a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UNIX socket: local, and descriptors can be passed.
    Unix,
    /// Plain TCP (`qemu+tcp://`).
    Tcp,
    /// TLS over TCP with a verified client certificate (`qemu+tls://`).
    Tls,
}

impl Transport {
    /// Whether descriptors can be passed (`CALL_WITH_FDS`,
    /// `REPLY_WITH_FDS`): on UNIX sockets only.
    pub fn passes_fds(self) -> bool {
        self == Transport::Unix
    }
}

/// A byte stream of any transport but UNIX.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Send + Sync + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Duplex for T {}

/// An accepted connection, ready to be served.
pub(crate) enum Conn {
    Unix(UnixStream),
    /// A TCP or TLS stream, with the TCP socket's descriptor (to see the
    /// peer hang up without reading).
    Bytes {
        stream: Box<dyn Duplex>,
        socket: RawFd,
        transport: Transport,
    },
}

impl Conn {
    pub(crate) fn tcp(s: TcpStream) -> Self {
        let socket = s.as_raw_fd();
        Conn::Bytes {
            stream: Box::new(s),
            socket,
            transport: Transport::Tcp,
        }
    }

    pub(crate) fn transport(&self) -> Transport {
        match self {
            Conn::Unix(_) => Transport::Unix,
            Conn::Bytes { transport, .. } => *transport,
        }
    }

    /// The read and write sides, and the socket to poll for a hang-up.
    /// The socket stays open as long as either side lives.
    pub(crate) fn split(self) -> (ReadSide, WriteSide, RawFd) {
        match self {
            Conn::Unix(s) => {
                let fd = s.as_raw_fd();
                let (rd, wr) = s.into_split();
                (ReadSide::Unix(rd), WriteSide::Unix(wr), fd)
            }
            Conn::Bytes { stream, socket, .. } => {
                let (rd, wr) = tokio::io::split(stream);
                (ReadSide::Bytes(rd), WriteSide::Bytes(wr), socket)
            }
        }
    }
}

/// The reading side of a connection.
pub(crate) enum ReadSide {
    Unix(OwnedReadHalf),
    Bytes(ReadHalf<Box<dyn Duplex>>),
}

/// The writing side of a connection.
pub(crate) enum WriteSide {
    Unix(OwnedWriteHalf),
    Bytes(WriteHalf<Box<dyn Duplex>>),
}

impl WriteSide {
    /// The UNIX socket, for descriptor passing; `None` on other transports.
    pub(crate) fn unix(&self) -> Option<&OwnedWriteHalf> {
        match self {
            WriteSide::Unix(w) => Some(w),
            WriteSide::Bytes(_) => None,
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Unix(w) => Pin::new(w).poll_write(cx, buf),
            WriteSide::Bytes(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Unix(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Bytes(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Unix(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Bytes(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
