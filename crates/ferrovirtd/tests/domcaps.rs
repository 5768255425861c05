//! Domain capabilities (`virsh domcapabilities`, libvirt-python's
//! `getDomainCapabilities`) hold what the emulator itself reports,
//! checked against a QMP probe of the same QEMU made here: machine
//! names, vCPU limits, CPU models, device models; firmware from the
//! installed descriptors; libvirt's errors for what cannot be answered;
//! and an answer for every defined domain's emulator and machine (a
//! management UI drops the domains it cannot get one for).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ChildLines, Daemon, tail};
use serde_json::{Value, json};
use testkit::tools::Tool;

const EMULATOR: &str = "/usr/bin/qemu-system-x86_64";

/// What QEMU says about itself over QMP, asked here without the daemon.
struct Probe {
    machines: Vec<Value>,
    cpu_models: Vec<Value>,
    types: BTreeSet<String>,
    commands: BTreeSet<String>,
}

impl Probe {
    fn run() -> Probe {
        Tool::QemuSystem.require();
        let mut child = Command::new(EMULATOR)
            .args(["-S", "-nodefaults", "-nographic", "-machine", "none"])
            .args(["-accel", "tcg", "-qmp", "stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn QEMU");
        let mut lines = ChildLines::new(&mut child);
        let mut stdin = child.stdin.take().unwrap();
        let mut ask = |cmd: Value| -> Value {
            writeln!(stdin, "{cmd}").unwrap();
            let reply = lines
                .wait_for(
                    |l| l.contains("\"return\"") || l.contains("\"error\""),
                    Duration::from_secs(30),
                )
                .unwrap_or_else(|| panic!("QEMU did not answer {cmd}"));
            let v: Value = serde_json::from_str(&reply).unwrap();
            assert!(v.get("error").is_none(), "{cmd}: {v}");
            v["return"].clone()
        };
        ask(json!({"execute": "qmp_capabilities"}));
        let machines = ask(json!({"execute": "query-machines"}));
        let cpu_models = ask(json!({"execute": "query-cpu-definitions"}));
        let types = ask(json!({"execute": "qom-list-types",
            "arguments": {"implements": "device", "abstract": false}}));
        let commands = ask(json!({"execute": "query-commands"}));
        let _ = child.kill();
        let _ = child.wait();
        let names = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        Probe {
            machines: machines.as_array().unwrap().clone(),
            cpu_models: cpu_models.as_array().unwrap().clone(),
            types: names(&types),
            commands: names(&commands),
        }
    }

    /// The versioned machine an alias (`q35`) stands for, with its
    /// vCPU limit.
    fn machine(&self, alias: &str) -> (String, u64) {
        let m = self
            .machines
            .iter()
            .find(|m| m["alias"] == alias || m["name"] == alias)
            .unwrap_or_else(|| panic!("QEMU has no machine {alias}"));
        (
            m["name"].as_str().unwrap().to_string(),
            m["cpu-max"].as_u64().unwrap(),
        )
    }
}

/// The text of every `<value>` of `<enum name='NAME'>` inside the element
/// that `section` opens.
fn enum_values(xml: &str, section: &str, name: &str) -> Vec<String> {
    let start = xml.find(section).unwrap_or_else(|| panic!("no {section}"));
    let body = &xml[start..];
    let open = format!("<enum name='{name}'>");
    let at = body
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {section}"));
    let end = body[at..].find("</enum>").unwrap() + at;
    body[at..end]
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("<value>")
                .and_then(|v| v.strip_suffix("</value>"))
                .map(str::to_string)
        })
        .collect()
}

/// The text of the first element `<tag>…</tag>`.
fn text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let at = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[at..].find('<').unwrap() + at;
    &xml[at..end]
}

/// Whether KVM runs guests here, by the daemon's own account.
fn daemon_has_kvm(d: &Daemon) -> bool {
    d.virsh_ok(&["capabilities"])
        .contains("<domain type='kvm'/>")
}

/// The CPU models of `<mode name='custom'>`: (name, usable).
fn custom_models(xml: &str) -> Vec<(String, String)> {
    let at = xml.find("<mode name='custom'").expect("custom mode");
    let end = xml[at..].find("</mode>").unwrap() + at;
    xml[at..end]
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("<model usable='")?;
            let (usable, rest) = l.split_once('\'')?;
            let name = rest.split_once('>')?.1.strip_suffix("</model>")?;
            Some((name.to_string(), usable.to_string()))
        })
        .collect()
}

/// The QEMU device model each `<video><model type>` value needs.
fn video_device(model: &str) -> Option<&'static str> {
    Some(match model {
        "vga" => "VGA",
        "cirrus" => "cirrus-vga",
        "qxl" => "qxl-vga",
        "virtio" => "virtio-vga",
        "bochs" => "bochs-display",
        "ramfb" => "ramfb",
        "none" => return None,
        other => panic!("unexpected video model {other}"),
    })
}

