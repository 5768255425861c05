//! The procedure table: complete, consistent, and enforced on the
//! read-only socket as real virsh sees it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use qemu::{Driver, DriverConfig};
use rpc::dispatch::Access;

use rpc::protocol::remote::{procedure as p, procedure_name};
use rpc::server::describe_procedure;

use super::*;

fn rows() -> Vec<(i32, Access, Lane)> {
    table()
        .expect("the table builds: every number known, none twice")
        .rows()
        .map(|r| (r.procedure(), r.access(), r.lane()))
        .collect()
}

#[test]
fn table_rows_are_known_procedures_each_once() {
    let rows = rows();
    assert_eq!(rows.len(), 212, "procedures served");
    for (n, _, _) in &rows {
        assert!(procedure_name(*n).is_some(), "{n}");
    }
    let mut numbers: Vec<_> = rows.iter().map(|r| r.0).collect();
    numbers.dedup();
    assert_eq!(numbers.len(), rows.len());
}

#[test]
fn read_only_access_follows_what_a_procedure_changes() {
    let t = table().expect("table");
    for (proc_, mutating) in [
        (p::DOMAIN_GET_INFO, false),
        (p::DOMAIN_DESTROY, true),
        (p::DOMAIN_DEFINE_XML, true),
        (p::DOMAIN_SAVE_IMAGE_GET_XML_DESC, false),
        (p::DOMAIN_SAVE_IMAGE_DEFINE_XML, true),
        (p::CONNECT_OPEN, false),
    ] {
        assert_eq!(
            t.is_mutating(proc_),
            mutating,
            "{}",
            describe_procedure(proc_)
        );
    }
    // A procedure without a row changes nothing: NO_SUPPORT on either
    // socket, as clients probing for features expect.
    assert!(t.row(9999).is_none() && !t.is_mutating(9999));
    assert!(t.row(p::DOMAIN_BLOCK_PEEK).is_none());
}

/// The priority lane is for calls that never wait for a job or the
/// monitor: reads of a snapshot, or destroy (which kills QEMU first).
#[test]
fn only_reads_and_destroy_never_queue() {
    for (n, access, lane) in rows() {
        if lane == Priority && access == Write {
            assert!(
                n == p::DOMAIN_DESTROY || n == p::DOMAIN_DESTROY_FLAGS,
                "{} writes and never queues",
                describe_procedure(n)
            );
        }
    }
    let t = table().expect("table");
    for slow in [
        p::DOMAIN_SUSPEND,
        p::DOMAIN_CREATE,
        p::DOMAIN_GET_JOB_INFO,
        p::CONNECT_GET_CAPABILITIES,
    ] {
        assert_eq!(t.lane(slow), Normal, "{}", describe_procedure(slow));
    }
}

const DOM: &str = "ro-dom";
/// Another domain, without a managed-save image: virsh refuses to send an
/// undefine without `--managed-save` while one exists.
const PLAIN: &str = "ro-plain";

/// A volume of the default pool the volume commands below name.
const VOL: &str = "ro-vol";
/// A network defined but never started (tests never touch the host's
/// networking).
const NET: &str = "ro-net";
/// A secret with a value, for the commands that name one.
const SECRET: &str = "5e3ca5e1-0000-4000-8000-00000000aaaa";

fn network_xml(name: &str) -> String {
    format!(
        "<network><name>{name}</name><bridge name='fvro0'/>\
         <ip address='10.253.7.1' netmask='255.255.255.0'/></network>"
    )
}

/// Files the virsh commands below name.
struct Files {
    xml: String,
    image: String,
    pool_xml: String,
    net_xml: String,
    secret_xml: String,
    /// The read-write socket: the other end of a migration.
    rw_uri: String,
}

