//! `virStoragePool*` and `virStorageVol*` flags and enums of
//! `libvirt-storage.h`, under libvirt's names without the `VIR_` prefix
//! (`VIR_STORAGE_POOL_BUILD_NO_OVERWRITE` becomes `POOL_BUILD_NO_OVERWRITE`;
//! the list filters keep `CONNECT_`). Only the values the daemon reads.

// virConnectListAllStoragePoolsFlags (`VIR_CONNECT_LIST_STORAGE_POOLS_*`)
pub(crate) const CONNECT_LIST_STORAGE_POOLS_INACTIVE: u32 = 1 << 0;
pub(crate) const CONNECT_LIST_STORAGE_POOLS_ACTIVE: u32 = 1 << 1;
pub(crate) const CONNECT_LIST_STORAGE_POOLS_PERSISTENT: u32 = 1 << 2;
pub(crate) const CONNECT_LIST_STORAGE_POOLS_TRANSIENT: u32 = 1 << 3;
pub(crate) const CONNECT_LIST_STORAGE_POOLS_AUTOSTART: u32 = 1 << 4;
pub(crate) const CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART: u32 = 1 << 5;
pub(crate) const CONNECT_LIST_STORAGE_POOLS_DIR: u32 = 1 << 6;
/// The other pool-type filters, `FS` (1 << 7) through `ISCSI_DIRECT`
/// (1 << 19): accepted, and they match nothing, since only directory
/// pools exist here.
pub(crate) const CONNECT_LIST_STORAGE_POOLS_OTHER_TYPES: u32 = 0b1111_1111_1111_1000_0000;

// virStoragePoolCreateFlags
pub(crate) const POOL_CREATE_WITH_BUILD: u32 = 1 << 0;
pub(crate) const POOL_CREATE_WITH_BUILD_OVERWRITE: u32 = 1 << 1;
pub(crate) const POOL_CREATE_WITH_BUILD_NO_OVERWRITE: u32 = 1 << 2;

// virStoragePoolBuildFlags (`REPAIR` and `RESIZE` are for disk pools)
pub(crate) const POOL_BUILD_NO_OVERWRITE: u32 = 1 << 2;
pub(crate) const POOL_BUILD_OVERWRITE: u32 = 1 << 3;

// virStoragePoolDefineFlags
pub(crate) const POOL_DEFINE_VALIDATE: u32 = 1 << 0;

// virStorageXMLFlags
pub(crate) const XML_INACTIVE: u32 = 1 << 0;

// virStorageVolCreateFlags
pub(crate) const VOL_CREATE_PREALLOC_METADATA: u32 = 1 << 0;
pub(crate) const VOL_CREATE_REFLINK: u32 = 1 << 1;
pub(crate) const VOL_CREATE_VALIDATE: u32 = 1 << 2;

// virStorageVolResizeFlags
pub(crate) const VOL_RESIZE_ALLOCATE: u32 = 1 << 0;
pub(crate) const VOL_RESIZE_DELTA: u32 = 1 << 1;
pub(crate) const VOL_RESIZE_SHRINK: u32 = 1 << 2;

// virStorageVolUploadFlags, virStorageVolDownloadFlags
pub(crate) const VOL_UPLOAD_SPARSE_STREAM: u32 = 1 << 0;
pub(crate) const VOL_DOWNLOAD_SPARSE_STREAM: u32 = 1 << 0;

// virStorageVolInfoFlags
pub(crate) const VOL_GET_PHYSICAL: u32 = 1 << 0;

// virStorageVolWipeAlgorithm
pub(crate) const VOL_WIPE_ALG_ZERO: u32 = 0;
pub(crate) const VOL_WIPE_ALG_RANDOM: u32 = 8;
/// One past the last algorithm libvirt defines (`TRIM` is 9).
pub(crate) const VOL_WIPE_ALG_LAST: u32 = 10;

// virStoragePoolEventID
pub(crate) const POOL_EVENT_ID_LIFECYCLE: i32 = 0;
pub(crate) const POOL_EVENT_ID_REFRESH: i32 = 1;
