//! Small parsers and formatters every element uses: integers, on/off and
//! yes/no switches, absolute paths, libvirt's enum names, and the
//! output-only children (`<alias>`) accepted on input.

use std::path::PathBuf;

use crate::error::DomainXmlError;
use crate::xml::XmlElement;

/// An enum whose variants are libvirt's names for them. `ALL` lists every
/// variant: the parser accepts exactly these names, and domain
/// capabilities are built from the same list, so the two cannot drift.
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $var:ident = $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $var),+
        }

        impl $name {
            /// Every value, in libvirt's order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// libvirt's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $text),+
                }
            }

            /// The value libvirt calls `s`.
            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}
pub(crate) use named_enum;

/// Parses a libvirt name into `T`, or says that `what` has no such value.
pub(crate) fn named<T>(
    what: &str,
    value: &str,
    from: impl Fn(&str) -> Option<T>,
) -> Result<T, DomainXmlError> {
    from(value).ok_or_else(|| DomainXmlError::unsupported(what, value))
}

/// An optional attribute parsed with `from` (see [`named`]).
pub(crate) fn named_attr<T>(
    el: &XmlElement,
    path: &str,
    key: &str,
    from: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, DomainXmlError> {
    el.attr(key)
        .map(|v| named(&format!("<{path} {key}>"), v, from))
        .transpose()
}

/// A non-negative integer, decimal or `0x` hexadecimal (libvirt accepts both
/// for addresses and ids).
pub(crate) fn parse_uint(what: &str, s: &str) -> Result<u32, DomainXmlError> {
    let t = s.trim();
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        t.parse::<u32>()
    };
    r.map_err(|_| DomainXmlError::invalid(what, s, "expected a non-negative integer"))
}

/// A 64-bit non-negative decimal integer.
pub(crate) fn parse_u64(what: &str, s: &str) -> Result<u64, DomainXmlError> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| DomainXmlError::invalid(what, s, "expected a non-negative integer"))
}

/// An optional integer attribute.
pub(crate) fn uint_attr(
    el: &XmlElement,
    path: &str,
    key: &str,
) -> Result<Option<u32>, DomainXmlError> {
    el.attr(key)
        .map(|v| parse_uint(&format!("<{path} {key}>"), v))
        .transpose()
}

pub(crate) fn parse_on_off(what: &str, s: &str) -> Result<bool, DomainXmlError> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(DomainXmlError::invalid(what, s, "expected 'on' or 'off'")),
    }
}

pub(crate) fn parse_yes_no(what: &str, s: &str) -> Result<bool, DomainXmlError> {
    match s {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(DomainXmlError::invalid(what, s, "expected 'yes' or 'no'")),
    }
}

/// An optional `on|off` attribute.
pub(crate) fn on_off_attr(
    el: &XmlElement,
    path: &str,
    key: &str,
) -> Result<Option<bool>, DomainXmlError> {
    el.attr(key)
        .map(|v| parse_on_off(&format!("<{path} {key}>"), v))
        .transpose()
}

/// An optional `yes|no` attribute.
pub(crate) fn yes_no_attr(
    el: &XmlElement,
    path: &str,
    key: &str,
) -> Result<Option<bool>, DomainXmlError> {
    el.attr(key)
        .map(|v| parse_yes_no(&format!("<{path} {key}>"), v))
        .transpose()
}

pub(crate) fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// Paths handed to QEMU must be absolute: a relative one would resolve
/// against the daemon's working directory, which the user cannot know.
pub(crate) fn parse_abs_path(what: &str, s: &str) -> Result<PathBuf, DomainXmlError> {
    if !s.starts_with('/') || s.contains('\0') {
        return Err(DomainXmlError::invalid(
            what,
            s,
            "expected an absolute path",
        ));
    }
    Ok(PathBuf::from(s))
}

/// The element's text, which must have no attributes or children.
pub(crate) fn simple_text(el: &XmlElement, path: &str) -> Result<String, DomainXmlError> {
    el.check_attrs(path, &[])?;
    el.check_children(path, &[])?;
    Ok(el.text())
}

/// An element that is a plain switch (`<acpi/>`): no attributes or children.
pub(crate) fn empty_element(el: &XmlElement, path: &str) -> Result<(), DomainXmlError> {
    el.check_attrs(path, &[])?;
    el.check_children(path, &[])?;
    Ok(())
}

/// `<alias>` is output-only (libvirt ignores non-user aliases on define):
/// accepted so that live XML can be fed back, and dropped.
pub(crate) fn skip_alias(el: &XmlElement, path: &str) -> Result<(), DomainXmlError> {
    if let Some(a) = el.child("alias") {
        a.check_attrs(&format!("{path}/alias"), &["name"])?;
        a.check_children(&format!("{path}/alias"), &[])?;
    }
    Ok(())
}

/// `<boot order='N'/>` of a device.
pub(crate) fn parse_boot_order(el: &XmlElement, path: &str) -> Result<u32, DomainXmlError> {
    let p = format!("{path}/boot");
    el.check_attrs(&p, &["order"])?;
    el.check_children(&p, &[])?;
    let n = parse_uint(&format!("<{p} order>"), el.req_attr(&p, "order")?)?;
    if n == 0 {
        return Err(DomainXmlError::invalid(
            format!("<{p} order>"),
            "0",
            "boot order starts at 1",
        ));
    }
    Ok(n)
}

/// Each child of `el` at most once (libvirt's schema allows one).
pub(crate) fn check_singletons(
    el: &XmlElement,
    path: &str,
    names: &[&str],
) -> Result<(), DomainXmlError> {
    for n in names {
        if el.children_named(n).count() > 1 {
            return Err(DomainXmlError::structure(format!(
                "element <{path}/{n}> appears more than once"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    unreachable_pub,
    reason = "the macro makes its items pub; the test enum is private"
)]
mod tests {
    use super::*;

    named_enum! {
        enum Colour { Red = "red", DarkBlue = "dark-blue" }
    }

    #[test]
    fn named_enums_round_trip() {
        for c in Colour::ALL {
            assert_eq!(Colour::from_name(c.as_str()), Some(*c));
        }
        assert_eq!(Colour::from_name("green"), None);
        let e = named("colour", "green", Colour::from_name).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported configuration: colour 'green' is not supported"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_uint("x", "0x1f").unwrap(), 31);
        assert_eq!(parse_uint("x", " 7 ").unwrap(), 7);
        assert!(parse_uint("x", "-1").is_err());
        assert!(parse_u64("x", "18446744073709551616").is_err());
    }
}
