//! PCI address assignment, following libvirt's rules.
//!
//! A bus is a PCI controller (its index is the bus number); its model says
//! what plugs into it (`Bus::new`). Devices say what they need
//! (`dev::conn`). Assignment runs twice, as in libvirt: a first pass on a
//! copy of the devices may add buses (a root port per PCI Express device
//! on q35, a bridge when i440fx's 31 slots are full) and learns which
//! controllers the topology needs; those are added to the definition, and
//! the second pass places controllers first, then the devices, on buses
//! that now exist.

use std::collections::HashMap;

use super::dev::{Dev, conn::*, pci_order};
use crate::def::MachineFamily;
use crate::devices::Devices;
use crate::devices::address::{Address, PCI_BUS_LAST, PCI_FUNCTION_LAST, PciAddress};
use crate::devices::controller::{
    ControllerDef, ControllerKind, ControllerType, PciModel, PciOpts, UsbModel,
};
use crate::devices::sound::SoundModel;
use crate::error::DomainXmlError;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Bit per function in use.
    functions: u8,
    /// Root ports may share this slot as functions.
    aggregate: bool,
}

#[derive(Debug, Clone)]
struct Bus {
    model: PciModel,
    /// What may plug in (`conn`), plus AUTOASSIGN if devices may be placed
    /// here automatically.
    flags: u16,
    min_slot: u32,
    max_slot: u32,
    slots: [Slot; 32],
}

impl Bus {
    fn new(model: PciModel) -> Bus {
        let (flags, min_slot, max_slot) = match model {
            PciModel::PciRoot | PciModel::PciBridge | PciModel::PcieToPciBridge => {
                (AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE, 1, 31)
            }
            PciModel::PcieRoot => (PCIE_DEVICE | ROOT_PORT | DMI_TO_PCI_BRIDGE, 1, 31),
            PciModel::DmiToPciBridge => (PCI_DEVICE | PCI_BRIDGE, 0, 31),
            PciModel::PcieRootPort => (AUTOASSIGN | PCIE_DEVICE | PCIE_TO_PCI_BRIDGE, 0, 0),
        };
        Bus {
            model,
            flags,
            min_slot,
            max_slot,
            slots: [Slot::default(); 32],
        }
    }

    fn fully_reserved(&self) -> bool {
        (self.min_slot..=self.max_slot).all(|s| self.slots[s as usize].functions != 0)
    }
}

/// Whether a device with `dev` flags may sit on a bus with `bus` flags.
/// Addresses from the user's XML may put a PCI device in a PCI Express
/// slot or the other way round, as libvirt allows; automatic placement
/// only uses buses that accept it.
fn compatible(bus: u16, dev: u16, from_config: bool) -> bool {
    let (mut bus, mut dev) = (bus, dev);
    if from_config {
        if bus & ENDPOINT != 0 {
            bus |= ENDPOINT;
        }
        if dev & PCI_BRIDGE != 0 {
            dev |= PCI_DEVICE;
        }
    } else if dev & AUTOASSIGN != 0 && bus & AUTOASSIGN == 0 {
        return false;
    }
    dev & bus & TYPES != 0
}

fn what_it_needs(flags: u16) -> &'static str {
    match flags & TYPES {
        f if f & PCI_DEVICE != 0 => "a standard PCI device",
        f if f & PCIE_DEVICE != 0 => "a PCI Express device",
        f if f & ROOT_PORT != 0 => "a pcie-root-port",
        f if f & PCIE_TO_PCI_BRIDGE != 0 => "a pcie-to-pci-bridge",
        f if f & DMI_TO_PCI_BRIDGE != 0 => "a dmi-to-pci-bridge",
        _ => "a pci-bridge",
    }
}

struct AddrSet {
    buses: Vec<Bus>,
    /// First pass: add buses when a device finds no slot.
    grow: bool,
    /// Who holds each reserved function, to name both sides of a conflict.
    owners: HashMap<(u32, u32, u32), String>,
}

