//! Non-ephemeral secrets on disk, under `ROOT/etc/secrets`: `UUID.xml`
//! (the definition) and `UUID.value` (the value, raw bytes), both mode
//! 0600 and each replaced atomically.
//!
//! Order of writes, so that every crash leaves a state the next start
//! reads as either the old or the new one: a value is written before the
//! definition that makes it reachable (an ephemeral secret turning
//! persistent), and a definition is removed before its value (undefine).
//! A value file without a definition is therefore never reachable, and
//! the load removes it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::VALUE_MAX;
use crate::def::SecretDef;

/// A secret as it was found on disk.
pub(crate) struct Loaded {
    pub def: SecretDef,
    pub value: Option<Vec<u8>>,
}

pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            dir: root.join("etc/secrets"),
        }
    }

    fn xml_path(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.dir.join(format!("{uuid}.xml"))
    }

    fn value_path(&self, uuid: &uuid::Uuid) -> PathBuf {
        self.dir.join(format!("{uuid}.value"))
    }

    pub(crate) fn save_def(&self, def: &SecretDef) -> io::Result<()> {
        durable::atomic_write(&self.xml_path(&def.uuid), def.to_xml().as_bytes())
    }

    pub(crate) fn save_value(&self, uuid: &uuid::Uuid, value: &[u8]) -> io::Result<()> {
        durable::atomic_write(&self.value_path(uuid), value)
    }

    pub(crate) fn remove_def(&self, uuid: &uuid::Uuid) -> io::Result<()> {
        durable::remove(&self.xml_path(uuid))
    }

    pub(crate) fn remove_value(&self, uuid: &uuid::Uuid) -> io::Result<()> {
        durable::remove(&self.value_path(uuid))
    }

    /// Creates the directory (mode 0700), removes what a killed writer
    /// left, and reads every definition with its value. A file that cannot
    /// be read or parsed is logged and skipped, as libvirt does.
    pub(crate) fn load(&self) -> io::Result<Vec<Loaded>> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        durable::sweep_temp_files(&self.dir);
        let mut out = Vec::new();
        for path in durable::list_with_ext(&self.dir, "xml")? {
            match self.load_one(&path) {
                Ok(l) => out.push(l),
                Err(e) => tracing::error!(path = %path.display(), "skipping secret: {e}"),
            }
        }
        self.remove_orphan_values(&out)?;
        Ok(out)
    }

    fn load_one(&self, path: &Path) -> Result<Loaded, String> {
        let text = durable::read_bounded(path).map_err(|e| e.to_string())?;
        let def = SecretDef::parse(&text).map_err(|e| e.message)?;
        if path.file_stem().is_none_or(|s| *s != *def.uuid.to_string()) {
            return Err("<uuid> does not match the file name".into());
        }
        let value = read_value(&self.value_path(&def.uuid))?;
        Ok(Loaded { def, value })
    }

    fn remove_orphan_values(&self, loaded: &[Loaded]) -> io::Result<()> {
        for path in durable::list_with_ext(&self.dir, "value")? {
            let known = loaded.iter().any(|l| {
                path.file_stem()
                    .is_some_and(|s| *s == *l.def.uuid.to_string())
            });
            if !known {
                tracing::info!(path = %path.display(), "removing the value of an undefined secret");
                durable::remove(&path)?;
            }
        }
        Ok(())
    }
}

fn read_value(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if len > VALUE_MAX as u64 {
        return Err(format!("value of {len} bytes is larger than {VALUE_MAX}"));
    }
    fs::read(path).map(Some).map_err(|e| e.to_string())
}
