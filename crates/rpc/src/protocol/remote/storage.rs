//! Wire structures of the storage pool and volume procedures.

use super::{OBJECT_LIST_MAX, Uuid};
use crate::xdr_struct;

xdr_struct! {
    /// `remote_nonnull_storage_pool`.
    pub struct NonnullStoragePool {
        pub name: String,
        pub uuid: Uuid,
    }

    /// `remote_nonnull_storage_vol`: a volume is named by its pool's name,
    /// its own name and its key.
    pub struct NonnullStorageVol {
        pub pool: String,
        pub name: String,
        pub key: String,
    }

    /// Arguments that are just a pool.
    pub struct StoragePoolArgs {
        pub pool: NonnullStoragePool,
    }

    /// Arguments that are a pool and flags.
    pub struct StoragePoolFlagsArgs {
        pub pool: NonnullStoragePool,
        pub flags: u32,
    }

    /// A return value that is just a pool.
    pub struct StoragePoolRet {
        pub pool: NonnullStoragePool,
    }

    /// Arguments that are just a volume.
    pub struct StorageVolArgs {
        pub vol: NonnullStorageVol,
    }

    /// Arguments that are a volume and flags.
    pub struct StorageVolFlagsArgs {
        pub vol: NonnullStorageVol,
        pub flags: u32,
    }

    /// A return value that is just a volume.
    pub struct StorageVolRet {
        pub vol: NonnullStorageVol,
    }

    /// `remote_connect_list_all_storage_pools_args`.
    pub struct ConnectListAllStoragePoolsArgs {
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_connect_list_all_storage_pools_ret`.
    pub struct ConnectListAllStoragePoolsRet {
        pub pools: Vec<NonnullStoragePool> [max = OBJECT_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_storage_pool_get_info_ret`.
    pub struct StoragePoolGetInfoRet {
        pub state: u8,
        pub capacity: u64,
        pub allocation: u64,
        pub available: u64,
    }

    /// `remote_storage_pool_set_autostart_args`.
    pub struct StoragePoolSetAutostartArgs {
        pub pool: NonnullStoragePool,
        pub autostart: i32,
    }

    /// `remote_storage_pool_list_volumes_args`.
    pub struct StoragePoolListVolumesArgs {
        pub pool: NonnullStoragePool,
        pub maxnames: i32,
    }

    /// `remote_storage_pool_list_all_volumes_args`.
    pub struct StoragePoolListAllVolumesArgs {
        pub pool: NonnullStoragePool,
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_storage_pool_list_all_volumes_ret`.
    pub struct StoragePoolListAllVolumesRet {
        pub vols: Vec<NonnullStorageVol> [max = OBJECT_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_storage_vol_lookup_by_name_args`.
    pub struct StorageVolLookupByNameArgs {
        pub pool: NonnullStoragePool,
        pub name: String,
    }

    /// `remote_storage_vol_create_xml_args`.
    pub struct StorageVolCreateXmlArgs {
        pub pool: NonnullStoragePool,
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_storage_vol_create_xml_from_args`.
    pub struct StorageVolCreateXmlFromArgs {
        pub pool: NonnullStoragePool,
        pub xml: String,
        pub clonevol: NonnullStorageVol,
        pub flags: u32,
    }

    /// `remote_storage_vol_wipe_pattern_args`.
    pub struct StorageVolWipePatternArgs {
        pub vol: NonnullStorageVol,
        pub algorithm: u32,
        pub flags: u32,
    }

    /// `remote_storage_vol_get_info_ret` (and of `_flags`).
    pub struct StorageVolGetInfoRet {
        pub type_: i8,
        pub capacity: u64,
        pub allocation: u64,
    }

    /// `remote_storage_vol_resize_args`.
    pub struct StorageVolResizeArgs {
        pub vol: NonnullStorageVol,
        pub capacity: u64,
        pub flags: u32,
    }

    /// `remote_connect_storage_pool_event_register_any_args`.
    pub struct ConnectStoragePoolEventRegisterAnyArgs {
        pub event_id: i32,
        pub pool: Option<NonnullStoragePool>,
    }

    /// `remote_storage_pool_event_lifecycle_msg`.
    pub struct StoragePoolEventLifecycleMsg {
        pub callback_id: i32,
        pub pool: NonnullStoragePool,
        pub event: i32,
        pub detail: i32,
    }

    /// `remote_storage_pool_event_refresh_msg`.
    pub struct StoragePoolEventRefreshMsg {
        pub callback_id: i32,
        pub pool: NonnullStoragePool,
    }
}
