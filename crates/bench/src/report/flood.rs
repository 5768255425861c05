//! Section 2: event floods, every row, then the like-for-like ratios.

use crate::client::ProbeResult;
use crate::daemon::DaemonKind;
use crate::results::{FloodCase, FloodEvent, FloodResult, ListenerMode, Outcome, Report, Row};

use super::compare::{Comparison, Findings};
use super::format::{maybe, number, ratio};
use super::{Doc, proxied_pair, who};

pub(super) fn section(
    doc: &mut Doc,
    findings: &mut Findings,
    rows: &[Row<FloodResult>],
    report: &Report,
) {
    let params = &report.params;
    doc.paragraph("## 2. Event flood");
    doc.paragraph(format!(
        "One VM's QMP stream carries `RTC_CHANGE` at the target rate for {} s (pre {} s, post {} s); {} other quiet paused VMs. \
        Probes: `GET_INFO` paced at {}/s, one over the quiet VMs and one on the flooded VM, each on its own connection. \
        Listener `live`: one more connection registered for every domain event ID the daemon accepts (0–26, like `virsh event --all`), reading continuously (`rpc::Client`). \
        Injection: qemu-sim's control socket (row `qemu-sim`) or the libvirt harness's `qmp-proxy.py` in front of real QEMU (rows `QEMU via qmp-proxy`, like for like). \
        The proxy never buffers more than 256 KiB towards the daemon, so the achieved rate shows how fast the daemon reads.",
        number(params.flood_s),
        number(params.pre_s),
        number(params.post_s),
        params.quiet_vms,
        number(params.probe_rate_per_s)
    ));
    doc.paragraph(format!(
        "qemu-sim rows flood for {} s (not like for like, kept short to fit the run); the others for {} s.",
        number(params.sim_flood_s),
        number(params.flood_s)
    ));
    cases_table(doc, rows);
    throttle_note(doc, rows);
    if let Some((ferrovirtd, libvirtd)) = proxied_pair(rows) {
        ratios_table(doc, findings, ferrovirtd, libvirtd);
    }
    doc.line("");
}

/// Every case of every row, case by case.
fn cases_table(doc: &mut Doc, rows: &[Row<FloodResult>]) {
    doc.table(&[
        "event rate / listener",
        "daemon (QEMU)",
        "achieved ev/s",
        "daemon CPU %",
        "RSS MiB pre → peak → end",
        "quiet VMs p99 µs pre → flood (max)",
        "flooded VM p99 µs flood (max)",
        "success quiet / flooded",
        "listener got",
        "answers after post (s)",
    ]);
    let case_count = rows
        .iter()
        .filter_map(|row| row.done().map(|result| result.cases.len()))
        .max()
        .unwrap_or(0);
    for index in 0..case_count {
        for row in rows {
            let Some(outcome) = row.done().and_then(|result| result.cases.get(index)) else {
                continue;
            };
            match outcome {
                Outcome::Done(case) => doc.line(case_row(row, case)),
                Outcome::Failed { error } => doc.line(format!(
                    "| case {index} | {} | error: {error} |||||||||",
                    who(row)
                )),
            }
        }
    }
}

fn case_name(case: &FloodCase) -> String {
    format!(
        "{} {} / {}",
        case.event.name(),
        case.target_ev_s,
        match case.listener_mode {
            ListenerMode::Live => "live",
            ListenerMode::None => "none",
        }
    )
}

fn case_row(row: &Row<FloodResult>, case: &FloodCase) -> String {
    let responsive = case
        .responsive_after_post_s
        .map_or_else(|| "**NO ANSWER in 10 s**".into(), number);
    let guard = if case.rss_guard_tripped {
        " (RSS guard stopped the flood)"
    } else {
        ""
    };
    format!(
        "| {} | {} | {} | {} | {} → {} → {}{guard} | {} → {} | {} | {} / {} | {} | {responsive} |",
        case_name(case),
        who(row),
        number(case.achieved_ev_s),
        maybe(case.daemon_flood.map(|window| window.cpu_pct_mean)),
        maybe(case.daemon_pre.map(|window| window.rss_mib_end)),
        maybe(case.rss_peak()),
        maybe(case.daemon_post.map(|window| window.rss_mib_end)),
        maybe(case.others_pre.latency.p99_us),
        probe_cell(&case.others_flood),
        probe_cell(&case.flooded_flood),
        number(case.others_flood.success_rate),
        number(case.flooded_flood.success_rate),
        case.listener
            .map_or_else(|| "–".into(), |count| count.received.to_string())
    )
}

/// `p99 (max)`, or how the probe got stuck.
fn probe_cell(probe: &ProbeResult) -> String {
    let latency = &probe.latency;
    if probe.setup_stuck {
        "NO ANSWER (could not connect)".into()
    } else if let Some(age) = probe.stuck_call_age_s {
        format!(
            "{} ({}) + a call stuck {} s",
            maybe(latency.p99_us),
            maybe(latency.max_us),
            number(age)
        )
    } else {
        format!("{} ({})", maybe(latency.p99_us), maybe(latency.max_us))
    }
}

