//! Storage pool and volume procedures. Lists, lookups, info and XML read
//! the storage driver's snapshot (no job, never queued); everything that
//! changes a pool or a volume is a job on its pool in the driver.

use std::sync::Arc;

use rpc::CallContext;
use rpc::protocol::remote::{
    CallbackIdArgs, ConnectListAllStoragePoolsArgs, ConnectListAllStoragePoolsRet,
    ConnectStoragePoolEventRegisterAnyArgs, FlagsArgs, IntRet, MaxNamesArgs, NameArgs, NamesRet,
    NonnullStoragePool, NonnullStorageVol, NumRet, StoragePoolArgs, StoragePoolFlagsArgs,
    StoragePoolGetInfoRet, StoragePoolListAllVolumesArgs, StoragePoolListAllVolumesRet,
    StoragePoolListVolumesArgs, StoragePoolRet, StoragePoolSetAutostartArgs, StorageVolArgs,
    StorageVolCreateXmlArgs, StorageVolCreateXmlFromArgs, StorageVolFlagsArgs,
    StorageVolGetInfoRet, StorageVolLookupByNameArgs, StorageVolResizeArgs, StorageVolRet,
    StorageVolWipePatternArgs, UuidArgs, XmlFlagsArgs, XmlRet,
};
use storage::{
    BuildMode, CreateOptions, Pool, PoolFilter, PoolSummary, ResizeOptions, Volume, WipeAlgorithm,
};
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, storage as f};
use crate::relay::{Object, Style};
use crate::wire::{invalid_arg, vir};

// ---- names on the wire ----

fn wire_pool(name: &str, uuid: uuid::Uuid) -> NonnullStoragePool {
    NonnullStoragePool {
        name: name.to_owned(),
        uuid: *uuid.as_bytes(),
    }
}

fn pool_ret(p: &Arc<Pool>) -> StoragePoolRet {
    StoragePoolRet {
        pool: wire_pool(p.name(), p.uuid()),
    }
}

fn wire_vol(pool: &str, v: &Volume) -> NonnullStorageVol {
    NonnullStorageVol {
        pool: pool.to_owned(),
        name: v.name.clone(),
        key: v.key(),
    }
}

fn vol_ret(pool: &str, v: &Volume) -> StorageVolRet {
    StorageVolRet {
        vol: wire_vol(pool, v),
    }
}

impl Daemon {
    /// The pool a client names, by UUID as libvirt looks it up.
    fn pool(&self, p: &NonnullStoragePool) -> Result<Arc<Pool>, VirError> {
        let uuid = uuid::Uuid::from_bytes(p.uuid);
        self.storage.lookup_by_uuid(&uuid).map_err(|e| {
            let mut err = vir(e);
            err.message = format!(
                "Storage pool not found: no storage pool with matching uuid '{uuid}' ({})",
                p.name
            );
            err
        })
    }

    /// The volume a client names (by its pool's name and its own).
    pub(crate) fn volume(
        &self,
        v: &NonnullStorageVol,
    ) -> Result<(Arc<Pool>, Arc<Volume>), VirError> {
        let pool = self.storage.lookup_by_name(&v.pool).map_err(vir)?;
        let vol = self.storage.lookup_volume(&pool, &v.name).map_err(vir)?;
        Ok((pool, vol))
    }
}

// ---- pool lists and lookups ----

