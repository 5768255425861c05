//! Facts about the machine and the build a run measured.

use std::path::Path;
use std::process::Command;

use testkit::procfs;

use crate::results::Machine;
use crate::stats::round1;

/// Where Debian's libvirt-daemon package installs libvirtd.
const LIBVIRTD: &str = "/usr/sbin/libvirtd";

/// The first line a command prints, trimmed; empty when it cannot run.
fn first_line_of(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

/// The value of the first line of `/proc/<file>` that starts with `key`.
fn proc_value(file: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc").join(file))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(|value| value.trim_start_matches([' ', '\t', ':']).trim().to_owned())
}

/// CPU, RAM, kernel, QEMU and libvirtd versions, whether KVM works, load.
pub(crate) fn describe(qemu: &Path, kvm: bool) -> Machine {
    let ram_kib: u64 = proc_value("meminfo", "MemTotal:")
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Machine {
        cpu: proc_value("cpuinfo", "model name").unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        ram_gib: round1(ram_kib as f64 / 1024.0 / 1024.0),
        kernel: first_line_of(Path::new("uname"), &["-r"]),
        qemu: first_line_of(qemu, &["--version"]),
        kvm,
        libvirtd: first_line_of(Path::new(LIBVIRTD), &["--version"]),
        loadavg_start: procfs::loadavg(),
    }
}

/// HEAD of the workspace and how many paths differ from it (read-only git).
pub(crate) fn git_state(workspace: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let changed = git(&["status", "--porcelain"]).map_or(0, |text| text.lines().count());
    Some(format!("{} ({changed} changed paths)", head.trim()))
}
