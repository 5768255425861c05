//! Like-for-like comparisons and the findings the ratios cannot show,
//! gathered while the sections are written and judged in the verdict.

/// One figure measured for both daemons in the same way.
pub(super) struct Comparison {
    pub what: String,
    pub ferrovirtd: Option<f64>,
    pub libvirtd: Option<f64>,
    pub higher_is_better: bool,
    /// When libvirtd gave no answer at all.
    pub libvirtd_note: Option<String>,
    /// A maximum: one sample, dominated by machine noise.
    pub tail: bool,
}

impl Comparison {
    /// A figure where lower is better.
    pub(super) fn lower(what: String, ferrovirtd: Option<f64>, libvirtd: Option<f64>) -> Self {
        Comparison {
            what,
            ferrovirtd,
            libvirtd,
            higher_is_better: false,
            libvirtd_note: None,
            tail: false,
        }
    }

    /// A maximum (lower is better, one noisy sample).
    pub(super) fn tail(what: String, ferrovirtd: Option<f64>, libvirtd: Option<f64>) -> Self {
        Comparison {
            tail: true,
            ..Self::lower(what, ferrovirtd, libvirtd)
        }
    }

    /// Above 1: ferrovirtd behind by that factor; below 1: ahead.
    pub(super) fn badness(&self) -> Option<f64> {
        match (self.ferrovirtd, self.libvirtd) {
            (Some(ferrovirtd), Some(libvirtd)) if ferrovirtd > 0.0 && libvirtd > 0.0 => {
                Some(if self.higher_is_better {
                    libvirtd / ferrovirtd
                } else {
                    ferrovirtd / libvirtd
                })
            }
            _ => None,
        }
    }
}

/// What the sections found.
#[derive(Default)]
pub(super) struct Findings {
    pub comparisons: Vec<Comparison>,
    /// Gaps the ratios cannot show.
    pub gaps: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badness_follows_the_direction_of_better() {
        let latency = Comparison::lower("p99".into(), Some(2.0), Some(1.0));
        assert_eq!(latency.badness(), Some(2.0));
        let throughput = Comparison {
            higher_is_better: true,
            ..Comparison::lower("ops".into(), Some(2.0), Some(1.0))
        };
        assert_eq!(throughput.badness(), Some(0.5));
        assert_eq!(
            Comparison::lower("x".into(), None, Some(1.0)).badness(),
            None
        );
    }
}