pub(crate) async fn list_all_pools(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListAllStoragePoolsArgs,
) -> Reply<ConnectListAllStoragePoolsRet> {
    let all = f::CONNECT_LIST_STORAGE_POOLS_INACTIVE
        | f::CONNECT_LIST_STORAGE_POOLS_ACTIVE
        | f::CONNECT_LIST_STORAGE_POOLS_PERSISTENT
        | f::CONNECT_LIST_STORAGE_POOLS_TRANSIENT
        | f::CONNECT_LIST_STORAGE_POOLS_AUTOSTART
        | f::CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART
        | f::CONNECT_LIST_STORAGE_POOLS_DIR
        | f::CONNECT_LIST_STORAGE_POOLS_OTHER_TYPES;
    flags::check("virConnectListAllStoragePools", a.flags, all)?;
    let pools: Vec<_> = d
        .storage
        .list(PoolFilter::All)
        .into_iter()
        .filter(|p| pool_matches(p, a.flags))
        .collect();
    let ret = u32::try_from(pools.len()).unwrap_or(u32::MAX);
    let pools = if a.need_results != 0 {
        pools.iter().map(|p| wire_pool(&p.name, p.uuid)).collect()
    } else {
        Vec::new()
    };
    Ok(ConnectListAllStoragePoolsRet { pools, ret })
}

/// libvirt's filter groups: within a group any bit matches, across groups
/// all must; an empty group matches everything.
fn pool_matches(p: &PoolSummary, flags: u32) -> bool {
    let group = |yes: u32, no: u32, is: bool| {
        flags & (yes | no) == 0 || (is && flags & yes != 0) || (!is && flags & no != 0)
    };
    let types = f::CONNECT_LIST_STORAGE_POOLS_DIR | f::CONNECT_LIST_STORAGE_POOLS_OTHER_TYPES;
    group(
        f::CONNECT_LIST_STORAGE_POOLS_ACTIVE,
        f::CONNECT_LIST_STORAGE_POOLS_INACTIVE,
        p.active,
    ) && group(
        f::CONNECT_LIST_STORAGE_POOLS_PERSISTENT,
        f::CONNECT_LIST_STORAGE_POOLS_TRANSIENT,
        p.persistent,
    ) && group(
        f::CONNECT_LIST_STORAGE_POOLS_AUTOSTART,
        f::CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART,
        p.autostart,
    ) && (flags & types == 0 || flags & f::CONNECT_LIST_STORAGE_POOLS_DIR != 0)
}

fn names(list: Vec<PoolSummary>, max: i32) -> NamesRet {
    let max = usize::try_from(max).unwrap_or(0);
    NamesRet {
        names: list.into_iter().take(max).map(|p| p.name).collect(),
    }
}

fn count(n: usize) -> NumRet {
    NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    }
}

pub(crate) async fn num_of_pools(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    Ok(count(d.storage.list(PoolFilter::Active).len()))
}

pub(crate) async fn list_pools(d: &Daemon, _: &CallContext, a: MaxNamesArgs) -> Reply<NamesRet> {
    Ok(names(d.storage.list(PoolFilter::Active), a.maxnames))
}

pub(crate) async fn num_of_defined_pools(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    Ok(count(d.storage.list(PoolFilter::Inactive).len()))
}

pub(crate) async fn list_defined_pools(
    d: &Daemon,
    _: &CallContext,
    a: MaxNamesArgs,
) -> Reply<NamesRet> {
    Ok(names(d.storage.list(PoolFilter::Inactive), a.maxnames))
}

pub(crate) async fn pool_lookup_by_name(
    d: &Daemon,
    _: &CallContext,
    a: NameArgs,
) -> Reply<StoragePoolRet> {
    Ok(pool_ret(&d.storage.lookup_by_name(&a.name).map_err(vir)?))
}

pub(crate) async fn pool_lookup_by_uuid(
    d: &Daemon,
    _: &CallContext,
    a: UuidArgs,
) -> Reply<StoragePoolRet> {
    let uuid = uuid::Uuid::from_bytes(a.uuid);
    Ok(pool_ret(&d.storage.lookup_by_uuid(&uuid).map_err(vir)?))
}

pub(crate) async fn pool_lookup_by_volume(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolArgs,
) -> Reply<StoragePoolRet> {
    Ok(pool_ret(
        &d.storage.lookup_by_name(&a.vol.pool).map_err(vir)?,
    ))
}

pub(crate) async fn pool_lookup_by_target_path(
    d: &Daemon,
    _: &CallContext,
    a: NameArgs,
) -> Reply<StoragePoolRet> {
    Ok(pool_ret(
        &d.storage.lookup_by_target_path(&a.name).map_err(vir)?,
    ))
}

