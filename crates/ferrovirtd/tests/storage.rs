//! Storage pools and volumes end to end: the real virsh and libvirt-python
//! against ferrovirtd and the real qemu-img, the default pool, events,
//! libvirt's error codes, and a daemon killed in the middle of a clone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, tail};
use nix::sys::signal::Signal;
use rpc::protocol::remote::{
    NameArgs, NonnullStoragePool, StoragePoolArgs, StoragePoolGetInfoRet,
    StoragePoolListAllVolumesArgs, StoragePoolListAllVolumesRet, StoragePoolRet, procedure as p,
};
use testkit::latency::Percentiles;
use testkit::wait;

/// Runs a libvirt-python script with `URI` set; returns its stdout.
fn python(d: &Daemon, script: &str) -> String {
    testkit::tools::Tool::Python3Libvirt.require();
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!("import libvirt, sys\nURI = '{}'\n{script}", d.uri))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        tail(&d.log(), 40)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn images(d: &Daemon) -> std::path::PathBuf {
    d.root.path().join("images")
}

/// A raw volume of the default pool whose `mib` MiB are real data (not
/// holes or zeros), so that copying it takes real time.
fn data_volume(d: &Daemon, name: &str, mib: usize) {
    use std::io::Write;
    let mut f = std::fs::File::create(images(d).join(name)).unwrap();
    let chunk = vec![0xABu8; 1 << 20];
    for _ in 0..mib {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    d.virsh_ok(&["pool-refresh", "default"]);
}

#[test]
fn virsh_pool_and_volume_lifecycle() {
    let d = Daemon::start();
    // The default pool exists, runs and autostarts, as libvirt ships it.
    let list = d.virsh_ok(&["pool-list", "--all"]);
    assert!(
        list.contains("default") && list.contains("active"),
        "{list}"
    );
    let info = d.virsh_ok(&["pool-info", "default"]);
    assert!(info.contains("Autostart:      yes"), "{info}");

    // A second pool: defined, built, started.
    let dir = d.root.path().join("lab");
    let dir_s = dir.to_string_lossy().into_owned();
    d.virsh_ok(&["pool-define-as", "lab", "dir", "--target", &dir_s]);
    d.virsh_ok(&["pool-build", "lab"]);
    assert!(dir.is_dir());
    d.virsh_ok(&["pool-start", "lab"]);
    d.virsh_ok(&["pool-autostart", "lab"]);
    let xml = d.virsh_ok(&["pool-dumpxml", "lab"]);
    assert!(xml.contains(&format!("<path>{dir_s}</path>")), "{xml}");

    // Volumes: raw, qcow2, a qcow2 backed by it, a clone of the backed one.
    d.virsh_ok(&["vol-create-as", "lab", "raw.img", "16M"]);
    d.virsh_ok(&[
        "vol-create-as",
        "lab",
        "base.qcow2",
        "64M",
        "--format",
        "qcow2",
    ]);
    d.virsh_ok(&[
        "vol-create-as",
        "lab",
        "top.qcow2",
        "64M",
        "--format",
        "qcow2",
        "--backing-vol",
        "base.qcow2",
        "--backing-vol-format",
        "qcow2",
    ]);
    let top = d.virsh_ok(&["vol-dumpxml", "--pool", "lab", "top.qcow2"]);
    assert!(
        top.contains("<backingStore>") && top.contains("base.qcow2"),
        "{top}"
    );
    d.virsh_ok(&["vol-clone", "--pool", "lab", "top.qcow2", "copy.qcow2"]);
    let copy = d.virsh_ok(&["vol-dumpxml", "--pool", "lab", "copy.qcow2"]);
    assert!(
        !copy.contains("<backingStore>"),
        "a clone is flattened: {copy}"
    );
    let vols = d.virsh_ok(&["vol-list", "lab", "--details"]);
    for v in ["raw.img", "base.qcow2", "top.qcow2", "copy.qcow2"] {
        assert!(vols.contains(v), "{vols}");
    }

    // Resize by libvirt's rules, wipe, lookups by path and key.
    d.virsh_ok(&["vol-resize", "--pool", "lab", "raw.img", "32M"]);
    let out = d.virsh(&["vol-resize", "--pool", "lab", "raw.img", "8M"]);
    assert!(!out.status.success(), "shrink without --shrink must fail");
    d.virsh_ok(&[
        "vol-resize",
        "--pool",
        "lab",
        "copy.qcow2",
        "--delta",
        "64M",
    ]);
    let info = d.virsh_ok(&["vol-info", "--pool", "lab", "copy.qcow2"]);
    assert!(info.contains("128.00 MiB"), "{info}");
    d.virsh_ok(&["vol-wipe", "--pool", "lab", "raw.img"]);
    let path = format!("{dir_s}/raw.img");
    assert_eq!(d.virsh_ok(&["vol-pool", &path]).trim(), "lab");
    assert_eq!(
        d.virsh_ok(&["vol-key", "--pool", "lab", "raw.img"]).trim(),
        path
    );
    assert_eq!(
        d.virsh_ok(&["vol-path", "--pool", "lab", "raw.img"]).trim(),
        path
    );

    // A file copied in by hand appears after a refresh.
    std::fs::write(dir.join("dropped.iso"), b"not really an iso").unwrap();
    d.virsh_ok(&["pool-refresh", "lab"]);
    assert!(d.virsh_ok(&["vol-list", "lab"]).contains("dropped.iso"));

    // Tear down: volumes, then the pool.
    for v in [
        "raw.img",
        "top.qcow2",
        "base.qcow2",
        "copy.qcow2",
        "dropped.iso",
    ] {
        d.virsh_ok(&["vol-delete", "--pool", "lab", v]);
    }
    d.virsh_ok(&["pool-destroy", "lab"]);
    d.virsh_ok(&["pool-delete", "lab"]);
    assert!(!dir.exists());
    d.virsh_ok(&["pool-undefine", "lab"]);
    assert!(!d.virsh_ok(&["pool-list", "--all"]).contains("lab"));
}

/// The lifecycle through libvirt-python, with the pool events it raises.
#[test]
fn python_lifecycle_and_events() {
    let d = Daemon::start();
    let dir = d.root.path().join("py");
    let script = format!(
        r#"
import threading
libvirt.virEventRegisterDefaultImpl()
c = libvirt.open(URI)
events = []
done = threading.Event()
def lifecycle(conn, pool, event, detail, opaque):
    events.append(("lifecycle", pool.name(), event))
def refresh(conn, pool, opaque):
    events.append(("refresh", pool.name(), -1))
c.storagePoolEventRegisterAny(None, libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, lifecycle, None)
c.storagePoolEventRegisterAny(None, libvirt.VIR_STORAGE_POOL_EVENT_ID_REFRESH, refresh, None)
def loop():
    while not done.is_set():
        libvirt.virEventRunDefaultImpl()
t = threading.Thread(target=loop, daemon=True)
t.start()
xml = "<pool type='dir'><name>py</name><target><path>{dir}</path></target></pool>"
p = c.storagePoolDefineXML(xml, 0)
p.build(0)
p.create(0)
assert p.isActive() == 1 and p.isPersistent() == 1
v = p.createXML("<volume><name>a.qcow2</name><capacity unit='M'>32</capacity><target><format type='qcow2'/></target></volume>", 0)
assert v.info()[1] == 32 << 20, v.info()
clone = p.createXMLFrom("<volume><name>b.qcow2</name><capacity unit='M'>64</capacity><target><format type='qcow2'/></target></volume>", v, 0)
assert clone.info()[1] == 64 << 20, clone.info()
clone.resize(96 << 20, 0)
assert clone.info()[1] == 96 << 20
assert clone.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2] > 0
assert sorted(x.name() for x in p.listAllVolumes(0)) == ["a.qcow2", "b.qcow2"]
assert c.storageVolLookupByPath(v.path()).name() == "a.qcow2"
assert c.storageVolLookupByKey(v.key()).storagePoolLookupByVolume().name() == "py"
assert [x.name() for x in c.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)] == ["default", "py"]
p.refresh(0)
clone.delete(0)
v.delete(0)
p.destroy()
p.delete(0)
p.undefine()
import time
deadline = time.time() + 10
want = [("lifecycle", "py", libvirt.VIR_STORAGE_POOL_EVENT_DEFINED),
        ("lifecycle", "py", libvirt.VIR_STORAGE_POOL_EVENT_CREATED),
        ("lifecycle", "py", libvirt.VIR_STORAGE_POOL_EVENT_STARTED),
        ("refresh", "py", -1),
        ("lifecycle", "py", libvirt.VIR_STORAGE_POOL_EVENT_STOPPED),
        ("lifecycle", "py", libvirt.VIR_STORAGE_POOL_EVENT_DELETED),
        ("lifecycle", "py", libvirt.VIR_STORAGE_POOL_EVENT_UNDEFINED)]
while events != want and time.time() < deadline:
    time.sleep(0.05)
done.set()
print(events)
assert events == want, events
print("OK")
"#,
        dir = dir.display()
    );
    let out = python(&d, &script);
    assert!(out.contains("OK"), "{out}");
}

