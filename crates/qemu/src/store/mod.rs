//! What the driver keeps on disk: crash-safe files ([`files`]), the status
//! record of each running domain and the one policy for writing it
//! ([`status`]), and start-up: reconciling the records with the processes
//! alive ([`reconcile`]) and re-adopting a QEMU ([`readopt`]). Where each
//! file lives is `config::Layout`'s business.

pub(crate) mod files;
pub(crate) mod readopt;
pub(crate) mod reconcile;
pub(crate) mod status;
