//! `virsh domjobinfo --completed [--keep-completed]` end to end: the
//! statistics of the last async job that ended, read once unless kept,
//! and kept across a daemon restart while the domain runs.
//!
//! One VM per test; waits poll with a deadline, nothing sleeps to
//! synchronise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Daemon, define_start, tail, wait_until};

const T: Duration = Duration::from_secs(60);

/// The value of `label` in virsh's `domjobinfo` output ("Job type:").
fn value<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
}

/// A figure ("Memory processed: 63.148 MiB", "Time elapsed: 45 ms") as a
/// number, unit dropped.
fn size(out: &str, label: &str) -> f64 {
    let v = value(out, label).unwrap_or_else(|| panic!("no '{label}' in\n{out}"));
    let num = v.split_whitespace().next().unwrap_or("");
    num.parse()
        .unwrap_or_else(|_| panic!("'{label}' is not a size: {v}"))
}

fn job_type(out: &str) -> &str {
    value(out, "Job type:").unwrap_or_else(|| panic!("no job type in\n{out}"))
}

#[test]
fn completed_save_stats_real() {
    let d = Daemon::start();
    let xml = common::real_domain_xml("js").replace("type='kvm'", "type='qemu'");
    define_start(&d, "js", &xml);
    let before = d.virsh_ok(&["domjobinfo", "js", "--completed"]);
    assert_eq!(job_type(&before), "None", "{before}");

    let img = d.root.path().join("js.save");
    d.virsh_ok(&["save", "js", &img.to_string_lossy()]);
    d.wait_state("js", "shut off (saved)", T);

    let kept = d.virsh_ok(&["domjobinfo", "js", "--completed", "--keep-completed"]);
    println!("domjobinfo --completed --keep-completed:\n{kept}");
    assert_eq!(job_type(&kept), "Completed", "{kept}");
    assert_eq!(value(&kept, "Operation:"), Some("Save"), "{kept}");
    assert!(size(&kept, "Memory processed:") > 0.0, "{kept}");
    assert!(size(&kept, "Data processed:") > 0.0, "{kept}");
    assert!(size(&kept, "Memory total:") > 0.0, "{kept}");
    assert!(size(&kept, "Time elapsed:") > 0.0, "{kept}");

    // Without --keep-completed the read discards them: shown once more,
    // then gone.
    let read = d.virsh_ok(&["domjobinfo", "js", "--completed"]);
    assert_eq!(job_type(&read), "Completed", "{read}");
    assert_eq!(
        value(&read, "Memory processed:"),
        value(&kept, "Memory processed:")
    );
    let gone = d.virsh_ok(&["domjobinfo", "js", "--completed"]);
    assert_eq!(job_type(&gone), "None", "{gone}");
    let running = d.virsh_ok(&["domjobinfo", "js"]);
    assert_eq!(job_type(&running), "None", "{running}");
}

#[test]
fn cancelled_save_stats_survive_restart_sim() {
    let mut d = Daemon::start();
    let xml = common::sim_domain_xml("jc", &["-sim-job-ms", "3000"]);
    define_start(&d, "jc", &xml);
    let img = d.root.path().join("jc.save");
    let (uri, p) = (d.uri.clone(), img.to_string_lossy().into_owned());
    let saver = std::thread::spawn(move || common::virsh(&uri, &["save", "jc", &p]));
    wait_until("save job", T, || {
        job_type(&d.virsh_ok(&["domjobinfo", "jc"])) == "Unbounded"
    });
    d.virsh_ok(&["domjobabort", "jc"]);
    assert!(!saver.join().expect("saver").status.success());
    d.wait_state("jc", "running (save canceled)", T);

    let args = ["domjobinfo", "jc", "--completed", "--keep-completed"];
    let out = d.virsh_ok(&args);
    println!("after abort:\n{out}");
    assert_eq!(job_type(&out), "Cancelled", "{out}");
    let any = d.virsh_ok(&[&args[..], &["--anystats"]].concat());
    println!("after abort, --anystats:\n{any}");
    assert_eq!(value(&any, "Operation:"), Some("Save"), "{any}");

    // The domain still runs, so its status file carries the record.
    d.kill();
    d.spawn();
    let out = d.virsh_ok(&["domjobinfo", "jc", "--completed"]);
    assert_eq!(job_type(&out), "Cancelled", "{out}\n{}", tail(&d.log(), 30));
    let gone = d.virsh_ok(&["domjobinfo", "jc", "--completed"]);
    assert_eq!(job_type(&gone), "None", "{gone}");
    // The discard reached the status file: a second restart keeps it gone.
    d.kill();
    d.spawn();
    let still = d.virsh_ok(&["domjobinfo", "jc", "--completed"]);
    assert_eq!(job_type(&still), "None", "{still}");
}

/// A save or a state dump whose stream moves nothing (a hung disk) fails
/// within `migration_stall_timeout_secs` instead of holding the domain's
/// job forever: the guest runs on, the image is gone, the job is free.
#[test]
fn a_stalled_save_or_dump_fails_within_the_stall_deadline() {
    let d = Daemon::start_with("migration_stall_timeout_secs = 2\n");
    let ctl = d.qemu_dir().join("st.ctl");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let xml = common::sim_domain_xml("st", &["-sim-job-ms", "200", "-sim-control", &ctl_s]);
    define_start(&d, "st", &xml);
    assert!(common::sim_control(&ctl, "stall-migration on").starts_with("ok"));
    for (verb, name) in [("save", "st.save"), ("dump", "st.dump")] {
        let img = d.root.path().join(name);
        // Bounded here too: without the deadline the call never returns.
        let out = std::process::Command::new("timeout")
            .args(["60", "virsh", "-c", &d.uri, verb, "st"])
            .arg(&img)
            .output()
            .expect("run virsh");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{verb} succeeded");
        assert!(err.contains("sent nothing for 2 s"), "{verb}: {err}");
        assert!(!img.exists(), "{verb} left its image");
        wait_until("the guest running again", T, || {
            d.virsh_ok(&["domstate", "st"]).trim() == "running"
        });
        let job = d.virsh_ok(&["domjobinfo", "st"]);
        assert_eq!(job_type(&job), "None", "{job}");
    }
    // Lifted, the same save goes through.
    assert!(common::sim_control(&ctl, "stall-migration off").starts_with("ok"));
    let img = d.root.path().join("st.save");
    d.virsh_ok(&["save", "st", &img.to_string_lossy()]);
}