/// Bad input gets the code a libvirt client gets, and nothing is left
/// half-made.
#[test]
fn bad_input_gets_libvirts_codes() {
    let d = Daemon::start();
    let root = d.root.path().display().to_string();
    let script = format!(
        r#"
c = libvirt.open(URI)
p = c.storagePoolLookupByName("default")
p.createXML("<volume><name>taken</name><capacity>1048576</capacity></volume>", 0)
def code(f):
    try:
        f()
    except libvirt.libvirtError as e:
        return e.get_error_code()
    return "no error"
cases = [
  ("pool type", lambda: c.storagePoolDefineXML("<pool type='iscsi'><name>i</name><target><path>/x</path></target></pool>", 0), libvirt.VIR_ERR_CONFIG_UNSUPPORTED),
  ("relative target", lambda: c.storagePoolDefineXML("<pool type='dir'><name>r</name><target><path>rel</path></target></pool>", 0), libvirt.VIR_ERR_XML_DETAIL),
  ("target is a file", lambda: c.storagePoolCreateXML("<pool type='dir'><name>f</name><target><path>{root}/afile</path></target></pool>", 0), libvirt.VIR_ERR_SYSTEM_ERROR),
  ("duplicate pool target", lambda: c.storagePoolDefineXML("<pool type='dir'><name>twin</name><target><path>{root}/images</path></target></pool>", 0), libvirt.VIR_ERR_OPERATION_FAILED),
  ("slash in name", lambda: p.createXML("<volume><name>a/b</name><capacity>1</capacity></volume>", 0), libvirt.VIR_ERR_XML_DETAIL),
  ("dotdot", lambda: p.createXML("<volume><name>..</name><capacity>1</capacity></volume>", 0), libvirt.VIR_ERR_XML_DETAIL),
  ("overflow", lambda: p.createXML("<volume><name>o</name><capacity unit='EiB'>100</capacity></volume>", 0), libvirt.VIR_ERR_OVERFLOW),
  ("unknown format", lambda: p.createXML("<volume><name>u</name><capacity>1</capacity><target><format type='zip'/></target></volume>", 0), libvirt.VIR_ERR_XML_ERROR),
  ("duplicate volume", lambda: p.createXML("<volume><name>taken</name><capacity>1</capacity></volume>", 0), libvirt.VIR_ERR_STORAGE_VOL_EXIST),
  ("missing backing", lambda: p.createXML("<volume><name>m.qcow2</name><capacity>1048576</capacity><target><format type='qcow2'/></target><backingStore><path>/nowhere/base.qcow2</path></backingStore></volume>", 0), libvirt.VIR_ERR_SYSTEM_ERROR),
  ("no such pool", lambda: c.storagePoolLookupByName("nope"), libvirt.VIR_ERR_NO_STORAGE_POOL),
  ("no such volume", lambda: p.storageVolLookupByName("nope"), libvirt.VIR_ERR_NO_STORAGE_VOL),
  ("no such path", lambda: c.storageVolLookupByPath("{root}/images/nope"), libvirt.VIR_ERR_NO_STORAGE_VOL),
  ("unknown flag", lambda: p.refresh(1 << 20), libvirt.VIR_ERR_INVALID_ARG),
]
bad = [(name, code(f), want) for (name, f, want) in cases if code(f) != want]
assert not bad, bad
print(sorted(v.name() for v in p.listAllVolumes(0)))
print(sorted(x.name() for x in c.listAllStoragePools(0)))
"#
    );
    std::fs::write(d.root.path().join("afile"), b"x").unwrap();
    let out = python(&d, &script);
    assert!(out.contains("['taken']"), "only the one volume: {out}");
    assert!(out.contains("['default']"), "no half-made pool: {out}");
    let names: Vec<_> = std::fs::read_dir(images(&d))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["taken".to_owned()], "nothing half-made on disk");
}

