//! libvirt's scaled integers (`<memory unit='GiB'>2</memory>`,
//! `<capacity unit='G'>10</capacity>`).
//!
//! libvirt accepts SI (KB = 1000) and IEC (KiB = k = 1024) suffixes,
//! case-insensitively; the default unit depends on the element (KiB for
//! memory, bytes for storage sizes). A value whose bytes do not fit in 64
//! bits is an overflow error, as in libvirt.

use crate::XmlError;

/// Bytes per unit, `None` for an unknown unit.
pub fn unit_bytes(unit: &str) -> Option<u64> {
    let u = unit.to_ascii_lowercase();
    if u == "b" || u == "bytes" {
        return Some(1);
    }
    let mut chars = u.chars();
    let power = match chars.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    Some(base.pow(power))
}

/// Parses `text` scaled by `unit` (or `default_unit` when absent) and
/// returns bytes. `what` names the element in errors.
pub fn parse_bytes(
    what: &str,
    text: &str,
    unit: Option<&str>,
    default_unit: &str,
) -> Result<u64, XmlError> {
    let unit_str = unit.unwrap_or(default_unit);
    let mult = unit_bytes(unit_str).ok_or_else(|| {
        XmlError::invalid(
            format!("<{what} unit>"),
            unit_str,
            "unknown unit (expected b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, ...)",
        )
    })?;
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(XmlError::invalid(
            format!("<{what}>"),
            t,
            "expected a non-negative integer",
        ));
    }
    let too_large = || XmlError::Overflow(format!("<{what}> {t} {unit_str}"));
    let value: u64 = t.parse().map_err(|_| too_large())?;
    value.checked_mul(mult).ok_or_else(too_large)
}

/// Parses `text` scaled by `unit` (KiB when absent) and returns KiB, rounded
/// up, as libvirt stores memory sizes.
pub fn parse_kib(what: &str, text: &str, unit: Option<&str>) -> Result<u64, XmlError> {
    Ok(parse_bytes(what, text, unit, "KiB")?.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_kib("memory", "1", None).unwrap(), 1);
        assert_eq!(parse_kib("memory", "1", Some("k")).unwrap(), 1);
        assert_eq!(
            parse_kib("memory", "2", Some("GiB")).unwrap(),
            2 * 1024 * 1024
        );
        assert_eq!(parse_kib("memory", "1000", Some("b")).unwrap(), 1);
        assert_eq!(parse_bytes("capacity", "5", None, "bytes").unwrap(), 5);
        assert_eq!(
            parse_bytes("capacity", "3", Some("GB"), "bytes").unwrap(),
            3_000_000_000
        );
        assert_eq!(
            parse_bytes("capacity", "1", Some("T"), "bytes").unwrap(),
            1 << 40
        );
    }

    #[test]
    fn bad_values() {
        let e = parse_bytes("capacity", "x", None, "bytes").unwrap_err();
        assert_eq!(e.code(), virterror::ErrorCode::XmlDetail);
        let e = parse_bytes("capacity", "1", Some("furlong"), "bytes").unwrap_err();
        assert_eq!(e.code(), virterror::ErrorCode::XmlDetail);
        let e = parse_bytes("capacity", "-1", None, "bytes").unwrap_err();
        assert_eq!(e.code(), virterror::ErrorCode::XmlDetail);
        let e = parse_bytes("capacity", "20000000", Some("TiB"), "bytes").unwrap_err();
        assert_eq!(e.code(), virterror::ErrorCode::Overflow);
        let e = parse_bytes("capacity", "99999999999999999999999", None, "bytes").unwrap_err();
        assert_eq!(e.code(), virterror::ErrorCode::Overflow);
    }
}