impl AddrSet {
    /// Buses from the definition's PCI controllers; an index without one
    /// gets the machine's default (the controller is added later).
    fn new(d: &Devices, family: MachineFamily, grow: bool) -> Result<Self, DomainXmlError> {
        let max = d
            .controllers
            .iter()
            .filter(|c| c.ctype() == ControllerType::Pci)
            .map(|c| c.index)
            .max()
            .unwrap_or(0);
        if max > PCI_BUS_LAST {
            return Err(DomainXmlError::invalid(
                "<controller type='pci' index>",
                max.to_string(),
                "PCI controller indexes go up to 255",
            ));
        }
        let buses = (0..=max)
            .map(|i| {
                match d
                    .controller(ControllerType::Pci, i)
                    .and_then(ControllerDef::pci_model)
                {
                    Some(m) => Bus::new(m),
                    None if i == 0 => Bus::new(root_model(family)),
                    None => Bus::new(default_bus_model(family)),
                }
            })
            .collect();
        Ok(AddrSet {
            buses,
            grow,
            owners: HashMap::new(),
        })
    }

    fn validate(
        &self,
        a: &PciAddress,
        flags: u16,
        from_config: bool,
    ) -> Result<(), DomainXmlError> {
        let bad =
            |why: String| DomainXmlError::structure(format!("PCI address {}: {why}", a.display()));
        let bus = self
            .buses
            .get(a.bus as usize)
            .ok_or_else(|| bad(format!("only buses up to {} exist", self.buses.len() - 1)))?;
        if !compatible(bus.flags, flags, from_config) {
            return Err(bad(format!(
                "the {} with index='{}' cannot take it; it needs a controller that accepts {}",
                bus.model.as_str(),
                a.bus,
                what_it_needs(flags)
            )));
        }
        if a.slot < bus.min_slot || a.slot > bus.max_slot {
            return Err(bad(format!(
                "a {} has slots {}..{}",
                bus.model.as_str(),
                bus.min_slot,
                bus.max_slot
            )));
        }
        if a.function > PCI_FUNCTION_LAST {
            return Err(bad("function must be 0..7".into()));
        }
        Ok(())
    }

    /// Marks `a` used by `owner`, growing the bus list first in the first
    /// pass. Two owners of one address is an error naming both.
    fn reserve(
        &mut self,
        a: &PciAddress,
        flags: u16,
        from_config: bool,
        owner: &str,
    ) -> Result<(), DomainXmlError> {
        if self.grow && a.bus as usize >= self.buses.len() {
            let mut grown = *a;
            self.grow_to(&mut grown, flags)?;
        }
        self.validate(a, flags, from_config)?;
        let key = (a.bus, a.slot, a.function);
        if let Some(other) = self.owners.get(&key) {
            return Err(DomainXmlError::structure(format!(
                "PCI address {} is used by both {other} and {owner}",
                a.display()
            )));
        }
        let slot = &mut self.buses[a.bus as usize].slots[a.slot as usize];
        if slot.functions == 0 && flags & AGGREGATE != 0 {
            slot.aggregate = true;
        }
        slot.functions |= 1 << a.function;
        self.owners.insert(key, owner.to_string());
        Ok(())
    }

    /// The first free slot (or free function of an aggregate slot) on the
    /// first bus that takes the device; in the first pass, a new bus when
    /// none has room.
    fn next_addr(
        &mut self,
        flags: u16,
        function: Option<u32>,
    ) -> Result<PciAddress, DomainXmlError> {
        for (b, bus) in self.buses.iter().enumerate() {
            if !compatible(bus.flags, flags, false) {
                continue;
            }
            if let Some((slot, f)) = free_on_bus(bus, flags, function) {
                return Ok(PciAddress::new(b as u32, slot, f));
            }
        }
        if !self.grow {
            return Err(DomainXmlError::unsupported_because(
                "PCI topology",
                what_it_needs(flags),
                "no more PCI slots are available",
            ));
        }
        let mut a = PciAddress::new(self.buses.len() as u32, 0, function.unwrap_or(0));
        self.grow_to(&mut a, flags)?;
        a.slot = self.buses[a.bus as usize].min_slot;
        Ok(a)
    }

    fn reserve_next(
        &mut self,
        flags: u16,
        function: Option<u32>,
        owner: &str,
    ) -> Result<PciAddress, DomainXmlError> {
        let a = self.next_addr(flags, function)?;
        self.reserve(&a, flags, false, owner)?;
        Ok(a)
    }

