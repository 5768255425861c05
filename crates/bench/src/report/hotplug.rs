//! Section 9: disk hot-plug on a booted guest.

use crate::results::{HotplugResult, Outcome, Row};

use super::format::maybe;
use super::{Doc, who};

pub(super) fn section(doc: &mut Doc, rows: &[Row<HotplugResult>]) {
    doc.paragraph("## 9. Disk hot-plug on a booted guest");
    doc.paragraph(
        "The test guest (a Linux kernel and a busybox initramfs, real QEMU) booted, then \
         `attach-device --live` of a virtio disk (a raw image) and `detach-device --live`, \
         one call at a time; a detach returns once the guest released the disk (QEMU's \
         DEVICE_DELETED) or after the daemon's wait of 5 s with the removal pending. \
         Latencies in µs, p50 / p99.",
    );
    doc.table(&[
        "daemon",
        "rounds",
        "attach",
        "detach",
        "attach + detach",
        "detach returned pending",
    ]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(r) => {
                let pair = |l: &crate::stats::LatencySummary| {
                    format!("{} / {}", maybe(l.p50_us), maybe(l.p99_us))
                };
                doc.line(format!(
                    "| {} | {} | {} | {} | {} | {} |",
                    who(row),
                    r.rounds,
                    pair(&r.attach),
                    pair(&r.detach),
                    pair(&r.round_trip),
                    r.pending,
                ));
            }
            Outcome::Failed { error } => {
                doc.line(format!("| {} | error: {error} |||||", who(row)));
            }
        }
    }
    doc.line("");
}