/// A daemon killed while it clones leaves no visible partial volume and no
/// qemu-img still writing one, and the next start removes the partial file.
#[test]
fn sigkill_during_clone_leaves_no_partial_volume() {
    let mut d = Daemon::start();
    data_volume(&d, "big.img", 384);
    let mut clone = Command::new("virsh")
        .args([
            "-c",
            &d.uri,
            "vol-clone",
            "--pool",
            "default",
            "big.img",
            "copy.img",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = images(&d);
    let partial = || {
        std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("ferrovirt-partial")
        })
    };
    // The qemu-img writing the clone, named by its partial file.
    let needle = dir
        .join(".copy.img.ferrovirt-partial")
        .to_string_lossy()
        .into_owned();
    let mut writer = None;
    assert!(
        wait::until(Duration::from_secs(30), || {
            writer = testkit::processes::with_arg(&needle).first().copied();
            writer.is_some() && partial()
        }),
        "the clone never started writing\n{}",
        tail(&d.log(), 30)
    );
    // Held still, so that only the daemon's death can end it: a qemu-img
    // that outlived the daemon would stay.
    let writer = writer.unwrap();
    testkit::processes::signal(writer, Signal::SIGSTOP).unwrap();
    d.kill();
    let _ = clone.wait();
    let gone = wait::until(Duration::from_secs(10), || {
        testkit::processes::with_arg(&needle).is_empty()
    });
    let _ = testkit::processes::kill_with_arg(&needle, Duration::from_secs(10));
    assert!(gone, "qemu-img outlived the killed daemon");
    d.spawn();
    let vols = d.virsh_ok(&["vol-list", "default"]);
    assert!(
        vols.contains("big.img") && !vols.contains("copy.img"),
        "{vols}"
    );
    assert!(!partial(), "partial file swept at start");
    // The name is free again, and a clone that is not interrupted succeeds.
    d.virsh_ok(&["vol-clone", "--pool", "default", "big.img", "copy.img"]);
    assert!(d.virsh_ok(&["vol-list", "default"]).contains("copy.img"));
}

