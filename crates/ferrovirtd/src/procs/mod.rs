//! REMOTE procedures, grouped by what they act on.

pub(crate) mod connect;
pub(crate) mod domain;
pub(crate) mod events;
pub(crate) mod longjobs;
pub(crate) mod save_image;
