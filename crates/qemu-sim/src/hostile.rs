//! `-sim-hostile`: a QEMU taken over by its guest. Once started it tries
//! what such a process would (read the host's password hashes and the
//! manager's files, write into the manager's directories, open another
//! guest's disk, start a program)
//! and reports each attempt on stderr (the manager's log of this QEMU):
//!
//! ```text
//! qemu-sim hostile: read /etc/shadow: denied: Permission denied (os error 13)
//! qemu-sim hostile: spawn /bin/true: ALLOWED
//! ```
//!
//! In this mode the simulator also models QEMU's `-sandbox spawn=deny`
//! (new processes and exec fail with EPERM, threads still start), so the
//! attempt to spawn meets the filter the manager asked for.

use std::path::{Path, PathBuf};

/// What to try besides reading `/etc/shadow` and spawning a program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostileSpec {
    /// Files to read (the manager's definitions, records).
    pub read: Vec<PathBuf>,
    /// Files to create (in directories of the manager).
    pub write: Vec<PathBuf>,
    /// Files to open read-write (another guest's disk).
    pub open: Vec<PathBuf>,
}

impl HostileSpec {
    /// `read=PATH,write=PATH,open=PATH,...` (each key may repeat; none is
    /// needed).
    pub(crate) fn parse(v: &str) -> Result<Self, String> {
        let mut spec = Self::default();
        for part in v.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("read", p)) if !p.is_empty() => spec.read.push(p.into()),
                Some(("write", p)) if !p.is_empty() => spec.write.push(p.into()),
                Some(("open", p)) if !p.is_empty() => spec.open.push(p.into()),
                _ => return Err(format!("'{part}' is not read=, write= or open=PATH")),
            }
        }
        Ok(spec)
    }
}

/// Makes every attempt and reports each on stderr.
pub(crate) fn attack(spec: &HostileSpec, sandbox_spawn_deny: bool) {
    if sandbox_spawn_deny {
        match deny_spawn() {
            Ok(()) => eprintln!("qemu-sim hostile: sandbox spawn=deny in force"),
            Err(e) => eprintln!("qemu-sim hostile: sandbox spawn=deny not installed: {e}"),
        }
    }
    report("read /etc/shadow", read(Path::new("/etc/shadow")));
    for p in &spec.read {
        report(&format!("read {}", p.display()), read(p));
    }
    for p in &spec.write {
        report(&format!("write {}", p.display()), write(p));
    }
    for p in &spec.open {
        report(&format!("open {}", p.display()), open_rw(p));
    }
    report("spawn /bin/true", spawn());
}

fn report(what: &str, res: Result<(), String>) {
    match res {
        Ok(()) => eprintln!("qemu-sim hostile: {what}: ALLOWED"),
        Err(e) => eprintln!("qemu-sim hostile: {what}: denied: {e}"),
    }
}

fn read(p: &Path) -> Result<(), String> {
    std::fs::read(p).map(drop).map_err(|e| e.to_string())
}

fn write(p: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn open_rw(p: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn spawn() -> Result<(), String> {
    let status = std::process::Command::new("/bin/true")
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("/bin/true ended {status}"))
    }
}

/// `AUDIT_ARCH_X86_64`: the architecture a filter's numbers belong to.
const ARCH_X86_64: u32 = 0xc000_003e;
/// Offsets in `struct seccomp_data`: nr, arch, args[0] (low half).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0: u32 = 16;
const CLONE_THREAD: u32 = 0x0001_0000;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: u16::try_from(code).unwrap_or(0),
        jt,
        jf,
        k,
    }
}

/// QEMU's `spawn=deny`: fork, vfork, clone of a process (not a thread)
/// and exec fail with EPERM; clone3 with ENOSYS, so the C library falls
/// back to clone, which the filter can inspect.
fn deny_spawn() -> std::io::Result<()> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let nr = |n: libc::c_long| u32::try_from(n).unwrap_or(u32::MAX);
    let allow = libc::SECCOMP_RET_ALLOW;
    let eperm = libc::SECCOMP_RET_ERRNO | u32::try_from(libc::EPERM).unwrap_or(1);
    let enosys = libc::SECCOMP_RET_ERRNO | u32::try_from(libc::ENOSYS).unwrap_or(38);
    let filter = [
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, ARCH_X86_64, 1, 0),
        stmt(BPF_RET | BPF_K, allow),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_execve), 6, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_execveat), 5, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_fork), 4, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_vfork), 3, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_clone3), 3, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_clone), 3, 0),
        stmt(BPF_RET | BPF_K, allow),
        // 11: exec, fork, vfork
        stmt(BPF_RET | BPF_K, eperm),
        // 12: clone3
        stmt(BPF_RET | BPF_K, enosys),
        // 13: clone: a thread may start, a process may not
        stmt(BPF_LD | BPF_W | BPF_ABS, ARG0),
        jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1),
        stmt(BPF_RET | BPF_K, allow),
        stmt(BPF_RET | BPF_K, eperm),
    ];
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).unwrap_or(0),
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `filter`, both alive for the call; the
    // kernel copies the program.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_parses_and_refuses_unknown_keys() {
        let s = HostileSpec::parse("write=/r/x,open=/d.img,write=/r/y,read=/r/z").unwrap();
        assert_eq!(s.write, vec![PathBuf::from("/r/x"), PathBuf::from("/r/y")]);
        assert_eq!(s.open, vec![PathBuf::from("/d.img")]);
        assert_eq!(s.read, vec![PathBuf::from("/r/z")]);
        assert_eq!(HostileSpec::parse("").unwrap(), HostileSpec::default());
        assert!(HostileSpec::parse("exec=/x").is_err());
        assert!(HostileSpec::parse("write=").is_err());
    }
}
