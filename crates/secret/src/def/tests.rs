use virterror::ErrorCode;

use super::*;

const CEPH: &str = "<secret ephemeral='no' private='no'>\
    <uuid>2a5b2b14-6d0c-4c69-9a55-ad0a20e5ab32</uuid>\
    <description>nova ceph</description>\
    <usage type='ceph'><name>client.admin secret</name></usage></secret>";

fn code(xml: &str) -> ErrorCode {
    SecretDef::parse(xml).unwrap_err().code
}

#[test]
fn ceph_round_trip_in_libvirt_layout() {
    let d = SecretDef::parse(CEPH).unwrap();
    assert_eq!(d.usage.kind, UsageType::Ceph);
    assert_eq!(d.usage.id, "client.admin secret");
    assert_eq!(
        d.to_xml(),
        "<secret ephemeral='no' private='no'>\n  \
         <uuid>2a5b2b14-6d0c-4c69-9a55-ad0a20e5ab32</uuid>\n  \
         <description>nova ceph</description>\n  \
         <usage type='ceph'>\n    <name>client.admin secret</name>\n  </usage>\n\
         </secret>\n"
    );
    assert_eq!(SecretDef::parse(&d.to_xml()).unwrap(), d);
}

#[test]
fn every_usage_type_names_its_id() {
    for (t, child) in [
        ("volume", "volume"),
        ("ceph", "name"),
        ("iscsi", "target"),
        ("tls", "name"),
        ("vtpm", "name"),
    ] {
        let x = format!("<secret><usage type='{t}'><{child}>x</{child}></usage></secret>");
        let d = SecretDef::parse(&x).unwrap();
        assert_eq!(d.usage.kind.as_str(), t);
        assert_eq!(d.usage.id, "x");
        let missing = format!("<secret><usage type='{t}'/></secret>");
        assert_eq!(code(&missing), ErrorCode::InternalError, "{t}");
    }
}

#[test]
fn missing_uuid_is_generated_and_flags_default_to_no() {
    let a = SecretDef::parse("<secret/>").unwrap();
    let b = SecretDef::parse("<secret><uuid></uuid></secret>").unwrap();
    assert_ne!(a.uuid, b.uuid);
    assert!(!a.ephemeral && !a.private);
    assert_eq!(a.usage, Usage::NONE);
    assert!(!a.to_xml().contains("<usage"));
}

#[test]
fn bad_documents_get_libvirts_codes() {
    assert_eq!(code("<secret"), ErrorCode::XmlError);
    assert_eq!(code("<volume/>"), ErrorCode::XmlError);
    assert_eq!(code("<secret ephemeral='maybe'/>"), ErrorCode::XmlError);
    assert_eq!(code("<secret private='1'/>"), ErrorCode::XmlError);
    assert_eq!(
        code("<secret><uuid>nope</uuid></secret>"),
        ErrorCode::InternalError
    );
    assert_eq!(code("<secret><usage/></secret>"), ErrorCode::XmlError);
    assert_eq!(
        code("<secret><usage type='nfs'/></secret>"),
        ErrorCode::ConfigUnsupported
    );
    assert_eq!(
        code("<secret><owner/></secret>"),
        ErrorCode::ConfigUnsupported
    );
    let e = SecretDef::parse("<secret><usage type='ceph'/></secret>").unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Ceph usage specified, but name is missing"
    );
}