/// How a real libvirt client is made to send a procedure.
enum Client<'a> {
    Virsh(Vec<&'a str>),
    /// A libvirt-python statement, with `dom` looked up by name in `c`,
    /// for what virsh never sends (it tries the `_FLAGS` form first).
    Python(&'static str),
    /// The bare procedure, for the migration phases a client sends only
    /// after an earlier phase succeeded on the same connection (which the
    /// read-only socket refuses first).
    Bare(i32),
}

/// The client call that makes libvirt send `proc_`.
fn client_call(proc_: i32, f: &Files) -> Option<Client<'_>> {
    if proc_ == p::DOMAIN_UNDEFINE {
        return Some(Client::Python("dom.undefine()"));
    }
    if proc_ == p::DOMAIN_SET_MEMORY {
        // virsh setmem always sends the flags form.
        return Some(Client::Python("dom.setMemory(32768)"));
    }
    if proc_ == p::STORAGE_VOL_WIPE {
        // virsh always sends the pattern form.
        return Some(Client::Python(
            "c.storagePoolLookupByName('default').storageVolLookupByName('ro-vol').wipe(0)",
        ));
    }
    if matches!(
        proc_,
        p::DOMAIN_MIGRATE_PREPARE3_PARAMS
            | p::DOMAIN_MIGRATE_PERFORM3_PARAMS
            | p::DOMAIN_MIGRATE_FINISH3_PARAMS
            | p::DOMAIN_MIGRATE_CONFIRM3_PARAMS
    ) {
        return Some(Client::Bare(proc_));
    }
    stream_call(proc_).or_else(|| virsh_command(proc_, f).map(Client::Virsh))
}

/// The stream and descriptor procedures, from libvirt-python (virsh
/// console wants a terminal; these need no local file).
fn stream_call(proc_: i32) -> Option<Client<'static>> {
    Some(Client::Python(match proc_ {
        p::DOMAIN_OPEN_CONSOLE => "dom.openConsole(None, c.newStream(0), 0)",
        p::DOMAIN_OPEN_CHANNEL => "dom.openChannel(None, c.newStream(0), 0)",
        p::STORAGE_VOL_UPLOAD => {
            "c.storagePoolLookupByName('default').storageVolLookupByName('ro-vol').upload(c.newStream(0), 0, 0, 0)"
        }
        p::STORAGE_VOL_DOWNLOAD => {
            "c.storagePoolLookupByName('default').storageVolLookupByName('ro-vol').download(c.newStream(0), 0, 0, 0)"
        }
        p::DOMAIN_SCREENSHOT => "dom.screenshot(c.newStream(0), 0, 0)",
        // Sent as CALL_WITH_FDS: the descriptor is read, then refused.
        p::DOMAIN_OPEN_GRAPHICS => {
            "import socket; a, b = socket.socketpair(); dom.openGraphics(0, a.fileno(), 0)"
        }
        p::DOMAIN_OPEN_GRAPHICS_FD => "dom.openGraphicsFD(0, 0)",
        _ => return None,
    }))
}

