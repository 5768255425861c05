//! Removable media: the tray of a device (`-device ...,id=`) opens and
//! closes with `DEVICE_TRAY_MOVED`, and a medium goes out and in only
//! while it is open, as in QEMU.

use serde_json::{Value, json};

use crate::qmp::{Args, QmpError};
use crate::sim::Sim;

pub(crate) fn command(sim: &Sim, name: &str, args: &Args<'_>) -> Result<Value, QmpError> {
    let id = args.str("id")?.to_string();
    if !sim.vm.borrow().devices.contains(&id) {
        return Err(QmpError::generic(format!("Device '{id}' not found")));
    }
    let open = sim.vm.borrow().open_trays.contains(&id);
    match name {
        "blockdev-open-tray" => {
            args.only(&["id", "force"])?;
            if !open {
                sim.vm.borrow_mut().open_trays.push(id.clone());
                moved(sim, &id, true);
            }
        }
        "blockdev-close-tray" => {
            args.only(&["id"])?;
            if open {
                sim.vm.borrow_mut().open_trays.retain(|d| *d != id);
                moved(sim, &id, false);
            }
        }
        "blockdev-remove-medium" => {
            args.only(&["id"])?;
            if !open {
                return Err(QmpError::generic(format!(
                    "Tray of device '{id}' is not open"
                )));
            }
            let mut vm = sim.vm.borrow_mut();
            if !vm.empty_trays.contains(&id) {
                vm.empty_trays.push(id);
            }
        }
        _ => {
            args.only(&["id", "node-name"])?;
            let node = args.str("node-name")?;
            if !open {
                return Err(QmpError::generic(format!(
                    "Tray of device '{id}' is not open"
                )));
            }
            let mut vm = sim.vm.borrow_mut();
            if !vm.nodes.iter().any(|n| n == node) {
                return Err(QmpError::generic(format!("Node '{node}' not found")));
            }
            vm.empty_trays.retain(|d| *d != id);
        }
    }
    Ok(json!({}))
}

fn moved(sim: &Sim, id: &str, open: bool) {
    sim.emit_value(
        "DEVICE_TRAY_MOVED",
        &json!({"device": "", "id": id, "tray-open": open}),
    );
}
