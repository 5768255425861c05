//! Lifecycle paths that need a guest that reacts (qemu-sim): guest
//! shutdown, fake reboot, save (event-driven async job) and abort, queries
//! and job errors during a long job, destroy of a hung monitor, and a
//! subscriber that does not read.

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
use qemu::state::{detail, paused, running, shutoff};
use qemu::{DomainState, Driver, EventKind, LifecycleKind as L, StateReason, SubscriptionEnd};
use testkit::latency::Percentiles;
use testkit::wait::until_async;
use virterror::ToVirError;

const T: Duration = Duration::from_secs(20);

fn code(e: &qemu::Error) -> i32 {
    e.to_vir_error().code.as_i32()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_shutdown_and_fake_reboot() {
    let reaper = Reaper::default();
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let mut sub = drv.subscribe();
    let uuid = reaper.new_uuid();
    let dom = drv.define_xml(&sim_xml("sd1", &uuid, &[])).await.unwrap();
    drv.start(&dom, false).await.unwrap();

    // Reboot: the guest powers off, we reset + cont, REBOOT is emitted.
    drv.reboot(&dom).await.unwrap();
    assert_eq!(
        next_event_for(&mut sub, "sd1", T).await.kind,
        lc(L::Defined, 0)
    );
    assert_eq!(
        next_event_for(&mut sub, "sd1", T).await.kind,
        lc(L::Started, 0)
    );
    assert_eq!(
        next_event_for(&mut sub, "sd1", T).await.kind,
        lc(L::Shutdown, detail::SHUTDOWN_GUEST)
    );
    assert_eq!(
        next_event_for(&mut sub, "sd1", T).await.kind,
        EventKind::Reboot
    );
    assert_eq!(
        next_event_for(&mut sub, "sd1", T).await.kind,
        lc(L::Resumed, detail::RESUMED_UNPAUSED)
    );
    assert!(until_async(T, || drv.state(&dom).state == DomainState::Running).await);
    assert_eq!(qemu::process::pids_with_arg(&uuid.to_string()).len(), 1);

    // Shutdown: the sim's guest powers off; on_poweroff=destroy stops QEMU.
    drv.shutdown(&dom).await.unwrap();
    let ev = next_event_for(&mut sub, "sd1", T).await;
    assert_eq!(ev.kind, lc(L::Shutdown, detail::SHUTDOWN_GUEST));
    let ev = next_event_for(&mut sub, "sd1", T).await;
    assert_eq!(ev.kind, lc(L::Stopped, detail::STOPPED_SHUTDOWN));
    assert_eq!(drv.state(&dom), StateReason::shutoff(shutoff::SHUTDOWN));
    assert!(
        until_async(T, || qemu::process::pids_with_arg(&uuid.to_string())
            .is_empty())
        .await,
        "QEMU still running after shutdown"
    );
    // Not running: shutdown again is OperationInvalid.
    assert_eq!(code(&drv.shutdown(&dom).await.unwrap_err()), 55);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_during_flood_with_queries_and_job_errors() {
    let reaper = Reaper::default();
    let root = root();
    let mut cfg = config(root.path());
    cfg.job_wait = Duration::from_millis(800);
    let drv = Driver::open(cfg).await.unwrap();
    let mut sub = drv.subscribe();
    let uuid = reaper.new_uuid();
    let ctl = root.path().join("ctl.sock");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let xml = sim_xml(
        "save1",
        &uuid,
        &["-sim-control", &ctl_s, "-sim-job-ms", "3000"],
    );
    let dom = drv.define_xml(&xml).await.unwrap();
    drv.start(&dom, false).await.unwrap();
    assert_eq!(sim_control(&ctl, "flood RTC_CHANGE 100000").await, "ok");

    let file = root.path().join("save1.img");
    let d2 = drv.clone();
    let dom2 = dom.clone();
    let f2 = file.clone();
    let t0 = Instant::now();
    let save = tokio::spawn(async move { d2.save(&dom2, &f2).await });
    assert!(until_async(T, || dom.async_job().is_some()).await);

    // Queries answer from the snapshot while the job runs.
    let mut lat = Vec::new();
    while lat.len() < 200 {
        let q = Instant::now();
        let st = drv.state(&dom);
        let _ = drv.info(&dom);
        lat.push(q.elapsed());
        assert!(matches!(
            st.state,
            DomainState::Paused | DomainState::Running
        ));
        tokio::task::yield_now().await;
    }
    let lat = Percentiles::of(&lat);
    let p99 = lat.p99;
    println!(
        "get_state+get_info during save+flood: p50 {:?} p99 {:?}",
        lat.p50, p99
    );
    assert!(p99 < Duration::from_millis(50));
    let ji = drv.job_info(&dom).await.unwrap();
    assert_eq!(ji.job_type, qemu::JobType::Unbounded);
    assert_eq!(ji.operation.as_deref(), Some("save"));
    // Suspend is on the save's allow-list; resume is not: its deadline error
    // names the holder.
    drv.suspend(&dom).await.unwrap();
    let e = drv.resume(&dom).await.unwrap_err();
    assert_eq!(code(&e), 68, "{e}");
    assert!(e.to_string().contains("async job save"), "{e}");

    save.await.unwrap().unwrap();
    println!("save under a 100k/s flood took {:?}", t0.elapsed());
    assert_eq!(drv.state(&dom), StateReason::shutoff(shutoff::SAVED));
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    assert!(drv.last_job(&dom).unwrap().success);
    let mut kinds = Vec::new();
    loop {
        let ev = next_event_for(&mut sub, "save1", T).await;
        let stopped = ev.kind == lc(L::Stopped, detail::STOPPED_SAVED);
        // The flood's RTC_CHANGEs arrive too (throttled); the lifecycle
        // sequence is what this test is about.
        if matches!(ev.kind, EventKind::Lifecycle { .. }) {
            kinds.push(ev.kind);
        }
        if stopped {
            break;
        }
    }
    assert_eq!(
        kinds,
        vec![
            lc(L::Defined, 0),
            lc(L::Started, 0),
            lc(L::Suspended, detail::SUSPENDED_PAUSED),
            lc(L::Stopped, detail::STOPPED_SAVED)
        ]
    );
    assert!(
        until_async(T, || qemu::process::pids_with_arg(&uuid.to_string())
            .is_empty())
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_save_resumes_guest() {
    let reaper = Reaper::default();
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let uuid = reaper.new_uuid();
    let dom = drv
        .define_xml(&sim_xml("ab1", &uuid, &["-sim-job-ms", "20000"]))
        .await
        .unwrap();
    drv.start(&dom, false).await.unwrap();
    assert_eq!(code(&drv.abort_job(&dom).await.unwrap_err()), 55);
    let file = root.path().join("ab1.img");
    let (d2, dom2, f2) = (drv.clone(), dom.clone(), file.clone());
    let save = tokio::spawn(async move { d2.save(&dom2, &f2).await });
    assert!(
        until_async(T, || drv.state(&dom)
            == StateReason::new(DomainState::Paused, paused::SAVE))
        .await
    );
    drv.abort_job(&dom).await.unwrap();
    let e = save.await.unwrap().unwrap_err();
    assert_eq!(code(&e), 78, "{e}");
    assert_eq!(
        drv.state(&dom),
        StateReason::new(DomainState::Running, running::SAVE_CANCELED)
    );
    assert!(!file.exists(), "partial save file left behind");
    assert!(!drv.last_job(&dom).unwrap().success);
    drv.destroy(&dom, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_frees_job_stuck_on_hung_monitor() {
    let reaper = Reaper::default();
    let root = root();
    let mut cfg = config(root.path());
    cfg.monitor_timeout = Duration::from_secs(60);
    cfg.job_wait = Duration::from_secs(1);
    cfg.destroy_grace = Duration::from_secs(2);
    let drv = Driver::open(cfg).await.unwrap();
    let uuid = reaper.new_uuid();
    let ctl = root.path().join("h.sock");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let dom = drv
        .define_xml(&sim_xml("hung1", &uuid, &["-sim-control", &ctl_s]))
        .await
        .unwrap();
    drv.start(&dom, false).await.unwrap();
    assert_eq!(sim_control(&ctl, "hang on").await, "ok");

    // A job stuck on the hung monitor (60 s monitor deadline)...
    let (d2, dom2) = (drv.clone(), dom.clone());
    let stuck = tokio::spawn(async move { d2.suspend(&dom2).await });
    assert!(until_async(T, || !dom.jobs_holders().is_empty()).await);
    // ...a waiter gets its deadline error naming the holder, not a hang.
    let t = Instant::now();
    let e = drv.resume(&dom).await.unwrap_err();
    println!("waiting job failed after {:?}: {e}", t.elapsed());
    assert_eq!(code(&e), 68);
    assert!(e.to_string().contains("suspend"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));

    // Destroy kills first, which fails the stuck command and frees its job.
    let t = Instant::now();
    drv.destroy(&dom, false).await.unwrap();
    let took = t.elapsed();
    println!("destroy with hung monitor took {took:?} (grace 2 s)");
    assert!(took < Duration::from_secs(4), "destroy took {took:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), stuck).await;
    assert!(r.expect("stuck job not freed").unwrap().is_err());
    assert_eq!(drv.state(&dom), StateReason::shutoff(shutoff::DESTROYED));
    // And the domain is usable again.
    drv.start(&dom, false).await.unwrap();
    drv.destroy(&dom, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_timeout_marks_unresponsive() {
    let reaper = Reaper::default();
    let root = root();
    let mut cfg = config(root.path());
    cfg.monitor_timeout = Duration::from_millis(500);
    let drv = Driver::open(cfg).await.unwrap();
    let uuid = reaper.new_uuid();
    let ctl = root.path().join("m.sock");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let dom = drv
        .define_xml(&sim_xml("mt1", &uuid, &["-sim-control", &ctl_s]))
        .await
        .unwrap();
    drv.start(&dom, false).await.unwrap();
    sim_control(&ctl, "hang on").await;
    let e = drv.suspend(&dom).await.unwrap_err();
    assert_eq!(code(&e), 68, "{e}");
    assert!(dom.monitor_unresponsive());
    assert_eq!(drv.control_info(&dom).state, qemu::ControlState::Error);
    // The job was released: the next op is not a lock timeout but the
    // monitor timeout again.
    let e = drv.reset(&dom).await.unwrap_err();
    assert!(matches!(e, qemu::Error::MonitorTimeout { .. }), "{e}");
    sim_control(&ctl, "hang off").await;
    // The resync probe notices QEMU answers again and applies the late stop.
    assert!(until_async(T, || !dom.monitor_unresponsive()).await);
    assert!(until_async(T, || drv.state(&dom).state == DomainState::Paused).await);
    drv.resume(&dom).await.unwrap();
    assert_eq!(drv.state(&dom).state, DomainState::Running);
    drv.destroy(&dom, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_that_does_not_read_is_dropped() {
    let reaper = Reaper::default();
    let root = root();
    let mut cfg = config(root.path());
    cfg.subscriber_queue = 8;
    let drv = Driver::open(cfg).await.unwrap();
    let mut slow = drv.subscribe();
    let mut fast = drv.subscribe();
    let uuid = reaper.new_uuid();
    let dom = drv.define_xml(&sim_xml("sub1", &uuid, &[])).await.unwrap();
    drv.start(&dom, false).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Ok(ev) = fast.recv().await {
            n += 1;
            if ev.kind == lc(L::Stopped, detail::STOPPED_DESTROYED) {
                break;
            }
        }
        n
    });
    for _ in 0..10 {
        drv.suspend(&dom).await.unwrap();
        drv.resume(&dom).await.unwrap();
    }
    drv.destroy(&dom, false).await.unwrap();
    // defined + started + 20 + stopped
    assert_eq!(tokio::time::timeout(T, reader).await.unwrap().unwrap(), 23);
    let mut got = 0;
    let end = loop {
        match slow.recv().await {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(got, 8);
    assert_eq!(end, SubscriptionEnd::Lagged);
    assert_eq!(drv.subscriber_count(), 1);
    let _ = Arc::new(());
}