// ---- pool queries ----

pub(crate) async fn pool_get_info(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolArgs,
) -> Reply<StoragePoolGetInfoRet> {
    let i = d.pool(&a.pool)?.info();
    Ok(StoragePoolGetInfoRet {
        state: u8::try_from(i.state as i32).unwrap_or(0),
        capacity: i.capacity,
        allocation: i.allocation,
        available: i.available,
    })
}

pub(crate) async fn pool_get_xml_desc(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolFlagsArgs,
) -> Reply<XmlRet> {
    flags::check("virStoragePoolGetXMLDesc", a.flags, f::XML_INACTIVE)?;
    let pool = d.pool(&a.pool)?;
    let xml = if a.flags & f::XML_INACTIVE != 0 {
        pool.inactive_xml()
    } else {
        pool.to_xml()
    };
    Ok(XmlRet { xml })
}

fn flag(b: bool) -> IntRet {
    IntRet {
        value: i32::from(b),
    }
}

pub(crate) async fn pool_get_autostart(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolArgs,
) -> Reply<IntRet> {
    Ok(flag(d.pool(&a.pool)?.autostart()))
}

pub(crate) async fn pool_is_active(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolArgs,
) -> Reply<IntRet> {
    Ok(flag(d.pool(&a.pool)?.is_active()))
}

pub(crate) async fn pool_is_persistent(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolArgs,
) -> Reply<IntRet> {
    Ok(flag(d.pool(&a.pool)?.is_persistent()))
}

// ---- pool lifecycle ----

pub(crate) async fn pool_define_xml(
    d: &Daemon,
    _: &CallContext,
    a: XmlFlagsArgs,
) -> Reply<StoragePoolRet> {
    // The parser always validates strictly, so VALIDATE asks for nothing more.
    flags::check("virStoragePoolDefineXML", a.flags, f::POOL_DEFINE_VALIDATE)?;
    Ok(pool_ret(&d.storage.define(&a.xml).await.map_err(vir)?))
}

/// The build a `virStoragePoolCreate(XML)` call asks for.
fn create_build(api: &str, flags: u32) -> Result<Option<BuildMode>, VirError> {
    let (build, over, no_over) = (
        f::POOL_CREATE_WITH_BUILD,
        f::POOL_CREATE_WITH_BUILD_OVERWRITE,
        f::POOL_CREATE_WITH_BUILD_NO_OVERWRITE,
    );
    flags::check(api, flags, build | over | no_over)?;
    exclusive(flags, over, no_over)?;
    Ok(if flags & over != 0 {
        Some(BuildMode::Overwrite)
    } else if flags & no_over != 0 {
        Some(BuildMode::NoOverwrite)
    } else if flags & build != 0 {
        Some(BuildMode::Normal)
    } else {
        None
    })
}

fn exclusive(flags: u32, a: u32, b: u32) -> Result<(), VirError> {
    if flags & a != 0 && flags & b != 0 {
        return Err(invalid_arg(format!(
            "Flags '0x{a:x}' and '0x{b:x}' are mutually exclusive"
        )));
    }
    Ok(())
}

pub(crate) async fn pool_create_xml(
    d: &Daemon,
    _: &CallContext,
    a: XmlFlagsArgs,
) -> Reply<StoragePoolRet> {
    let build = create_build("virStoragePoolCreateXML", a.flags)?;
    Ok(pool_ret(
        &d.storage.create(&a.xml, build).await.map_err(vir)?,
    ))
}

pub(crate) async fn pool_create(d: &Daemon, _: &CallContext, a: StoragePoolFlagsArgs) -> Reply<()> {
    let build = create_build("virStoragePoolCreate", a.flags)?;
    let pool = d.pool(&a.pool)?;
    d.storage.start(&pool, build).await.map_err(vir)
}