fn virsh_command(proc_: i32, f: &Files) -> Option<Vec<&str>> {
    let (xml, image) = (f.xml.as_str(), f.image.as_str());
    if let Some(c) = storage_command(proc_, f)
        .or_else(|| network_command(proc_, f))
        .or_else(|| secret_command(proc_, f))
    {
        return Some(c);
    }
    Some(match proc_ {
        p::DOMAIN_DEFINE_XML => vec!["define", xml],
        p::DOMAIN_DEFINE_XML_FLAGS => vec!["define", "--validate", xml],
        p::DOMAIN_UNDEFINE_FLAGS => vec!["undefine", "--nvram", PLAIN],
        p::DOMAIN_CREATE_XML => vec!["create", xml],
        p::DOMAIN_CREATE => vec!["start", DOM],
        p::DOMAIN_CREATE_WITH_FLAGS => vec!["start", "--paused", DOM],
        p::DOMAIN_DESTROY => vec!["destroy", DOM],
        p::DOMAIN_DESTROY_FLAGS => vec!["destroy", "--graceful", DOM],
        p::DOMAIN_SHUTDOWN => vec!["shutdown", DOM],
        p::DOMAIN_SHUTDOWN_FLAGS => vec!["shutdown", "--mode", "acpi", DOM],
        p::DOMAIN_REBOOT => vec!["reboot", DOM],
        p::DOMAIN_RESET => vec!["reset", DOM],
        p::DOMAIN_SUSPEND => vec!["suspend", DOM],
        p::DOMAIN_RESUME => vec!["resume", DOM],
        p::DOMAIN_ATTACH_DEVICE => vec!["attach-device", DOM, xml],
        p::DOMAIN_ATTACH_DEVICE_FLAGS => vec!["attach-device", DOM, xml, "--config"],
        p::DOMAIN_DETACH_DEVICE => vec!["detach-device", DOM, xml],
        p::DOMAIN_DETACH_DEVICE_FLAGS => vec!["detach-device", DOM, xml, "--config"],
        p::DOMAIN_DETACH_DEVICE_ALIAS => vec!["detach-device-alias", DOM, "virtio-disk0"],
        p::DOMAIN_UPDATE_DEVICE_FLAGS => vec!["update-device", DOM, xml, "--config"],
        p::DOMAIN_SET_MEMORY_FLAGS => vec!["setmem", DOM, "32M", "--config"],
        p::DOMAIN_BLOCK_RESIZE => vec!["blockresize", DOM, "vda", "1G"],
        p::DOMAIN_SET_BLOCK_THRESHOLD => vec!["domblkthreshold", DOM, "vda", "1M"],
        p::DOMAIN_SET_VCPUS_FLAGS => vec!["setvcpus", DOM, "1", "--config"],
        p::DOMAIN_PIN_VCPU_FLAGS => vec!["vcpupin", DOM, "0", "0", "--config"],
        p::DOMAIN_PIN_EMULATOR => vec!["emulatorpin", DOM, "0", "--config"],
        p::DOMAIN_SET_AUTOSTART => vec!["autostart", DOM],
        p::DOMAIN_ABORT_JOB => vec!["domjobabort", DOM],
        p::DOMAIN_MIGRATE_BEGIN3_PARAMS => {
            vec!["migrate", "--offline", "--persistent", DOM, &f.rw_uri]
        }
        p::DOMAIN_MIGRATE_SET_MAX_SPEED => vec!["migrate-setspeed", DOM, "10"],
        p::DOMAIN_MIGRATE_SET_MAX_DOWNTIME => vec!["migrate-setmaxdowntime", DOM, "100"],
        p::DOMAIN_MIGRATE_START_POST_COPY => vec!["migrate-postcopy", DOM],
        p::DOMAIN_SAVE => vec!["save", DOM, image],
        p::DOMAIN_SAVE_FLAGS => vec!["save", "--running", DOM, image],
        p::DOMAIN_CORE_DUMP => vec!["dump", DOM, image],
        p::DOMAIN_CORE_DUMP_WITH_FORMAT => {
            vec![
                "dump",
                "--memory-only",
                "--format",
                "kdump-zlib",
                DOM,
                image,
            ]
        }
        p::DOMAIN_RESTORE => vec!["restore", image],
        p::DOMAIN_RESTORE_FLAGS => vec!["restore", "--paused", image],
        p::DOMAIN_MANAGED_SAVE => vec!["managedsave", DOM],
        p::DOMAIN_MANAGED_SAVE_REMOVE => vec!["managedsave-remove", DOM],
        p::DOMAIN_SAVE_IMAGE_DEFINE_XML => vec!["save-image-define", image, xml],
        p::DOMAIN_BLOCK_COPY => vec![
            "blockcopy",
            DOM,
            "vda",
            "/tmp/ro-copy.img",
            "--buf-size",
            "65536",
        ],
        p::DOMAIN_BLOCK_REBASE => vec!["blockcopy", DOM, "vda", "/tmp/ro-copy.img"],
        p::DOMAIN_BLOCK_PULL => vec!["blockpull", DOM, "vda"],
        p::DOMAIN_BLOCK_COMMIT => vec!["blockcommit", DOM, "vda"],
        p::DOMAIN_BLOCK_JOB_ABORT => vec!["blockjob", DOM, "vda", "--abort"],
        p::DOMAIN_BLOCK_JOB_SET_SPEED => vec!["blockjob", DOM, "vda", "--bandwidth", "10"],
        p::DOMAIN_SET_MEMORY_STATS_PERIOD => vec!["dommemstat", DOM, "--period", "5"],
        p::DOMAIN_SET_INTERFACE_PARAMETERS => {
            vec!["domiftune", DOM, "52:54:00:00:00:01", "--inbound", "100"]
        }
        _ => return None,
    })
}

