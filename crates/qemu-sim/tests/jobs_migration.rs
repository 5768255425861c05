//! Block jobs, migration, incoming migration, fd passing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;

use common::*;
use serde_json::json;

fn add_nodes(q: &mut Qmp, names: &[&str]) {
    for n in names {
        let r = q.cmd(&format!(
            r#"{{"execute":"blockdev-add","arguments":{{"driver":"null-co","node-name":"{n}"}}}}"#
        ));
        assert_eq!(r, json!({"return": {}}), "blockdev-add {n}");
    }
}

#[test]
fn mirror_sequence() {
    let sim = Sim::spawn(&["-sim-job-ms", "200"]);
    let mut q = sim.qmp();
    add_nodes(&mut q, &["src", "dst"]);
    let r = q.cmd(r#"{"execute":"blockdev-mirror","arguments":{"job-id":"j1","device":"src","target":"dst","sync":"full"}}"#);
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(
        q.event_names(4),
        vec![
            "JOB_STATUS_CHANGE:created",
            "JOB_STATUS_CHANGE:running",
            "JOB_STATUS_CHANGE:ready",
            "BLOCK_JOB_READY"
        ]
    );
    let r = q.cmd(r#"{"execute":"query-block-jobs"}"#);
    assert_eq!(r["return"][0]["ready"], true);
    assert_eq!(r["return"][0]["type"], "mirror");
    let r = q.cmd(r#"{"execute":"query-jobs"}"#);
    assert_eq!(r["return"][0]["status"], "ready");
    let r = q.cmd(r#"{"execute":"blockdev-del","arguments":{"node-name":"dst"}}"#);
    assert!(r["error"]["desc"].as_str().unwrap().contains("busy"));
    let r = q.cmd(r#"{"execute":"job-complete","arguments":{"id":"j1"}}"#);
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(
        q.event_names(5),
        vec![
            "JOB_STATUS_CHANGE:waiting",
            "JOB_STATUS_CHANGE:pending",
            "BLOCK_JOB_COMPLETED",
            "JOB_STATUS_CHANGE:concluded",
            "JOB_STATUS_CHANGE:null"
        ]
    );
    assert_eq!(q.cmd(r#"{"execute":"query-jobs"}"#)["return"], json!([]));
    assert_eq!(
        q.cmd(r#"{"execute":"blockdev-del","arguments":{"node-name":"dst"}}"#)["return"],
        json!({})
    );
}

#[test]
fn stream_without_auto_dismiss_and_finalize() {
    let sim = Sim::spawn(&["-sim-job-ms", "100"]);
    let mut q = sim.qmp();
    add_nodes(&mut q, &["top"]);
    q.cmd(r#"{"execute":"block-stream","arguments":{"job-id":"s","device":"top","auto-dismiss":false,"auto-finalize":false}}"#);
    assert_eq!(
        q.event_names(4),
        vec![
            "JOB_STATUS_CHANGE:created",
            "JOB_STATUS_CHANGE:running",
            "JOB_STATUS_CHANGE:waiting",
            "JOB_STATUS_CHANGE:pending"
        ]
    );
    let r = q.cmd(r#"{"execute":"job-dismiss","arguments":{"id":"s"}}"#);
    assert_eq!(
        r["error"]["desc"],
        "Job 's' in state 'pending' cannot accept command verb 'dismiss'"
    );
    q.cmd(r#"{"execute":"job-finalize","arguments":{"id":"s"}}"#);
    assert_eq!(
        q.event_names(2),
        vec!["BLOCK_JOB_COMPLETED", "JOB_STATUS_CHANGE:concluded"]
    );
    assert_eq!(
        q.cmd(r#"{"execute":"query-jobs"}"#)["return"][0]["status"],
        "concluded"
    );
    q.cmd(r#"{"execute":"job-dismiss","arguments":{"id":"s"}}"#);
    assert_eq!(q.event_names(1), vec!["JOB_STATUS_CHANGE:null"]);
}

#[test]
fn cancel_and_commit_and_errors() {
    let sim = Sim::spawn(&["-sim-job-ms", "60000"]);
    let mut q = sim.qmp();
    add_nodes(&mut q, &["a", "b"]);
    let r = q.cmd(r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"a"}}"#);
    assert_eq!(r["error"]["desc"], "Duplicate nodes with node-name='a'");
    let r = q.cmd(r#"{"execute":"blockdev-del","arguments":{"node-name":"zz"}}"#);
    assert_eq!(
        r["error"]["desc"],
        "Failed to find node with node-name='zz'"
    );
    let r = q.cmd(r#"{"execute":"block-commit","arguments":{"job-id":"c","device":"nope"}}"#);
    assert_eq!(r["error"]["class"], "GenericError");
    let r = q.cmd(
        r#"{"execute":"block-commit","arguments":{"job-id":"c","device":"a","speed":"fast"}}"#,
    );
    assert_eq!(
        r["error"]["desc"],
        "Invalid parameter type for 'speed', expected: integer"
    );
    q.cmd(r#"{"execute":"block-commit","arguments":{"job-id":"c","device":"a"}}"#);
    assert_eq!(
        q.event_names(2),
        vec!["JOB_STATUS_CHANGE:created", "JOB_STATUS_CHANGE:running"]
    );
    let r = q.cmd(r#"{"execute":"block-stream","arguments":{"job-id":"c","device":"b"}}"#);
    assert_eq!(r["error"]["desc"], "Job ID 'c' already in use");
    let r = q.cmd(r#"{"execute":"job-complete","arguments":{"id":"c"}}"#);
    assert!(
        r["error"]["desc"]
            .as_str()
            .unwrap()
            .contains("cannot accept command verb 'complete'")
    );
    q.cmd(r#"{"execute":"block-job-set-speed","arguments":{"device":"c","speed":1000}}"#);
    let r = q.cmd(r#"{"execute":"query-block-jobs"}"#);
    assert_eq!(r["return"][0]["speed"], 1000);
    assert_eq!(r["return"][0]["type"], "commit");
    let r = q.cmd(r#"{"execute":"block-job-cancel","arguments":{"device":"zz"}}"#);
    assert_eq!(r["error"]["class"], "DeviceNotActive");
    q.cmd(r#"{"execute":"job-cancel","arguments":{"id":"c"}}"#);
    assert_eq!(
        q.event_names(4),
        vec![
            "JOB_STATUS_CHANGE:aborting",
            "BLOCK_JOB_CANCELLED",
            "JOB_STATUS_CHANGE:concluded",
            "JOB_STATUS_CHANGE:null"
        ]
    );
    let r = q.cmd(r#"{"execute":"job-cancel","arguments":{"id":"c"}}"#);
    assert_eq!(r["error"]["desc"], "Job not found");
}

fn enable_events(q: &mut Qmp) {
    let r = q.cmd(r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}"#);
    assert_eq!(r, json!({"return": {}}));
}

#[test]
fn migrate_to_file_and_restore() {
    let src = Sim::spawn(&["-sim-job-ms", "200", "-name", "vm"]);
    let file = src.dir.path().join("state.bin");
    let mut q = src.qmp();
    enable_events(&mut q);
    let r = q.cmd(&format!(
        r#"{{"execute":"migrate","arguments":{{"uri":"file:{}"}}}}"#,
        file.display()
    ));
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(
        q.event_names(4),
        vec![
            "MIGRATION:setup",
            "MIGRATION:active",
            "STOP",
            "MIGRATION:completed"
        ]
    );
    assert_eq!(status(&mut q), "postmigrate");
    let r = q.cmd(r#"{"execute":"query-migrate"}"#);
    assert_eq!(r["return"]["status"], "completed");
    assert_eq!(r["return"]["ram"]["remaining"], 0);
    let data = std::fs::read_to_string(&file).unwrap();
    assert!(data.starts_with("QEMU-SIM-MIGRATION 1\n"));

    let dst = Sim::spawn(&["-S", "-incoming", "defer"]);
    let mut d = dst.qmp();
    assert_eq!(status(&mut d), "inmigrate");
    enable_events(&mut d);
    let r = d.cmd(&format!(
        r#"{{"execute":"migrate-incoming","arguments":{{"uri":"file:{}"}}}}"#,
        file.display()
    ));
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(
        d.event_names(3),
        vec!["MIGRATION:setup", "MIGRATION:active", "MIGRATION:completed"]
    );
    assert_eq!(status(&mut d), "paused");
    d.cmd(r#"{"execute":"cont"}"#);
    assert_eq!(d.event_names(1), vec!["RESUME"]);
    let r = d.cmd(r#"{"execute":"migrate-incoming","arguments":{"uri":"file:/x"}}"#);
    assert_eq!(r["error"]["class"], "GenericError");
}

#[test]
fn migrate_exec_and_incoming_option() {
    let src = Sim::spawn(&["-sim-job-ms", "100", "-S"]);
    let file = src.dir.path().join("exec.bin");
    let mut q = src.qmp();
    // No events capability: no MIGRATION events (as QEMU); poll query-migrate.
    q.cmd(&format!(
        r#"{{"execute":"migrate","arguments":{{"uri":"exec:cat > {}"}}}}"#,
        file.display()
    ));
    poll("migration completed", || {
        (q.cmd(r#"{"execute":"query-migrate"}"#)["return"]["status"] == "completed").then_some(())
    });
    assert!(
        q.events.is_empty(),
        "paused source: no STOP, no MIGRATION events"
    );
    assert_eq!(status(&mut q), "postmigrate");
    // Without -S the destination runs after loading.
    let dst = Sim::spawn(&["-incoming", &format!("exec:cat {}", file.display())]);
    let mut d = dst.qmp();
    poll("incoming done", || {
        (status(&mut d) == "running").then_some(())
    });
}

#[test]
fn migrate_cancel() {
    let src = Sim::spawn(&["-sim-job-ms", "60000"]);
    let mut q = src.qmp();
    enable_events(&mut q);
    q.cmd(r#"{"execute":"migrate","arguments":{"uri":"exec:cat > /dev/null"}}"#);
    assert_eq!(
        q.event_names(2),
        vec!["MIGRATION:setup", "MIGRATION:active"]
    );
    let r = q.cmd(r#"{"execute":"migrate","arguments":{"uri":"exec:true"}}"#);
    assert_eq!(
        r["error"]["desc"],
        "There's a migration process in progress"
    );
    q.cmd(r#"{"execute":"migrate_cancel"}"#);
    assert_eq!(
        q.event_names(2),
        vec!["MIGRATION:cancelling", "MIGRATION:cancelled"]
    );
    assert_eq!(status(&mut q), "running");
}

#[test]
fn migrate_to_fd_passed_with_getfd() {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let src = Sim::spawn(&["-sim-job-ms", "50"]);
    let mut q = src.qmp();
    let (rd, w) = nix::unistd::pipe().unwrap();
    let cmd = br#"{"execute":"getfd","arguments":{"fdname":"migfd"}}
"#;
    let fds = [w.as_raw_fd()];
    let iov = [std::io::IoSlice::new(cmd)];
    sendmsg::<()>(
        q.s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    drop(w);
    assert_eq!(q.reply(), json!({"return": {}}));
    let r = q.cmd(r#"{"execute":"getfd","arguments":{"fdname":"x"}}"#);
    assert_eq!(
        r["error"]["desc"],
        "No file descriptor supplied via SCM_RIGHTS"
    );
    q.cmd(r#"{"execute":"migrate","arguments":{"uri":"fd:migfd"}}"#);
    let mut data = String::new();
    std::fs::File::from(rd).read_to_string(&mut data).unwrap();
    assert!(data.starts_with("QEMU-SIM-MIGRATION 1\n"), "{data:?}");
    poll("migration completed", || {
        (q.cmd(r#"{"execute":"query-migrate"}"#)["return"]["status"] == "completed").then_some(())
    });
}
