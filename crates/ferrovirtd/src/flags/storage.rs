//! `virStoragePool*` and `virStorageVol*` flags and enums of
//! `libvirt-storage.h`, under libvirt's names without the `VIR_` prefix
//! (`VIR_STORAGE_POOL_BUILD_NO_OVERWRITE` becomes `POOL_BUILD_NO_OVERWRITE`).
//! No storage procedure is served yet.
