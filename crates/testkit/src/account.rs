//! The unprivileged account QEMU runs as in the tests that set the
//! daemon's `user` (`scripts/deps.sh` creates it for CI; a test run as root
//! on another machine creates it the same way).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::Error;

/// The account's name (the one `scripts/deps.sh` creates).
pub const QEMU_USER: &str = "ferrovirt-qemu";

/// The account's uid and primary gid, created when missing (needs root).
pub fn qemu_user() -> Result<(u32, u32), Error> {
    static MADE: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    MADE.get_or_init(|| ensure().map_err(|e| e.to_string()))
        .clone()
        .map_err(|remedy| Error::Missing {
            what: format!("the system account {QEMU_USER}"),
            remedy,
        })
}

/// Creates `dir` (mode 0700) for files QEMU itself creates while it runs
/// as [`QEMU_USER`] (qemu-sim's control sockets): owned by that account
/// when the harness runs as root, by the harness's user otherwise.
pub fn qemu_user_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io(format!("create {}", dir.display())))?;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let (uid, gid) = qemu_user()?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(Error::io(format!("chown {}", dir.display())))
}

fn ensure() -> Result<(u32, u32), Error> {
    if let Some(ids) = lookup() {
        return Ok(ids);
    }
    let group_ok = run(Command::new("getent").args(["group", "kvm"])).is_ok()
        || run(Command::new("groupadd").args(["--system", "kvm"])).is_ok();
    let mut add = Command::new("useradd");
    add.args(["--system", "--user-group", "--no-create-home"])
        .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]);
    if group_ok {
        add.args(["--groups", "kvm"]);
    }
    run(add.arg(QEMU_USER))?;
    lookup().ok_or_else(|| Error::Missing {
        what: format!("the system account {QEMU_USER}"),
        remedy: "useradd succeeded but getent does not find it".into(),
    })
}

fn lookup() -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", QEMU_USER])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut f = line.trim().split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd.output().map_err(|source| Error::Io {
        what: format!("running {cmd:?}"),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::CommandFailed {
        command: format!("{cmd:?}"),
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}
