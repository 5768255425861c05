//! `<volume>`: what a client asks `vol-create` for.

use std::path::PathBuf;

use virxml::units::parse_bytes;
use virxml::{XmlElement, XmlError};

use super::Permissions;
use super::pool::{check_name, normalise_abs};

/// Image formats libvirt names, so a known but unimplemented format gets
/// "not supported" rather than "unknown".
const KNOWN_FORMATS: &[&str] = &[
    "none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
    "cow", "qcow", "qcow2", "qed", "vmdk",
];

/// A volume's image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolFormat {
    Raw,
    Qcow2,
    /// An ISO 9660 image (recognised on refresh, read-only use).
    Iso,
    /// A subdirectory of the pool's directory.
    Dir,
}

impl VolFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            VolFormat::Raw => "raw",
            VolFormat::Qcow2 => "qcow2",
            VolFormat::Iso => "iso",
            VolFormat::Dir => "dir",
        }
    }

    /// Parses a `<format type>` value of a volume to create or a backing
    /// store.
    pub fn parse(what: &str, t: &str) -> Result<Self, XmlError> {
        match t {
            "raw" => Ok(VolFormat::Raw),
            "qcow2" => Ok(VolFormat::Qcow2),
            "iso" => Ok(VolFormat::Iso),
            t if KNOWN_FORMATS.contains(&t) => Err(XmlError::unsupported_because(
                what,
                t,
                "volumes are raw or qcow2",
            )),
            t => Err(XmlError::structure(format!(
                "unknown volume format type {t}"
            ))),
        }
    }
}

/// `<backingStore>` of a volume to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingStore {
    pub path: PathBuf,
    /// `None`: probe the backing file.
    pub format: Option<VolFormat>,
}

/// qcow2 options of `<target>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Qcow2Options {
    /// `<compat>`: "0.10" or "1.1".
    pub compat: Option<String>,
    /// `<features><lazy_refcounts/>`.
    pub lazy_refcounts: bool,
    /// `<clusterSize>` in bytes.
    pub cluster_size: Option<u64>,
}

/// A parsed volume to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDef {
    pub name: String,
    /// Bytes; `None` only when a backing store gives it.
    pub capacity: Option<u64>,
    /// Bytes to allocate up front (raw), or the preallocation mode's
    /// threshold (qcow2); libvirt's default is the capacity.
    pub allocation: Option<u64>,
    pub format: VolFormat,
    pub perms: Permissions,
    pub qcow2: Qcow2Options,
    pub backing: Option<BackingStore>,
}

impl VolumeDef {
    /// Parses a `<volume>` document to create.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        Self::parse_inner(xml, true)
    }

    /// Parses the `<volume>` of a clone, whose capacity defaults to the
    /// source's.
    pub fn parse_without_capacity(xml: &str) -> Result<Self, XmlError> {
        Self::parse_inner(xml, false)
    }

    fn parse_inner(xml: &str, need_capacity: bool) -> Result<Self, XmlError> {
        let root = virxml::parse_document(xml)?;
        if root.name != "volume" {
            return Err(XmlError::structure(format!(
                "unexpected root element <{}>, expecting <volume>",
                root.name
            )));
        }
        root.check_attrs("volume", &["type"])?;
        match root.attr("type") {
            None | Some("file") => {}
            Some(t) => {
                return Err(XmlError::unsupported_because(
                    "volume type",
                    t,
                    "directory pools hold file volumes",
                ));
            }
        }
        root.check_children(
            "volume",
            &[
                "name",
                "key",
                "source",
                "capacity",
                "allocation",
                "physical",
                "target",
                "backingStore",
            ],
        )?;
        let name = root.child_text("name").unwrap_or_default();
        check_name("volume", &name)?;
        let capacity = size(&root, "capacity")?;
        let allocation = size(&root, "allocation")?;
        let (format, perms, qcow2) = parse_target(root.child("target"))?;
        let backing = root.child("backingStore").map(parse_backing).transpose()?;
        if need_capacity && capacity.is_none() && backing.is_none() {
            return Err(XmlError::structure("missing capacity element"));
        }
        if backing.is_some() && format != VolFormat::Qcow2 {
            return Err(XmlError::unsupported_because(
                "backing store for format",
                format.as_str(),
                "only qcow2 volumes can have a backing store",
            ));
        }
        if format != VolFormat::Qcow2 && qcow2 != Qcow2Options::default() {
            return Err(XmlError::unsupported_because(
                "qcow2 options for format",
                format.as_str(),
                "compat, features and clusterSize apply to qcow2",
            ));
        }
        Ok(Self {
            name,
            capacity,
            allocation,
            format,
            perms,
            qcow2,
            backing,
        })
    }
}

fn size(el: &XmlElement, name: &str) -> Result<Option<u64>, XmlError> {
    match el.child(name) {
        None => Ok(None),
        Some(c) => {
            c.check_attrs(&format!("volume/{name}"), &["unit"])?;
            parse_bytes(name, &c.text(), c.attr("unit"), "bytes").map(Some)
        }
    }
}

