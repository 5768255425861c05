//! Event flood: a fake QEMU writes events as fast as it can while the client
//! issues commands. Replies must keep flowing and memory must stay flat.
//!
//! Figures are printed (run with `--nocapture`); assertions are generous
//! because the test machine is small and shared.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use qmp::commands::QueryStatus;
use qmp::{Config, EventItem, EventLimits, Events, Monitor};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const FLOOD: Duration = Duration::from_secs(3);
const BATCH: usize = 100;

fn reply_line(id: &Value) -> String {
    format!("{{\"return\": {{\"running\": true, \"status\": \"running\"}}, \"id\": {id}}}\n")
}

/// Fake QEMU, reader side: the id of every command, to the writer.
fn read_command_ids(mut r: BufReader<OwnedReadHalf>) -> mpsc::UnboundedReceiver<Value> {
    let (id_tx, id_rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        let _ = id_tx.send(v["id"].clone());
                    }
                }
            }
        }
    });
    id_rx
}

/// Pre-rendered batches of four kinds of events: the fake must be cheap,
/// or it (not the client) limits the rate.
fn event_batches() -> Vec<String> {
    (0..16u64)
        .map(|b| {
            let mut s = String::new();
            for k in 0..BATCH as u64 {
                let i = b * BATCH as u64 + k;
                let line = match i % 4 {
                    0 => event_line(
                        "JOB_STATUS_CHANGE",
                        &json!({"id": format!("job{}", i % 50), "status": "running"}),
                    ),
                    1 => event_line("BALLOON_CHANGE", &json!({"actual": i})),
                    2 => event_line(
                        "BLOCK_IO_ERROR",
                        &json!({"device": format!("disk{}", i % 7), "node-name": "n", "operation": "write", "action": "report", "nospace": false, "reason": "Input/output error"}),
                    ),
                    _ => event_line(
                        "RTC_CHANGE",
                        &json!({"offset": i, "qom-path": "/machine/unattached/device[0]"}),
                    ),
                };
                s.push_str(&line);
                s.push('\n');
            }
            s
        })
        .collect()
}

/// Fake QEMU, writer side: replies as soon as possible, events otherwise,
/// until `stop_flood`; then replies only. Counts the events written.
fn write_replies_and_events(
    mut w: OwnedWriteHalf,
    mut id_rx: mpsc::UnboundedReceiver<Value>,
    stop_flood: Arc<AtomicBool>,
    events_written: Arc<AtomicU64>,
) -> JoinHandle<()> {
    let batches = event_batches();
    tokio::spawn(async move {
        let mut buf = String::with_capacity(64 * 1024);
        let mut i: usize = 0;
        loop {
            buf.clear();
            let flooding = !stop_flood.load(Ordering::Relaxed);
            while let Ok(id) = id_rx.try_recv() {
                buf.push_str(&reply_line(&id));
            }
            if flooding {
                i += 1;
                buf.push_str(&batches[i % batches.len()]);
                events_written.fetch_add(BATCH as u64, Ordering::Relaxed);
            } else if buf.is_empty() {
                match id_rx.recv().await {
                    Some(id) => buf.push_str(&reply_line(&id)),
                    None => return,
                }
            }
            if w.write_all(buf.as_bytes()).await.is_err() {
                return;
            }
        }
    })
}

/// What the slow consumer got: events and overflow notices.
#[derive(Default)]
struct Delivered {
    events: AtomicU64,
    overflows: AtomicU64,
}