pub(crate) async fn pool_build(d: &Daemon, _: &CallContext, a: StoragePoolFlagsArgs) -> Reply<()> {
    let (over, no_over) = (f::POOL_BUILD_OVERWRITE, f::POOL_BUILD_NO_OVERWRITE);
    flags::check("virStoragePoolBuild", a.flags, over | no_over)?;
    exclusive(a.flags, over, no_over)?;
    let mode = if a.flags & over != 0 {
        BuildMode::Overwrite
    } else if a.flags & no_over != 0 {
        BuildMode::NoOverwrite
    } else {
        BuildMode::Normal
    };
    let pool = d.pool(&a.pool)?;
    d.storage.build(&pool, mode).await.map_err(vir)
}

pub(crate) async fn pool_destroy(d: &Daemon, _: &CallContext, a: StoragePoolArgs) -> Reply<()> {
    let pool = d.pool(&a.pool)?;
    d.storage.destroy(&pool).await.map_err(vir)
}

pub(crate) async fn pool_delete(d: &Daemon, _: &CallContext, a: StoragePoolFlagsArgs) -> Reply<()> {
    flags::check("virStoragePoolDelete", a.flags, 0)?;
    let pool = d.pool(&a.pool)?;
    d.storage.delete(&pool).await.map_err(vir)
}

pub(crate) async fn pool_undefine(d: &Daemon, _: &CallContext, a: StoragePoolArgs) -> Reply<()> {
    let pool = d.pool(&a.pool)?;
    d.storage.undefine(&pool).await.map_err(vir)
}

pub(crate) async fn pool_refresh(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolFlagsArgs,
) -> Reply<()> {
    flags::check("virStoragePoolRefresh", a.flags, 0)?;
    let pool = d.pool(&a.pool)?;
    d.storage.refresh(&pool).await.map_err(vir)
}

pub(crate) async fn pool_set_autostart(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolSetAutostartArgs,
) -> Reply<()> {
    let pool = d.pool(&a.pool)?;
    d.storage
        .set_autostart(&pool, a.autostart != 0)
        .await
        .map_err(vir)
}

// ---- volumes of a pool ----

fn active_pool(d: &Daemon, p: &NonnullStoragePool) -> Result<Arc<Pool>, VirError> {
    let pool = d.pool(p)?;
    if !pool.is_active() {
        return Err(vir(storage::Error::OperationInvalid(format!(
            "storage pool '{}' is not active",
            pool.name()
        ))));
    }
    Ok(pool)
}

pub(crate) async fn pool_num_of_volumes(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolArgs,
) -> Reply<NumRet> {
    Ok(count(active_pool(d, &a.pool)?.volume_count()))
}

pub(crate) async fn pool_list_volumes(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolListVolumesArgs,
) -> Reply<NamesRet> {
    let max = usize::try_from(a.maxnames).unwrap_or(0);
    let vols = active_pool(d, &a.pool)?.volumes();
    Ok(NamesRet {
        names: vols.iter().take(max).map(|v| v.name.clone()).collect(),
    })
}

pub(crate) async fn pool_list_all_volumes(
    d: &Daemon,
    _: &CallContext,
    a: StoragePoolListAllVolumesArgs,
) -> Reply<StoragePoolListAllVolumesRet> {
    flags::check("virStoragePoolListAllVolumes", a.flags, 0)?;
    let pool = active_pool(d, &a.pool)?;
    let vols = pool.volumes();
    let ret = u32::try_from(vols.len()).unwrap_or(u32::MAX);
    let vols = if a.need_results != 0 {
        vols.iter().map(|v| wire_vol(pool.name(), v)).collect()
    } else {
        Vec::new()
    };
    Ok(StoragePoolListAllVolumesRet { vols, ret })
}

// ---- volume lookups and queries ----

pub(crate) async fn vol_lookup_by_name(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolLookupByNameArgs,
) -> Reply<StorageVolRet> {
    let pool = d.pool(&a.pool)?;
    let vol = d.storage.lookup_volume(&pool, &a.name).map_err(vir)?;
    Ok(vol_ret(pool.name(), &vol))
}

