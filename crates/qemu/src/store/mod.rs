//! What the driver keeps on disk: crash-safe files ([`files`]), the status
//! record of each running domain and the one policy for writing it
//! ([`status`]), and re-adoption at start-up ([`readopt`]). Where each file
//! lives is `config::Layout`'s business.

pub(crate) mod files;
pub(crate) mod readopt;
pub(crate) mod status;
