//! QEMU's BLOCK_IO_ERROR and WATCHDOG reach clients as libvirt's IO_ERROR,
//! IO_ERROR_REASON and WATCHDOG events, through real `virsh event`
//! (callback procedures) and a legacy-registration client; an I/O error
//! with action "stop" (and a watchdog with action "pause") leaves the
//! domain paused with that reason; an I/O error storm is throttled.
//!
//! qemu-sim simulates no disks: the events are injected through its
//! control socket with the data real QEMU 7.2 sends for the `-blockdev`
//! nodes ferrovirtd names (`libvirt-1-format` for the first disk).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, EventListener, rpc_open, sim_control, sim_domain_xml, wait_flood_end};
use rpc::protocol::remote::{self, event_id, procedure};

const WAIT: Duration = Duration::from_secs(20);

/// A qemu-sim domain with one virtio disk backed by `disk`, controlled
/// through `ctl`.
fn domain_with_disk(name: &str, disk: &Path, ctl: &Path) -> String {
    let ctl = ctl.to_string_lossy().into_owned();
    let xml = sim_domain_xml(name, &["-sim-control", &ctl]);
    let disk = format!(
        "</emulator>\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      \
         <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n",
        disk.display()
    );
    xml.replacen("</emulator>\n", &disk, 1)
}

/// Defines and starts a sim domain with a disk; returns (disk, control).
fn start_domain(d: &Daemon, name: &str) -> (PathBuf, PathBuf) {
    let disk = d.file(&format!("{name}.img"), "");
    let ctl = d.qemu_dir().join(format!("{name}.ctl"));
    let f = d.file(&format!("{name}.xml"), &domain_with_disk(name, &disk, &ctl));
    d.virsh_ok(&["define", f.to_str().expect("utf8")]);
    d.virsh_ok(&["start", name]);
    (disk, ctl)
}

fn inject(ctl: &Path, cmd: &str) {
    let r = sim_control(ctl, cmd);
    assert!(r.starts_with("ok"), "{cmd}: {r}");
}

fn io_error(action: &str, nospace: bool) -> String {
    format!(
        r#"event BLOCK_IO_ERROR {{"device": "", "node-name": "libvirt-1-format", "operation": "write", "action": "{action}", "nospace": {nospace}, "reason": "Input/output error"}}"#
    )
}

#[test]
fn io_errors_reach_virsh_and_a_stop_action_pauses_with_io_error() {
    let d = Daemon::start();
    let (disk, ctl) = start_domain(&d, "ioe");
    let disk = disk.display().to_string();
    let only = |ev: &'static str| ["--event", ev, "--domain", "ioe"];
    let mut io = EventListener::start(&d, &only("io-error"), 1);
    let mut reason = EventListener::start(&d, &only("io-error-reason"), 1);
    let mut wd = EventListener::start(&d, &only("watchdog"), 1);
    let mut life = EventListener::start(&d, &only("lifecycle"), 1);

    // action "report": the guest sees the error and keeps running.
    inject(&ctl, &io_error("report", false));
    let at = format!("for domain 'ioe': {disk} (virtio-disk0)");
    io.expect_line(&format!("event 'io-error' {at} report"), WAIT);
    // libvirt's reason is "" unless the host ran out of space.
    reason.expect_line(
        &format!("event 'io-error-reason' {at} report due to "),
        WAIT,
    );
    inject(&ctl, r#"event WATCHDOG {"action": "inject-nmi"}"#);
    wd.expect_line("event 'watchdog' for domain 'ioe': inject-nmi", WAIT);
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "ioe"]).trim(),
        "running (booted)"
    );

    // action "stop": BLOCK_IO_ERROR, then QEMU's STOP, as QEMU orders them.
    inject(&ctl, &io_error("stop", true));
    inject(&ctl, r#"event STOP"#);
    io.expect_line(&format!("event 'io-error' {at} pause"), WAIT);
    reason.expect_line(
        &format!("event 'io-error-reason' {at} pause due to enospc"),
        WAIT,
    );
    life.expect_line(
        "event 'lifecycle' for domain 'ioe': Suspended I/O Error",
        WAIT,
    );
    d.wait_state("ioe", "paused (I/O error)", WAIT);

    d.virsh_ok(&["destroy", "ioe"]);
    life.expect_line(
        "event 'lifecycle' for domain 'ioe': Stopped Destroyed",
        WAIT,
    );
    let life = life.stop();
    let io = io.stop();
    let reason = reason.stop();
    let wd = wd.stop();
    // The STOP after the I/O error was not taken for a second pause.
    assert_eq!(life.matches("Suspended").count(), 1, "{life}");
    assert_eq!(io.matches("event 'io-error'").count(), 2, "{io}");
    assert_eq!(
        reason.matches("event 'io-error-reason'").count(),
        2,
        "{reason}"
    );
    assert_eq!(wd.matches("event 'watchdog'").count(), 1, "{wd}");
}

