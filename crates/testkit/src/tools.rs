//! The outside programs tests drive, each named with the Debian package
//! that provides it. A missing one fails the test that needs it with that
//! name: no test passes by skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::Error;

/// The interpreter libvirt-python is installed for (the first `python3`
/// on `PATH` may be another one).
pub const PYTHON3: &str = "/usr/bin/python3";

/// An outside program a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `virsh`, libvirt's shell.
    Virsh,
    /// `/usr/bin/python3` with the `libvirt` module.
    Python3Libvirt,
    /// `qemu-system-x86_64`.
    QemuSystem,
    /// `qemu-img`.
    QemuImg,
    /// `qemu-io`.
    QemuIo,
    /// `virt-install`, which writes domain XML the way most users get it.
    VirtInstall,
    /// `virt-xml`, which edits a defined domain's XML.
    VirtXml,
}

impl Tool {
    /// What the tool is called on the command line.
    pub fn command(self) -> &'static str {
        match self {
            Tool::Virsh => "virsh",
            Tool::Python3Libvirt => PYTHON3,
            Tool::QemuSystem => "qemu-system-x86_64",
            Tool::QemuImg => "qemu-img",
            Tool::QemuIo => "qemu-io",
            Tool::VirtInstall => "virt-install",
            Tool::VirtXml => "virt-xml",
        }
    }

    /// The Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Virsh => "libvirt-clients",
            Tool::Python3Libvirt => "python3-libvirt",
            Tool::QemuSystem => "qemu-system-x86",
            Tool::QemuImg | Tool::QemuIo => "qemu-utils",
            Tool::VirtInstall | Tool::VirtXml => "virtinst",
        }
    }

    /// Whether the tool is there; the error names it and its package.
    pub fn check(self) -> Result<(), Error> {
        let present = match self {
            Tool::Python3Libvirt => Command::new(PYTHON3)
                .args(["-c", "import libvirt"])
                .output()
                .is_ok_and(|out| out.status.success()),
            _ => find_in_path(self.command()).is_some(),
        };
        if present { Ok(()) } else { Err(self.missing()) }
    }

    /// The error of a missing tool: its name and how to install it.
    fn missing(self) -> Error {
        Error::Missing {
            what: self.command().to_owned(),
            remedy: format!("apt-get install {}", self.package()),
        }
    }

    /// Fails the calling test when the tool is missing (checked once per
    /// process and tool).
    #[allow(
        clippy::panic,
        reason = "a test helper: a missing tool fails the test, naming the package"
    )]
    pub fn require(self) {
        static CHECKED: [OnceLock<Result<(), String>>; 7] = [const { OnceLock::new() }; 7];
        let slot = &CHECKED[self as usize];
        if let Err(message) = slot.get_or_init(|| self.check().map_err(|e| e.to_string())) {
            panic!("{message}");
        }
    }
}

/// The first executable called `name` on `PATH` (or `name` itself when
/// it is a path).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs the real `virsh -c URI ARGS` (English messages, no default URI
/// other than `uri`); fails the calling test when virsh is missing.
#[allow(
    clippy::panic,
    reason = "a test helper: virsh that cannot run fails the test"
)]
pub fn virsh(uri: &str, args: &[&str]) -> Output {
    Tool::Virsh.require();
    Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .env("LIBVIRT_DEFAULT_URI", uri)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run virsh: {e}"))
}

/// A `/usr/bin/python3` command for a script that imports libvirt; fails
/// the calling test when libvirt-python is missing.
pub fn python3() -> Command {
    Tool::Python3Libvirt.require();
    Command::new(PYTHON3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virsh_and_python_libvirt_are_installed_here() {
        // What CI installs (scripts/deps.sh); a missing one is a failure.
        Tool::Virsh.check().unwrap();
        Tool::Python3Libvirt.check().unwrap();
    }

    #[test]
    fn finds_sh_and_names_the_package_of_a_missing_tool() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-tool-anywhere").is_none());
        assert_eq!(
            Tool::QemuIo.missing().to_string(),
            "qemu-io is missing: apt-get install qemu-utils"
        );
    }
}
