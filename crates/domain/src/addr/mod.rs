//! Address assignment: every device that needs an address gets one when the
//! definition is parsed, and keeps it (the addresses are part of the
//! persistent definition), so the guest sees the same hardware at every
//! start and a redefinition of the same XML changes nothing.
//!
//! PCI follows libvirt's rules ([`pci`]): integrated chipset devices at
//! their fixed slots, the primary video first, then devices in libvirt's
//! order; on q35 each PCI Express device gets its own `pcie-root-port`,
//! added as needed, and a guest whose PCI controllers were all left to us
//! gets one more, free, for hot-plug. USB and virtio-serial devices get the
//! first free port of their bus ([`ports`]). Addresses a client gives are
//! honoured; two devices at one address is an error naming both.

mod dev;
mod pci;
mod ports;

use crate::def::MachineFamily;
use crate::devices::Devices;
use crate::error::DomainXmlError;

/// Assigns every missing address of `d` (adding the PCI controllers the
/// topology needs) and checks that no two devices share one.
pub(crate) fn assign(d: &mut Devices, family: MachineFamily) -> Result<(), DomainXmlError> {
    pci::assign(d, family)?;
    ports::assign_usb(d)?;
    ports::assign_virtio_serial(d)?;
    Ok(())
}
