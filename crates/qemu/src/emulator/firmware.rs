//! The firmware descriptors installed on this host (QEMU's
//! `docs/interop/firmware.json`), in QEMU's search order: by file name,
//! a file in `/etc/qemu/firmware` overriding one of the same name in
//! `/usr/share/qemu/firmware` (an empty one there disables it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use domain::FirmwareDescriptor;

/// Largest descriptor read; they are a few hundred bytes.
const MAX_DESCRIPTOR: u64 = 64 * 1024;

/// The usable descriptors of `dirs`, in priority order. A descriptor that
/// does not parse or whose image is missing is logged and skipped.
pub(crate) fn load(dirs: &[&str]) -> Vec<FirmwareDescriptor> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                by_name.insert(name, e.path());
            }
        }
    }
    by_name.values().filter_map(|p| read(p)).collect()
}

fn read(path: &Path) -> Option<FirmwareDescriptor> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() == 0 || meta.len() > MAX_DESCRIPTOR {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    match FirmwareDescriptor::parse(path, &text) {
        Ok(d) if d.executable.exists() => Some(d),
        Ok(d) => {
            tracing::debug!(descriptor = %path.display(), image = %d.executable.display(), "firmware image missing");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot use firmware descriptor");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_dirs_override_by_name_and_empty_files_disable() {
        let base = std::env::temp_dir().join(format!("fv-fw-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let image = base.join("code.fd");
        std::fs::write(&image, b"x").unwrap();
        let desc = |d: &str| {
            format!(
                r#"{{"description":"{d}","interface-types":["uefi"],"mapping":{{"device":"flash",
                "executable":{{"filename":"{}","format":"raw"}}}},"targets":[],"features":[]}}"#,
                image.display()
            )
        };
        std::fs::write(a.join("10-x.json"), desc("a10")).unwrap();
        std::fs::write(a.join("20-y.json"), desc("a20")).unwrap();
        std::fs::write(b.join("10-x.json"), desc("b10")).unwrap();
        std::fs::write(b.join("20-y.json"), "").unwrap();
        let got = load(&[a.to_str().unwrap(), b.to_str().unwrap()]);
        let names: Vec<&str> = got.iter().map(|d| d.description.as_str()).collect();
        assert_eq!(names, ["b10"]);
        let _ = std::fs::remove_dir_all(&base);
    }
}