pub(crate) async fn vol_lookup_by_key(
    d: &Daemon,
    _: &CallContext,
    a: NameArgs,
) -> Reply<StorageVolRet> {
    let (pool, vol) = d.storage.lookup_volume_by_key(&a.name).map_err(vir)?;
    Ok(vol_ret(pool.name(), &vol))
}

pub(crate) async fn vol_lookup_by_path(
    d: &Daemon,
    _: &CallContext,
    a: NameArgs,
) -> Reply<StorageVolRet> {
    let (pool, vol) = d.storage.lookup_volume_by_path(&a.name).map_err(vir)?;
    Ok(vol_ret(pool.name(), &vol))
}

fn info_ret(v: &Volume, physical: bool) -> StorageVolGetInfoRet {
    let i = v.info(physical);
    StorageVolGetInfoRet {
        type_: i8::try_from(i.vol_type as i32).unwrap_or(0),
        capacity: i.capacity,
        allocation: i.allocation,
    }
}

pub(crate) async fn vol_get_info(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolArgs,
) -> Reply<StorageVolGetInfoRet> {
    Ok(info_ret(&d.volume(&a.vol)?.1, false))
}

pub(crate) async fn vol_get_info_flags(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolFlagsArgs,
) -> Reply<StorageVolGetInfoRet> {
    flags::check("virStorageVolGetInfoFlags", a.flags, f::VOL_GET_PHYSICAL)?;
    let physical = a.flags & f::VOL_GET_PHYSICAL != 0;
    Ok(info_ret(&d.volume(&a.vol)?.1, physical))
}

pub(crate) async fn vol_get_xml_desc(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolFlagsArgs,
) -> Reply<XmlRet> {
    flags::check("virStorageVolGetXMLDesc", a.flags, 0)?;
    Ok(XmlRet {
        xml: d.volume(&a.vol)?.1.to_xml(),
    })
}

pub(crate) async fn vol_get_path(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolArgs,
) -> Reply<NameArgs> {
    Ok(NameArgs {
        name: d.volume(&a.vol)?.1.key(),
    })
}

// ---- volume changes ----

fn create_options(api: &str, flags: u32, reflink: bool) -> Result<CreateOptions, VirError> {
    let mut allowed = f::VOL_CREATE_PREALLOC_METADATA | f::VOL_CREATE_VALIDATE;
    if reflink {
        allowed |= f::VOL_CREATE_REFLINK;
    }
    flags::check(api, flags, allowed)?;
    if flags & f::VOL_CREATE_REFLINK != 0 {
        return Err(vir(storage::Error::Unsupported(
            "reflink copies are not available for directory pools".into(),
        )));
    }
    Ok(CreateOptions {
        prealloc_metadata: flags & f::VOL_CREATE_PREALLOC_METADATA != 0,
    })
}

pub(crate) async fn vol_create_xml(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolCreateXmlArgs,
) -> Reply<StorageVolRet> {
    let opts = create_options("virStorageVolCreateXML", a.flags, false)?;
    let pool = d.pool(&a.pool)?;
    let vol = d
        .storage
        .create_volume(&pool, &a.xml, opts)
        .await
        .map_err(vir)?;
    Ok(vol_ret(pool.name(), &vol))
}

pub(crate) async fn vol_create_xml_from(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolCreateXmlFromArgs,
) -> Reply<StorageVolRet> {
    let opts = create_options("virStorageVolCreateXMLFrom", a.flags, true)?;
    let pool = d.pool(&a.pool)?;
    let src_pool = d.storage.lookup_by_name(&a.clonevol.pool).map_err(vir)?;
    let vol = d
        .storage
        .clone_volume(&pool, &a.xml, &src_pool, &a.clonevol.name, opts)
        .await
        .map_err(vir)?;
    Ok(vol_ret(pool.name(), &vol))
}

