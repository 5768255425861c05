//! A client's socket with descriptor passing: the framed reader that also
//! collects the descriptors a `CALL_WITH_FDS` brings, and the sending of
//! the descriptors of a `REPLY_WITH_FDS`.
//!
//! libvirt passes descriptors after the message that announces them: the
//! message body starts with their count (at most
//! [`MAX_FDS`]), and once the whole message is written each descriptor
//! follows as one byte of data carrying an `SCM_RIGHTS` control message.
//! A descriptor attached to a byte that a plain `read` consumes would be
//! closed by the kernel, so the reader always uses `recvmsg` and keeps
//! what arrives until a message claims it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::OwnedWriteHalf;
use tokio_util::codec::Decoder as _;

use crate::error::{CodecError, FrameError};
use crate::frame::{LEN_SIZE, Message, MessageCodec};
use crate::header::{Header, MessageType};
use crate::transport::ReadSide;

/// `VIR_NET_MESSAGE_NUM_FDS_MAX`: most descriptors one message carries.
pub const MAX_FDS: usize = 32;

/// Bytes asked of one `recvmsg` at least and at most: enough for a
/// stream chunk in a few reads, never more than the data announced calls
/// for beyond the floor (see [`FrameReader::want`]).
const READ_MIN: usize = 64 * 1024;
const READ_MAX: usize = 512 * 1024;

/// One message read from a client, with the descriptors it brought.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) message: Message,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Reads frames (and passed descriptors) from a client. Cancel-safe:
/// every byte and descriptor read is kept in `self` across awaits.
pub(crate) struct FrameReader {
    rd: ReadSide,
    /// The connection's socket, polled for a hang-up; open as long as
    /// the connection is (its read side is `rd`).
    socket: RawFd,
    buf: BytesMut,
    codec: MessageCodec,
    /// Descriptors received and not yet claimed by a message.
    fds: VecDeque<OwnedFd>,
    /// A `CALL_WITH_FDS` whose descriptor bytes have not all arrived.
    waiting: Option<(Message, usize)>,
    eof: bool,
}

impl FrameReader {
    pub(crate) fn new(rd: ReadSide, socket: RawFd, max_message: usize) -> Self {
        Self {
            rd,
            socket,
            buf: BytesMut::with_capacity(READ_MIN),
            codec: MessageCodec::new(max_message),
            fds: VecDeque::new(),
            waiting: None,
            eof: false,
        }
    }

