//! What a manager probes before it starts a guest: machine types, CPU
//! models, device types and character devices.
//!
//! The answers have the shape of QEMU 7.2's for x86_64, trimmed to what a
//! manager looks at: the two machine families with their aliases, a few
//! CPU models, and the device models a domain may ask for. No guest
//! exists, so no serial device and no host CPU features are simulated.

use serde_json::{Value, json};

use crate::qmp::{Args, QmpError};
use crate::sim::Sim;

/// `query-machines`: `pc` and `q35` with their versioned names.
pub(crate) fn machines() -> Value {
    let m = |name: &str, alias: &str, default: bool, cpu_max: u32| {
        let mut v = json!({"name": name, "alias": alias, "cpu-max": cpu_max,
            "hotpluggable-cpus": true, "numa-mem-supported": default,
            "deprecated": false, "default-cpu-type": "qemu64-x86_64-cpu",
            "default-ram-id": "pc.ram"});
        if default {
            v["is-default"] = json!(true);
        }
        v
    };
    json!([
        m("pc-i440fx-7.2", "pc", true, 255),
        m("pc-q35-7.2", "q35", false, 288),
        {"name": "none", "cpu-max": 1, "hotpluggable-cpus": false,
         "numa-mem-supported": false, "deprecated": false, "default-ram-id": "ram"}
    ])
}

/// `query-cpu-definitions`: every model runs (the simulated host lacks
/// nothing), except `host` without KVM, as in QEMU.
pub(crate) fn cpu_definitions(sim: &Sim) -> Value {
    let kvm = sim.cfg.kvm;
    let def = |name: &str, unavailable: &[&str]| {
        json!({"name": name, "typename": format!("{name}-x86_64-cpu"),
            "unavailable-features": unavailable, "static": false,
            "migration-safe": !matches!(name, "host" | "max"), "deprecated": false})
    };
    let host_lacks: &[&str] = if kvm { &[] } else { &["kvm"] };
    json!([
        def("max", &[]),
        def("host", host_lacks),
        def("qemu64", &[]),
        def("Skylake-Client", &[]),
        def("EPYC", &[])
    ])
}

/// `query-cpu-model-expansion`: `host` only under KVM, as in QEMU; any
/// other model expands to itself without properties.
pub(crate) fn cpu_model_expansion(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["type", "model"])?;
    let kind = args.str("type")?;
    if kind != "static" && kind != "full" {
        return Err(QmpError::generic(format!(
            "Parameter 'type' does not accept value '{kind}'"
        )));
    }
    let name = args
        .get("model")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| QmpError::generic("Parameter 'model.name' is missing"))?;
    if name == "host" && !sim.cfg.kvm {
        return Err(QmpError::generic("The CPU type 'host' requires KVM or HVF"));
    }
    let (base, props) = match (kind, name) {
        ("static", "host") => ("base", json!({"vendor": "GenuineIntel", "lm": true})),
        _ => (name, json!({})),
    };
    Ok(json!({"model": {"name": base, "props": props}}))
}

/// Device models a domain may ask for (and the ones the driver's argv
/// uses), all concrete.
const DEVICES: &[&str] = &[
    "virtio-blk-pci",
    "virtio-net-pci",
    "virtio-scsi-pci",
    "virtio-balloon-pci",
    "virtio-rng-pci",
    "virtio-vga",
    "virtio-gpu-pci",
    "VGA",
    "qxl-vga",
    "e1000",
    "e1000e",
    "rtl8139",
    "ide-hd",
    "ide-cd",
    "scsi-hd",
    "scsi-cd",
    "ich9-ahci",
    "isa-serial",
    "i6300esb",
    "qemu-xhci",
    "nec-usb-xhci",
    "piix3-usb-uhci",
    "usb-tablet",
    "ich9-intel-hda",
    "intel-hda",
    "hda-duplex",
    "tpm-crb",
    "tpm-tis",
    "pvpanic",
    "isa-debug-exit",
    "pcie-root-port",
    "pci-bridge",
    "pcie-pci-bridge",
    "i82801b11-bridge",
    "ich9-usb-ehci1",
    "ich9-usb-uhci1",
    "ich9-usb-uhci2",
    "ich9-usb-uhci3",
    "piix4-usb-uhci",
    "usb-ehci",
    "vt82c686b-usb-uhci",
    "pci-ohci",
    "virtio-serial-pci",
    "virtserialport",
    "virtconsole",
    "usb-kbd",
    "usb-mouse",
    "virtio-keyboard-pci",
    "virtio-mouse-pci",
    "virtio-tablet-pci",
    "bochs-display",
    "cirrus-vga",
    "ramfb",
    "qxl",
    "AC97",
    "hda-micro",
    "hda-output",
    "usb-redir",
    "vmcoreinfo",
];

/// `qom-list-types`: the device models (for `implements: "device"` or no
/// filter); no abstract types, so `abstract: true` adds nothing.
pub(crate) fn list_types(args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["implements", "abstract"])?;
    args.opt_bool("abstract")?;
    let list: &[&str] = match args.opt_str("implements")? {
        None | Some("device") => DEVICES,
        Some(_) => &[],
    };
    Ok(Value::Array(
        list.iter()
            .map(|n| json!({"name": n, "parent": "device"}))
            .collect(),
    ))
}
