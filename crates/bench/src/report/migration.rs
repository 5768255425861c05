//! Section 9: live migration, ferrovirtd and libvirtd each between two
//! instances of itself in a namespace.

use crate::results::{MigrationFlood, MigrationResult, Outcome, Row};

use super::format::maybe;
use super::{Doc, who};

pub(super) fn section(doc: &mut Doc, rows: &[Row<MigrationResult>]) {
    doc.paragraph("## 9. Live migration");
    doc.paragraph(
        "Two daemons of one kind inside a network namespace the bench creates, each with a \
         plain-TCP listener on its loopback (libvirtd 9.0: two instances with their own state, \
         `host_uuid` and QEMU driver alone, started by `scripts/libvirtd-pair.sh`; QEMU's \
         stream sent to 127.0.0.1 with `--migrateuri`). Guests are moved back and forth with \
         `virsh migrate --live` (client-driven: begin, prepare, perform, finish, confirm), the \
         same QEMU for both daemons. Total is the virsh command end to end; downtime is what \
         QEMU measured, as the source's completed-job statistics report it (both daemons \
         migrate with `--persistent`, so each side keeps the guest and its statistics). First an idle \
         diskless guest (64 MiB, in its firmware); then the tiny test guest (192 MiB, direct \
         kernel boot), idle, and rewriting 32 MiB of random bytes without pause, pre-copy \
         and switched to post-copy after the first pass (`--postcopy \
         --postcopy-after-precopy`). QEMU runs as root under both daemons (post-copy needs \
         userfaultfd, which QEMU 7.2 may use unprivileged only where \
         `vm.unprivileged_userfaultfd = 1`). Microseconds, p50 / p99.",
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
    guests_table(doc, rows);
    for row in rows {
        if let Some(flood) = row.outcome.done().and_then(|r| r.flood.as_ref()) {
            flood_section(doc, row, flood);
        }
    }
}

/// The tiny guest's cases, every daemon's rows side by side.
fn guests_table(doc: &mut Doc, rows: &[Row<MigrationResult>]) {
    let cases: Vec<_> = rows
        .iter()
        .filter_map(|row| row.outcome.done().map(|r| (row, r)))
        .flat_map(|(row, r)| r.guests.iter().map(move |g| (row, g)))
        .collect();
    if cases.is_empty() {
        return;
    }
    doc.table(&["daemon", "guest", "migrations", "total", "downtime"]);
    // Each guest's rows together, in the order they ran.
    let mut guests: Vec<&str> = Vec::new();
    for (_, g) in &cases {
        if !guests.contains(&g.guest.as_str()) {
            guests.push(&g.guest);
        }
    }
    let ordered = guests
        .iter()
        .flat_map(|name| cases.iter().filter(move |(_, g)| g.guest == *name));
    for &(row, g) in ordered {
        let pair =
            |l: &crate::stats::LatencySummary| format!("{} / {}", maybe(l.p50_us), maybe(l.p99_us));
        let error = g
            .error
            .as_deref()
            .map(|e| format!(" (then: {e})"))
            .unwrap_or_default();
        doc.line(format!(
            "| {} | {}{error} | {} | {} | {} |",
            who(row),
            g.guest,
            g.rounds,
            pair(&g.total),
            pair(&g.downtime),
        ));
    }
    doc.line("");
}

/// The migration under an event flood, and the destroy during one.
fn flood_section(doc: &mut Doc, row: &Row<MigrationResult>, flood: &Outcome<MigrationFlood>) {
    let f = match flood {
        Outcome::Done(f) => f,
        Outcome::Failed { error } => {
            doc.paragraph(format!(
                "Migration under an event flood ({}): error: {error}",
                who(row)
            ));
            return;
        }
    };
    doc.paragraph(format!(
        "Migration under an event flood ({}): a qemu-sim VM migrating (its migration lasts \
         {} s, set by qemu-sim, not by bandwidth) while it sends RTC_CHANGE at {} events/s \
         (achieved {}), beside quiet qemu-sim VMs; `virsh migrate` took {} s. GET_INFO \
         probes, microseconds p50 / p99. Then a second flooded migration whose source VM is \
         destroyed part-way: destroy {} ms, the destination cleared in {} ms.",
        who(row),
        f.sim_job_s,
        f.target_ev_s,
        f.achieved_ev_s,
        f.migrate_s,
        f.destroy_ms,
        maybe(f.destination_cleared_s.map(|s| s * 1e3)),
    ));
    doc.table(&[
        "probed",
        "idle",
        "during the flooded migration",
        "errors during",
    ]);
    let pair =
        |l: &crate::stats::LatencySummary| format!("{} / {}", maybe(l.p50_us), maybe(l.p99_us));
    for (what, idle, during) in [
        ("the migrating VM", &f.idle_migrating, &f.during_migrating),
        ("the quiet VMs", &f.idle_others, &f.during_others),
    ] {
        doc.line(format!(
            "| {what} | {} | {} | {} |",
            pair(&idle.latency),
            pair(&during.latency),
            during.errors
        ));
    }
    doc.line("");
}
