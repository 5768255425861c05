//! Section 8: guest networking (ferrovirtd alone, in a namespace).

use crate::results::{NicsResult, Outcome, Row};

use super::format::maybe;
use super::{Doc, who};

pub(super) fn section(doc: &mut Doc, rows: &[Row<NicsResult>]) {
    doc.paragraph("## 8. Guest networking (ferrovirtd alone)");
    doc.paragraph(
        "Inside a network namespace the bench creates: an isolated network with DHCP \
         (bridge, dnsmasq) started and destroyed one call at a time; then a diskless guest \
         (real QEMU) started and destroyed without a NIC and with one NIC on that network \
         (the daemon creates the tap and QEMU inherits it). libvirtd 9.0 is not measured: \
         its network driver needs iptables or firewalld to start a network, which this host \
         lacks, and the libvirt harness runs libvirtd in the host's own namespace. \
         Latencies in µs, p50 / p99.",
    );
    doc.table(&[
        "daemon",
        "rounds",
        "net-start",
        "net-destroy",
        "start, no NIC",
        "start, one NIC",
        "destroy, no NIC",
        "destroy, one NIC",
    ]);
    for row in rows {
        match &row.outcome {
            Outcome::Done(r) => {
                let pair = |l: &crate::stats::LatencySummary| {
                    format!("{} / {}", maybe(l.p50_us), maybe(l.p99_us))
                };
                doc.line(format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    who(row),
                    r.rounds,
                    pair(&r.network_start),
                    pair(&r.network_stop),
                    pair(&r.guest_start_plain),
                    pair(&r.guest_start_nic),
                    pair(&r.guest_destroy_plain),
                    pair(&r.guest_destroy_nic),
                ));
            }
            Outcome::Failed { error } => {
                doc.line(format!("| {} | error: {error} |||||||", who(row)));
            }
        }
    }
    doc.line("");
}