    /// Adds buses up to `a.bus` for a device with `flags`: root ports for
    /// PCI Express devices; for conventional PCI devices a pci-bridge, or,
    /// on a PCI Express machine without a place for one, a root port with a
    /// pcie-to-pci-bridge (which then takes the device).
    fn grow_to(&mut self, a: &mut PciAddress, flags: u16) -> Result<(), DomainXmlError> {
        let mut add = (a.bus as usize + 1).saturating_sub(self.buses.len());
        if add == 0 {
            return Ok(());
        }
        let (model, need_bridge) = if flags & PCI_DEVICE != 0 {
            let can_bridge = self.buses.iter().any(|b| b.flags & PCI_BRIDGE != 0);
            if !can_bridge && add == 1 {
                add += 1;
                a.bus += 1;
            }
            (PciModel::PciBridge, !can_bridge)
        } else if flags & PCIE_DEVICE != 0 {
            (PciModel::PcieRootPort, false)
        } else {
            return Err(DomainXmlError::unsupported_because(
                "PCI topology",
                what_it_needs(flags),
                "no slot is free for it and none can be added automatically",
            ));
        };
        if self.buses.len() + add > PCI_BUS_LAST as usize + 1 {
            return Err(DomainXmlError::unsupported_because(
                "PCI topology",
                (self.buses.len() + add).to_string(),
                "a guest has at most 256 PCI buses",
            ));
        }
        let mut left = add;
        if need_bridge {
            let mut port = Bus::new(PciModel::PcieRootPort);
            port.flags = PCIE_TO_PCI_BRIDGE;
            self.buses.push(port);
            self.buses.push(Bus::new(PciModel::PcieToPciBridge));
            left -= 2;
        }
        for _ in 0..left {
            self.buses.push(Bus::new(model));
        }
        Ok(())
    }
}

/// A free place on `bus`: an empty slot, or (for aggregating devices) a
/// free function of a slot other root ports already share.
fn free_on_bus(bus: &Bus, flags: u16, function: Option<u32>) -> Option<(u32, u32)> {
    let want = function.unwrap_or(0);
    for s in bus.min_slot..=bus.max_slot {
        let slot = bus.slots[s as usize];
        if slot.functions == 0 {
            return Some((s, want));
        }
        if flags & AGGREGATE == 0 || !slot.aggregate {
            continue;
        }
        if slot.functions & (1 << want) == 0 {
            return Some((s, want));
        }
        if function.is_none()
            && let Some(f) = (0..8).find(|f| slot.functions & (1 << f) == 0)
        {
            return Some((s, f));
        }
    }
    None
}

fn root_model(family: MachineFamily) -> PciModel {
    match family {
        MachineFamily::Q35 => PciModel::PcieRoot,
        MachineFamily::I440fx => PciModel::PciRoot,
    }
}

fn default_bus_model(family: MachineFamily) -> PciModel {
    match family {
        MachineFamily::Q35 => PciModel::PcieRootPort,
        MachineFamily::I440fx => PciModel::PciBridge,
    }
}

pub(super) fn assign(d: &mut Devices, family: MachineFamily) -> Result<(), DomainXmlError> {
    let user_controllers = d
        .controllers
        .iter()
        .any(|c| c.pci_model().is_some_and(|m| !m.is_root()));
    // First pass, on a copy: which buses does the topology need?
    let mut scratch = d.clone();
    let mut set = AddrSet::new(&scratch, family, true)?;
    let initial = set.buses.len();
    reserve_existing(&mut set, &scratch, family)?;
    chipset(&mut set, &mut scratch, family)?;
    if family == MachineFamily::I440fx && !set.buses.iter().all(Bus::fully_reserved) {
        // A slot for a bridge a later device might need.
        set.reserve_next(PCI_DEVICE | AUTOASSIGN, None, "a future pci-bridge")?;
    }
    assign_devices(&mut set, &mut scratch, family)?;
    if family == MachineFamily::Q35 && !user_controllers && set.buses.len() > initial {
        // One more root port, left free for hot-plug.
        set.reserve_next(PCIE_DEVICE | AUTOASSIGN, None, "hot-plug")?;
    }
    add_bus_controllers(&mut set, &mut scratch, family)?;
    for c in scratch
        .controllers
        .iter()
        .filter(|c| c.ctype() == ControllerType::Pci)
    {
        if d.controller(ControllerType::Pci, c.index).is_none() {
            let kind = c.kind.clone();
            d.controllers.push(ControllerDef::new(kind, c.index));
        }
    }
    sort_pci_controllers(d);
    // Second pass: the real addresses, controllers first.
    let mut set = AddrSet::new(d, family, false)?;
    reserve_existing(&mut set, d, family)?;
    chipset(&mut set, d, family)?;
    assign_devices(&mut set, d, family)?;
    set_multifunction(d);
    fill_controller_opts(d)
}

