//! What a scrape reports, in Prometheus' text format through
//! `prometheus-client`: the daemon's health, aggregated (a fixed set of
//! series, whatever the number of VMs and clients), and each VM's guest
//! statistics from the driver's cache.
//!
//! Cardinality: health series are fixed (job kinds and procedures are
//! closed lists); per-VM series are 6 per VM plus 4 per disk, labelled by
//! domain name and UUID only, so 10,000 VMs with one disk each are 100,000
//! series, and nothing is labelled by client or by event.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use qemu::{Driver, HealthSnapshot};
use rpc::ServerMetrics;
use rpc::protocol::remote::procedure_name;
use telemetry::HistogramSnapshot;

/// Everything a scrape reads.
#[derive(Clone)]
pub(crate) struct Sources {
    pub(crate) driver: Driver,
    pub(crate) server: Arc<ServerMetrics>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sources")
    }
}

/// The exposition text of one scrape.
pub(crate) fn render(src: &Sources) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix("ferrovirt");
    registry.register_collector(Box::new(Health(src.clone())));
    registry.register_collector(Box::new(Guests(src.driver.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

type Enc<'a> = DescriptorEncoder<'a>;

fn counter(e: &mut Enc<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut Enc<'_>, name: &str, help: &str, v: f64) -> fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A histogram in the encoder's form: per-bucket counts, then +Inf.
fn buckets(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut prev = 0;
    let mut v: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|(le, cum)| {
            let n = cum.saturating_sub(prev);
            prev = *cum;
            (*le, n)
        })
        .collect();
    v.push((f64::MAX, h.count.saturating_sub(prev)));
    v
}

/// Histograms of one family, one per label value.
fn histograms<'a>(
    e: &mut Enc<'_>,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, &'a HistogramSnapshot)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (value, h) in series {
        let labels = [(label, value)];
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            h.sum,
            h.count,
            &buckets(h),
            None,
        )?;
    }
    Ok(())
}

fn histogram(e: &mut Enc<'_>, name: &str, help: &str, h: &HistogramSnapshot) -> fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets(h), None)
}

/// The daemon's own health.
#[derive(Debug)]
struct Health(Sources);

impl Collector for Health {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let h = self.0.driver.health();
        driver_health(&mut e, &h)?;
        jobs(&mut e, &h)?;
        stats_poller(&mut e, &h, &self.0.driver)?;
        clients(&mut e, &self.0.server)
    }
}

fn driver_health(e: &mut Enc<'_>, h: &HealthSnapshot) -> fmt::Result {
    gauge(
        e,
        "domains",
        "Domains defined or running.",
        h.domains as f64,
    )?;
    gauge(
        e,
        "domains_active",
        "Domains running.",
        h.active_domains as f64,
    )?;
    gauge(
        e,
        "event_queue_depth",
        "QMP events queued in all VMs' event queues now.",
        h.event_queue_depth as f64,
    )?;
    gauge(
        e,
        "event_queue_high_water",
        "The most QMP events one VM's queue has held at once.",
        h.event_queue_high_water as f64,
    )?;
    counter(
        e,
        "event_overflows",
        "Times a VM's QMP event queue overflowed: events were coalesced and the VM's state re-read.",
        h.event_overflows,
    )?;
    counter(
        e,
        "events_dropped",
        "QMP events not delivered one by one (coalesced in an overflow).",
        h.events_dropped,
    )?;
    counter(
        e,
        "events_coalesced",
        "Guest-triggered events the throttle replaced with a newer one of the same kind.",
        h.events_coalesced,
    )?;
    histogram(
        e,
        "monitor_round_trip_seconds",
        "Round trip of QMP commands, answered or not.",
        &h.monitor_rtt,
    )?;
    counter(
        e,
        "monitor_deadline_misses",
        "QMP commands that got no answer within their deadline.",
        h.monitor_timeouts,
    )?;
    gauge(
        e,
        "monitors_unresponsive",
        "Running VMs whose monitor missed its last deadline.",
        h.unresponsive_monitors as f64,
    )
}

fn jobs(e: &mut Enc<'_>, h: &HealthSnapshot) -> fmt::Result {
    let wait = h.job_wait.iter().map(|(k, s)| (*k, s));
    histograms(
        e,
        "job_wait_seconds",
        "Time jobs waited for their domain's job lock, by kind.",
        "kind",
        wait,
    )?;
    let hold = h.job_hold.iter().map(|(k, s)| (*k, s));
    histograms(
        e,
        "job_hold_seconds",
        "Time jobs held their domain's job lock, by kind.",
        "kind",
        hold,
    )?;
    let oldest = h.oldest_job.map_or(0.0, |d| d.as_secs_f64());
    gauge(
        e,
        "oldest_job_age_seconds",
        "How long the longest-held job now has been held (0: none).",
        oldest,
    )
}

fn stats_poller(e: &mut Enc<'_>, h: &HealthSnapshot, d: &Driver) -> fmt::Result {
    let cfg = d.stats_config();
    gauge(
        e,
        "stats_interval_seconds",
        "Time between two statistics rounds of one VM.",
        cfg.interval.as_secs_f64(),
    )?;
    gauge(
        e,
        "stats_max_age_seconds",
        "The oldest a VM's statistics can be while it answers; older is stale.",
        d.stats_max_age().as_secs_f64(),
    )?;
    counter(e, "stats_rounds", "Statistics rounds run.", h.stats_rounds)?;
    counter(
        e,
        "stats_round_failures",
        "Statistics rounds that got no answer.",
        h.stats_round_failures,
    )?;
    histogram(
        e,
        "stats_round_seconds",
        "Duration of statistics rounds.",
        &h.stats_round_time,
    )?;
    gauge(
        e,
        "stats_stale_domains",
        "Running VMs whose statistics are stale now.",
        h.stale_stats as f64,
    )
}

