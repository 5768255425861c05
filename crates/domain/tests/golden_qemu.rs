//! Real QEMU accepts the command line of every golden definition: each
//! starts paused, answers QMP with the devices we asked for, and quits.
//!
//! What needs the host or the driver is swapped for local stand-ins first
//! (disk images and logs in a temporary directory, user networking for
//! taps, a random RNG for EGD daemons, no swtpm, no huge pages, no
//! direct-boot kernel), and the
//! guest runs under TCG: the device models, buses, addresses and
//! properties are still the golden's own, which is what this checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{RawQmp, TempDir};
use domain::devices::chardev::ChrSource;
use domain::devices::graphics::GraphicsDef;
use domain::devices::rng::RngBackend;
use domain::{
    Accel, AllocationMode, CpuMode, DiskFormat, DomainDef, DomainType, HypervFeature,
    InterfaceType, LaunchParams, build_argv,
};

fn golden_inputs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".xml") && !n.ends_with(".out.xml") && !n.ends_with(".live.xml")
        })
        .collect();
    v.sort();
    v
}

/// A file of `bytes` zero bytes.
fn scratch(dir: &Path, name: &str, bytes: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(bytes).unwrap();
    p
}

/// Replaces what needs the host or the driver with local stand-ins.
fn localize(def: &mut DomainDef, dir: &Path) {
    def.domain_type = DomainType::Qemu;
    if let Some(cpu) = def.cpu.as_mut()
        && matches!(cpu.mode, CpuMode::HostPassthrough | CpuMode::HostModel)
    {
        // The host's CPU needs KVM; TCG's closest is its maximum model.
        cpu.mode = CpuMode::Maximum;
    }
    for (i, d) in def.devices.disks.iter_mut().enumerate() {
        if d.source.is_some() {
            d.source = Some(scratch(dir, &format!("disk{i}.img"), 1 << 20));
            d.disk_type = domain::DiskType::File;
            d.driver.format = Some(DiskFormat::Raw);
            d.driver.io = None;
            d.driver.cache = None;
        }
    }
    for n in &mut def.devices.interfaces {
        n.itype = InterfaceType::User;
        n.source = None;
        n.target_dev = None;
    }
    localize_chardevs(def, dir);
    for r in &mut def.devices.rngs {
        r.backend = RngBackend::Random("/dev/urandom".into());
    }
    def.devices.tpms.clear();
    // A direct-boot kernel must be a real one (guest_boot.rs boots one).
    def.os.kernel = None;
    def.os.initrd = None;
    def.os.cmdline = None;
    if let Some(b) = def.memory_backing.as_mut() {
        b.hugepages = None;
        b.allocation = Some(AllocationMode::Ondemand);
    }
    if let Some(h) = def.features.hyperv.as_mut() {
        // QEMU provides VP_INDEX only under KVM.
        h.features.retain(|(f, _)| *f != HypervFeature::Vpindex);
    }
    if let Some(nv) = def.os.nvram.as_mut() {
        let template = nv.template.clone().expect("golden NVRAM has a template");
        let copy = dir.join("VARS.fd");
        std::fs::copy(template, &copy).unwrap();
        nv.path = Some(copy);
    }
    for g in &mut def.devices.graphics {
        if let GraphicsDef::Vnc(d) | GraphicsDef::Spice(d) = g {
            d.port = None;
        }
    }
}

fn localize_chardevs(def: &mut DomainDef, dir: &Path) {
    let local = |src: &mut ChrSource, name: &str| match src {
        ChrSource::File { path, .. } => *path = dir.join(name),
        ChrSource::Unix { path, mode } => {
            *path = Some(dir.join(format!("{name}.sock")));
            *mode = domain::UnixMode::Bind;
        }
        _ => {}
    };
    for (i, s) in def.devices.serials.iter_mut().enumerate() {
        local(&mut s.source, &format!("serial{i}"));
        if let Some(l) = s.log.as_mut() {
            l.file = dir.join(format!("serial{i}.log"));
        }
    }
    for (i, c) in def.devices.channels.iter_mut().enumerate() {
        if matches!(c.source, ChrSource::Unix { path: Some(_), .. }) {
            local(&mut c.source, &format!("channel{i}"));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts QEMU with `def`'s argv, checks it reached prelaunch with the
/// devices it was given, and quits it.
fn run(stem: &str, def: &DomainDef, dir: &TempDir) {
    let launch = LaunchParams {
        qmp_socket: dir.0.join("qmp.sock"),
        pidfile: Some(dir.0.join("qemu.pid")),
        monitor_fd: None,
        domain_run_dir: dir.0.clone(),
        accel: Accel::Tcg,
        daemonize: false,
        taps: Vec::new(),
        vhost_net: false,
        spice_port: Some(free_port()),
        bound_sockets: Vec::new(),
    };
    let (_, caps) = common::real_launch(dir, Accel::Tcg);
    let argv = build_argv(def, &caps, &launch).unwrap_or_else(|e| panic!("{stem}: {e}"));
    let log = std::fs::File::create(dir.0.join("qemu.log")).unwrap();
    let mut child = Command::new(def.emulator())
        .args(&argv)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn qemu");
    let deadline = Duration::from_secs(30);
    let mut qmp = match RawQmp::try_connect(&launch.qmp_socket, deadline, &mut child) {
        Ok(q) => q,
        Err(e) => {
            let log = std::fs::read_to_string(dir.0.join("qemu.log")).unwrap_or_default();
            panic!("{stem}: QEMU refused the command line ({e}):\n{log}\nargv: {argv:?}");
        }
    };
    let status = qmp.execute("query-status", None);
    assert_eq!(status["status"], "prelaunch", "{stem}: {status}");
    let tree = qmp.execute(
        "qom-list",
        Some(serde_json::json!({"path": "/machine/peripheral"})),
    );
    let ids: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for i in 0..def.devices.disks.len() {
        let alias = def.disk_alias(i).unwrap();
        assert!(
            ids.contains(&alias.as_str()),
            "{stem}: no {alias} in {ids:?}"
        );
    }
    for i in 0..def.devices.interfaces.len() {
        assert!(
            ids.contains(&format!("net{i}").as_str()),
            "{stem}: no net{i}"
        );
    }
    qmp.execute("quit", None);
    assert!(child.wait().unwrap().success(), "{stem}: QEMU exit status");
}

#[test]
fn every_golden_command_line_starts_real_qemu() {
    common::require_qemu();
    let inputs = golden_inputs();
    assert!(inputs.len() >= 30, "{} golden inputs", inputs.len());
    for input in inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap().to_owned();
        let mut def = DomainDef::parse(&std::fs::read_to_string(&input).unwrap()).unwrap();
        let dir = TempDir::new(&format!("golden-{}", stem.len()));
        localize(&mut def, &dir.0);
        run(&stem, &def, &dir);
    }
}
