//! Each QEMU runs confined: QEMU's own system-call filter, no new
//! privileges, and a private mount namespace whose `/dev` holds only what
//! its guest uses. The tiny guest boots that way, and its pty console is
//! still reachable from the host.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{Daemon, define_start, pids_mentioning, tail};
use testkit::guest::READY_MARKER;
use testkit::wait;

const BOOT: Duration = Duration::from_secs(180);

/// What a guest's `/dev` may hold: the nodes every guest gets, the network
/// nodes, KVM, and the mount points and links the helper makes.
const ALLOWED: [&str; 16] = [
    "null",
    "zero",
    "full",
    "random",
    "urandom",
    "ptmx",
    "kvm",
    "net",
    "vhost-net",
    "pts",
    "shm",
    "fd",
    "stdin",
    "stdout",
    "stderr",
    "tun",
];

fn guest_xml(d: &Daemon, name: &str) -> (String, std::path::PathBuf) {
    let guest = testkit::guest::build().unwrap_or_else(|e| panic!("{e}"));
    let serial = d.root.path().join(format!("{name}.serial"));
    let xml = format!(
        "<domain type='{}'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 quiet</cmdline>\n  </os>\n  <devices>\n    \
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
         <serial type='file'><source path='{}'/><target port='0'/></serial>\n    \
         <serial type='pty'><target port='1'/></serial>\n  </devices>\n</domain>\n",
        testkit::accel::test_domain_type(),
        guest.kernel.display(),
        guest.initrd.display(),
        serial.display()
    );
    (xml, serial)
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn dev_entries(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("dev"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_guests_qemu_is_filtered_unprivileged_to_exec_and_sees_a_private_dev() {
    let d = Daemon::start();
    let (xml, serial) = guest_xml(&d, "c1");
    define_start(&d, "c1", &xml);
    let read = || std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(
        wait::until(BOOT, || read().contains(READY_MARKER)),
        "the confined guest did not boot\n--- serial ---\n{}\n--- daemon ---\n{}",
        tail(&read(), 20),
        tail(&d.log(), 30)
    );
    let pids = pids_mentioning(&serial.to_string_lossy());
    assert_eq!(pids.len(), 1, "one QEMU: {pids:?}");
    let pid = pids[0];

    // QEMU's seccomp filter is on (mode 2: filter) and nothing it execs
    // could gain privileges.
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");

    // Its own mount namespace, with a /dev of a few nodes.
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_ne!(
        ns(&pid.to_string()),
        ns("self"),
        "QEMU shares the daemon's mount namespace"
    );
    let qemu_root = Path::new("/proc").join(pid.to_string()).join("root");
    let seen = dev_entries(&qemu_root);
    let extra: Vec<&String> = seen
        .iter()
        .filter(|e| !ALLOWED.contains(&e.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "QEMU's /dev holds more than its guest needs: {extra:?}"
    );
    for must in ["null", "urandom", "ptmx", "pts"] {
        assert!(seen.contains(must), "QEMU's /dev lacks {must}: {seen:?}");
    }
    let host = dev_entries(Path::new("/"));
    assert!(
        host.len() > seen.len() + 5,
        "the host's /dev is hidden ({} entries vs {})",
        host.len(),
        seen.len()
    );
    // The host's disks are not there to open.
    for hidden in ["mem", "vda", "sda", "loop0"] {
        assert!(!seen.contains(hidden), "{hidden} reachable from QEMU");
    }

    // The pty QEMU made in its namespace is the host's: its path in the
    // live XML exists here and opens.
    let live = d.virsh_ok(&["dumpxml", "c1"]);
    let pty = live
        .split("<source path='")
        .skip(1)
        .filter_map(|s| s.split('\'').next())
        .find(|p| p.starts_with("/dev/pts/"))
        .unwrap_or_else(|| panic!("no pty in the live XML:\n{live}"));
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pty)
        .unwrap_or_else(|e| panic!("cannot open the guest's pty {pty}: {e}"));

    d.virsh_ok(&["destroy", "c1"]);
    assert!(
        wait::until(Duration::from_secs(20), || pids_mentioning(
            &serial.to_string_lossy()
        )
        .is_empty()),
        "QEMU still running after destroy"
    );
}

#[test]
fn confinement_can_be_turned_off_in_the_config() {
    let d = Daemon::start_with("seccomp_sandbox = false\nnamespaces = []\n");
    let (xml, serial) = guest_xml(&d, "c2");
    define_start(&d, "c2", &xml);
    let pids = pids_mentioning(&serial.to_string_lossy());
    assert_eq!(pids.len(), 1, "one QEMU: {pids:?}");
    let pid = pids[0];
    assert_eq!(status_field(pid, "Seccomp"), "0");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_eq!(ns(&pid.to_string()), ns("self"));
    // The helper's no-new-privileges stays: it costs QEMU nothing.
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    d.virsh_ok(&["destroy", "c2"]);
}

#[test]
fn a_missing_exec_helper_fails_the_start_clearly_and_leaves_nothing() {
    let d = Daemon::start_with("exec_helper = \"/nonexistent/ferrovirt-exec\"\n");
    let (xml, serial) = guest_xml(&d, "c3");
    let f = d.file("c3.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    let out = d.virsh(&["start", "c3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exec helper /nonexistent/ferrovirt-exec"),
        "{err}"
    );
    assert!(pids_mentioning(&serial.to_string_lossy()).is_empty());
    d.wait_state("c3", "shut off (unknown)", Duration::from_secs(5));
}
