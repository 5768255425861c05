//! Disk hot-plug through the whole stack against qemu-sim: `virsh
//! attach-disk` / `detach-disk` live and in the definition, DEVICE_ADDED
//! and DEVICE_REMOVED reaching `virsh event`, a guest that never answers
//! the unplug (the call returns at the deadline, the removal completes
//! when the guest finally releases the device, also across a SIGKILLed
//! daemon), destroy during the wait, attach and detach (disks and rngs)
//! during a 10,000 events/s flood with queries at their idle latency, and
//! bad input refused with libvirt's codes with nothing left half-attached
//! in QEMU. Also: user-mode NICs; rngs, inputs, the watchdog and
//! controllers live and what cannot plug refused; vCPU hot-plug and
//! unplug; vcpupin and emulatorpin live and in the definition.

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

use common::{Daemon, EventListener, rpc_open, sim_control, sim_domain_xml, wait_until};
use rpc::ClientError;
use rpc::protocol::remote::{
    DomainArgs, DomainAttachDeviceFlagsArgs, DomainGetInfoRet, DomainLookupByNameArgs, DomainRet,
    NonnullDomain, procedure,
};
use testkit::latency::Percentiles;

const WAIT: Duration = Duration::from_secs(20);
/// `unplug_timeout_secs` of these daemons.
const UNPLUG: Duration = Duration::from_secs(2);

fn daemon() -> Daemon {
    Daemon::start_with("unplug_timeout_secs = 2")
}

/// Defines and starts a qemu-sim domain with disk `vda`; `sim` are extra
/// simulator options. Returns its control socket.
fn start_domain(d: &Daemon, name: &str, sim: &[&str]) -> PathBuf {
    let ctl = d.qemu_dir().join(format!("{name}.ctl"));
    let ctl_s = ctl.to_string_lossy().into_owned();
    let mut args = vec!["-sim-control", ctl_s.as_str()];
    args.extend_from_slice(sim);
    let vda = d.file(&format!("{name}-vda.img"), "");
    let disk = format!(
        "</emulator>\n    <disk type='file' device='disk'>\n      <source file='{}'/>\n      \
         <target dev='vda' bus='virtio'/>\n    </disk>\n",
        vda.display()
    );
    let xml = sim_domain_xml(name, &args).replacen("</emulator>\n", &disk, 1);
    let f = d.file(&format!("{name}.xml"), &xml);
    d.virsh_ok(&["define", f.to_str().expect("utf8")]);
    d.virsh_ok(&["start", name]);
    ctl
}

/// What the simulated QEMU has: device ids and block node names.
fn qemu_has(ctl: &Path) -> (Vec<String>, Vec<String>) {
    let r = sim_control(ctl, "devices");
    let json = r
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("devices: {r}"));
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_str().expect("string").to_owned())
            .collect()
    };
    (list("devices"), list("nodes"))
}

fn image(d: &Daemon, name: &str) -> String {
    d.file(name, "").display().to_string()
}

fn live_xml(d: &Daemon, dom: &str) -> String {
    d.virsh_ok(&["dumpxml", dom])
}

