//! libvirt secrets: a definition (`<secret>` XML: uuid, ephemeral,
//! private, description, usage) and an optional value of at most
//! [`VALUE_MAX`] bytes.
//!
//! Non-ephemeral secrets are kept under `ROOT/etc/secrets`: the definition
//! in `UUID.xml`, the value (raw bytes) in `UUID.value`, both mode 0600 and
//! each replaced atomically, so a daemon killed at any instant leaves the
//! old or the new file, never a torn one. Ephemeral secrets live in memory
//! only. Values never leave the daemon for private secrets.

mod def;
mod driver;
mod error;
mod events;
mod store;

pub use def::{SecretDef, Usage, UsageType};
pub use driver::{SecretConfig, SecretDriver, SecretFilter, SecretHandle};
pub use events::{SecretEvent, SecretEventKind, SecretListener};

/// `REMOTE_SECRET_VALUE_MAX`: the largest value a secret may hold.
pub const VALUE_MAX: usize = 65_536;
