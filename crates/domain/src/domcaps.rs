//! Domain capabilities (`virConnectGetDomainCapabilities`, `virsh
//! domcapabilities`): what a domain of one emulator, machine and
//! virtualization type can be given here.
//!
//! True to the probed emulator and to what ferrovirt really supports, never
//! invented: machine and vCPU limit from QEMU's `query-machines`, CPU
//! models and their usability from `query-cpu-definitions`, device models
//! from its device list, firmware from the installed descriptors; and
//! every enum of values comes from the parser's own tables (`ALL` of each
//! element's enum), filtered by what the emulator has, so domain
//! capabilities and the parser cannot drift apart.

use crate::argv::Accel;
use crate::caps::EmulatorCaps;
use crate::cpu::CpuMode;
use crate::def::{DomainType, MachineFamily};
use crate::devices::chardev::ChrSource;
use crate::devices::disk::{DiskBus, DiskDevice};
use crate::devices::graphics::GraphicsType;
use crate::devices::rng::{RngBackendModel, RngModel};
use crate::devices::tpm::{TpmBackendType, TpmModel, TpmVersion};
use crate::devices::video::VideoModel;
use crate::error::DomainXmlError;
use crate::features::HypervFeature;
use crate::firmware::FirmwareDescriptor;
use crate::memory::MemorySource;
use crate::os::{Firmware, LoaderType};
use crate::values::{on_off, yes_no};
use crate::xml::XmlWriter;

/// What domain capabilities are computed from.
pub struct DomcapsInput<'a> {
    pub caps: &'a EmulatorCaps,
    pub emulator: &'a str,
    pub virttype: DomainType,
    /// The machine asked for (an alias or a versioned name); `None`: q35.
    pub machine: Option<&'a str>,
    /// Whether KVM runs guests here.
    pub kvm_usable: bool,
    /// Installed firmware descriptors, in QEMU's search order.
    pub firmware: &'a [FirmwareDescriptor],
    /// Whether swtpm is installed (TPM emulation).
    pub swtpm: bool,
}

/// The document, or libvirt's error for a request it cannot answer.
pub fn domain_capabilities(input: &DomcapsInput<'_>) -> Result<String, DomainXmlError> {
    if input.virttype == DomainType::Kvm && !input.kvm_usable {
        return Err(DomainXmlError::InvalidArgument(format!(
            "KVM is not supported by '{}' on this host",
            input.emulator
        )));
    }
    let unsupported = |m: &str| {
        DomainXmlError::InvalidArgument(format!(
            "the machine '{m}' is not supported by emulator '{}'",
            input.emulator
        ))
    };
    let asked = input.machine.unwrap_or("q35");
    let machine = input
        .caps
        .resolve_machine(input.machine)
        .map_err(|_| unsupported(asked))?
        .to_string();
    let family = MachineFamily::of(&machine).ok_or_else(|| unsupported(asked))?;
    let cx = Cx {
        input,
        machine,
        family,
    };
    let mut w = XmlWriter::new();
    w.open("domainCapabilities", &[]);
    w.text_elem("path", &[], input.emulator);
    w.text_elem("domain", &[], input.virttype.as_str());
    w.text_elem("machine", &[], &cx.machine);
    w.text_elem("arch", &[], "x86_64");
    w.empty("vcpu", &[("max", cx.vcpu_max().to_string())]);
    w.empty("iothreads", &[("supported", "yes".into())]);
    os(&mut w, &cx);
    cpu(&mut w, &cx);
    memory_backing(&mut w);
    devices(&mut w, &cx);
    features(&mut w, &cx);
    w.close("domainCapabilities");
    Ok(w.finish())
}

struct Cx<'a> {
    input: &'a DomcapsInput<'a>,
    machine: String,
    family: MachineFamily,
}

impl Cx<'_> {
    fn vcpu_max(&self) -> u32 {
        self.input
            .caps
            .cpu_max(&self.machine)
            .unwrap_or(match self.family {
                MachineFamily::Q35 => 288,
                MachineFamily::I440fx => 255,
            })
    }

    /// The emulator has `device` (an unprobed device list answers no).
    fn has(&self, device: &str) -> bool {
        self.input.caps.has_device(device)
    }

    fn kvm(&self) -> bool {
        self.input.virttype == DomainType::Kvm && self.input.kvm_usable
    }

    fn uefi(&self) -> Vec<&FirmwareDescriptor> {
        self.input
            .firmware
            .iter()
            .filter(|d| d.is_uefi_flash() && d.supports_machine(&self.machine))
            .collect()
    }
}

fn supported(w: &mut XmlWriter, name: &str, yes: bool) {
    w.empty(name, &[("supported", yes_no(yes))]);
}

