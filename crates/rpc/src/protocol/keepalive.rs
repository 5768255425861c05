//! KEEPALIVE program (`virkeepaliveprotocol.x`): both procedures are
//! `MESSAGE`-type with an empty body and serial 0. A peer answers PING with
//! PONG; any traffic counts as proof of life.

/// `KEEPALIVE_PROGRAM` ("keep" in ASCII).
pub const PROGRAM: u32 = 0x6b65_6570;
/// `KEEPALIVE_PROTOCOL_VERSION`.
pub const VERSION: u32 = 1;
/// `KEEPALIVE_PROC_PING`.
pub const PROC_PING: i32 = 1;
/// `KEEPALIVE_PROC_PONG`.
pub const PROC_PONG: i32 = 2;

use crate::header::{Header, MessageStatus, MessageType};

/// Header of a PING or PONG message.
pub fn header(proc_: i32) -> Header {
    Header::new(
        PROGRAM,
        VERSION,
        proc_,
        MessageType::Message,
        0,
        MessageStatus::Ok,
    )
}
