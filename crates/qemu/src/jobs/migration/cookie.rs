//! ferrovirt's migration cookie: what one phase tells the next, opaque to
//! the client that carries it. JSON, versioned; documented in
//! `docs/MIGRATION.md`.

use serde::{Deserialize, Serialize};

use super::storage::{CookieDisk, NbdServer};
use crate::object::Domain;
use crate::{Error, Result};

/// The cookie version this daemon writes and reads.
const VERSION: u32 = 1;

/// The largest cookie read (the protocol allows 4 MiB; ours are tiny).
const MAX_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cookie {
    /// Always `"ferrovirt-migration"`.
    pub(crate) format: String,
    pub(crate) version: u32,
    /// The host that wrote it.
    pub(crate) host: String,
    pub(crate) name: String,
    pub(crate) uuid: uuid::Uuid,
    /// Guest downtime QEMU measured (perform's cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) downtime_ms: Option<u64>,
    /// The disks the source copies (begin's cookie, with a storage copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) disks: Vec<CookieDisk>,
    /// Where the destination exports them (prepare's cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nbd: Option<NbdServer>,
}

const FORMAT: &str = "ferrovirt-migration";

impl Cookie {
    pub(crate) fn new(dom: &Domain) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            host: hostname(),
            name: dom.name().to_owned(),
            uuid: dom.uuid(),
            downtime_ms: None,
            disks: Vec::new(),
            nbd: None,
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a cookie; an empty one (a client that carries none) is
    /// `None`, a foreign or newer one an error.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Self>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        if bytes.len() > MAX_LEN {
            return Err(Error::InvalidArg("migration cookie too large".into()));
        }
        let c: Cookie = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidArg(format!("unreadable migration cookie: {e}")))?;
        if c.format != FORMAT || c.version != VERSION {
            return Err(Error::ConfigUnsupported(format!(
                "migration cookie '{}' version {} is not understood",
                c.format, c.version
            )));
        }
        Ok(Some(c))
    }
}

/// This host's name (empty when it cannot be read).
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let c = Cookie {
            format: FORMAT.into(),
            version: VERSION,
            host: "h".into(),
            name: "d".into(),
            uuid: uuid::Uuid::nil(),
            downtime_ms: Some(12),
            disks: vec![CookieDisk {
                target: "vda".into(),
                capacity: 1 << 20,
                format: "qcow2".into(),
                backing: None,
            }],
            nbd: Some(NbdServer {
                host: "h".into(),
                port: 49153,
            }),
        };
        assert_eq!(Cookie::parse(&c.to_bytes()).unwrap(), Some(c.clone()));
        assert_eq!(Cookie::parse(b"").unwrap(), None);
        let newer = Cookie { version: 2, ..c };
        assert!(Cookie::parse(&newer.to_bytes()).is_err());
        assert!(Cookie::parse(b"<qemu-migration/>").is_err());
        assert!(Cookie::parse(&vec![b' '; MAX_LEN + 1]).is_err());
    }
}
