//! `<pool>`: the definition of a storage pool.
//!
//! Only directory pools (`type='dir'`) are implemented. Every other type
//! libvirt knows is refused by name with VIR_ERR_CONFIG_UNSUPPORTED, never
//! half-accepted: a pool whose source we ignored would manage the wrong
//! storage.

use std::path::{Component, Path, PathBuf};

use virxml::{XmlElement, XmlError, XmlWriter};

use super::Permissions;

/// Pool types libvirt knows (`virStoragePoolType` names), so that a known
/// but unimplemented type gets "not supported" rather than "unknown".
pub(crate) const KNOWN_TYPES: &[&str] = &[
    "dir",
    "fs",
    "netfs",
    "logical",
    "disk",
    "iscsi",
    "iscsi-direct",
    "scsi",
    "mpath",
    "rbd",
    "sheepdog",
    "gluster",
    "zfs",
    "vstorage",
];

/// The pool types this driver implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolType {
    /// A directory of image files.
    Dir,
}

impl PoolType {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolType::Dir => "dir",
        }
    }
}

/// A parsed pool definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDef {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub pool_type: PoolType,
    /// The directory holding the volumes: absolute and normalised.
    pub target: PathBuf,
    /// Mode and ownership `pool-build` gives the directory.
    pub perms: Permissions,
}

/// Default mode of a directory `pool-build` creates, as libvirt's.
pub const DEFAULT_DIR_MODE: u32 = 0o711;

/// Checks a pool or volume name: it becomes a file name, so it must be one
/// path component, not hidden, and of sane length.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), XmlError> {
    let bad = |why: &str| XmlError::invalid(format!("{what} name"), name, why);
    if name.is_empty() {
        return Err(XmlError::structure(format!("missing {what} name element")));
    }
    if name.contains('/') {
        return Err(bad("must not contain '/'"));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err(bad("must not start with '.'"));
    }
    if name.len() > 255 || name.chars().any(|c| c.is_control()) {
        return Err(bad("too long or contains control characters"));
    }
    Ok(())
}

impl PoolDef {
    /// Parses a `<pool>` document.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        let root = virxml::parse_document(xml)?;
        if root.name != "pool" {
            return Err(XmlError::structure(format!(
                "unexpected root element <{}>, expecting <pool>",
                root.name
            )));
        }
        root.check_attrs("pool", &["type"])?;
        let pool_type = parse_type(root.attr("type"))?;
        root.check_children(
            "pool",
            &[
                "name",
                "uuid",
                "capacity",
                "allocation",
                "available",
                "source",
                "target",
            ],
        )?;
        let name = root.child_text("name").unwrap_or_default();
        check_name("pool", &name)?;
        let uuid = match root.child_text("uuid") {
            Some(u) => uuid::Uuid::parse_str(&u)
                .map_err(|_| XmlError::invalid("pool <uuid>", &u, "malformed uuid"))?,
            None => uuid::Uuid::new_v4(),
        };
        if let Some(src) = root.child("source") {
            // A directory pool has no source; anything in it would be ignored.
            src.check_attrs("pool/source", &[])?;
            src.check_children("pool/source", &[])?;
        }
        let (target, perms) = parse_target(root.child("target"))?;
        Ok(Self {
            name,
            uuid,
            pool_type,
            target,
            perms,
        })
    }

    /// The definition as `pool-dumpxml` shows it; `sizes` are (capacity,
    /// allocation, available) in bytes.
    pub fn to_xml(&self, sizes: (u64, u64, u64), dir_perms: (u32, u32, u32)) -> String {
        let mut w = XmlWriter::new();
        w.open("pool", &[("type", self.pool_type.as_str().into())]);
        w.text_elem("name", &[], &self.name);
        w.text_elem("uuid", &[], &self.uuid.to_string());
        let bytes = [("unit", "bytes".to_owned())];
        w.text_elem("capacity", &bytes, &sizes.0.to_string());
        w.text_elem("allocation", &bytes, &sizes.1.to_string());
        w.text_elem("available", &bytes, &sizes.2.to_string());
        w.empty("source", &[]);
        w.open("target", &[]);
        w.text_elem("path", &[], &self.target.to_string_lossy());
        Permissions::format(&mut w, dir_perms.0, dir_perms.1, dir_perms.2);
        w.close("target");
        w.close("pool");
        w.finish()
    }
}

