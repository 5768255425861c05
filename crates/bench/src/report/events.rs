//! Section 4: event latency, idle and during a job.

use crate::results::{EventLatency, EventsResult, Outcome, Report, Row};

use super::compare::{Comparison, Findings};
use super::format::{maybe, precise};
use super::{Doc, proxied_pair, who};

pub(super) fn section(
    doc: &mut Doc,
    findings: &mut Findings,
    rows: &[Row<EventsResult>],
    report: &Report,
) {
    doc.paragraph("## 4. Event latency (QEMU event → client callback)");
    doc.paragraph(format!(
        "A running VM; the bench makes QEMU raise `STOP`/`RESUME` and times the lifecycle callback \
        (`DOMAIN_EVENT_CALLBACK_LIFECYCLE` SUSPENDED/RESUMED) on a registered `rpc::Client`. Real QEMU: `stop`/`cont` on a second QMP \
        monitor of our own (`-qmp unix:…` via `<qemu:commandline>`); the latency runs from our own receipt of the QMP event (QEMU writes it to both monitors at once) to the callback. \
        qemu-sim: control-socket `event STOP|RESUME`, from the command to the callback. \"During a job\": `DOMAIN_SUSPEND` in flight on the same VM with its monitor reply withheld \
        (a held modify job, not a long async job such as a save: the bench does not drive those yet); samples stop before ferrovirtd's {} s monitor deadline.",
        report.params.ferrovirtd_monitor_timeout_s
    ));
    doc.table(&[
        "daemon (QEMU)",
        "idle p50 / p99 / max µs (n)",
        "during job p50 / p99 / max µs (n)",
        "missed callbacks idle / job",
    ]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(result) => doc.line(format!(
                "| {} | {} | {} | {} / {} |",
                who(row),
                latencies(&result.idle),
                latencies(&result.during_job),
                result.idle.missed_callbacks,
                result.during_job.missed_callbacks
            )),
            Outcome::Failed { error } => doc.line(format!("| {} | error: {error} |||", who(row))),
        }
    }
    if let Some((ferrovirtd, libvirtd)) = proxied_pair(rows) {
        compare(findings, ferrovirtd, libvirtd);
    }
    doc.line("");
}

/// `p50 / p99 / max (n)`.
fn latencies(samples: &EventLatency) -> String {
    let latency = &samples.latency;
    format!(
        "{} / {} / {} ({})",
        maybe(latency.p50_us),
        maybe(latency.p99_us),
        maybe(latency.max_us),
        latency.samples
    )
}

fn compare(findings: &mut Findings, ferrovirtd: &EventsResult, libvirtd: &EventsResult) {
    let (idle_p99, job_p99) = (
        ferrovirtd.idle.latency.p99_us,
        ferrovirtd.during_job.latency.p99_us,
    );
    if let (Some(idle), Some(job)) = (idle_p99, job_p99)
        && job > 5.0 * idle
    {
        findings.gaps.push(format!(
            "**Events during a held job:** ferrovirtd's event latency p99 grows from {idle:.0} µs idle to {job:.0} µs \
            while a job on the same VM waits for its monitor (real QEMU via the proxy) — still below libvirtd's {} µs, but {:.0}× its own idle figure.",
            precise(libvirtd.during_job.latency.p99_us),
            job / idle
        ));
    }
    for (label, ferro, libvirt) in [
        ("idle", &ferrovirtd.idle, &libvirtd.idle),
        ("during job", &ferrovirtd.during_job, &libvirtd.during_job),
    ] {
        let (ferro, libvirt) = (&ferro.latency, &libvirt.latency);
        let what = |figure: &str| format!("event latency {label}: {figure}");
        findings
            .comparisons
            .push(Comparison::tail(what("max"), ferro.max_us, libvirt.max_us));
        findings
            .comparisons
            .push(Comparison::lower(what("p50"), ferro.p50_us, libvirt.p50_us));
        findings
            .comparisons
            .push(Comparison::lower(what("p99"), ferro.p99_us, libvirt.p99_us));
    }
}