pub(crate) async fn vol_delete(d: &Daemon, _: &CallContext, a: StorageVolFlagsArgs) -> Reply<()> {
    flags::check("virStorageVolDelete", a.flags, 0)?;
    let (pool, vol) = d.volume(&a.vol)?;
    d.storage.delete_volume(&pool, &vol.name).await.map_err(vir)
}

async fn wipe(d: &Daemon, v: &NonnullStorageVol, algorithm: u32) -> Reply<()> {
    let alg = match algorithm {
        f::VOL_WIPE_ALG_ZERO => WipeAlgorithm::Zero,
        f::VOL_WIPE_ALG_RANDOM => WipeAlgorithm::Random,
        a if a < f::VOL_WIPE_ALG_LAST => {
            return Err(vir(storage::Error::Unsupported(format!(
                "wipe algorithm {a} needs the scrub tool, which this host does not use"
            ))));
        }
        a => return Err(invalid_arg(format!("wiping algorithm {a} not supported"))),
    };
    let (pool, vol) = d.volume(v)?;
    d.storage
        .wipe_volume(&pool, &vol.name, alg)
        .await
        .map_err(vir)
}

pub(crate) async fn vol_wipe(d: &Daemon, _: &CallContext, a: StorageVolFlagsArgs) -> Reply<()> {
    flags::check("virStorageVolWipe", a.flags, 0)?;
    wipe(d, &a.vol, f::VOL_WIPE_ALG_ZERO).await
}

pub(crate) async fn vol_wipe_pattern(
    d: &Daemon,
    _: &CallContext,
    a: StorageVolWipePatternArgs,
) -> Reply<()> {
    flags::check("virStorageVolWipePattern", a.flags, 0)?;
    wipe(d, &a.vol, a.algorithm).await
}

pub(crate) async fn vol_resize(d: &Daemon, _: &CallContext, a: StorageVolResizeArgs) -> Reply<()> {
    let all = f::VOL_RESIZE_ALLOCATE | f::VOL_RESIZE_DELTA | f::VOL_RESIZE_SHRINK;
    flags::check("virStorageVolResize", a.flags, all)?;
    let opts = ResizeOptions {
        allocate: a.flags & f::VOL_RESIZE_ALLOCATE != 0,
        delta: a.flags & f::VOL_RESIZE_DELTA != 0,
        shrink: a.flags & f::VOL_RESIZE_SHRINK != 0,
    };
    let (pool, vol) = d.volume(&a.vol)?;
    d.storage
        .resize_volume(&pool, &vol.name, a.capacity, opts)
        .await
        .map_err(vir)
}

// ---- events and capabilities ----

pub(crate) async fn event_register_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectStoragePoolEventRegisterAnyArgs,
) -> Reply<CallbackIdArgs> {
    if a.event_id != f::POOL_EVENT_ID_LIFECYCLE && a.event_id != f::POOL_EVENT_ID_REFRESH {
        return Err(invalid_arg(format!(
            "unsupported storage pool event ID {}",
            a.event_id
        )));
    }
    let only = match &a.pool {
        Some(p) => Some(d.pool(p)?.uuid()),
        None => None,
    };
    let callback_id = d.relay.register(
        &ctx.events,
        Object::StoragePool,
        a.event_id,
        only,
        Style::Callback,
    )?;
    Ok(CallbackIdArgs { callback_id })
}

pub(crate) async fn event_deregister_any(
    d: &Daemon,
    ctx: &CallContext,
    a: CallbackIdArgs,
) -> Reply<()> {
    d.relay
        .deregister(ctx.client, Object::StoragePool, a.callback_id)
}

/// `virsh pool-capabilities`: which pool types exist here and what
/// volumes a directory pool can hold.
pub(crate) async fn get_pool_capabilities(
    _: &Daemon,
    _: &CallContext,
    a: FlagsArgs,
) -> Reply<XmlRet> {
    flags::check("virConnectGetStoragePoolCapabilities", a.flags, 0)?;
    Ok(XmlRet {
        xml: storage::xml::pool_capabilities(),
    })
}
