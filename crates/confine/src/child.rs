//! The helper's side. It runs as a fresh single-threaded process, so it
//! may mount, mknod and change its descriptor table freely before exec.

use std::ffi::{CString, OsString};
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::stat::{Mode, SFlag, mknod, stat, umask};
use nix::unistd::{dup2, execv, mkdir, setsid, symlinkat};

use crate::{Creds, Plan};
use crate::{MAX_FDS, TARGET_LIMIT};

/// The helper's `main`: follows the plan given on its command line, then
/// execs the program. Failures are written to the control socket (stdin)
/// and end the helper with status 127.
pub fn main() -> ! {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(mut ctl) = take_control() else {
        eprintln!(
            "{}: stdin is not the daemon's control socket",
            crate::HELPER_NAME
        );
        std::process::exit(127);
    };
    let Err(e) = run(&args, &ctl);
    let _ = ctl.write_all(e.as_bytes());
    std::process::exit(127)
}

/// Moves the control socket off stdin (close-on-exec, so exec closes it)
/// and puts /dev/null in its place.
fn take_control() -> Option<UnixStream> {
    let fd = fcntl(0, FcntlArg::F_DUPFD_CLOEXEC(TARGET_LIMIT)).ok()?;
    // SAFETY: `fd` was just created by F_DUPFD_CLOEXEC and is owned here.
    let ctl = unsafe { UnixStream::from_raw_fd(fd) };
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    dup2(null, 0).ok()?;
    let _ = nix::unistd::close(null);
    Some(ctl)
}

enum Never {}

fn run(args: &[OsString], ctl: &UnixStream) -> Result<Never, String> {
    let (plan, argv) = Plan::parse(args).map_err(|e| e.to_string())?;
    let fds = receive(ctl, plan.fd_targets.len())?;
    install(fds, &plan.fd_targets)?;
    setsid().map_err(|e| format!("setsid: {e}"))?;
    if let Some(path) = &plan.pidfile {
        write_pidfile(path)?;
    }
    if plan.mount_ns {
        private_dev(&plan.dev_nodes)?;
    }
    if let Some(creds) = &plan.creds {
        switch_user(creds)?;
    }
    if plan.no_new_privs {
        no_new_privs()?;
    }
    exec(argv)
}

/// Receives exactly `n` descriptors (close-on-exec) with the one byte the
/// daemon sends.
fn receive(ctl: &UnixStream, n: usize) -> Result<Vec<OwnedFd>, String> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        ctl.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving descriptors: {e}"))?;
    if msg.bytes != 1 {
        return Err("the daemon closed the control socket".into());
    }
    let mut fds = Vec::new();
    for c in msg
        .cmsgs()
        .map_err(|e| format!("receiving descriptors: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: descriptors received by SCM_RIGHTS are new and ours.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if fds.len() != n {
        return Err(format!("expected {n} descriptors, received {}", fds.len()));
    }
    Ok(fds)
}

/// Puts each descriptor at its target number, inheritable. They are first
/// moved above every target, so no target overwrites one still to come.
fn install(fds: Vec<OwnedFd>, targets: &[RawFd]) -> Result<(), String> {
    let floor = TARGET_LIMIT;
    let mut moved = Vec::with_capacity(fds.len());
    for fd in fds {
        let high = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(floor))
            .map_err(|e| format!("moving a descriptor: {e}"))?;
        // SAFETY: `high` was just created by F_DUPFD_CLOEXEC.
        moved.push(unsafe { OwnedFd::from_raw_fd(high) });
    }
    for (fd, &target) in moved.iter().zip(targets) {
        // dup2 leaves the new descriptor without close-on-exec.
        dup2(fd.as_raw_fd(), target).map_err(|e| format!("descriptor {target}: {e}"))?;
    }
    Ok(())
}

/// Enters a new mount namespace (host mounts as slaves, so nothing done
/// here reaches the host) whose `/dev` is a small tmpfs with copies of
/// `nodes` and the host's devpts.
fn private_dev(nodes: &[PathBuf]) -> Result<(), String> {
    let found = host_nodes(nodes)?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(mount): {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("making / a slave: {e}"))?;
    // Held open across the tmpfs mount, which hides the host's /dev/pts.
    let pts = open(
        "/dev/pts",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok();
    mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k,nr_inodes=64"),
    )
    .map_err(|e| format!("mounting a private /dev: {e}"))?;
    umask(Mode::empty());
    for n in &found {
        n.create()?;
    }
    if let Some(pts) = pts {
        let source = format!("/proc/self/fd/{pts}");
        dir("/dev/pts", 0o755)?;
        mount(
            Some(source.as_str()),
            "/dev/pts",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("binding /dev/pts: {e}"))?;
        let _ = nix::unistd::close(pts);
    }
    dir("/dev/shm", 0o1777)?;
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        symlinkat(target, None, link).map_err(|e| format!("{link}: {e}"))?;
    }
    Ok(())
}

