//! What the driver tells QEMU over QMP after it started (paused) and before
//! the guest runs: what has no safe command-line form.

use crate::def::DomainDef;
use crate::devices::graphics::{GraphicsDef, PasswordConnected};
use crate::devices::misc::MemballoonModel;

/// One QMP step of the start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupAction {
    /// `set_password` (the password never appears on QEMU's command line,
    /// where every local user could read it).
    SetPassword {
        /// `vnc` or `spice`.
        protocol: &'static str,
        password: String,
        /// SPICE: what happens to connected clients.
        connected: Option<PasswordConnected>,
    },
    /// `expire_password`: `time` is seconds since the epoch, or `never`.
    ExpirePassword {
        protocol: &'static str,
        time: String,
    },
    /// `qom-set` of the balloon's `guest-stats-polling-interval`.
    BalloonStatsPeriod(u32),
    /// `set_link` down for the NIC with this QEMU id (`net0`).
    LinkDown(String),
}

/// The start-up steps `def` needs, in order.
pub fn startup_actions(def: &DomainDef) -> Vec<StartupAction> {
    let mut v = Vec::new();
    for g in &def.devices.graphics {
        let (protocol, d) = match g {
            GraphicsDef::Vnc(d) => ("vnc", d),
            GraphicsDef::Spice(d) => ("spice", d),
            GraphicsDef::None => continue,
        };
        let Some(p) = &d.password else {
            continue;
        };
        v.push(StartupAction::SetPassword {
            protocol,
            password: p.passwd.clone(),
            connected: if protocol == "spice" {
                p.connected
            } else {
                None
            },
        });
        let time = p
            .valid_to_epoch
            .map_or_else(|| "never".to_string(), |t| t.to_string());
        v.push(StartupAction::ExpirePassword { protocol, time });
    }
    if let Some(b) = &def.devices.memballoon
        && b.model == MemballoonModel::Virtio
        && let Some(p) = b.stats_period
    {
        v.push(StartupAction::BalloonStatsPeriod(p));
    }
    for (i, n) in def.devices.interfaces.iter().enumerate() {
        if n.link_up == Some(false) {
            v.push(StartupAction::LinkDown(format!("net{}", n.alias_number(i))));
        }
    }
    v
}
