//! Figures from samples: latency summaries, and a daemon's memory, threads
//! and CPU sampled on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use testkit::latency::Percentiles;
use testkit::procfs;

/// Latency figures in microseconds (rounded to 0.1); only `n` when there
/// was no sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LatencySummary {
    /// Samples.
    #[serde(rename = "n")]
    pub samples: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_us: Option<f64>,
}

impl LatencySummary {
    pub(crate) fn of(samples: &[Duration]) -> LatencySummary {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        let percentiles = Percentiles::of(samples);
        let micros = |value: Duration| Some(round1(value.as_secs_f64() * 1e6));
        LatencySummary {
            samples: percentiles.n,
            p50_us: micros(percentiles.p50),
            p90_us: micros(percentiles.p90),
            p99_us: micros(percentiles.p99),
            p999_us: micros(percentiles.p999),
            max_us: micros(percentiles.max),
            mean_us: micros(percentiles.mean),
        }
    }
}

pub(crate) fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A figure for a progress line; "–" when there is none.
pub(crate) fn shown(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |value| value.to_string())
}

/// KiB to MiB, rounded to 0.1.
pub(crate) fn mib(kib: u64) -> f64 {
    round1(kib as f64 / 1024.0)
}

/// A daemon's memory and threads at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct DaemonMemory {
    pub rss_mib: f64,
    pub threads: u64,
}

impl DaemonMemory {
    /// `None` once the process is gone.
    pub(crate) fn of(pid: u32) -> Option<DaemonMemory> {
        procfs::status(pid).map(|status| DaemonMemory {
            rss_mib: mib(status.rss_kib),
            threads: status.threads,
        })
    }
}

/// One sample of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Seconds since the sampler started.
    pub at_s: f64,
    pub rss_kib: u64,
    pub threads: u64,
    pub cpu: Duration,
}

/// Memory and CPU of a process over a window of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResourceWindow {
    pub rss_mib_start: f64,
    pub rss_mib_peak: f64,
    pub rss_mib_end: f64,
    pub cpu_pct_mean: f64,
    pub threads_end: u64,
    pub cpu_s: f64,
}

impl ResourceWindow {
    /// The figures of the samples taken in `[from_s, to_s]`; `None` with
    /// fewer than two.
    pub(crate) fn of(samples: &[Sample], from_s: f64, to_s: f64) -> Option<ResourceWindow> {
        let window: Vec<&Sample> = samples
            .iter()
            .filter(|sample| sample.at_s >= from_s && sample.at_s <= to_s)
            .collect();
        let (first, last) = (window.first()?, window.last()?);
        if window.len() < 2 {
            return None;
        }
        let peak = window.iter().map(|sample| sample.rss_kib).max()?;
        let cpu = last.cpu.saturating_sub(first.cpu).as_secs_f64();
        Some(ResourceWindow {
            rss_mib_start: mib(first.rss_kib),
            rss_mib_peak: mib(peak),
            rss_mib_end: mib(last.rss_kib),
            cpu_pct_mean: round1(cpu / (last.at_s - first.at_s) * 100.0),
            threads_end: last.threads,
            cpu_s: round3(cpu),
        })
    }
}

/// RSS over time thinned to about `points` points: `(seconds, MiB)`.
pub(crate) fn rss_series(samples: &[Sample], points: usize) -> Vec<(f64, f64)> {
    let step = (samples.len() / points.max(1)).max(1);
    samples
        .iter()
        .step_by(step)
        .map(|sample| (round1(sample.at_s), mib(sample.rss_kib)))
        .collect()
}

/// Samples RSS, threads and CPU of one process every `interval` on a
/// thread, until finished. `tripped` is set once RSS passes a limit.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    started: Instant,
    pub tripped: Arc<AtomicBool>,
}

impl Sampler {
    pub(crate) fn start(pid: u32, interval: Duration, rss_limit_kib: u64) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tripped = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let thread = {
            let (stop, samples, tripped) = (stop.clone(), samples.clone(), tripped.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(sample) = sample(pid, started) {
                        if sample.rss_kib > rss_limit_kib {
                            tripped.store(true, Ordering::Relaxed);
                        }
                        lock(&samples).push(sample);
                    }
                    // The sampling pace.
                    std::thread::sleep(interval);
                }
            })
        };
        Sampler {
            stop,
            samples,
            thread: Some(thread),
            started,
            tripped,
        }
    }

    /// Seconds since the sampler started (the time base of its samples).
    pub(crate) fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        lock(&self.samples).clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sample(pid: u32, started: Instant) -> Option<Sample> {
    let status = procfs::status(pid)?;
    Some(Sample {
        at_s: started.elapsed().as_secs_f64(),
        rss_kib: status.rss_kib,
        threads: status.threads,
        cpu: procfs::cpu_time(pid)?,
    })
}

/// The samples, also after a sampler thread panicked (they stay valid).
fn lock(samples: &Mutex<Vec<Sample>>) -> std::sync::MutexGuard<'_, Vec<Sample>> {
    samples
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_s: f64, rss_mib: u64, cpu_ms: u64) -> Sample {
        Sample {
            at_s,
            rss_kib: rss_mib * 1024,
            threads: 3,
            cpu: Duration::from_millis(cpu_ms),
        }
    }

    #[test]
    fn window_figures() {
        let samples = [
            at(0.0, 10, 0),
            at(1.0, 30, 250),
            at(2.0, 20, 500),
            at(9.0, 99, 900),
        ];
        let window = ResourceWindow::of(&samples, 0.0, 2.0).unwrap();
        assert_eq!(window.rss_mib_start, 10.0);
        assert_eq!(window.rss_mib_peak, 30.0);
        assert_eq!(window.rss_mib_end, 20.0);
        assert_eq!(window.cpu_pct_mean, 25.0);
        assert_eq!(window.cpu_s, 0.5);
        assert_eq!(ResourceWindow::of(&samples, 3.0, 9.0), None, "one sample");
    }

    #[test]
    fn latency_summary_in_microseconds() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let summary = LatencySummary::of(&samples);
        assert_eq!(summary.samples, 100);
        assert_eq!(summary.p50_us, Some(50.0));
        assert_eq!(summary.p99_us, Some(99.0));
        assert_eq!(summary.max_us, Some(100.0));
        assert_eq!(LatencySummary::of(&[]).p50_us, None);
    }
}
