//! Small helpers: latency statistics, /proc sampling, process clean-up,
//! machine facts.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Monotonic nanoseconds since an arbitrary process-wide origin.
pub(crate) fn now_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Latency summary of samples in nanoseconds, reported in microseconds.
pub(crate) fn lat_summary(samples: &mut [u64]) -> Value {
    if samples.is_empty() {
        return json!({"n": 0});
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: f64| {
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
        round1(samples[i] as f64 / 1e3)
    };
    let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1e3;
    json!({
        "n": n,
        "p50_us": at(0.50),
        "p90_us": at(0.90),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": round1(samples[n - 1] as f64 / 1e3),
        "mean_us": round1(mean),
    })
}

pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// (rss KiB, threads) of a process.
pub(crate) fn proc_status(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut rss = None;
    let mut thr = None;
    for l in s.lines() {
        if let Some(v) = l.strip_prefix("VmRSS:") {
            rss = v.split_whitespace().next().and_then(|x| x.parse().ok());
        } else if let Some(v) = l.strip_prefix("Threads:") {
            thr = v.trim().parse().ok();
        }
    }
    Some((rss?, thr?))
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn proc_cpu_ticks(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// PSS of a process in KiB.
pub(crate) fn proc_pss_kb(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// seconds since the sampler started
    pub t: f64,
    pub rss_kb: u64,
    pub threads: u64,
    pub cpu_ticks: u64,
}

/// Samples RSS, threads and CPU of one pid every `interval` on a thread.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<std::thread::JoinHandle<()>>,
    pub started: Instant,
    /// RSS limit (KiB); once exceeded `tripped` is set.
    pub tripped: Arc<AtomicBool>,
}

impl Sampler {
    pub(crate) fn start(pid: i32, interval: Duration, rss_limit_kb: u64) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tripped = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (s2, v2, t2) = (stop.clone(), samples.clone(), tripped.clone());
        let handle = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                if let (Some((rss, thr)), Some(cpu)) = (proc_status(pid), proc_cpu_ticks(pid)) {
                    if rss > rss_limit_kb {
                        t2.store(true, Ordering::Relaxed);
                    }
                    v2.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
                        t: started.elapsed().as_secs_f64(),
                        rss_kb: rss,
                        threads: thr,
                        cpu_ticks: cpu,
                    });
                }
                std::thread::sleep(interval);
            }
        });
        Sampler {
            stop,
            samples,
            handle: Some(handle),
            started,
            tripped,
        }
    }

    pub(crate) fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(crate) fn snapshot(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.snapshot()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Figures of a sample window [t0, t1]: RSS first/peak/last (MiB), mean CPU %.
pub(crate) fn window(samples: &[Sample], t0: f64, t1: f64) -> Value {
    let w: Vec<&Sample> = samples.iter().filter(|s| s.t >= t0 && s.t <= t1).collect();
    if w.len() < 2 {
        return json!({"n": w.len()});
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let peak = w.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let cpu = (last.cpu_ticks - first.cpu_ticks) as f64 / clk_tck() / (last.t - first.t) * 100.0;
    json!({
        "rss_mib_start": mib(first.rss_kb),
        "rss_mib_peak": mib(peak),
        "rss_mib_end": mib(last.rss_kb),
        "cpu_pct_mean": round1(cpu),
        "threads_end": last.threads,
        "cpu_s": round3((last.cpu_ticks - first.cpu_ticks) as f64 / clk_tck()),
    })
}

pub(crate) fn mib(kb: u64) -> f64 {
    round1(kb as f64 / 1024.0)
}

/// RSS series thinned to about `points` points: [[t, MiB], ...].
pub(crate) fn rss_series(samples: &[Sample], points: usize) -> Value {
    let step = (samples.len() / points.max(1)).max(1);
    Value::Array(
        samples
            .iter()
            .step_by(step)
            .map(|s| json!([round1(s.t), mib(s.rss_kb)]))
            .collect(),
    )
}

/// A tag unique to this run, the first characters of every VM name, so
/// that QEMUs left behind can be found by PID (`guest=TAG...`).
pub(crate) fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| format!("b{}", std::process::id()))
}

/// SIGKILLs, by pid, every process whose command line names one of this
/// run's VMs.
pub(crate) fn kill_run_vms() -> usize {
    let pids = pids_mentioning(&format!("guest={}", run_tag()));
    for &p in &pids {
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(p, libc::SIGKILL);
        }
    }
    pids.len()
}

/// Pids (other than ours) whose command line contains `needle`.
pub(crate) fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// SIGKILLs, by pid, every process whose command line mentions `dir`
/// (the QEMUs, simulators and proxies started under a bench root).
pub(crate) fn kill_processes_under(dir: &Path) -> usize {
    let pids = pids_mentioning(&dir.to_string_lossy());
    for &p in &pids {
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(p, libc::SIGKILL);
        }
    }
    pids.len()
}

pub(crate) fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        // root may raise the hard limit (10,000 VMs need ~3 fds each in
        // the daemon); otherwise take the hard limit
        let want = libc::rlimit {
            rlim_cur: 262_144,
            rlim_max: 262_144.max(r.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

pub(crate) fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect()
}

pub(crate) fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    std::process::Command::new(prog)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn machine_info(qemu: &str) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "ram_gib": round1(mem_kb as f64 / 1024.0 / 1024.0),
        "kernel": cmd_out("uname", &["-r"]),
        "qemu": cmd_out(qemu, &["--version"]).lines().next().unwrap_or("").to_owned(),
        "kvm": kvm_usable(),
        "libvirtd": cmd_out("/usr/sbin/libvirtd", &["--version"]),
        "loadavg_start": loadavg(),
    })
}