fn values<S: AsRef<str>>(w: &mut XmlWriter, name: &str, vals: impl IntoIterator<Item = S>) {
    let vals: Vec<S> = vals.into_iter().collect();
    if vals.is_empty() {
        w.empty("enum", &[("name", name.into())]);
        return;
    }
    w.open("enum", &[("name", name.into())]);
    for v in vals {
        w.text_elem("value", &[], v.as_ref());
    }
    w.close("enum");
}

fn os(w: &mut XmlWriter, cx: &Cx<'_>) {
    let uefi = cx.uefi();
    w.open("os", &[("supported", "yes".into())]);
    let firmware = Firmware::ALL
        .iter()
        .filter(|f| **f == Firmware::Bios || !uefi.is_empty())
        .map(|f| f.as_str());
    values(w, "firmware", firmware);
    w.open("loader", &[("supported", "yes".into())]);
    for d in &uefi {
        w.text_elem("value", &[], &d.executable.to_string_lossy());
    }
    values(w, "type", LoaderType::ALL.iter().map(|t| t.as_str()));
    values(w, "readonly", ["yes", "no"]);
    let secure = uefi.iter().any(|d| d.has("secure-boot")) && cx.family == MachineFamily::Q35;
    values(
        w,
        "secure",
        if secure {
            vec!["yes", "no"]
        } else {
            vec!["no"]
        },
    );
    w.close("loader");
    w.close("os");
}

fn cpu(w: &mut XmlWriter, cx: &Cx<'_>) {
    w.open("cpu", &[]);
    for mode in [CpuMode::HostPassthrough, CpuMode::Maximum] {
        let yes = mode == CpuMode::Maximum || cx.kvm();
        let name = match mode {
            CpuMode::HostPassthrough => "hostPassthroughMigratable",
            _ => "maximumMigratable",
        };
        if yes {
            w.open(
                "mode",
                &[("name", mode.as_str().into()), ("supported", "yes".into())],
            );
            values(w, name, [on_off(true), on_off(false)]);
            w.close("mode");
        } else {
            w.empty(
                "mode",
                &[("name", mode.as_str().into()), ("supported", "no".into())],
            );
        }
    }
    host_model(w, cx);
    custom_models(w, cx);
    w.close("cpu");
}

/// host-model is QEMU's `host` model under KVM (see the argv builder), so
/// that is the model it names; it needs KVM.
fn host_model(w: &mut XmlWriter, cx: &Cx<'_>) {
    let name = CpuMode::HostModel.as_str();
    if !cx.kvm() {
        w.empty("mode", &[("name", name.into()), ("supported", "no".into())]);
        return;
    }
    w.open(
        "mode",
        &[("name", name.into()), ("supported", "yes".into())],
    );
    w.text_elem("model", &[("fallback", "forbid".into())], "host");
    let vendor = cx
        .input
        .caps
        .host_cpu
        .as_ref()
        .and_then(|h| h.props.iter().find(|(k, _)| k == "vendor"))
        .map(|(_, v)| v.clone());
    if let Some(v) = vendor {
        w.text_elem("vendor", &[], &v);
    }
    w.close("mode");
}

/// Every named model QEMU has, with whether it runs as it is: known only
/// for the accelerator the probe ran under, `unknown` for the other.
fn custom_models(w: &mut XmlWriter, cx: &Cx<'_>) {
    let caps = cx.input.caps;
    let models = &caps.cpu_models;
    let name = CpuMode::Custom.as_str();
    if models.is_empty() {
        w.empty("mode", &[("name", name.into()), ("supported", "no".into())]);
        return;
    }
    let accel = match cx.input.virttype {
        DomainType::Kvm => Accel::Kvm,
        DomainType::Qemu => Accel::Tcg,
    };
    w.open(
        "mode",
        &[("name", name.into()), ("supported", "yes".into())],
    );
    // `host` and `max` are the other modes here, `base` is no model.
    let named = models
        .iter()
        .filter(|m| !["host", "max", "base"].contains(&m.name.as_str()));
    for m in named {
        let usable = match (accel == caps.probed_with, &m.unavailable_features) {
            (true, Some(_)) => yes_no(m.usable()),
            _ => "unknown".to_string(),
        };
        let mut a = vec![("usable", usable)];
        if m.deprecated {
            a.push(("deprecated", "yes".into()));
        }
        w.text_elem("model", &a, &m.name);
    }
    w.close("mode");
}

fn memory_backing(w: &mut XmlWriter) {
    w.open("memoryBacking", &[("supported", "yes".into())]);
    values(
        w,
        "sourceType",
        MemorySource::ALL.iter().map(|s| s.as_str()),
    );
    w.close("memoryBacking");
}

