//! Message framing: a 4-byte big-endian length that counts itself, the
//! 24-byte header, then the XDR body.
//!
//! The codec never grows its buffer on the strength of a length word: a
//! length above the limit is rejected as soon as it (and, if it arrives in
//! the same read, the header) is seen, and below the limit the buffer only
//! grows with bytes actually received.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{CodecError, FrameError};
use crate::header::{HEADER_LEN, Header, MessageStatus, MessageType};
use crate::xdr::{Decoder, Encoder};

/// `VIR_NET_MESSAGE_MAX`: maximum serialised message (header + body); the
/// length word itself is not counted.
pub const MESSAGE_MAX: usize = 33_554_432;
/// `VIR_NET_MESSAGE_LEN_MAX`: size of the length word.
pub const LEN_SIZE: usize = 4;
/// `VIR_NET_MESSAGE_PAYLOAD_MAX`: maximum body.
pub const PAYLOAD_MAX: usize = MESSAGE_MAX - HEADER_LEN;
/// `VIR_NET_MESSAGE_STRING_MAX`.
pub const STRING_MAX: usize = 4_194_304;

/// One message: header and still-encoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Bytes,
}

impl Message {
    pub fn new(header: Header, body: Bytes) -> Self {
        Self { header, body }
    }

    /// The whole frame, length word included, ready to write.
    pub fn to_frame(&self, max_message: usize) -> Result<Bytes, FrameError> {
        encode_frame(&self.header, &self.body, max_message)
    }
}

/// Serialises a frame; fails (without writing) when it exceeds
/// `max_message` (header + body).
pub fn encode_frame(header: &Header, body: &[u8], max_message: usize) -> Result<Bytes, FrameError> {
    let msg_len = HEADER_LEN + body.len();
    if msg_len > max_message {
        return Err(FrameError::OutgoingTooLarge(LEN_SIZE + msg_len));
    }
    let total = LEN_SIZE + msg_len;
    let mut enc = Encoder::with_capacity(total);
    // total <= MESSAGE_MAX + 4 which fits in u32.
    enc.put_u32(total as u32);
    header.encode(&mut enc);
    enc.put_raw(body);
    Ok(enc.finish())
}

/// tokio-util codec for libvirt RPC messages.
#[derive(Debug, Clone)]
pub struct MessageCodec {
    max_message: usize,
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new(MESSAGE_MAX)
    }
}

impl MessageCodec {
    /// `max_message` bounds header + body (at most [`MESSAGE_MAX`]).
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message: max_message.clamp(HEADER_LEN, MESSAGE_MAX),
        }
    }

    pub fn max_message(&self) -> usize {
        self.max_message
    }

    fn peek_header(src: &[u8]) -> Option<Header> {
        let h = src.get(LEN_SIZE..LEN_SIZE + HEADER_LEN)?;
        Header::decode(&mut Decoder::new(h)).ok()
    }

    fn decode_inner(
        &mut self,
        src: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<Message>, FrameError> {
        if src.len() < LEN_SIZE {
            if eof && !src.is_empty() {
                return Err(FrameError::TruncatedAtEof(src.len()));
            }
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len < LEN_SIZE + HEADER_LEN {
            return Err(FrameError::TooShort(len));
        }
        if len - LEN_SIZE > self.max_message {
            // Wait for the (bounded) header so the sender can be told which
            // call was refused; never for the announced body.
            if src.len() < LEN_SIZE + HEADER_LEN && !eof {
                return Ok(None);
            }
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message + LEN_SIZE,
                header: Self::peek_header(src),
            });
        }
        if src.len() < len {
            if eof {
                return Err(FrameError::TruncatedAtEof(src.len()));
            }
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        frame.advance(LEN_SIZE);
        let header = Header::decode(&mut Decoder::new(&frame[..HEADER_LEN]))
            .map_err(|_| FrameError::TooShort(len))?;
        if header.message_type().is_none() {
            return Err(FrameError::BadHeader {
                reason: "unknown message type",
                header: Some(header),
            });
        }
        if header.message_status().is_none() {
            return Err(FrameError::BadHeader {
                reason: "unknown message status",
                header: Some(header),
            });
        }
        frame.advance(HEADER_LEN);
        Ok(Some(Message {
            header,
            body: frame.freeze(),
        }))
    }
}

impl tokio_util::codec::Decoder for MessageCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        Ok(self.decode_inner(src, false)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        Ok(self.decode_inner(src, true)?)
    }
}

impl tokio_util::codec::Encoder<Message> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let frame = item.to_frame(self.max_message)?;
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

/// Pre-encoded frames (the server's output queue holds these).
impl tokio_util::codec::Encoder<Bytes> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// Convenience: the header of a reply or message we send.
pub fn header(
    prog: u32,
    vers: u32,
    proc_: i32,
    msg_type: MessageType,
    serial: u32,
    status: MessageStatus,
) -> Header {
    Header::new(prog, vers, proc_, msg_type, serial, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder as _;

    fn call(body: &[u8]) -> Bytes {
        let h = Header::new(1, 1, 5, MessageType::Call, 9, MessageStatus::Ok);
        encode_frame(&h, body, MESSAGE_MAX).unwrap()
    }

    #[test]
    fn round_trip_in_pieces() {
        let f = call(b"abcd");
        let mut c = MessageCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in f.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let r = c.decode(&mut buf).unwrap();
            if i + 1 < f.len() {
                assert!(r.is_none());
            } else {
                let m = r.unwrap();
                assert_eq!(&m.body[..], b"abcd");
                assert_eq!(m.header.serial, 9);
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_length_is_rejected_without_allocating() {
        let mut c = MessageCodec::new(1024);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        // Header not yet there: wait for it (bounded), allocate nothing.
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 1024);
        let h = Header::new(1, 1, 5, MessageType::Call, 3, MessageStatus::Ok);
        let mut e = Encoder::new();
        h.encode(&mut e);
        buf.extend_from_slice(&e.finish());
        match c.decode(&mut buf) {
            Err(CodecError::Frame(FrameError::TooLarge { header, .. })) => {
                assert_eq!(header.unwrap().serial, 3)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn too_short_and_truncated() {
        let mut c = MessageCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0, 0, 0, 0][..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(CodecError::Frame(FrameError::TooShort(8)))
        ));
        let f = call(b"abcd");
        let mut buf = BytesMut::from(&f[..f.len() - 1]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            c.decode_eof(&mut buf),
            Err(CodecError::Frame(FrameError::TruncatedAtEof(_)))
        ));
    }

    #[test]
    fn unknown_type_keeps_header() {
        let mut h = Header::new(1, 1, 5, MessageType::Call, 4, MessageStatus::Ok);
        h.msg_type = 77;
        let f = encode_frame(&h, b"", MESSAGE_MAX).unwrap();
        let mut c = MessageCodec::default();
        let mut buf = BytesMut::from(&f[..]);
        match c.decode(&mut buf) {
            Err(CodecError::Frame(e)) => assert_eq!(e.header().unwrap().serial, 4),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn outgoing_limit() {
        let h = Header::new(1, 1, 5, MessageType::Reply, 4, MessageStatus::Ok);
        assert!(matches!(
            encode_frame(&h, &[0u8; 100], 64),
            Err(FrameError::OutgoingTooLarge(_))
        ));
    }
}
