//! `<controller>`: PCI buses (roots, root ports, bridges), USB, SATA,
//! IDE (i440fx only), virtio-scsi and virtio-serial.

use super::address::{Address, format_address, parse_device_address};
use crate::def::MachineFamily;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, named, named_attr, named_enum, on_off, on_off_attr, skip_alias, uint_attr,
};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<controller type>`.
    pub enum ControllerType {
        Ide = "ide",
        Scsi = "scsi",
        Sata = "sata",
        VirtioSerial = "virtio-serial",
        Pci = "pci",
        Usb = "usb",
    }
}

named_enum! {
    /// `<controller type='pci' model>`.
    pub enum PciModel {
        PciRoot = "pci-root",
        PcieRoot = "pcie-root",
        PciBridge = "pci-bridge",
        DmiToPciBridge = "dmi-to-pci-bridge",
        PcieRootPort = "pcie-root-port",
        PcieToPciBridge = "pcie-to-pci-bridge",
    }
}

impl PciModel {
    /// The QEMU device for a pluggable controller (`None` for the roots,
    /// which are part of the machine), and the other names `<model name>`
    /// may give for it.
    pub fn qemu_devices(self) -> &'static [&'static str] {
        match self {
            PciModel::PciRoot | PciModel::PcieRoot => &[],
            PciModel::PciBridge => &["pci-bridge"],
            PciModel::DmiToPciBridge => &["i82801b11-bridge"],
            PciModel::PcieRootPort => &["pcie-root-port", "ioh3420"],
            PciModel::PcieToPciBridge => &["pcie-pci-bridge"],
        }
    }

    pub fn is_root(self) -> bool {
        matches!(self, PciModel::PciRoot | PciModel::PcieRoot)
    }
}

named_enum! {
    /// `<controller type='usb' model>`.
    pub enum UsbModel {
        Piix3Uhci = "piix3-uhci",
        Piix4Uhci = "piix4-uhci",
        Ehci = "ehci",
        Ich9Ehci1 = "ich9-ehci1",
        Ich9Uhci1 = "ich9-uhci1",
        Ich9Uhci2 = "ich9-uhci2",
        Ich9Uhci3 = "ich9-uhci3",
        Vt82c686bUhci = "vt82c686b-uhci",
        PciOhci = "pci-ohci",
        NecXhci = "nec-xhci",
        QemuXhci = "qemu-xhci",
        None = "none",
    }
}

impl UsbModel {
    /// QEMU's device, `None` for `none`.
    pub fn qemu_device(self) -> Option<&'static str> {
        Some(match self {
            UsbModel::Piix3Uhci => "piix3-usb-uhci",
            UsbModel::Piix4Uhci => "piix4-usb-uhci",
            UsbModel::Ehci => "usb-ehci",
            UsbModel::Ich9Ehci1 => "ich9-usb-ehci1",
            UsbModel::Ich9Uhci1 => "ich9-usb-uhci1",
            UsbModel::Ich9Uhci2 => "ich9-usb-uhci2",
            UsbModel::Ich9Uhci3 => "ich9-usb-uhci3",
            UsbModel::Vt82c686bUhci => "vt82c686b-usb-uhci",
            UsbModel::PciOhci => "pci-ohci",
            UsbModel::NecXhci => "nec-usb-xhci",
            UsbModel::QemuXhci => "qemu-xhci",
            UsbModel::None => return None,
        })
    }

    /// Ports the controller has unless `ports=` says otherwise (QEMU's
    /// defaults).
    pub fn default_ports(self) -> u32 {
        match self {
            UsbModel::Ehci | UsbModel::Ich9Ehci1 => 6,
            UsbModel::PciOhci => 3,
            UsbModel::NecXhci | UsbModel::QemuXhci => 4,
            UsbModel::None => 0,
            _ => 2,
        }
    }

    /// A UHCI companion of an ICH9 EHCI controller.
    pub fn is_companion(self) -> bool {
        matches!(
            self,
            UsbModel::Ich9Uhci1 | UsbModel::Ich9Uhci2 | UsbModel::Ich9Uhci3
        )
    }

    /// xHCI controllers take `ports=`.
    pub fn is_xhci(self) -> bool {
        matches!(self, UsbModel::NecXhci | UsbModel::QemuXhci)
    }
}

named_enum! {
    /// `<controller type='scsi' model>`: virtio-scsi only.
    pub enum ScsiModel {
        VirtioScsi = "virtio-scsi",
    }
}

/// `<target>` and `<model name>` of a PCI controller. Filled in for
/// pluggable controllers when addresses are assigned, as libvirt does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciOpts {
    /// `<model name>`: the QEMU device.
    pub model_name: Option<String>,
    pub chassis: Option<u32>,
    pub port: Option<u32>,
    pub chassis_nr: Option<u32>,
    pub hotplug: Option<bool>,
}

/// `<driver>` of a virtio controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerDriver {
    pub queues: Option<u32>,
    pub iothread: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerKind {
    Pci {
        model: PciModel,
        opts: PciOpts,
    },
    Usb {
        model: UsbModel,
        ports: Option<u32>,
        /// `<master startport>` of an EHCI companion.
        master_startport: Option<u32>,
    },
    Sata,
    Ide,
    Scsi {
        model: ScsiModel,
        driver: ControllerDriver,
    },
    VirtioSerial {
        ports: Option<u32>,
        vectors: Option<u32>,
        driver: ControllerDriver,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerDef {
    pub kind: ControllerKind,
    pub index: u32,
    pub address: Option<Address>,
}

impl ControllerDef {
    pub fn new(kind: ControllerKind, index: u32) -> Self {
        Self {
            kind,
            index,
            address: None,
        }
    }

    pub fn ctype(&self) -> ControllerType {
        match self.kind {
            ControllerKind::Pci { .. } => ControllerType::Pci,
            ControllerKind::Usb { .. } => ControllerType::Usb,
            ControllerKind::Sata => ControllerType::Sata,
            ControllerKind::Ide => ControllerType::Ide,
            ControllerKind::Scsi { .. } => ControllerType::Scsi,
            ControllerKind::VirtioSerial { .. } => ControllerType::VirtioSerial,
        }
    }

    pub fn pci_model(&self) -> Option<PciModel> {
        match self.kind {
            ControllerKind::Pci { model, .. } => Some(model),
            _ => None,
        }
    }

    /// The `model` attribute's value, for types that have one.
    pub fn model_name(&self) -> Option<&'static str> {
        match &self.kind {
            ControllerKind::Pci { model, .. } => Some(model.as_str()),
            ControllerKind::Usb { model, .. } => Some(model.as_str()),
            ControllerKind::Scsi { model, .. } => Some(model.as_str()),
            _ => None,
        }
    }

    pub fn usb_model(&self) -> Option<UsbModel> {
        match self.kind {
            ControllerKind::Usb { model, .. } => Some(model),
            _ => None,
        }
    }

    /// libvirt's alias, which is also the QEMU id: the builtin AHCI of q35
    /// is "ide", PCI buses are "pci.N" (the root "pci.0"/"pcie.0").
    pub fn alias(&self, family: MachineFamily) -> String {
        let i = self.index;
        match &self.kind {
            ControllerKind::Sata if i == 0 && family == MachineFamily::Q35 => "ide".into(),
            ControllerKind::Sata => format!("sata{i}"),
            ControllerKind::Scsi { .. } => format!("scsi{i}"),
            ControllerKind::Ide => "ide".into(),
            ControllerKind::Pci { .. } if i == 0 => family.root_bus().into(),
            ControllerKind::Pci { .. } => format!("pci.{i}"),
            ControllerKind::Usb { .. } if i == 0 => "usb".into(),
            ControllerKind::Usb { .. } => format!("usb{i}"),
            ControllerKind::VirtioSerial { .. } => format!("virtio-serial{i}"),
        }
    }
}

const P: &str = "controller";

pub(crate) fn parse_controller(
    el: &XmlElement,
    family: MachineFamily,
    next_index: impl Fn(ControllerType, bool) -> u32,
) -> Result<ControllerDef, DomainXmlError> {
    el.check_attrs(P, &["type", "index", "model", "ports", "vectors"])?;
    el.check_children(
        P,
        &["alias", "address", "model", "target", "master", "driver"],
    )?;
    check_singletons(
        el,
        P,
        &["alias", "address", "model", "target", "master", "driver"],
    )?;
    skip_alias(el, P)?;
    let ctype = named(
        "controller type",
        el.req_attr(P, "type")?,
        ControllerType::from_name,
    )?;
    // A UHCI companion without an index belongs to the EHCI before it.
    let companion = ctype == ControllerType::Usb
        && el.attr("model").is_some_and(|m| m.starts_with("ich9-uhci"));
    // PCI index 0 is the root bus: other PCI controllers start at 1.
    let pluggable_pci = ctype == ControllerType::Pci
        && el
            .attr("model")
            .is_some_and(|m| PciModel::from_name(m).is_some_and(|m| !m.is_root()));
    let index = match uint_attr(el, P, "index")? {
        Some(i) => i,
        None if pluggable_pci => next_index(ctype, companion).max(1),
        None => next_index(ctype, companion),
    };
    let kind = match ctype {
        ControllerType::Pci => parse_pci(el, family, index)?,
        ControllerType::Usb => parse_usb(el, family)?,
        ControllerType::Scsi => parse_scsi(el)?,
        ControllerType::VirtioSerial => parse_virtio_serial(el)?,
        ControllerType::Sata => plain(el, ControllerKind::Sata)?,
        ControllerType::Ide => parse_ide(el, family, index)?,
    };
    let address = parse_device_address(el, P, &["pci"])?;
    Ok(ControllerDef {
        kind,
        index,
        address,
    })
}

/// Attributes and children only some controller types take.
fn refuse_extras(el: &XmlElement, attrs: &[&str], children: &[&str]) -> Result<(), DomainXmlError> {
    let ty = el.attr("type").unwrap_or("");
    for a in attrs {
        if el.attr(a).is_some() {
            return Err(DomainXmlError::unsupported_because(
                format!("<controller {a}>"),
                ty,
                format!("a '{ty}' controller has no '{a}'"),
            ));
        }
    }
    for c in children {
        if el.child(c).is_some() {
            return Err(DomainXmlError::unknown_element(format!("controller/{c}")));
        }
    }
    Ok(())
}

fn plain(el: &XmlElement, kind: ControllerKind) -> Result<ControllerKind, DomainXmlError> {
    refuse_extras(
        el,
        &["model", "ports", "vectors"],
        &["model", "target", "master", "driver"],
    )?;
    Ok(kind)
}

fn parse_ide(
    el: &XmlElement,
    family: MachineFamily,
    index: u32,
) -> Result<ControllerKind, DomainXmlError> {
    if family == MachineFamily::Q35 {
        return Err(DomainXmlError::unsupported_because(
            "controller type",
            "ide",
            "the q35 machine type has no IDE controller",
        ));
    }
    if index != 0 {
        return Err(DomainXmlError::unsupported_because(
            "ide controller",
            index.to_string(),
            "only the builtin IDE controller (index 0) exists",
        ));
    }
    plain(el, ControllerKind::Ide)
}

fn parse_pci(
    el: &XmlElement,
    family: MachineFamily,
    index: u32,
) -> Result<ControllerKind, DomainXmlError> {
    refuse_extras(el, &["ports", "vectors"], &["master", "driver"])?;
    let root = match family {
        MachineFamily::Q35 => PciModel::PcieRoot,
        MachineFamily::I440fx => PciModel::PciRoot,
    };
    let model = match named_attr(el, P, "model", PciModel::from_name)? {
        Some(m) => m,
        None if index == 0 => root,
        None => {
            return Err(DomainXmlError::structure(format!(
                "PCI controller with index {index} needs a model"
            )));
        }
    };
    check_pci_model(model, root, index)?;
    let opts = parse_pci_opts(el, model)?;
    Ok(ControllerKind::Pci { model, opts })
}

fn check_pci_model(model: PciModel, root: PciModel, index: u32) -> Result<(), DomainXmlError> {
    if (index == 0) != model.is_root() || (model.is_root() && model != root) {
        return Err(DomainXmlError::unsupported_because(
            "pci controller model",
            model.as_str(),
            format!(
                "index 0 is the machine's root bus ('{}'), only it",
                root.as_str()
            ),
        ));
    }
    let fits = match model {
        PciModel::PcieRootPort | PciModel::PcieToPciBridge | PciModel::DmiToPciBridge => {
            root == PciModel::PcieRoot
        }
        _ => true,
    };
    if !fits {
        return Err(DomainXmlError::unsupported_because(
            "pci controller model",
            model.as_str(),
            "it needs a PCI Express machine (q35)",
        ));
    }
    Ok(())
}

fn parse_pci_opts(el: &XmlElement, model: PciModel) -> Result<PciOpts, DomainXmlError> {
    let mut opts = PciOpts::default();
    if let Some(m) = el.child("model") {
        m.check_attrs("controller/model", &["name"])?;
        m.check_children("controller/model", &[])?;
        let name = m.req_attr("controller/model", "name")?;
        if !model.qemu_devices().contains(&name) {
            return Err(DomainXmlError::unsupported(
                format!("<controller/model name> of a {}", model.as_str()),
                name,
            ));
        }
        opts.model_name = Some(name.to_string());
    }
    if let Some(t) = el.child("target") {
        const T: &str = "controller/target";
        t.check_attrs(T, &["chassis", "port", "chassisNr", "hotplug"])?;
        t.check_children(T, &[])?;
        opts.chassis = uint_attr(t, T, "chassis")?;
        opts.port = uint_attr(t, T, "port")?;
        opts.chassis_nr = uint_attr(t, T, "chassisNr")?;
        opts.hotplug = on_off_attr(t, T, "hotplug")?;
        let port_like = model == PciModel::PcieRootPort;
        if !port_like && (opts.chassis.is_some() || opts.port.is_some() || opts.hotplug.is_some()) {
            return Err(DomainXmlError::unsupported_because(
                "<controller/target>",
                model.as_str(),
                "chassis, port and hotplug belong to a pcie-root-port",
            ));
        }
        if opts.chassis_nr.is_some() && model != PciModel::PciBridge {
            return Err(DomainXmlError::unsupported_because(
                "<controller/target chassisNr>",
                model.as_str(),
                "chassisNr belongs to a pci-bridge",
            ));
        }
        check_range("<controller/target chassis>", opts.chassis, 255)?;
        check_range("<controller/target port>", opts.port, 255)?;
        check_range("<controller/target chassisNr>", opts.chassis_nr, 255)?;
    }
    Ok(opts)
}

fn check_range(what: &str, v: Option<u32>, max: u32) -> Result<(), DomainXmlError> {
    match v {
        Some(n) if n > max => Err(DomainXmlError::invalid(
            what,
            n.to_string(),
            format!("must be 0..{max}"),
        )),
        _ => Ok(()),
    }
}

fn parse_usb(el: &XmlElement, family: MachineFamily) -> Result<ControllerKind, DomainXmlError> {
    refuse_extras(el, &["vectors"], &["model", "target", "driver"])?;
    // No model (or "default", which earlier versions accepted) is the
    // machine's default, as in libvirt.
    let model = match el.attr("model") {
        None | Some("default") => default_usb_model(family),
        Some(m) => named("usb controller model", m, UsbModel::from_name)?,
    };
    let ports = uint_attr(el, P, "ports")?;
    if ports.is_some() && !model.is_xhci() {
        return Err(DomainXmlError::unsupported_because(
            "<controller ports>",
            model.as_str(),
            "only xHCI controllers take a port count",
        ));
    }
    check_range("<controller ports>", ports, 15)?;
    let master_startport = match el.child("master") {
        Some(m) => {
            m.check_attrs("controller/master", &["startport"])?;
            m.check_children("controller/master", &[])?;
            if !model.is_companion() {
                return Err(DomainXmlError::unsupported_because(
                    "<controller/master>",
                    model.as_str(),
                    "only ich9-uhciN companions have a master",
                ));
            }
            uint_attr(m, "controller/master", "startport")?
        }
        None => None,
    };
    Ok(ControllerKind::Usb {
        model,
        ports,
        master_startport,
    })
}

/// The USB controller a machine gets when none is named.
pub(crate) fn default_usb_model(family: MachineFamily) -> UsbModel {
    match family {
        MachineFamily::Q35 => UsbModel::QemuXhci,
        MachineFamily::I440fx => UsbModel::Piix3Uhci,
    }
}

fn parse_driver(el: &XmlElement) -> Result<ControllerDriver, DomainXmlError> {
    let Some(d) = el.child("driver") else {
        return Ok(ControllerDriver::default());
    };
    const D: &str = "controller/driver";
    d.check_attrs(D, &["queues", "iothread"])?;
    d.check_children(D, &[])?;
    let driver = ControllerDriver {
        queues: uint_attr(d, D, "queues")?,
        iothread: uint_attr(d, D, "iothread")?,
    };
    if driver.queues == Some(0) || driver.iothread == Some(0) {
        return Err(DomainXmlError::invalid(
            "<controller/driver>",
            "0",
            "queues and iothread ids start at 1",
        ));
    }
    Ok(driver)
}

fn parse_scsi(el: &XmlElement) -> Result<ControllerKind, DomainXmlError> {
    refuse_extras(el, &["ports", "vectors"], &["model", "target", "master"])?;
    let model = named_attr(el, P, "model", ScsiModel::from_name)?.unwrap_or(ScsiModel::VirtioScsi);
    Ok(ControllerKind::Scsi {
        model,
        driver: parse_driver(el)?,
    })
}

fn parse_virtio_serial(el: &XmlElement) -> Result<ControllerKind, DomainXmlError> {
    refuse_extras(el, &["model"], &["model", "target", "master"])?;
    let ports = uint_attr(el, P, "ports")?;
    if ports.is_some_and(|p| p == 0 || p > 31) {
        return Err(DomainXmlError::invalid(
            "<controller ports>",
            ports.unwrap_or(0).to_string(),
            "a virtio-serial controller has 1..31 ports",
        ));
    }
    Ok(ControllerKind::VirtioSerial {
        ports,
        vectors: uint_attr(el, P, "vectors")?,
        driver: parse_driver(el)?,
    })
}

pub(crate) fn format_controller(w: &mut XmlWriter, c: &ControllerDef, alias: Option<String>) {
    let mut attrs = vec![
        ("type", c.ctype().as_str().to_string()),
        ("index", c.index.to_string()),
    ];
    match &c.kind {
        ControllerKind::Pci { model, .. } => attrs.push(("model", model.as_str().into())),
        ControllerKind::Usb { model, ports, .. } => {
            attrs.push(("model", model.as_str().into()));
            if let Some(p) = ports {
                attrs.push(("ports", p.to_string()));
            }
        }
        ControllerKind::Scsi { model, .. } => attrs.push(("model", model.as_str().into())),
        ControllerKind::VirtioSerial { ports, vectors, .. } => {
            if let Some(p) = ports {
                attrs.push(("ports", p.to_string()));
            }
            if let Some(v) = vectors {
                attrs.push(("vectors", v.to_string()));
            }
        }
        ControllerKind::Sata | ControllerKind::Ide => {}
    }
    if !has_body(c) && alias.is_none() && c.address.is_none() {
        w.empty("controller", &attrs);
        return;
    }
    w.open("controller", &attrs);
    format_body(w, c);
    super::format_alias(w, alias);
    if let Some(a) = &c.address {
        format_address(w, a);
    }
    w.close("controller");
}

fn has_body(c: &ControllerDef) -> bool {
    match &c.kind {
        ControllerKind::Pci { opts, .. } => opts != &PciOpts::default(),
        ControllerKind::Usb {
            master_startport, ..
        } => master_startport.is_some(),
        ControllerKind::Scsi { driver, .. } | ControllerKind::VirtioSerial { driver, .. } => {
            driver != &ControllerDriver::default()
        }
        ControllerKind::Sata | ControllerKind::Ide => false,
    }
}

/// Children before `<alias>`: PCI model name and target, USB master,
/// virtio driver.
fn format_body(w: &mut XmlWriter, c: &ControllerDef) {
    match &c.kind {
        ControllerKind::Pci { opts, .. } => format_pci_opts(w, opts),
        ControllerKind::Usb {
            master_startport: Some(s),
            ..
        } => w.empty("master", &[("startport", s.to_string())]),
        ControllerKind::Scsi { driver, .. } | ControllerKind::VirtioSerial { driver, .. } => {
            format_driver(w, driver)
        }
        _ => {}
    }
}

fn format_pci_opts(w: &mut XmlWriter, o: &PciOpts) {
    if let Some(n) = &o.model_name {
        w.empty("model", &[("name", n.clone())]);
    }
    let mut t = Vec::new();
    if let Some(c) = o.chassis_nr {
        t.push(("chassisNr", c.to_string()));
    }
    if let Some(c) = o.chassis {
        t.push(("chassis", c.to_string()));
    }
    if let Some(p) = o.port {
        t.push(("port", format!("0x{p:x}")));
    }
    if let Some(h) = o.hotplug {
        t.push(("hotplug", on_off(h)));
    }
    if !t.is_empty() {
        w.empty("target", &t);
    }
}

fn format_driver(w: &mut XmlWriter, d: &ControllerDriver) {
    let mut a = Vec::new();
    if let Some(q) = d.queues {
        a.push(("queues", q.to_string()));
    }
    if let Some(i) = d.iothread {
        a.push(("iothread", i.to_string()));
    }
    if !a.is_empty() {
        w.empty("driver", &a);
    }
}
