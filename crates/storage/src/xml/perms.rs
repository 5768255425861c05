//! `<permissions>` of a pool target or a volume.

use virxml::{XmlElement, XmlError, XmlWriter};

/// Mode and ownership of a pool directory or volume file. `None` means "as
/// created" (the daemon's own uid/gid, and the default mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    pub mode: Option<u32>,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

impl Permissions {
    /// Parses `<permissions>` (the element may be absent).
    pub(crate) fn parse(el: Option<&XmlElement>, path: &str) -> Result<Self, XmlError> {
        let Some(el) = el else {
            return Ok(Self::default());
        };
        let path = format!("{path}/permissions");
        el.check_attrs(&path, &[])?;
        el.check_children(&path, &["mode", "owner", "group", "label"])?;
        let mode = match el.child_text("mode") {
            Some(m) => {
                let v = u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| {
                        XmlError::invalid(format!("<{path}/mode>"), &m, "expected an octal mode")
                    })?;
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            mode,
            owner: id(el, "owner", &path)?,
            group: id(el, "group", &path)?,
        })
    }

    /// Writes `<permissions>` with the values actually in effect.
    pub(crate) fn format(w: &mut XmlWriter, mode: u32, owner: u32, group: u32) {
        w.open("permissions", &[]);
        w.text_elem("mode", &[], &format!("{mode:04o}"));
        w.text_elem("owner", &[], &owner.to_string());
        w.text_elem("group", &[], &group.to_string());
        w.close("permissions");
    }
}

/// A uid or gid; libvirt writes -1 for "unset".
fn id(el: &XmlElement, name: &str, path: &str) -> Result<Option<u32>, XmlError> {
    match el.child_text(name) {
        None => Ok(None),
        Some(t) if t == "-1" => Ok(None),
        Some(t) => t
            .parse::<u32>()
            .map(Some)
            .map_err(|_| XmlError::invalid(format!("<{path}/{name}>"), &t, "expected a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let el = virxml::parse_document(
            "<permissions><mode>0750</mode><owner>107</owner><group>-1</group></permissions>",
        )
        .unwrap();
        let p = Permissions::parse(Some(&el), "target").unwrap();
        assert_eq!(p.mode, Some(0o750));
        assert_eq!(p.owner, Some(107));
        assert_eq!(p.group, None);
        for bad in [
            "<permissions><mode>9</mode></permissions>",
            "<permissions><mode>077777</mode></permissions>",
            "<permissions><owner>root</owner></permissions>",
            "<permissions><acl/></permissions>",
        ] {
            let el = virxml::parse_document(bad).unwrap();
            assert!(Permissions::parse(Some(&el), "target").is_err(), "{bad}");
        }
    }
}
