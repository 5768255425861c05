//! Black-box: the real `virsh` (libvirt-clients) and libvirt-python against
//! our server with the mock handler. Proves the wire format end to end. A
//! missing tool fails the test, naming the package to install.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::TestServer;
use rpc::Config;
use rpc::protocol::remote::procedure;
use testkit::tools::{Tool, virsh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virsh_version_list_and_error() {
    Tool::Virsh.require();
    let ts = TestServer::start(Config::default()).await;
    let uri = format!("qemu+unix:///system?socket={}", ts.path().display());

    let u = uri.clone();
    let out = tokio::task::spawn_blocking(move || virsh(&u, &["version"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "virsh version failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Using API: QEMU 9.0.0"), "{stdout}");
    assert!(
        stdout.contains("Running hypervisor: QEMU 8.2.0"),
        "{stdout}"
    );
    let version_seq = ts.mock.seen();
    eprintln!(
        "virsh version sent: {:?}",
        version_seq
            .iter()
            .map(|p| rpc::server::describe_procedure(*p))
            .collect::<Vec<_>>()
    );
    eprintln!("features asked: {:?}", ts.mock.features.lock().unwrap());
    assert_eq!(version_seq.first(), Some(&procedure::AUTH_LIST));
    assert!(version_seq.contains(&procedure::CONNECT_OPEN));
    assert_eq!(version_seq.last(), Some(&procedure::CONNECT_CLOSE));

    let u = uri.clone();
    let out = tokio::task::spawn_blocking(move || virsh(&u, &["list", "--all"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "virsh list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Id") && stdout.contains("Name") && stdout.contains("State"),
        "{stdout}"
    );
    assert!(
        ts.mock
            .seen()
            .contains(&procedure::CONNECT_LIST_ALL_DOMAINS)
    );

    // An unimplemented procedure gives a meaningful error line.
    let u = uri.clone();
    let out = tokio::task::spawn_blocking(move || virsh(&u, &["nodeinfo"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "error: this function is not supported by the connection driver: NODE_GET_INFO"
        ),
        "{stderr}"
    );
    eprintln!("virsh nodeinfo: {}", stderr.trim());

    // Read-only socket: a mutating command is refused with a clear message.
    let ro_uri = format!("qemu+unix:///system?socket={}", ts.ro_path.display());
    let xml = ts.dir.path().join("vm.xml");
    std::fs::write(
        &xml,
        "<domain type='kvm'><name>vm</name><memory>1024</memory></domain>",
    )
    .unwrap();
    let xml = xml.display().to_string();
    let out = tokio::task::spawn_blocking(move || virsh(&ro_uri, &["define", &xml]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("error: operation forbidden: read only access prevents"),
        "{stderr}"
    );
    eprintln!("virsh define on the read-only socket: {}", stderr.trim());

    // Every connection was cleaned up.
    let n = ts.mock.connected.lock().unwrap().len();
    ts.mock
        .wait_for("all virsh disconnects", |m| m.disconnected().len() == n)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libvirt_python_against_the_mock() {
    Tool::Python3Libvirt.require();
    let ts = TestServer::start(Config::default()).await;
    let uri = format!("qemu+unix:///system?socket={}", ts.path().display());
    let script = format!(
        "import libvirt\n\
         c = libvirt.open('{uri}')\n\
         assert c.getType() == 'QEMU'\n\
         assert c.getVersion() == 8002000\n\
         assert c.listAllDomains() == []\n\
         try:\n    c.lookupByName('x')\n    raise SystemExit('no error')\n\
         except libvirt.libvirtError as e:\n    assert e.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT, e.get_error_code()\n\
         c.close()\n\
         print('ok')\n"
    );
    let out = tokio::task::spawn_blocking(move || {
        testkit::tools::python3()
            .args(["-c", &script])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
