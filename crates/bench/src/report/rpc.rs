//! Section 1: RPC latency and throughput, and the cost of starting VMs.

use crate::client::LoadFigures;
use crate::daemon::{DaemonKind, Emu};
use crate::results::{Report, Row, RpcCell, RpcResult, RpcStart};

use super::compare::{Comparison, Findings};
use super::format::{maybe, number, ratio};
use super::{Doc, figures_of};

pub(super) fn section(
    doc: &mut Doc,
    findings: &mut Findings,
    rows: &[Row<RpcResult>],
    report: &Report,
) {
    let ferrovirtd = rows
        .iter()
        .find(|row| row.daemon == DaemonKind::Ferrovirtd && row.done().is_some());
    let libvirtd = figures_of(rows, DaemonKind::Libvirtd, Emu::Real);
    doc.paragraph("## 1. RPC latency and throughput");
    doc.paragraph(format!(
        "N paused VMs ({}), closed loop for {} s per cell, round-robin over all N VMs; \
        each client has its own connection. Figures: ops/s, then p50 / p99 / max in µs.",
        ferrovirtd.map(|row| row.qemu.label()).unwrap_or_default(),
        number(report.params.cell_s)
    ));
    let ferrovirtd = ferrovirtd.and_then(Row::done);
    cells_table(doc, findings, ferrovirtd, libvirtd);
    starts_table(doc, ferrovirtd, libvirtd);
}

/// The closed-loop cells of both daemons, matched by N, call and clients.
fn cells_table(
    doc: &mut Doc,
    findings: &mut Findings,
    ferrovirtd: Option<&RpcResult>,
    libvirtd: Option<&RpcResult>,
) {
    doc.table(&[
        "N",
        "call",
        "clients",
        "ferrovirtd ops/s",
        "p50 / p99 / max µs",
        "libvirtd ops/s",
        "p50 / p99 / max µs",
        "ops/s ratio",
        "p99 ratio",
    ]);
    let cells = |result: Option<&RpcResult>| {
        result
            .map(|result| result.cells.clone())
            .unwrap_or_default()
    };
    let (ferrovirtd_cells, libvirtd_cells) = (cells(ferrovirtd), cells(libvirtd));
    let keys = if ferrovirtd_cells.is_empty() {
        &libvirtd_cells
    } else {
        &ferrovirtd_cells
    };
    for key in keys {
        let same = |cell: &&RpcCell| {
            cell.n_vms == key.n_vms
                && cell.load.op == key.load.op
                && cell.load.conns == key.load.conns
        };
        let ferro = ferrovirtd_cells.iter().find(same).map(|cell| &cell.load);
        let libvirt = libvirtd_cells.iter().find(same).map(|cell| &cell.load);
        let ops = |load: Option<&LoadFigures>| load.map(|load| load.ops_per_s);
        let p99 = |load: Option<&LoadFigures>| load.and_then(|load| load.latency.p99_us);
        let whole =
            |value: Option<f64>| value.map_or_else(|| "–".into(), |value| format!("{value:.0}"));
        doc.line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            key.n_vms,
            key.load.op.name(),
            key.load.conns,
            whole(ops(ferro)),
            latencies(ferro),
            whole(ops(libvirt)),
            latencies(libvirt),
            ratio(ops(ferro), ops(libvirt)),
            ratio(p99(ferro), p99(libvirt))
        ));
        if let (Some(ferro), Some(libvirt)) = (ferro, libvirt) {
            compare_cell(findings, key, ferro, libvirt);
        }
    }
}

/// `p50 / p99 / max` of a cell.
fn latencies(load: Option<&LoadFigures>) -> String {
    load.map_or_else(
        || "–".into(),
        |load| {
            let latency = &load.latency;
            format!(
                "{} / {} / {}",
                maybe(latency.p50_us),
                maybe(latency.p99_us),
                maybe(latency.max_us)
            )
        },
    )
}

fn compare_cell(
    findings: &mut Findings,
    key: &RpcCell,
    ferro: &LoadFigures,
    libvirt: &LoadFigures,
) {
    let what = |figure: &str| {
        format!(
            "rpc N={} {} ×{}: {figure}",
            key.n_vms,
            key.load.op.name(),
            key.load.conns
        )
    };
    findings.comparisons.push(Comparison {
        higher_is_better: true,
        ..Comparison::lower(
            what("ops/s"),
            Some(ferro.ops_per_s),
            Some(libvirt.ops_per_s),
        )
    });
    findings.comparisons.push(Comparison::lower(
        what("p99"),
        ferro.latency.p99_us,
        libvirt.latency.p99_us,
    ));
    findings.comparisons.push(Comparison::tail(
        what("max"),
        ferro.latency.max_us,
        libvirt.latency.max_us,
    ));
}

/// Starting the VMs, step by step, and the daemons' memory after each.
fn starts_table(doc: &mut Doc, ferrovirtd: Option<&RpcResult>, libvirtd: Option<&RpcResult>) {
    doc.paragraph(
        "\nStarting the VMs (define + start paused, 4 calls in flight) and daemon memory after each step:",
    );
    doc.table(&[
        "N",
        "ferrovirtd start s (per VM p50/p99 ms)",
        "RSS MiB / threads",
        "libvirtd start s (per VM p50/p99 ms)",
        "RSS MiB / threads",
    ]);
    let ferrovirtd_starts = starts_of(ferrovirtd);
    let libvirtd_starts = starts_of(libvirtd);
    for step in 0..ferrovirtd_starts.len().max(libvirtd_starts.len()) {
        let count = ferrovirtd_starts
            .get(step)
            .or(libvirtd_starts.get(step))
            .map(|start| start.running);
        doc.line(format!(
            "| {} | {} | {} | {} | {} |",
            count.map_or_else(|| "–".into(), |count| count.to_string()),
            start_cell(ferrovirtd_starts.get(step)),
            memory_after(ferrovirtd, count),
            start_cell(libvirtd_starts.get(step)),
            memory_after(libvirtd, count)
        ));
    }
    doc.line("");
}

fn starts_of(result: Option<&RpcResult>) -> &[RpcStart] {
    result
        .map(|result| result.starts.as_slice())
        .unwrap_or_default()
}

/// `+N VMs: total (p50 / p99)`.
fn start_cell(start: Option<&RpcStart>) -> String {
    start.map_or_else(
        || "–".into(),
        |start| {
            let figures = &start.start;
            format!(
                "+{} VMs: {} ({} / {})",
                figures.vms,
                number(figures.total_s),
                number(figures.per_vm_ms_p50),
                number(figures.per_vm_ms_p99)
            )
        },
    )
}

/// `RSS / threads` of the daemon once `count` VMs ran.
fn memory_after(result: Option<&RpcResult>, count: Option<usize>) -> String {
    let cell = result.and_then(|result| result.cells.iter().find(|cell| Some(cell.n_vms) == count));
    match cell {
        None => "–".into(),
        Some(cell) => {
            let memory = cell.daemon_after_start;
            format!(
                "{} / {}",
                maybe(memory.map(|memory| memory.rss_mib)),
                memory.map_or_else(|| "–".into(), |memory| memory.threads.to_string())
            )
        }
    }
}