/// Reserves the addresses the definition already has.
fn reserve_existing(
    set: &mut AddrSet,
    d: &Devices,
    family: MachineFamily,
) -> Result<(), DomainXmlError> {
    for dev in pci_order(d).into_iter().chain(other_devs(d)) {
        let Some(Address::Pci(a)) = dev.address(d) else {
            continue;
        };
        if piix3_builtin(d, dev, family) {
            continue;
        }
        let flags = match dev.pci_flags(d, family) {
            0 => PCI_DEVICE,
            f => f,
        };
        set.reserve(&a, flags, true, &dev.name(d))?;
    }
    Ok(())
}

/// Devices that never have PCI addresses (to catch one given anyway).
fn other_devs(d: &Devices) -> impl Iterator<Item = Dev> {
    (0..d.redirdevs.len())
        .map(Dev::Redirdev)
        .chain((0..d.channels.len()).map(Dev::Channel))
}

/// The i440fx's integrated IDE and USB controllers, which the chipset
/// step places at 00:01.1 and 00:01.2.
fn piix3_builtin(d: &Devices, dev: Dev, family: MachineFamily) -> bool {
    let Dev::Controller(i) = dev else {
        return false;
    };
    let c = &d.controllers[i];
    family == MachineFamily::I440fx
        && c.index == 0
        && matches!(
            c.kind,
            ControllerKind::Ide
                | ControllerKind::Usb {
                    model: UsbModel::Piix3Uhci,
                    ..
                }
        )
}

/// What the machine itself occupies, and the fixed places of its
/// integrated devices.
fn chipset(
    set: &mut AddrSet,
    d: &mut Devices,
    family: MachineFamily,
) -> Result<(), DomainXmlError> {
    match family {
        MachineFamily::Q35 => q35_chipset(set, d)?,
        MachineFamily::I440fx => piix3_chipset(set, d)?,
    }
    primary_video(set, d, family)
}

fn fixed(
    set: &mut AddrSet,
    d: &mut Devices,
    dev: Dev,
    at: PciAddress,
    flags: u16,
) -> Result<(), DomainXmlError> {
    match dev.address(d) {
        Some(Address::Pci(a)) if a.same_function(&at) => {}
        Some(_) => {
            return Err(DomainXmlError::structure(format!(
                "{} must be at PCI address {}",
                dev.name(d),
                at.display()
            )));
        }
        None => dev.set_address(d, Address::Pci(at)),
    }
    if !set.owners.contains_key(&(at.bus, at.slot, at.function)) {
        set.reserve(&at, flags, true, &dev.name(d))?;
    }
    Ok(())
}

fn controller_index(d: &Devices, pred: impl Fn(&ControllerDef) -> bool) -> Option<usize> {
    d.controllers.iter().position(pred)
}

fn piix3_chipset(set: &mut AddrSet, d: &mut Devices) -> Result<(), DomainXmlError> {
    let flags = PCI_DEVICE | AUTOASSIGN;
    if let Some(i) = controller_index(d, |c| c.kind == ControllerKind::Ide && c.index == 0) {
        fixed(set, d, Dev::Controller(i), PciAddress::new(0, 1, 1), flags)?;
    }
    let piix3_usb = |c: &ControllerDef| c.index == 0 && c.usb_model() == Some(UsbModel::Piix3Uhci);
    if let Some(i) = controller_index(d, piix3_usb) {
        fixed(set, d, Dev::Controller(i), PciAddress::new(0, 1, 2), flags)?;
    }
    set.reserve(
        &PciAddress::new(0, 1, 0),
        flags,
        true,
        "the PIIX3 ISA bridge",
    )?;
    set.reserve(
        &PciAddress::new(0, 1, 3),
        flags,
        true,
        "the PIIX4 power management",
    )?;
    Ok(())
}

