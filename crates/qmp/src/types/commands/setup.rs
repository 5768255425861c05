//! Commands a manager runs while setting up a freshly started guest, and
//! the probes that say what a binary has: display passwords, QOM
//! properties, link state, the threads of vCPUs and I/O threads, the
//! command list.

use serde::{Deserialize, Serialize};

use super::{Command, Empty};

no_args!(
    /// `query-commands`: every command this QEMU has.
    QueryCommands = "query-commands" => Vec<CommandInfo>
);

/// One entry of `query-commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The command's name.
    pub name: String,
}

/// `set_password`: the password of a display protocol (`vnc`, `spice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetPassword {
    /// `vnc` or `spice`.
    pub protocol: String,
    /// The new password.
    pub password: String,
    /// SPICE: `keep`, `disconnect` or `fail` for connected clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<String>,
}
command!(SetPassword = "set_password" => Empty);

/// `expire_password`: when the display password stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpirePassword {
    /// `vnc` or `spice`.
    pub protocol: String,
    /// `now`, `never`, `+SECONDS` or seconds since the epoch.
    pub time: String,
}
command!(ExpirePassword = "expire_password" => Empty);

/// `set_link`: a NIC's link state as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetLink {
    /// The NIC's device id (or its netdev id).
    pub name: String,
    /// Link up.
    pub up: bool,
}
command!(SetLink = "set_link" => Empty);

no_args!(
    /// `query-vnc`: the VNC server and where it listens.
    QueryVnc = "query-vnc" => VncInfo
);

/// Reply of `query-vnc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VncInfo {
    /// Whether a VNC server runs.
    pub enabled: bool,
    /// The port it listens on, as text (absent when disabled).
    #[serde(default)]
    pub service: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let p = SetPassword {
            protocol: "vnc".into(),
            password: "x".into(),
            connected: None,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"protocol": "vnc", "password": "x"})
        );
    }
}
