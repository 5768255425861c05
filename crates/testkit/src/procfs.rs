//! Figures of a process from `/proc`. Every reader returns `None` once the
//! process is gone (or the file cannot be read), never a made-up zero.

use std::time::Duration;

/// Memory and threads of a process (`/proc/PID/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// `Threads`.
    pub threads: u64,
}

/// `VmRSS` and `Threads` of `pid`.
pub fn status(pid: u32) -> Option<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Status {
        rss_kib: first_number(field(&text, "VmRSS:")?)?,
        threads: first_number(field(&text, "Threads:")?)?,
    })
}

/// `VmRSS` of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status(pid).map(|status| status.rss_kib)
}

/// `VmRSS` of this process, KiB.
pub fn own_rss_kib() -> Option<u64> {
    rss_kib(std::process::id())
}

/// User plus system CPU time of `pid` (the driver's own reader).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let pid = i32::try_from(pid).ok()?;
    qemu::process::cpu_time_ns(pid).map(Duration::from_nanos)
}

/// Proportional set size of `pid` (`/proc/PID/smaps_rollup`), KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    first_number(field(&text, "Pss:")?)
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(Iterator::count)
}

/// How many of `pid`'s open descriptors are sockets (files it opens for
/// a moment, such as another process's /proc entries, are not counted).
pub fn socket_count(pid: u32) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        dir.flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count(),
    )
}

/// The arguments of `pid` (`/proc/PID/cmdline`); empty for a zombie.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|byte| *byte == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
pub fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|value| value.parse().ok())
        .collect()
}

/// The value part of the line `name value ...` in a `/proc` file.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(name))
}

fn first_number(value: &str) -> Option<u64> {
    value.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_this_process() {
        let me = std::process::id();
        let status = status(me).unwrap();
        assert!(status.rss_kib > 0);
        assert!(status.threads >= 1);
        assert!(pss_kib(me).unwrap() > 0);
        assert!(fd_count(me).unwrap() >= 3);
        assert!(cpu_time(me).is_some());
        let args = cmdline(me).unwrap();
        assert!(!args.is_empty());
        assert_eq!(loadavg().len(), 3);
    }

    #[test]
    fn a_missing_process_has_no_figures() {
        // Above the kernel's pid_max ceiling (2^22): never a live pid.
        let gone = 5_000_000;
        assert_eq!(status(gone), None);
        assert_eq!(cpu_time(gone), None);
        assert_eq!(cmdline(gone), None);
    }
}
