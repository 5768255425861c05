//! Tells the storage driver which running domain uses a file, so that a
//! volume is never deleted or shrunk under a guest: a file is in use when
//! a running domain opened it as a disk (or kernel/initrd), or when it is
//! in the backing chain of such a disk.

use std::path::{Path, PathBuf};

use qemu::{Driver, ListFilter};

/// How deep a backing chain is followed; deeper chains are not ours.
const MAX_CHAIN: usize = 16;

/// The domain driver, asked by the storage driver.
pub(crate) struct DomainVolumeUsers(pub(crate) Driver);

impl storage::VolumeUsers for DomainVolumeUsers {
    fn running_user(&self, path: &Path) -> Option<String> {
        for summary in self.0.list(ListFilter::Active) {
            let Ok(dom) = self.0.lookup_by_uuid(&summary.uuid) else {
                continue;
            };
            if dom.files_in_use().iter().any(|f| chain_has(f, path)) {
                return Some(dom.name().to_owned());
            }
        }
        None
    }
}

/// Whether `wanted` is `file` or one of its backing files.
fn chain_has(file: &Path, wanted: &Path) -> bool {
    let mut next: Option<PathBuf> = Some(file.to_path_buf());
    for _ in 0..MAX_CHAIN {
        let Some(f) = next else { return false };
        if f == wanted {
            return true;
        }
        next = storage::probe::probe(&f)
            .ok()
            .and_then(|p| p.qcow2)
            .and_then(|q| q.backing);
    }
    false
}
