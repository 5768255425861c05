//! What an image file is: format, virtual size, backing file — read from
//! its header, not by running `qemu-img info`, so that refreshing a pool of
//! ten thousand files costs ten thousand small reads rather than ten
//! thousand processes.
//!
//! Only the formats volumes can have are recognised (qcow2, ISO 9660);
//! anything else is raw, as libvirt reports unknown files.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::xml::VolFormat;

/// How much of a qcow2 header (with its extensions) we read.
const HEADER_READ: usize = 4096;
const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
/// Header extension holding the backing file's format name.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// Longest backing file name qcow2 allows.
const MAX_BACKING_NAME: usize = 1023;
/// Where an ISO 9660 volume descriptor's identifier sits.
const ISO_MAGIC_OFFSET: u64 = 0x8001;

/// A file's image facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    pub format: VolFormat,
    /// Guest-visible size in bytes.
    pub capacity: u64,
    /// Bytes allocated on the host file system.
    pub allocation: u64,
    /// Size of the file itself.
    pub physical: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// (atime, mtime, ctime) as seconds and nanoseconds.
    pub times: [(i64, i64); 3],
    pub qcow2: Option<Qcow2Header>,
}

/// The parts of a qcow2 header a volume's XML shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    pub version: u32,
    pub cluster_size: u64,
    pub lazy_refcounts: bool,
    /// Absolute path of the backing file, if any.
    pub backing: Option<PathBuf>,
    pub backing_format: Option<VolFormat>,
}

impl Qcow2Header {
    /// libvirt's `<compat>` value.
    pub fn compat(&self) -> &'static str {
        if self.version >= 3 { "1.1" } else { "0.10" }
    }
}

impl Probed {
    /// What a volume being built shows until its file is whole.
    pub fn placeholder(format: VolFormat, capacity: u64) -> Self {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        Self {
            format,
            capacity,
            allocation: 0,
            physical: 0,
            mode: 0o600,
            uid,
            gid,
            times: [(0, 0); 3],
            qcow2: None,
        }
    }
}

/// Probes `path` (a regular file or directory).
pub fn probe(path: &Path) -> io::Result<Probed> {
    let meta = std::fs::metadata(path)?;
    let times = [
        (meta.atime(), meta.atime_nsec()),
        (meta.mtime(), meta.mtime_nsec()),
        (meta.ctime(), meta.ctime_nsec()),
    ];
    let mut p = Probed {
        format: VolFormat::Raw,
        capacity: meta.len(),
        allocation: meta.blocks().saturating_mul(512),
        physical: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        times,
        qcow2: None,
    };
    if meta.is_dir() {
        p.format = VolFormat::Dir;
        return Ok(p);
    }
    let f = File::open(path)?;
    let mut buf = vec![0u8; HEADER_READ];
    let n = read_at_most(&f, &mut buf, 0)?;
    buf.truncate(n);
    if let Some((size, header)) = parse_qcow2(&buf, path) {
        p.format = VolFormat::Qcow2;
        p.capacity = size;
        p.qcow2 = Some(header);
    } else if is_iso(&f)? {
        p.format = VolFormat::Iso;
    }
    Ok(p)
}

fn read_at_most(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn is_iso(f: &File) -> io::Result<bool> {
    let mut id = [0u8; 5];
    Ok(read_at_most(f, &mut id, ISO_MAGIC_OFFSET)? == 5 && &id == b"CD001")
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_be_bytes)
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)?.try_into().ok().map(u64::from_be_bytes)
}

/// Parses a qcow2 header: `(virtual size, header facts)`, or `None` if the
/// bytes are not a qcow2 header we understand.
pub fn parse_qcow2(b: &[u8], image: &Path) -> Option<(u64, Qcow2Header)> {
    if b.get(..4)? != QCOW2_MAGIC {
        return None;
    }
    let version = be32(b, 4)?;
    if !(2..=3).contains(&version) {
        return None;
    }
    let backing_offset = usize::try_from(be64(b, 8)?).ok()?;
    let backing_len = usize::try_from(be32(b, 16)?).ok()?;
    let cluster_bits = be32(b, 20)?;
    if !(9..=21).contains(&cluster_bits) {
        return None;
    }
    let size = be64(b, 24)?;
    let (lazy, ext_start) = if version >= 3 {
        let compatible = be64(b, 80)?;
        (compatible & 1 != 0, usize::try_from(be32(b, 100)?).ok()?)
    } else {
        (false, 72)
    };
    let backing = if backing_offset != 0 && backing_len > 0 && backing_len <= MAX_BACKING_NAME {
        let raw = b.get(backing_offset..backing_offset.checked_add(backing_len)?)?;
        let name = String::from_utf8_lossy(raw).into_owned();
        Some(resolve_backing(image, &name))
    } else {
        None
    };
    let backing_format = backing
        .as_ref()
        .and_then(|_| backing_format_ext(b, ext_start));
    Some((
        size,
        Qcow2Header {
            version,
            cluster_size: 1 << cluster_bits,
            lazy_refcounts: lazy,
            backing,
            backing_format,
        },
    ))
}

