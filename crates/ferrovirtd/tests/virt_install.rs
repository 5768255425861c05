//! The domain XML real clients write, end to end against ferrovirtd and
//! real QEMU: the guests the real `virt-install` writes for eight OS
//! variants on q35 and i440fx define, start with the devices they ask for
//! on QEMU's command line, keep their addresses across a restart, and are
//! a fixed point of define → dumpxml → define; `virt-install` with its own
//! defaults defines and starts a guest; `virt-xml` edits the persistent
//! definition without moving what was there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Daemon, pids_mentioning, tail};
use testkit::tools::Tool;

/// One OS variant: its name, what virt-install is told, and what QEMU's
/// command line must then hold besides the machine type.
struct Variant {
    name: &'static str,
    args: &'static [&'static str],
    argv: &'static [&'static str],
}

/// What virt-install writes for Linux guests with virtio devices.
const VIRTIO_LINUX: &[&str] = &[
    "virtio-blk-pci",
    "virtio-net-pci",
    "virtio-rng-pci",
    "virtio-serial-pci",
    "name=org.qemu.guest_agent.0",
    "qemu-xhci",
    "virtio-balloon-pci",
];

/// The Hyper-V enlightenments virt-install gives Windows guests.
const HYPERV: &[&str] = &["hv-relaxed=on", "hv-vapic=on", "hv-spinlocks=0x1fff"];

const VARIANTS: &[Variant] = &[
    Variant {
        name: "debian11",
        args: &["--osinfo", "debian11", "--graphics", "none"],
        argv: VIRTIO_LINUX,
    },
    Variant {
        name: "fedora37",
        args: &["--osinfo", "fedora37", "--graphics", "spice"],
        argv: &[
            "-spice",
            "virtio-vga",
            "intel-hda",
            "hda-duplex",
            "usb-redir",
            "spicevmc",
            "name=com.redhat.spice.0",
            "usb-tablet",
        ],
    },
    Variant {
        name: "ubuntu2204",
        args: &["--osinfo", "ubuntu22.04", "--graphics", "vnc"],
        argv: &["-vnc", "VGA", "usb-tablet", "virtio-blk-pci"],
    },
    Variant {
        name: "alpine",
        args: &["--osinfo", "alpinelinux3.17", "--graphics", "none"],
        argv: VIRTIO_LINUX,
    },
    Variant {
        name: "generic",
        args: &[
            "--osinfo",
            "generic",
            "--memory",
            "512",
            "--graphics",
            "vnc",
        ],
        argv: &[
            "ich9-usb-ehci1",
            "ich9-usb-uhci1",
            "ich9-usb-uhci3",
            "VGA",
            "ide-hd",
            "e1000",
        ],
    },
    Variant {
        name: "win10",
        args: &["--osinfo", "win10", "--graphics", "vnc"],
        argv: &["e1000", "usb-tablet", "ide-hd", "VGA"],
    },
    Variant {
        name: "win11",
        args: &["--osinfo", "win11", "--graphics", "vnc"],
        argv: &[
            "tpm-crb",
            "-tpmdev",
            "swtpm.sock",
            "bochs-display",
            "libvirt-pflash0-storage",
            "_VARS.fd",
        ],
    },
];

/// The UEFI secure-boot guest (q35 only: the enrolled-keys firmware
/// needs SMM).
const SECURE_BOOT: Variant = Variant {
    name: "secureboot",
    args: &[
        "--osinfo",
        "fedora37",
        "--graphics",
        "none",
        "--boot",
        "uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=yes",
    ],
    argv: &[
        "smm=on",
        "driver=cfi.pflash01,property=secure,value=on",
        "libvirt-pflash1-storage",
        "tpm-crb",
    ],
};

/// The connection virt-install is given: a session URI, so that it picks
/// user-mode networking (the tests' daemon leaves the host's networking
/// alone, so it has no `default` network).
fn session_uri(d: &Daemon) -> String {
    format!("qemu+unix:///session?socket={}", d.sock().display())
}

fn run(tool: Tool, args: &[&str]) -> Output {
    tool.require();
    Command::new(tool.command())
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.command()))
}

