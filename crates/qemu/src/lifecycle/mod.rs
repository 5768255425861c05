//! The lifecycle of a run: starting QEMU ([`start`]), stopping it and
//! cleaning up after it ([`stop`]), and what a running guest is asked to do
//! ([`power`]: suspend, resume, shutdown, reboot, reset), and what a run
//! needs from the host besides QEMU ([`host`]).
//!
//! Every state change goes through a transition of the domain object, which
//! emits its lifecycle event under the state lock; these modules decide
//! *when* (which QEMU command, which job), never *how* the state changes.

pub(crate) mod host;
pub(crate) mod power;
pub(crate) mod start;
pub(crate) mod stop;

/// How `virsh start` starts a defined domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// `--paused`: leave the vCPUs stopped (also after a managed-save
    /// restore).
    pub paused: bool,
    /// `--force-boot`: discard a managed-save image and boot afresh.
    pub force_boot: bool,
}
