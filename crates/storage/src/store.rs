//! Where pools live on disk, and their crash-safe persistence.
//!
//! ```text
//! ROOT/etc/storage/NAME.xml          persistent definitions
//! ROOT/etc/storage/autostart/NAME    autostart markers
//! ROOT/run/storage/NAME.xml          definition of each active pool, so a
//!                                    restarted daemon re-adopts it (transient
//!                                    pools too)
//! ROOT/images                        the default pool's directory
//! ```
//!
//! Every write is atomic (`durable`); a daemon killed at any instant leaves
//! the old or the new file.

use std::io;
use std::path::{Path, PathBuf};

/// Paths of the storage driver's state.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub config_dir: PathBuf,
    pub autostart_dir: PathBuf,
    pub state_dir: PathBuf,
    pub default_target: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            config_dir: root.join("etc/storage"),
            autostart_dir: root.join("etc/storage/autostart"),
            state_dir: root.join("run/storage"),
            default_target: root.join("images"),
        }
    }

    /// Creates the directories; returns whether the configuration
    /// directory is new (the daemon's first start with storage).
    pub(crate) fn create_all(&self) -> io::Result<bool> {
        let first = !self.config_dir.exists();
        for d in [&self.config_dir, &self.autostart_dir, &self.state_dir] {
            std::fs::create_dir_all(d)?;
        }
        for d in [&self.config_dir, &self.autostart_dir, &self.state_dir] {
            durable::sweep_temp_files(d);
        }
        Ok(first)
    }

    pub(crate) fn definition(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    pub(crate) fn autostart(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(name)
    }

    pub(crate) fn state(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.xml"))
    }
}

/// The name under which a volume is built before it is renamed into
/// place. It is hidden and says what it is, so refresh never lists it and
/// pool start removes it (a daemon killed mid-build leaves it behind).
pub(crate) fn partial_path(target: &Path, name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    target.join(format!(
        ".{name}.ferrovirt-partial.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Whether a file name is a partial volume (see [`partial_path`]).
pub(crate) fn is_partial_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".ferrovirt-partial.")
}

/// Removes partial volumes left in a pool's directory; returns how many.
pub(crate) fn sweep_partials(target: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(target) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        if is_partial_name(&e.file_name().to_string_lossy())
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    if n > 0 {
        let _ = durable::sync_dir(target);
        tracing::info!(dir = %target.display(), removed = n, "removed partial volumes of an interrupted build");
    }
    n
}
