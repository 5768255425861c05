//! Bad input through the whole stack: each case gets the libvirt error code
//! a client can act on, a message naming what is wrong, and leaves nothing
//! behind (no half-defined domain, no QEMU process).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{Daemon, pids_mentioning, real_domain_xml, rpc_open};
use rpc::ClientError;

/// A valid minimal domain with `devices` spliced in.
fn with_devices(name: &str, devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devices}</devices></domain>"
    )
}

fn code_of(e: &ClientError) -> i32 {
    match e {
        ClientError::Remote(r) => r.code,
        other => panic!("expected a libvirt error reply, got {other}"),
    }
}

fn message_of(e: &ClientError) -> String {
    match e {
        ClientError::Remote(r) => r.message.clone().unwrap_or_default(),
        other => panic!("expected a libvirt error reply, got {other}"),
    }
}

// virErrorNumber values.
const XML_ERROR: i32 = 27;
const CONFIG_UNSUPPORTED: i32 = 67;
const XML_DETAIL: i32 = 35;
const NO_NAME: i32 = 21;
const OS_TYPE: i32 = 16;
const NO_SOURCE: i32 = 19;
const OPERATION_FAILED: i32 = 9;
const OPERATION_INVALID: i32 = 55;
const SYSTEM_ERROR: i32 = 38;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn define_time_errors_have_libvirt_codes_and_leave_nothing() {
    let d = Daemon::start();
    let c = rpc_open(&d.root.path().join("run/libvirt-sock")).await;
    let good = c
        .define_xml(&real_domain_xml("good"))
        .await
        .expect("define good");
    let good_uuid = uuid::Uuid::from_bytes(good.uuid);

    let cases: Vec<(&str, String, i32, &str)> = vec![
        ("unclosed tag", "<domain type='qemu'><name>x</name".into(), XML_ERROR, ""),
        ("not XML", "hello, world".into(), XML_ERROR, ""),
        ("unknown device", with_devices("b1", "<frobnicator/>"), CONFIG_UNSUPPORTED, "frobnicator"),
        (
            "bad memory unit",
            "<domain type='qemu'><name>b2</name><memory unit='XB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os></domain>"
                .into(),
            XML_DETAIL,
            "XB",
        ),
        (
            "memory overflow",
            "<domain type='qemu'><name>b3</name><memory unit='TiB'>99999999999999</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
                .into(),
            XML_DETAIL,
            "memory",
        ),
        (
            "missing name",
            "<domain type='qemu'><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os></domain>"
                .into(),
            NO_NAME,
            "name",
        ),
        (
            "slash in name",
            "<domain type='qemu'><name>a/b</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os></domain>"
                .into(),
            XML_ERROR,
            "a/b",
        ),
        (
            "bad uuid",
            "<domain type='qemu'><name>b4</name><uuid>not-a-uuid</uuid><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
                .into(),
            XML_DETAIL,
            "not-a-uuid",
        ),
        (
            "zero vcpus",
            "<domain type='qemu'><name>b5</name><memory unit='MiB'>64</memory><vcpu>0</vcpu>\
             <os><type>hvm</type></os></domain>"
                .into(),
            XML_DETAIL,
            "vcpu",
        ),
        (
            "unknown os type",
            "<domain type='qemu'><name>b6</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>linux</type></os></domain>"
                .into(),
            OS_TYPE,
            "linux",
        ),
        (
            "unknown disk bus",
            with_devices(
                "b7",
                "<disk type='file' device='disk'><source file='/tmp/x.img'/><target dev='vdb' bus='floppy'/></disk>",
            ),
            CONFIG_UNSUPPORTED,
            "floppy",
        ),
        (
            "vnc on all addresses",
            with_devices("b8", "<graphics type='vnc' listen='0.0.0.0'/>"),
            CONFIG_UNSUPPORTED,
            "0.0.0.0",
        ),
        (
            "host device",
            with_devices(
                "b9",
                "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source></hostdev>",
            ),
            CONFIG_UNSUPPORTED,
            "hostdev",
        ),
        (
            "unsupported watchdog",
            with_devices("b10", "<watchdog model='ib700' action='reset'/>"),
            CONFIG_UNSUPPORTED,
            "ib700",
        ),
        (
            "duplicate disk target",
            with_devices(
                "b11",
                "<disk type='file' device='disk'><source file='/tmp/a.img'/><target dev='vda' bus='virtio'/></disk>\
                 <disk type='file' device='disk'><source file='/tmp/b.img'/><target dev='vda' bus='virtio'/></disk>",
            ),
            XML_ERROR,
            "vda",
        ),
        (
            "disk without source",
            with_devices(
                "b12",
                "<disk type='file' device='disk'><target dev='vda' bus='virtio'/></disk>",
            ),
            NO_SOURCE,
            "vda",
        ),
        (
            "unsupported lifecycle action",
            "<domain type='qemu'><name>b13</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os><on_reboot>preserve</on_reboot></domain>"
                .into(),
            CONFIG_UNSUPPORTED,
            "preserve",
        ),
        (
            "missing emulator",
            "<domain type='qemu'><name>b14</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os><devices><emulator>/nonexistent/qemu-system-x86_64</emulator></devices></domain>"
                .into(),
            SYSTEM_ERROR,
            "/nonexistent/qemu-system-x86_64",
        ),
        (
            "same name, other uuid",
            real_domain_xml("good").replace("<name>good</name>", "<name>good</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"),
            OPERATION_FAILED,
            "good",
        ),
        (
            "same uuid, other name",
            real_domain_xml("other").replace(
                "<name>other</name>",
                &format!("<name>other</name><uuid>{good_uuid}</uuid>"),
            ),
            OPERATION_FAILED,
            &good_uuid.to_string().leak()[..],
        ),
    ];
    assert!(cases.len() >= 20, "at least twenty bad inputs are covered");
    for (what, xml, want, mention) in &cases {
        let err = c
            .define_xml(xml)
            .await
            .expect_err(&format!("{what}: define must fail"));
        let (code, msg) = (code_of(&err), message_of(&err));
        println!("{what}: code {code}: {msg}");
        assert_eq!(code, *want, "{what}: wrong code; message: {msg}");
        assert!(
            msg.contains(mention),
            "{what}: message '{msg}' should mention '{mention}'"
        );
        // The same XML through CREATE_XML fails the same way and starts nothing.
        let err = c
            .call::<_, rpc::protocol::remote::DomainRet>(
                rpc::protocol::remote::procedure::DOMAIN_CREATE_XML,
                &rpc::protocol::remote::DomainCreateXmlArgs {
                    xml_desc: xml.clone(),
                    flags: 0,
                },
            )
            .await
            .expect_err(&format!("{what}: create must fail"));
        assert_eq!(
            code_of(&err),
            *want,
            "{what} via create: {}",
            message_of(&err)
        );
    }

    // Nothing was half-defined: only `good` exists, on the API and on disk.
    let out = d.virsh_ok(&["list", "--all", "--name"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        vec!["good"],
        "{out}"
    );
    let defs: Vec<_> = std::fs::read_dir(d.root.path().join("etc/qemu"))
        .expect("config dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    assert_eq!(defs, vec!["good.xml".to_string()]);
    // `good` is untouched by the failed redefinitions.
    let xml = d.virsh_ok(&["dumpxml", "good"]);
    assert!(xml.contains(&good_uuid.to_string()), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_time_errors_name_the_cause_and_leave_no_qemu() {
    let d = Daemon::start();
    let c = rpc_open(&d.root.path().join("run/libvirt-sock")).await;
    let root = d.root.path().to_string_lossy().into_owned();

    // A disk whose file does not exist.
    let missing = format!("{root}/no-such-disk.qcow2");
    let dom = c
        .define_xml(&with_devices(
            "nodisk",
            &format!(
                "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
                 <source file='{missing}'/><target dev='vda' bus='virtio'/></disk>"
            ),
        ))
        .await
        .expect("define with a missing disk is allowed, like libvirt");
    let err = c.create(&dom).await.expect_err("start must fail");
    let msg = message_of(&err);
    println!("missing disk: code {}: {msg}", code_of(&err));
    assert_eq!(code_of(&err), SYSTEM_ERROR, "{msg}");
    assert!(msg.contains(&missing), "{msg}");

    // QEMU itself refuses the command line: its own words reach the client.
    let dom2 = c
        .define_xml(
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>badarg</name>\
              <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os>\
              <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>\
              <qemu:commandline><qemu:arg value='-no-such-option'/></qemu:commandline></domain>",
        )
        .await
        .expect("define");
    let err = c.create(&dom2).await.expect_err("start must fail");
    let msg = message_of(&err);
    println!("bad qemu arg: code {}: {msg}", code_of(&err));
    assert_eq!(code_of(&err), OPERATION_FAILED, "{msg}");
    assert!(
        !msg.contains("-blockdev"),
        "the error should carry QEMU's words, not its argv: {msg}"
    );
    assert!(
        msg.contains("no-such-option"),
        "QEMU's reason must reach the user: {msg}"
    );

    // A bridged NIC is kept in the definition; with no such bridge on the
    // host it cannot start, says so, and no tap is made.
    let bridged = c
        .define_xml(&with_devices(
            "bridged",
            "<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:aa:bb:cc'/></interface>",
        ))
        .await
        .expect("define with a bridged NIC");
    let xml = d.virsh_ok(&["dumpxml", "bridged"]);
    assert!(xml.contains("<source bridge='br0'/>"), "{xml}");
    let err = c.create(&bridged).await.expect_err("start must fail");
    let msg = message_of(&err);
    assert_eq!(code_of(&err), OPERATION_INVALID, "{msg}");
    assert!(msg.contains("bridge 'br0' does not exist"), "{msg}");

    for name in ["nodisk", "badarg", "bridged"] {
        let st = d.virsh_ok(&["domstate", name]);
        assert_eq!(st.trim(), "shut off", "{name}: {st}");
    }
    assert!(
        pids_mentioning(&root).is_empty() || pids_mentioning(&root).iter().all(|p| !is_qemu(*p)),
        "a failed start left a QEMU behind"
    );
    // After fixing the cause, the same domain starts.
    testkit::tools::Tool::QemuImg.require();
    std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", &missing, "16M"])
        .status()
        .expect("qemu-img");
    c.create(&dom).await.expect("start after the disk exists");
    d.virsh_ok(&["destroy", "nodisk"]);
}

fn is_qemu(pid: u32) -> bool {
    testkit::procfs::cmdline(pid).is_some_and(|args| args.iter().any(|a| a.contains("qemu-system")))
}
