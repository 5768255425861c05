//! Runs `bench all --smoke` (ferrovirtd + qemu-sim only; nothing to
//! install, ~1 minute) and checks that the JSON holds every scenario with
//! sane numbers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::process::Command;

use serde_json::Value;

/// ferrovirtd and qemu-sim are other packages' binaries: built into the
/// same target directory if they are not there yet.
fn ensure_bins() {
    for name in ["ferrovirtd", "qemu-sim"] {
        testkit::binaries::build(name).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} missing or not a number in {x}", path.join(".")))
}

#[test]
fn smoke_mode_covers_every_scenario() {
    ensure_bins();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("smoke.json");
    let st = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["all", "--smoke", "--no-report", "--out"])
        .arg(&out)
        .status()
        .expect("run bench");
    assert!(st.success(), "bench --smoke failed: {st}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("json written"))
        .expect("valid JSON");
    assert_eq!(v["mode"], "smoke");
    let sc = &v["scenarios"];
    for name in ["rpc", "flood", "hung", "events", "scale"] {
        let rows = sc[name]
            .as_array()
            .unwrap_or_else(|| panic!("scenario {name} missing"));
        assert!(!rows.is_empty(), "scenario {name} has no rows");
        for r in rows {
            assert!(r.get("error").is_none(), "{name} failed: {r}");
            assert_eq!(
                r["daemon"], "ferrovirtd",
                "{name}: smoke runs ferrovirtd only"
            );
        }
    }

    // Disk hot-plug on the booted test guest (real QEMU): every round
    // completed, the guest released the disk within the daemon's wait.
    let hp = &sc["hotplug"][0];
    assert!(hp.get("error").is_none(), "hotplug failed: {hp}");
    assert_eq!(num(hp, &["rounds"]), 5.0, "{hp}");
    let (attach, trip) = (
        num(hp, &["attach", "p50_us"]),
        num(hp, &["round_trip", "p50_us"]),
    );
    assert!(attach > 0.0 && trip >= attach, "{hp}");
    assert_eq!(num(hp, &["pending"]), 0.0, "{hp}");

    // Migration: the tiny guest idle and dirtying memory (pre-copy, and
    // switched to post-copy) moved both ways, and the flooded migration
    // kept its rate and its probes answered.
    let mig = &sc["migration"][0];
    assert!(mig.get("error").is_none(), "migration failed: {mig}");
    let guests = mig["guests"].as_array().expect("migration guests");
    assert_eq!(guests.len(), 3, "{mig}");
    for g in guests {
        assert!(g.get("error").is_none(), "{g}");
        assert_eq!(num(g, &["rounds"]), 2.0, "{g}");
    }
    let flood = &mig["flood"];
    assert!(flood.get("error").is_none(), "{flood}");
    assert!(num(flood, &["achieved_ev_s"]) > 5000.0, "{flood}");
    assert_eq!(num(flood, &["during_others", "errors"]), 0.0, "{flood}");
    assert_eq!(num(flood, &["during_migrating", "errors"]), 0.0, "{flood}");
    assert!(num(flood, &["destination_cleared_s"]) < 30.0, "{flood}");

    // 1. rpc: every cell ran, with positive throughput and ordered percentiles
    let cells = sc["rpc"][0]["cells"].as_array().expect("rpc cells");
    assert_eq!(cells.len(), 4, "1 N x 2 calls x 2 client counts");
    for c in cells {
        assert!(num(c, &["ops_per_s"]) > 50.0, "rpc too slow: {c}");
        assert_eq!(num(c, &["errors"]), 0.0, "rpc errors: {c}");
        let (p50, p99, max) = (
            num(c, &["p50_us"]),
            num(c, &["p99_us"]),
            num(c, &["max_us"]),
        );
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "percentiles: {c}");
    }

    // 2. flood: events went through, the daemon kept answering, memory bounded
    let cases = sc["flood"][0]["cases"].as_array().expect("flood cases");
    assert_eq!(cases.len(), 4);
    for c in cases {
        assert!(c.get("error").is_none(), "flood case failed: {c}");
        // loose: CI runs debug builds beside other tests
        let target = num(c, &["target_ev_s"]);
        assert!(
            num(c, &["achieved_ev_s"]) > (target * 0.1).min(1000.0),
            "flood did not flow: {c}"
        );
        assert!(
            c["responsive_after_post_s"].is_number(),
            "daemon stopped answering: {c}"
        );
        assert!(
            num(c, &["others_flood", "success_rate"]) >= 0.99,
            "quiet VMs failed: {c}"
        );
        assert!(num(c, &["others_flood", "p99_us"]) > 0.0);
        assert!(
            num(c, &["daemon_flood", "rss_mib_peak"]) < 512.0,
            "RSS grew: {c}"
        );
        assert!(num(c, &["daemon_flood", "cpu_pct_mean"]) >= 0.0);
    }
    let lifecycle = cases
        .iter()
        .find(|c| c["event"] == "STOP_RESUME")
        .expect("STOP_RESUME case");
    assert!(
        num(lifecycle, &["listener", "received"]) > 0.0,
        "listener got no lifecycle events: {lifecycle}"
    );

    // 3. hung: the in-flight call came back through the monitor deadline,
    // others unaffected, destroy worked
    let h = &sc["hung"][0];
    let back = num(h, &["inflight", "after_s"]);
    assert!((1.0..30.0).contains(&back), "in-flight call: {h}");
    assert!(num(h, &["others_stuck", "success_rate"]) >= 0.99, "{h}");
    assert_eq!(h["destroy"]["result"], "ok", "{h}");
    assert!(num(h, &["destroy", "after_s"]) < 10.0);

    // 4. events: callbacks arrived, idle and during a job
    let e = &sc["events"][0];
    for k in ["idle", "during_job"] {
        assert!(num(e, &[k, "n"]) >= 5.0, "{k}: {e}");
        assert!(num(e, &[k, "p50_us"]) > 0.0);
        assert!(num(e, &[k, "p99_us"]) < 1e6, "{k}: {e}");
    }

    // 5. scale: all VMs started and came back after SIGKILL + restart
    let rows = sc["scale"][0]["rows"].as_array().expect("scale rows");
    for r in rows {
        let n = num(r, &["n"]);
        assert!(n >= 10.0);
        assert!(num(r, &["start", "total_s"]) > 0.0);
        assert_eq!(num(r, &["restart", "get_state_running"]), n, "{r}");
        assert!(num(r, &["restart", "all_running_s"]) > 0.0);
        assert!(num(r, &["daemon_after_start", "rss_mib"]) > 0.0);
    }

    // 6. transfer: a volume went up and came back through the streams,
    // with the daemon's memory flat
    let t = &sc["transfer"][0];
    assert!(t.get("error").is_none(), "transfer failed: {t}");
    assert_eq!(t["daemon"], "ferrovirtd");
    for phase in ["upload", "download"] {
        assert!(num(t, &[phase, "mib_per_s"]) > 1.0, "{phase}: {t}");
        assert!(num(t, &[phase, "cpu_s"]) >= 0.0);
        let grew = num(t, &[phase, "rss_mib_peak"]) - num(t, &[phase, "rss_mib_start"]);
        assert!(grew < 64.0, "{phase}: daemon grew {grew} MiB: {t}");
    }
}