#[test]
fn a_pausing_watchdog_pauses_with_watchdog() {
    let d = Daemon::start();
    let (_disk, ctl) = start_domain(&d, "wdp");
    let mut wd = EventListener::start(&d, &["--event", "watchdog", "--domain", "wdp"], 1);
    let mut life = EventListener::start(&d, &["--event", "lifecycle", "--domain", "wdp"], 1);

    inject(&ctl, r#"event WATCHDOG {"action": "pause"}"#);
    inject(&ctl, r#"event STOP"#);
    wd.expect_line("event 'watchdog' for domain 'wdp': pause", WAIT);
    life.expect_line(
        "event 'lifecycle' for domain 'wdp': Suspended Watchdog",
        WAIT,
    );
    d.wait_state("wdp", "paused (watchdog)", WAIT);

    d.virsh_ok(&["destroy", "wdp"]);
    life.expect_line(
        "event 'lifecycle' for domain 'wdp': Stopped Destroyed",
        WAIT,
    );
    let text = life.stop();
    wd.stop();
    assert_eq!(text.matches("Suspended").count(), 1, "{text}");
}

/// The next event of one of `procs`, within [`WAIT`].
async fn next_event(events: &mut rpc::client::Events, procs: &[i32]) -> rpc::client::Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("event in time")
            .expect("connection open");
        if procs.contains(&ev.procedure) {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_registrations_get_legacy_messages_and_a_storm_is_throttled() {
    let d = Daemon::start();
    let (disk, ctl) = start_domain(&d, "leg");
    let c = rpc_open(&d.sock()).await;
    let mut events = c.take_events().expect("event receiver");
    for id in [
        event_id::IO_ERROR,
        event_id::IO_ERROR_REASON,
        event_id::WATCHDOG,
    ] {
        let args = remote::ConnectDomainEventRegisterAnyArgs { event_id: id };
        let () = c
            .call(procedure::CONNECT_DOMAIN_EVENT_REGISTER_ANY, &args)
            .await
            .expect("register");
    }
    let disk = disk.display().to_string();
    let ctl2 = ctl.clone();
    tokio::task::spawn_blocking(move || inject(&ctl2, &io_error("ignore", false)))
        .await
        .expect("inject");
    let ev = next_event(&mut events, &[procedure::DOMAIN_EVENT_IO_ERROR]).await;
    let m: remote::DomainEventIoErrorMsg = ev.decode().expect("io error msg");
    assert_eq!(
        (m.dom.name.as_str(), m.src_path.as_str()),
        ("leg", disk.as_str())
    );
    assert_eq!((m.dev_alias.as_str(), m.action), ("virtio-disk0", 0));
    let ev = next_event(&mut events, &[procedure::DOMAIN_EVENT_IO_ERROR_REASON]).await;
    let m: remote::DomainEventIoErrorReasonMsg = ev.decode().expect("reason msg");
    assert_eq!(
        (m.dev_alias.as_str(), m.action, m.reason.as_str()),
        ("virtio-disk0", 0, "")
    );

    let ctl2 = ctl.clone();
    tokio::task::spawn_blocking(move || inject(&ctl2, r#"event WATCHDOG {"action": "reset"}"#))
        .await
        .expect("inject");
    let ev = next_event(&mut events, &[procedure::DOMAIN_EVENT_WATCHDOG]).await;
    let m: remote::DomainEventWatchdogMsg = ev.decode().expect("watchdog msg");
    assert_eq!((m.dom.name.as_str(), m.action), ("leg", 2));

    // A storm of BLOCK_IO_ERROR (the sim floods with empty data: a disk we
    // cannot name, one throttle slot) for 2 s at the sim's maximum rate,
    // then one error on the known disk as an end marker.
    let ctl2 = ctl.clone();
    let (flood_secs, sent) = tokio::task::spawn_blocking(move || flood(&ctl2))
        .await
        .expect("flood");
    let ctl2 = ctl.clone();
    tokio::task::spawn_blocking(move || inject(&ctl2, &io_error("report", false)))
        .await
        .expect("inject");
    let mut storm = 0usize;
    loop {
        let ev = next_event(&mut events, &[procedure::DOMAIN_EVENT_IO_ERROR]).await;
        let m: remote::DomainEventIoErrorMsg = ev.decode().expect("io error msg");
        if m.src_path == disk {
            assert_eq!(m.action, 2);
            break;
        }
        assert_eq!(
            (m.src_path.as_str(), m.dev_alias.as_str(), m.action),
            ("", "", 0)
        );
        storm += 1;
    }
    println!("storm: sim sent {sent}; {flood_secs:.1} s; client got {storm} io-error events");
    let bound = (flood_secs * 10.0).ceil() as usize + 3;
    assert!(
        storm >= 1 && storm <= bound,
        "{storm} events, bound {bound}"
    );
    assert!(
        sent > bound as u64 * 10,
        "the sim did not flood: {sent} events"
    );
    c.close().await;
}

/// Floods BLOCK_IO_ERROR for 2 s; returns (seconds, events the sim sent).
fn flood(ctl: &Path) -> (f64, u64) {
    let start = Instant::now();
    inject(ctl, "flood BLOCK_IO_ERROR max 2");
    let stats = wait_flood_end(ctl);
    let sent = stats
        .split("\"events_sent\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (start.elapsed().as_secs_f64(), sent)
}
