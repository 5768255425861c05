//! The save image: a fixed header, the domain XML, then QEMU's migration
//! stream.
//!
//! ```text
//! 0   16  magic: PARTIAL while QEMU writes, COMPLETE once the save finished
//! 16  4   version (LE u32)
//! 20  4   XML length (LE u32)
//! 24  4   flags (LE u32; bit 0: the guest was running)
//! 28  4   reserved
//! 32  8   stream length (LE u64; 0 while partial)
//! 40  24  reserved
//! 64  ..  domain XML, then the migration stream
//! ```
//!
//! The header is written first and QEMU appends; the magic and the stream
//! length are rewritten only after QEMU reported completion, so a save that
//! was interrupted, a truncated copy, or a file that is not ours is refused
//! by [`read_header`] before any QEMU is started.
//!
//! [`rewrite`] replaces the XML of a complete image (`save-image-define`):
//! the XML length and so the stream offset change, so it builds a new
//! image beside the old one and renames it over, never editing in place.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::store::files;
use crate::{Error, Result};

pub(crate) const MAGIC_PARTIAL: &[u8; 16] = b"FerrovirtSavePrt";
pub(crate) const MAGIC_COMPLETE: &[u8; 16] = b"FerrovirtSaveImg";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 64;
/// A domain XML larger than this is not one we wrote.
pub(crate) const MAX_XML: u32 = 16 << 20;

const FLAG_RUNNING: u32 = 1;

/// What the header of a complete image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageHeader {
    pub(crate) xml: String,
    pub(crate) was_running: bool,
    /// Offset of the migration stream in the file.
    pub(crate) stream_offset: u64,
    pub(crate) stream_len: u64,
}

/// Creates `path` with a partial header and the XML; QEMU appends.
pub(crate) fn write_header(path: &Path, xml: &str, was_running: bool) -> Result<()> {
    let len = u32::try_from(xml.len())
        .ok()
        .filter(|l| *l <= MAX_XML)
        .ok_or_else(|| Error::InvalidArg("domain XML too large for a save image".into()))?;
    let mut h = [0u8; HEADER_LEN as usize];
    h[..16].copy_from_slice(MAGIC_PARTIAL);
    h[16..20].copy_from_slice(&VERSION.to_le_bytes());
    h[20..24].copy_from_slice(&len.to_le_bytes());
    let flags = if was_running { FLAG_RUNNING } else { 0 };
    h[24..28].copy_from_slice(&flags.to_le_bytes());
    let ctx = || format!("cannot write save image '{}'", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io(ctx(), e))?;
    f.write_all(&h)
        .and_then(|()| f.write_all(xml.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(ctx(), e))
}

/// Marks the image complete: records the stream length, then the magic,
/// each synced, so a crash in between leaves a partial image.
pub(crate) fn mark_complete(path: &Path) -> Result<()> {
    let ctx = || format!("cannot finish save image '{}'", path.display());
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(ctx(), e))?;
    let size = f.metadata().map_err(|e| Error::io(ctx(), e))?.len();
    let mut h = [0u8; HEADER_LEN as usize];
    f.read_exact(&mut h).map_err(|e| Error::io(ctx(), e))?;
    let xml_len = u64::from(le32(&h[20..24]));
    let stream_len = size
        .checked_sub(HEADER_LEN + xml_len)
        .filter(|l| *l > 0)
        .ok_or_else(|| Error::Qemu("QEMU wrote no migration stream".into()))?;
    let io = |f: &mut File, at: u64, data: &[u8]| -> std::io::Result<()> {
        f.seek(SeekFrom::Start(at))?;
        f.write_all(data)?;
        f.sync_all()
    };
    io(&mut f, 32, &stream_len.to_le_bytes()).map_err(|e| Error::io(ctx(), e))?;
    io(&mut f, 0, MAGIC_COMPLETE).map_err(|e| Error::io(ctx(), e))
}

