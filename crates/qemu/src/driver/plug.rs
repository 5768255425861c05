//! Devices plugged and unplugged (attach, detach, update, live and in the
//! definition), and live resources (memory, disk size and threshold).

use std::sync::Arc;

use super::Driver;
use crate::Result;
use crate::hotplug::{self, Impact, Which};
use crate::object::Domain;

impl Driver {
    /// `virsh attach-device`: plugs the device `xml` describes into the
    /// running guest and/or adds it to the definition.
    pub async fn attach_device(&self, dom: &Arc<Domain>, xml: &str, impact: Impact) -> Result<()> {
        hotplug::attach(&self.s, dom, xml, impact).await
    }

    /// `virsh detach-device`: unplugs the device `xml` names (a disk by
    /// its target). Live, it returns once the guest released the device
    /// or the unplug deadline passed with the removal still pending.
    pub async fn detach_device(&self, dom: &Arc<Domain>, xml: &str, impact: Impact) -> Result<()> {
        hotplug::detach(&self.s, dom, Which::Xml(xml), impact).await
    }

    /// `virsh update-device` / `change-media`: a CD-ROM's medium
    /// inserted, replaced or ejected (no source).
    pub async fn update_device(&self, dom: &Arc<Domain>, xml: &str, impact: Impact) -> Result<()> {
        hotplug::update(&self.s, dom, xml, impact).await
    }

    /// `virsh setmem` (KiB; through the balloon when live) and, with
    /// `maximum`, `virsh setmaxmem --config`.
    pub async fn set_memory(
        &self,
        dom: &Arc<Domain>,
        kib: u64,
        impact: Impact,
        maximum: bool,
    ) -> Result<()> {
        crate::live::set_memory(&self.s, dom, kib, impact, maximum).await
    }

    /// `virsh setvcpus --config [--maximum]`: the vCPUs of the definition.
    pub async fn set_vcpus(
        &self,
        dom: &Arc<Domain>,
        n: u32,
        impact: Impact,
        maximum: bool,
    ) -> Result<()> {
        crate::live::set_vcpus(&self.s, dom, n, impact, maximum).await
    }

    /// `virsh blockresize`: the running guest's disk (target or source
    /// path) becomes `bytes` long.
    pub async fn block_resize(&self, dom: &Arc<Domain>, disk: &str, bytes: u64) -> Result<()> {
        crate::live::block_resize(&self.s, dom, disk, bytes).await
    }

    /// `virsh domblkthreshold`: one BLOCK_THRESHOLD event when the guest
    /// writes past `threshold` bytes of `disk` (0 clears it).
    pub async fn set_block_threshold(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        threshold: u64,
    ) -> Result<()> {
        crate::live::set_block_threshold(&self.s, dom, disk, threshold).await
    }

    /// `virsh vcpupin` / `virsh emulatorpin` with a CPU list: pins
    /// `target` to the host CPUs of `set`.
    pub async fn pin(
        &self,
        dom: &Arc<Domain>,
        target: hotplug::PinTarget,
        set: domain::CpuSet,
        impact: Impact,
    ) -> Result<()> {
        hotplug::pin(&self.s, dom, target, set, impact).await
    }

    /// `virsh vcpupin` / `virsh emulatorpin` without one: the pins of the
    /// live definition (`config`: the persistent one).
    pub fn pin_info(&self, dom: &Arc<Domain>, config: bool) -> Result<hotplug::PinInfo> {
        hotplug::pin_info(dom, config)
    }

    /// `virsh detach-device-alias`: as [`Driver::detach_device`], the
    /// device named by its alias (`virtio-disk1`).
    pub async fn detach_device_alias(
        &self,
        dom: &Arc<Domain>,
        alias: &str,
        impact: Impact,
    ) -> Result<()> {
        hotplug::detach(&self.s, dom, Which::Alias(alias), impact).await
    }
}
