//! Ports on USB buses and virtio-serial controllers: a device without an
//! address gets the first free port; given ones must exist and be free.

use std::collections::HashMap;

use super::dev::Dev;
use crate::devices::Devices;
use crate::devices::address::{Address, UsbAddress, VirtioSerialAddress};
use crate::devices::controller::{ControllerKind, UsbModel};
use crate::devices::input::InputBus;
use crate::error::DomainXmlError;

/// Ports per USB bus (a bus is the controllers of one index: an EHCI
/// master and its companions share its ports).
fn usb_buses(d: &Devices) -> Vec<(u32, u32)> {
    let mut buses: Vec<(u32, u32)> = Vec::new();
    for c in &d.controllers {
        let ControllerKind::Usb { model, ports, .. } = &c.kind else {
            continue;
        };
        if *model == UsbModel::None || model.is_companion() {
            continue;
        }
        let n = ports.unwrap_or_else(|| model.default_ports());
        if !buses.iter().any(|(i, _)| *i == c.index) {
            buses.push((c.index, n));
        }
    }
    buses.sort();
    buses
}

/// The USB devices, in libvirt's order: inputs, then redirected devices.
fn usb_devices(d: &Devices) -> Vec<Dev> {
    let inputs = (0..d.inputs.len())
        .filter(|i| d.inputs[*i].bus == InputBus::Usb)
        .map(Dev::Input);
    inputs
        .chain((0..d.redirdevs.len()).map(Dev::Redirdev))
        .collect()
}

pub(super) fn assign_usb(d: &mut Devices) -> Result<(), DomainXmlError> {
    let buses = usb_buses(d);
    let mut used: HashMap<(u32, u32), String> = HashMap::new();
    let devs = usb_devices(d);
    for dev in &devs {
        let Some(Address::Usb(a)) = dev.address(d) else {
            continue;
        };
        let ports = buses.iter().find(|(i, _)| *i == a.bus).map(|(_, n)| *n);
        if ports.is_none_or(|n| a.port == 0 || a.port > n) {
            return Err(DomainXmlError::structure(format!(
                "USB address bus {} port {} of {} does not exist",
                a.bus,
                a.port,
                dev.name(d)
            )));
        }
        claim(&mut used, (a.bus, a.port), dev.name(d), "USB port")?;
    }
    for dev in devs {
        if dev.address(d).is_some() {
            continue;
        }
        let free = buses
            .iter()
            .flat_map(|(b, n)| (1..=*n).map(move |p| (*b, p)))
            .find(|k| !used.contains_key(k));
        let Some((bus, port)) = free else {
            return Err(DomainXmlError::unsupported_because(
                "USB devices",
                dev.name(d),
                "no USB port is free (USB hubs are not supported; add ports to the xHCI controller)",
            ));
        };
        used.insert((bus, port), dev.name(d));
        dev.set_address(d, Address::Usb(UsbAddress { bus, port }));
    }
    Ok(())
}

fn claim(
    used: &mut HashMap<(u32, u32), String>,
    key: (u32, u32),
    name: String,
    what: &str,
) -> Result<(), DomainXmlError> {
    if let Some(other) = used.get(&key) {
        return Err(DomainXmlError::structure(format!(
            "{what} {}.{} is used by both {other} and {name}",
            key.0, key.1
        )));
    }
    used.insert(key, name);
    Ok(())
}

/// Ports of each virtio-serial controller (port 0 belongs to a virtio
/// console, so channels start at 1).
fn vserial_controllers(d: &Devices) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = d
        .controllers
        .iter()
        .filter_map(|c| match &c.kind {
            ControllerKind::VirtioSerial { ports, .. } => Some((c.index, ports.unwrap_or(31))),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

pub(super) fn assign_virtio_serial(d: &mut Devices) -> Result<(), DomainXmlError> {
    let ctrls = vserial_controllers(d);
    let mut used: HashMap<(u32, u32), String> = HashMap::new();
    let devs: Vec<Dev> = (0..d.channels.len()).map(Dev::Channel).collect();
    for dev in &devs {
        let Some(Address::VirtioSerial(a)) = dev.address(d) else {
            continue;
        };
        let ports = ctrls
            .iter()
            .find(|(i, _)| *i == a.controller)
            .map(|(_, n)| *n);
        if a.bus != 0 || ports.is_none_or(|n| a.port == 0 || a.port >= n) {
            return Err(DomainXmlError::structure(format!(
                "virtio-serial address controller {} bus {} port {} of {} does not exist",
                a.controller,
                a.bus,
                a.port,
                dev.name(d)
            )));
        }
        claim(
            &mut used,
            (a.controller, a.port),
            dev.name(d),
            "virtio-serial port",
        )?;
    }
    for dev in devs {
        if dev.address(d).is_some() {
            continue;
        }
        let free = ctrls
            .iter()
            .flat_map(|(c, n)| (1..*n).map(move |p| (*c, p)))
            .find(|k| !used.contains_key(k));
        let Some((controller, port)) = free else {
            return Err(DomainXmlError::unsupported_because(
                "channels",
                dev.name(d),
                "no virtio-serial port is free",
            ));
        };
        used.insert((controller, port), dev.name(d));
        let a = VirtioSerialAddress {
            controller,
            bus: 0,
            port,
        };
        dev.set_address(d, Address::VirtioSerial(a));
    }
    Ok(())
}
