//! CPU models end to end: `virsh cpu-models`, `cpu-baseline`,
//! `hypervisor-cpu-baseline` and `hypervisor-cpu-compare`, and
//! libvirt-python's `baselineHypervisorCPU` as KubeVirt calls it, against
//! what the real QEMU reports; the baseline a client gets back starts a
//! real guest (its model and feature names are ones `-cpu` takes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Daemon, define_start, tail};

const T: Duration = Duration::from_secs(60);

const HASWELL: &str = "<cpu>\n  <arch>x86_64</arch>\n  <model>Haswell-noTSX</model>\n  \
     <vendor>Intel</vendor>\n  <feature name='lahf_lm'/>\n  <feature name='vmx'/>\n</cpu>\n";
const WESTMERE: &str = "<cpu>\n  <arch>x86_64</arch>\n  <model>Westmere</model>\n  \
     <vendor>Intel</vendor>\n  <feature name='vmx'/>\n</cpu>\n";

fn model_of(cpu_xml: &str) -> String {
    let start = cpu_xml.find("<model").expect("a model");
    let from = cpu_xml[start..].find('>').unwrap() + start + 1;
    let to = cpu_xml[from..].find("</model>").unwrap() + from;
    cpu_xml[from..to].to_owned()
}

#[test]
fn models_baselines_and_comparisons_real() {
    let d = Daemon::start();
    let models = d.virsh_ok(&["cpu-models", "x86_64"]);
    let names: Vec<&str> = models.lines().map(str::trim).collect();
    for m in ["qemu64", "Westmere", "Haswell-noTSX", "Skylake-Client"] {
        assert!(names.contains(&m), "{m} missing from {models}");
    }
    assert!(
        !names.contains(&"max") && !names.contains(&"host"),
        "{models}"
    );
    assert!(!d.virsh(&["cpu-models", "aarch64"]).status.success());

    // Two Intel CPUs: Westmere holds less, so the baseline is no richer
    // than Westmere and keeps vmx, which both have; for the hypervisor
    // (TCG, no vmx) vmx goes.
    let both = d.file("two-cpus.xml", &format!("{HASWELL}{WESTMERE}"));
    let both = both.to_string_lossy().into_owned();
    let base = d.virsh_ok(&["cpu-baseline", &both]);
    assert!(base.contains("<vendor>Intel</vendor>"), "{base}");
    assert!(base.contains("vmx"), "{base}");
    assert!(
        !base.contains("avx2"),
        "Haswell's avx2 is not shared: {base}"
    );
    let model = model_of(&base);
    assert!(names.contains(&model.as_str()), "{model}");

    // For the hypervisor: a model TCG runs as it is; expanded features.
    let hv = d.virsh_ok(&[
        "hypervisor-cpu-baseline",
        "--virttype",
        "qemu",
        "--features",
        &both,
    ]);
    let hv_model = model_of(&hv);
    let hv_file = d.file("baseline.xml", &hv);
    let out = d.virsh_ok(&[
        "hypervisor-cpu-compare",
        "--virttype",
        "qemu",
        &hv_file.to_string_lossy(),
    ]);
    assert!(
        out.contains("superset"),
        "TCG cannot run {hv_model}: {out}\n{hv}"
    );
    for f in ["sse2", "lahf-lm"] {
        assert!(
            hv.contains(&format!("name='{f}'")),
            "{f} not expanded: {hv}"
        );
    }

    // Compare: qemu64 is provided; Skylake-Client's pcid and friends are
    // not under TCG; --error makes that an error.
    let q = d.file(
        "qemu64.xml",
        "<cpu mode='custom' match='exact'><model>qemu64</model></cpu>",
    );
    let out = d.virsh_ok(&[
        "hypervisor-cpu-compare",
        "--virttype",
        "qemu",
        &q.to_string_lossy(),
    ]);
    assert!(out.contains("superset"), "{out}");
    let sky = d.file(
        "skylake.xml",
        "<cpu mode='custom' match='exact'><model>Skylake-Client</model></cpu>",
    );
    let sky = sky.to_string_lossy().into_owned();
    // virsh exits 1 for an incompatible CPU, and says so.
    let o = d.virsh(&["hypervisor-cpu-compare", "--virttype", "qemu", &sky]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("incompatible"), "{out}");
    let o = d.virsh(&[
        "hypervisor-cpu-compare",
        "--virttype",
        "qemu",
        "--error",
        &sky,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("does not provide required features"), "{err}");

    // Unknown models and broken XML get errors, not a guess.
    let bad = d.file("bad.xml", "<cpu><model>Pentium-9000</model></cpu>");
    let o = d.virsh(&["cpu-baseline", &bad.to_string_lossy()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Unknown CPU model"));

    // The baseline a client gets back runs a real guest as its CPU.
    let xml = common::real_domain_xml("cpub")
        .replace("type='kvm'", "type='qemu'")
        .replace("</os>", &format!("</os>\n  {}", hv.trim()));
    define_start(&d, "cpub", &xml);
    d.wait_state("cpub", "running (booted)", T);
    let live = d.virsh_ok(&["dumpxml", "cpub"]);
    assert!(live.contains(&hv_model), "{live}\n{}", tail(&d.log(), 20));
}

#[test]
fn libvirt_python_baseline_as_kubevirt_calls_it() {
    let d = Daemon::start();
    let script = format!(
        r#"
import libvirt
c = libvirt.open('{uri}')
cpu = """{HASWELL}"""
flags = libvirt.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES
x = c.baselineHypervisorCPU(None, 'x86_64', None, 'qemu', [cpu], flags)
print('features', x.count('<feature'))
print('names', len(c.getCPUModelNames('x86_64', 0)))
print('compare', c.compareHypervisorCPU(None, 'x86_64', None, 'qemu', cpu, 0))
try:
    c.baselineHypervisorCPU(None, 'aarch64', None, None, [cpu], 0)
    print('accepted aarch64')
except libvirt.libvirtError as e:
    print('aarch64', e.get_error_code())
"#,
        uri = d.uri
    );
    let out = testkit::tools::python3()
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&d.log(), 30)
    );
    let num = |key: &str| -> i64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {stdout}"))
    };
    assert!(num("features") > 20, "{stdout}");
    assert!(num("names") > 20, "{stdout}");
    // Haswell needs features TCG lacks: incompatible (0).
    assert_eq!(num("compare"), 0, "{stdout}");
    assert_eq!(num("aarch64"), 8, "VIR_ERR_INVALID_ARG: {stdout}");
}
