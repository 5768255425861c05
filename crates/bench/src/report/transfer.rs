//! Section 7: volume upload and download through the daemons' streams.

use crate::daemon::{DaemonKind, Emu};
use crate::results::{Outcome, Row, TransferPhase, TransferResult};

use super::compare::{Comparison, Findings};
use super::format::{number, ratio};
use super::{Doc, figures_of, who};

pub(super) fn section(doc: &mut Doc, findings: &mut Findings, rows: &[Row<TransferResult>]) {
    doc.paragraph("## 8. Volume upload and download");
    doc.paragraph(
        "One transient directory pool per daemon and a sparse raw volume in it; `virsh \
         vol-upload` fills it from a file of random data, `virsh vol-download` reads it back \
         (checked byte for byte). The client is virsh (libvirt's client library) for both \
         daemons. The daemon's CPU time (user + system) and RSS are sampled every 20 ms \
         during each transfer.",
    );
    doc.table(&[
        "daemon",
        "MiB",
        "upload s (MiB/s)",
        "upload daemon CPU s/GiB",
        "upload RSS start → peak MiB",
        "download s (MiB/s)",
        "download daemon CPU s/GiB",
        "download RSS start → peak MiB",
    ]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(r) => doc.line(format!(
                "| {} | {} | {} | {} |",
                row.daemon.name(),
                r.size_mib,
                cells(&r.upload),
                cells(&r.download)
            )),
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
            "Ratios ferrovirtd / libvirtd: upload time {}, CPU per GiB {}; download time {}, \
             CPU per GiB {}.",
            ratio(Some(f.upload.seconds), Some(l.upload.seconds)),
            ratio(Some(f.upload.cpu_s_per_gib), Some(l.upload.cpu_s_per_gib)),
            ratio(Some(f.download.seconds), Some(l.download.seconds)),
            ratio(
                Some(f.download.cpu_s_per_gib),
                Some(l.download.cpu_s_per_gib)
            ),
        ));
    }
}

fn cells(p: &TransferPhase) -> String {
    format!(
        "{} ({}) | {} | {} → {}",
        number(p.seconds),
        number(p.mib_per_s),
        number(p.cpu_s_per_gib),
        number(p.rss_mib_start),
        number(p.rss_mib_peak)
    )
}

fn compare(findings: &mut Findings, f: &TransferResult, l: &TransferResult) {
    for (what, fp, lp) in [
        ("upload", &f.upload, &l.upload),
        ("download", &f.download, &l.download),
    ] {
        let c = &mut findings.comparisons;
        c.push(Comparison {
            higher_is_better: true,
            ..Comparison::lower(
                format!("transfer: {what} of {} MiB (MiB/s)", f.size_mib),
                Some(fp.mib_per_s),
                Some(lp.mib_per_s),
            )
        });
        c.push(Comparison::lower(
            format!("transfer: {what} daemon CPU s/GiB"),
            Some(fp.cpu_s_per_gib),
            Some(lp.cpu_s_per_gib),
        ));
        c.push(Comparison::lower(
            format!("transfer: {what} daemon RSS peak (MiB)"),
            Some(fp.rss_mib_peak),
            Some(lp.rss_mib_peak),
        ));
    }
}
