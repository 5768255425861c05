//! The `<secret>` document: parsed as libvirt's secret driver accepts it,
//! written in libvirt's layout.

use virterror::{ErrorCode, VirError};
use virxml::{XmlElement, XmlWriter};

use crate::error::{err, from_xml, internal, xml};

/// `virSecretUsageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum UsageType {
    None = 0,
    Volume = 1,
    Ceph = 2,
    Iscsi = 3,
    Tls = 4,
    Vtpm = 5,
}

impl UsageType {
    const ALL: [UsageType; 6] = [
        Self::None,
        Self::Volume,
        Self::Ceph,
        Self::Iscsi,
        Self::Tls,
        Self::Vtpm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Volume => "volume",
            Self::Ceph => "ceph",
            Self::Iscsi => "iscsi",
            Self::Tls => "tls",
            Self::Vtpm => "vtpm",
        }
    }

    pub fn from_i32(v: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as i32 == v)
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The child of `<usage>` naming what the secret is for, and how
    /// libvirt words its absence.
    fn id_element(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::None => None,
            Self::Volume => Some((
                "volume",
                "volume usage specified, but volume path is missing",
            )),
            Self::Ceph => Some(("name", "Ceph usage specified, but name is missing")),
            Self::Iscsi => Some(("target", "iSCSI usage specified, but target is missing")),
            Self::Tls => Some(("name", "TLS usage specified, but name is missing")),
            Self::Vtpm => Some(("name", "vTPM usage specified, but name is missing")),
        }
    }
}

/// What a secret is for: a type and, for every type but `none`, an id
/// (volume path, Ceph user, iSCSI target, TLS or vTPM name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub kind: UsageType,
    pub id: String,
}

impl Usage {
    pub const NONE: Usage = Usage {
        kind: UsageType::None,
        id: String::new(),
    };
}

/// One secret's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDef {
    pub uuid: uuid::Uuid,
    pub ephemeral: bool,
    pub private: bool,
    pub description: Option<String>,
    pub usage: Usage,
}

impl SecretDef {
    /// Parses a definition; a missing `<uuid>` is generated.
    pub fn parse(text: &str) -> Result<SecretDef, VirError> {
        let root = virxml::parse_document(text).map_err(|e| from_xml(&e))?;
        if root.name != "secret" {
            return Err(xml(format_args!(
                "unexpected root element <{}>, expecting <secret>",
                root.name
            )));
        }
        root.check_attrs("secret", &["ephemeral", "private"])
            .and_then(|()| root.check_children("secret", &["uuid", "description", "usage"]))
            .map_err(|e| from_xml(&e))?;
        Ok(SecretDef {
            ephemeral: yes_no(&root, "ephemeral")?,
            private: yes_no(&root, "private")?,
            uuid: parse_uuid(&root)?,
            description: root.child("description").map(XmlElement::text),
            usage: root.child("usage").map_or(Ok(Usage::NONE), parse_usage)?,
        })
    }

    /// The definition in libvirt's layout.
    pub fn to_xml(&self) -> String {
        let yn = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let mut w = XmlWriter::new();
        w.open(
            "secret",
            &[
                ("ephemeral", yn(self.ephemeral)),
                ("private", yn(self.private)),
            ],
        );
        w.text_elem("uuid", &[], &self.uuid.to_string());
        if let Some(d) = &self.description {
            w.text_elem("description", &[], d);
        }
        if let Some((child, _)) = self.usage.kind.id_element() {
            w.open("usage", &[("type", self.usage.kind.as_str().to_owned())]);
            w.text_elem(child, &[], &self.usage.id);
            w.close("usage");
        }
        w.close("secret");
        w.finish()
    }
}

fn yes_no(root: &XmlElement, attr: &str) -> Result<bool, VirError> {
    match root.attr(attr) {
        None => Ok(false),
        Some("yes") => Ok(true),
        Some("no") => Ok(false),
        Some(_) => Err(xml(format_args!("invalid value of '{attr}'"))),
    }
}

fn parse_uuid(root: &XmlElement) -> Result<uuid::Uuid, VirError> {
    match root.child_text("uuid").filter(|t| !t.is_empty()) {
        None => Ok(uuid::Uuid::new_v4()),
        Some(t) => uuid::Uuid::parse_str(&t).map_err(|_| internal("malformed uuid element")),
    }
}

fn parse_usage(usage: &XmlElement) -> Result<Usage, VirError> {
    usage
        .check_attrs("usage", &["type"])
        .and_then(|()| usage.check_children("usage", &["volume", "name", "target"]))
        .map_err(|e| from_xml(&e))?;
    let Some(type_) = usage.attr("type").filter(|t| !t.is_empty()) else {
        return Err(xml("unknown secret usage type"));
    };
    let Some(kind) = UsageType::parse(type_) else {
        return Err(err(
            ErrorCode::ConfigUnsupported,
            format!("unsupported configuration: unknown secret usage type {type_}"),
        ));
    };
    let Some((child, missing)) = kind.id_element() else {
        return Ok(Usage::NONE);
    };
    let id = usage.child(child).map(XmlElement::text).unwrap_or_default();
    if id.is_empty() {
        return Err(internal(missing));
    }
    Ok(Usage { kind, id })
}

#[cfg(test)]
mod tests;
