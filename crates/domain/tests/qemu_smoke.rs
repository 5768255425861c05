//! Real QEMU accepts the argv of a minimal domain: it starts paused
//! (prelaunch), answers QMP, reports the machine names and aliases
//! EmulatorCaps resolves against, and quits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{RawQmp, TempDir};
use domain::{Accel, DomainDef, EmulatorCaps, MachineType, build_argv};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn minimal_domain_reaches_prelaunch() {
    common::require_qemu();
    let started = Instant::now();
    let accel = common::test_accel();
    let dir = TempDir::new("smoke");
    let ty = if accel == Accel::Kvm { "kvm" } else { "qemu" };
    let def = DomainDef::parse(&format!(
        "<domain type='{ty}'><name>smoke</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os>\
         <features><acpi/></features><devices><serial type='pty'/></devices></domain>"
    ))
    .unwrap();
    let (launch, caps) = common::real_launch(&dir, accel);
    let argv = build_argv(&def, &caps, &launch).unwrap();
    let mut child = Command::new(def.emulator())
        .args(&argv)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn qemu");
    let mut qmp = RawQmp::connect(&launch.qmp_socket, Duration::from_secs(20));
    let status = qmp.execute("query-status", None);
    assert_eq!(status["status"], "prelaunch", "{status}");
    assert_eq!(status["running"], false);
    let pid: u32 = std::fs::read_to_string(launch.pidfile.as_ref().expect("a pidfile"))
        .expect("-pidfile written")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pid, child.id());

    let version = qmp.execute("query-version", None);
    let machines = qmp.execute("query-machines", None);
    let probed = caps_of(&version, &machines, accel == Accel::Kvm);
    assert!(probed.version >= (6, 0, 0), "{:?}", probed.version);
    let q35 = probed.resolve_machine(None).unwrap();
    assert!(q35.starts_with("pc-q35-"), "{q35}");
    assert!(
        probed
            .resolve_machine(Some("pc"))
            .unwrap()
            .starts_with("pc-i440fx-")
    );

    let chardevs = qmp.execute("query-chardev", None);
    assert!(
        chardevs
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["label"] == "charserial0"
                && c["filename"].as_str().unwrap_or("").starts_with("pty:")),
        "{chardevs}"
    );
    qmp.execute("quit", None);
    let st = child.wait().unwrap();
    assert!(st.success(), "qemu exit status {st}");
    eprintln!("smoke ({accel:?}) took {:?}", started.elapsed());
}

/// EmulatorCaps from raw `query-version` / `query-machines` replies: only
/// what resolving machine names needs (the driver's probe fills the rest).
fn caps_of(version: &serde_json::Value, machines: &serde_json::Value, kvm: bool) -> EmulatorCaps {
    let num = |k: &str| version["qemu"][k].as_u64().unwrap() as u32;
    let machines = machines
        .as_array()
        .unwrap()
        .iter()
        .map(|m| MachineType {
            name: m["name"].as_str().unwrap().to_owned(),
            alias: m["alias"].as_str().map(str::to_owned),
            is_default: m["is-default"] == true,
            cpu_max: m["cpu-max"].as_u64().map(|n| n as u32),
            ..MachineType::default()
        })
        .collect();
    EmulatorCaps {
        version: (num("major"), num("minor"), num("micro")),
        machines,
        kvm,
        ..EmulatorCaps::default()
    }
}