fn clients(e: &mut Enc<'_>, m: &ServerMetrics) -> fmt::Result {
    gauge(e, "clients", "Clients connected.", m.clients() as f64)?;
    counter(
        e,
        "client_connections",
        "Connections accepted.",
        m.connections.get(),
    )?;
    counter(
        e,
        "clients_rejected",
        "Connections closed at once because max_clients were connected.",
        m.rejected.get(),
    )?;
    counter(
        e,
        "clients_dropped_slow",
        "Clients disconnected for not reading (output queue full).",
        m.dropped_slow.get(),
    )?;
    gauge(
        e,
        "client_output_queue_messages",
        "Messages waiting in all clients' output queues.",
        m.queued_messages() as f64,
    )?;
    gauge(
        e,
        "client_output_queue_high_water",
        "The most messages one client's output queue has held.",
        m.queue_high_water.get() as f64,
    )?;
    let calls = m.call_latency();
    let named = calls
        .iter()
        .map(|(p, h)| (procedure_name(*p).unwrap_or("UNKNOWN"), h));
    histograms(
        e,
        "rpc_duration_seconds",
        "Time from reading a call to queuing its reply, by procedure.",
        "procedure",
        named,
    )
}

/// Each VM's guest statistics.
struct Guests(Driver);

impl fmt::Debug for Guests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guests")
    }
}

impl Collector for Guests {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let d = &self.0;
        let doms: Vec<_> = d
            .all_domains()
            .into_iter()
            .map(|dom| {
                let s = d.stats(&dom);
                (label_value(dom.name()), dom.uuid().to_string(), s)
            })
            .collect();
        per_vm(&mut e, &doms)
    }
}

type Vm = (String, String, qemu::DomainStats);

/// A label value as the text format wants it: the encoder writes values
/// as they are, and a domain name may hold `"`, `\` or a newline.
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn vm_gauge(
    e: &mut Enc<'_>,
    name: &str,
    help: &str,
    doms: &[Vm],
    f: impl Fn(&qemu::DomainStats) -> Option<f64>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (n, u, s) in doms {
        if let Some(v) = f(s) {
            let labels = [("domain", n.as_str()), ("uuid", u.as_str())];
            ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn vm_counter(
    e: &mut Enc<'_>,
    name: &str,
    help: &str,
    doms: &[Vm],
    f: impl Fn(&qemu::DomainStats) -> Option<f64>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (n, u, s) in doms {
        if let Some(v) = f(s) {
            let labels = [("domain", n.as_str()), ("uuid", u.as_str())];
            ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn per_vm(e: &mut Enc<'_>, doms: &[Vm]) -> fmt::Result {
    vm_gauge(
        e,
        "domain_state",
        "libvirt's virDomainState of the domain.",
        doms,
        |s| Some(f64::from(s.state.state.as_i32())),
    )?;
    vm_gauge(
        e,
        "domain_stats_stale",
        "1 when the domain's statistics are stale.",
        doms,
        |s| s.active.then_some(f64::from(u8::from(s.freshness.stale))),
    )?;
    vm_gauge(
        e,
        "domain_stats_age_seconds",
        "Age of the domain's statistics.",
        doms,
        |s| s.freshness.age.map(|a| a.as_secs_f64()),
    )?;
    vm_counter(
        e,
        "domain_cpu_seconds",
        "CPU time of the domain's QEMU.",
        doms,
        |s| s.sample.as_ref()?.cpu.map(|c| c.total_ns as f64 / 1e9),
    )?;
    vm_gauge(
        e,
        "domain_balloon_bytes",
        "Memory the guest has (balloon).",
        doms,
        |s| Some(s.sample.as_ref()?.balloon.as_ref()?.current_kib as f64 * 1024.0),
    )?;
    vm_gauge(
        e,
        "domain_rss_bytes",
        "Resident memory of the domain's QEMU.",
        doms,
        |s| Some(s.sample.as_ref()?.rss_kib? as f64 * 1024.0),
    )?;
    disks(e, doms)
}

fn disks(e: &mut Enc<'_>, doms: &[Vm]) -> fmt::Result {
    type Pick = fn(&qemu::BlockCounters) -> Option<u64>;
    let families: [(&str, &str, Pick); 4] = [
        (
            "domain_block_read_bytes",
            "Bytes read from the disk.",
            |c| c.rd_bytes,
        ),
        (
            "domain_block_write_bytes",
            "Bytes written to the disk.",
            |c| c.wr_bytes,
        ),
        (
            "domain_block_read_requests",
            "Read requests of the disk.",
            |c| c.rd_reqs,
        ),
        (
            "domain_block_write_requests",
            "Write requests of the disk.",
            |c| c.wr_reqs,
        ),
    ];
    for (name, help, pick) in families {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (n, u, s) in doms {
            let Some(sample) = s.sample.as_ref() else {
                continue;
            };
            for b in sample.blocks.iter().filter(|b| b.backing_index == 0) {
                if let Some(v) = pick(&b.counters) {
                    let labels = [
                        ("domain", n.as_str()),
                        ("uuid", u.as_str()),
                        ("disk", b.target.as_str()),
                    ];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("plain-vm"), "plain-vm");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn buckets_become_per_bucket_counts_with_inf() {
        let h = HistogramSnapshot {
            buckets: vec![(0.1, 1), (1.0, 3)],
            count: 4,
            sum: 5.0,
        };
        assert_eq!(buckets(&h), vec![(0.1, 1), (1.0, 2), (f64::MAX, 1)]);
    }
}