/// Runs a virtinst tool against the daemon and insists it succeeded;
/// returns its stdout.
fn run_ok(d: &Daemon, tool: Tool, args: &[&str]) -> String {
    let out = run(tool, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n--- daemon log ---\n{}",
        tool.command(),
        String::from_utf8_lossy(&out.stderr),
        tail(&d.log(), 40)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `virt-install --print-xml` writes for `v` on `machine`; it also
/// creates the guest's disk in the daemon's default pool.
fn print_xml(d: &Daemon, v: &Variant, machine: &str, name: &str) -> String {
    let uri = session_uri(d);
    let mut args = vec![
        "--connect",
        &uri,
        "--print-xml",
        "--noautoconsole",
        "--name",
        name,
        "--machine",
        machine,
        "--disk",
        "size=1",
    ];
    args.extend_from_slice(v.args);
    pin_accelerator(&run_ok(d, Tool::VirtInstall, &args))
}

/// virt-install asks for KVM (and the host's CPU) when the daemon reports
/// KVM usable; the guests of these tests run under the accelerator the
/// tests were asked for (TCG by default), as virt-install writes them
/// when KVM is not there: type `qemu`, no `<cpu>`.
fn pin_accelerator(xml: &str) -> String {
    if testkit::accel::tests_use_kvm() {
        return xml.to_string();
    }
    xml.replacen("<domain type=\"kvm\">", "<domain type=\"qemu\">", 1)
        .replace("  <cpu mode=\"host-passthrough\"/>\n", "")
}

/// The running QEMU of domain `name`: its pid and its command line.
fn qemu_argv(name: &str) -> (u32, Vec<String>) {
    let needle = format!("guest={name},");
    let pids = pids_mentioning(&needle);
    assert_eq!(pids.len(), 1, "one QEMU for {name}: {pids:?}");
    let raw = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let argv = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pids[0], argv)
}

/// The machine type of a definition (`<type machine='…'>`).
fn machine_of(xml: &str) -> String {
    let at = xml.find("machine='").expect("machine attribute") + "machine='".len();
    xml[at..].split('\'').next().unwrap().to_string()
}

/// One variant on one machine, through the daemon: define, check the
/// definition, start, check QEMU's command line, restart, and check
/// that the definition is a fixed point.
fn variant(d: &Daemon, v: &Variant, machine: &str) {
    let name = format!("{}-{machine}", v.name);
    let xml = print_xml(d, v, machine, &name);
    let file = d.file(&format!("{name}.xml"), &xml);
    d.virsh_ok(&["define", &file.to_string_lossy()]);
    let defined = d.virsh_ok(&["dumpxml", "--inactive", &name]);

    // The machine type is the emulator's canonical one; every device has
    // its address in the persistent definition.
    let canonical = machine_of(&defined);
    let family = if machine == "q35" {
        "pc-q35-"
    } else {
        "pc-i440fx-"
    };
    assert!(canonical.starts_with(family), "{name}: {canonical}");
    assert!(defined.contains("<address type='pci'"), "{defined}");

    d.virsh_ok(&["start", &name]);
    let (pid, argv) = qemu_argv(&name);
    let line = argv.join(" ");
    let machine_arg = argv
        .iter()
        .skip_while(|a| *a != "-machine")
        .nth(1)
        .unwrap_or_else(|| panic!("no -machine: {line}"));
    assert!(
        machine_arg.starts_with(&format!("{canonical},")),
        "{name}: {machine_arg}"
    );
    if machine == "q35" {
        assert!(line.contains("pcie-root-port"), "{name}: {line}");
    }
    for want in v.argv {
        assert!(line.contains(want), "{name}: no '{want}' in\n{line}");
    }
    if v.name.starts_with("win") {
        for want in HYPERV {
            assert!(line.contains(want), "{name}: no '{want}' in\n{line}");
        }
    }
    let state = d.virsh_ok(&["domstate", &name]);
    assert_eq!(state.trim(), "running", "{name}");
    let live = d.virsh_ok(&["dumpxml", &name]);
    if line.contains("-vnc") {
        assert!(
            live.contains("<graphics type='vnc' port='59"),
            "{name}: live XML without the VNC port:\n{live}"
        );
    }

    // Restarted: the same devices at the same addresses.
    d.virsh_ok(&["destroy", &name]);
    wait_gone(&name, pid);
    d.virsh_ok(&["start", &name]);
    let (pid, again) = qemu_argv(&name);
    assert_eq!(devices(&again), devices(&argv), "{name}: restart");
    d.virsh_ok(&["destroy", &name]);
    wait_gone(&name, pid);
    assert_eq!(d.virsh_ok(&["dumpxml", "--inactive", &name]), defined);

    // define → dumpxml → define is a fixed point.
    let file = d.file(&format!("{name}.out.xml"), &defined);
    d.virsh_ok(&["define", &file.to_string_lossy()]);
    assert_eq!(d.virsh_ok(&["dumpxml", "--inactive", &name]), defined);

    d.virsh_ok(&["undefine", "--nvram", "--tpm", &name]);
    d.virsh_ok(&["vol-delete", "--pool", "default", &format!("{name}.qcow2")]);
}

/// The `-device` arguments of a command line: models, buses, addresses.
fn devices(argv: &[String]) -> Vec<&str> {
    argv.windows(2)
        .filter(|w| w[0] == "-device")
        .map(|w| w[1].as_str())
        .collect()
}

/// Waits until QEMU `pid` of domain `name` is gone.
fn wait_gone(name: &str, pid: u32) {
    let needle = format!("guest={name},");
    let gone = testkit::wait::until(Duration::from_secs(20), || {
        !pids_mentioning(&needle).contains(&pid)
    });
    assert!(gone, "QEMU {pid} of {name} still running after destroy");
}

#[test]
fn virt_install_guests_on_q35() {
    let d = Daemon::start();
    for v in VARIANTS {
        variant(&d, v, "q35");
    }
    variant(&d, &SECURE_BOOT, "q35");
}

#[test]
fn virt_install_guests_on_i440fx() {
    let d = Daemon::start();
    for v in VARIANTS {
        variant(&d, v, "pc");
    }
}

/// `virt-install` with its defaults (OS, a new disk, no graphics) creates
/// and starts the guest; on a system connection, whose guests get the
/// `default` network, the start fails with the reason and virt-install
/// removes what it made.
#[test]
fn virt_install_defaults_define_and_start() {
    let d = Daemon::start();
    let session = session_uri(&d);
    let common = [
        "--osinfo",
        "debian11",
        "--disk",
        "size=1",
        "--graphics",
        "none",
        "--noautoconsole",
        "--import",
    ];
    let mut args = vec!["--connect", &session, "--name", "plain"];
    args.extend_from_slice(&common);
    run_ok(&d, Tool::VirtInstall, &args);
    d.wait_state("plain", "running (booted)", Duration::from_secs(30));
    let xml = d.virsh_ok(&["dumpxml", "plain"]);
    for want in [
        "<interface type='user'>",
        "<rng model='virtio'>",
        "model='pcie-root-port'",
        "<channel type='unix'>",
    ] {
        assert!(xml.contains(want), "no {want} in\n{xml}");
    }

    let system = d.uri.clone();
    let mut args = vec!["--connect", &system, "--name", "bridged"];
    args.extend_from_slice(&common);
    let out = run(Tool::VirtInstall, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Network not found: no network with matching name 'default'"),
        "{err}"
    );
    let list = d.virsh_ok(&["list", "--all", "--name"]);
    assert_eq!(list.trim(), "plain", "{list}");
}

/// The PCI addresses of a definition's devices, one line each.
fn addresses(xml: &str) -> Vec<String> {
    xml.lines()
        .filter(|l| l.contains("<address type='pci'"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// `virt-xml --add-device` / `--remove-device` on a running guest edit
/// its persistent definition: what was there keeps its address, the new
/// device gets a free one (a hot-plug root port on q35), and the change
/// shows after the guest is powered off.
#[test]
fn virt_xml_edits_the_persistent_definition() {
    let d = Daemon::start();
    let uri = session_uri(&d);
    let xml = print_xml(&d, &VARIANTS[0], "q35", "edited");
    let file = d.file("edited.xml", &xml);
    d.virsh_ok(&["define", &file.to_string_lossy()]);
    d.virsh_ok(&["start", "edited"]);
    let before = d.virsh_ok(&["dumpxml", "--inactive", "edited"]);

    let edit = |args: &[&str]| {
        let mut a = vec!["--connect", &uri, "edited"];
        a.extend_from_slice(args);
        run_ok(&d, Tool::VirtXml, &a)
    };
    edit(&["--add-device", "--disk", "size=1"]);
    edit(&["--add-device", "--sound", "ich9"]);
    let after = d.virsh_ok(&["dumpxml", "--inactive", "edited"]);
    let (old, new) = (addresses(&before), addresses(&after));
    assert!(new.len() >= old.len() + 2, "{after}");
    for a in &old {
        assert!(new.contains(a), "{a} moved:\n{after}");
    }
    assert!(
        after.contains("<target dev='vdb' bus='virtio'/>")
            && after.contains("<sound model='ich9'>"),
        "{after}"
    );
    // The running guest is unchanged until it is powered off.
    let live = d.virsh_ok(&["dumpxml", "edited"]);
    assert!(!live.contains("vdb") && !live.contains("<sound"), "{live}");

    edit(&["--remove-device", "--sound", "all"]);
    edit(&["--remove-device", "--disk", "target=vdb"]);
    let removed = d.virsh_ok(&["dumpxml", "--inactive", "edited"]);
    assert_eq!(addresses(&removed), old, "{removed}");
    assert!(!removed.contains("<sound"), "{removed}");

    edit(&["--add-device", "--sound", "ich9"]);
    let (pid, _) = qemu_argv("edited");
    d.virsh_ok(&["destroy", "edited"]);
    wait_gone("edited", pid);
    d.virsh_ok(&["start", "edited"]);
    let (_, argv) = qemu_argv("edited");
    assert!(
        argv.iter().any(|a| a.starts_with("ich9-intel-hda")),
        "{argv:?}"
    );
}
