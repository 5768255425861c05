//! Section 6: storage pools and volumes.

use crate::daemon::{DaemonKind, Emu};
use crate::results::{Outcome, Row, StorageResult};

use super::compare::{Comparison, Findings};
use super::format::{maybe, number, ratio};
use super::{Doc, figures_of, who};

pub(super) fn section(doc: &mut Doc, findings: &mut Findings, rows: &[Row<StorageResult>]) {
    doc.paragraph("## 6. Storage pools and volumes");
    doc.paragraph(
        "One transient directory pool per daemon. Small raw volumes (1 MiB, sparse) are \
         created one call at a time, the pool's volumes listed, the volumes deleted one at a \
         time; then files are dropped into the pool's directory behind the daemon's back, the \
         pool refreshed and listed again. Latencies in µs.",
    );
    doc.table(&[
        "daemon",
        "volumes",
        "create total s (p50 / p99)",
        "list-all p50 / p99",
        "delete total s (p50 / p99)",
        "files",
        "refresh p50 / max",
        "list-all of the files p50 / p99",
    ]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(r) => doc.line(result_row(row, r)),
            Outcome::Failed { error } => {
                doc.line(format!("| {} | error: {error} |||||||", who(row)))
            }
        }
    }
    doc.line("");
    let ferrovirtd = figures_of(rows, DaemonKind::Ferrovirtd, Emu::Real);
    let libvirtd = figures_of(rows, DaemonKind::Libvirtd, Emu::Real);
    if let (Some(f), Some(l)) = (ferrovirtd, libvirtd) {
        compare(findings, f, l);
        doc.paragraph(format!(
            "Ratios ferrovirtd / libvirtd: create {}, delete {}, refresh {}.",
            ratio(Some(f.create.total_s), Some(l.create.total_s)),
            ratio(Some(f.delete.total_s), Some(l.delete.total_s)),
            ratio(f.refresh.p50_us, l.refresh.p50_us),
        ));
    }
}

fn result_row(row: &Row<StorageResult>, r: &StorageResult) -> String {
    format!(
        "| {} | {} | {} ({} / {}) | {} / {} | {} ({} / {}) | {} | {} / {} | {} / {} |",
        row.daemon.name(),
        r.volumes,
        number(r.create.total_s),
        maybe(r.create.latency.p50_us),
        maybe(r.create.latency.p99_us),
        maybe(r.list.p50_us),
        maybe(r.list.p99_us),
        number(r.delete.total_s),
        maybe(r.delete.latency.p50_us),
        maybe(r.delete.latency.p99_us),
        r.files,
        maybe(r.refresh.p50_us),
        maybe(r.refresh.max_us),
        maybe(r.list_files.p50_us),
        maybe(r.list_files.p99_us),
    )
}

fn compare(findings: &mut Findings, f: &StorageResult, l: &StorageResult) {
    let c = &mut findings.comparisons;
    c.push(Comparison::lower(
        format!("storage: create {} volumes (total s)", f.volumes),
        Some(f.create.total_s),
        Some(l.create.total_s),
    ));
    c.push(Comparison::lower(
        "storage: create p99".into(),
        f.create.latency.p99_us,
        l.create.latency.p99_us,
    ));
    c.push(Comparison::lower(
        format!("storage: list {} volumes p99", f.volumes),
        f.list.p99_us,
        l.list.p99_us,
    ));
    c.push(Comparison::lower(
        format!("storage: delete {} volumes (total s)", f.volumes),
        Some(f.delete.total_s),
        Some(l.delete.total_s),
    ));
    c.push(Comparison::lower(
        format!("storage: refresh of {} files p50", f.files),
        f.refresh.p50_us,
        l.refresh.p50_us,
    ));
    c.push(Comparison::lower(
        format!("storage: list {} volumes p99", f.files),
        f.list_files.p99_us,
        l.list_files.p99_us,
    ));
}
