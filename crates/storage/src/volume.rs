//! A volume as the driver knows it: a snapshot of its file's facts, and
//! while it is being built, where the partial image lives.

use std::path::{Path, PathBuf};

use virxml::XmlWriter;

use crate::probe::Probed;
use crate::qemu_img::Progress;
use crate::xml::{Permissions, VolFormat};

/// One volume. Immutable: a change (create, resize, wipe, refresh)
/// replaces the pool's `Arc<Volume>`, so readers never see it half-updated.
#[derive(Debug, Clone)]
pub struct Volume {
    pub name: String,
    /// Path of the file, also the volume's key (as libvirt's dir pools).
    pub path: PathBuf,
    pub facts: Probed,
    /// Set while the volume is being created, cloned or wiped.
    pub building: Option<Building>,
}

/// A volume under construction: the partial image is written under a
/// temporary name and renamed into place when whole.
#[derive(Debug, Clone)]
pub struct Building {
    pub partial: PathBuf,
    pub progress: Progress,
}

/// `virStorageVolType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum VolType {
    File = 0,
    Dir = 2,
}

/// `virStorageVolGetInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolInfo {
    pub vol_type: VolType,
    pub capacity: u64,
    /// Host bytes in use, or the file's size when the physical size is
    /// asked for.
    pub allocation: u64,
}

impl Volume {
    /// Key of the volume on the wire: its path.
    pub fn key(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    pub fn vol_type(&self) -> VolType {
        if self.facts.format == VolFormat::Dir {
            VolType::Dir
        } else {
            VolType::File
        }
    }

    /// `vol-info`; `physical` reports the file's size instead of the
    /// bytes allocated (`VIR_STORAGE_VOL_GET_PHYSICAL`). While the volume
    /// is built, allocation is read live from the partial image, so it
    /// shows progress.
    pub fn info(&self, physical: bool) -> VolInfo {
        let live = self.building.as_ref().and_then(|b| live_size(&b.partial));
        let (alloc, phys) = live.unwrap_or((self.facts.allocation, self.facts.physical));
        VolInfo {
            vol_type: self.vol_type(),
            capacity: self.facts.capacity,
            allocation: if physical { phys } else { alloc },
        }
    }

    /// The volume as `vol-dumpxml` shows it.
    pub fn to_xml(&self) -> String {
        let f = &self.facts;
        let mut w = XmlWriter::new();
        let vtype = if self.vol_type() == VolType::Dir {
            "dir"
        } else {
            "file"
        };
        w.open("volume", &[("type", vtype.into())]);
        w.text_elem("name", &[], &self.name);
        w.text_elem("key", &[], &self.key());
        w.empty("source", &[]);
        let info = self.info(false);
        let bytes = [("unit", "bytes".to_owned())];
        w.text_elem("capacity", &bytes, &info.capacity.to_string());
        w.text_elem("allocation", &bytes, &info.allocation.to_string());
        w.text_elem("physical", &bytes, &self.info(true).allocation.to_string());
        w.open("target", &[]);
        w.text_elem("path", &[], &self.key());
        w.empty("format", &[("type", f.format.as_str().into())]);
        Permissions::format(&mut w, f.mode, f.uid, f.gid);
        timestamps(&mut w, f.times);
        if let Some(q) = &f.qcow2 {
            w.text_elem("compat", &[], q.compat());
            w.text_elem(
                "clusterSize",
                &[("unit", "B".into())],
                &q.cluster_size.to_string(),
            );
            if q.lazy_refcounts {
                w.open("features", &[]);
                w.empty("lazy_refcounts", &[]);
                w.close("features");
            } else {
                w.empty("features", &[]);
            }
        }
        w.close("target");
        if let Some((b, q)) = f
            .qcow2
            .as_ref()
            .and_then(|q| Some((q.backing.as_ref()?, q)))
        {
            backing_store(&mut w, b, q.backing_format);
        }
        w.close("volume");
        w.finish()
    }
}

fn timestamps(w: &mut XmlWriter, times: [(i64, i64); 3]) {
    w.open("timestamps", &[]);
    for (name, (s, ns)) in ["atime", "mtime", "ctime"].into_iter().zip(times) {
        w.text_elem(name, &[], &format!("{s}.{ns:09}"));
    }
    w.close("timestamps");
}

fn backing_store(w: &mut XmlWriter, path: &Path, format: Option<VolFormat>) {
    w.open("backingStore", &[]);
    w.text_elem("path", &[], &path.to_string_lossy());
    let probed = crate::probe::probe(path).ok();
    let format = format.or(probed.as_ref().map(|p| p.format));
    if let Some(fmt) = format {
        w.empty("format", &[("type", fmt.as_str().into())]);
    }
    if let Some(p) = probed {
        Permissions::format(w, p.mode, p.uid, p.gid);
        timestamps(w, p.times);
    }
    w.close("backingStore");
}

/// (allocated, size) of a file, if it exists.
fn live_size(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.blocks().saturating_mul(512), m.len()))
}