/// A relative backing name is relative to the image's directory.
fn resolve_backing(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// Walks the header extensions for the backing format.
fn backing_format_ext(b: &[u8], mut at: usize) -> Option<VolFormat> {
    // Each extension is at least 8 bytes, so this loop ends within the
    // bytes read.
    while at + 8 <= b.len() {
        let kind = be32(b, at)?;
        let len = usize::try_from(be32(b, at + 4)?).ok()?;
        if kind == 0 {
            return None;
        }
        if kind == EXT_BACKING_FORMAT {
            let name = b.get(at + 8..(at + 8).checked_add(len)?)?;
            return match name {
                b"qcow2" => Some(VolFormat::Qcow2),
                b"raw" => Some(VolFormat::Raw),
                _ => None,
            };
        }
        at = at.checked_add(len.div_ceil(8).checked_mul(8)?.checked_add(8)?)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, size: u64, backing: Option<&str>, fmt: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[..4].copy_from_slice(QCOW2_MAGIC);
        b[4..8].copy_from_slice(&version.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&size.to_be_bytes());
        let ext = if version >= 3 { 112usize } else { 72 };
        if version >= 3 {
            b[80..88].copy_from_slice(&1u64.to_be_bytes());
            b[100..104].copy_from_slice(&(ext as u32).to_be_bytes());
        }
        let mut at = ext;
        if let Some(f) = fmt {
            b[at..at + 4].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
            b[at + 4..at + 8].copy_from_slice(&(f.len() as u32).to_be_bytes());
            b[at + 8..at + 8 + f.len()].copy_from_slice(f.as_bytes());
            at += 8 + f.len().div_ceil(8) * 8;
        }
        b[at..at + 8].fill(0);
        if let Some(name) = backing {
            let off = 512usize;
            b[8..16].copy_from_slice(&(off as u64).to_be_bytes());
            b[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
            b[off..off + name.len()].copy_from_slice(name.as_bytes());
        }
        b
    }

    #[test]
    fn qcow2_v3_with_relative_backing() {
        let b = header(3, 1 << 30, Some("base.qcow2"), Some("qcow2"));
        let (size, h) = parse_qcow2(&b, Path::new("/pool/top.qcow2")).unwrap();
        assert_eq!(size, 1 << 30);
        assert_eq!(h.compat(), "1.1");
        assert!(h.lazy_refcounts);
        assert_eq!(h.cluster_size, 65536);
        assert_eq!(h.backing, Some(PathBuf::from("/pool/base.qcow2")));
        assert_eq!(h.backing_format, Some(VolFormat::Qcow2));
    }

    #[test]
    fn qcow2_v2_without_backing() {
        let (size, h) = parse_qcow2(&header(2, 4096, None, None), Path::new("/x")).unwrap();
        assert_eq!((size, h.compat(), h.backing), (4096, "0.10", None));
    }

    #[test]
    fn garbage_is_not_qcow2() {
        assert!(parse_qcow2(b"QFI", Path::new("/x")).is_none());
        let mut b = header(3, 1, None, None);
        b[4..8].copy_from_slice(&9u32.to_be_bytes());
        assert!(parse_qcow2(&b, Path::new("/x")).is_none());
        let mut b = header(3, 1, Some("x"), None);
        b[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(parse_qcow2(&b, Path::new("/x")).is_none());
        // A hostile extension length cannot loop or overflow.
        let mut b = header(3, 1, Some("b"), None);
        b[112..116].copy_from_slice(&7u32.to_be_bytes());
        b[116..120].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_qcow2(&b, Path::new("/x")).is_some());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = parse_qcow2(&bytes, Path::new("/p/x"));
            let mut with_magic = QCOW2_MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse_qcow2(&with_magic, Path::new("/p/x"));
        }
    }

    #[test]
    fn probes_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("r.img");
        std::fs::write(&raw, vec![1u8; 8192]).unwrap();
        let p = probe(&raw).unwrap();
        assert_eq!(
            (p.format, p.capacity, p.physical),
            (VolFormat::Raw, 8192, 8192)
        );
        let q = dir.path().join("q.qcow2");
        std::fs::write(&q, header(3, 1 << 20, None, None)).unwrap();
        let p = probe(&q).unwrap();
        assert_eq!((p.format, p.capacity), (VolFormat::Qcow2, 1 << 20));
        assert_eq!(probe(dir.path()).unwrap().format, VolFormat::Dir);
    }
}