fn parse_target(
    el: Option<&XmlElement>,
) -> Result<(VolFormat, Permissions, Qcow2Options), XmlError> {
    let Some(el) = el else {
        return Ok((
            VolFormat::Raw,
            Permissions::default(),
            Qcow2Options::default(),
        ));
    };
    el.check_attrs("volume/target", &[])?;
    el.check_children(
        "volume/target",
        &[
            "path",
            "format",
            "permissions",
            "timestamps",
            "compat",
            "features",
            "clusterSize",
            "nocow",
        ],
    )?;
    let format = match el.child("format") {
        Some(f) => VolFormat::parse("volume format", f.req_attr("volume/target/format", "type")?)?,
        None => VolFormat::Raw,
    };
    if format == VolFormat::Iso {
        return Err(XmlError::unsupported_because(
            "volume format",
            "iso",
            "ISO images are uploaded or copied, not created",
        ));
    }
    let perms = Permissions::parse(el.child("permissions"), "volume/target")?;
    let mut qcow2 = Qcow2Options {
        compat: el.child_text("compat"),
        lazy_refcounts: false,
        cluster_size: None,
    };
    if let Some(c) = qcow2
        .compat
        .as_ref()
        .filter(|c| *c != "0.10" && *c != "1.1")
    {
        return Err(XmlError::invalid(
            "volume <compat>",
            c,
            "expected 0.10 or 1.1",
        ));
    }
    if let Some(f) = el.child("features") {
        f.check_children("volume/target/features", &["lazy_refcounts"])?;
        qcow2.lazy_refcounts = f.child("lazy_refcounts").is_some();
    }
    if let Some(cs) = el.child("clusterSize") {
        let bytes = parse_bytes("clusterSize", &cs.text(), cs.attr("unit"), "bytes")?;
        if !bytes.is_power_of_two() || !(512..=2 << 20).contains(&bytes) {
            return Err(XmlError::invalid(
                "volume <clusterSize>",
                bytes.to_string(),
                "expected a power of two between 512 bytes and 2 MiB",
            ));
        }
        qcow2.cluster_size = Some(bytes);
    }
    Ok((format, perms, qcow2))
}

fn parse_backing(el: &XmlElement) -> Result<BackingStore, XmlError> {
    el.check_attrs("volume/backingStore", &[])?;
    el.check_children(
        "volume/backingStore",
        &["path", "format", "permissions", "timestamps"],
    )?;
    let raw = el
        .child_text("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| XmlError::structure("missing volume backingStore path"))?;
    let path = normalise_abs(&raw).ok_or_else(|| {
        XmlError::invalid(
            "volume <backingStore><path>",
            &raw,
            "must be an absolute path without '..'",
        )
    })?;
    let format = match el.child("format") {
        Some(f) => Some(VolFormat::parse(
            "backing store format",
            f.req_attr("volume/backingStore/format", "type")?,
        )?),
        None => None,
    };
    Ok(BackingStore { path, format })
}

#[cfg(test)]
mod tests {
    use super::*;
    use virterror::ErrorCode;

    fn code(xml: &str) -> ErrorCode {
        VolumeDef::parse(xml).unwrap_err().code()
    }

    #[test]
    fn qcow2_with_backing_and_units() {
        let v = VolumeDef::parse(
            "<volume><name>a.qcow2</name><capacity unit='G'>2</capacity><allocation>0</allocation>\
             <target><format type='qcow2'/><compat>1.1</compat><features><lazy_refcounts/></features>\
             <clusterSize unit='KiB'>64</clusterSize></target>\
             <backingStore><path>/imgs/base.qcow2</path><format type='qcow2'/></backingStore></volume>",
        )
        .unwrap();
        assert_eq!(v.capacity, Some(2 << 30));
        assert_eq!(v.allocation, Some(0));
        assert_eq!(v.format, VolFormat::Qcow2);
        assert!(v.qcow2.lazy_refcounts);
        assert_eq!(v.qcow2.cluster_size, Some(65536));
        assert_eq!(v.backing.unwrap().path, PathBuf::from("/imgs/base.qcow2"));
    }

    #[test]
    fn raw_defaults() {
        let v = VolumeDef::parse("<volume><name>r</name><capacity>1048576</capacity></volume>")
            .unwrap();
        assert_eq!(v.format, VolFormat::Raw);
        assert_eq!(v.allocation, None);
    }

    #[test]
    fn bad_volumes_get_libvirt_codes() {
        assert_eq!(
            code("<volume><name>a/b</name><capacity>1</capacity></volume>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(
            code("<volume><name>..</name><capacity>1</capacity></volume>"),
            ErrorCode::XmlDetail
        );
        assert_eq!(code("<volume><name>a</name></volume>"), ErrorCode::XmlError);
        assert_eq!(
            code("<volume><name>a</name><capacity unit='EiB'>99999</capacity></volume>"),
            ErrorCode::Overflow
        );
        assert_eq!(
            code(
                "<volume><name>a</name><capacity>1</capacity><target><format type='foo'/></target></volume>"
            ),
            ErrorCode::XmlError
        );
        assert_eq!(
            code(
                "<volume><name>a</name><capacity>1</capacity><target><format type='vmdk'/></target></volume>"
            ),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<volume type='block'><name>a</name><capacity>1</capacity></volume>"),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code(
                "<volume><name>a</name><capacity>1</capacity><backingStore><path>/b</path></backingStore></volume>"
            ),
            ErrorCode::ConfigUnsupported
        );
        assert_eq!(
            code("<volume><name>a</name><capacity>1</capacity><bogus/></volume>"),
            ErrorCode::ConfigUnsupported
        );
    }
}
