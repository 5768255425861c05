//! libvirt's storage pool and volume XML: parse what clients write, format
//! what `pool-dumpxml` and `vol-dumpxml` show.

mod perms;
pub mod pool;
pub mod volume;

pub use perms::Permissions;

/// `virConnectGetStoragePoolCapabilities`: the pool types libvirt knows,
/// which of them this driver runs, and the volume formats of a directory
/// pool.
pub fn pool_capabilities() -> String {
    let mut w = virxml::XmlWriter::new();
    w.open("storagepoolCapabilities", &[]);
    for t in pool::KNOWN_TYPES {
        if *t != "dir" {
            w.empty("pool", &[("type", (*t).into()), ("supported", "no".into())]);
            continue;
        }
        w.open(
            "pool",
            &[("type", "dir".into()), ("supported", "yes".into())],
        );
        w.open("volOptions", &[]);
        w.empty("defaultFormat", &[("type", "raw".into())]);
        w.open("enum", &[("name", "targetFormatType".into())]);
        for f in ["raw", "qcow2"] {
            w.text_elem("value", &[], f);
        }
        w.close("enum");
        w.close("volOptions");
        w.close("pool");
    }
    w.close("storagepoolCapabilities");
    w.finish()
}
pub use pool::{PoolDef, PoolType};
pub use volume::{BackingStore, VolFormat, VolumeDef};
