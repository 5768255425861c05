//! What the driver learns about an emulator binary, probed over QMP once
//! per binary: from qemu-sim and from the real QEMU.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use qemu::{Driver, EmulatorCaps};

const DEVICES: [&str; 4] = ["virtio-rng-pci", "qxl-vga", "ich9-intel-hda", "tpm-crb"];

fn check_common(caps: &EmulatorCaps) {
    let q35 = caps
        .machines
        .iter()
        .find(|m| m.alias.as_deref() == Some("q35"))
        .expect("a machine aliased q35");
    assert!(q35.name.starts_with("pc-q35-"), "{q35:?}");
    assert!(q35.cpu_max.is_some_and(|n| n >= 255), "{q35:?}");
    assert!(caps.machines.iter().any(|m| m.is_default));
    assert!(
        caps.resolve_machine(Some("pc"))
            .unwrap()
            .starts_with("pc-i440fx-")
    );
    for d in DEVICES {
        assert!(caps.has_device(d), "{d} missing");
    }
    assert!(!caps.has_device("no-such-device"));
    let qemu64 = caps.cpu_model("qemu64").expect("qemu64");
    assert_eq!(qemu64.typename, "qemu64-x86_64-cpu");
    assert!(qemu64.unavailable_features.is_some());
    // The host model is expanded exactly when the probe ran under KVM.
    let under_kvm = format!("{:?}", caps.probed_with) == "Kvm";
    assert_eq!(caps.host_cpu.is_some(), under_kvm, "{:?}", caps.probed_with);
    if let Some(h) = &caps.host_cpu {
        assert!(!h.features.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_sim_caps_are_probed_once() {
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let sim = sim_path();
    let caps = drv.emulator_caps(Some(&sim)).await.unwrap();
    assert_eq!(caps.version, (7, 2, 0));
    assert_eq!(caps.package, "qemu-sim");
    check_common(&caps);
    let again = drv.emulator_caps(Some(&sim)).await.unwrap();
    assert!(Arc::ptr_eq(&caps, &again), "cached per binary");
    let e = drv
        .emulator_caps(Some(Path::new("/nonexistent/qemu")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot find emulator"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_caps_name_its_version_machines_cpus_and_devices() {
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let caps = drv.emulator_caps(None).await.unwrap();
    assert!(caps.version >= (7, 0, 0), "{:?}", caps.version);
    check_common(&caps);
    println!(
        "QEMU {:?} ({}): {} machines, {} CPU models, {} device models, probed with {:?}",
        caps.version,
        caps.package,
        caps.machines.len(),
        caps.cpu_models.len(),
        caps.device_types.len(),
        caps.probed_with
    );
    // No probe QEMU is left behind.
    let probes = qemu::process::pids_with_arg(&root.path().to_string_lossy());
    assert!(probes.is_empty(), "probe QEMUs left: {probes:?}");
}