/// A deliberately slow consumer, so the queue overflows again and again.
fn consume_slowly(mut events: Events, delivered: Arc<Delivered>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            batch.clear();
            if events.recv_many(&mut batch, 256).await == 0 {
                return;
            }
            for item in &batch {
                match item {
                    EventItem::Event(_) => delivered.events.fetch_add(1, Ordering::Relaxed),
                    EventItem::Overflow(_) => delivered.overflows.fetch_add(1, Ordering::Relaxed),
                };
            }
            // Simulated slow handling, not synchronisation.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// The highest RSS of this process and the highest memory the monitor
/// accounts for (event queue, coalesced events, read buffer), sampled
/// every 20 ms until stopped.
struct MemorySampler {
    rss_start: u64,
    max_rss: Arc<AtomicU64>,
    max_accounted: Arc<AtomicUsize>,
    sampling: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl MemorySampler {
    fn start(mon: &Monitor) -> MemorySampler {
        let rss_start = rss_kib();
        let max_rss = Arc::new(AtomicU64::new(rss_start));
        let max_accounted = Arc::new(AtomicUsize::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let task = {
            let (mon, max_rss, max_accounted, sampling) = (
                mon.clone(),
                max_rss.clone(),
                max_accounted.clone(),
                sampling.clone(),
            );
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    max_rss.fetch_max(rss_kib(), Ordering::Relaxed);
                    let s = mon.stats();
                    max_accounted.fetch_max(
                        s.events.queued_bytes + s.events.coalesced_bytes + s.read_buffer_capacity,
                        Ordering::Relaxed,
                    );
                    // Sampling pace, not synchronisation.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        MemorySampler {
            rss_start,
            max_rss,
            max_accounted,
            sampling,
            task,
        }
    }

    /// Stops sampling: (RSS at start, highest RSS, highest accounted bytes).
    async fn finish(self) -> (u64, u64, usize) {
        self.sampling.store(false, Ordering::Relaxed);
        within("sampler", self.task).await.expect("sampler");
        (
            self.rss_start,
            self.max_rss.load(Ordering::Relaxed),
            self.max_accounted.load(Ordering::Relaxed),
        )
    }
}

/// Commands during the flood: 4 concurrent callers, until FLOOD passed
/// since `t0`; returns every latency, sorted.
async fn call_during_flood(mon: &Monitor, t0: Instant) -> Vec<Duration> {
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mon = mon.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while t0.elapsed() < FLOOD {
                    let t = Instant::now();
                    let st = mon
                        .execute(&QueryStatus)
                        .await
                        .expect("command during flood");
                    assert!(st.running);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for c in callers {
        lat.extend(within("callers", c).await.expect("caller task"));
    }
    lat.sort();
    lat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_flow_and_memory_stays_flat_during_flood() {
    let limits = EventLimits::default();
    let cfg = Config {
        command_timeout: DEADLINE,
        greeting_timeout: DEADLINE,
        events: limits,
        ..Config::default()
    };
    let (mon, events, fake) = connected(cfg).await;
    let FakeQemu { r, w } = fake;
    let stop_flood = Arc::new(AtomicBool::new(false));
    let events_written = Arc::new(AtomicU64::new(0));
    let writer = write_replies_and_events(
        w,
        read_command_ids(r),
        stop_flood.clone(),
        events_written.clone(),
    );
    let delivered = Arc::new(Delivered::default());
    let consumer = consume_slowly(events, delivered.clone());
    let sampler = MemorySampler::start(&mon);

    let t0 = Instant::now();
    let lat = call_during_flood(&mon, t0).await;
    let elapsed = t0.elapsed();
    stop_flood.store(true, Ordering::Relaxed);
    let stats = mon.stats();
    let (rss_start, rss_max, max_accounted) = sampler.finish().await;

    let received = stats.events.received_total;
    let rate = received as f64 / elapsed.as_secs_f64();
    println!(
        "flood: {} events written, {} parsed in {:.2?} = {:.0} events/s parsed; delivered {} + {} overflows",
        events_written.load(Ordering::Relaxed),
        received,
        elapsed,
        rate,
        delivered.events.load(Ordering::Relaxed),
        delivered.overflows.load(Ordering::Relaxed)
    );
    println!(
        "flood: {} commands, latency p50 {:?} p99 {:?} max {:?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    println!(
        "flood: RSS start {} KiB, max {} KiB (growth {} KiB); max accounted queue+coalesced+read buffer {} bytes",
        rss_start,
        rss_max,
        rss_max.saturating_sub(rss_start),
        max_accounted
    );

    assert!(!lat.is_empty(), "no command completed during the flood");
    assert!(
        received > 10_000,
        "flood too small to mean anything: {received}"
    );
    assert_eq!(stats.pending, 0);
    assert!(
        max_accounted <= 2 * limits.max_bytes + 2 * 1024 * 1024,
        "accounted memory over bound"
    );
    assert!(
        rss_max.saturating_sub(rss_start) < 64 * 1024,
        "RSS grew by {} KiB",
        rss_max - rss_start
    );

    mon.close();
    within("consumer", consumer).await.expect("consumer");
    within("writer", writer).await.expect("writer");
}
