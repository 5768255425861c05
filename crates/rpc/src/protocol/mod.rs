//! The two libvirt programs ferrovirt speaks: REMOTE (the API) and
//! KEEPALIVE (liveness pings). Numbers and structures are transcribed from
//! libvirt's `remote_protocol.x` and `virkeepaliveprotocol.x`; they are wire
//! ABI and must never be renumbered.

pub mod keepalive;
pub mod remote;
