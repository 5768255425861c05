//! Connection settings.

use std::time::Duration;

/// Settings of one monitor connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Longest accepted line in bytes; a longer one is a protocol error that
    /// closes the connection. Bounds the read buffer per VM. QEMU's biggest
    /// legitimate replies (query-block on many disks, query-qmp-schema) are
    /// well below the 10 MiB default.
    pub max_line: usize,
    /// Deadline of a command unless the call gives its own. A QEMU that
    /// stops answering must not hold a job forever (libvirt has no such
    /// deadline, which is how one hung VM blocks its callers indefinitely).
    pub command_timeout: Duration,
    /// Deadline for connect + greeting + `qmp_capabilities`.
    pub greeting_timeout: Duration,
    /// Bounds of the per-connection event queue.
    pub events: EventLimits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 10 * 1024 * 1024,
            command_timeout: Duration::from_secs(30),
            greeting_timeout: Duration::from_secs(30),
            events: EventLimits::default(),
        }
    }
}

/// Bounds of the per-connection event queue; see [`crate::events`] for the
/// policy applied when they are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Events queued for individual delivery.
    pub max_events: usize,
    /// Bytes (raw line length) queued for individual delivery; the same
    /// budget applies separately to the coalesced set.
    pub max_bytes: usize,
    /// Distinct coalescing keys remembered during an overflow.
    pub max_coalesced: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_events: 1024,
            max_bytes: 1024 * 1024,
            max_coalesced: 64,
        }
    }
}
