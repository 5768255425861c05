//! libvirt's scaled integers (`<memory unit='GiB'>2</memory>`).
//!
//! libvirt accepts both SI (KB = 1000) and IEC (KiB = k = 1024) suffixes,
//! case-insensitively, defaults to KiB, and stores memory in KiB rounding up.
//! We do the same so that XML written for libvirt means the same guest here.

use crate::error::DomainXmlError;

/// Bytes per unit, `None` for an unknown unit.
fn unit_bytes(unit: &str) -> Option<u64> {
    let u = unit.to_ascii_lowercase();
    let (prefix, rest) = match u.char_indices().next() {
        Some((_, c)) => (c, &u[c.len_utf8()..]),
        None => return Some(1024),
    };
    if u == "b" || u == "bytes" {
        return Some(1);
    }
    let power = match prefix {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match rest {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    Some(base.pow(power))
}

/// Parses `text` scaled by `unit` (KiB when absent) and returns KiB, rounded
/// up. `what` names the element in errors.
pub fn parse_kib(what: &str, text: &str, unit: Option<&str>) -> Result<u64, DomainXmlError> {
    let unit_str = unit.unwrap_or("KiB");
    let mult = unit_bytes(unit_str).ok_or_else(|| {
        DomainXmlError::invalid(
            format!("<{what} unit>"),
            unit_str,
            "unknown unit (expected b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, ...)",
        )
    })?;
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainXmlError::invalid(
            format!("<{what}>"),
            t,
            "expected a non-negative integer",
        ));
    }
    let value: u64 = t
        .parse()
        .map_err(|_| DomainXmlError::invalid(format!("<{what}>"), t, "value too large"))?;
    let bytes = value.checked_mul(mult).ok_or_else(|| {
        DomainXmlError::invalid(
            format!("<{what}>"),
            format!("{t} {unit_str}"),
            "value too large",
        )
    })?;
    Ok(bytes.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_kib("memory", "1", None).unwrap(), 1);
        assert_eq!(parse_kib("memory", "1", Some("KiB")).unwrap(), 1);
        assert_eq!(parse_kib("memory", "1", Some("k")).unwrap(), 1);
        assert_eq!(
            parse_kib("memory", "2", Some("GiB")).unwrap(),
            2 * 1024 * 1024
        );
        assert_eq!(
            parse_kib("memory", "2", Some("G")).unwrap(),
            2 * 1024 * 1024
        );
        assert_eq!(parse_kib("memory", "1", Some("MB")).unwrap(), 977); // 1e6/1024 up
        assert_eq!(parse_kib("memory", "1000", Some("b")).unwrap(), 1);
        assert_eq!(parse_kib("memory", "2048", Some("bytes")).unwrap(), 2);
        assert_eq!(parse_kib("memory", "1", Some("TiB")).unwrap(), 1 << 30);
        assert_eq!(parse_kib("memory", "1", Some("tb")).unwrap(), 976_562_500);
        assert!(parse_kib("memory", "1", Some("KiBB")).is_err());
        assert!(parse_kib("memory", "1", Some("x")).is_err());
        assert!(parse_kib("memory", "-1", None).is_err());
        assert!(parse_kib("memory", "1.5", None).is_err());
        assert!(parse_kib("memory", "99999999999999999999", None).is_err());
        assert!(parse_kib("memory", "16", Some("EiB")).is_err());
    }
}
