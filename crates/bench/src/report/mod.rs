//! Renders a run as docs/BENCHMARKS.md: the machine, every scenario with
//! both daemons side by side and ratios (ferrovirtd / libvirtd), the
//! comparisons where ferrovirtd is not ahead, and the worst gap. One
//! function per section; the comparisons they collect feed the verdict.

mod compare;
mod events;
mod flood;
mod format;
mod header;
mod hotplug;
mod hung;
mod migration;
mod nics;
mod rpc;
mod scale;
mod stats;
mod storage;
mod transfer;
mod verdict;

use crate::daemon::{DaemonKind, Emu};
use crate::results::{Report, Row};

use compare::Findings;

/// Markdown being written.
#[derive(Default)]
struct Doc {
    text: String,
}

impl Doc {
    /// A line (`text` may hold more lines).
    fn line(&mut self, text: impl AsRef<str>) {
        self.text.push_str(text.as_ref());
        self.text.push('\n');
    }

    /// A paragraph: the text and an empty line.
    fn paragraph(&mut self, text: impl AsRef<str>) {
        self.line(text);
        self.line("");
    }

    /// A table's header row and its separator.
    fn table(&mut self, columns: &[&str]) {
        self.line(format!("| {} |", columns.join(" | ")));
        self.line(format!("|{}", "---|".repeat(columns.len())));
    }
}

pub(crate) fn render(report: &Report, source: &str) -> String {
    let mut doc = Doc::default();
    let mut findings = Findings::default();
    header::title(&mut doc, source);
    header::machine(&mut doc, report);
    header::reproduce(&mut doc, report);
    header::failed_rows(&mut doc, report);
    let scenarios = &report.scenarios;
    if let Some(rows) = &scenarios.rpc {
        rpc::section(&mut doc, &mut findings, rows, report);
    }
    if let Some(rows) = &scenarios.flood {
        flood::section(&mut doc, &mut findings, rows, report);
    }
    if let Some(rows) = &scenarios.hung {
        hung::section(&mut doc, &mut findings, rows, report);
    }
    if let Some(rows) = &scenarios.events {
        events::section(&mut doc, &mut findings, rows, report);
    }
    if let Some(rows) = &scenarios.scale {
        scale::section(&mut doc, &mut findings, rows);
    }
    if let Some(rows) = &scenarios.storage {
        storage::section(&mut doc, &mut findings, rows);
    }
    if let Some(rows) = &scenarios.stats {
        stats::section(&mut doc, &mut findings, rows);
    }
    if let Some(rows) = &scenarios.transfer {
        transfer::section(&mut doc, &mut findings, rows);
    }
    if let Some(rows) = &scenarios.nics {
        nics::section(&mut doc, rows);
    }
    if let Some(rows) = &scenarios.hotplug {
        hotplug::section(&mut doc, rows);
    }
    if let Some(rows) = &scenarios.migration {
        migration::section(&mut doc, rows);
    }
    verdict::section(&mut doc, findings, report);
    verdict::caveats(&mut doc, report);
    doc.text
}

/// The figures of a daemon's row with that QEMU, unless it failed.
fn figures_of<T>(rows: &[Row<T>], daemon: DaemonKind, qemu: Emu) -> Option<&T> {
    rows.iter()
        .find(|row| row.daemon == daemon && row.qemu == qemu && row.done().is_some())
        .and_then(Row::done)
}

/// Both daemons' figures behind the same QMP proxy: the like-for-like pair.
fn proxied_pair<T>(rows: &[Row<T>]) -> Option<(&T, &T)> {
    Some((
        figures_of(rows, DaemonKind::Ferrovirtd, Emu::Proxy)?,
        figures_of(rows, DaemonKind::Libvirtd, Emu::Proxy)?,
    ))
}

/// `daemon (QEMU)`.
fn who<T>(row: &Row<T>) -> String {
    format!("{} ({})", row.daemon.name(), row.qemu.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_run() -> Report {
        serde_json::from_str(include_str!("testdata/full-run.json")).unwrap()
    }

    /// The rendering of a run with both daemons, failed rows, a wedged
    /// libvirtd and a capped scale step. `BLESS=1` rewrites the golden file
    /// after an intended change.
    #[test]
    fn a_full_run_renders_as_the_golden_file() {
        let rendered = render(&full_run(), "full-run.json");
        let golden = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/report/testdata/full-run.md"
        );
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(golden, &rendered).unwrap();
        }
        let expected = std::fs::read_to_string(golden).unwrap();
        for (number, (got, want)) in rendered.lines().zip(expected.lines()).enumerate() {
            assert_eq!(got, want, "line {} differs", number + 1);
        }
        assert_eq!(rendered.lines().count(), expected.lines().count());
    }

    #[test]
    fn a_run_without_libvirtd_has_no_verdict() {
        let mut report = full_run();
        let scenarios = &mut report.scenarios;
        let ferrovirtd = |kind: DaemonKind| kind == DaemonKind::Ferrovirtd;
        scenarios
            .rpc
            .as_mut()
            .unwrap()
            .retain(|row| ferrovirtd(row.daemon));
        scenarios
            .flood
            .as_mut()
            .unwrap()
            .retain(|row| ferrovirtd(row.daemon));
        scenarios
            .hung
            .as_mut()
            .unwrap()
            .retain(|row| ferrovirtd(row.daemon));
        scenarios
            .events
            .as_mut()
            .unwrap()
            .retain(|row| ferrovirtd(row.daemon));
        let rendered = render(&report, "smoke.json");
        assert!(
            rendered.contains("No like-for-like comparison in this run (libvirtd not measured).")
        );
        assert!(!rendered.contains("Ratios, like for like"));
        assert!(rendered.contains("| 3 | GET_INFO | 1 |"), "{rendered}");
    }
}