fn parse_type(t: Option<&str>) -> Result<PoolType, XmlError> {
    match t {
        Some("dir") => Ok(PoolType::Dir),
        Some(t) if KNOWN_TYPES.contains(&t) => Err(XmlError::unsupported_because(
            "storage pool type",
            t,
            "only 'dir' pools are implemented",
        )),
        Some(t) => Err(XmlError::structure(format!(
            "unknown storage pool type {t}"
        ))),
        None => Err(XmlError::structure("missing storage pool type")),
    }
}

fn parse_target(el: Option<&XmlElement>) -> Result<(PathBuf, Permissions), XmlError> {
    let el = el.ok_or_else(|| XmlError::structure("missing storage pool target"))?;
    el.check_attrs("pool/target", &[])?;
    el.check_children("pool/target", &["path", "permissions"])?;
    let path = el
        .child_text("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| XmlError::structure("missing storage pool target path"))?;
    let target = normalise_abs(&path).ok_or_else(|| {
        XmlError::invalid(
            "pool <target><path>",
            &path,
            "must be an absolute path without '..'",
        )
    })?;
    let perms = Permissions::parse(el.child("permissions"), "pool/target")?;
    Ok((target, perms))
}

/// `path` made canonical in form (no `.`, no duplicate or trailing `/`),
/// or `None` when it is relative or climbs with `..`.
pub(crate) fn normalise_abs(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virterror::ErrorCode;

    fn code(xml: &str) -> ErrorCode {
        PoolDef::parse(xml).unwrap_err().code()
    }

    #[test]
    fn dir_pool_round_trip() {
        let d = PoolDef::parse(
            "<pool type='dir'><name>images</name><uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>\
             <source/><target><path>/srv//images/</path><permissions><mode>0755</mode></permissions>\
             </target></pool>",
        )
        .unwrap();
        assert_eq!(d.name, "images");
        assert_eq!(d.target, PathBuf::from("/srv/images"));
        assert_eq!(d.perms.mode, Some(0o755));
        let xml = d.to_xml((10, 4, 6), (0o755, 0, 0));
        assert!(
            xml.contains("<capacity unit='bytes'>10</capacity>"),
            "{xml}"
        );
        assert!(xml.contains("<mode>0755</mode>"), "{xml}");
        let again = PoolDef::parse(&xml).unwrap();
        assert_eq!(
            (&again.name, again.uuid, &again.target, again.perms.mode),
            (&d.name, d.uuid, &d.target, d.perms.mode)
        );
        assert_eq!((again.perms.owner, again.perms.group), (Some(0), Some(0)));
    }

    #[test]
    fn bad_pools_get_libvirt_codes() {
        assert_eq!(
            code("<pool type='iscsi'><name>a</name><target><path>/x</path></target></pool>"),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<pool type='bogus'><name>a</name><target><path>/x</path></target></pool>"),
            ErrorCode::XmlError
        );
        assert_eq!(
            code("<pool type='dir'><name>a</name><target><path>rel/x</path></target></pool>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<pool type='dir'><name>a</name><target><path>/x/../y</path></target></pool>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<pool type='dir'><target><path>/x</path></target></pool>"),
            ErrorCode::XmlError
        );
        assert_eq!(
            code("<pool type='dir'><name>a</name></pool>"),
            ErrorCode::XmlError
        );
        assert_eq!(
            code(
                "<pool type='dir'><name>a</name><source><dir path='/x'/></source><target><path>/x</path></target></pool>"
            ),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(code("<pool type='dir'"), ErrorCode::XmlError);
        assert_eq!(code("<volume/>"), ErrorCode::XmlError);
    }
}
