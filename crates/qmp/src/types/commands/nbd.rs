//! QEMU's NBD server and block exports (the destination of a migration
//! that copies its disks), and the `nbd` client node the source mirrors
//! into.

use serde::Serialize;

use super::{Command, Empty};

/// An address QEMU listens on or connects to, as the older commands
/// (`nbd-server-start`) take it: `{"type": "inet", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum LegacySocketAddress {
    /// A TCP address.
    Inet(InetSocketAddress),
}

/// A TCP host and port (QEMU takes the port as a string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InetSocketAddress {
    /// Host name or address.
    pub host: String,
    /// Port number.
    pub port: String,
}

/// `nbd-server-start`: QEMU's NBD server listens on `addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NbdServerStart {
    /// Where it listens.
    pub addr: LegacySocketAddress,
}
command!(NbdServerStart = "nbd-server-start" => Empty);

no_args!(
    /// `nbd-server-stop`: closes the NBD server and its exports.
    NbdServerStop = "nbd-server-stop" => Empty
);

/// `block-export-add` of an NBD export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockExportAdd {
    /// Always `nbd`.
    #[serde(rename = "type")]
    pub export_type: String,
    /// The export's id (for `block-export-del`).
    pub id: String,
    /// The node exported.
    pub node_name: String,
    /// The name NBD clients ask for.
    pub name: String,
    /// Clients may write.
    pub writable: bool,
}
command!(BlockExportAdd = "block-export-add" => Empty);

/// `blockdev-add` options of an `nbd` client node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevNbd {
    /// The node's name.
    pub node_name: String,
    /// The server (`{"type": "inet", "host": ..., "port": ...}`).
    pub server: FlatSocketAddress,
    /// The export's name.
    pub export: String,
}

/// An address as `blockdev-add` takes it (flat, tagged by `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FlatSocketAddress {
    /// A TCP address.
    Inet(InetSocketAddress),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test")]
    use super::*;
    use crate::types::commands::{BlockdevAdd, BlockdevOptions};

    #[test]
    fn nbd_commands_serialise_as_qemu_spells_them() {
        let inet = InetSocketAddress {
            host: "10.0.0.2".into(),
            port: "49153".into(),
        };
        let start = NbdServerStart {
            addr: LegacySocketAddress::Inet(inet.clone()),
        };
        assert_eq!(
            serde_json::to_value(start).unwrap(),
            serde_json::json!({"addr": {"type": "inet",
                "data": {"host": "10.0.0.2", "port": "49153"}}})
        );
        let node = BlockdevAdd::from(BlockdevOptions::Nbd(BlockdevNbd {
            node_name: "n".into(),
            server: FlatSocketAddress::Inet(inet),
            export: "virtio-disk0".into(),
        }));
        assert_eq!(
            serde_json::to_value(node).unwrap(),
            serde_json::json!({"driver": "nbd", "node-name": "n", "export": "virtio-disk0",
                "server": {"type": "inet", "host": "10.0.0.2", "port": "49153"}})
        );
        let export = BlockExportAdd {
            export_type: "nbd".into(),
            id: "e".into(),
            node_name: "libvirt-1-format".into(),
            name: "virtio-disk0".into(),
            writable: true,
        };
        let v = serde_json::to_value(export).unwrap();
        assert_eq!(v["node-name"], "libvirt-1-format");
        assert_eq!(v["type"], "nbd");
    }
}
