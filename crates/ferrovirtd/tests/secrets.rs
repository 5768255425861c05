//! Secrets end to end: the real virsh (`secret-*`, `secret-event`) and
//! libvirt-python the way OpenStack Nova drives them, libvirt's error
//! codes, the read-only socket, the bound on the number of secrets, and a
//! daemon SIGKILLed while a client defines secrets and sets values.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ChildLines, Daemon, tail, wait_child, wait_until};
use testkit::tools::Tool;

const U1: &str = "2a5b2b14-6d0c-4c69-9a55-ad0a20e5ab32";
const EPH: &str = "3b6c3c25-7e1d-4d7a-8b66-be1b31f6bc43";
const PRIV: &str = "4c7d4d36-8f2e-4e8b-9c77-cf2c42a7cd54";

const CEPH_XML: &str = "<secret ephemeral='no' private='no'>\n  \
    <uuid>2a5b2b14-6d0c-4c69-9a55-ad0a20e5ab32</uuid>\n  \
    <description>ceph admin</description>\n  \
    <usage type='ceph'>\n    <name>client.admin secret</name>\n  </usage>\n\
    </secret>\n";

/// Runs a libvirt-python script with `URI` and `RO_URI` set; returns its
/// stdout.
fn python(d: &Daemon, script: &str) -> String {
    let out = python_cmd(d, script).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        tail(&d.log(), 40)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn python_cmd(d: &Daemon, script: &str) -> Command {
    Tool::Python3Libvirt.require();
    let mut c = Command::new("/usr/bin/python3");
    c.arg("-c").arg(format!(
        "import libvirt, sys\nURI = '{}'\nRO_URI = '{}'\n\
         def code(f):\n    try:\n        f()\n    except libvirt.libvirtError as e:\n        \
         return e.get_error_code()\n    return None\n{script}",
        d.uri, d.ro_uri
    ));
    c
}

fn registrations(d: &Daemon) -> usize {
    d.log().matches("secret event callback registered").count()
}

/// `virsh secret-event --loop --event EVENT [--secret UUID]`, once the daemon has its
/// registration (so no event can be missed).
fn secret_event(d: &Daemon, event: &str, only: Option<&str>) -> (Child, ChildLines) {
    Tool::Virsh.require();
    let before = registrations(d);
    let filter = only.map(|u| ["--secret", u]);
    let mut child = Command::new("virsh")
        .args(["-c", &d.uri, "secret-event", "--loop", "--timeout", "120"])
        .args(["--event", event])
        .args(filter.iter().flatten())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn virsh secret-event");
    let lines = ChildLines::new(&mut child);
    wait_until("secret-event to register", Duration::from_secs(30), || {
        registrations(d) > before
    });
    (child, lines)
}

fn expect_lines(lines: &mut ChildLines, wanted: &[String]) {
    for w in wanted {
        if lines
            .wait_for(|l| l == w, Duration::from_secs(20))
            .is_none()
        {
            panic!("never printed '{w}'; printed:\n{}", lines.seen.join("\n"));
        }
    }
}

fn stderr_of(d: &Daemon, args: &[&str]) -> String {
    let out = d.virsh(args);
    assert!(!out.status.success(), "virsh {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `virsh secret-define` of the XML `xml`; returns virsh's output.
fn define(d: &Daemon, file: &str, xml: &str) -> String {
    d.virsh_ok(&["secret-define", &d.file(file, xml).to_string_lossy()])
}

/// `virsh secret-define` of `xml`, refused; returns virsh's errors.
fn define_refused(d: &Daemon, file: &str, xml: &str) -> String {
    stderr_of(d, &["secret-define", &d.file(file, xml).to_string_lossy()])
}

/// A persistent ceph secret, an ephemeral iSCSI one, a private volume one.
fn define_three(d: &Daemon) {
    let out = define(d, "ceph.xml", CEPH_XML);
    assert!(out.contains(&format!("Secret {U1} created")), "{out}");
    let eph = format!(
        "<secret ephemeral='yes'><uuid>{EPH}</uuid>\
         <usage type='iscsi'><target>libvirtiscsi</target></usage></secret>"
    );
    define(d, "eph.xml", &eph);
    let private = format!(
        "<secret private='yes'><uuid>{PRIV}</uuid>\
         <usage type='volume'><volume>/var/lib/images/enc.qcow2</volume></usage></secret>"
    );
    define(d, "priv.xml", &private);
    // secret-dumpxml gives libvirt's own layout back.
    let xml = d.virsh_ok(&["secret-dumpxml", U1]);
    assert_eq!(xml.trim_end(), CEPH_XML.trim_end());
}

fn lists_and_filters(d: &Daemon) {
    let list = d.virsh_ok(&["secret-list"]);
    assert!(
        list.contains(&format!("{U1}   ceph client.admin secret")),
        "{list}"
    );
    assert!(
        list.contains("iscsi libvirtiscsi") && list.contains(PRIV),
        "{list}"
    );
    let only = |flags: &[&str]| {
        let mut args = vec!["secret-list"];
        args.extend_from_slice(flags);
        let out = d.virsh_ok(&args);
        [U1, EPH, PRIV]
            .into_iter()
            .filter(|u| out.contains(u))
            .collect::<Vec<_>>()
    };
    assert_eq!(only(&["--ephemeral"]), vec![EPH]);
    assert_eq!(only(&["--no-ephemeral"]), vec![U1, PRIV]);
    assert_eq!(only(&["--private"]), vec![PRIV]);
    assert_eq!(only(&["--no-private"]), vec![U1, EPH]);
    assert_eq!(only(&["--no-ephemeral", "--no-private"]), vec![U1]);
}

/// Values by `--base64`, from a base64 file and from a plain file; a
/// private secret's value never leaves the daemon.
fn values(d: &Daemon) {
    let get = |u: &str| d.virsh_ok(&["secret-get-value", u]).trim().to_owned();
    d.virsh_ok(&["secret-set-value", U1, "--base64", "c2VjcmV0"]);
    assert_eq!(get(U1), "c2VjcmV0");
    let b64 = d.file("v.b64", "ZnJvbS1maWxl");
    d.virsh_ok(&["secret-set-value", U1, "--file", &b64.to_string_lossy()]);
    assert_eq!(get(U1), "ZnJvbS1maWxl");
    let plain = d
        .file("v.txt", "plain value")
        .to_string_lossy()
        .into_owned();
    d.virsh_ok(&["secret-set-value", U1, "--file", &plain, "--plain"]);
    assert_eq!(get(U1), "cGxhaW4gdmFsdWU=");
    let value = d.root.path().join(format!("etc/secrets/{U1}.value"));
    assert_eq!(std::fs::read(&value).unwrap(), b"plain value");

    d.virsh_ok(&["secret-set-value", PRIV, "--base64", "aGlkZGVu"]);
    let err = stderr_of(d, &["secret-get-value", PRIV]);
    assert!(err.contains("Invalid secret: secret is private"), "{err}");
}

/// A second secret for one usage, a usage change of a uuid, a usage
/// without its id.
fn refusals(d: &Daemon) {
    let dup = CEPH_XML.replace(U1, "5d8e5e47-902f-4f9c-8d88-d03d53b8de65");
    let err = define_refused(d, "dup.xml", &dup);
    let want = format!(
        "internal error: a secret with UUID {U1} already defined for use with client.admin secret"
    );
    assert!(err.contains(&want), "{err}");
    let moved = CEPH_XML.replace("client.admin secret", "client.other");
    let err = define_refused(d, "mv.xml", &moved);
    assert!(
        err.contains("is already defined for use with client.admin secret"),
        "{err}"
    );
    let err = define_refused(d, "bad.xml", "<secret><usage type='ceph'/></secret>");
    assert!(
        err.contains("Ceph usage specified, but name is missing"),
        "{err}"
    );
}

fn undefine_all(d: &Daemon) {
    for u in [U1, EPH, PRIV] {
        let out = d.virsh_ok(&["secret-undefine", u]);
        assert!(out.contains(&format!("Secret {u} deleted")), "{out}");
    }
    let err = stderr_of(d, &["secret-dumpxml", U1]);
    assert!(err.contains("Secret not found"), "{err}");
    let value = d.root.path().join(format!("etc/secrets/{U1}.value"));
    assert!(!value.exists(), "the value file goes with the secret");
}

#[test]
fn virsh_secret_commands_and_events() {
    let d = Daemon::start();
    let (mut lc_child, mut lifecycle) = secret_event(&d, "lifecycle", None);
    let (mut vc_child, mut changed) = secret_event(&d, "value-changed", None);
    define_three(&d);
    let (mut one_child, mut one) = secret_event(&d, "value-changed", Some(PRIV));
    lists_and_filters(&d);
    values(&d);
    refusals(&d);
    undefine_all(&d);

    let lc = |u: &str, what: &str| format!("event 'lifecycle' for secret {u}: {what}");
    let mut want: Vec<String> = [U1, EPH, PRIV].map(|u| lc(u, "Defined")).to_vec();
    want.extend([U1, EPH, PRIV].map(|u| lc(u, "Undefined")));
    expect_lines(&mut lifecycle, &want);
    let vc = |u: &str| format!("event 'value-changed' for secret {u}");
    expect_lines(&mut changed, &[vc(U1), vc(U1), vc(U1), vc(PRIV)]);
    // The listener for one secret heard of that one only (the other's
    // events came first, so they would have been printed first).
    expect_lines(&mut one, &[vc(PRIV)]);
    assert_eq!(one.seen, vec![vc(PRIV)]);
    for c in [&mut lc_child, &mut vc_child, &mut one_child] {
        let _ = c.kill();
        wait_child(c, Duration::from_secs(10));
    }
}

#[test]
fn python_the_way_nova_calls_it() {
    let d = Daemon::start();
    let out = python(
        &d,
        r#"
c = libvirt.open(URI)
xml = """<secret ephemeral='no' private='no'>
<usage type='ceph'><name>client.admin secret</name></usage></secret>"""
s = c.secretDefineXML(xml)
s.setValue(b'AQBkey==')
got = c.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH, 'client.admin secret')
assert got.UUIDString() == s.UUIDString()
assert got.usageType() == libvirt.VIR_SECRET_USAGE_TYPE_CEPH, got.usageType()
assert got.usageID() == 'client.admin secret'
assert got.value() == b'AQBkey=='
assert c.secretLookupByUUIDString(s.UUIDString()).value() == b'AQBkey=='

p = c.secretDefineXML("<secret ephemeral='yes' private='yes'><usage type='volume'>"
                      "<volume>/var/lib/x.img</volume></usage></secret>")
p.setValue(b'hidden')
assert code(p.value) == libvirt.VIR_ERR_INVALID_SECRET
ids = lambda flags: sorted(x.usageID() for x in c.listAllSecrets(flags))
F = libvirt
assert ids(0) == ['/var/lib/x.img', 'client.admin secret'], ids(0)
assert ids(F.VIR_CONNECT_LIST_SECRETS_EPHEMERAL) == ['/var/lib/x.img']
assert ids(F.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL) == ['client.admin secret']
assert ids(F.VIR_CONNECT_LIST_SECRETS_PRIVATE | F.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL) == []
assert ids(F.VIR_CONNECT_LIST_SECRETS_PRIVATE | F.VIR_CONNECT_LIST_SECRETS_NO_PRIVATE) == ids(0)
assert c.numOfSecrets() == 2
assert sorted(c.listSecrets()) == sorted([s.UUIDString(), p.UUIDString()])

# Bad input gets libvirt's codes.
assert code(lambda: c.secretLookupByUsage(F.VIR_SECRET_USAGE_TYPE_ISCSI, 'nope')) == F.VIR_ERR_NO_SECRET
assert code(lambda: c.secretLookupByUUIDString('00000000-0000-4000-8000-000000000001')) == F.VIR_ERR_NO_SECRET
assert code(lambda: c.secretDefineXML('<secret')) == F.VIR_ERR_XML_ERROR
assert code(lambda: c.secretDefineXML('<volume/>')) == F.VIR_ERR_XML_ERROR
assert code(lambda: c.secretDefineXML("<secret ephemeral='perhaps'/>")) == F.VIR_ERR_XML_ERROR
assert code(lambda: c.secretDefineXML("<secret><usage type='nfs'/></secret>")) == F.VIR_ERR_CONFIG_UNSUPPORTED
assert code(lambda: c.secretDefineXML("<secret><uuid>zz</uuid></secret>")) == F.VIR_ERR_INTERNAL_ERROR
assert code(lambda: c.secretDefineXML(xml)) == F.VIR_ERR_INTERNAL_ERROR
assert code(lambda: c.listAllSecrets(1 << 7)) == F.VIR_ERR_INVALID_ARG
assert code(lambda: s.XMLDesc(1)) == F.VIR_ERR_INVALID_ARG
assert code(lambda: s.setValue(b'x' * 65537)) is not None
assert s.value() == b'AQBkey=='
s.setValue(b'y' * 65536)
assert s.value() == b'y' * 65536
nv = c.secretDefineXML("<secret><usage type='tls'><name>tls0</name></usage></secret>")
assert code(nv.value) == F.VIR_ERR_NO_SECRET

# The read-only socket: reads yes, writes and values no.
ro = libvirt.open(RO_URI)
assert len(ro.listAllSecrets(0)) == 3
r = ro.secretLookupByUsage(F.VIR_SECRET_USAGE_TYPE_CEPH, 'client.admin secret')
assert 'client.admin secret' in r.XMLDesc(0)
assert code(r.value) == F.VIR_ERR_OPERATION_DENIED
assert code(lambda: r.setValue(b'z')) == F.VIR_ERR_OPERATION_DENIED
assert code(r.undefine) == F.VIR_ERR_OPERATION_DENIED
assert code(lambda: ro.secretDefineXML('<secret/>')) == F.VIR_ERR_OPERATION_DENIED
assert s.value() == b'y' * 65536
s.undefine()
assert code(s.value) == F.VIR_ERR_NO_SECRET
print('ok')
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn the_number_of_secrets_is_bounded_by_max_secrets() {
    let d = Daemon::start_with("max_secrets = 3");
    for i in 0..3 {
        let f = d.file(
            "t.xml",
            &format!("<secret><usage type='tls'><name>t{i}</name></usage></secret>"),
        );
        d.virsh_ok(&["secret-define", &f.to_string_lossy()]);
    }
    let f = d.file(
        "t.xml",
        "<secret><usage type='tls'><name>t3</name></usage></secret>",
    );
    let err = stderr_of(&d, &["secret-define", &f.to_string_lossy()]);
    assert!(
        err.contains("too many secrets: 3 are defined, the limit (max_secrets) is 3"),
        "{err}"
    );
    let first = d.virsh_ok(&["secret-list"]);
    let uuid = first
        .lines()
        .find(|l| l.contains("tls t0"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    d.virsh_ok(&["secret-undefine", &uuid]);
    d.virsh_ok(&["secret-define", &f.to_string_lossy()]);
    assert_eq!(d.virsh_ok(&["secret-list"]).matches(" tls t").count(), 3);
}

/// A client defines secrets and replaces a 16 KiB value in a loop; the
/// daemon is SIGKILLed in the middle. After a restart every acknowledged
/// secret is back, the value is whole (the last acknowledged one or the
/// one in flight), and the ephemeral secret is gone.
#[test]
fn a_sigkilled_daemon_keeps_every_persistent_secret_whole() {
    let mut d = Daemon::start();
    let writer = r#"
c = libvirt.open(URI)
main = c.secretDefineXML("<secret><usage type='ceph'><name>client.admin secret</name></usage></secret>")
c.secretDefineXML("<secret ephemeral='yes'><usage type='tls'><name>eph</name></usage></secret>")
print('ready', flush=True)
for i in range(100000):
    c.secretDefineXML("<secret><usage type='tls'><name>t%d</name></usage></secret>" % i)
    main.setValue((b'%08d' % i) * 2048)
    print(i, flush=True)
"#;
    let mut child = python_cmd(&d, writer)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let mut lines = ChildLines::new(&mut child);
    assert!(
        lines
            .wait_for(|l| l == "30", Duration::from_secs(60))
            .is_some(),
        "the writer never got to 30: {:?}\n{}",
        lines.seen,
        tail(&d.log(), 30)
    );
    d.kill();
    wait_child(&mut child, Duration::from_secs(30));
    lines.rest(Duration::from_secs(2));
    let last: usize = lines
        .seen
        .iter()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap();
    d.spawn();
    let check = format!(
        r#"
c = libvirt.open(URI)
v = c.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH, 'client.admin secret').value()
k = int(v[:8])
assert v == (b'%08d' % k) * 2048, 'a torn value'
for i in range({last} + 1):
    c.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, 't%d' % i)
assert code(lambda: c.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, 'eph')) == libvirt.VIR_ERR_NO_SECRET
print(k)
"#
    );
    let k: usize = python(&d, &check).trim().parse().unwrap();
    assert!(
        k == last || k == last + 1,
        "value {k}, last acknowledged {last}"
    );
    let dir = d.root.path().join("etc/secrets");
    let temps = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(temps, 0, "temp files left in {}", dir.display());
}