fn q35_chipset(set: &mut AddrSet, d: &mut Devices) -> Result<(), DomainXmlError> {
    let flags = PCIE_DEVICE;
    if let Some(i) = controller_index(d, |c| c.kind == ControllerKind::Sata && c.index == 0) {
        fixed(
            set,
            d,
            Dev::Controller(i),
            PciAddress::new(0, 0x1f, 2),
            flags,
        )?;
    }
    // The first UHCI companion sits where real ICH9 has it, if free.
    for i in 0..d.controllers.len() {
        let c = &d.controllers[i];
        if c.usb_model() == Some(UsbModel::Ich9Uhci1)
            && c.address.is_none()
            && let Some(slot) = [0x1d, 0x1a].into_iter().find(|s| slot_free(set, 0, *s))
        {
            let mut a = PciAddress::new(0, slot, 0);
            a.multifunction = Some(true);
            set.reserve(&a, flags, true, &Dev::Controller(i).name(d))?;
            Dev::Controller(i).set_address(d, Address::Pci(a));
        }
    }
    if let Some(i) = controller_index(d, |c| {
        c.pci_model() == Some(PciModel::DmiToPciBridge) && c.address.is_none()
    }) && slot_free(set, 0, 0x1e)
    {
        let a = PciAddress::new(0, 0x1e, 0);
        set.reserve(&a, flags, true, &Dev::Controller(i).name(d))?;
        Dev::Controller(i).set_address(d, Address::Pci(a));
    }
    let mut isa = PciAddress::new(0, 0x1f, 0);
    isa.multifunction = Some(true);
    set.reserve(&isa, flags, true, "the ICH9 LPC/ISA bridge")?;
    set.reserve(&PciAddress::new(0, 0x1f, 3), flags, true, "the ICH9 SMBus")?;
    if slot_free(set, 0, 0x1b)
        && let Some(i) = d
            .sounds
            .iter()
            .position(|s| s.model == SoundModel::Ich9 && s.address.is_none())
    {
        let a = PciAddress::new(0, 0x1b, 0);
        set.reserve(&a, flags, true, &Dev::Sound(i).name(d))?;
        Dev::Sound(i).set_address(d, Address::Pci(a));
    }
    Ok(())
}

fn slot_free(set: &AddrSet, bus: u32, slot: u32) -> bool {
    set.buses
        .get(bus as usize)
        .is_some_and(|b| b.slots[slot as usize].functions == 0)
}

/// QEMU puts the first display adapter in the first free slot after the
/// integrated devices: slot 1 on q35, slot 2 on i440fx.
fn primary_video(
    set: &mut AddrSet,
    d: &mut Devices,
    family: MachineFamily,
) -> Result<(), DomainXmlError> {
    let Some(v) = d.video.first() else {
        return Ok(());
    };
    if !v.model.is_pci() || v.address.is_some() {
        return Ok(());
    }
    let (slot, flags) = match family {
        MachineFamily::Q35 => (1, PCIE_DEVICE),
        MachineFamily::I440fx => (2, PCI_DEVICE | AUTOASSIGN),
    };
    let name = Dev::Video(0).name(d);
    let a = if slot_free(set, 0, slot) {
        let a = PciAddress::new(0, slot, 0);
        set.reserve(&a, flags, true, &name)?;
        a
    } else {
        let f = Dev::Video(0).pci_flags(d, family);
        set.reserve_next(f, None, &name)?
    };
    Dev::Video(0).set_address(d, Address::Pci(a));
    Ok(())
}

/// Places every device still without an address, in libvirt's order.
fn assign_devices(
    set: &mut AddrSet,
    d: &mut Devices,
    family: MachineFamily,
) -> Result<(), DomainXmlError> {
    for dev in pci_order(d) {
        let flags = dev.pci_flags(d, family);
        if flags == 0 || dev.address(d).is_some() {
            continue;
        }
        if let Dev::Controller(i) = dev
            && let Some(m) = d.controllers[i].usb_model()
            && ehci_function(m).is_some()
        {
            assign_usb2(set, d, i, flags)?;
            continue;
        }
        let a = set.reserve_next(flags, None, &dev.name(d))?;
        dev.set_address(d, Address::Pci(a));
    }
    Ok(())
}

/// The function of an ICH9 EHCI controller or companion in its shared
/// slot, and whether it carries `multifunction='on'`.
fn ehci_function(m: UsbModel) -> Option<(u32, Option<bool>)> {
    match m {
        UsbModel::Ich9Ehci1 => Some((7, None)),
        UsbModel::Ich9Uhci1 => Some((0, Some(true))),
        UsbModel::Ich9Uhci2 => Some((1, None)),
        UsbModel::Ich9Uhci3 => Some((2, None)),
        _ => None,
    }
}

