//! Section 9: live migration (ferrovirtd alone, in a namespace).

use crate::results::{MigrationResult, Outcome, Row};

use super::format::maybe;
use super::{Doc, who};

pub(super) fn section(doc: &mut Doc, rows: &[Row<MigrationResult>]) {
    doc.paragraph("## 9. Live migration (ferrovirtd alone)");
    doc.paragraph(
        "Two daemons inside a network namespace the bench creates, each with a plain-TCP \
         listener: an idle diskless guest (real QEMU, 64 MiB, in its firmware) moved back \
         and forth with `virsh migrate --live` (client-driven: begin, prepare, perform, \
         finish, confirm). Total is the virsh command end to end; downtime is what QEMU \
         measured (reported by the destination's completed-job statistics). libvirtd 9.0 is not measured: the \
         libvirt harness runs one libvirtd in the host's namespace without a TCP listener, \
         and libvirt refuses a migration between two daemons with the same host UUID. \
         Microseconds, p50 / p99.",
    );
    doc.table(&["daemon", "migrations", "total", "downtime"]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(r) => {
                let pair = |l: &crate::stats::LatencySummary| {
                    format!("{} / {}", maybe(l.p50_us), maybe(l.p99_us))
                };
                doc.line(format!(
                    "| {} | {} | {} | {} |",
                    who(row),
                    r.rounds,
                    pair(&r.total),
                    pair(&r.downtime),
                ));
            }
            Outcome::Failed { error } => {
                doc.line(format!("| {} | error: {error} |||", who(row)));
            }
        }
    }
    doc.line("");
}
