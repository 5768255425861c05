//! Resource limits through the host's cgroups: `<cputune>` weight and
//! bandwidth, `<memtune>`, `<blkiotune>`, placed under `<resource>`'s
//! partition (`/machine` by default) as `ferrovirt-UUID`.
//!
//! A domain gets a cgroup only when its definition asks for a limit or a
//! partition; without one nothing on the host is touched. Both cgroup
//! versions are handled: v2 (one unified tree, threaded sub-groups for
//! per-vCPU bandwidth) and v1 (a tree per controller, the layout of this
//! project's test machines). A limit whose controller or control file the
//! host lacks fails the start with a message naming it: never a silent
//! no-op.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use domain::{BlkioDevice, DomainDef};

use crate::{Error, Result};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mounted cgroup hierarchies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// The unified tree and the controllers its root offers.
    V2 {
        root: PathBuf,
        controllers: Vec<String>,
    },
    /// One tree per controller: (controller, mount point).
    V1(Vec<(String, PathBuf)>),
}

impl Hierarchy {
    /// Reads `/proc/self/mountinfo`. Controllers mounted on their own (v1,
    /// as in hybrid set-ups, whose unified tree holds few or none) win;
    /// otherwise the unified tree with the controllers its root offers.
    pub(crate) fn detect() -> Result<Self> {
        let text = std::fs::read_to_string(MOUNTINFO)
            .map_err(|e| Error::io(format!("cannot read {MOUNTINFO}"), e))?;
        Ok(Self::parse(&text, |p| {
            std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default()
        }))
    }

    fn parse(mountinfo: &str, controllers_of: impl Fn(&Path) -> String) -> Self {
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mount = pre.split_whitespace().nth(4).unwrap_or("");
            let mut post = post.split_whitespace();
            let (fstype, _src, opts) = (post.next(), post.next(), post.next().unwrap_or(""));
            match fstype {
                Some("cgroup2") if v2.is_none() => {
                    let root = PathBuf::from(mount);
                    let controllers: Vec<String> = controllers_of(&root)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect();
                    v2 = Some(Hierarchy::V2 { root, controllers });
                }
                Some("cgroup") => {
                    for o in opts.split(',') {
                        if ["cpu", "cpuacct", "memory", "blkio", "cpuset", "pids"].contains(&o) {
                            v1.push((o.to_owned(), PathBuf::from(mount)));
                        }
                    }
                }
                _ => {}
            }
        }
        match v2 {
            Some(v2) if v1.is_empty() => v2,
            _ => Hierarchy::V1(v1),
        }
    }

    fn v1_mount(&self, controller: &str) -> Option<&Path> {
        match self {
            Hierarchy::V1(m) => m
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, p)| p.as_path()),
            Hierarchy::V2 { .. } => None,
        }
    }
}

/// Whether the definition asks for anything cgroups provide.
pub(crate) fn needed(def: &DomainDef) -> bool {
    let t = &def.cputune;
    let cpu = t.shares.is_some()
        || t.quota.is_some()
        || t.global_quota.is_some()
        || t.emulator_quota.is_some()
        || t.period.is_some()
        || t.global_period.is_some()
        || t.emulator_period.is_some();
    cpu || def.memtune != Default::default()
        || def.blkiotune != Default::default()
        || def.resource_partition.is_some()
}

/// The domain's group, relative to a hierarchy's root.
pub(crate) fn group(def: &DomainDef) -> PathBuf {
    let partition = def.resource_partition.as_deref().unwrap_or("/machine");
    PathBuf::from(partition.trim_start_matches('/')).join(format!("ferrovirt-{}", def.uuid))
}

fn unsupported(what: &str, control: &str) -> Error {
    Error::ConfigUnsupported(format!(
        "{what} needs the cgroup control '{control}', which this host does not offer"
    ))
}

fn write(dir: &Path, file: &str, value: &str, what: &str) -> Result<()> {
    let p = dir.join(file);
    if !p.exists() {
        return Err(unsupported(what, file));
    }
    std::fs::write(&p, value)
        .map_err(|e| Error::io(format!("cannot write '{value}' to {}", p.display()), e))
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create cgroup {}", dir.display()), e))
}

/// The threads of a running QEMU: vCPUs by index, the rest.
pub(crate) struct Threads {
    pub(crate) pid: i32,
    pub(crate) vcpus: Vec<(u32, i32)>,
    pub(crate) others: Vec<i32>,
}

