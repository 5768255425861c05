//! Statistics that never wait, against the real daemon and real clients:
//! `virsh domstats` over 200 qemu-sim VMs while 10 monitors hang, a block
//! job runs and another VM floods events; the metrics endpoint checked by
//! Prometheus' own parser, its counters moving with what the test does;
//! Debian's prometheus-libvirt-exporter scraping the daemon.
//!
//! Timing is printed, not asserted (CI machines are noisy): what is
//! asserted is what cannot be noise, such as every VM answering while
//! monitors are still hung.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Daemon, call_frame, define_and_start, raw_open, rpc_open, sim_control, sim_domain_xml,
    strip_ansi, tail,
};
use rpc::protocol::remote::procedure;
use testkit::wait;
use tokio::io::AsyncWriteExt;

/// Simulated VMs in the big run.
const VMS: usize = 200;
/// Of which this many get a hung monitor.
const HUNG: usize = 10;

fn config() -> &'static str {
    "stats_interval_secs = 1\nstats_max_in_flight = 16\nmetrics_listen = \"127.0.0.1:0\"\nclient_queue_messages = 64\n"
}

/// A qemu-sim VM with a dummy disk vda (the simulator invents its
/// counters) and extra simulator arguments.
fn sim_disk_xml(d: &Daemon, name: &str, args: &[&str]) -> String {
    let disk = d.file(&format!("{name}.qcow2"), "");
    let xml = sim_domain_xml(name, args);
    let dev = format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
         <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>",
        disk.display()
    );
    xml.replacen("  </devices>", &dev, 1)
}

fn ctl(d: &Daemon, name: &str) -> PathBuf {
    d.qemu_dir().join(format!("{name}.ctl"))
}

