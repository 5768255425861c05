//! Section 3: a monitor that stops answering.

use crate::results::{HungResult, Outcome, Report, Row};

use super::compare::{Comparison, Findings};
use super::format::{maybe, number};
use super::{Doc, proxied_pair, who};

pub(super) fn section(
    doc: &mut Doc,
    findings: &mut Findings,
    rows: &[Row<HungResult>],
    report: &Report,
) {
    let params = &report.params;
    doc.paragraph("## 3. Hung monitor");
    doc.paragraph(format!(
        "One VM's monitor stops answering (qemu-sim `hang on`, or the proxy drops every QMP reply: `swallow on`) \
        and `DOMAIN_SUSPEND` (needs the monitor) is put in flight on it. For {} s, `GET_INFO` probes at {}/s run over the {} other VMs and on the hung VM. \
        The in-flight call is awaited up to {} s; then the hung VM is destroyed (its monitor still silent).",
        params.hung_window_s,
        number(params.probe_rate_per_s),
        params.quiet_vms,
        params.hung_cap_s
    ));
    doc.table(&[
        "daemon (QEMU)",
        "in-flight suspend",
        "other VMs p99 µs before → stuck (max)",
        "other VMs success",
        "hung VM GET_INFO p99 µs (success)",
        "destroy of hung VM s",
    ]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(result) => doc.line(result_row(row, result)),
            Outcome::Failed { error } => doc.line(format!("| {} | error: {error} |||||", who(row))),
        }
    }
    if let Some((ferrovirtd, libvirtd)) = proxied_pair(rows) {
        compare(findings, ferrovirtd, libvirtd);
    }
    doc.line("");
}

fn result_row(row: &Row<HungResult>, result: &HungResult) -> String {
    let inflight = &result.inflight;
    let inflight = match inflight.after_s {
        None => inflight.result.clone(),
        Some(after) => format!("returned after {} s: {}", number(after), inflight.result),
    };
    format!(
        "| {} | {} | {} → {} ({}) | {} | {} ({}) | {} ({}) |",
        who(row),
        inflight.replace('|', "/"),
        maybe(result.others_base.latency.p99_us),
        maybe(result.others_stuck.latency.p99_us),
        maybe(result.others_stuck.latency.max_us),
        number(result.others_stuck.success_rate),
        maybe(result.stuck_vm_info.latency.p99_us),
        number(result.stuck_vm_info.success_rate),
        maybe(result.destroy.after_s),
        result.destroy.result
    )
}

fn compare(findings: &mut Findings, ferrovirtd: &HungResult, libvirtd: &HungResult) {
    let comparisons = &mut findings.comparisons;
    comparisons.push(Comparison::lower(
        "hung: other VMs p99 while stuck".into(),
        ferrovirtd.others_stuck.latency.p99_us,
        libvirtd.others_stuck.latency.p99_us,
    ));
    comparisons.push(Comparison::lower(
        "hung: GET_INFO p99 on the hung VM".into(),
        ferrovirtd.stuck_vm_info.latency.p99_us,
        libvirtd.stuck_vm_info.latency.p99_us,
    ));
    comparisons.push(Comparison::lower(
        "hung: destroy of the hung VM".into(),
        ferrovirtd.destroy.after_s,
        libvirtd.destroy.after_s,
    ));
    let libvirtd_returned = libvirtd.inflight.after_s;
    comparisons.push(Comparison {
        libvirtd_note: libvirtd_returned
            .is_none()
            .then(|| libvirtd.inflight.result.clone()),
        ..Comparison::lower(
            "hung: in-flight call returns".into(),
            ferrovirtd.inflight.after_s,
            libvirtd_returned,
        )
    });
}
