//! The tiny test guest: a packaged kernel and a busybox initramfs built by
//! `guest/build.sh` (idempotent), booted directly by QEMU.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Error;

/// What `guest/build.sh` produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The line the guest prints on its serial console once it is up.
pub const READY_MARKER: &str = "FERROVIRT-GUEST-READY";

/// The workspace's `guest/` directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest")
}

/// Builds the guest (once per process) and returns its files.
pub fn build() -> Result<&'static Guest, Error> {
    static BUILT: OnceLock<Result<Guest, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| run_build_script().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| Error::Missing {
            what: "the test guest".into(),
            remedy: message.clone(),
        })
}

fn run_build_script() -> Result<Guest, Error> {
    let script = dir().join("build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(Error::io(format!("run {}", script.display())))?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: format!(
                "{} (needs linux-image-amd64, busybox-static, cpio)",
                script.display()
            ),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let build = dir().join("build");
    Ok(Guest {
        kernel: build.join("vmlinuz"),
        initrd: build.join("initramfs.cpio.gz"),
    })
}
