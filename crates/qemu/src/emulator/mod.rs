//! The QEMU side of a run: the process ([`process`]), its monitor
//! connection ([`monitor`]), whether one is alive for a domain
//! ([`liveness`]), what a binary supports ([`caps`]), the installed
//! firmware ([`firmware`]) and whether KVM runs guests here ([`kvm`]).

pub(crate) mod caps;
pub(crate) mod chardev;
pub(crate) mod firmware;
pub(crate) mod kvm;
pub(crate) mod liveness;
pub(crate) mod monitor;
pub(crate) mod process;
