//! This workspace's binaries (`ferrovirtd`, `qemu-sim`) in the target
//! directory of the running test or tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::Error;

/// The directory holding the binaries of the running executable's build
/// (`target/<profile>`): a test runs from `target/<profile>/deps`.
pub fn target_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(Error::io("locate the running executable"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    Ok(if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// The binary `name` beside the running executable, if it is there.
pub fn locate(name: &str) -> Result<PathBuf, Error> {
    let path = target_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Missing {
            what: path.display().to_string(),
            remedy: format!("cargo build -p {name}"),
        })
    }
}

/// The binary of package `name` (same name), built with cargo into the
/// running executable's target directory when it is not there yet.
pub fn build(name: &str) -> Result<PathBuf, Error> {
    build_in(&target_dir()?, name, name)
}

/// The binary `bin` of package `package` in `dir` (a `target/<profile>`
/// directory), built there with cargo when it is not there yet.
pub fn build_in(dir: &Path, package: &str, bin: &str) -> Result<PathBuf, Error> {
    // One build at a time within a test binary.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = dir.join(bin);
    if path.is_file() {
        return Ok(path);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "-p", package, "--bin", bin]);
    if dir.file_name().is_some_and(|profile| profile == "release") {
        command.arg("--release");
    }
    if let Some(target) = dir.parent() {
        command.env("CARGO_TARGET_DIR", target);
    }
    let what = format!("cargo build -p {package} --bin {bin}");
    let status = command.status().map_err(Error::io(what.clone()))?;
    if !status.success() {
        return Err(Error::CommandFailed {
            command: what,
            status,
            stderr: String::new(),
        });
    }
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Missing {
            what: path.display().to_string(),
            remedy: what,
        })
    }
}
