//! The QMP greeting: `{"QMP": {"version": {...}, "capabilities": [...]}}`.
//!
//! It is the first thing QEMU writes; it tells us the version (the driver
//! gates features on it) and which capabilities could be enabled.

use serde::Deserialize;
use serde_json::Value;

use crate::error::ProtocolError;
use crate::types::commands::{VersionInfo, VersionTriple};

/// What QEMU announced on connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Upstream version.
    pub version: VersionTriple,
    /// Distribution package string (may be empty).
    pub package: String,
    /// Capabilities QEMU offers (e.g. `"oob"`). We enable none.
    pub capabilities: Vec<String>,
}

#[derive(Deserialize)]
struct Wire {
    version: VersionInfo,
    #[serde(default)]
    capabilities: Vec<Value>,
}

impl Greeting {
    /// Parses the object inside `"QMP"`.
    pub fn from_value(v: &Value) -> Result<Self, ProtocolError> {
        let w = Wire::deserialize(v).map_err(|e| ProtocolError::BadGreeting(e.to_string()))?;
        // Capabilities are names; a non-string one is ignored rather than
        // rejected: it only matters if we wanted to enable it.
        let capabilities = w
            .capabilities
            .into_iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        Ok(Greeting {
            version: w.version.qemu,
            package: w.version.package,
            capabilities,
        })
    }

    /// True if QEMU is at least `major.minor.micro`.
    pub fn at_least(&self, major: u64, minor: u64, micro: u64) -> bool {
        self.version
            >= VersionTriple {
                major,
                minor,
                micro,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_qemu_greeting() {
        let g = Greeting::from_value(&json!({
            "version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"},
            "capabilities": ["oob"]
        }))
        .unwrap();
        assert_eq!(g.version.major, 7);
        assert_eq!(g.capabilities, vec!["oob".to_string()]);
        assert!(g.at_least(7, 1, 0));
        assert!(!g.at_least(8, 0, 0));
    }

    #[test]
    fn rejects_bad_greeting() {
        assert!(Greeting::from_value(&json!({"capabilities": []})).is_err());
        assert!(Greeting::from_value(&json!({"version": {"qemu": {"major": "x"}}})).is_err());
        assert!(Greeting::from_value(&json!(5)).is_err());
    }
}
