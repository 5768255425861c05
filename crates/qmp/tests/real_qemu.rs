//! Against a real `qemu-system-x86_64`: the truth for the QMP dialogue.
//!
//! Fails (does not skip) if QEMU is missing: CI installs it, and a silently
//! skipped test would hide a broken setup.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use qmp::commands::{
    Closefd, Cont, Getfd, HumanMonitorCommand, QueryName, QueryStatus, QueryVersion, Quit, Stop,
};
use qmp::events::ShutdownCause;
use qmp::{CloseReason, Config, EventItem, EventKind, Events, Monitor, QmpError, RunState};
use tokio::time::Instant;

const QEMU: &str = "qemu-system-x86_64";

fn find_qemu() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(QEMU))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{QEMU} not found in PATH or /usr/bin: install QEMU (Debian: apt-get install qemu-system-x86) to run the real-QEMU tests")
        })
}

/// TCG unless `FERROVIRT_TEST_ACCEL=kvm`: an openable /dev/kvm may still
/// not run guests in useful time.
fn kvm_usable() -> bool {
    std::env::var("FERROVIRT_TEST_ACCEL").as_deref() == Ok("kvm")
}

/// Kills QEMU if the test fails half-way.
struct Qemu {
    child: Child,
    log: PathBuf,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    fn start(dir: &Path, sock: &Path) -> Qemu {
        let log = dir.join("qemu.log");
        let out = std::fs::File::create(&log).expect("qemu log");
        let err = out.try_clone().expect("qemu log");
        let accel = if kvm_usable() { "kvm" } else { "tcg" };
        let child = Command::new(find_qemu())
            .args(["-machine", "q35", "-accel", accel, "-S", "-nodefaults"])
            .args([
                "-display",
                "none",
                "-m",
                "64",
                "-name",
                "ferrovirt-qmp-test",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn qemu");
        println!("started {QEMU} with accel={accel}");
        Qemu { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Connects once the socket accepts, polling with a deadline.
    async fn connect(&mut self, sock: &Path) -> (Monitor, Events) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("qemu exited early ({status}): {}", self.log());
            }
            match Monitor::connect(sock, Config::default()).await {
                Ok(pair) => return pair,
                Err(QmpError::Connect { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot connect to qemu: {e}; log: {}", self.log()),
            }
        }
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "qemu did not exit after quit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Next event with the given name, skipping others.
async fn wait_event(events: &mut Events, name: &str) -> qmp::Event {
    within(&format!("event {name}"), async {
        loop {
            match events.recv().await {
                Some(EventItem::Event(e)) if e.name() == name => return e,
                Some(other) => println!("(skipping {other:?})"),
                None => panic!("event stream ended before {name}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_against_real_qemu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("qmp.sock");
    let mut qemu = Qemu::start(dir.path(), &sock);
    let (mon, mut events) = qemu.connect(&sock).await;

    let g = mon.greeting().clone();
    println!(
        "greeting: QEMU {}.{}.{} ({}) caps {:?}",
        g.version.major, g.version.minor, g.version.micro, g.package, g.capabilities
    );
    assert!(g.version.major >= 2);

    let v = mon.execute(&QueryVersion).await.expect("query-version");
    assert_eq!(v.qemu, g.version);
    let name = mon.execute(&QueryName).await.expect("query-name");
    assert_eq!(name.name.as_deref(), Some("ferrovirt-qmp-test"));

    let st = mon.execute(&QueryStatus).await.expect("query-status");
    assert_eq!(st.status, RunState::Prelaunch);
    assert!(!st.running);

    mon.execute(&Cont).await.expect("cont");
    wait_event(&mut events, "RESUME").await;
    let st = mon.execute(&QueryStatus).await.expect("query-status");
    assert_eq!(st.status, RunState::Running);
    assert!(st.running);

    mon.execute(&Stop).await.expect("stop");
    let e = wait_event(&mut events, "STOP").await;
    assert_eq!(e.kind, EventKind::Stop);
    assert!(e.timestamp.is_some());
    let st = mon.execute(&QueryStatus).await.expect("query-status");
    assert_eq!(st.status, RunState::Paused);

    let hmp = mon
        .execute(&HumanMonitorCommand {
            command_line: "info status".into(),
            cpu_index: None,
        })
        .await
        .expect("hmp");
    assert!(hmp.contains("paused"), "{hmp}");

    // fd passing: getfd takes the descriptor from the command's bytes.
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    mon.execute_with_fd(
        &Getfd {
            fdname: "fv-test".into(),
        },
        a.as_fd(),
    )
    .await
    .expect("getfd with SCM_RIGHTS");
    mon.execute(&Closefd {
        fdname: "fv-test".into(),
    })
    .await
    .expect("closefd of the passed fd");
    let err = mon
        .execute(&Closefd {
            fdname: "fv-test".into(),
        })
        .await
        .expect_err("second closefd must fail");
    assert!(matches!(err, QmpError::Command { .. }), "{err}");
    // getfd without a descriptor is refused by QEMU, connection intact.
    let err = mon
        .execute(&Getfd {
            fdname: "nofd".into(),
        })
        .await
        .expect_err("getfd without fd");
    assert!(matches!(err, QmpError::Command { .. }), "{err}");

    // Unknown command: QEMU error, connection intact.
    let err = mon
        .execute_raw("no-such-command", None, None)
        .await
        .expect_err("unknown command");
    assert!(
        matches!(&err, QmpError::Command { class, .. } if class == "CommandNotFound"),
        "{err}"
    );

    // Round-trip latency, sequential, then 8 concurrent callers.
    let mut lat = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        mon.execute(&QueryStatus).await.expect("query-status");
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "real QEMU query-status round trip (sequential, n=2000): p50 {:?} p99 {:?} max {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    let t = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mon = mon.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(250);
                for _ in 0..250 {
                    let t = Instant::now();
                    mon.execute(&QueryStatus).await.expect("query-status");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.expect("task"));
    }
    lat.sort();
    println!(
        "real QEMU query-status (8 concurrent callers, n=2000) in {:?}: p50 {:?} p99 {:?}",
        t.elapsed(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );

    // quit: reply, SHUTDOWN, EOF, process exit.
    match mon.execute(&Quit).await {
        Ok(_) | Err(QmpError::Closed(CloseReason::Eof)) => {}
        Err(e) => panic!("quit: {e}"),
    }
    let e = wait_event(&mut events, "SHUTDOWN").await;
    match e.kind {
        EventKind::Shutdown(d) => {
            assert_eq!(d.guest, Some(false));
            assert_eq!(d.reason, Some(ShutdownCause::HostQmpQuit));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(within("closed", mon.closed()).await, CloseReason::Eof);
    let err = mon.execute(&QueryStatus).await.expect_err("after quit");
    assert!(matches!(err, QmpError::Closed(CloseReason::Eof)), "{err}");
    assert_eq!(within("event end", events.recv()).await, None);
    let status = qemu.wait_exit().await;
    assert!(status.success(), "qemu exit status {status}");
}

/// The typed commands a manager probes capabilities with decode QEMU's own
/// replies (field names checked against the binary, not a copy of its
/// schema).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_queries_decode_real_replies() {
    use qmp::commands::{
        CpuModelExpansionType, CpuModelInfo, QomListTypes, QueryBlock, QueryChardev,
        QueryCpuDefinitions, QueryCpuModelExpansion, QueryKvm, QueryMachines, QueryMigrate,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("qmp.sock");
    let mut qemu = Qemu::start(dir.path(), &sock);
    let (mon, _events) = qemu.connect(&sock).await;

    let machines = mon.execute(&QueryMachines).await.expect("query-machines");
    let q35 = machines
        .iter()
        .find(|m| m.alias.as_deref() == Some("q35"))
        .expect("a machine aliased q35");
    assert!(q35.name.starts_with("pc-q35-"), "{q35:?}");
    assert!(q35.cpu_max.is_some_and(|n| n >= 255), "{q35:?}");
    assert!(machines.iter().any(|m| m.is_default), "a default machine");

    let cpus = mon.execute(&QueryCpuDefinitions).await.expect("cpu defs");
    let qemu64 = cpus.iter().find(|c| c.name == "qemu64").expect("qemu64");
    assert_eq!(qemu64.typename, "qemu64-x86_64-cpu");
    assert!(qemu64.unavailable_features.is_some(), "{qemu64:?}");

    let kvm = mon.execute(&QueryKvm).await.expect("query-kvm");
    assert_eq!(kvm.enabled, kvm_usable(), "{kvm:?}");

    let devices = QomListTypes {
        implements: Some("device".into()),
        include_abstract: Some(false),
    };
    let types = mon.execute(&devices).await.expect("qom-list-types");
    for want in ["virtio-rng-pci", "qxl-vga", "ich9-intel-hda", "tpm-crb"] {
        assert!(types.iter().any(|t| t.name == want), "{want} missing");
    }
    assert!(types.iter().all(|t| !t.is_abstract));

    if kvm.enabled {
        let host = QueryCpuModelExpansion {
            expansion: CpuModelExpansionType::Static,
            model: CpuModelInfo {
                name: "host".into(),
                props: None,
            },
        };
        let x = mon.execute(&host).await.expect("host model expansion");
        assert!(x.model.props.is_some_and(|p| !p.is_empty()));
    }
    let chardevs = mon.execute(&QueryChardev).await.expect("query-chardev");
    assert!(chardevs.iter().any(|c| c.filename.starts_with("unix:")));
    assert!(
        mon.execute(&QueryBlock)
            .await
            .expect("query-block")
            .is_empty()
    );
    let mig = mon.execute(&QueryMigrate).await.expect("query-migrate");
    assert_eq!(mig.status, None, "no migration ran");
    let _ = mon.execute(&Quit).await;
    assert!(qemu.wait_exit().await.success());
}
