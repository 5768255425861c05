//! Guest-triggered value events (RTC_CHANGE, BALLOON_CHANGE) reach clients,
//! and a flood of them is throttled per VM: a live `virsh event` listener
//! sees the first at once and then at most one per interval, never the
//! flood (which is what wedged libvirtd's single event thread).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Instant;

use common::{Daemon, EventListener, sim_control, sim_domain_xml, wait_flood_end};

#[test]
fn rtc_and_balloon_events_reach_virsh_and_a_flood_is_throttled() {
    let d = Daemon::start();
    let ctl = d.qemu_dir().join("ev.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let xml = sim_domain_xml("ev", &["-sim-control", &ctl_s]);
    let f = d.file("ev.xml", &xml);
    d.virsh_ok(&["define", f.to_str().expect("utf8")]);
    d.virsh_ok(&["start", "ev"]);

    // `--all` registers every event id (20 kinds virsh 9.0 knows).
    let listener = EventListener::start(&d, &["--all", "--domain", "ev"], 20);

    let r = sim_control(&ctl, r#"event RTC_CHANGE {"offset": 42}"#);
    assert!(r.starts_with("ok"), "{r}");
    let r = sim_control(&ctl, r#"event BALLOON_CHANGE {"actual": 1073741824}"#);
    assert!(r.starts_with("ok"), "{r}");
    // A flood of RTC_CHANGE for 2 s at the sim's maximum rate.
    let flood_start = Instant::now();
    let r = sim_control(&ctl, "flood RTC_CHANGE max 2");
    assert!(r.starts_with("ok"), "{r}");
    wait_flood_end(&ctl);
    let flood_secs = flood_start.elapsed().as_secs_f64();
    let stats = sim_control(&ctl, "stats");
    d.virsh_ok(&["destroy", "ev"]);
    let text = listener.stop();

    assert!(
        text.contains("event 'rtc-change' for domain 'ev': 42"),
        "{text}"
    );
    assert!(
        text.contains("event 'balloon-change' for domain 'ev': 1048576KiB")
            || text.contains("event 'balloon-change' for domain 'ev': 1048576 KiB"),
        "{text}"
    );
    let rtc = text.matches("event 'rtc-change'").count();
    println!("flood: {stats}; {flood_secs:.1} s; virsh got {rtc} rtc-change events");
    // At most one per 100 ms interval (plus the first and the immediate one).
    let bound = (flood_secs * 10.0).ceil() as usize + 3;
    assert!(
        rtc >= 2 && rtc <= bound,
        "{rtc} rtc-change events, bound {bound}"
    );
}
