//! Reading a pool's directory: its volumes, sizes and permissions. Runs on
//! the blocking pool; the result replaces the pool's snapshot in one step.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use crate::store::is_partial_name;
use crate::volume::Volume;
use crate::{Error, Result, probe};

/// What a refresh found.
pub(crate) struct Scan {
    pub volumes: BTreeMap<String, Arc<Volume>>,
    /// (capacity, allocation, available) of the file system.
    pub sizes: (u64, u64, u64),
    /// (mode, uid, gid) of the directory.
    pub dir_perms: (u32, u32, u32),
}

/// Scans `target`. Files that cannot be probed (a dangling link, a file
/// removed during the scan) are skipped, as libvirt skips them.
pub(crate) fn scan(target: &Path) -> Result<Scan> {
    let what = || format!("cannot open directory '{}'", target.display());
    let meta = std::fs::metadata(target).map_err(|e| Error::io(what(), e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            what(),
            std::io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    let mut volumes = BTreeMap::new();
    for entry in std::fs::read_dir(target).map_err(|e| Error::io(what(), e))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_partial_name(&name) || durable::is_temp_name(&name) {
            continue;
        }
        let path = entry.path();
        match probe::probe(&path) {
            Ok(facts) => {
                volumes.insert(
                    name.clone(),
                    Arc::new(Volume {
                        name,
                        path,
                        facts,
                        building: None,
                    }),
                );
            }
            Err(e) => {
                tracing::debug!(file = %path.display(), error = %e, "skipping unreadable file")
            }
        }
    }
    Ok(Scan {
        volumes,
        sizes: fs_sizes(target)?,
        dir_perms: (meta.mode() & 0o7777, meta.uid(), meta.gid()),
    })
}

/// (capacity, allocation, available) of the file system holding `dir`.
pub(crate) fn fs_sizes(dir: &Path) -> Result<(u64, u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        Error::io(
            format!("cannot statvfs '{}'", dir.display()),
            std::io::Error::from(e),
        )
    })?;
    let frsize = st.fragment_size();
    let capacity = st.blocks().saturating_mul(frsize);
    let free = st.blocks_free().saturating_mul(frsize);
    let available = st.blocks_available().saturating_mul(frsize);
    Ok((capacity, capacity.saturating_sub(free), available))
}