/// Defines and starts `(name, xml)` pairs, 16 at a time.
fn start_all(d: &Daemon, vms: Vec<(String, String)>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sock = d.sock();
    rt.block_on(async move {
        let c = Arc::new(rpc_open(&sock).await);
        let slots = Arc::new(tokio::sync::Semaphore::new(16));
        let mut set = tokio::task::JoinSet::new();
        for (_, xml) in vms {
            let (c, permit) = (c.clone(), slots.clone().acquire_owned().await.unwrap());
            set.spawn(async move {
                define_and_start(&c, &xml).await;
                drop(permit);
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
}

/// `virsh domstats` output: per domain, its fields.
fn parse_domstats(out: &str) -> HashMap<String, HashMap<String, String>> {
    let mut all = HashMap::new();
    let mut cur: Option<(String, HashMap<String, String>)> = None;
    for line in out.lines() {
        if let Some(name) = line
            .strip_prefix("Domain: '")
            .and_then(|r| r.strip_suffix('\''))
        {
            if let Some((n, f)) = cur.take() {
                all.insert(n, f);
            }
            cur = Some((name.to_owned(), HashMap::new()));
        } else if let (Some((_, f)), Some((k, v))) = (cur.as_mut(), line.trim().split_once('=')) {
            f.insert(k.to_owned(), v.to_owned());
        }
    }
    if let Some((n, f)) = cur {
        all.insert(n, f);
    }
    all
}

/// One timed `virsh domstats` with `args`.
fn domstats(uri: &str, args: &[&str]) -> (Duration, HashMap<String, HashMap<String, String>>) {
    let t0 = Instant::now();
    let out = common::virsh(uri, &[&["domstats"], args].concat());
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "domstats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, parse_domstats(&String::from_utf8_lossy(&out.stdout)))
}

fn stale(f: &HashMap<String, String>) -> bool {
    f.get("state.stats.stale").map(String::as_str) == Some("yes")
}

/// The metrics endpoint's address, from the daemon's log.
fn metrics_addr(d: &Daemon) -> String {
    d.wait_for_log("metrics endpoint listening");
    let log = strip_ansi(&d.log());
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("metrics endpoint listening"))
        .unwrap();
    line.split("local=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Scrapes `addr` and parses the text with Prometheus' own parser
/// (python3-prometheus-client), which fails on anything malformed.
/// Returns `name{labels}` → value.
fn scrape(addr: &str) -> HashMap<String, f64> {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl");
    assert!(out.status.success(), "scrape failed: {out:?}");
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
        for fam in p(sys.stdin.read()):\n    for s in fam.samples:\n        \
        l=','.join(f'{k}={v}' for k,v in sorted(s.labels.items()))\n        print(f'{s.name}{{{l}}} {s.value}')\n";
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (apt-get install python3-prometheus-client)");
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "not valid exposition text: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    String::from_utf8_lossy(&parsed.stdout)
        .lines()
        .filter_map(|l| {
            l.rsplit_once(' ')
                .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        })
        .collect()
}

fn metric(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no {key} in the scrape"))
}

/// Waits until every VM but `skip` has fresh statistics.
fn wait_all_fresh(d: &Daemon, want: usize) {
    let mut last = HashMap::new();
    let ok = wait::until(Duration::from_secs(120), || {
        last = domstats(&d.uri, &["--state"]).1;
        last.len() == want && last.values().all(|f| !stale(f))
    });
    let stale_n = last.values().filter(|f| stale(f)).count();
    assert!(
        ok,
        "{stale_n} of {} VMs never got fresh statistics\n{}",
        last.len(),
        tail(&d.log(), 30)
    );
}

/// Pipelines calls on a connection that never reads its replies, until
/// the daemon drops it (its output queue is 64 messages here).
fn drop_a_non_reading_client(d: &Daemon) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = raw_open(&d.sock()).await;
        let mut batch = Vec::new();
        for serial in 100..612u32 {
            batch.extend_from_slice(&call_frame(
                procedure::CONNECT_GET_CAPABILITIES,
                serial,
                &[],
            ));
        }
        for _ in 0..200 {
            match tokio::time::timeout(Duration::from_secs(2), s.write_all(&batch)).await {
                Ok(Err(_)) => return,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
}

#[test]
fn domstats_answers_at_once_for_200_vms_with_hung_monitors_a_block_job_and_a_flood() {
    let d = Daemon::start_with(config());
    let mut vms: Vec<(String, String)> = Vec::new();
    for i in 0..VMS {
        let name = format!("vm{i:03}");
        let c = ctl(&d, &name);
        let args: Vec<&str> = if i < HUNG || i == VMS - 1 {
            vec!["-sim-control", c.to_str().unwrap()]
        } else {
            Vec::new()
        };
        let xml = sim_domain_xml(&name, &args);
        vms.push((name, xml));
    }
    vms.push((
        "bj".into(),
        sim_disk_xml(&d, "bj", &["-sim-job-ms", "600000"]),
    ));
    let t0 = Instant::now();
    start_all(&d, vms);
    println!(
        "{} qemu-sim VMs started in {:.1} s",
        VMS + 1,
        t0.elapsed().as_secs_f64()
    );
    wait_all_fresh(&d, VMS + 1);
    let addr = metrics_addr(&d);
    let before = scrape(&addr);

    for i in 0..HUNG {
        assert_eq!(sim_control(&ctl(&d, &format!("vm{i:03}")), "hang on"), "ok");
    }
    let dest = d.file("bj-copy.qcow2", "");
    d.virsh_ok(&[
        "blockcopy",
        "bj",
        "vda",
        dest.to_str().unwrap(),
        "--reuse-external",
    ]);
    hung_vms_turn_stale_and_others_answer(&d);
    block_job_vm_stays_fresh(&d);

    let flood = ctl(&d, &format!("vm{:03}", VMS - 1));
    assert!(sim_control(&flood, "flood RTC_CHANGE 100000 30").starts_with("ok"));
    let timings: Vec<f64> = (0..5).map(|_| all_vms_answer(&d)).collect();
    println!(
        "domstats over {} VMs during a 100k events/s flood: {timings:.3?} s",
        VMS + 1
    );
    drop_a_non_reading_client(&d);
    counters_moved(&d, &addr, &before);
    for i in 0..HUNG {
        assert_eq!(
            sim_control(&ctl(&d, &format!("vm{i:03}")), "hang off"),
            "ok"
        );
    }
}

/// Every VM is in every answer, and (once their rounds timed out) the
/// hung ones say their figures are stale, while they are still hung.
fn hung_vms_turn_stale_and_others_answer(d: &Daemon) {
    let all_hung_stale = wait::until(Duration::from_secs(30), || {
        let (_, s) = domstats(&d.uri, &["--state"]);
        (0..HUNG).all(|i| s.get(&format!("vm{i:03}")).is_some_and(stale))
    });
    assert!(
        all_hung_stale,
        "hung VMs never reported stale\n{}",
        tail(&d.log(), 30)
    );
    let mut timings = Vec::new();
    for _ in 0..5 {
        timings.push(all_vms_answer(d));
    }
    println!(
        "domstats over {} VMs, {HUNG} monitors hung, a block job running: {timings:.3?} s",
        VMS + 1
    );
    let (took, ro) = domstats(&d.ro_uri, &["--state", "--balloon"]);
    assert_eq!(
        ro.len(),
        VMS + 1,
        "the read-only socket answers for every VM"
    );
    println!(
        "domstats on the read-only socket: {:.3} s",
        took.as_secs_f64()
    );
}

/// One `virsh domstats` (all groups): every VM answers; the hung ones are
/// stale with the reason; returns the time it took.
fn all_vms_answer(d: &Daemon) -> f64 {
    let (took, s) = domstats(&d.uri, &[]);
    assert_eq!(s.len(), VMS + 1, "every VM answers");
    for i in 0..HUNG {
        let f = &s[&format!("vm{i:03}")];
        assert!(stale(f), "hung vm{i:03} not marked stale: {f:?}");
        assert!(f["state.stats.reason"].contains("did not answer"), "{f:?}");
    }
    took.as_secs_f64()
}

/// The VM whose block job holds its async job still gets fresh figures:
/// statistics never wait for a job.
fn block_job_vm_stays_fresh(d: &Daemon) {
    let fresh = wait::until(Duration::from_secs(30), || {
        let (_, s) = domstats(&d.uri, &["--state", "--block", "bj"]);
        s.get("bj")
            .is_some_and(|f| !stale(f) && f.contains_key("block.0.rd.bytes"))
    });
    // The progress bar goes to stderr.
    let o = d.virsh(&["blockjob", "bj", "vda", "--info"]);
    let job = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        job.contains("Block Copy"),
        "the block job still runs: {job}"
    );
    assert!(fresh, "bj never had fresh statistics during its block job");
}

/// The endpoint's counters moved with the flood, the hung monitors and
/// the client dropped for not reading.
fn counters_moved(d: &Daemon, addr: &str, before: &HashMap<String, f64>) {
    let moved = |m: &HashMap<String, f64>, k: &str| metric(m, k) > metric(before, k);
    let mut now = HashMap::new();
    let ok = wait::until(Duration::from_secs(30), || {
        now = scrape(addr);
        moved(&now, "ferrovirt_events_coalesced_total{}")
            && moved(&now, "ferrovirt_stats_round_failures_total{}")
            && moved(&now, "ferrovirt_monitor_deadline_misses_total{}")
            && moved(&now, "ferrovirt_clients_dropped_slow_total{}")
    });
    for k in [
        "ferrovirt_events_coalesced_total{}",
        "ferrovirt_event_overflows_total{}",
        "ferrovirt_events_dropped_total{}",
        "ferrovirt_stats_round_failures_total{}",
        "ferrovirt_monitor_deadline_misses_total{}",
        "ferrovirt_clients_dropped_slow_total{}",
        "ferrovirt_monitors_unresponsive{}",
        "ferrovirt_event_queue_high_water{}",
    ] {
        println!("{k}: {} -> {}", metric(before, k), metric(&now, k));
    }
    assert!(ok, "counters did not move\n{}", tail(&d.log(), 30));
    assert!(metric(&now, "ferrovirt_monitors_unresponsive{}") >= HUNG as f64);
    assert_eq!(metric(&now, "ferrovirt_domains_active{}"), (VMS + 1) as f64);
    assert!(metric(&now, "ferrovirt_stats_stale_domains{}") >= HUNG as f64);
    let rtt = "ferrovirt_monitor_round_trip_seconds_count{}";
    assert!(metric(&now, rtt) > metric(before, rtt));
    let hold = "ferrovirt_job_hold_seconds_count{kind=modify}";
    assert!(
        metric(&now, hold) >= (VMS + 1) as f64,
        "every start held a job"
    );
    let rpc = "ferrovirt_rpc_duration_seconds_count{procedure=CONNECT_GET_ALL_DOMAIN_STATS}";
    assert!(metric(&now, rpc) >= 10.0);
    let vm = "ferrovirt_domain_block_read_bytes_total{disk=vda,domain=bj,uuid=";
    assert!(now.keys().any(|k| k.starts_with(vm)), "per-VM disk series");
}

/// A fixed free port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn prometheus_libvirt_exporter_scrapes_ferrovirtd() {
    let exporter = Path::new("/usr/bin/prometheus-libvirt-exporter");
    assert!(
        exporter.exists(),
        "apt-get install prometheus-libvirt-exporter"
    );
    let d = Daemon::start_with("stats_interval_secs = 1\n");
    start_all(
        &d,
        vec![
            ("e1".into(), sim_disk_xml(&d, "e1", &[])),
            ("e2".into(), sim_disk_xml(&d, "e2", &[])),
        ],
    );
    wait_all_fresh(&d, 2);
    let port = free_port();
    let mut child = Command::new(exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--libvirt.uri={}", d.uri))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the exporter");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut body = String::new();
    let up = wait::until(Duration::from_secs(30), || {
        let out = Command::new("curl")
            .args(["-sf", &url])
            .output()
            .expect("curl");
        body = String::from_utf8_lossy(&out.stdout).into_owned();
        body.contains("libvirt_up")
    });
    let _ = child.kill();
    let stderr = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(up, "the exporter never answered: {stderr:?}");
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    assert_eq!(
        line("libvirt_up ").as_deref(),
        Some("libvirt_up 1"),
        "scrape failed: {stderr:?}\n{body}"
    );
    let reads = body
        .lines()
        .filter(|l| {
            l.starts_with("libvirt_domain_block_stats_read_bytes_total{")
                && l.contains("target_device=\"vda\"")
        })
        .count();
    assert_eq!(reads, 2, "both VMs' disks\n{body}");
    assert!(
        line("libvirt_domain_info_virtual_cpus{").is_some(),
        "{body}"
    );
    println!(
        "{}",
        body.lines()
            .filter(|l| l.starts_with("libvirt_domain"))
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A VM that starts is sampled at the poller's next slice (a twentieth of
/// the interval), not one interval later.
#[test]
fn a_new_vm_is_sampled_within_a_slice_of_the_interval() {
    let d = Daemon::start_with("stats_interval_secs = 60\n");
    let t0 = Instant::now();
    start_all(&d, vec![("n1".into(), sim_disk_xml(&d, "n1", &[]))]);
    let fresh = wait::until(Duration::from_secs(30), || {
        let (_, s) = domstats(&d.uri, &["--state", "--block"]);
        s.get("n1")
            .is_some_and(|f| !stale(f) && f.contains_key("block.0.rd.reqs"))
    });
    println!(
        "first sample {:.1} s after the start call (interval 60 s)",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        fresh,
        "no sample within half the interval\n{}",
        tail(&d.log(), 20)
    );
}
