//! Where ferrovirtd is not ahead, the gaps the ratios cannot show, and
//! the caveats of the whole run.

use std::cmp::Ordering;

use crate::results::{Mode, Report};

use super::Doc;
use super::compare::{Comparison, Findings};
use super::format::precise;

pub(super) fn section(doc: &mut Doc, mut findings: Findings, report: &Report) {
    doc.paragraph("## Where ferrovirtd is not ahead");
    if findings.comparisons.is_empty() {
        doc.paragraph("No like-for-like comparison in this run (libvirtd not measured).");
    } else {
        behind(doc, &findings.comparisons);
    }
    if report.scenarios.events.is_some() {
        findings.gaps.push(
            "**Async jobs:** \"during a job\" is a held modify job (suspend with its monitor reply withheld), \
            not a long async job such as `DOMAIN_SAVE`, migration or a block job: the bench does not drive those yet, \
            so event latency during a real async job is not measured."
                .into(),
        );
    }
    if !findings.gaps.is_empty() {
        doc.paragraph("Not visible in the ratios:");
        for gap in &findings.gaps {
            doc.line(format!("- {gap}"));
        }
        doc.line("");
    }
    no_answer(doc, &findings.comparisons);
}

/// The comparisons scored, worst first.
fn scored(comparisons: &[Comparison]) -> Vec<(&Comparison, f64)> {
    let mut scored: Vec<(&Comparison, f64)> = comparisons
        .iter()
        .filter_map(|comparison| comparison.badness().map(|badness| (comparison, badness)))
        .collect();
    scored.sort_by(|left, right| right.1.partial_cmp(&left.1).unwrap_or(Ordering::Equal));
    scored
}

/// The figures where ferrovirtd is behind, the worst gap and worst tail.
fn behind(doc: &mut Doc, comparisons: &[Comparison]) {
    let scored = scored(comparisons);
    let behind: Vec<&(&Comparison, f64)> = scored
        .iter()
        .filter(|(_, badness)| *badness > 1.0)
        .collect();
    let main_behind: Vec<_> = behind
        .iter()
        .filter(|(comparison, _)| !comparison.tail)
        .collect();
    let tail_behind: Vec<_> = behind
        .iter()
        .filter(|(comparison, _)| comparison.tail)
        .collect();
    let main_count = scored
        .iter()
        .filter(|(comparison, _)| !comparison.tail)
        .count();
    doc.paragraph(format!(
        "{main_count} like-for-like figures were compared (p50/p99/throughput/CPU/RSS/times) plus {} maxima. \
        ferrovirtd is behind on {} of the former and {} of the maxima (factor = how much worse; under ~1.3× is within this machine's noise):",
        scored.len() - main_count,
        main_behind.len(),
        tail_behind.len()
    ));
    if !behind.is_empty() {
        doc.table(&["figure", "ferrovirtd", "libvirtd", "ferrovirtd worse by"]);
        for (comparison, badness) in &behind {
            doc.line(format!(
                "| {}{} | {} | {} | {badness:.2}× |",
                comparison.what,
                if comparison.tail {
                    " (one sample, noisy)"
                } else {
                    ""
                },
                precise(comparison.ferrovirtd),
                precise(comparison.libvirtd)
            ));
        }
        doc.line("");
    }
    worst(doc, &scored, main_behind.first().map(|worst| ***worst));
    if let Some((comparison, badness)) = tail_behind.first().map(|worst| ***worst) {
        doc.paragraph(format!(
            "Worst tail: {} — ferrovirtd {} µs vs libvirtd {} µs ({badness:.2}×), a single sample on a shared 2-core machine.",
            comparison.what,
            precise(comparison.ferrovirtd),
            precise(comparison.libvirtd)
        ));
    }
}

/// The worst figure where ferrovirtd is behind, or else the closest one.
fn worst(doc: &mut Doc, scored: &[(&Comparison, f64)], worst_behind: Option<(&Comparison, f64)>) {
    if let Some((comparison, badness)) = worst_behind {
        doc.paragraph(format!(
            "**Worst gap: {}** — ferrovirtd {} vs libvirtd {} ({badness:.2}× worse).",
            comparison.what,
            precise(comparison.ferrovirtd),
            precise(comparison.libvirtd)
        ));
    } else if let Some((comparison, badness)) =
        scored.iter().find(|(comparison, _)| !comparison.tail)
    {
        doc.paragraph(format!(
            "On every p50/p99/throughput/CPU/RSS/time figure ferrovirtd was ahead. **Worst gap (the closest figure): {}** — \
            ferrovirtd {} vs libvirtd {}, ahead by only {:.2}×.",
            comparison.what,
            precise(comparison.ferrovirtd),
            precise(comparison.libvirtd),
            1.0 / badness
        ));
    }
}

/// Comparisons where libvirtd gave no answer at all.
fn no_answer(doc: &mut Doc, comparisons: &[Comparison]) {
    let unanswered: Vec<&Comparison> = comparisons
        .iter()
        .filter(|comparison| comparison.libvirtd_note.is_some())
        .collect();
    if unanswered.is_empty() {
        return;
    }
    doc.paragraph("Where libvirtd gave no answer at all (not in the ratios):");
    for comparison in unanswered {
        doc.line(format!(
            "- {}: ferrovirtd {}; libvirtd: {}",
            comparison.what,
            precise(comparison.ferrovirtd),
            comparison.libvirtd_note.clone().unwrap_or_default()
        ));
    }
    doc.line("");
}

pub(super) fn caveats(doc: &mut Doc, report: &Report) {
    doc.paragraph("## Caveats");
    if report.duration_s > 900.0 && report.mode == Mode::Full {
        doc.line(format!(
            "- This run took {:.0} s, over the 15-minute target, on a machine shared with other builds and tests. \
            Most of it is the 10,000-VM scale step (see section 5); `--cell-secs 3` trims about 25 s.",
            report.duration_s
        ));
    }
    for caveat in [
        "One shared 2-core VM: the client, the injectors (Python proxy), QEMU and the daemon compete for the same CPUs, and other jobs ran on the machine (load averages above). \
        Earlier runs saw up to ~35 % run-to-run spread in ops/s; treat ratios within ~1.3× as noise, tails (max) as very noisy.",
        "The client is Rust (`rpc::Client`) for both daemons, not libvirt-python: figures of libvirtd measured with a Python client are not directly comparable to these.",
        "The `live` listener is a Rust `rpc::Client` that reads continuously; the 101 s wedge of libvirtd measured earlier was with a slower Python consumer. Compare the rows here with each other, not with those figures.",
        "qemu-sim rows are not like for like (the simulator is cheaper than QEMU + proxy and skips flood events when the reader falls 256 KiB behind); the `QEMU via qmp-proxy` rows are, and only those enter the ratios and the verdict for flood, hung and events.",
        "The harness's qmp-proxy puts `monitor.real.sock` next to the daemon's monitor socket; ferrovirtd keeps all monitor sockets in one directory, so only one proxied VM runs per ferrovirtd at a time (which is all the scenarios need).",
        "libvirtd's hung-monitor call is capped by the bench; libvirt itself has no monitor timeout, so \"no answer within N s\" means it would have waited until QEMU died.",
    ] {
        doc.line(format!("- {caveat}"));
    }
}