fn storage_command(proc_: i32, f: &Files) -> Option<Vec<&str>> {
    let pool_xml = f.pool_xml.as_str();
    Some(match proc_ {
        p::STORAGE_POOL_DEFINE_XML => vec!["pool-define", pool_xml],
        p::STORAGE_POOL_CREATE_XML => vec!["pool-create", pool_xml],
        p::STORAGE_POOL_CREATE => vec!["pool-start", "default"],
        p::STORAGE_POOL_BUILD => vec!["pool-build", "default"],
        p::STORAGE_POOL_DESTROY => vec!["pool-destroy", "default"],
        p::STORAGE_POOL_DELETE => vec!["pool-delete", "default"],
        p::STORAGE_POOL_UNDEFINE => vec!["pool-undefine", "default"],
        p::STORAGE_POOL_REFRESH => vec!["pool-refresh", "default"],
        p::STORAGE_POOL_SET_AUTOSTART => vec!["pool-autostart", "default"],
        p::STORAGE_VOL_CREATE_XML => vec!["vol-create-as", "default", "new", "1M"],
        p::STORAGE_VOL_CREATE_XML_FROM => vec!["vol-clone", "--pool", "default", VOL, "copy"],
        p::STORAGE_VOL_DELETE => vec!["vol-delete", "--pool", "default", VOL],
        p::STORAGE_VOL_WIPE_PATTERN => {
            vec![
                "vol-wipe",
                "--pool",
                "default",
                "--algorithm",
                "random",
                VOL,
            ]
        }
        p::STORAGE_VOL_RESIZE => vec!["vol-resize", "--pool", "default", VOL, "2M"],
        _ => return None,
    })
}

fn network_command(proc_: i32, f: &Files) -> Option<Vec<&str>> {
    let net_xml = f.net_xml.as_str();
    Some(match proc_ {
        p::NETWORK_DEFINE_XML => vec!["net-define", net_xml],
        p::NETWORK_DEFINE_XML_FLAGS => vec!["net-define", "--validate", net_xml],
        p::NETWORK_CREATE_XML => vec!["net-create", net_xml],
        p::NETWORK_CREATE_XML_FLAGS => vec!["net-create", "--validate", net_xml],
        p::NETWORK_CREATE => vec!["net-start", NET],
        p::NETWORK_DESTROY => vec!["net-destroy", NET],
        p::NETWORK_UNDEFINE => vec!["net-undefine", NET],
        p::NETWORK_SET_AUTOSTART => vec!["net-autostart", NET],
        p::NETWORK_UPDATE => vec![
            "net-update",
            NET,
            "add",
            "ip-dhcp-host",
            "<host mac='52:54:00:00:00:01' ip='10.253.7.9'/>",
        ],
        _ => return None,
    })
}

fn secret_command(proc_: i32, f: &Files) -> Option<Vec<&str>> {
    Some(match proc_ {
        p::SECRET_DEFINE_XML => vec!["secret-define", f.secret_xml.as_str()],
        p::SECRET_SET_VALUE => vec!["secret-set-value", SECRET, "--base64", "c2VjcmV0"],
        p::SECRET_GET_VALUE => vec!["secret-get-value", SECRET],
        p::SECRET_UNDEFINE => vec!["secret-undefine", SECRET],
        _ => return None,
    })
}