/// Replaces the domain XML and the "was running" flag of the complete
/// image `old` describes, keeping its migration stream byte for byte. The
/// new image is built in a temp file beside `path` (header and XML, the
/// stream copied after them), checked, synced and renamed over `path`, so
/// `path` always holds either the old or the new complete image.
pub(crate) fn rewrite(path: &Path, old: &ImageHeader, xml: &str, was_running: bool) -> Result<()> {
    let ctx = || format!("cannot rewrite save image '{}'", path.display());
    let tmp = files::temp_sibling(path).map_err(|e| Error::io(ctx(), e))?;
    let res = build_copy(path, &tmp, old, xml, was_running)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(ctx(), e)));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match path.parent() {
        Some(dir) => files::sync_dir(dir).map_err(|e| Error::io(ctx(), e)),
        None => Ok(()),
    }
}

/// Writes the new image for [`rewrite`] to `tmp` and validates it.
fn build_copy(
    src: &Path,
    tmp: &Path,
    old: &ImageHeader,
    xml: &str,
    was_running: bool,
) -> Result<()> {
    let ctx = || format!("cannot rewrite save image '{}'", src.display());
    let mut from = File::open(src).map_err(|e| Error::io(ctx(), e))?;
    let meta = from.metadata().map_err(|e| Error::io(ctx(), e))?;
    if old.stream_offset.checked_add(old.stream_len) != Some(meta.len()) {
        return Err(bad(src, "it changed while being rewritten"));
    }
    write_header(tmp, xml, was_running)?;
    std::fs::set_permissions(tmp, meta.permissions()).map_err(|e| Error::io(ctx(), e))?;
    let mut to = OpenOptions::new()
        .append(true)
        .open(tmp)
        .map_err(|e| Error::io(ctx(), e))?;
    from.seek(SeekFrom::Start(old.stream_offset))
        .map_err(|e| Error::io(ctx(), e))?;
    let copied =
        std::io::copy(&mut from.take(old.stream_len), &mut to).map_err(|e| Error::io(ctx(), e))?;
    drop(to);
    if copied != old.stream_len {
        return Err(bad(src, "it changed while being rewritten"));
    }
    mark_complete(tmp)?;
    let new = read_header(tmp)?;
    if new.stream_len != old.stream_len {
        return Err(Error::Internal(format!(
            "rewritten save image '{}' lost stream bytes",
            src.display()
        )));
    }
    Ok(())
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn bad(path: &Path, why: &str) -> Error {
    Error::Qemu(format!(
        "'{}' is not a valid save image: {why}",
        path.display()
    ))
}

/// Reads and validates the header of a complete image (magic, version,
/// lengths against the file size, the stream's own magic).
pub(crate) fn read_header(path: &Path) -> Result<ImageHeader> {
    open(path).map(|(h, _)| h)
}

/// Opens a complete image for a restore: its validated header, and the
/// file positioned at the start of the migration stream. The stream is
/// then read through this very descriptor, so the file validated is the
/// file loaded even if the path is replaced meanwhile (save-image-define
/// renames a new image over it).
pub(crate) fn open(path: &Path) -> Result<(ImageHeader, File)> {
    let mut f = File::open(path)
        .map_err(|e| Error::io(format!("cannot open save image '{}'", path.display()), e))?;
    let h = read_header_from(&mut f, path)?;
    f.seek(SeekFrom::Start(h.stream_offset))
        .map_err(|e| Error::io(format!("cannot read save image '{}'", path.display()), e))?;
    Ok((h, f))
}

fn read_header_from(f: &mut File, path: &Path) -> Result<ImageHeader> {
    let size = f
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat '{}'", path.display()), e))?
        .len();
    let mut h = [0u8; HEADER_LEN as usize];
    if size < HEADER_LEN || f.read_exact(&mut h).is_err() {
        return Err(bad(path, "file too short"));
    }
    if &h[..16] == MAGIC_PARTIAL {
        return Err(bad(path, "the save did not complete"));
    }
    if &h[..16] != MAGIC_COMPLETE {
        return Err(bad(path, "unknown magic"));
    }
    if le32(&h[16..20]) != VERSION {
        return Err(bad(path, "unsupported version"));
    }
    let xml_len = le32(&h[20..24]);
    let stream_len = le64(&h[32..40]);
    if xml_len == 0 || xml_len > MAX_XML {
        return Err(bad(path, "bad XML length"));
    }
    let stream_offset = HEADER_LEN + u64::from(xml_len);
    if stream_len == 0 || stream_offset.checked_add(stream_len) != Some(size) {
        return Err(bad(path, "truncated or extended (stream length mismatch)"));
    }
    let mut xml = vec![0u8; xml_len as usize];
    f.read_exact(&mut xml)
        .map_err(|_| bad(path, "file too short"))?;
    let xml = String::from_utf8(xml).map_err(|_| bad(path, "domain XML is not UTF-8"))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| bad(path, "no migration stream"))?;
    // QEMU's stream starts with "QEVM"; qemu-sim's with "QEMU".
    if &magic != b"QEVM" && &magic != b"QEMU" {
        return Err(bad(path, "the migration stream has an unknown magic"));
    }
    Ok(ImageHeader {
        xml,
        was_running: le32(&h[24..28]) & FLAG_RUNNING != 0,
        stream_offset,
        stream_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.save");
        write_header(&p, "<domain/>", true).unwrap();
        assert!(
            read_header(&p)
                .unwrap_err()
                .to_string()
                .contains("did not complete")
        );
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"QEVM-stream-bytes").unwrap();
        drop(f);
        mark_complete(&p).unwrap();
        let h = read_header(&p).unwrap();
        assert_eq!(h.xml, "<domain/>");
        assert!(h.was_running);
        assert_eq!(h.stream_offset, 64 + 9);
        assert_eq!(h.stream_len, 17);
        let (_, mut f) = open(&p).unwrap();
        let mut stream = Vec::new();
        f.read_to_end(&mut stream).unwrap();
        assert_eq!(
            stream, b"QEVM-stream-bytes",
            "open() positions at the stream"
        );
        let len = std::fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 3).unwrap();
        assert!(
            read_header(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        std::fs::write(&p, vec![7u8; 200]).unwrap();
        assert!(read_header(&p).unwrap_err().to_string().contains("magic"));
        std::fs::write(&p, b"short").unwrap();
        assert!(
            read_header(&p)
                .unwrap_err()
                .to_string()
                .contains("too short")
        );
    }

    /// A complete image of `xml` and `stream` at `dir/a.save`.
    fn complete_image(dir: &Path, xml: &str, stream: &[u8]) -> std::path::PathBuf {
        let p = dir.join("a.save");
        write_header(&p, xml, true).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(stream).unwrap();
        drop(f);
        mark_complete(&p).unwrap();
        p
    }

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn rewrite_replaces_the_xml_and_keeps_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let stream: Vec<u8> = b"QEVM"
            .iter()
            .copied()
            .chain((0..200_000u32).map(|i| (i % 251) as u8))
            .collect();
        let p = complete_image(dir.path(), "<domain>old</domain>", &stream);
        for xml in ["<domain>a much longer replacement XML</domain>", "<d/>"] {
            let old = read_header(&p).unwrap();
            rewrite(&p, &old, xml, false).unwrap();
            let h = read_header(&p).unwrap();
            assert_eq!(h.xml, xml);
            assert!(!h.was_running);
            assert_eq!(h.stream_offset, HEADER_LEN + xml.len() as u64);
            assert_eq!(h.stream_len, stream.len() as u64);
            let bytes = std::fs::read(&p).unwrap();
            assert!(bytes[h.stream_offset as usize..] == stream[..]);
            assert_eq!(entries(dir.path()), 1, "no temp file left behind");
        }
        let old = read_header(&p).unwrap();
        rewrite(&p, &old, "<d/>", true).unwrap();
        assert!(read_header(&p).unwrap().was_running);
    }

    #[test]
    fn rewrite_refuses_an_image_that_changed_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = complete_image(dir.path(), "<domain/>", b"QEVM-stream");
        let old = read_header(&p).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"more").unwrap();
        drop(f);
        let before = std::fs::read(&p).unwrap();
        let e = rewrite(&p, &old, "<other/>", false).unwrap_err();
        assert!(
            e.to_string().contains("changed while being rewritten"),
            "{e}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(entries(dir.path()), 1, "no temp file left behind");
    }
}
