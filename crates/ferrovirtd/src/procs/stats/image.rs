//! Sizes of a disk's image file, from the file itself: what
//! `virDomainGetBlockInfo` and the block group report when QEMU has not
//! (an inactive domain) and where the host's view is the truth (bytes
//! the file occupies).

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use qemu::DiskDesc;

/// `virDomainBlockInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Bytes the image occupies on the host.
    pub(crate) allocation: u64,
    /// Size the guest sees.
    pub(crate) capacity: u64,
    /// Size of the file.
    pub(crate) physical: u64,
}

/// The sizes of `disk`'s image; `None` without a source or a readable
/// file. The guest size of a qcow2 image is read from its header.
pub(crate) fn sizes(disk: &DiskDesc) -> Option<Sizes> {
    let path = disk.source.as_ref()?;
    let meta = std::fs::metadata(path).ok()?;
    let physical = if meta.file_type().is_file() {
        meta.len()
    } else {
        block_device_size(path).unwrap_or(0)
    };
    let capacity = if disk.qcow2 {
        qcow2_size(path).unwrap_or(physical)
    } else {
        physical
    };
    let allocation = if meta.file_type().is_file() {
        meta.blocks().saturating_mul(512)
    } else {
        physical
    };
    Some(Sizes {
        allocation,
        capacity,
        physical,
    })
}

/// The virtual size in a qcow2 header (big-endian u64 at offset 24).
fn qcow2_size(path: &std::path::Path) -> Option<u64> {
    let mut head = [0u8; 32];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if head.get(..4)? != b"QFI\xfb" {
        return None;
    }
    let b: [u8; 8] = head.get(24..32)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// A block device's size: the end of its data.
fn block_device_size(path: &std::path::Path) -> Option<u64> {
    use std::io::Seek;
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(std::io::SeekFrom::End(0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(path: &std::path::Path, qcow2: bool) -> DiskDesc {
        DiskDesc {
            target: "vda".into(),
            source: Some(path.to_owned()),
            qcow2,
            cdrom: false,
        }
    }

    #[test]
    fn raw_and_qcow2_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a.img");
        std::fs::write(&raw, vec![1u8; 8192]).unwrap();
        let s = sizes(&disk(&raw, false)).unwrap();
        assert_eq!((s.capacity, s.physical), (8192, 8192));
        assert!(s.allocation >= 8192);
        let q = dir.path().join("b.qcow2");
        let mut head = vec![0u8; 512];
        head[..4].copy_from_slice(b"QFI\xfb");
        head[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        std::fs::write(&q, &head).unwrap();
        let s = sizes(&disk(&q, true)).unwrap();
        assert_eq!((s.capacity, s.physical), (1 << 30, 512));
        assert!(sizes(&disk(&dir.path().join("none"), false)).is_none());
    }
}
