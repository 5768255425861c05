//! REMOTE procedures, grouped by what they act on.

pub mod connect;
pub mod domain;
pub mod events;
pub mod longjobs;
pub mod save_image;
