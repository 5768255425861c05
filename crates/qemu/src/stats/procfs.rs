//! What the host kernel knows about a QEMU process and its vCPU threads:
//! CPU times, the CPU a thread last ran on, scheduler wait, resident
//! memory. Read from `/proc` (and the process CPU clock) by the poller.

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_sec() -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0)
}

/// Fields of a `stat` file after the command name (field 3 is index 0).
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().collect())
}

/// User and system time of a `stat` file's task, in nanoseconds, and the
/// CPU it last ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TaskTimes {
    pub(crate) user_ns: u64,
    pub(crate) system_ns: u64,
    pub(crate) processor: Option<i32>,
}

fn task_times(path: &str) -> Option<TaskTimes> {
    let text = std::fs::read_to_string(path).ok()?;
    let f = stat_fields(&text)?;
    let ns = 1_000_000_000 / ticks_per_sec()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(TaskTimes {
        user_ns: utime.saturating_mul(ns),
        system_ns: stime.saturating_mul(ns),
        processor: f.get(36).and_then(|p| p.parse().ok()),
    })
}

/// The whole process (all threads).
pub(crate) fn process_times(pid: i32) -> Option<TaskTimes> {
    task_times(&format!("/proc/{pid}/stat"))
}

/// One thread of the process.
pub(crate) fn thread_times(pid: i32, tid: u64) -> Option<TaskTimes> {
    task_times(&format!("/proc/{pid}/task/{tid}/stat"))
}

/// Nanoseconds the thread spent runnable but waiting for a CPU
/// (`schedstat`'s run delay).
pub(crate) fn thread_wait_ns(pid: i32, tid: u64) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of the whole process in nanoseconds (its CPU clock).
pub(crate) fn process_cpu_ns(pid: i32) -> Option<u64> {
    crate::emulator::process::cpu_time_ns(pid)
}

/// Resident memory in KiB.
pub(crate) fn rss_kib(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(pages.saturating_mul(page) / 1024)
}

/// The CPUs `tid` may run on, as libvirt's cpumap (bit N of byte N/8 set
/// for CPU N), `maplen` bytes long.
pub fn affinity_map(tid: u64, maplen: usize) -> Vec<u8> {
    let mut map = vec![0u8; maplen];
    let Ok(tid) = i32::try_from(tid) else {
        return map;
    };
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, correctly sized out-buffer.
    let r = unsafe { libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return map;
    }
    let setsize = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    for cpu in 0..(maplen * 8).min(setsize) {
        // SAFETY: CPU_ISSET reads within the set: cpu < CPU_SETSIZE.
        let set_here = unsafe { libc::CPU_ISSET(cpu, &set) };
        if set_here && let Some(b) = map.get_mut(cpu / 8) {
            *b |= 1 << (cpu % 8);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let t = process_times(me).expect("own stat");
        assert!(t.processor.is_some());
        let cpu = process_cpu_ns(me).expect("own CPU clock");
        assert!(cpu > 0);
        assert!(rss_kib(me).expect("own statm") > 0);
        let tid = u64::from(std::process::id());
        assert!(thread_times(me, tid).is_some());
        assert!(thread_wait_ns(me, tid).is_some());
        let map = affinity_map(tid, 8);
        assert!(map.iter().any(|b| *b != 0), "we may run somewhere");
    }

    #[test]
    fn a_command_name_with_spaces_and_parens_is_skipped() {
        let text = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13";
        let f = stat_fields(text).expect("fields");
        assert_eq!(f[0], "S");
        assert_eq!(f[11], "11", "field 14 (utime)");
    }
}
