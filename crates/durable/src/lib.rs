//! Crash-safe state files: definitions, autostart markers, status records.
//!
//! Every write is atomic (temp file in the same directory, write, fsync,
//! rename, fsync the directory), so a daemon killed at any instant leaves
//! either the old or the new file, never a torn one. Temp files carry a
//! recognisable name ([`is_temp_name`]) so that the next start can sweep
//! what a killed writer left ([`sweep_temp_files`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Files larger than this are not ours: refuse to slurp them into memory.
pub const MAX_FILE: u64 = 16 << 20;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces `path` with `data`.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let tmp = temp_sibling(path)?;
    let res = write_synced(&tmp, data).and_then(|()| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
        return res;
    }
    sync_dir(dir)
}

/// A fresh temp name in `path`'s directory (so a rename onto `path` is
/// atomic), unique per process and call: concurrent writers never share
/// one.
pub fn temp_sibling(path: &Path) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok(dir.join(format!(
        ".{}.tmp.{}.{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    )))
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes `path` durably; a missing file is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => path.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads a file we wrote, refusing absurd sizes (a corrupted or hostile
/// file must not exhaust memory).
pub fn read_bounded(path: &Path) -> io::Result<String> {
    let len = fs::metadata(path)?.len();
    if len > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, larger than {MAX_FILE}", path.display()),
        ));
    }
    fs::read_to_string(path)
}

/// Files in `dir` ending in `.ext`, skipping our temp files.
pub fn list_with_ext(dir: &Path, ext: &str) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && path.extension().is_some_and(|e| e == ext) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `name` is one of our temp names (see [`temp_sibling`]).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp.")
}

/// Removes temp files left by a writer killed between create and rename.
pub fn sweep_temp_files(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temp_name(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.xml");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(read_bounded(&p).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn sweep_removes_only_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("b.xml");
        fs::write(&keep, "x").unwrap();
        let tmp = temp_sibling(&keep).unwrap();
        fs::write(&tmp, "partial").unwrap();
        assert!(is_temp_name(&tmp.file_name().unwrap().to_string_lossy()));
        sweep_temp_files(dir.path());
        assert!(keep.exists());
        assert!(!tmp.exists());
        assert_eq!(list_with_ext(dir.path(), "xml").unwrap(), vec![keep]);
    }

    #[test]
    fn read_bounded_refuses_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let f = File::create(&p).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        assert!(read_bounded(&p).is_err());
        remove(&p).unwrap();
        remove(&p).unwrap();
    }
}
