//! libvirt's storage pool and volume XML: parse what clients write, format
//! what `pool-dumpxml` and `vol-dumpxml` show.

mod perms;
pub mod pool;
pub mod volume;

pub use perms::Permissions;
pub use pool::{PoolDef, PoolType};
pub use volume::{BackingStore, VolFormat, VolumeDef};