/// ferrovirtd's listener got fewer RTC_CHANGE events by design.
fn throttle_note(doc: &mut Doc, rows: &[Row<FloodResult>]) {
    let received: Vec<u64> = rows
        .iter()
        .filter(|row| row.daemon == DaemonKind::Ferrovirtd)
        .filter_map(Row::done)
        .flat_map(|result| result.cases.iter().filter_map(Outcome::done))
        .filter(|case| {
            case.event == FloodEvent::RtcChange && case.listener_mode == ListenerMode::Live
        })
        .filter_map(|case| case.listener.map(|count| count.received))
        .collect();
    if !received.is_empty() && received.iter().all(|count| *count > 0) {
        doc.line(
            "\n**Listener counts differ by design:** ferrovirtd delivers RTC_CHANGE (and BALLOON_CHANGE, WATCHDOG, I/O errors) \
            at most once per 100 ms per VM (per disk for I/O errors), keeping the newest value (the driver's event throttle); \
            libvirtd forwards every event. A client of ferrovirtd sees the same final offset with far fewer messages.",
        );
    }
}

/// Both daemons behind the same proxy, case by case: ratios, and the
/// comparisons for the verdict.
fn ratios_table(
    doc: &mut Doc,
    findings: &mut Findings,
    ferrovirtd: &FloodResult,
    libvirtd: &FloodResult,
) {
    doc.paragraph("\nRatios, like for like (both daemons with real QEMU behind the same proxy):");
    doc.table(&[
        "event rate / listener",
        "achieved ev/s",
        "CPU %",
        "RSS peak",
        "quiet VMs p99 (flood)",
        "flooded VM p99 (flood)",
    ]);
    let done = |result: &FloodResult| -> Vec<Option<FloodCase>> {
        result
            .cases
            .iter()
            .map(|case| case.done().cloned())
            .collect()
    };
    for (ferro, libvirt) in done(ferrovirtd).iter().zip(done(libvirtd).iter()) {
        if let (Some(ferro), Some(libvirt)) = (ferro, libvirt) {
            doc.line(ratio_row(findings, ferro, libvirt));
        }
    }
}

/// libvirtd stopped answering its probes during the flood.
fn wedged(case: &FloodCase) -> bool {
    case.others_flood.setup_stuck || case.others_flood.stuck_call_age_s.is_some()
}

fn ratio_row(findings: &mut Findings, ferro: &FloodCase, libvirt: &FloodCase) -> String {
    let key = case_name(ferro);
    let libvirt_wedged = wedged(libvirt);
    let answered = |value: Option<f64>| if libvirt_wedged { None } else { value };
    // Both at the target rate is a tie, not a comparison.
    let target = ferro.target_ev_s as f64 * 0.97;
    let short = |case: &FloodCase| case.achieved_ev_s < target;
    let achieved =
        |case: &FloodCase| (short(ferro) || short(libvirt)).then_some(case.achieved_ev_s);
    let cpu = |case: &FloodCase| case.daemon_flood.map(|window| window.cpu_pct_mean);
    let items = [
        ("achieved ev/s", achieved(ferro), achieved(libvirt), true),
        ("daemon CPU %", cpu(ferro), cpu(libvirt), false),
        ("RSS peak", ferro.rss_peak(), libvirt.rss_peak(), false),
        (
            "quiet VMs p99",
            ferro.others_flood.latency.p99_us,
            answered(libvirt.others_flood.latency.p99_us),
            false,
        ),
        (
            "flooded VM p99",
            ferro.flooded_flood.latency.p99_us,
            answered(libvirt.flooded_flood.latency.p99_us),
            false,
        ),
    ];
    if !libvirt_wedged {
        let max = |probe: &ProbeResult| probe.latency.max_us;
        findings.comparisons.push(Comparison::tail(
            format!("flood {key}: quiet VMs max"),
            max(&ferro.others_flood),
            max(&libvirt.others_flood),
        ));
        findings.comparisons.push(Comparison::tail(
            format!("flood {key}: flooded VM max"),
            max(&ferro.flooded_flood),
            max(&libvirt.flooded_flood),
        ));
    }
    let mut line = format!("| {key} |");
    for (figure, ferrovirtd, libvirtd, higher_is_better) in items {
        let note = (libvirt_wedged && libvirtd.is_none() && figure.ends_with("p99"))
            .then(|| "libvirtd stopped answering".to_owned());
        let cell = if note.is_some() {
            "libvirtd: no answer".to_owned()
        } else if figure == "achieved ev/s" && ferrovirtd.is_none() && libvirtd.is_none() {
            "both at target".to_owned()
        } else {
            ratio(ferrovirtd, libvirtd)
        };
        line.push_str(&format!(" {cell} |"));
        findings.comparisons.push(Comparison {
            what: format!("flood {key}: {figure}"),
            ferrovirtd,
            libvirtd,
            higher_is_better,
            libvirtd_note: note,
            tail: false,
        });
    }
    line
}