/// One round of snapshot queries: the volumes and the info of `pool`,
/// and the domain list. Returns how long it took.
async fn query_round(c: &rpc::Client, pool: &NonnullStoragePool) -> Duration {
    let t = Instant::now();
    let vols: StoragePoolListAllVolumesRet = c
        .call(
            p::STORAGE_POOL_LIST_ALL_VOLUMES,
            &StoragePoolListAllVolumesArgs {
                pool: pool.clone(),
                need_results: 1,
                flags: 0,
            },
        )
        .await
        .unwrap();
    assert!(!vols.vols.is_empty());
    let _: StoragePoolGetInfoRet = c
        .call(
            p::STORAGE_POOL_GET_INFO,
            &StoragePoolArgs { pool: pool.clone() },
        )
        .await
        .unwrap();
    c.list_all_domains(0).await.unwrap();
    t.elapsed()
}

/// Queries on the pool keep answering while a fully allocated volume
/// is cloned on it: they read a snapshot and never wait for the clone's
/// job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_during_a_long_clone() {
    let d = Daemon::start();
    data_volume(&d, "big.img", 256);
    let c = common::rpc_open(&d.sock()).await;
    let pool: StoragePoolRet = c
        .call(
            p::STORAGE_POOL_LOOKUP_BY_NAME,
            &NameArgs {
                name: "default".into(),
            },
        )
        .await
        .unwrap();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(query_round(&c, &pool.pool).await);
    }
    let mut clone = tokio::process::Command::new("virsh")
        .args([
            "-c",
            &d.uri,
            "vol-clone",
            "--pool",
            "default",
            "big.img",
            "copy.img",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = clone.stderr.take().unwrap();
    let started = Instant::now();
    let mut busy = Vec::new();
    let status = loop {
        tokio::select! {
            st = clone.wait() => break st.unwrap(),
            () = async { busy.push(query_round(&c, &pool.pool).await) } => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "clone did not finish"
        );
    };
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
        .await
        .unwrap();
    assert!(
        status.success(),
        "vol-clone failed: {err}\n{}",
        tail(&d.log(), 20)
    );
    let (idle, busy_p) = (Percentiles::of(&idle), Percentiles::of(&busy));
    println!(
        "vol-list + pool-info + domain list, one connection: idle p50 {:?} p99 {:?}; \
         during a 256 MiB clone ({:?}) p50 {:?} p99 {:?} ({} rounds)",
        idle.p50,
        idle.p99,
        started.elapsed(),
        busy_p.p50,
        busy_p.p99,
        busy.len()
    );
    assert!(!busy.is_empty(), "queries ran during the clone");
}

/// A volume a running domain uses, directly or as the backing file of its
/// disk, is neither deleted nor shrunk; once the domain stops it can be.
#[test]
fn a_volume_in_use_is_not_deleted_or_shrunk() {
    let d = Daemon::start();
    d.virsh_ok(&[
        "vol-create-as",
        "default",
        "base.qcow2",
        "64M",
        "--format",
        "qcow2",
    ]);
    d.virsh_ok(&[
        "vol-create-as",
        "default",
        "top.qcow2",
        "64M",
        "--format",
        "qcow2",
        "--backing-vol",
        "base.qcow2",
        "--backing-vol-format",
        "qcow2",
    ]);
    let top = images(&d).join("top.qcow2");
    let xml = format!(
        "<domain type='{}'><name>user</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
        testkit::accel::test_domain_type(),
        top.display()
    );
    let f = d.file("user.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", "--paused", "user"]);
    for (args, what) in [
        (
            vec!["vol-delete", "--pool", "default", "top.qcow2"],
            "its disk",
        ),
        (
            vec!["vol-delete", "--pool", "default", "base.qcow2"],
            "its backing file",
        ),
        (
            vec![
                "vol-resize",
                "--pool",
                "default",
                "top.qcow2",
                "32M",
                "--shrink",
            ],
            "a shrink",
        ),
    ] {
        let out = d.virsh(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was allowed");
        assert!(
            err.contains("Requested operation is not valid") && err.contains("'user'"),
            "{what}: {err}"
        );
    }
    assert!(top.exists());
    d.virsh_ok(&["destroy", "user"]);
    d.virsh_ok(&["vol-delete", "--pool", "default", "top.qcow2"]);
    d.virsh_ok(&["vol-delete", "--pool", "default", "base.qcow2"]);
}