/// Places `threads` in the domain's group and applies every limit.
pub(crate) fn apply(def: &DomainDef, threads: &Threads) -> Result<()> {
    if !needed(def) {
        return Ok(());
    }
    match Hierarchy::detect()? {
        h @ Hierarchy::V1(_) => v1::apply(&h, def, threads),
        Hierarchy::V2 { root, controllers } => v2::apply(&root, &controllers, def, threads),
    }
}

/// Removes the domain's groups (after its QEMU is gone). Best effort: a
/// group that is still busy is logged and left.
pub(crate) fn remove(def: &DomainDef) {
    if !needed(def) {
        return;
    }
    let Ok(h) = Hierarchy::detect() else {
        return;
    };
    let g = group(def);
    let roots: Vec<PathBuf> = match &h {
        Hierarchy::V1(m) => m.iter().map(|(_, p)| p.clone()).collect(),
        Hierarchy::V2 { root, .. } => vec![root.clone()],
    };
    for root in roots {
        let dir = root.join(&g);
        if !dir.exists() {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!(group = %dir.display(), error = %e, "cannot remove cgroup");
        }
    }
}

/// `MAJ:MIN` of the block device at `path`.
fn dev_numbers(d: &BlkioDevice) -> Result<String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(&d.path)
        .map_err(|e| Error::io(format!("cannot stat {}", d.path.display()), e))?;
    if !meta.file_type().is_block_device() {
        return Err(Error::ConfigUnsupported(format!(
            "blkiotune device '{}' is not a block device",
            d.path.display()
        )));
    }
    let rdev = meta.rdev();
    Ok(format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    ))
}

mod v1 {
    use super::*;

    pub(super) fn apply(h: &Hierarchy, def: &DomainDef, t: &Threads) -> Result<()> {
        let g = group(def);
        let mount = |c: &str, what: &str| {
            h.v1_mount(c)
                .map(|m| m.join(&g))
                .ok_or_else(|| unsupported(what, &format!("{c} controller")))
        };
        let tune = &def.cputune;
        let place = |dir: &Path| write(dir, "cgroup.procs", &t.pid.to_string(), "cgroup placement");
        if needed_cpu(def) {
            let dir = mount("cpu", "cputune")?;
            mkdir(&dir)?;
            place(&dir)?;
            if let Some(s) = tune.shares {
                write(&dir, "cpu.shares", &s.to_string(), "cputune shares")?;
            }
            bandwidth(
                &dir,
                tune.global_period,
                tune.global_quota,
                "cputune global",
            )?;
            per_thread(&dir, def, t)?;
        }
        if def.memtune != Default::default() {
            let dir = mount("memory", "memtune")?;
            mkdir(&dir)?;
            let m = &def.memtune;
            let kib = |v: u64| (v * 1024).to_string();
            if let Some(v) = m.hard_limit {
                write(&dir, "memory.limit_in_bytes", &kib(v), "memtune hard_limit")?;
            }
            if let Some(v) = m.soft_limit {
                write(
                    &dir,
                    "memory.soft_limit_in_bytes",
                    &kib(v),
                    "memtune soft_limit",
                )?;
            }
            if let Some(v) = m.swap_hard_limit {
                write(
                    &dir,
                    "memory.memsw.limit_in_bytes",
                    &kib(v),
                    "memtune swap_hard_limit",
                )?;
            }
            place(&dir)?;
        }
        if def.blkiotune != Default::default() {
            let dir = mount("blkio", "blkiotune")?;
            mkdir(&dir)?;
            blkio(&dir, def)?;
            place(&dir)?;
        }
        if def.resource_partition.is_some() {
            for (c, m) in match h {
                Hierarchy::V1(m) => m.clone(),
                Hierarchy::V2 { .. } => Vec::new(),
            } {
                if c == "cpu" || c == "memory" || c == "blkio" {
                    let dir = m.join(&g);
                    mkdir(&dir)?;
                    place(&dir)?;
                }
            }
        }
        Ok(())
    }

    fn bandwidth(dir: &Path, period: Option<u64>, quota: Option<i64>, what: &str) -> Result<()> {
        if let Some(p) = period {
            write(dir, "cpu.cfs_period_us", &p.to_string(), what)?;
        }
        if let Some(q) = quota {
            write(dir, "cpu.cfs_quota_us", &q.max(-1).to_string(), what)?;
        }
        Ok(())
    }