/// The status records of the daemon's running domains, concatenated.
fn status_records(d: &Daemon) -> String {
    let dir = d.root.path().join("run/qemu");
    let files = std::fs::read_dir(dir).expect("run dir");
    files
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

fn device_listener(d: &Daemon, dom: &str, event: &str) -> EventListener {
    EventListener::start(d, &["--event", event, "--domain", dom], 1)
}

#[test]
fn disks_attach_and_detach_live_and_in_the_definition() {
    let d = daemon();
    let ctl = start_domain(&d, "hp", &[]);
    let mut added = device_listener(&d, "hp", "device-added");
    let mut removed = device_listener(&d, "hp", "device-removed");
    let vdb = image(&d, "vdb.img");

    d.virsh_ok(&[
        "attach-disk",
        "hp",
        &vdb,
        "vdb",
        "--targetbus",
        "virtio",
        "--live",
    ]);
    added.expect_line("event 'device-added' for domain 'hp': virtio-disk1", WAIT);
    let xml = live_xml(&d, "hp");
    assert!(xml.contains("<target dev='vdb' bus='virtio'/>"), "{xml}");
    assert!(
        xml.contains(&format!("<source file='{vdb}' index='2'/>")),
        "{xml}"
    );
    let (devs, nodes) = qemu_has(&ctl);
    assert!(devs.contains(&"virtio-disk1".to_owned()), "{devs:?}");
    assert!(nodes.contains(&"libvirt-2-format".to_owned()), "{nodes:?}");
    let inactive = d.virsh_ok(&["dumpxml", "hp", "--inactive"]);
    assert!(
        !inactive.contains("dev='vdb'"),
        "a live attach leaves the definition: {inactive}"
    );

    // The first disk goes; the second keeps its nodes.
    let t0 = Instant::now();
    d.virsh_ok(&["detach-disk", "hp", "vda", "--live"]);
    assert!(
        t0.elapsed() < UNPLUG,
        "the guest answered: no wait to the deadline"
    );
    removed.expect_line("event 'device-removed' for domain 'hp': virtio-disk0", WAIT);
    let xml = live_xml(&d, "hp");
    assert!(!xml.contains("dev='vda'"), "{xml}");
    wait_until("vda's nodes deleted", WAIT, || {
        let (devs, nodes) = qemu_has(&ctl);
        !devs.contains(&"virtio-disk0".to_owned())
            && !nodes.iter().any(|n| n.starts_with("libvirt-1-"))
    });
    d.virsh_ok(&["detach-disk", "hp", "vdb", "--live"]);
    removed.expect_line("event 'device-removed' for domain 'hp': virtio-disk1", WAIT);
    wait_until("every disk node deleted", WAIT, || {
        qemu_has(&ctl).1.is_empty()
    });

    // The definition alone, while the guest runs.
    let vdc = image(&d, "vdc.img");
    d.virsh_ok(&[
        "attach-disk",
        "hp",
        &vdc,
        "vdc",
        "--targetbus",
        "virtio",
        "--config",
    ]);
    assert!(
        d.virsh_ok(&["dumpxml", "hp", "--inactive"])
            .contains("<target dev='vdc'")
    );
    assert!(!live_xml(&d, "hp").contains("dev='vdc'"));
    let stored =
        std::fs::read_to_string(d.root.path().join("etc/qemu/hp.xml")).expect("definition");
    assert!(stored.contains("<target dev='vdc'"), "{stored}");
    d.virsh_ok(&["detach-disk", "hp", "vdc", "--config"]);
    assert!(
        !d.virsh_ok(&["dumpxml", "hp", "--inactive"])
            .contains("dev='vdc'")
    );
    assert!(qemu_has(&ctl).0.iter().all(|x| x != "virtio-disk2"));

    // Both at once (--persistent), then --current on the stopped guest.
    d.virsh_ok(&[
        "attach-disk",
        "hp",
        &vdc,
        "vdc",
        "--targetbus",
        "virtio",
        "--persistent",
    ]);
    assert!(live_xml(&d, "hp").contains("dev='vdc'"));
    assert!(
        d.virsh_ok(&["dumpxml", "hp", "--inactive"])
            .contains("dev='vdc'")
    );
    d.virsh_ok(&["destroy", "hp"]);
    d.virsh_ok(&["detach-disk", "hp", "vdc", "--current"]);
    assert!(!d.virsh_ok(&["dumpxml", "hp"]).contains("dev='vdc'"));
    // Only the live half of --persistent raised an event.
    let printed = removed.stop() + &added.stop();
    assert_eq!(printed.matches("virtio-disk2").count(), 1, "{printed}");
}

#[test]
fn a_guest_that_never_releases_the_device_leaves_the_removal_pending() {
    let mut d = daemon();
    let ctl = start_domain(&d, "stuck", &["-sim-ignore-unplug"]);
    let mut removed = device_listener(&d, "stuck", "device-removed");
    let vdb = image(&d, "vdb.img");
    d.virsh_ok(&["attach-disk", "stuck", &vdb, "vdb", "--targetbus", "virtio"]);

    let t0 = Instant::now();
    d.virsh_ok(&["detach-disk", "stuck", "vdb", "--live"]);
    let took = t0.elapsed();
    println!("detach with an unanswered unplug returned after {took:?}");
    assert!(
        took >= UNPLUG && took < UNPLUG + Duration::from_secs(3),
        "{took:?}"
    );
    assert!(live_xml(&d, "stuck").contains("dev='vdb'"), "still pending");
    // Asked again, QEMU refuses: the first request stays pending.
    let out = d.virsh(&["detach-disk", "stuck", "vdb", "--live"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in the process of unplug"), "{err}");
    assert!(
        status_records(&d).contains("\"virtio-disk1\""),
        "still recorded"
    );
    let status = status_records(&d);
    assert!(
        status.contains("\"virtio-disk1\""),
        "pending in the record: {status}"
    );

    // The guest answers late: the event completes the removal.
    assert_eq!(sim_control(&ctl, "release virtio-disk1"), "ok");
    removed.expect_line(
        "event 'device-removed' for domain 'stuck': virtio-disk1",
        WAIT,
    );
    let gone = testkit::wait::until(WAIT, || {
        !live_xml(&d, "stuck").contains("dev='vdb'")
            && qemu_has(&ctl)
                .1
                .iter()
                .all(|n| !n.starts_with("libvirt-2-"))
    });
    assert!(
        gone,
        "vdb still there: {:?}\n{}\n{}",
        qemu_has(&ctl),
        live_xml(&d, "stuck"),
        common::tail(&d.log(), 40)
    );
    drop(removed);

    // Pending when the daemon dies; the guest answers while it is down.
    let vdc = image(&d, "vdc.img");
    d.virsh_ok(&["attach-disk", "stuck", &vdc, "vdc", "--targetbus", "virtio"]);
    d.virsh_ok(&["detach-disk", "stuck", "vdc"]);
    assert!(live_xml(&d, "stuck").contains("dev='vdc'"));
    d.kill();
    assert_eq!(sim_control(&ctl, "release virtio-disk2"), "ok");
    d.spawn();
    wait_until("vdc removed after the restart", WAIT, || {
        !live_xml(&d, "stuck").contains("dev='vdc'")
            && qemu_has(&ctl)
                .1
                .iter()
                .all(|n| !n.starts_with("libvirt-3-"))
    });
    assert_eq!(
        qemu_has(&ctl).1,
        vec!["libvirt-1-storage", "libvirt-1-format"]
    );
}

#[test]
fn destroy_and_queries_do_not_wait_for_a_pending_unplug() {
    let d = Daemon::start_with("unplug_timeout_secs = 30");
    start_domain(&d, "wait", &["-sim-ignore-unplug"]);
    let uri = d.uri.clone();
    let detach = std::thread::spawn(move || common::virsh(&uri, &["detach-disk", "wait", "vda"]));
    wait_until("the unplug to be pending", WAIT, || {
        status_records(&d).contains("\"virtio-disk0\"")
    });
    let t0 = Instant::now();
    d.virsh_ok(&["dominfo", "wait"]);
    d.virsh_ok(&["dumpxml", "wait"]);
    let query = t0.elapsed();
    d.virsh_ok(&["destroy", "wait"]);
    let destroy = t0.elapsed() - query;
    println!("during the unplug wait: queries {query:?}, destroy {destroy:?}");
    assert!(query < Duration::from_secs(2), "{query:?}");
    assert!(destroy < Duration::from_secs(5), "{destroy:?}");
    let out = detach.join().expect("detach thread");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the detach ended with the guest"
    );
    println!(
        "detach after destroy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn attach_code(c: &rpc::Client, dom: &str, xml: &str, flags: u32, detach: bool) -> i32 {
    let dom = c
        .call::<_, DomainRet>(
            procedure::DOMAIN_LOOKUP_BY_NAME,
            &DomainLookupByNameArgs { name: dom.into() },
        )
        .await
        .expect("lookup")
        .dom;
    let args = DomainAttachDeviceFlagsArgs {
        dom,
        xml: xml.into(),
        flags,
    };
    let p = if detach {
        procedure::DOMAIN_DETACH_DEVICE_FLAGS
    } else {
        procedure::DOMAIN_ATTACH_DEVICE_FLAGS
    };
    match c.call::<_, ()>(p, &args).await {
        Ok(()) => 0,
        Err(ClientError::Remote(r)) => {
            println!("code {}: {}", r.code, r.message.unwrap_or_default());
            r.code
        }
        Err(e) => panic!("{e}"),
    }
}

fn disk_xml(path: &str, target: &str, bus: &str) -> String {
    format!(
        "<disk type='file' device='disk'><source file='{path}'/><target dev='{target}' bus='{bus}'/></disk>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_libvirts_codes_and_leaves_nothing_half_attached() {
    const LIVE: u32 = 1;
    const CONFIG: u32 = 2;
    let d = daemon();
    let ctl = start_domain(&d, "bad", &[]);
    let c = rpc_open(&d.sock()).await;
    let vdb = image(&d, "vdb.img");
    let before = qemu_has(&ctl);

    let cases: &[(&str, String, u32, bool, i32)] = &[
        (
            "target in use",
            disk_xml(&vdb, "vda", "virtio"),
            LIVE,
            false,
            55,
        ),
        (
            "target in use, config",
            disk_xml(&vdb, "vda", "virtio"),
            CONFIG,
            false,
            55,
        ),
        (
            "sata cannot hot-plug",
            disk_xml(&vdb, "sda", "sata"),
            LIVE,
            false,
            84,
        ),
        (
            "missing source",
            disk_xml("/nonexistent/x.img", "vdb", "virtio"),
            LIVE,
            false,
            38,
        ),
        ("not a device", "<hostdev/>".into(), LIVE, false, 67),
        ("malformed", "<disk".into(), LIVE, false, 27),
        (
            "detach absent",
            disk_xml(&vdb, "vdz", "virtio"),
            LIVE,
            true,
            99,
        ),
        (
            "detach absent, config",
            disk_xml(&vdb, "vdz", "virtio"),
            CONFIG,
            true,
            99,
        ),
        (
            "unknown flag",
            disk_xml(&vdb, "vdb", "virtio"),
            64,
            false,
            8,
        ),
    ];
    for (what, xml, flags, detach, want) in cases {
        println!("{what}:");
        assert_eq!(
            attach_code(&c, "bad", xml, *flags, *detach).await,
            *want,
            "{what}"
        );
    }
    assert_eq!(qemu_has(&ctl), before, "nothing reached QEMU");

    // The one free hot-plug port is taken; the next disk finds none.
    assert_eq!(
        attach_code(&c, "bad", &disk_xml(&vdb, "vdb", "virtio"), LIVE, false).await,
        0
    );
    let with_vdb = qemu_has(&ctl);
    let vdc = image(&d, "vdc.img");
    assert_eq!(
        attach_code(&c, "bad", &disk_xml(&vdc, "vdc", "virtio"), LIVE, false).await,
        1
    );
    assert_eq!(qemu_has(&ctl), with_vdb, "no node of the refused disk left");
    assert!(!live_xml(&d, "bad").contains("dev='vdc'"));

    // --live on a stopped guest.
    d.virsh_ok(&["destroy", "bad"]);
    assert_eq!(
        attach_code(&c, "bad", &disk_xml(&vdc, "vdc", "virtio"), LIVE, false).await,
        55
    );
    assert_eq!(
        attach_code(&c, "bad", &disk_xml(&vdb, "vda", "virtio"), LIVE, true).await,
        55
    );
    assert!(
        !d.virsh_ok(&["dumpxml", "bad", "--inactive"])
            .contains("dev='vdc'")
    );
}

#[test]
fn change_media_ejects_and_inserts_through_the_tray() {
    let d = daemon();
    let iso1 = image(&d, "one.iso");
    let iso2 = image(&d, "two.iso");
    let cdrom = format!(
        "<disk type='file' device='cdrom'><source file='{iso1}'/><target dev='sdb' bus='sata'/></disk>"
    );
    let ctl = d.qemu_dir().join("tray.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let xml = sim_domain_xml("tray", &["-sim-control", &ctl_s]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{cdrom}\n"),
        1,
    );
    common::define_start(&d, "tray", &xml);
    let mut tray = device_listener(&d, "tray", "tray-change");
    let opened = "event 'tray-change' for domain 'tray' disk sata0-0-1: opened";
    let closed = "event 'tray-change' for domain 'tray' disk sata0-0-1: closed";
    assert!(qemu_has(&ctl).1.contains(&"libvirt-1-format".to_owned()));

    d.virsh_ok(&["change-media", "tray", "sdb", "--eject", "--live"]);
    tray.expect_line(opened, WAIT);
    let xml = live_xml(&d, "tray");
    assert!(!xml.contains("one.iso"), "{xml}");
    wait_until("the ejected medium's nodes deleted", WAIT, || {
        qemu_has(&ctl).1.is_empty()
    });

    d.virsh_ok(&["change-media", "tray", "sdb", &iso2, "--insert", "--live"]);
    tray.expect_line(closed, WAIT);
    let xml = live_xml(&d, "tray");
    assert!(
        xml.contains(&format!("<source file='{iso2}' index='2'/>")),
        "{xml}"
    );
    assert_eq!(
        qemu_has(&ctl).1,
        vec!["libvirt-2-storage", "libvirt-2-format"]
    );

    d.virsh_ok(&["change-media", "tray", "sdb", &iso1, "--update", "--live"]);
    let xml = live_xml(&d, "tray");
    assert!(
        xml.contains(&format!("<source file='{iso1}' index='3'/>")),
        "{xml}"
    );
    assert_eq!(
        qemu_has(&ctl).1,
        vec!["libvirt-3-storage", "libvirt-3-format"]
    );
    let inactive = d.virsh_ok(&["dumpxml", "tray", "--inactive"]);
    assert!(
        inactive.contains("one.iso"),
        "a live change leaves the definition"
    );

    d.virsh_ok(&["change-media", "tray", "sdb", "--eject", "--config"]);
    let inactive = d.virsh_ok(&["dumpxml", "tray", "--inactive"]);
    assert!(!inactive.contains("one.iso"), "{inactive}");
    assert!(live_xml(&d, "tray").contains("one.iso"));
    let printed = tray.stop();
    // The update's open and close come within one throttle interval:
    // the newest (closed) is what is kept.
    let trays: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("tray-change"))
        .collect();
    assert_eq!(trays.first(), Some(&opened), "{printed}");
    assert_eq!(trays.last(), Some(&closed), "{printed}");
    assert!(trays.len() >= 3, "{printed}");

    // Only a cdrom's medium changes.
    let out = d.virsh(&["update-device", "tray", "/dev/null"]);
    assert!(!out.status.success());
    let f = d.file("sdb.xml", &disk_xml(&iso1, "sdb", "sata"));
    let out = d.virsh(&["update-device", "tray", f.to_str().expect("utf8"), "--live"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only the medium of a cdrom can be changed"),
        "{err}"
    );
}

/// `virDomainGetInfo` round trips on `c` for `n` calls.
async fn info_latencies(c: &rpc::Client, dom: &NonnullDomain, n: usize) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let args = DomainArgs { dom: dom.clone() };
        c.call::<_, DomainGetInfoRet>(procedure::DOMAIN_GET_INFO, &args)
            .await
            .expect("info");
        v.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_and_detach_complete_during_an_event_flood() {
    const LIVE: u32 = 1;
    let d = daemon();
    let ctl = start_domain(&d, "fl", &[]);
    let c = rpc_open(&d.sock()).await;
    let q = rpc_open(&d.sock()).await;
    let dom = c
        .call::<_, DomainRet>(
            procedure::DOMAIN_LOOKUP_BY_NAME,
            &DomainLookupByNameArgs { name: "fl".into() },
        )
        .await
        .expect("lookup")
        .dom;
    let idle = Percentiles::of(&info_latencies(&q, &dom, 300).await);

    assert_eq!(sim_control(&ctl, "flood RTC_CHANGE 10000 8"), "ok");
    let sampler = {
        let dom = dom.clone();
        tokio::spawn(async move { info_latencies(&q, &dom, 600).await })
    };
    let vdb = image(&d, "vdb.img");
    let mut rounds = Vec::new();
    let rng = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>";
    for _ in 0..5 {
        let t0 = Instant::now();
        let xml = disk_xml(&vdb, "vdb", "virtio");
        assert_eq!(attach_code(&c, "fl", &xml, LIVE, false).await, 0);
        assert_eq!(attach_code(&c, "fl", &xml, LIVE, true).await, 0);
        rounds.push(t0.elapsed());
        assert!(
            !live_xml(&d, "fl").contains("dev='vdb'"),
            "removal completed in the call"
        );
        // An rng (backend object, then device) on the port the disk left.
        let t0 = Instant::now();
        assert_eq!(attach_code(&c, "fl", rng, LIVE, false).await, 0);
        assert_eq!(attach_code(&c, "fl", rng, LIVE, true).await, 0);
        rounds.push(t0.elapsed());
        assert!(
            !live_xml(&d, "fl").contains("<rng"),
            "removal completed in the call"
        );
    }
    let flood = Percentiles::of(&sampler.await.expect("sampler"));
    let stats = sim_control(&ctl, "stats");
    println!(
        "idle getinfo p50 {:?} p99 {:?}; during 10k events/s: p50 {:?} p99 {:?}; attach+detach rounds {rounds:?}; sim {stats}",
        idle.p50, idle.p99, flood.p50, flood.p99
    );
    let worst = rounds.iter().max().copied().unwrap_or_default();
    assert!(
        worst < UNPLUG,
        "attach+detach waited for the deadline: {worst:?}"
    );
    assert!(
        flood.p99 < idle.p99 * 5 + Duration::from_millis(20),
        "queries slowed by the flood: idle {idle:?} flood {flood:?}"
    );
}

#[test]
fn memory_disk_size_and_write_threshold_change_live() {
    let d = daemon();
    let ctl = start_domain(&d, "res", &[]);
    let vda = d.root.path().join("res-vda.img").display().to_string();
    let mut balloon = device_listener(&d, "res", "balloon-change");
    let mut threshold = device_listener(&d, "res", "block-threshold");

    d.virsh_ok(&["setmem", "res", "32M", "--live"]);
    balloon.expect_line("event 'balloon-change' for domain 'res': 32768KiB", WAIT);
    let info = d.virsh_ok(&["dominfo", "res"]);
    assert!(info.contains("32768 KiB"), "{info}");
    let out = d.virsh(&["setmem", "res", "128M", "--live"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot set memory higher than max memory"),
        "{err}"
    );
    d.virsh_ok(&["setmaxmem", "res", "48M", "--config"]);
    let inactive = d.virsh_ok(&["dumpxml", "res", "--inactive"]);
    assert!(
        inactive.contains("<memory unit='KiB'>49152</memory>"),
        "{inactive}"
    );
    let out = d.virsh(&["setmaxmem", "res", "48M", "--live"]);
    assert!(!out.status.success());

    d.virsh_ok(&["blockresize", "res", "vda", "2M"]);
    let out = d.virsh(&["blockresize", "res", "vdz", "2M"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'vdz' was not found"), "{err}");

    d.virsh_ok(&["domblkthreshold", "res", "vda", "1M"]);
    let ev = r#"event BLOCK_WRITE_THRESHOLD {"node-name": "libvirt-1-format", "amount-exceeded": 4096, "write-threshold": 1048576}"#;
    assert_eq!(sim_control(&ctl, ev), "ok");
    let want = format!("event 'block-threshold' for domain 'res': dev: vda({vda}) 1048576 4096");
    threshold.expect_line(&want, WAIT);
}

#[test]
fn a_guest_that_refuses_the_unplug_fails_the_detach_and_keeps_the_device() {
    let d = Daemon::start_with("unplug_timeout_secs = 30");
    let ctl = start_domain(&d, "refuse", &["-sim-ignore-unplug"]);
    let mut failed = device_listener(&d, "refuse", "device-removal-failed");
    let uri = d.uri.clone();
    let detach = std::thread::spawn(move || common::virsh(&uri, &["detach-disk", "refuse", "vda"]));
    wait_until("the unplug to be pending", WAIT, || {
        status_records(&d).contains("\"virtio-disk0\"")
    });
    let ev = r#"event DEVICE_UNPLUG_GUEST_ERROR {"device": "virtio-disk0", "path": "/machine/peripheral/virtio-disk0"}"#;
    assert_eq!(sim_control(&ctl, ev), "ok");
    failed.expect_line(
        "event 'device-removal-failed' for domain 'refuse': virtio-disk0",
        WAIT,
    );
    let out = detach.join().expect("detach thread");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("rejected by the guest"), "{err}");
    assert!(
        live_xml(&d, "refuse").contains("dev='vda'"),
        "the device stays"
    );
    // The record may be rewritten in the background after the answer.
    wait_until("nothing pending in the record", WAIT, || {
        !status_records(&d).contains("\"virtio-disk0\"")
    });
    assert!(qemu_has(&ctl).0.contains(&"virtio-disk0".to_owned()));
}

#[test]
fn user_nics_attach_and_detach_live_and_bridges_in_the_config() {
    let d = daemon();
    let ctl = d.qemu_dir().join("nic.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    // Two free hot-plug ports (USB and the balloon take two).
    let ports = "<controller type='pci' model='pcie-root-port'/>\n".repeat(4);
    let xml = sim_domain_xml("nic", &["-sim-control", &ctl_s]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{ports}"),
        1,
    );
    common::define_start(&d, "nic", &xml);
    let mut added = device_listener(&d, "nic", "device-added");
    let mut removed = device_listener(&d, "nic", "device-removed");
    let mac = "52:54:00:aa:bb:01";
    let nic = |mac: &str| {
        let xml = format!(
            "<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>"
        );
        d.file(&format!("nic-{mac}.xml"), &xml)
            .display()
            .to_string()
    };
    d.virsh_ok(&["attach-device", "nic", &nic(mac), "--live"]);
    added.expect_line("event 'device-added' for domain 'nic': net0", WAIT);
    let xml = live_xml(&d, "nic");
    assert!(xml.contains(&format!("<mac address='{mac}'/>")), "{xml}");
    assert!(xml.contains("<alias name='net0'/>"), "{xml}");
    assert!(qemu_has(&ctl).0.contains(&"net0".to_owned()));
    let listed = d.virsh_ok(&["domiflist", "nic"]);
    assert!(listed.contains(mac), "{listed}");

    // A second one, then the first goes: the second keeps its name.
    d.virsh_ok(&["attach-device", "nic", &nic("52:54:00:aa:bb:02"), "--live"]);
    added.expect_line("event 'device-added' for domain 'nic': net1", WAIT);
    d.virsh_ok(&[
        "detach-interface",
        "nic",
        "--type",
        "user",
        "--mac",
        mac,
        "--live",
    ]);
    removed.expect_line("event 'device-removed' for domain 'nic': net0", WAIT);
    let xml = live_xml(&d, "nic");
    assert!(
        !xml.contains(mac) && xml.contains("<alias name='net1'/>"),
        "{xml}"
    );
    d.virsh_ok(&["detach-device-alias", "nic", "net1", "--live"]);
    removed.expect_line("event 'device-removed' for domain 'nic': net1", WAIT);
    assert!(!live_xml(&d, "nic").contains("<interface"));

    // A NIC on a host bridge in the config only (live, with its tap:
    // tests/hotplug_nics.rs, inside a network namespace).
    d.virsh_ok(&[
        "attach-interface",
        "nic",
        "--type",
        "bridge",
        "--source",
        "br0",
        "--config",
    ]);
    let inactive = d.virsh_ok(&["dumpxml", "nic", "--inactive"]);
    assert!(inactive.contains("<source bridge='br0'/>"), "{inactive}");
}

#[test]
fn setvcpus_changes_the_definition_and_keeps_a_running_guest_within_its_maximum() {
    let d = daemon();
    start_domain(&d, "cpu", &[]);
    d.virsh_ok(&["setvcpus", "cpu", "4", "--maximum", "--config"]);
    d.virsh_ok(&["setvcpus", "cpu", "2", "--config"]);
    let inactive = d.virsh_ok(&["dumpxml", "cpu", "--inactive"]);
    assert!(
        inactive.contains("<vcpu placement='static' current='2'>4</vcpu>"),
        "{inactive}"
    );
    let count = d.virsh_ok(&["vcpucount", "cpu", "--config"]);
    assert_eq!(count.trim(), "2");
    let count = d.virsh_ok(&["vcpucount", "cpu", "--config", "--maximum"]);
    assert_eq!(count.trim(), "4");
    let out = d.virsh(&["setvcpus", "cpu", "8", "--config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("greater than max"), "{err}");
    // The running guest was started with one vCPU at most.
    let out = d.virsh(&["setvcpus", "cpu", "2", "--live"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("greater than max allowable vcpus for the live domain"),
        "{err}"
    );
    assert!(
        d.virsh_ok(&["dumpxml", "cpu"]).contains(">1</vcpu>"),
        "the running guest is unchanged"
    );
}

/// What the simulated QEMU has: device ids and backend object ids.
fn qemu_objects(ctl: &Path) -> Vec<String> {
    let r = sim_control(ctl, "devices");
    let json = r.strip_prefix("ok ").expect("devices");
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    v["objects"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn rngs_inputs_watchdogs_and_controllers_plug_live_and_the_rest_is_refused() {
    let d = daemon();
    let ctl = d.qemu_dir().join("oth.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    // Free ports for six devices (USB, the balloon and the bridge take
    // three); the watchdog, a PCI device, plugs into the bridge.
    let ports = "<controller type='pci' model='pcie-root-port'/>\n".repeat(9)
        + "<controller type='pci' model='pcie-to-pci-bridge'/>\n";
    let xml = sim_domain_xml("oth", &["-sim-control", &ctl_s]).replacen(
        "</emulator>\n",
        &format!("</emulator>\n{ports}"),
        1,
    );
    common::define_start(&d, "oth", &xml);
    let mut added = device_listener(&d, "oth", "device-added");
    let mut removed = device_listener(&d, "oth", "device-removed");
    let file = |name: &str, xml: &str| d.file(name, xml).display().to_string();
    let rng = file(
        "rng.xml",
        "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    );
    let tablet = file("tablet.xml", "<input type='tablet' bus='virtio'/>");
    let dog = file("dog.xml", "<watchdog model='i6300esb' action='poweroff'/>");
    let scsi = file(
        "scsi.xml",
        "<controller type='scsi' index='0' model='virtio-scsi'/>",
    );
    let serial = file("vser.xml", "<controller type='virtio-serial' index='0'/>");
    for (f, alias) in [
        (&rng, "rng0"),
        (&rng, "rng1"),
        (&tablet, "input2"),
        (&dog, "watchdog0"),
        (&scsi, "scsi0"),
        (&serial, "virtio-serial0"),
    ] {
        d.virsh_ok(&["attach-device", "oth", f, "--live"]);
        added.expect_line(
            &format!("event 'device-added' for domain 'oth': {alias}"),
            WAIT,
        );
        assert!(qemu_has(&ctl).0.contains(&alias.to_owned()), "{alias}");
    }
    assert_eq!(qemu_objects(&ctl), ["objrng0", "objrng1"]);

    // A SCSI disk on the controller plugged live; the controller cannot
    // go while the disk is on it.
    let sda = file("sda.xml", &disk_xml(&image(&d, "sda.img"), "sda", "scsi"));
    d.virsh_ok(&["attach-device", "oth", &sda, "--live"]);
    added.expect_line("event 'device-added' for domain 'oth': scsi0-0-0-0", WAIT);
    assert!(qemu_has(&ctl).0.contains(&"scsi0-0-0-0".to_owned()));
    let out = d.virsh(&["detach-device", "oth", &scsi, "--live"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is busy"), "{err}");
    d.virsh_ok(&["detach-device", "oth", &sda, "--live"]);
    removed.expect_line("event 'device-removed' for domain 'oth': scsi0-0-0-0", WAIT);
    assert!(!live_xml(&d, "oth").contains("dev='sda'"));
    let live = live_xml(&d, "oth");
    for want in [
        "<alias name='rng1'/>",
        "<backend model='random'>/dev/urandom</backend>",
        "<input type='tablet' bus='virtio'>",
        "<watchdog model='i6300esb' action='poweroff'>",
        "<controller type='scsi' index='0' model='virtio-scsi'>",
        "<alias name='virtio-serial0'/>",
    ] {
        assert!(live.contains(want), "{want}\n{live}");
    }
    assert!(
        !d.virsh_ok(&["dumpxml", "oth", "--inactive"])
            .contains("<rng"),
        "live only"
    );

    // The first rng goes (its backend with it); the second keeps its name.
    d.virsh_ok(&["detach-device-alias", "oth", "rng0", "--live"]);
    removed.expect_line("event 'device-removed' for domain 'oth': rng0", WAIT);
    wait_until("the rng backend to go", WAIT, || {
        qemu_objects(&ctl) == ["objrng1"]
    });
    assert!(live_xml(&d, "oth").contains("<alias name='rng1'/>"));
    for (f, alias) in [
        (&rng, "rng1"),
        (&tablet, "input2"),
        (&dog, "watchdog0"),
        (&scsi, "scsi0"),
    ] {
        d.virsh_ok(&["detach-device", "oth", f, "--live"]);
        removed.expect_line(
            &format!("event 'device-removed' for domain 'oth': {alias}"),
            WAIT,
        );
        assert!(!qemu_has(&ctl).0.contains(&alias.to_owned()), "{alias}");
    }
    wait_until("every rng backend to go", WAIT, || {
        qemu_objects(&ctl).is_empty()
    });
    let live = live_xml(&d, "oth");
    assert!(
        !live.contains("<rng") && !live.contains("<watchdog") && !live.contains("virtio-scsi"),
        "{live}"
    );

    // Controllers of the machine's topology, PS/2 inputs and a second
    // watchdog are refused live, nothing reaches QEMU; a SATA controller
    // is fine in the definition.
    d.virsh_ok(&["attach-device", "oth", &dog, "--live"]);
    added.expect_line("event 'device-added' for domain 'oth': watchdog0", WAIT);
    let before = qemu_has(&ctl);
    for (xml, want) in [
        (
            "<controller type='sata' index='1'/>",
            "'sata' controller cannot be hot plugged",
        ),
        (
            "<controller type='pci' model='pcie-root-port'/>",
            "'pci' controller cannot be hot plugged",
        ),
        ("<input type='mouse' bus='ps2'/>", "not supported"),
        ("<watchdog model='i6300esb'/>", "already has a watchdog"),
    ] {
        let f = file("bad.xml", xml);
        let out = d.virsh(&["attach-device", "oth", &f, "--live"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{xml}: {err}");
    }
    assert_eq!(qemu_has(&ctl), before);
    let sata = file("sata.xml", "<controller type='sata' index='1'/>");
    d.virsh_ok(&["attach-device", "oth", &sata, "--config"]);
    let inactive = d.virsh_ok(&["dumpxml", "oth", "--inactive"]);
    assert!(
        inactive.contains("<controller type='sata' index='1'>"),
        "{inactive}"
    );
    d.virsh_ok(&["detach-device", "oth", &sata, "--config"]);
    let inactive = d.virsh_ok(&["dumpxml", "oth", "--inactive"]);
    assert!(
        !inactive.contains("<controller type='sata' index='1'"),
        "{inactive}"
    );
}

/// The CPUs a process may run on (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_owned()
}

/// The affinity column of `virsh vcpupin` / `emulatorpin` output: the
/// row of `first` (a vCPU number, or `*` for the emulator).
fn pin_row(out: &str, first: &str) -> String {
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(first)).then(|| w.collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| panic!("no row {first} in:\n{out}"))
}

#[test]
fn vcpus_and_the_emulator_pin_live_and_in_the_definition() {
    let d = daemon();
    let ctl = start_domain(&d, "pin", &[]);
    let ctl_s = ctl.to_string_lossy().into_owned();
    let pid = *common::pids_mentioning(&ctl_s)
        .first()
        .expect("the sim's pid");
    let whole = allowed_cpus(pid);

    // Live: the vCPU's thread (the simulator reports its own) moves.
    d.virsh_ok(&["vcpupin", "pin", "0", "1", "--live"]);
    assert_eq!(allowed_cpus(pid), "1");
    assert_eq!(pin_row(&d.virsh_ok(&["vcpupin", "pin"]), "0"), "1");
    let live = live_xml(&d, "pin");
    assert!(live.contains("<vcpupin vcpu='0' cpuset='1'/>"), "{live}");
    let inactive = d.virsh_ok(&["dumpxml", "pin", "--inactive"]);
    assert!(!inactive.contains("<vcpupin"), "live only: {inactive}");
    d.virsh_ok(&["vcpupin", "pin", "0", &whole, "--live"]);
    assert_eq!(allowed_cpus(pid), whole);

    // In the definition: applied at the next start.
    d.virsh_ok(&["vcpupin", "pin", "0", "0", "--config"]);
    d.virsh_ok(&["emulatorpin", "pin", "1", "--config"]);
    assert_eq!(
        pin_row(&d.virsh_ok(&["vcpupin", "pin", "--config"]), "0"),
        "0"
    );
    let em = d.virsh_ok(&["emulatorpin", "pin", "--config"]);
    assert!(em.lines().any(|l| l.trim() == "*: 1"), "{em}");
    let inactive = d.virsh_ok(&["dumpxml", "pin", "--inactive"]);
    assert!(
        inactive.contains("<vcpupin vcpu='0' cpuset='0'/>")
            && inactive.contains("<emulatorpin cpuset='1'/>"),
        "{inactive}"
    );
    d.virsh_ok(&["destroy", "pin"]);
    d.virsh_ok(&["start", "pin"]);
    let pid = *common::pids_mentioning(&ctl_s)
        .first()
        .expect("the sim's pid");
    assert_eq!(allowed_cpus(pid), "0", "the config pin applied at start");

    // Live emulator pin: the live XML says it, the query reports it.
    d.virsh_ok(&["emulatorpin", "pin", "0", "--live"]);
    let em = d.virsh_ok(&["emulatorpin", "pin"]);
    assert!(em.lines().any(|l| l.trim() == "*: 0"), "{em}");
    assert!(live_xml(&d, "pin").contains("<emulatorpin cpuset='0'/>"));

    // Bad input: libvirt's codes, nothing changed.
    let before = live_xml(&d, "pin");
    for (args, want) in [
        (vec!["vcpupin", "pin", "3", "0", "--live"], "out of range"),
        (vec!["vcpupin", "pin", "0", "0", "--live", "--config"], ""),
    ] {
        let out = d.virsh(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        if want.is_empty() {
            assert!(out.status.success(), "{args:?}: {err}");
        } else {
            assert!(
                !out.status.success() && err.contains(want),
                "{args:?}: {err}"
            );
        }
    }
    assert_eq!(live_xml(&d, "pin"), before);
    d.virsh_ok(&["destroy", "pin"]);
    let out = d.virsh(&["vcpupin", "pin", "0", "0", "--live"]);
    assert!(!out.status.success(), "not running");
}

/// The libvirt error code of a call (0: success).
fn code_of<T>(r: Result<T, ClientError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(ClientError::Remote(r)) => {
            println!("code {}: {}", r.code, r.message.unwrap_or_default());
            r.code
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn pins_on_the_wire_refuse_bad_maps_with_libvirts_codes() {
    use rpc::protocol::remote::{
        DomainGetVcpuPinInfoArgs, DomainGetVcpuPinInfoRet, DomainPinVcpuFlagsArgs,
    };
    use rpc::xdr::Opaque;
    const VIR_ERR_INVALID_ARG: i32 = 8;
    const VIR_ERR_CONFIG_UNSUPPORTED: i32 = 67;
    let d = daemon();
    start_domain(&d, "wire", &[]);
    let c = rpc_open(&d.sock()).await;
    let dom = c
        .call::<_, DomainRet>(
            procedure::DOMAIN_LOOKUP_BY_NAME,
            &DomainLookupByNameArgs {
                name: "wire".into(),
            },
        )
        .await
        .expect("lookup")
        .dom;
    let pin = |cpumap: Vec<u8>, flags: u32| DomainPinVcpuFlagsArgs {
        dom: dom.clone(),
        vcpu: 0,
        cpumap: Opaque(cpumap),
        flags,
    };
    let call = |a: DomainPinVcpuFlagsArgs| {
        let c = &c;
        async move { c.call::<_, ()>(procedure::DOMAIN_PIN_VCPU_FLAGS, &a).await }
    };
    // No CPU, a CPU the host lacks, an unknown flag.
    assert_eq!(code_of(call(pin(vec![0, 0], 1)).await), VIR_ERR_INVALID_ARG);
    let far = vec![0, 0, 0, 0, 0, 0, 0, 0x80];
    assert_eq!(code_of(call(pin(far, 1)).await), VIR_ERR_CONFIG_UNSUPPORTED);
    assert_eq!(
        code_of(call(pin(vec![1], 1 << 7)).await),
        VIR_ERR_INVALID_ARG
    );
    let info = |ncpumaps: i32, maplen: i32| DomainGetVcpuPinInfoArgs {
        dom: dom.clone(),
        ncpumaps,
        maplen,
        flags: 0,
    };
    for (n, m) in [(-1, 1), (1, 0), (i32::MAX, i32::MAX)] {
        let r = c
            .call::<_, DomainGetVcpuPinInfoRet>(procedure::DOMAIN_GET_VCPU_PIN_INFO, &info(n, m))
            .await;
        assert_eq!(code_of(r), VIR_ERR_INVALID_ARG, "{n} {m}");
    }
    let ok = c
        .call::<_, DomainGetVcpuPinInfoRet>(procedure::DOMAIN_GET_VCPU_PIN_INFO, &info(4, 1))
        .await
        .expect("pin info");
    assert_eq!(ok.num, 1, "one vCPU");
    assert_eq!(ok.cpumaps.0.len(), 4, "ncpumaps maps of maplen bytes");
    assert_ne!(ok.cpumaps.0[0], 0, "unpinned: every host CPU");
    assert!(live_xml(&d, "wire").contains("<vcpu placement='static'>1</vcpu>"));
    assert!(
        !live_xml(&d, "wire").contains("<cputune>"),
        "nothing pinned"
    );
}

#[test]
fn vcpus_plug_and_unplug_live_up_to_the_maximum() {
    let d = daemon();
    let ctl = d.qemu_dir().join("hot.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let xml = sim_domain_xml("hot", &["-sim-control", &ctl_s]).replacen(
        "<vcpu>1</vcpu>",
        "<vcpu current='1'>4</vcpu>",
        1,
    );
    common::define_start(&d, "hot", &xml);
    let count = |flag: &str| {
        d.virsh_ok(&["vcpucount", "hot", flag, "--active"])
            .trim()
            .to_owned()
    };
    assert_eq!(count("--live"), "1");

    d.virsh_ok(&["setvcpus", "hot", "3", "--live"]);
    assert_eq!(count("--live"), "3");
    let (devices, _) = qemu_has(&ctl);
    assert!(
        devices.contains(&"vcpu0".to_owned()) && devices.contains(&"vcpu1".to_owned()),
        "{devices:?}"
    );
    assert!(live_xml(&d, "hot").contains("<vcpu placement='static' current='3'>4</vcpu>"));
    let inactive = d.virsh_ok(&["dumpxml", "hot", "--inactive"]);
    assert!(
        inactive.contains("current='1'>4</vcpu>"),
        "live only: {inactive}"
    );

    // Down again: the last plugged goes first, once QEMU says it is gone.
    d.virsh_ok(&["setvcpus", "hot", "2", "--live"]);
    assert_eq!(count("--live"), "2");
    let (devices, _) = qemu_has(&ctl);
    assert!(
        devices.contains(&"vcpu0".to_owned()) && !devices.contains(&"vcpu1".to_owned()),
        "{devices:?}"
    );
    d.virsh_ok(&["setvcpus", "hot", "4", "--live"]);
    assert_eq!(count("--live"), "4");
    assert!(live_xml(&d, "hot").contains("<vcpu placement='static'>4</vcpu>"));

    // Past the maximum, the maximum itself, the boot vCPU: refused,
    // nothing changed.
    for (args, want) in [
        (
            vec!["setvcpus", "hot", "5", "--live"],
            "greater than max allowable",
        ),
        (
            vec!["setvcpus", "hot", "4", "--live", "--config", "--maximum"],
            "can't be modified",
        ),
        (vec!["setvcpus", "hot", "0", "--live"], ""),
    ] {
        let out = d.virsh(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
    d.virsh_ok(&["setvcpus", "hot", "1", "--live"]);
    assert_eq!(count("--live"), "1");
    let out = d.virsh(&["setvcpus", "hot", "1", "--live"]);
    assert!(out.status.success(), "no change is fine");
    let xml2 =
        sim_domain_xml("hot2", &[]).replacen("<vcpu>1</vcpu>", "<vcpu current='2'>4</vcpu>", 1);
    common::define_start(&d, "hot2", &xml2);
    let out = d.virsh(&["setvcpus", "hot2", "1", "--live"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be unplugged"), "{err}");
}
