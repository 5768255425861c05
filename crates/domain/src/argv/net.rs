//! NICs: `-netdev` (user-mode, or the tap the driver created) and the
//! device.

use super::{Args, Ctx};
use crate::devices::net::{InterfaceDef, InterfaceType, NetDriverName, NicModel};
use crate::error::DomainXmlError;

pub(super) fn interfaces(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let (_, boot) = super::disks::boot_indexes(cx.def);
    for (i, n) in cx.def.devices.interfaces.iter().enumerate() {
        a.opt("-netdev", netdev(cx, i, n)?);
        a.device(nic_device(cx, i, n, boot[i])?);
    }
    Ok(())
}

/// The `-device` options of NIC `i` (also `device_add`'s).
fn nic_device(
    cx: &Ctx<'_>,
    i: usize,
    n: &InterfaceDef,
    bootindex: Option<u32>,
) -> Result<String, DomainXmlError> {
    {
        let k = n.alias_number(i);
        let model = n.effective_model();
        cx.require_device(model.qemu_device(), "interface model", model.as_str())?;
        let mut dev = format!(
            "{},netdev=hostnet{k},id=net{k},mac={}",
            model.qemu_device(),
            n.mac
        );
        if let Some(m) = n.mtu {
            if model != NicModel::Virtio {
                return Err(DomainXmlError::unsupported_because(
                    "interface mtu with model",
                    model.as_str(),
                    "only virtio NICs take an MTU",
                ));
            }
            dev.push_str(&format!(",host_mtu={m}"));
        }
        dev.push_str(&driver_props(n, model)?);
        dev.push_str(&cx.pci_opts(n.address.as_ref()));
        if let Some(b) = bootindex {
            dev.push_str(&format!(",bootindex={b}"));
        }
        Ok(dev)
    }
}

/// Ring sizes and multiqueue of a virtio NIC's `<driver>`.
fn driver_props(n: &InterfaceDef, model: NicModel) -> Result<String, DomainXmlError> {
    let Some(d) = n.driver else {
        return Ok(String::new());
    };
    if model != NicModel::Virtio {
        return Err(DomainXmlError::unsupported_because(
            "interface driver with model",
            model.as_str(),
            "<driver> tunes virtio NICs",
        ));
    }
    let mut s = String::new();
    if let Some(q) = d.queues.filter(|q| *q > 1) {
        return Err(DomainXmlError::unsupported_because(
            "interface driver queues",
            q.to_string(),
            "multiqueue needs a tap per queue, which is not provided",
        ));
    }
    if let Some(r) = d.rx_queue_size {
        s.push_str(&format!(",rx_queue_size={r}"));
    }
    if let Some(t) = d.tx_queue_size {
        s.push_str(&format!(",tx_queue_size={t}"));
    }
    Ok(s)
}

fn netdev(cx: &Ctx<'_>, i: usize, n: &InterfaceDef) -> Result<String, DomainXmlError> {
    if n.itype == InterfaceType::User {
        return Ok(format!("user,id=hostnet{}", n.alias_number(i)));
    }
    let Some(fd) = cx.launch.taps.get(i).copied().flatten() else {
        return Err(DomainXmlError::unsupported_because(
            "interface type",
            n.itype.as_str(),
            "the driver made no tap for this interface",
        ));
    };
    let mut s = format!("tap,fd={fd},id=hostnet{}", n.alias_number(i));
    if tap_vhost(n, cx.launch.vhost_net)? {
        s.push_str(",vhost=on");
    }
    Ok(s)
}

/// Whether the tap backend of `n` asks for vhost-net: its `<driver
/// name>` decides, else whether the host has a usable `/dev/vhost-net`.
pub(crate) fn tap_vhost(n: &InterfaceDef, vhost_net: bool) -> Result<bool, DomainXmlError> {
    match n.driver.and_then(|d| d.name) {
        Some(NetDriverName::Qemu) => Ok(false),
        Some(NetDriverName::Vhost) if !vhost_net => Err(DomainXmlError::unsupported_because(
            "interface driver name",
            "vhost",
            "this host has no usable /dev/vhost-net",
        )),
        _ => Ok(vhost_net),
    }
}

/// The `-device` options of NIC `i` of `def` (for `device_add`), without
/// a boot index.
pub(crate) fn nic_device_opts(
    def: &crate::def::DomainDef,
    i: usize,
) -> Result<String, DomainXmlError> {
    let caps = crate::caps::EmulatorCaps::default();
    let launch = super::LaunchParams::default();
    let cx = Ctx {
        def,
        caps: &caps,
        launch: &launch,
        machine: String::new(),
        family: def.os.family(),
    };
    match def.devices.interfaces.get(i) {
        Some(n) => nic_device(&cx, i, n, None),
        None => Ok(String::new()),
    }
}
