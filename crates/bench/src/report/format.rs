//! How figures are written in the report.

/// A figure: whole numbers and anything of 100 or more without decimals,
/// else one decimal.
pub(super) fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value.fract() == 0.0 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.1}")
    }
}

/// A figure that may be missing ("–").
pub(super) fn maybe(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), number)
}

/// A figure in a comparison: two decimals below 100.
pub(super) fn precise(value: Option<f64>) -> String {
    match value {
        Some(value) if value >= 100.0 => format!("{value:.0}"),
        Some(value) => format!("{value:.2}"),
        None => "–".into(),
    }
}

/// `ferrovirtd / libvirtd`, two decimals.
pub(super) fn ratio(ferrovirtd: Option<f64>, libvirtd: Option<f64>) -> String {
    match (ferrovirtd, libvirtd) {
        (Some(ferrovirtd), Some(libvirtd)) if libvirtd > 0.0 => {
            format!("{:.2}", ferrovirtd / libvirtd)
        }
        _ => "–".into(),
    }
}

/// A list or map of figures as JSON (`[1.2,3.4]`, `{"rpc":1.0}`).
pub(super) fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(number(0.04), "0.0");
        assert_eq!(number(4.0), "4");
        assert_eq!(number(90.45), "90.5");
        assert_eq!(number(134_782.4), "134782");
        assert_eq!(maybe(None), "–");
        assert_eq!(precise(Some(1.234)), "1.23");
        assert_eq!(precise(Some(1234.5)), "1234");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "–");
        assert_eq!(json(&vec![1.76, 3.5]), "[1.76,3.5]");
    }
}
