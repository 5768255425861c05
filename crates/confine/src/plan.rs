//! What the helper is asked to do, carried on its command line.

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// The device nodes every guest gets in its private `/dev`.
const BASE_NODES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    // The pty multiplexer: with the host's devpts bound at `/dev/pts`
    // beside it, pty chardevs keep the names the daemon opens.
    "/dev/ptmx",
];

/// Nodes a guest with network interfaces may open itself (vhost-net; the
/// taps are handed over as descriptors).
const NET_NODES: [&str; 2] = ["/dev/net/tun", "/dev/vhost-net"];

/// The most descriptors one start may hand to QEMU.
pub const MAX_FDS: usize = 64;

/// The lowest descriptor number a handed-over descriptor may take (0-2 are
/// stdio).
pub const FIRST_TARGET: RawFd = 3;

/// Handed-over descriptors land below this number; the helper keeps its
/// own descriptors at or above it, so the two never collide.
pub const TARGET_LIMIT: RawFd = 100;

/// What the helper does before it execs the program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Give the program a private mount namespace whose `/dev` holds only
    /// `dev_nodes` (host mounts stay visible as slaves).
    pub mount_ns: bool,
    /// Host device nodes copied into the private `/dev` (missing ones are
    /// skipped: a host without `/dev/kvm` runs TCG guests).
    pub dev_nodes: Vec<PathBuf>,
    /// Set `PR_SET_NO_NEW_PRIVS`: no set-uid program, file capability or
    /// exec can raise the program's privileges again.
    pub no_new_privs: bool,
    /// The descriptor numbers the program finds the handed-over
    /// descriptors at, in the order they are sent.
    pub fd_targets: Vec<RawFd>,
    /// Run the program with these credentials instead of the daemon's;
    /// switched to after everything that needs root.
    pub creds: Option<Creds>,
    /// Write the program's pid to this file (as the daemon's user, before
    /// the switch) and keep it write-locked until the program exits, as
    /// QEMU's own `-pidfile` does: for a program that could not create
    /// the file itself.
    pub pidfile: Option<PathBuf>,
}

/// The user a program runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// The supplementary groups (`setgroups`), e.g. the one that may open
    /// `/dev/kvm`.
    pub groups: Vec<u32>,
}

/// The most supplementary groups a plan may carry.
pub const MAX_GROUPS: usize = 64;

/// A command line the helper cannot follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// The confinement of a guest: a private `/dev` with the base nodes,
    /// `/dev/kvm` when `kvm`, the network nodes, and `extra` (disks backed
    /// by host block devices); no new privileges.
    pub fn guest<'a>(kvm: bool, extra: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut dev_nodes: Vec<PathBuf> = BASE_NODES.iter().map(PathBuf::from).collect();
        if kvm {
            dev_nodes.push("/dev/kvm".into());
        }
        dev_nodes.extend(NET_NODES.iter().map(PathBuf::from));
        for p in extra {
            if p.starts_with("/dev") && !dev_nodes.iter().any(|d| d == p) {
                dev_nodes.push(p.to_path_buf());
            }
        }
        Self {
            mount_ns: true,
            dev_nodes,
            no_new_privs: true,
            ..Self::default()
        }
    }

    /// The helper's arguments for this plan, up to (and including) the
    /// `--` that precedes the program's argv.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        if self.mount_ns {
            a.push("--mount-ns".into());
        }
        for d in &self.dev_nodes {
            a.push("--dev".into());
            a.push(d.into());
        }
        if self.no_new_privs {
            a.push("--no-new-privs".into());
        }
        for fd in &self.fd_targets {
            a.push("--fd".into());
            a.push(fd.to_string().into());
        }
        if let Some(c) = &self.creds {
            a.extend(["--uid".into(), c.uid.to_string().into()]);
            a.extend(["--gid".into(), c.gid.to_string().into()]);
            let groups: Vec<String> = c.groups.iter().map(u32::to_string).collect();
            a.extend(["--groups".into(), groups.join(",").into()]);
        }
        if let Some(p) = &self.pidfile {
            a.extend(["--pidfile".into(), p.into()]);
        }
        a.push("--".into());
        a
    }

    /// Parses the helper's arguments: the plan, then the program's argv
    /// (at least the program).
    pub fn parse(args: &[OsString]) -> Result<(Self, &[OsString]), PlanError> {
        let mut plan = Self::default();
        let mut ids = Ids::default();
        let mut it = args.iter().enumerate();
        while let Some((i, a)) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .map(|(_, v)| v.as_os_str())
                    .ok_or_else(|| PlanError(format!("{name} needs a value")))
            };
            match a.to_str() {
                Some("--mount-ns") => plan.mount_ns = true,
                Some("--no-new-privs") => plan.no_new_privs = true,
                Some("--dev") => plan.dev_nodes.push(dev_path(value("--dev")?)?),
                Some("--fd") => plan.fd_targets.push(fd_target(value("--fd")?)?),
                Some("--uid") => ids.uid = Some(id(value("--uid")?)?),
                Some("--gid") => ids.gid = Some(id(value("--gid")?)?),
                Some("--groups") => ids.groups = Some(groups(value("--groups")?)?),
                Some("--pidfile") => plan.pidfile = Some(absolute(value("--pidfile")?)?),
                Some("--") => {
                    plan.creds = ids.creds()?;
                    return plan.finish(&args[i + 1..]);
                }
                _ => return Err(PlanError(format!("unknown argument {a:?}"))),
            }
        }
        Err(PlanError("no program given (after --)".into()))
    }

    fn finish(self, argv: &[OsString]) -> Result<(Self, &[OsString]), PlanError> {
        if argv.is_empty() {
            return Err(PlanError("no program given (after --)".into()));
        }
        if self.fd_targets.len() > MAX_FDS {
            return Err(PlanError(format!("more than {MAX_FDS} descriptors")));
        }
        let mut seen = self.fd_targets.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.fd_targets.len() {
            return Err(PlanError("a descriptor number is given twice".into()));
        }
        Ok((self, argv))
    }
}

