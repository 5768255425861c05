//! Section 5: scale, ferrovirtd alone with qemu-sim.

use crate::results::{Outcome, Row, ScaleFigures, ScaleResult, ScaleStep};

use super::Doc;
use super::compare::Findings;
use super::format::{maybe, number};

pub(super) fn section(doc: &mut Doc, findings: &mut Findings, rows: &[Row<ScaleResult>]) {
    doc.paragraph("## 5. Scale (ferrovirtd alone, qemu-sim)");
    doc.paragraph(
        "Define + start N simulated VMs (running; 16 calls in flight), then SIGKILL the daemon and start it again: \
        time until it listens, and until every VM is reported running (`CONNECT_LIST_ALL_DOMAINS` ACTIVE|RUNNING), then `GET_STATE` on each.",
    );
    doc.table(&[
        "N",
        "define+start s (per VM p50/p99 ms)",
        "daemon RSS MiB idle → N VMs",
        "threads",
        "fds",
        "sim PSS KiB",
        "restart: listening s",
        "all running s",
        "running after restart",
    ]);
    let mut capped = Vec::new();
    // (N, starts per second)
    let mut rates: Vec<(f64, f64)> = Vec::new();
    for row in rows {
        match &row.outcome {
            Outcome::Done(result) => {
                for step in &result.rows {
                    doc.line(step_row(step, &mut capped, &mut rates));
                }
            }
            Outcome::Failed { error } => doc.line(format!("| – | error: {error} ||||||||")),
        }
    }
    for note in &capped {
        doc.line(format!("\n{note}"));
    }
    start_rate(doc, findings, &rates);
    poller(doc, rows);
    doc.paragraph(
        "\nlibvirtd is not run at this scale here: it starts one thread per VM and real QEMU costs ~32 MiB RSS per paused VM; \
        earlier measurements of libvirtd 9.0 found 0.3 s per start and 0.3–0.35 MiB of libvirtd RSS per VM at N ≤ 100.",
    );
}

fn step_row(step: &ScaleStep, capped: &mut Vec<String>, rates: &mut Vec<(f64, f64)>) -> String {
    let figures: &ScaleFigures = match &step.outcome {
        Outcome::Done(figures) => figures,
        Outcome::Failed { error } => return format!("| {} | error: {error} ||||||||", step.vms),
    };
    if let Some(why) = &step.capped_by {
        capped.push(format!(
            "N={} was run instead of the requested {}: {why}.",
            step.vms, step.requested_n
        ));
    }
    let count = step.vms as f64;
    rates.push((count, count / figures.start.total_s));
    let rss =
        |memory: Option<crate::stats::DaemonMemory>| maybe(memory.map(|memory| memory.rss_mib));
    let restart = &figures.restart;
    format!(
        "| {} | {} ({} / {}) | {} → {} | {} | {} | {} | {} | {} | {} |",
        step.vms,
        number(figures.start.total_s),
        number(figures.start.per_vm_ms_p50),
        number(figures.start.per_vm_ms_p99),
        rss(figures.daemon_idle),
        rss(figures.daemon_after_start),
        figures
            .daemon_after_start
            .map_or_else(|| "–".into(), |memory| memory.threads.to_string()),
        figures.daemon_fds,
        number(figures.sim_pss_kib_avg),
        number(restart.listening_s),
        maybe(restart.all_running_s),
        restart.get_state_running
    )
}

/// The statistics poller's cost at each N.
fn poller(doc: &mut Doc, rows: &[Row<ScaleResult>]) {
    let steps: Vec<(usize, &crate::results::PollerCost)> = rows
        .iter()
        .filter_map(|row| row.done())
        .flat_map(|r| r.rows.iter())
        .filter_map(|step| match &step.outcome {
            Outcome::Done(f) => f.poller.as_ref().map(|p| (step.vms, p)),
            Outcome::Failed { .. } => None,
        })
        .collect();
    if steps.is_empty() {
        return;
    }
    doc.paragraph(
        "\nThe statistics poller with every VM running: the daemon over two poller intervals \
        (one QMP round per VM per interval, at most 32 in flight), then one `CONNECT_GET_ALL_DOMAIN_STATS` (all groups) over every VM.",
    );
    doc.table(&[
        "N",
        "poller interval s",
        "daemon CPU % (mean)",
        "daemon RSS MiB start → peak",
        "domstats over all ms",
        "records",
    ]);
    for (n, p) in steps {
        let w = p.window.as_ref();
        doc.line(format!(
            "| {n} | {} | {} | {} → {} | {} | {} |",
            number(p.interval_s),
            maybe(w.map(|w| w.cpu_pct_mean)),
            maybe(w.map(|w| w.rss_mib_start)),
            maybe(w.map(|w| w.rss_mib_peak)),
            p.domstats
                .after_s
                .map_or_else(|| p.domstats.result.clone(), number),
            p.domstats_records
        ));
    }
    doc.line("");
}

/// Whether starting slowed down markedly from the smallest to the largest N.
fn start_rate(doc: &mut Doc, findings: &mut Findings, rates: &[(f64, f64)]) {
    let (Some(&(small, small_rate)), Some(&(large, large_rate))) = (rates.first(), rates.last())
    else {
        return;
    };
    if rates.len() < 2 || large_rate >= small_rate * 0.8 {
        return;
    }
    findings.gaps.push(format!(
        "**Start rate at scale:** {small_rate:.0} VM starts/s at N={small:.0} fall to {large_rate:.0}/s at N={large:.0} \
        ({:.0} s for the whole set); see section 5.",
        large / large_rate
    ));
    doc.line(format!(
        "\n**Start rate falls with N:** {small_rate:.0} VMs/s at N={small:.0} but {large_rate:.0} VMs/s at N={large:.0}. \
        The machine spends most of that time in the kernel (sys time): every start forks the daemon \
        (the driver spawns QEMU through `Command` with a `pre_exec` hook, which rules out posix_spawn/vfork), \
        and the fork copies page tables that grow with the daemon's RSS."
    ));
}
