//! Device procedures (attach, detach, update) and live resources
//! (memory, disk size and write threshold): to the running guest
//! (`VIR_DOMAIN_AFFECT_LIVE`), the definition (`..._CONFIG`), or
//! whichever applies (`..._CURRENT`, no flag).

use qemu::Impact;
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainAttachDeviceArgs, DomainAttachDeviceFlagsArgs, DomainBlockResizeArgs,
    DomainDetachDeviceAliasArgs, DomainSetBlockThresholdArgs, DomainSetMemoryArgs,
    DomainSetMemoryFlagsArgs, DomainSetVcpusFlagsArgs,
};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::vir;

/// `virDomainModificationImpact` flags as the driver's [`Impact`].
fn impact(api: &str, flags: u32) -> Reply<Impact> {
    flags::check(api, flags, f::AFFECT_LIVE | f::AFFECT_CONFIG)?;
    Ok(Impact {
        live: flags & f::AFFECT_LIVE != 0,
        config: flags & f::AFFECT_CONFIG != 0,
    })
}

/// The flag-less calls act on the running guest, as libvirt's do.
const LIVE: Impact = Impact {
    live: true,
    config: false,
};

pub(crate) async fn attach(d: &Daemon, _: &CallContext, a: DomainAttachDeviceArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver
        .attach_device(&dom, &a.xml, LIVE)
        .await
        .map_err(vir)
}

pub(crate) async fn attach_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainAttachDeviceFlagsArgs,
) -> Reply<()> {
    let impact = impact("virDomainAttachDeviceFlags", a.flags)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .attach_device(&dom, &a.xml, impact)
        .await
        .map_err(vir)
}

pub(crate) async fn detach(d: &Daemon, _: &CallContext, a: DomainAttachDeviceArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver
        .detach_device(&dom, &a.xml, LIVE)
        .await
        .map_err(vir)
}

pub(crate) async fn detach_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainAttachDeviceFlagsArgs,
) -> Reply<()> {
    let impact = impact("virDomainDetachDeviceFlags", a.flags)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .detach_device(&dom, &a.xml, impact)
        .await
        .map_err(vir)
}

/// `virDomainUpdateDeviceFlags`: `VIR_DOMAIN_DEVICE_MODIFY_FORCE` is
/// accepted (a tray is always opened by force).
pub(crate) async fn update_flags(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainAttachDeviceFlagsArgs,
) -> Reply<()> {
    if names_interface(&a.xml) {
        return super::interfaces::update_link(d, ctx, a).await;
    }
    let api = "virDomainUpdateDeviceFlags";
    flags::check(
        api,
        a.flags,
        f::AFFECT_LIVE | f::AFFECT_CONFIG | f::DEVICE_MODIFY_FORCE,
    )?;
    let impact = impact(api, a.flags & !f::DEVICE_MODIFY_FORCE)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .update_device(&dom, &a.xml, impact)
        .await
        .map_err(vir)
}

/// Whether the device XML is an `<interface>` (its link state is what
/// an update may change); anything else, malformed XML included, goes to
/// the device path, which reports it.
fn names_interface(xml: &str) -> bool {
    virxml::parse_document(xml).is_ok_and(|el| el.local_name() == "interface")
}

pub(crate) async fn detach_alias(
    d: &Daemon,
    _: &CallContext,
    a: DomainDetachDeviceAliasArgs,
) -> Reply<()> {
    let impact = impact("virDomainDetachDeviceAlias", a.flags)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .detach_device_alias(&dom, &a.alias, impact)
        .await
        .map_err(vir)
}

pub(crate) async fn set_memory(d: &Daemon, _: &CallContext, a: DomainSetMemoryArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver
        .set_memory(&dom, a.memory, LIVE, false)
        .await
        .map_err(vir)
}

pub(crate) async fn set_memory_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainSetMemoryFlagsArgs,
) -> Reply<()> {
    let api = "virDomainSetMemoryFlags";
    flags::check(
        api,
        a.flags,
        f::AFFECT_LIVE | f::AFFECT_CONFIG | f::MEM_MAXIMUM,
    )?;
    let impact = impact(api, a.flags & !f::MEM_MAXIMUM)?;
    let dom = d.domain(&a.dom)?;
    let maximum = a.flags & f::MEM_MAXIMUM != 0;
    d.driver
        .set_memory(&dom, a.memory, impact, maximum)
        .await
        .map_err(vir)
}

pub(crate) async fn block_resize(
    d: &Daemon,
    _: &CallContext,
    a: DomainBlockResizeArgs,
) -> Reply<()> {
    flags::check("virDomainBlockResize", a.flags, f::BLOCK_RESIZE_BYTES)?;
    let bytes = if a.flags & f::BLOCK_RESIZE_BYTES != 0 {
        a.size
    } else {
        a.size
            .checked_mul(1024)
            .ok_or_else(|| crate::wire::invalid_arg(format!("size {} KiB is too large", a.size)))?
    };
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_resize(&dom, &a.disk, bytes)
        .await
        .map_err(vir)
}

pub(crate) async fn set_block_threshold(
    d: &Daemon,
    _: &CallContext,
    a: DomainSetBlockThresholdArgs,
) -> Reply<()> {
    flags::check("virDomainSetBlockThreshold", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .set_block_threshold(&dom, &a.dev, a.threshold)
        .await
        .map_err(vir)
}

pub(crate) async fn set_vcpus_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainSetVcpusFlagsArgs,
) -> Reply<()> {
    let api = "virDomainSetVcpusFlags";
    flags::check(
        api,
        a.flags,
        f::VCPU_LIVE | f::VCPU_CONFIG | f::VCPU_MAXIMUM,
    )?;
    let impact = impact(api, a.flags & !f::VCPU_MAXIMUM)?;
    let dom = d.domain(&a.dom)?;
    let maximum = a.flags & f::VCPU_MAXIMUM != 0;
    d.driver
        .set_vcpus(&dom, a.nvcpus, impact, maximum)
        .await
        .map_err(vir)
}
