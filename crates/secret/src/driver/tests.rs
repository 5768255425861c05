use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

use virterror::ErrorCode;

use super::*;
use crate::events::SecretEvent;

const U1: &str = "11111111-2222-3333-4444-555555555555";
const U2: &str = "aaaaaaaa-2222-3333-4444-555555555555";

fn ceph(uuid: &str, attrs: &str, name: &str) -> String {
    format!(
        "<secret {attrs}><uuid>{uuid}</uuid>\
         <usage type='ceph'><name>{name}</name></usage></secret>"
    )
}

fn open(dir: &std::path::Path) -> SecretDriver {
    SecretDriver::open(SecretConfig::new(dir)).unwrap()
}

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap()
}

#[test]
fn persistent_secrets_and_values_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    d.define_xml(&ceph(U1, "", "client.admin secret")).unwrap();
    d.set_value(&uuid(U1), b"s3cr3t").unwrap();
    d.define_xml(&ceph(U2, "ephemeral='yes'", "client.eph"))
        .unwrap();
    d.set_value(&uuid(U2), b"gone").unwrap();
    let value = dir.path().join(format!("etc/secrets/{U1}.value"));
    assert_eq!(
        std::fs::metadata(&value).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!dir.path().join(format!("etc/secrets/{U2}.xml")).exists());
    drop(d);

    let d = open(dir.path());
    assert_eq!(d.list(SecretFilter::default()).len(), 1);
    let h = d
        .lookup_by_usage(UsageType::Ceph as i32, "client.admin secret")
        .unwrap();
    assert_eq!(h.uuid, uuid(U1));
    assert_eq!(d.value(&uuid(U1)).unwrap(), b"s3cr3t");
    assert_eq!(
        d.lookup_by_uuid(&uuid(U2)).unwrap_err().code,
        ErrorCode::NoSecret
    );
}

#[test]
fn a_second_secret_for_one_usage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    d.define_xml(&ceph(U1, "", "client.admin")).unwrap();
    let e = d.define_xml(&ceph(U2, "", "client.admin")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InternalError);
    assert_eq!(
        e.message,
        format!(
            "internal error: a secret with UUID {U1} already defined for use with client.admin"
        )
    );
    // Same uuid, other usage id: refused too.
    let e = d.define_xml(&ceph(U1, "", "client.other")).unwrap_err();
    assert!(
        e.message
            .contains("is already defined for use with client.admin"),
        "{e}"
    );
    // Same uuid and usage: an update.
    d.define_xml(
        "<secret><uuid>11111111-2222-3333-4444-555555555555</uuid>\
        <description>x</description><usage type='ceph'><name>client.admin</name></usage></secret>",
    )
    .unwrap();
    assert!(
        d.xml_desc(&uuid(U1))
            .unwrap()
            .contains("<description>x</description>")
    );
}

#[test]
fn private_stays_private_and_its_value_never_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    d.define_xml(&ceph(U1, "private='yes'", "p")).unwrap();
    d.set_value(&uuid(U1), b"v").unwrap();
    let e = d.value(&uuid(U1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidSecret);
    let e = d.define_xml(&ceph(U1, "private='no'", "p")).unwrap_err();
    assert_eq!(
        e.message,
        "internal error: cannot change private flag on existing secret"
    );
    // Becoming private is allowed.
    d.define_xml(&ceph(U2, "", "q")).unwrap();
    d.define_xml(&ceph(U2, "private='yes'", "q")).unwrap();
    let only_private = SecretFilter {
        private: Some(true),
        ..SecretFilter::default()
    };
    assert_eq!(d.list(only_private).len(), 2);
}

#[test]
fn a_value_must_be_set_before_it_is_read_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    d.define_xml(&ceph(U1, "", "a")).unwrap();
    let e = d.value(&uuid(U1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::NoSecret);
    assert!(e.message.contains("does not have a value"), "{e}");
    let big = vec![7u8; VALUE_MAX + 1];
    assert_eq!(
        d.set_value(&uuid(U1), &big).unwrap_err().code,
        ErrorCode::InvalidArg
    );
    d.set_value(&uuid(U1), &big[..VALUE_MAX]).unwrap();
    assert_eq!(d.value(&uuid(U1)).unwrap().len(), VALUE_MAX);
}

#[test]
fn ephemeral_changes_move_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("etc/secrets");
    let d = open(dir.path());
    d.define_xml(&ceph(U1, "ephemeral='yes'", "a")).unwrap();
    d.set_value(&uuid(U1), b"v1").unwrap();
    assert!(!files.join(format!("{U1}.value")).exists());
    d.define_xml(&ceph(U1, "ephemeral='no'", "a")).unwrap();
    assert_eq!(
        std::fs::read(files.join(format!("{U1}.value"))).unwrap(),
        b"v1"
    );
    d.define_xml(&ceph(U1, "ephemeral='yes'", "a")).unwrap();
    assert!(!files.join(format!("{U1}.xml")).exists());
    assert!(!files.join(format!("{U1}.value")).exists());
    assert_eq!(d.value(&uuid(U1)).unwrap(), b"v1");
}

#[test]
fn the_number_of_secrets_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SecretConfig::new(dir.path());
    cfg.max_secrets = 3;
    let d = SecretDriver::open(cfg).unwrap();
    for i in 0..3 {
        d.define_xml(&format!(
            "<secret><usage type='tls'><name>t{i}</name></usage></secret>"
        ))
        .unwrap();
    }
    let e = d.define_xml("<secret/>").unwrap_err();
    assert_eq!(e.code, ErrorCode::OperationFailed);
    assert!(e.message.contains("max_secrets"), "{e}");
    // Redefining an existing one is not a new secret.
    let h = d.list(SecretFilter::default()).remove(0);
    let again = format!(
        "<secret><uuid>{}</uuid><usage type='tls'><name>{}</name></usage></secret>",
        h.uuid, h.usage_id
    );
    d.define_xml(&again).unwrap();
    d.undefine(&h.uuid).unwrap();
    d.define_xml("<secret/>").unwrap();
}

#[test]
fn leftovers_of_a_killed_writer_are_removed_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("etc/secrets");
    let d = open(dir.path());
    d.define_xml(&ceph(U1, "", "a")).unwrap();
    d.set_value(&uuid(U1), b"v").unwrap();
    drop(d);
    // An undefine killed after removing the definition; a write killed
    // before its rename.
    std::fs::remove_file(files.join(format!("{U1}.xml"))).unwrap();
    std::fs::write(files.join(format!(".{U2}.xml.tmp.1.1")), "<secr").unwrap();
    std::fs::write(files.join("junk.xml"), "<secret/>").unwrap();
    let d = open(dir.path());
    assert!(d.list(SecretFilter::default()).is_empty());
    let left: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["junk.xml".to_owned()]);
}

#[test]
fn events_follow_the_changes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    d.add_event_listener(Box::new(move |ev: &SecretEvent| {
        s.lock().unwrap().push((ev.secret.uuid, ev.kind));
    }));
    d.define_xml(&ceph(U1, "", "a")).unwrap();
    d.set_value(&uuid(U1), b"v").unwrap();
    assert!(d.define_xml(&ceph(U2, "", "a")).is_err());
    d.undefine(&uuid(U1)).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (uuid(U1), SecretEventKind::Defined),
            (uuid(U1), SecretEventKind::ValueChanged),
            (uuid(U1), SecretEventKind::Undefined),
        ]
    );
}
