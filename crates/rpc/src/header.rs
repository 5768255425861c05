//! The message header (`virNetMessageHeader`) that follows every length
//! word: which program and procedure, what kind of message, the serial that
//! pairs a reply with its call, and the status.

use crate::xdr::{Decoder, Encoder};

/// Serialised size of the header (`VIR_NET_MESSAGE_HEADER_MAX`).
pub const HEADER_LEN: usize = 24;

/// `virNetMessageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MessageType {
    /// client → server: arguments of a call.
    Call = 0,
    /// server → client: reply or error of a call.
    Reply = 1,
    /// either direction: asynchronous notification (events, keepalive).
    Message = 2,
    /// either direction: stream data.
    Stream = 3,
    /// client → server: call with file descriptors passed alongside.
    CallWithFds = 4,
    /// server → client: reply with file descriptors.
    ReplyWithFds = 5,
    /// either direction: a hole in a sparse stream.
    StreamHole = 6,
}

impl MessageType {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            _ => return None,
        })
    }
}

/// `virNetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MessageStatus {
    Ok = 0,
    Error = 1,
    Continue = 2,
}

impl MessageStatus {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            _ => return None,
        })
    }
}

/// A decoded header. `msg_type` and `status` are kept raw so that a header
/// with an unknown type can still be reported back to its sender (with its
/// serial) before the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub prog: u32,
    pub vers: u32,
    pub proc_: i32,
    pub msg_type: u32,
    pub serial: u32,
    pub status: u32,
}

impl Header {
    pub fn new(
        prog: u32,
        vers: u32,
        proc_: i32,
        msg_type: MessageType,
        serial: u32,
        status: MessageStatus,
    ) -> Self {
        Self {
            prog,
            vers,
            proc_,
            msg_type: msg_type as u32,
            serial,
            status: status as u32,
        }
    }

    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_u32(self.msg_type)
    }

    pub fn message_status(&self) -> Option<MessageStatus> {
        MessageStatus::from_u32(self.status)
    }

    /// The header of the reply to this call.
    pub fn reply(&self, status: MessageStatus) -> Self {
        Self {
            msg_type: MessageType::Reply as u32,
            status: status as u32,
            ..*self
        }
    }

    pub fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.prog);
        enc.put_u32(self.vers);
        enc.put_i32(self.proc_);
        enc.put_u32(self.msg_type);
        enc.put_u32(self.serial);
        enc.put_u32(self.status);
    }

    /// Reads the 24 header bytes; fails only when fewer are present.
    pub fn decode(dec: &mut Decoder<'_>) -> crate::xdr::Result<Self> {
        Ok(Self {
            prog: dec.get_u32()?,
            vers: dec.get_u32()?,
            proc_: dec.get_i32()?,
            msg_type: dec.get_u32()?,
            serial: dec.get_u32()?,
            status: dec.get_u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header::new(0x2000_8086, 1, 66, MessageType::Call, 7, MessageStatus::Ok);
        let mut e = Encoder::new();
        h.encode(&mut e);
        let b = e.finish();
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(Header::decode(&mut Decoder::new(&b)).unwrap(), h);
        assert_eq!(
            h.reply(MessageStatus::Error).message_type(),
            Some(MessageType::Reply)
        );
    }
}