    /// Per-vCPU and emulator bandwidth: a sub-group per vCPU thread and one
    /// for the other threads.
    fn per_thread(dir: &Path, def: &DomainDef, t: &Threads) -> Result<()> {
        let tune = &def.cputune;
        if tune.quota.is_some() || tune.period.is_some() {
            for (i, tid) in &t.vcpus {
                let sub = dir.join(format!("vcpu{i}"));
                mkdir(&sub)?;
                bandwidth(&sub, tune.period, tune.quota, "cputune quota")?;
                write(&sub, "tasks", &tid.to_string(), "cputune quota")?;
            }
        }
        if tune.emulator_quota.is_some() || tune.emulator_period.is_some() {
            let sub = dir.join("emulator");
            mkdir(&sub)?;
            bandwidth(
                &sub,
                tune.emulator_period,
                tune.emulator_quota,
                "cputune emulator_quota",
            )?;
            for tid in &t.others {
                write(&sub, "tasks", &tid.to_string(), "cputune emulator_quota")?;
            }
        }
        Ok(())
    }

    fn blkio(dir: &Path, def: &DomainDef) -> Result<()> {
        let b = &def.blkiotune;
        if let Some(w) = b.weight {
            write(dir, "blkio.weight", &w.to_string(), "blkiotune weight")?;
        }
        for d in &b.devices {
            let dev = dev_numbers(d)?;
            let each = [
                (
                    d.weight.map(u64::from),
                    "blkio.weight_device",
                    "blkiotune device weight",
                ),
                (
                    d.read_bytes_sec,
                    "blkio.throttle.read_bps_device",
                    "blkiotune read_bytes_sec",
                ),
                (
                    d.write_bytes_sec,
                    "blkio.throttle.write_bps_device",
                    "blkiotune write_bytes_sec",
                ),
                (
                    d.read_iops_sec,
                    "blkio.throttle.read_iops_device",
                    "blkiotune read_iops_sec",
                ),
                (
                    d.write_iops_sec,
                    "blkio.throttle.write_iops_device",
                    "blkiotune write_iops_sec",
                ),
            ];
            for (v, file, what) in each {
                if let Some(v) = v {
                    write(dir, file, &format!("{dev} {v}"), what)?;
                }
            }
        }
        Ok(())
    }
}

fn needed_cpu(def: &DomainDef) -> bool {
    let t = &def.cputune;
    t.shares.is_some()
        || t.quota.is_some()
        || t.period.is_some()
        || t.global_quota.is_some()
        || t.global_period.is_some()
        || t.emulator_quota.is_some()
        || t.emulator_period.is_some()
}

mod v2 {
    use super::*;

    /// Turns on `controllers` for the children of every group from the
    /// root down to the domain's parent.
    fn enable(root: &Path, g: &Path, want: &[&str]) -> Result<()> {
        let mut dir = root.to_path_buf();
        let parents: Vec<_> = g
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        let line = want
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        write(&dir, "cgroup.subtree_control", &line, "cgroup controllers")?;
        for c in parents {
            dir.push(c);
            mkdir(&dir)?;
            write(&dir, "cgroup.subtree_control", &line, "cgroup controllers")?;
        }
        Ok(())
    }

    pub(super) fn apply(
        root: &Path,
        offered: &[String],
        def: &DomainDef,
        t: &Threads,
    ) -> Result<()> {
        let mut want: Vec<&str> = Vec::new();
        if needed_cpu(def) {
            want.push("cpu");
        }
        if def.memtune != Default::default() {
            want.push("memory");
        }
        if def.blkiotune != Default::default() {
            want.push("io");
        }
        for c in &want {
            if !offered.iter().any(|o| o == c) {
                return Err(unsupported("resource tuning", &format!("{c} controller")));
            }
        }
        let g = group(def);
        enable(root, &g, &want)?;
        let dir = root.join(&g);
        mkdir(&dir)?;
        cpu(&dir, def, t)?;
        memory(&dir, def)?;
        io(&dir, def)?;
        write(&dir, "cgroup.procs", &t.pid.to_string(), "cgroup placement")?;
        threads(&dir, def, t)
    }