/// A host device node to copy.
struct Node {
    path: PathBuf,
    kind: SFlag,
    perm: Mode,
    rdev: libc::dev_t,
    uid: u32,
    gid: u32,
}

impl Node {
    fn create(&self) -> Result<(), String> {
        if let Some(parent) = self.path.parent().filter(|p| *p != Path::new("/dev")) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        mknod(&self.path, self.kind, self.perm, self.rdev)
            .map_err(|e| format!("mknod {}: {e}", self.path.display()))?;
        // The host node's owner, so a program that runs as another user
        // opens what it could open on the host (`/dev/kvm` by its group).
        nix::unistd::chown(
            &self.path,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .map_err(|e| format!("chown {}: {e}", self.path.display()))
    }
}

/// Stats `nodes` on the host (before its `/dev` is hidden); missing ones
/// are skipped, anything but a device node is refused.
fn host_nodes(nodes: &[PathBuf]) -> Result<Vec<Node>, String> {
    let mut found = Vec::new();
    for path in nodes {
        let st = match stat(path) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        if kind != SFlag::S_IFCHR && kind != SFlag::S_IFBLK {
            return Err(format!("{} is not a device node", path.display()));
        }
        found.push(Node {
            path: path.clone(),
            kind,
            perm: Mode::from_bits_truncate(st.st_mode & 0o777),
            rdev: st.st_rdev,
            uid: st.st_uid,
            gid: st.st_gid,
        });
    }
    Ok(found)
}

/// Writes this process's pid to `path` under a POSIX write lock, on a
/// descriptor that stays open across exec: the program holds the lock
/// (and its pid names the holder) until it exits, as a pidfile QEMU
/// writes itself.
fn write_pidfile(path: &Path) -> Result<(), String> {
    let err = |what: &str, e: nix::errno::Errno| format!("pidfile {}: {what}: {e}", path.display());
    let fd = open(
        path,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| err("open", e))?;
    // Moved above the handed-over numbers and kept open, without
    // close-on-exec, for the program's whole life. It is moved before the
    // lock is taken: closing any descriptor of the file releases it.
    let moved = fcntl(fd, FcntlArg::F_DUPFD(TARGET_LIMIT));
    let _ = nix::unistd::close(fd);
    let kept = moved.map_err(|e| err("moving the descriptor", e))?;
    let lock = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(kept, FcntlArg::F_SETLK(&lock)).map_err(|e| err("lock", e))?;
    // SAFETY: `kept` is open for the rest of this process; the borrow ends
    // with this function and the descriptor is never closed here.
    let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(kept) };
    nix::unistd::ftruncate(file, 0).map_err(|e| err("truncate", e))?;
    let line = format!("{}\n", std::process::id());
    nix::unistd::write(file, line.as_bytes()).map_err(|e| err("write", e))?;
    Ok(())
}

/// Drops root for `c`: the supplementary groups, the group, then the user
/// (in that order: each step but the last needs root). Checked after.
fn switch_user(c: &Creds) -> Result<(), String> {
    use nix::unistd::{Gid, Uid, getegid, geteuid, getgid, getuid, setgid, setgroups, setuid};
    let groups: Vec<Gid> = c.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    setgid(Gid::from_raw(c.gid)).map_err(|e| format!("setgid {}: {e}", c.gid))?;
    setuid(Uid::from_raw(c.uid)).map_err(|e| format!("setuid {}: {e}", c.uid))?;
    let ids = [getuid().as_raw(), geteuid().as_raw()];
    let gids = [getgid().as_raw(), getegid().as_raw()];
    if ids != [c.uid; 2] || gids != [c.gid; 2] {
        return Err(format!(
            "credentials not switched: uid {ids:?}, gid {gids:?}"
        ));
    }
    if c.uid != 0 && setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after the switch".into());
    }
    Ok(())
}

fn dir(path: &str, mode: libc::mode_t) -> Result<(), String> {
    mkdir(path, Mode::from_bits_truncate(mode)).map_err(|e| format!("{path}: {e}"))
}

fn no_new_privs() -> Result<(), String> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("no_new_privs: {}", std::io::Error::last_os_error()))
    }
}

fn exec(argv: &[OsString]) -> Result<Never, String> {
    let c: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "an argument contains a NUL byte".to_owned())?;
    let prog = c.first().ok_or("no program given")?;
    let e = execv(prog, &c)
        .err()
        .map_or_else(String::new, |e| e.to_string());
    Err(format!("cannot execute {}: {e}", prog.to_string_lossy()))
}
