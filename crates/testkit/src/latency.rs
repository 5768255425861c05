//! Percentiles of latency samples.

use std::time::Duration;

/// Nearest-rank percentiles (the smallest sample at or above the rank)
/// of a set of samples; all zero for no samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub n: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Percentiles {
    pub fn of(samples: &[Duration]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let count = sorted.len();
        let at = |quantile: f64| {
            // Nearest rank: ceil(n q), 1-based, within 1..=n.
            let rank = (count as f64 * quantile).ceil() as usize;
            sorted[rank.clamp(1, count) - 1]
        };
        let total: Duration = sorted.iter().sum();
        Percentiles {
            n: count,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: sorted[count - 1],
            mean: total / u32::try_from(count).unwrap_or(u32::MAX),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |value: Duration| value.as_secs_f64() * 1e3;
        write!(
            out,
            "n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
            self.n,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_a_hundred() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples);
        assert_eq!(p.n, 100);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p90, Duration::from_millis(90));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.p999, Duration::from_millis(100));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(p.mean, Duration::from_micros(50_500));
    }

    #[test]
    fn one_sample_is_every_percentile_and_none_is_zero() {
        let p = Percentiles::of(&[Duration::from_millis(7)]);
        let seven = Duration::from_millis(7);
        assert_eq!(
            (p.n, p.p50, p.p99, p.max, p.mean),
            (1, seven, seven, seven, seven)
        );
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