fn run(uri: &str, call: &Client<'_>) -> (bool, String) {
    match call {
        Client::Virsh(args) => virsh(uri, args),
        Client::Python(stmt) => python(uri, stmt),
        Client::Bare(proc_) => bare(uri, *proc_),
    }
}

/// Sends procedure `proc_` with an empty body on the socket of `uri`.
fn bare(uri: &str, proc_: i32) -> (bool, String) {
    let path = uri
        .split("socket=")
        .nth(1)
        .expect("a socket URI")
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let c = rpc::Client::connect(&path).await.expect("connect");
        c.open(Some("qemu:///system"), 0).await.expect("open");
        let r = c
            .call_raw(
                rpc::protocol::remote::PROGRAM,
                rpc::protocol::remote::VERSION,
                proc_,
                Bytes::new(),
            )
            .await;
        match r {
            Ok(_) => (true, String::new()),
            Err(e) => (false, e.to_string()),
        }
    })
}

fn python(uri: &str, stmt: &str) -> (bool, String) {
    let script = format!(
        "import libvirt\nc = libvirt.open('{uri}')\ndom = c.lookupByName('{PLAIN}')\n{stmt}\n"
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("/usr/bin/python3 runs (apt-get install python3-libvirt)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn virsh(uri: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .output()
        .expect("virsh runs (apt-get install libvirt-clients)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os>\
         <devices><emulator>{}</emulator></devices></domain>",
        ::domain::DEFAULT_EMULATOR
    )
}

/// The daemon (driver, table, server) in this process on `root`, with
/// `DOM` defined and a managed-save image present (so `managedsave-remove`
/// gets as far as calling the procedure). Returns the two socket URIs.
async fn serve(root: &Path) -> (String, String) {
    let driver = Driver::open(DriverConfig::new(root)).await.expect("driver");
    for name in [DOM, PLAIN] {
        driver.define_xml(&domain_xml(name)).await.expect("define");
    }
    let save_dir = root.join("lib/qemu/save");
    std::fs::create_dir_all(&save_dir).expect("save dir");
    std::fs::write(save_dir.join(format!("{DOM}.save")), b"").expect("image");
    let storage = ::storage::StorageDriver::open(::storage::StorageConfig::new(root))
        .await
        .expect("storage");
    let pool = storage.lookup_by_name("default").expect("default pool");
    let vol = format!("<volume><name>{VOL}</name><capacity>1048576</capacity></volume>");
    storage
        .create_volume(&pool, &vol, ::storage::CreateOptions::default())
        .await
        .expect("volume");
    let relay = Arc::new(Relay::new());
    let uri = "qemu:///system".to_owned();
    // Never touch the host's networking: no default network, no autostart.
    let mut net_cfg = ::network::NetworkConfig::new(root);
    net_cfg.default_network = false;
    net_cfg.autostart = false;
    let network = ::network::NetworkDriver::open(net_cfg)
        .await
        .expect("network driver");
    network
        .define(&network_xml(NET))
        .await
        .expect("network defined (never started)");
    let secrets = ::secret::SecretDriver::open(::secret::SecretConfig::new(root)).expect("secrets");
    let secret =
        format!("<secret><uuid>{SECRET}</uuid><usage type='tls'><name>ro</name></usage></secret>");
    secrets.define_xml(&secret).expect("secret");
    secrets
        .set_value(&uuid::Uuid::parse_str(SECRET).expect("uuid"), b"v")
        .expect("value");
    let daemon = Daemon::new(driver, storage, network, secrets, relay, uri).expect("daemon");
    let server = rpc::Server::new(rpc::Config::default(), daemon);
    let mut uris = Vec::new();
    for (name, readonly) in [("sock", false), ("sock-ro", true)] {
        let path = root.join(name);
        let l = tokio::net::UnixListener::bind(&path).expect("bind");
        let s = server.clone();
        tokio::spawn(async move { s.serve(l, readonly).await });
        uris.push(format!("qemu+unix:///system?socket={}", path.display()));
    }
    (uris.remove(0), uris.remove(0))
}

fn files(root: &Path) -> Files {
    let xml: PathBuf = root.join("dom.xml");
    std::fs::write(&xml, domain_xml(DOM)).expect("xml");
    let pool_xml = root.join("pool.xml");
    let pool = format!(
        "<pool type='dir'><name>ro-pool</name><target><path>{}</path></target></pool>",
        root.join("ro-pool").display()
    );
    std::fs::write(&pool_xml, pool).expect("pool xml");
    let net_xml = root.join("net.xml");
    std::fs::write(&net_xml, network_xml("ro-net2")).expect("net xml");
    let secret_xml = root.join("secret.xml");
    std::fs::write(
        &secret_xml,
        "<secret><usage type='tls'><name>ro2</name></usage></secret>",
    )
    .expect("secret xml");
    Files {
        xml: xml.display().to_string(),
        image: root.join("dom.save").display().to_string(),
        pool_xml: pool_xml.display().to_string(),
        net_xml: net_xml.display().to_string(),
        secret_xml: secret_xml.display().to_string(),
        rw_uri: format!("qemu+unix:///system?socket={}", root.join("sock").display()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn virsh_is_denied_every_write_row_on_the_read_only_socket() {
    let root = tempfile::Builder::new()
        .prefix("fvro")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let rt = runtime();
    let (rw, ro) = rt.block_on(serve(root.path()));
    let f = files(root.path());
    let writes: Vec<i32> = rows()
        .into_iter()
        .filter(|(_, access, _)| *access == Write)
        .map(|(n, _, _)| n)
        .collect();
    assert!(writes.len() >= 30, "{} write rows", writes.len());
    for n in writes {
        let name = describe_procedure(n);
        let call = client_call(n, &f)
            .unwrap_or_else(|| panic!("{name} is Write: give it a client call here"));
        let (ok, err) = run(&ro, &call);
        println!("{name}: {}", err.trim());
        assert!(!ok, "{name} succeeded on the read-only socket");
        assert!(
            err.contains(&format!(
                "operation forbidden: read only access prevents {name}"
            )),
            "{name}: {err}"
        );
    }
    // Nothing changed; the read-write socket still lets the same through.
    let (ok, err) = virsh(&rw, &["domstate", DOM]);
    assert!(ok, "{err}");
    let (ok, err) = virsh(&rw, &["autostart", "--disable", DOM]);
    assert!(ok, "{err}");
}

#[test]
fn virsh_dumpxml_security_info_is_denied_on_the_read_only_socket() {
    let root = tempfile::Builder::new()
        .prefix("fvro")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let rt = runtime();
    let (rw, ro) = rt.block_on(serve(root.path()));
    let (ok, err) = virsh(&ro, &["dumpxml", "--security-info", DOM]);
    assert!(!ok);
    assert!(
        err.contains("error: operation forbidden: virDomainGetXMLDesc with secure flag"),
        "{err}"
    );
    for args in [
        &["dumpxml", DOM][..],
        &["dumpxml", "--inactive", DOM],
        &["vcpucount", DOM],
    ] {
        let (ok, err) = virsh(&ro, args);
        assert!(ok, "read-only {args:?}: {err}");
    }
    let (ok, err) = virsh(&rw, &["dumpxml", "--security-info", DOM]);
    assert!(ok, "read-write dumpxml --security-info: {err}");
    let (ok, err) = virsh(&ro, &["vcpucount", "--guest", DOM]);
    assert!(!ok);
    assert!(err.contains("operation forbidden"), "{err}");
}