/// The credential arguments as given: all three or none.
#[derive(Default)]
struct Ids {
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
}

impl Ids {
    fn creds(self) -> Result<Option<Creds>, PlanError> {
        match (self.uid, self.gid, self.groups) {
            (None, None, None) => Ok(None),
            (Some(uid), Some(gid), Some(groups)) => Ok(Some(Creds { uid, gid, groups })),
            _ => Err(PlanError("--uid, --gid and --groups go together".into())),
        }
    }
}

fn id(v: &OsStr) -> Result<u32, PlanError> {
    v.to_str()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|&n| n != u32::MAX)
        .ok_or_else(|| PlanError(format!("bad user or group id {v:?}")))
}

fn groups(v: &OsStr) -> Result<Vec<u32>, PlanError> {
    let s = v
        .to_str()
        .ok_or_else(|| PlanError(format!("bad group list {v:?}")))?;
    let list: Vec<u32> = s
        .split(',')
        .filter(|g| !g.is_empty())
        .map(|g| id(OsStr::new(g)))
        .collect::<Result<_, _>>()?;
    if list.len() > MAX_GROUPS {
        return Err(PlanError(format!("more than {MAX_GROUPS} groups")));
    }
    Ok(list)
}

fn absolute(v: &OsStr) -> Result<PathBuf, PlanError> {
    let p = PathBuf::from(v);
    if p.is_absolute() && p.file_name().is_some() {
        Ok(p)
    } else {
        Err(PlanError(format!(
            "{} is not an absolute file path",
            p.display()
        )))
    }
}

fn dev_path(v: &OsStr) -> Result<PathBuf, PlanError> {
    let p = PathBuf::from(v);
    let inside_dev = p.strip_prefix("/dev").is_ok_and(|rest| {
        !rest.as_os_str().is_empty()
            && rest
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    });
    if inside_dev {
        Ok(p)
    } else {
        Err(PlanError(format!(
            "{} is not a node under /dev",
            p.display()
        )))
    }
}

fn fd_target(v: &OsStr) -> Result<RawFd, PlanError> {
    v.to_str()
        .and_then(|s| s.parse::<RawFd>().ok())
        .filter(|&fd| (FIRST_TARGET..TARGET_LIMIT).contains(&fd))
        .ok_or_else(|| PlanError(format!("bad descriptor number {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_plan_round_trips_through_its_arguments() {
        let mut plan = Plan::guest(true, [Path::new("/dev/sdb"), Path::new("/srv/x.img")]);
        plan.fd_targets = vec![3, 7];
        plan.creds = Some(Creds {
            uid: 64055,
            gid: 64055,
            groups: vec![107, 5],
        });
        plan.pidfile = Some("/run/ferrovirt/u.pid".into());
        let mut a = plan.to_args();
        a.extend(args(&["/usr/bin/qemu", "-S"]));
        let (back, argv) = Plan::parse(&a).unwrap();
        assert_eq!(back, plan);
        assert_eq!(argv, args(&["/usr/bin/qemu", "-S"]).as_slice());
        assert!(back.dev_nodes.iter().any(|d| d == Path::new("/dev/kvm")));
        assert!(back.dev_nodes.iter().any(|d| d == Path::new("/dev/sdb")));
        assert!(!back.dev_nodes.iter().any(|d| d == Path::new("/srv/x.img")));
    }

    #[test]
    fn credentials_without_supplementary_groups_round_trip() {
        let plan = Plan {
            creds: Some(Creds {
                uid: 1,
                gid: 2,
                groups: Vec::new(),
            }),
            ..Plan::default()
        };
        let mut a = plan.to_args();
        a.push("q".into());
        assert_eq!(Plan::parse(&a).unwrap().0, plan);
    }

    #[test]
    fn a_tcg_guest_gets_no_kvm_node() {
        let plan = Plan::guest(false, []);
        assert!(!plan.dev_nodes.iter().any(|d| d == Path::new("/dev/kvm")));
        assert!(plan.dev_nodes.iter().any(|d| d == Path::new("/dev/ptmx")));
    }

    #[test]
    fn bad_plans_are_refused() {
        for bad in [
            &["--dev", "/etc/shadow", "--", "q"][..],
            &["--dev", "/dev/../etc/shadow", "--", "q"],
            &["--dev", "/dev", "--", "q"],
            &["--fd", "2", "--", "q"],
            &["--fd", "x", "--", "q"],
            &["--fd", "100", "--", "q"],
            &["--fd", "3", "--fd", "3", "--", "q"],
            &["--fd"],
            &["--mount-ns"],
            &["--mount-ns", "--"],
            &["--bogus", "--", "q"],
            &["--uid", "5", "--", "q"],
            &["--uid", "5", "--gid", "5", "--", "q"],
            &["--uid", "-1", "--gid", "5", "--groups", "", "--", "q"],
            &[
                "--uid",
                "4294967295",
                "--gid",
                "5",
                "--groups",
                "",
                "--",
                "q",
            ],
            &["--uid", "5", "--gid", "5", "--groups", "1,x", "--", "q"],
            &["--pidfile", "run/u.pid", "--", "q"],
            &["--pidfile", "/", "--", "q"],
        ] {
            assert!(Plan::parse(&args(bad)).is_err(), "{bad:?} accepted");
        }
    }
}
