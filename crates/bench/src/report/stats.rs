//! Section 6: bulk statistics, idle and with one hung monitor.

use crate::results::{Outcome, Row, StatsResult};

use super::Doc;
use super::compare::Findings;
use super::format::{maybe, number};

pub(super) fn section(doc: &mut Doc, _findings: &mut Findings, rows: &[Row<StatsResult>]) {
    doc.paragraph("## 6. Bulk statistics (`virsh domstats`)");
    doc.paragraph(
        "`CONNECT_GET_ALL_DOMAIN_STATS` with every group (what `virsh domstats` and Prometheus exporters call) over N paused VMs, \
        one client, calls in a row; then one VM's monitor stops answering and DOMAIN_SUSPEND is put in flight on it (it holds that VM's job), \
        and the call is repeated, each awaited up to the hung cap. ferrovirtd answers from its statistics cache (figures at most one poller \
        interval plus one round old; the hung VM is reported stale); libvirtd takes each VM's job and asks its monitor.",
    );
    doc.table(&[
        "daemon (QEMU)",
        "N",
        "idle p50 / p99 / max ms",
        "records",
        "hung monitor + job held: each call",
    ]);
    for row in rows {
        let label = format!("{} ({})", row.daemon.name(), row.qemu.label());
        match &row.outcome {
            Outcome::Done(r) => {
                let ms = |us: Option<f64>| maybe(us.map(|u| u / 1000.0));
                let hung: Vec<String> = r
                    .hung
                    .iter()
                    .map(|c| match c.after_s {
                        Some(s) if s < 1.0 => format!("{} ms ({})", number(s * 1e3), c.result),
                        Some(s) => format!("{} s ({})", number(s), c.result),
                        None => c.result.clone(),
                    })
                    .collect();
                doc.line(format!(
                    "| {label} | {} | {} / {} / {} | {} | {} |",
                    r.vms,
                    ms(r.idle.p50_us),
                    ms(r.idle.p99_us),
                    ms(r.idle.max_us),
                    r.idle_records,
                    hung.join("; ")
                ));
            }
            Outcome::Failed { error } => doc.line(format!("| {label} | error: {error} ||||")),
        }
    }
    doc.line("");
}