    fn max(quota: Option<i64>, period: Option<u64>) -> String {
        let q = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".into(),
        };
        format!("{q} {}", period.unwrap_or(100_000))
    }

    fn cpu(dir: &Path, def: &DomainDef, _t: &Threads) -> Result<()> {
        let tune = &def.cputune;
        if let Some(s) = tune.shares {
            // libvirt's mapping of v1 shares (2..262144) to v2 weight (1..10000).
            let weight = 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142;
            write(dir, "cpu.weight", &weight.to_string(), "cputune shares")?;
        }
        if tune.global_quota.is_some() || tune.global_period.is_some() {
            write(
                dir,
                "cpu.max",
                &max(tune.global_quota, tune.global_period),
                "cputune global_quota",
            )?;
        }
        Ok(())
    }

    /// Per-vCPU and emulator bandwidth need threaded sub-groups.
    fn threads(dir: &Path, def: &DomainDef, t: &Threads) -> Result<()> {
        let tune = &def.cputune;
        let per_vcpu = tune.quota.is_some() || tune.period.is_some();
        let emulator = tune.emulator_quota.is_some() || tune.emulator_period.is_some();
        if !per_vcpu && !emulator {
            return Ok(());
        }
        write(dir, "cgroup.subtree_control", "+cpu", "cputune quota")?;
        let sub = |name: &str, quota, period, tids: &[i32]| -> Result<()> {
            let s = dir.join(name);
            mkdir(&s)?;
            write(&s, "cgroup.type", "threaded", "cputune quota")?;
            write(&s, "cpu.max", &max(quota, period), "cputune quota")?;
            for tid in tids {
                write(&s, "cgroup.threads", &tid.to_string(), "cputune quota")?;
            }
            Ok(())
        };
        if per_vcpu {
            for (i, tid) in &t.vcpus {
                sub(&format!("vcpu{i}"), tune.quota, tune.period, &[*tid])?;
            }
        }
        if emulator {
            sub(
                "emulator",
                tune.emulator_quota,
                tune.emulator_period,
                &t.others,
            )?;
        }
        Ok(())
    }

    fn memory(dir: &Path, def: &DomainDef) -> Result<()> {
        let m = &def.memtune;
        let bytes = |v: u64| (v * 1024).to_string();
        if let Some(v) = m.hard_limit {
            write(dir, "memory.max", &bytes(v), "memtune hard_limit")?;
        }
        if let Some(v) = m.soft_limit {
            write(dir, "memory.high", &bytes(v), "memtune soft_limit")?;
        }
        if let Some(v) = m.swap_hard_limit {
            let swap = v.saturating_sub(m.hard_limit.unwrap_or(0));
            write(
                dir,
                "memory.swap.max",
                &bytes(swap),
                "memtune swap_hard_limit",
            )?;
        }
        Ok(())
    }

    fn io(dir: &Path, def: &DomainDef) -> Result<()> {
        let b = &def.blkiotune;
        if let Some(w) = b.weight {
            write(
                dir,
                "io.weight",
                &format!("default {w}"),
                "blkiotune weight",
            )?;
        }
        for d in &b.devices {
            let dev = dev_numbers(d)?;
            if let Some(w) = d.weight {
                write(
                    dir,
                    "io.weight",
                    &format!("{dev} {w}"),
                    "blkiotune device weight",
                )?;
            }
            let mut limits = Vec::new();
            for (k, v) in [
                ("rbps", d.read_bytes_sec),
                ("wbps", d.write_bytes_sec),
                ("riops", d.read_iops_sec),
                ("wiops", d.write_iops_sec),
            ] {
                if let Some(v) = v {
                    limits.push(format!("{k}={v}"));
                }
            }
            if !limits.is_empty() {
                write(
                    dir,
                    "io.max",
                    &format!("{dev} {}", limits.join(" ")),
                    "blkiotune throttling",
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 25 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 25 0:33 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio";

    #[test]
    fn hierarchies() {
        // A hybrid's unified tree may offer a controller or two: the ones
        // mounted on their own are the ones to use.
        for unified in ["", "hugetlb"] {
            let h = Hierarchy::parse(HYBRID, |_| unified.into());
            assert_eq!(
                h.v1_mount("memory"),
                Some(Path::new("/sys/fs/cgroup/memory"))
            );
        }
        let h = Hierarchy::parse(HYBRID, |_| String::new());
        assert_eq!(h.v1_mount("io"), None);
        let v2 = Hierarchy::parse("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw", |_| {
            "cpu io memory pids".into()
        });
        assert_eq!(
            v2,
            Hierarchy::V2 {
                root: PathBuf::from("/sys/fs/cgroup"),
                controllers: vec!["cpu".into(), "io".into(), "memory".into(), "pids".into()]
            }
        );
    }

    #[test]
    fn groups_and_need() {
        let mut d = DomainDef::parse(
            "<domain type='qemu'><name>v</name><uuid>0b0c5a5e-5b8e-4c1f-9a43-2d7b5d1b3c11</uuid>\
             <memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>",
        )
        .unwrap();
        assert!(!needed(&d));
        d.memtune.hard_limit = Some(1024);
        assert!(needed(&d));
        assert_eq!(
            group(&d),
            PathBuf::from("machine/ferrovirt-0b0c5a5e-5b8e-4c1f-9a43-2d7b5d1b3c11")
        );
    }
}