fn devices(w: &mut XmlWriter, cx: &Cx<'_>) {
    w.open("devices", &[]);
    disk(w, cx);
    graphics(w, cx);
    video(w, cx);
    supported(w, "hostdev", false);
    rng(w, cx);
    supported(w, "filesystem", false);
    tpm(w, cx);
    redirdev(w, cx);
    channel(w, cx);
    console(w);
    w.close("devices");
}

fn disk(w: &mut XmlWriter, cx: &Cx<'_>) {
    w.open("disk", &[("supported", "yes".into())]);
    values(w, "diskDevice", DiskDevice::ALL.iter().map(|d| d.as_str()));
    let buses = DiskBus::ALL.iter().filter(|b| match b {
        DiskBus::Ide => cx.family == MachineFamily::I440fx,
        DiskBus::Scsi => cx.has("virtio-scsi-pci"),
        DiskBus::Virtio => cx.has("virtio-blk-pci"),
        DiskBus::Sata => cx.family == MachineFamily::Q35 || cx.has("ich9-ahci"),
    });
    values(w, "bus", buses.map(|b| b.as_str()));
    w.close("disk");
}

fn graphics(w: &mut XmlWriter, cx: &Cx<'_>) {
    let types: Vec<&str> = GraphicsType::ALL
        .iter()
        .filter(|t| match t {
            GraphicsType::Vnc => true,
            GraphicsType::Spice => cx.input.caps.has_spice(),
            GraphicsType::None => false,
        })
        .map(|t| t.as_str())
        .collect();
    w.open("graphics", &[("supported", "yes".into())]);
    values(w, "type", types);
    w.close("graphics");
}

fn video(w: &mut XmlWriter, cx: &Cx<'_>) {
    let models = VideoModel::ALL
        .iter()
        .filter(|m| match m.qemu_devices().0 {
            Some(dev) => cx.has(dev),
            None => true,
        })
        .map(|m| m.as_str());
    w.open("video", &[("supported", "yes".into())]);
    values(w, "modelType", models);
    w.close("video");
}

fn rng(w: &mut XmlWriter, cx: &Cx<'_>) {
    let yes = cx.has("virtio-rng-pci");
    if !yes {
        return supported(w, "rng", false);
    }
    w.open("rng", &[("supported", "yes".into())]);
    values(w, "model", RngModel::ALL.iter().map(|m| m.as_str()));
    values(
        w,
        "backendModel",
        RngBackendModel::ALL.iter().map(|m| m.as_str()),
    );
    w.close("rng");
}

fn tpm(w: &mut XmlWriter, cx: &Cx<'_>) {
    let models: Vec<&str> = TpmModel::ALL
        .iter()
        .filter(|m| cx.has(m.as_str()))
        .map(|m| m.as_str())
        .collect();
    if models.is_empty() || !cx.input.swtpm {
        return supported(w, "tpm", false);
    }
    w.open("tpm", &[("supported", "yes".into())]);
    values(w, "model", models);
    values(
        w,
        "backendModel",
        TpmBackendType::ALL.iter().map(|b| b.as_str()),
    );
    values(
        w,
        "backendVersion",
        TpmVersion::ALL.iter().map(|v| v.as_str()),
    );
    w.close("tpm");
}

fn redirdev(w: &mut XmlWriter, cx: &Cx<'_>) {
    if !(cx.input.caps.has_spice() && cx.has("usb-redir")) {
        return supported(w, "redirdev", false);
    }
    w.open("redirdev", &[("supported", "yes".into())]);
    values(w, "bus", ["usb"]);
    w.close("redirdev");
}

fn channel(w: &mut XmlWriter, cx: &Cx<'_>) {
    let types: Vec<&str> = crate::devices::chardev::channel_source_types()
        .iter()
        .copied()
        .filter(|t| *t != ChrSource::SpiceVmc.type_str() || cx.input.caps.has_spice())
        .collect();
    w.open("channel", &[("supported", "yes".into())]);
    values(w, "type", types);
    w.close("channel");
}

fn console(w: &mut XmlWriter) {
    w.open("console", &[("supported", "yes".into())]);
    values(
        w,
        "type",
        crate::devices::chardev::serial_source_types()
            .iter()
            .copied(),
    );
    w.close("console");
}

fn features(w: &mut XmlWriter, cx: &Cx<'_>) {
    w.open("features", &[]);
    supported(w, "gic", false);
    supported(w, "vmcoreinfo", cx.has("vmcoreinfo"));
    supported(w, "genid", false);
    supported(w, "backingStoreInput", false);
    supported(w, "backup", false);
    supported(w, "sev", false);
    supported(w, "sgx", false);
    let hv = HypervFeature::ALL
        .iter()
        .filter(|f| cx.kvm() || **f != HypervFeature::Vpindex)
        .map(|f| f.as_str());
    w.open("hyperv", &[("supported", "yes".into())]);
    values(w, "features", hv);
    w.close("hyperv");
    w.close("features");
}