#[test]
fn domain_capabilities_are_what_qemu_reports() {
    let probe = Probe::run();
    let d = Daemon::start();
    let kvm = daemon_has_kvm(&d);

    // Defaults: the emulator, KVM where it works, q35.
    let caps = d.virsh_ok(&["domcapabilities"]);
    let (q35, q35_max) = probe.machine("q35");
    assert_eq!(text(&caps, "path"), EMULATOR);
    assert_eq!(text(&caps, "domain"), if kvm { "kvm" } else { "qemu" });
    assert_eq!(text(&caps, "machine"), q35);
    assert_eq!(text(&caps, "arch"), "x86_64");
    assert!(caps.contains(&format!("<vcpu max='{q35_max}'/>")), "{caps}");

    // i440fx, by alias and by name, under TCG.
    let (pc, pc_max) = probe.machine("pc");
    for m in ["pc", pc.as_str()] {
        let caps = d.virsh_ok(&["domcapabilities", "--machine", m, "--virttype", "qemu"]);
        assert_eq!(text(&caps, "machine"), pc);
        assert_eq!(text(&caps, "domain"), "qemu");
        assert!(caps.contains(&format!("<vcpu max='{pc_max}'/>")), "{caps}");
        assert!(
            caps.contains("<mode name='host-passthrough' supported='no'/>"),
            "{caps}"
        );
    }

    // Named CPU models: QEMU's own, and a usability that is QEMU's under
    // TCG wherever it is known.
    let caps = d.virsh_ok(&["domcapabilities", "--virttype", "qemu"]);
    let ours = custom_models(&caps);
    let theirs: Vec<(String, bool)> = probe
        .cpu_models
        .iter()
        .map(|m| {
            let unavailable = m["unavailable-features"]
                .as_array()
                .is_none_or(|f| !f.is_empty());
            (m["name"].as_str().unwrap().to_string(), !unavailable)
        })
        .filter(|(n, _)| !["host", "max", "base"].contains(&n.as_str()))
        .collect();
    let names = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        names(ours.iter().map(|(n, _)| n.clone()).collect()),
        names(theirs.iter().map(|(n, _)| n.clone()).collect())
    );
    for (name, usable) in &ours {
        let qemu = theirs.iter().find(|(n, _)| n == name).unwrap().1;
        match usable.as_str() {
            "unknown" => {}
            "yes" | "no" => assert_eq!(usable == "yes", qemu, "{name}"),
            other => panic!("{name}: usable='{other}'"),
        }
    }

    // Devices: every model offered is one QEMU has.
    for v in enum_values(&caps, "<video supported='yes'>", "modelType") {
        if let Some(dev) = video_device(&v) {
            assert!(probe.types.contains(dev), "video {v}: QEMU has no {dev}");
        }
    }
    for t in enum_values(&caps, "<tpm supported='yes'>", "model") {
        assert!(probe.types.contains(&t), "tpm {t}");
    }
    assert!(probe.types.contains("virtio-rng-pci"));
    assert_eq!(
        enum_values(&caps, "<rng supported='yes'>", "model"),
        ["virtio"]
    );
    let graphics = enum_values(&caps, "<graphics supported='yes'>", "type");
    assert_eq!(
        graphics.contains(&"spice".to_string()),
        probe.commands.contains("query-spice"),
        "{graphics:?}"
    );
    assert!(caps.contains("<hostdev supported='no'/>"), "{caps}");

    // KVM: answered where it works, libvirt's error where it does not.
    let out = d.virsh(&["domcapabilities", "--virttype", "kvm"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if kvm {
        let caps = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{err}");
        assert!(
            caps.contains("<mode name='host-passthrough' supported='yes'"),
            "{caps}"
        );
    } else {
        assert!(!out.status.success());
        assert!(
            err.contains("KVM is not supported by '/usr/bin/qemu-system-x86_64'"),
            "{err}"
        );
    }
}

/// The firmware images of the installed descriptors for `machine`.
fn descriptor_loaders(machine: &str) -> BTreeSet<String> {
    let mut v = BTreeSet::new();
    for e in std::fs::read_dir("/usr/share/qemu/firmware").unwrap() {
        let p = e.unwrap().path();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let matches = d["targets"].as_array().unwrap().iter().any(|t| {
            t["architecture"] == "x86_64"
                && t["machines"].as_array().unwrap().iter().any(|g| {
                    let g = g.as_str().unwrap();
                    g.strip_suffix('*')
                        .map_or(g == machine, |p| machine.starts_with(p))
                })
        });
        if matches && d["mapping"]["device"] == "flash" {
            let f = d["mapping"]["executable"]["filename"].as_str().unwrap();
            v.insert(f.to_string());
        }
    }
    v
}

#[test]
fn firmware_comes_from_the_installed_descriptors() {
    let d = Daemon::start();
    for m in ["q35", "pc"] {
        let caps = d.virsh_ok(&["domcapabilities", "--machine", m]);
        let machine = text(&caps, "machine").to_string();
        let at = caps.find("<loader supported='yes'>").expect("loader");
        let loaders: BTreeSet<String> = caps[at..]
            .lines()
            .skip(1)
            .map_while(|l| l.trim().strip_prefix("<value>")?.strip_suffix("</value>"))
            .map(str::to_string)
            .collect();
        assert_eq!(loaders, descriptor_loaders(&machine), "{m}:\n{caps}");
        assert_eq!(
            enum_values(&caps, "<os supported='yes'>", "firmware"),
            ["bios", "efi"]
        );
        // Secure boot only where a secure descriptor matches (they all
        // need SMM, which is q35's here).
        let secure = enum_values(&caps, "<loader supported='yes'>", "secure");
        assert_eq!(
            secure.contains(&"yes".to_string()),
            m == "q35",
            "{m}: {secure:?}"
        );
    }
}

#[test]
fn libvirt_python_and_libvirt_errors() {
    let d = Daemon::start();
    let script = format!(
        r#"
import libvirt, xml.etree.ElementTree as ET
c = libvirt.open('{uri}')
for args in [(None, None, None, None), ('{EMULATOR}', 'x86_64', 'pc', 'qemu'), (None, 'x86_64', 'q35', None)]:
    x = ET.fromstring(c.getDomainCapabilities(*args, 0))
    print(x.findtext('machine'), x.findtext('domain'), x.find('vcpu').get('max'))
for args in [(None, 'aarch64', None, None), (None, None, 'bogus', None), ('/no/such/qemu', None, None, None)]:
    try:
        c.getDomainCapabilities(*args, 0)
        print('accepted', args)
    except libvirt.libvirtError as e:
        print(e.get_error_code(), e.get_error_message())
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
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let probe = Probe::run();
    let (q35, q35_max) = probe.machine("q35");
    let (pc, pc_max) = probe.machine("pc");
    let domain = if daemon_has_kvm(&d) { "kvm" } else { "qemu" };
    assert_eq!(lines[0], format!("{q35} {domain} {q35_max}"));
    assert_eq!(lines[1], format!("{pc} qemu {pc_max}"));
    assert_eq!(lines[2], format!("{q35} {domain} {q35_max}"));
    // VIR_ERR_INVALID_ARG (8) for what this emulator cannot be asked,
    // VIR_ERR_SYSTEM_ERROR (38) naming a binary that is not there.
    assert!(
        lines[3].starts_with("8 ") && lines[3].contains("aarch64"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("8 ") && lines[4].contains("'bogus'"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].starts_with("38 ") && lines[5].contains("/no/such/qemu"),
        "{}",
        lines[5]
    );
}

/// Every defined domain's emulator and machine get an answer, whether
/// the definition names the machine by alias or by version.
#[test]
fn every_defined_domain_gets_an_answer() {
    let d = Daemon::start();
    for (name, machine) in [
        ("a", "q35"),
        ("b", "pc"),
        ("c", "pc-i440fx-7.1"),
        ("e", "pc-q35-6.2"),
    ] {
        let xml = format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64' machine='{machine}'>hvm</type></os>\
             <devices><emulator>{EMULATOR}</emulator></devices></domain>"
        );
        let f = d.file(&format!("{name}.xml"), &xml);
        d.virsh_ok(&["define", &f.to_string_lossy()]);
    }
    for name in ["a", "b", "c", "e"] {
        let xml = d.virsh_ok(&["dumpxml", "--inactive", name]);
        let at = xml.find("machine='").unwrap() + "machine='".len();
        let machine = xml[at..].split('\'').next().unwrap();
        assert!(machine.starts_with("pc-"), "{name}: {machine}");
        let emulator = text(&xml, "emulator");
        let caps = d.virsh_ok(&[
            "domcapabilities",
            "--emulatorbin",
            emulator,
            "--machine",
            machine,
            "--arch",
            "x86_64",
        ]);
        assert_eq!(text(&caps, "machine"), machine, "{name}");
    }
}

/// The host's NUMA cells as sysfs has them, in `virsh capabilities`,
/// `nodeinfo` and `freecell --all` (which counts cells from the
/// capabilities' topology).
#[test]
fn host_capabilities_carry_the_numa_topology() {
    let d = Daemon::start();
    let caps = d.virsh_ok(&["capabilities"]);
    let online = std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    let cells = online
        .trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum::<usize>()
        .max(1);
    assert!(caps.contains(&format!("<cells num='{cells}'>")), "{caps}");
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(caps.matches("<cpu id='").count(), cpus, "{caps}");
    for want in [
        "<uuid>",
        "<topology sockets='",
        "<secmodel>",
        "<pages unit='KiB' size='",
    ] {
        assert!(caps.contains(want), "capabilities lack {want}:\n{caps}");
    }

    let info = d.virsh_ok(&["nodeinfo"]);
    let field = |name: &str| -> usize {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in nodeinfo:\n{info}"))
    };
    assert_eq!(field("NUMA cell(s):"), cells);
    assert_eq!(
        field("CPU socket(s):")
            * field("Core(s) per socket:")
            * field("Thread(s) per core:")
            * cells,
        cpus,
        "{info}"
    );

    let free = d.virsh_ok(&["freecell", "--all"]);
    assert_eq!(
        free.lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .count(),
        cells,
        "{free}"
    );
    assert!(free.contains("Total"), "{free}");
}