/// An EHCI controller and its UHCI companions share one slot.
fn assign_usb2(
    set: &mut AddrSet,
    d: &mut Devices,
    i: usize,
    flags: u16,
) -> Result<(), DomainXmlError> {
    let c = &d.controllers[i];
    let Some((function, multi)) = c.usb_model().and_then(ehci_function) else {
        return Ok(());
    };
    let sibling = d.controllers.iter().find_map(|o| {
        let shares = o.index == c.index && o.usb_model().and_then(ehci_function).is_some();
        match o.address {
            Some(Address::Pci(a)) if shares => Some(a),
            _ => None,
        }
    });
    let name = Dev::Controller(i).name(d);
    let mut a = match sibling {
        Some(s) => {
            // Placed next to its sibling as if written in the XML (libvirt
            // does the same), whatever the bus accepts automatically.
            let a = PciAddress::new(s.bus, s.slot, function);
            set.reserve(&a, flags, true, &name)?;
            a
        }
        None => set.reserve_next(flags, Some(function), &name)?,
    };
    a.multifunction = multi;
    Dev::Controller(i).set_address(d, Address::Pci(a));
    Ok(())
}

/// Adds a controller for every bus the first pass created, and finds it a
/// place (which may need one more bus).
fn add_bus_controllers(
    set: &mut AddrSet,
    d: &mut Devices,
    family: MachineFamily,
) -> Result<(), DomainXmlError> {
    let mut i = 1;
    while i < set.buses.len() {
        let index = i as u32;
        if d.controller(ControllerType::Pci, index).is_none() {
            let kind = ControllerKind::Pci {
                model: set.buses[i].model,
                opts: PciOpts::default(),
            };
            d.controllers.push(ControllerDef::new(kind, index));
            let dev = Dev::Controller(d.controllers.len() - 1);
            let a = set.reserve_next(dev.pci_flags(d, family), None, &dev.name(d))?;
            dev.set_address(d, Address::Pci(a));
        }
        i += 1;
    }
    Ok(())
}

/// PCI controllers in index order, where the first of them was (QEMU
/// needs a bus created before what plugs into it).
fn sort_pci_controllers(d: &mut Devices) {
    let is_pci = |c: &ControllerDef| c.ctype() == ControllerType::Pci;
    let Some(first) = d.controllers.iter().position(is_pci) else {
        return;
    };
    let (mut pci, mut rest): (Vec<_>, Vec<_>) = d.controllers.drain(..).partition(is_pci);
    pci.sort_by_key(|c| c.index);
    // Everything before the first PCI controller was something else.
    let tail = rest.split_off(first);
    d.controllers = rest.into_iter().chain(pci).chain(tail).collect();
}

/// `multifunction='on'` on function 0 of every slot with other functions
/// in use (unless the user wrote `off`).
fn set_multifunction(d: &mut Devices) {
    let mut all = Vec::new();
    for dev in pci_order(d) {
        if let Some(Address::Pci(a)) = dev.address(d) {
            all.push((dev, a));
        }
    }
    for (dev, a) in &all {
        let shared = all
            .iter()
            .any(|(_, o)| o.bus == a.bus && o.slot == a.slot && o.function != 0);
        if a.function == 0 && shared && a.multifunction.is_none() {
            let mut m = *a;
            m.multifunction = Some(true);
            dev.set_address(d, Address::Pci(m));
        }
    }
}

/// QEMU device names, chassis and port numbers of PCI controllers, as
/// libvirt fills them in; and a bridge's index must exceed its bus.
fn fill_controller_opts(d: &mut Devices) -> Result<(), DomainXmlError> {
    for c in &mut d.controllers {
        let addr = c.address.and_then(|a| a.pci().copied());
        let index = c.index;
        let ControllerKind::Pci { model, opts } = &mut c.kind else {
            continue;
        };
        if opts.model_name.is_none() {
            opts.model_name = model.qemu_devices().first().map(|s| s.to_string());
        }
        match model {
            PciModel::PcieRootPort => {
                opts.chassis = opts.chassis.or(Some(index));
                if opts.port.is_none() {
                    opts.port = addr.map(|a| (a.slot << 3) + a.function);
                }
            }
            PciModel::PciBridge => opts.chassis_nr = opts.chassis_nr.or(Some(index)),
            _ => {}
        }
        if let Some(a) = addr
            && !model.is_root()
            && index <= a.bus
        {
            return Err(DomainXmlError::unsupported_because(
                "PCI controller index",
                index.to_string(),
                format!(
                    "it is plugged into bus {}; a controller's index must be larger",
                    a.bus
                ),
            ));
        }
    }
    Ok(())
}
