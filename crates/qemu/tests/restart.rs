//! Surviving restarts (docs/REQUIREMENTS.md 9): a driver SIGKILLed with 20 running VMs (real QEMU and
//! qemu-sim) is replaced by a new one on the same root that finds them all,
//! with their states, definitions and no orphaned or duplicated QEMU.
//!
//! The first driver runs in a child process: this test binary re-executed
//! with FV_RESTART_HELPER set, running only `restart_helper`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use qemu::state::paused;
use qemu::{DomainState, Driver, ListFilter, StateReason};
use testkit::wait::until_async;

const REAL: usize = 4;
const SIM: usize = 16;
const T: Duration = Duration::from_secs(60);

fn names() -> Vec<String> {
    (0..REAL)
        .map(|i| format!("real{i}"))
        .chain((0..SIM).map(|i| format!("sim{i}")))
        .collect()
}

/// Runs in the child: start everything, say READY, wait to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_helper() {
    let Ok(root) = std::env::var("FV_RESTART_HELPER") else {
        return;
    };
    let uuids: Vec<uuid::Uuid> = std::env::var("FV_UUIDS")
        .unwrap()
        .split(',')
        .map(|u| u.parse().unwrap())
        .collect();
    let root = PathBuf::from(root);
    let drv = Driver::open(config(&root)).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for (i, name) in names().into_iter().enumerate() {
        let (drv, uuid) = (drv.clone(), uuids[i]);
        set.spawn(async move {
            let xml = if name.starts_with("real") {
                real_xml(&name, &uuid)
            } else {
                sim_xml(&name, &uuid, &[])
            };
            // The last one is transient (create), the others persistent.
            let dom = if name == "sim15" {
                drv.create_xml(&xml, false).await.unwrap()
            } else {
                let d = drv.define_xml(&xml).await.unwrap();
                drv.start(&d, false).await.unwrap();
                d
            };
            // Some paused, to check the state survives.
            if name == "real1" || name == "sim3" {
                drv.suspend(&dom).await.unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    // One more VM with a save job running when the driver dies.
    let saver = drv
        .define_xml(&sim_xml(
            "saver",
            &uuids[REAL + SIM],
            &["-sim-job-ms", "60000"],
        ))
        .await
        .unwrap();
    drv.start(&saver, false).await.unwrap();
    let (d2, s2, img) = (drv.clone(), saver.clone(), root.join("saver.img"));
    tokio::spawn(async move { d2.save(&s2, &img).await });
    let status = root.join(format!("run/qemu/{}.json", uuids[REAL + SIM]));
    let recorded =
        || std::fs::read_to_string(&status).is_ok_and(|t| t.contains("\"kind\": \"save\""));
    assert!(until_async(T, recorded).await);
    assert!(until_async(T, || saver.state().state == DomainState::Paused).await);
    std::fs::write(root.join("READY"), b"").unwrap();
    std::future::pending::<()>().await;
}

fn count_qemus(uuid: &uuid::Uuid) -> usize {
    qemu::process::pids_with_arg(&uuid.to_string()).len()
}

async fn wait_file(p: &Path, child: &mut std::process::Child) {
    let end = Instant::now() + T;
    while !p.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("helper exited early: {st}");
        }
        assert!(Instant::now() < end, "helper not ready within {T:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_driver_is_replaced_without_losing_vms() {
    let reaper = Reaper::default();
    let root = root();
    let uuids: Vec<uuid::Uuid> = (0..REAL + SIM + 1).map(|_| reaper.new_uuid()).collect();
    let list: Vec<String> = uuids.iter().map(|u| u.to_string()).collect();
    let _ = sim_path(); // build before the child needs it
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "restart_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FV_RESTART_HELPER", root.path())
        .env("FV_UUIDS", list.join(","))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_file(&root.path().join("READY"), &mut child).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for u in &uuids {
        assert_eq!(count_qemus(u), 1, "QEMU {u} should outlive the driver");
    }

    let t = Instant::now();
    let mut cfg = config(root.path());
    cfg.autostart = true;
    let drv = Driver::open(cfg).await.unwrap();
    let took = t.elapsed();
    println!(
        "reopened a driver with {} running VMs in {took:?}",
        REAL + SIM + 1
    );

    let active = drv.list(ListFilter::Active);
    assert_eq!(active.len(), REAL + SIM + 1, "{active:?}");
    // The save that ran across the restart: its outcome is reported, the
    // migration cancelled and the guest resumed.
    let saver = drv.lookup_by_name("saver").unwrap();
    let outcome = saver.last_job().expect("job outcome after restart");
    println!("save across restart: {outcome:?}");
    assert!(!outcome.success && outcome.message.contains("restart"));
    assert_eq!(
        saver.state(),
        StateReason::new(DomainState::Running, qemu::state::running::SAVE_CANCELED)
    );
    assert!(saver.async_job().is_none());
    for (i, name) in names().iter().enumerate() {
        let dom = drv.lookup_by_name(name).unwrap();
        assert_eq!(dom.uuid(), uuids[i]);
        let want = if name == "real1" || name == "sim3" {
            StateReason::new(DomainState::Paused, paused::USER)
        } else {
            StateReason::new(DomainState::Running, dom.state().reason)
        };
        assert_eq!(dom.state(), want, "{name}");
        assert_eq!(dom.is_persistent(), name != "sim15", "{name}");
        assert!(dom.id().is_some());
        assert_eq!(
            count_qemus(&uuids[i]),
            1,
            "{name}: orphaned or duplicated QEMU"
        );
        assert!(!dom.monitor_unresponsive(), "{name}");
        // Definitions intact on disk.
        assert_eq!(
            root.path().join(format!("etc/qemu/{name}.xml")).exists(),
            name != "sim15"
        );
    }
    // The monitors were reconnected: operations work.
    for name in ["real0", "sim0", "real1"] {
        let dom = drv.lookup_by_name(name).unwrap();
        drv.suspend(&dom).await.unwrap();
        drv.resume(&dom).await.unwrap();
        assert_eq!(drv.state(&dom).state, DomainState::Running);
    }
    // Exit of an adopted QEMU (not our child) is noticed through its pidfd.
    let sim1 = drv.lookup_by_name("sim1").unwrap();
    let pid = sim1.pid().unwrap();
    testkit::processes::signal(
        u32::try_from(pid).unwrap(),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(until_async(T, || !sim1.is_active()).await);
    assert_eq!(
        sim1.state(),
        StateReason::shutoff(qemu::state::shutoff::CRASHED)
    );

    let mut set = tokio::task::JoinSet::new();
    for s in drv.list(ListFilter::Active) {
        let drv = drv.clone();
        set.spawn(async move {
            let d = drv.lookup_by_uuid(&s.uuid).unwrap();
            drv.destroy(&d, false).await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    for u in &uuids {
        assert!(
            until_async(T, || count_qemus(u) == 0).await,
            "QEMU {u} left behind"
        );
    }
    // The transient one is gone, the persistent ones remain defined.
    assert_eq!(drv.list(ListFilter::All).len(), REAL + SIM);
}
