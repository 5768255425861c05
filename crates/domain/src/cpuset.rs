//! libvirt's CPU lists (`cpuset='0-3,^2,6'`): used by vCPU placement,
//! pinning and NUMA cells.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::DomainXmlError;

/// Highest CPU number accepted: libvirt's own limit for CPU masks. It
/// bounds the set a hostile string can make us build.
pub const MAX_CPU: u32 = 16383;

/// A set of CPU numbers, kept sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// Parses `0-3,^2,6` (ranges, single CPUs, `^N` exclusions).
    pub fn parse(what: &str, s: &str) -> Result<Self, DomainXmlError> {
        let bad = |why: &str| DomainXmlError::invalid(what, s, why);
        let mut set = BTreeSet::new();
        let mut excluded = BTreeSet::new();
        for part in s.split(',').map(str::trim) {
            if let Some(n) = part.strip_prefix('^') {
                excluded.insert(cpu(n).ok_or_else(|| bad("expected a CPU number after '^'"))?);
                continue;
            }
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (cpu(a), cpu(b)),
                None => (cpu(part), cpu(part)),
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Err(bad("expected CPU numbers or ranges such as 0-3,^2,6"));
            };
            if lo > hi {
                return Err(bad("a range must go from low to high"));
            }
            set.extend(lo..=hi);
        }
        set.retain(|c| !excluded.contains(c));
        if set.is_empty() {
            return Err(bad("the set is empty"));
        }
        Ok(CpuSet(set))
    }

    /// The set of `cpus`, those past [`MAX_CPU`] left out.
    pub fn from_cpus(cpus: impl IntoIterator<Item = u32>) -> Self {
        CpuSet(cpus.into_iter().filter(|c| *c <= MAX_CPU).collect())
    }

    /// The CPUs, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The highest CPU in the set.
    pub fn max(&self) -> Option<u32> {
        self.0.last().copied()
    }

    /// QEMU's `-numa node,cpus=` pieces: each contiguous run as `a-b` or `a`.
    pub fn ranges(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for c in self.iter() {
            match out.last_mut() {
                Some((_, hi)) if *hi + 1 == c => *hi = c,
                _ => out.push((c, c)),
            }
        }
        out
    }
}

fn cpu(s: &str) -> Option<u32> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u32>().ok().filter(|n| *n <= MAX_CPU)
}

impl fmt::Display for CpuSet {
    /// libvirt's canonical form: ascending ranges (`0-2,5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges()
            .into_iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_exclusions() {
        let s = CpuSet::parse("x", "0-3,^2,6").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 3, 6]);
        assert_eq!(s.to_string(), "0-1,3,6");
        assert_eq!(CpuSet::parse("x", "5").unwrap().to_string(), "5");
        for bad in ["", "a", "3-1", "^1", "1,,2", "99999", "-1", "0-"] {
            assert!(CpuSet::parse("x", bad).is_err(), "{bad}");
        }
    }
}