    /// Whether the client closed its end (not a half-close), seen without
    /// reading: for when nothing more may be read from it (its calls or
    /// stream sinks are full) and it may have gone meanwhile.
    pub(crate) fn peer_closed(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        // SAFETY: `socket` is the connection's socket, which `self.rd`
        // keeps open for as long as `self` lives.
        let sock = unsafe { BorrowedFd::borrow_raw(self.socket) };
        // POLLHUP is reported whatever is asked for.
        let mut fds = [PollFd::new(sock, PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
            Err(_) => false,
        }
    }

    /// The next message; `None` at a clean end of file.
    pub(crate) async fn next(&mut self) -> Option<Result<Received, CodecError>> {
        loop {
            match self.ready() {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if let Err(e) = self.fill().await {
                return Some(Err(CodecError::Io(e)));
            }
        }
    }

    /// A complete message from what was read, if there is one.
    fn ready(&mut self) -> Result<Option<Received>, CodecError> {
        if let Some((_, n)) = &self.waiting {
            let n = *n;
            return match self.buf.len() >= n {
                true => self.claim_fds(n).map(Some),
                false if self.eof => Err(truncated_fds(self.waiting.take())),
                false => Ok(None),
            };
        }
        let decoded = match self.eof {
            true => self.codec.decode_eof(&mut self.buf)?,
            false => self.codec.decode(&mut self.buf)?,
        };
        let Some(mut message) = decoded else {
            return Ok(None);
        };
        if message.header.message_type() != Some(MessageType::CallWithFds) {
            self.check_stray_fds(&message.header)?;
            return Ok(Some(Received {
                message,
                fds: Vec::new(),
            }));
        }
        let n = fd_count(&mut message)?;
        self.waiting = Some((message, n));
        self.ready()
    }

    /// Drops the `n` descriptor bytes after a `CALL_WITH_FDS` and takes
    /// the descriptors they carried.
    fn claim_fds(&mut self, n: usize) -> Result<Received, CodecError> {
        let (message, _) = self.waiting.take().ok_or(FrameError::BadHeader {
            reason: "no message waits for descriptors",
            header: None,
        })?;
        self.buf.advance(n);
        if self.fds.len() < n {
            return Err(FrameError::BadHeader {
                reason: "fewer file descriptors than the message announced",
                header: Some(message.header),
            }
            .into());
        }
        let fds = self.fds.drain(..n).collect();
        Ok(Received { message, fds })
    }

    /// Descriptors nobody announced are closed; too many of them end the
    /// connection (a client that sends them is broken or hostile).
    fn check_stray_fds(&mut self, h: &Header) -> Result<(), CodecError> {
        if self.fds.len() > MAX_FDS {
            self.fds.clear();
            return Err(FrameError::BadHeader {
                reason: "file descriptors passed without a message announcing them",
                header: Some(*h),
            }
            .into());
        }
        Ok(())
    }

    /// How much to read next: the rest of the frame under way (so a stream
    /// chunk arrives in few reads), at least `READ_MIN`, never more than
    /// `READ_MAX`. A length word alone never makes the buffer grow past
    /// what was received plus `READ_MAX`.
    fn want(&self) -> usize {
        let announced = match self.buf.get(..LEN_SIZE) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize,
            None => 0,
        };
        announced
            .saturating_sub(self.buf.len())
            .clamp(READ_MIN, READ_MAX)
    }

    /// One read into the buffer (`recvmsg` on a UNIX socket, keeping
    /// descriptors); end of file is remembered.
    async fn fill(&mut self) -> io::Result<()> {
        let want = self.want();
        self.buf.reserve(want);
        let rd = match &mut self.rd {
            ReadSide::Unix(rd) => rd,
            ReadSide::Bytes(rd) => {
                let n = rd.take(want as u64).read_buf(&mut self.buf).await?;
                self.eof = n == 0;
                return Ok(());
            }
        };
        loop {
            rd.as_ref().readable().await?;
            let sock = rd.as_ref();
            let (buf, fds) = (&mut self.buf, &mut self.fds);
            match sock.try_io(Interest::READABLE, || recv_into(sock.as_raw_fd(), buf, fds)) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Strips the descriptor count that starts the body of a `CALL_WITH_FDS`.
fn fd_count(message: &mut Message) -> Result<usize, CodecError> {
    let bad = |reason| FrameError::BadHeader {
        reason,
        header: Some(message.header),
    };
    let word = message
        .body
        .get(..4)
        .ok_or_else(|| bad("message too short for its descriptor count"))?;
    let n = u32::from_be_bytes([word[0], word[1], word[2], word[3]]) as usize;
    if n > MAX_FDS {
        return Err(bad("too many file descriptors in one message").into());
    }
    message.body.advance(4);
    Ok(n)
}

fn truncated_fds(waiting: Option<(Message, usize)>) -> CodecError {
    FrameError::BadHeader {
        reason: "connection closed before the announced file descriptors",
        header: waiting.map(|(m, _)| m.header),
    }
    .into()
}

/// Space for the control messages of one read: a client sends one
/// descriptor per byte, so a read of many bytes can bring many.
const CMSG_BUF: usize = 1024;

/// `recvmsg` into the spare capacity of `buf`, keeping any descriptors.
fn recv_into(fd: RawFd, buf: &mut BytesMut, fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    let mut cmsg = [0u64; CMSG_BUF / 8];
    // SAFETY: a zeroed msghdr is a valid empty one; the fields set below
    // point at `iov` and `cmsg`, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_BUF;
    // SAFETY: `fd` is the open socket; the iovec covers the buffer's spare
    // capacity, which recvmsg only writes to (never reads), and the control
    // buffer is `CMSG_BUF` bytes long as msg_controllen says.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    collect_fds(&msg, fds);
    let n = n as usize;
    // SAFETY: recvmsg initialised the first `n` bytes of the spare
    // capacity (n <= its length).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Takes ownership of every descriptor in the `SCM_RIGHTS` messages of
/// `msg` (a truncated control buffer loses only what did not fit, which
/// the kernel already closed).
fn collect_fds(msg: &libc::msghdr, fds: &mut VecDeque<OwnedFd>) {
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control
    // buffer within msg_controllen.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: `c` is a header inside the control buffer (CMSG_FIRSTHDR
        // and CMSG_NXTHDR return null past its end).
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a constant expression of the header size.
            let data_len = h.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
            // SAFETY: the data of an SCM_RIGHTS message is an array of
            // `data_len / 4` descriptors, possibly unaligned.
            let data = unsafe { libc::CMSG_DATA(c) };
            for i in 0..data_len / size_of::<RawFd>() {
                // SAFETY: within the array (see above); read unaligned.
                let raw = unsafe { data.cast::<RawFd>().add(i).read_unaligned() };
                // SAFETY: the kernel just installed `raw` in our table for
                // us; nothing else owns it.
                fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR above.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
}

/// Sends one descriptor the libvirt way: one zero byte carrying it.
pub(crate) async fn send_fd(wr: &OwnedWriteHalf, fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let sock = wr.as_ref();
    loop {
        sock.writable().await?;
        let sent = sock.try_io(Interest::WRITABLE, || {
            let iov = [io::IoSlice::new(&[0u8])];
            let fds = [fd.as_raw_fd()];
            let cmsg = [ControlMessage::ScmRights(&fds)];
            sendmsg::<()>(
                sock.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(io::Error::from)
        });
        match sent {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::other("descriptor byte not sent")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;
    use crate::header::MessageStatus;
    use std::io::Write;

    fn with_fds_frame(serial: u32, fds: u32, body: &[u8]) -> Vec<u8> {
        let h = Header::new(1, 1, 5, MessageType::CallWithFds, serial, MessageStatus::Ok);
        let mut b = fds.to_be_bytes().to_vec();
        b.extend_from_slice(body);
        encode_frame(&h, &b, crate::frame::MESSAGE_MAX)
            .unwrap()
            .to_vec()
    }

    fn pass_fd(s: &std::os::unix::net::UnixStream, fd: RawFd) {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let iov = [io::IoSlice::new(&[0u8])];
        let fds = [fd];
        sendmsg::<()>(
            s.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    }

    async fn reader_pair() -> (FrameReader, std::os::unix::net::UnixStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let a = tokio::net::UnixStream::from_std(a).unwrap();
        // Dropping the write half only shuts our side down for writing.
        let (r, _) = unix_reader(a);
        (r, b)
    }

    /// A reader of a UNIX socket, as the server makes one, and its writer.
    fn unix_reader(s: tokio::net::UnixStream) -> (FrameReader, crate::transport::WriteSide) {
        let (rd, wr, fd) = crate::transport::Conn::Unix(s).split();
        (FrameReader::new(rd, fd, crate::frame::MESSAGE_MAX), wr)
    }

    #[tokio::test]
    async fn call_with_fds_brings_its_descriptors_in_order() {
        let (mut r, mut peer) = reader_pair().await;
        let (f1, f2) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        peer.write_all(&with_fds_frame(3, 2, b"args")).unwrap();
        pass_fd(&peer, f1.as_raw_fd());
        pass_fd(&peer, f2.as_raw_fd());
        peer.write_all(
            &encode_frame(
                &Header::new(1, 1, 6, MessageType::Call, 4, MessageStatus::Ok),
                b"",
                crate::frame::MESSAGE_MAX,
            )
            .unwrap(),
        )
        .unwrap();
        let got = r.next().await.unwrap().unwrap();
        assert_eq!(got.message.header.serial, 3);
        assert_eq!(&got.message.body[..], b"args");
        assert_eq!(got.fds.len(), 2);
        let ino = |f: &dyn AsRawFd| nix::sys::stat::fstat(f.as_raw_fd()).unwrap().st_ino;
        assert_eq!(ino(&got.fds[0]), ino(&f1));
        assert_eq!(ino(&got.fds[1]), ino(&f2));
        let next = r.next().await.unwrap().unwrap();
        assert_eq!(next.message.header.serial, 4);
        assert!(next.fds.is_empty());
    }

    #[tokio::test]
    async fn missing_descriptors_are_a_protocol_error() {
        let (mut r, mut peer) = reader_pair().await;
        peer.write_all(&with_fds_frame(3, 1, b"")).unwrap();
        // The byte arrives, but without a descriptor.
        peer.write_all(&[0]).unwrap();
        match r.next().await {
            Some(Err(CodecError::Frame(FrameError::BadHeader { header, .. }))) => {
                assert_eq!(header.unwrap().serial, 3)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn too_many_descriptors_announced_is_refused() {
        let (mut r, mut peer) = reader_pair().await;
        peer.write_all(&with_fds_frame(9, 33, b"")).unwrap();
        assert!(matches!(
            r.next().await,
            Some(Err(CodecError::Frame(FrameError::BadHeader { .. })))
        ));
    }

    #[tokio::test]
    async fn a_closed_peer_is_seen_without_reading() {
        let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        // Our write half stays open, as the server's does.
        let (r, _wr) = unix_reader(tokio::net::UnixStream::from_std(a).unwrap());
        peer.write_all(b"unread bytes").unwrap();
        assert!(!r.peer_closed());
        // Half-closed: it may still read our replies.
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(!r.peer_closed());
        drop(peer);
        assert!(r.peer_closed());
    }

    #[tokio::test]
    async fn eof_before_the_descriptors_is_an_error_not_a_hang() {
        let (mut r, mut peer) = reader_pair().await;
        peer.write_all(&with_fds_frame(2, 1, b"")).unwrap();
        drop(peer);
        assert!(matches!(r.next().await, Some(Err(_))));
    }

    #[test]
    fn reads_are_bounded_whatever_the_length_word_says() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = tokio::net::UnixStream::from_std(a).unwrap();
            let (mut r, wr) = unix_reader(a);
            assert_eq!(r.want(), READ_MIN);
            r.buf.extend_from_slice(&(32u32 << 20).to_be_bytes());
            assert_eq!(r.want(), READ_MAX);
            r.buf.clear();
            r.buf.extend_from_slice(&100_000u32.to_be_bytes());
            assert_eq!(r.want(), 100_000 - 4);
            drop(wr);
        });
    }
}
