//! The domain XML a save image carries: `virsh save-image-dumpxml` and
//! `save-image-define` (which `save-image-edit` builds on), and the
//! alternative XML of `restore --xml`.
//!
//! A replacement XML must describe the same guest (see
//! [`Def::check_abi`]): only host-side details such as a disk's source
//! may change. The image files are read and rewritten on the blocking
//! pool: rewriting copies the whole migration stream.

use std::path::Path;

use super::header;
use crate::jobs::{AfterRestore, blocking};
use crate::object::def::Def;
use crate::{Error, Result};

/// The XML stored in the complete image at `path`; without `secure`, an
/// XML that holds secrets is given without them.
pub(crate) async fn get_xml(path: &Path, secure: bool) -> Result<String> {
    let path = path.to_path_buf();
    let xml = blocking(move || header::read_header(&path).map(|h| h.xml)).await?;
    if secure {
        return Ok(xml);
    }
    match Def::parse(&xml) {
        Ok(d) if d.has_secrets() => Ok(d.to_xml_for(false)),
        _ => Ok(xml),
    }
}

/// Replaces the XML stored in the image at `path` with `xml` (and the
/// state a restore starts the guest in, when `after` is given).
pub(crate) async fn define_xml(path: &Path, xml: &str, after: Option<AfterRestore>) -> Result<()> {
    // Parsed first: malformed XML fails as it does for `define`.
    let new = Def::parse(xml)?;
    let path = path.to_path_buf();
    blocking(move || replace(&path, &new, after)).await
}

/// The synchronous body of [`define_xml`].
fn replace(path: &Path, new: &Def, after: Option<AfterRestore>) -> Result<()> {
    let h = header::read_header(path)?;
    image_def(path, &h.xml)?.check_abi(new)?;
    let was_running = after.map_or(h.was_running, AfterRestore::is_running);
    header::rewrite(path, &h, &new.to_xml(), was_running)
}

/// The definition a restore from `path` uses: the image's own XML, or
/// `dxml` if it keeps the guest ABI of the image's.
pub(crate) fn restore_def(path: &Path, image_xml: &str, dxml: Option<&str>) -> Result<Def> {
    let saved = image_def(path, image_xml)?;
    let Some(dxml) = dxml else {
        return Ok(saved);
    };
    let new = Def::parse(dxml)?;
    saved.check_abi(&new)?;
    Ok(new)
}

/// Parses the XML an image carries.
fn image_def(path: &Path, xml: &str) -> Result<Def> {
    Def::parse(xml).map_err(|e| {
        Error::InvalidArg(format!(
            "'{}' carries an invalid domain XML: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    const XML: &str = "<domain type='qemu'><name>vm</name>\
        <uuid>0b0c5a5e-5b8e-4c1f-9a43-2d7b5d1b3c11</uuid>\
        <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
        <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <disk type='file' device='disk'><source file='/old/a.img'/>\
        <target dev='vda' bus='virtio'/></disk></devices></domain>";

    fn image(dir: &Path, complete: bool) -> PathBuf {
        let p = dir.join("vm.save");
        header::write_header(&p, XML, true).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"QEVM-the-stream").unwrap();
        drop(f);
        if complete {
            header::mark_complete(&p).unwrap();
        }
        p
    }

    #[test]
    fn define_moves_the_disk_and_keeps_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(dir.path(), true);
        let new = Def::parse(&XML.replace("/old/a.img", "/new/a.img")).unwrap();
        replace(&p, &new, Some(AfterRestore::Paused)).unwrap();
        let h = header::read_header(&p).unwrap();
        assert!(h.xml.contains("/new/a.img"), "{}", h.xml);
        assert!(!h.was_running);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[h.stream_offset as usize..], b"QEVM-the-stream");
        // No flag: the image's own "was running" is kept.
        replace(&p, &new, None).unwrap();
        assert!(!header::read_header(&p).unwrap().was_running);
    }

    #[test]
    fn define_refuses_partial_images_and_abi_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(dir.path(), false);
        let before = std::fs::read(&p).unwrap();
        let same = Def::parse(XML).unwrap();
        let e = replace(&p, &same, None).unwrap_err();
        assert!(e.to_string().contains("the save did not complete"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), before);

        let p = image(dir.path(), true);
        let before = std::fs::read(&p).unwrap();
        let bigger = Def::parse(&XML.replace("'MiB'>64<", "'MiB'>128<")).unwrap();
        let e = replace(&p, &bigger, None).unwrap_err();
        assert!(e.to_string().contains("memory (KiB)"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn restore_def_takes_a_compatible_xml_only() {
        let p = Path::new("/x.save");
        let moved = XML.replace("/old/a.img", "/new/a.img");
        let d = restore_def(p, XML, Some(&moved)).unwrap();
        assert!(d.to_xml().contains("/new/a.img"));
        assert!(
            restore_def(p, XML, None)
                .unwrap()
                .to_xml()
                .contains("/old/a.img")
        );
        let renamed = XML.replace("<name>vm</name>", "<name>vm2</name>");
        let e = restore_def(p, XML, Some(&renamed)).unwrap_err();
        assert!(e.to_string().contains("name cannot change"), "{e}");
        let e = restore_def(p, XML, Some("<domain")).unwrap_err();
        assert!(matches!(e, Error::Xml(_)), "{e:?}");
    }
}
