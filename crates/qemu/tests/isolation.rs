//! Isolation and bounded memory (docs/REQUIREMENTS.md 1 and 2) with
//! qemu-sim: one VM flooding 100k events/s and one whose monitor hangs do
//! not delay queries or monitor operations on 50 other VMs, and the flood
//! does not grow the driver's memory.
//! (Own test binary, so the RSS figures are this driver's alone.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use qemu::{Domain, DomainState, Driver};
use testkit::latency::Percentiles;
use tokio::task::JoinSet;

const QUIET: usize = 50;

struct Lat {
    query: Vec<Duration>,
    op: Vec<Duration>,
}

async fn round(drv: &Driver, doms: &[Arc<Domain>], lat: &mut Lat) {
    for d in doms {
        let t = Instant::now();
        let _ = drv.info(d);
        let st = drv.state(d);
        lat.query.push(t.elapsed());
        assert_eq!(st.state, DomainState::Running);
        let t = Instant::now();
        drv.suspend(d).await.unwrap();
        drv.resume(d).await.unwrap();
        lat.op.push(t.elapsed() / 2);
    }
}

fn report(what: &str, lat: &mut Lat) -> (Duration, Duration) {
    let (query, op) = (Percentiles::of(&lat.query), Percentiles::of(&lat.op));
    let (q50, q99, o50, o99) = (query.p50, query.p99, op.p50, op.p99);
    println!(
        "{what}: get_info+get_state p50 {q50:?} p99 {q99:?} | suspend/resume p50 {o50:?} p99 {o99:?} (n={})",
        lat.op.len()
    );
    (q99, o99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_and_hung_monitor_do_not_delay_other_vms() {
    let reaper = Reaper::default();
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let mut set = JoinSet::new();
    for i in 0..QUIET {
        let (drv, uuid) = (drv.clone(), reaper.new_uuid());
        set.spawn(async move {
            let dom = drv
                .define_xml(&sim_xml(&format!("q{i}"), &uuid, &[]))
                .await
                .unwrap();
            drv.start(&dom, false).await.unwrap();
            dom
        });
    }
    let mut quiet = Vec::new();
    while let Some(d) = set.join_next().await {
        quiet.push(d.unwrap());
    }
    let fctl = root.path().join("f.sock");
    let hctl = root.path().join("h.sock");
    let (fs, hs) = (
        fctl.to_string_lossy().into_owned(),
        hctl.to_string_lossy().into_owned(),
    );
    let flood_uuid = reaper.new_uuid();
    let flood = drv
        .define_xml(&sim_xml("flood", &flood_uuid, &["-sim-control", &fs]))
        .await
        .unwrap();
    drv.start(&flood, false).await.unwrap();
    let hung = drv
        .define_xml(&sim_xml("hung", &reaper.new_uuid(), &["-sim-control", &hs]))
        .await
        .unwrap();
    drv.start(&hung, false).await.unwrap();

    let mut idle = Lat {
        query: vec![],
        op: vec![],
    };
    for _ in 0..3 {
        round(&drv, &quiet, &mut idle).await;
    }
    let (iq99, io99) = report("idle", &mut idle);

    let rss0 = rss_kib();
    assert_eq!(sim_control(&fctl, "flood RTC_CHANGE 100000").await, "ok");
    assert_eq!(sim_control(&hctl, "hang on").await, "ok");
    // Keep a job stuck on the hung monitor the whole time.
    let (d2, h2) = (drv.clone(), hung.clone());
    let hung_ops = tokio::spawn(async move {
        let mut timeouts = 0;
        for _ in 0..3 {
            if d2.suspend(&h2).await.is_err() {
                timeouts += 1;
            }
        }
        timeouts
    });
    let mut fault = Lat {
        query: vec![],
        op: vec![],
    };
    let start = Instant::now();
    let mut flooded_q = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        round(&drv, &quiet, &mut fault).await;
        let t = Instant::now();
        let _ = drv.state(&flood);
        let _ = drv.info(&flood);
        flooded_q.push(t.elapsed());
    }
    let rss1 = rss_kib();
    let stats = sim_control(&fctl, "stats").await;
    println!("flood sim stats after {:?}: {stats}", start.elapsed());
    let (fq99, fo99) = report("flood+hang", &mut fault);
    println!(
        "flooded VM's own get_state+get_info p99 {:?}",
        Percentiles::of(&flooded_q).p99
    );
    println!(
        "driver RSS before flood {} KiB, after 10 s of flood {} KiB (delta {} KiB)",
        rss0,
        rss1,
        rss1 as i64 - rss0 as i64
    );
    assert!(
        fo99 < (io99 * 10).max(Duration::from_millis(150)),
        "ops p99 {fo99:?} vs idle {io99:?}"
    );
    assert!(
        fq99 < (iq99 * 10).max(Duration::from_millis(10)),
        "query p99 {fq99:?} vs idle {iq99:?}"
    );
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
    assert!(
        hung_ops.await.unwrap() >= 1,
        "hung VM's ops should time out"
    );
    assert!(hung.monitor_unresponsive());
    // The flooded VM is still managed normally.
    sim_control(&fctl, "flood off").await;
    drv.suspend(&flood).await.unwrap();
    assert_eq!(drv.state(&flood).state, DomainState::Paused);

    let mut set = JoinSet::new();
    for d in quiet.into_iter().chain([flood, hung]) {
        let drv = drv.clone();
        set.spawn(async move { drv.destroy(&d, false).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
}
