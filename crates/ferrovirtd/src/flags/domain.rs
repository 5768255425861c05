//! `virDomain*` flags and enums of `libvirt-domain.h`, under libvirt's
//! names without the `VIR_DOMAIN_` prefix (`VIR_DOMAIN_XML_SECURE` is
//! [`XML_SECURE`]). Each group is one libvirt enum; only the values the
//! daemon reads are here.

// virDomainModificationImpact
/// `VIR_DOMAIN_AFFECT_LIVE`: the running domain.
pub(crate) const AFFECT_LIVE: u32 = 1;
/// `VIR_DOMAIN_AFFECT_CONFIG`: the persistent definition.
pub(crate) const AFFECT_CONFIG: u32 = 2;

// virDomainDeviceModifyFlags (LIVE and CONFIG are virDomainModificationImpact's)
/// `VIR_DOMAIN_DEVICE_MODIFY_FORCE`: force a CD-ROM eject.
pub(crate) const DEVICE_MODIFY_FORCE: u32 = 4;

// virDomainMemoryModFlags (LIVE and CONFIG are virDomainModificationImpact's)
/// `VIR_DOMAIN_MEM_MAXIMUM`: the maximum memory, not the current.
pub(crate) const MEM_MAXIMUM: u32 = 4;

// virDomainBlockResizeFlags
/// `VIR_DOMAIN_BLOCK_RESIZE_BYTES`: the size is in bytes, not KiB.
pub(crate) const BLOCK_RESIZE_BYTES: u32 = 1;

// virDomainCreateFlags
pub(crate) const START_PAUSED: u32 = 1;
pub(crate) const START_AUTODESTROY: u32 = 2;
pub(crate) const START_BYPASS_CACHE: u32 = 4;
pub(crate) const START_FORCE_BOOT: u32 = 8;
pub(crate) const START_VALIDATE: u32 = 16;

// virDomainDestroyFlagsValues
pub(crate) const DESTROY_GRACEFUL: u32 = 1;

// virDomainShutdownFlagValues
pub(crate) const SHUTDOWN_ACPI_POWER_BTN: u32 = 1;

// virDomainRebootFlagValues
pub(crate) const REBOOT_ACPI_POWER_BTN: u32 = 1;

// virDomainDefineFlags
pub(crate) const DEFINE_VALIDATE: u32 = 1;

// virDomainUndefineFlagsValues
pub(crate) const UNDEFINE_MANAGED_SAVE: u32 = 1;
pub(crate) const UNDEFINE_SNAPSHOTS_METADATA: u32 = 2;
pub(crate) const UNDEFINE_NVRAM: u32 = 4;
pub(crate) const UNDEFINE_KEEP_NVRAM: u32 = 8;
pub(crate) const UNDEFINE_CHECKPOINTS_METADATA: u32 = 16;
pub(crate) const UNDEFINE_TPM: u32 = 32;
pub(crate) const UNDEFINE_KEEP_TPM: u32 = 64;

// virDomainXMLFlags
pub(crate) const XML_SECURE: u32 = 1;
pub(crate) const XML_INACTIVE: u32 = 2;
pub(crate) const XML_UPDATE_CPU: u32 = 4;
pub(crate) const XML_MIGRATABLE: u32 = 8;

// virDomainVcpuFlags (LIVE and CONFIG are virDomainModificationImpact's)
pub(crate) const VCPU_LIVE: u32 = AFFECT_LIVE;
pub(crate) const VCPU_CONFIG: u32 = AFFECT_CONFIG;
pub(crate) const VCPU_MAXIMUM: u32 = 4;
pub(crate) const VCPU_GUEST: u32 = 8;

// virDomainGetJobStatsFlags
pub(crate) const JOB_STATS_COMPLETED: u32 = 1;
pub(crate) const JOB_STATS_KEEP_COMPLETED: u32 = 2;

// virDomainSaveRestoreFlags
pub(crate) const SAVE_BYPASS_CACHE: u32 = 1;
pub(crate) const SAVE_RUNNING: u32 = 2;
pub(crate) const SAVE_PAUSED: u32 = 4;

// virDomainCoreDumpFlags
pub(crate) const DUMP_CRASH: u32 = 1;
pub(crate) const DUMP_LIVE: u32 = 2;
pub(crate) const DUMP_BYPASS_CACHE: u32 = 4;
pub(crate) const DUMP_RESET: u32 = 8;
pub(crate) const DUMP_MEMORY_ONLY: u32 = 16;

// virDomainCoreDumpFormat
pub(crate) const CORE_DUMP_FORMAT_RAW: u32 = 0;
pub(crate) const CORE_DUMP_FORMAT_KDUMP_ZLIB: u32 = 1;
pub(crate) const CORE_DUMP_FORMAT_KDUMP_LZO: u32 = 2;
pub(crate) const CORE_DUMP_FORMAT_KDUMP_SNAPPY: u32 = 3;
pub(crate) const CORE_DUMP_FORMAT_WIN_DMP: u32 = 4;

// virDomainSaveImageXMLFlags
pub(crate) const SAVE_IMAGE_XML_SECURE: u32 = XML_SECURE;

// virDomainBlockJobAbortFlags
pub(crate) const BLOCK_JOB_ABORT_ASYNC: u32 = 1;
pub(crate) const BLOCK_JOB_ABORT_PIVOT: u32 = 2;

// virDomainBlockJobInfoFlags
pub(crate) const BLOCK_JOB_INFO_BANDWIDTH_BYTES: u32 = 1;

// virDomainBlockJobSetSpeedFlags
pub(crate) const BLOCK_JOB_SPEED_BANDWIDTH_BYTES: u32 = 1;

// virDomainBlockPullFlags
pub(crate) const BLOCK_PULL_BANDWIDTH_BYTES: u32 = 64;

// virDomainBlockRebaseFlags
pub(crate) const BLOCK_REBASE_SHALLOW: u32 = 1;
pub(crate) const BLOCK_REBASE_REUSE_EXT: u32 = 2;
pub(crate) const BLOCK_REBASE_COPY_RAW: u32 = 4;
pub(crate) const BLOCK_REBASE_COPY: u32 = 8;
pub(crate) const BLOCK_REBASE_BANDWIDTH_BYTES: u32 = 64;

// virDomainBlockCopyFlags
pub(crate) const BLOCK_COPY_SHALLOW: u32 = 1;
pub(crate) const BLOCK_COPY_REUSE_EXT: u32 = 2;

// virDomainBlockCommitFlags
pub(crate) const BLOCK_COMMIT_ACTIVE: u32 = 4;
pub(crate) const BLOCK_COMMIT_BANDWIDTH_BYTES: u32 = 16;

// virDomainConsoleFlags
pub(crate) const CONSOLE_FORCE: u32 = 1;
pub(crate) const CONSOLE_SAFE: u32 = 2;

// virDomainChannelFlags
pub(crate) const CHANNEL_FORCE: u32 = 1;

// virDomainOpenGraphicsFlags
pub(crate) const OPEN_GRAPHICS_SKIPAUTH: u32 = 1;
// virDomainStatsTypes
pub(crate) const STATS_STATE: u32 = 1 << 0;
pub(crate) const STATS_CPU_TOTAL: u32 = 1 << 1;
pub(crate) const STATS_BALLOON: u32 = 1 << 2;
pub(crate) const STATS_VCPU: u32 = 1 << 3;
pub(crate) const STATS_INTERFACE: u32 = 1 << 4;
pub(crate) const STATS_BLOCK: u32 = 1 << 5;
pub(crate) const STATS_PERF: u32 = 1 << 6;
pub(crate) const STATS_IOTHREAD: u32 = 1 << 7;

// virDomainMemoryStatTags
pub(crate) const MEMORY_STAT_SWAP_IN: i32 = 0;
pub(crate) const MEMORY_STAT_SWAP_OUT: i32 = 1;
pub(crate) const MEMORY_STAT_MAJOR_FAULT: i32 = 2;
pub(crate) const MEMORY_STAT_MINOR_FAULT: i32 = 3;
pub(crate) const MEMORY_STAT_UNUSED: i32 = 4;
pub(crate) const MEMORY_STAT_AVAILABLE: i32 = 5;
pub(crate) const MEMORY_STAT_ACTUAL_BALLOON: i32 = 6;
pub(crate) const MEMORY_STAT_RSS: i32 = 7;
pub(crate) const MEMORY_STAT_USABLE: i32 = 8;
pub(crate) const MEMORY_STAT_LAST_UPDATE: i32 = 9;
pub(crate) const MEMORY_STAT_DISK_CACHES: i32 = 10;
pub(crate) const MEMORY_STAT_HUGETLB_PGALLOC: i32 = 11;
pub(crate) const MEMORY_STAT_HUGETLB_PGFAIL: i32 = 12;

// virVcpuState
pub(crate) const VCPU_RUNNING: i32 = 1;

// virTypedParameterFlags
/// `VIR_TYPED_PARAM_STRING_OKAY`: the caller accepts string parameters.
pub(crate) const TYPED_PARAM_STRING_OKAY: u32 = 1 << 2;

/// `VIR_MIGRATE_LIVE`.
pub(crate) const MIGRATE_LIVE: u32 = 1;
/// `VIR_MIGRATE_PEER2PEER`.
pub(crate) const MIGRATE_PEER2PEER: u32 = 2;
/// `VIR_MIGRATE_PERSIST_DEST`.
pub(crate) const MIGRATE_PERSIST_DEST: u32 = 8;
/// `VIR_MIGRATE_UNDEFINE_SOURCE`.
pub(crate) const MIGRATE_UNDEFINE_SOURCE: u32 = 16;
/// `VIR_MIGRATE_PAUSED`.
pub(crate) const MIGRATE_PAUSED: u32 = 32;
/// `VIR_MIGRATE_CHANGE_PROTECTION`.
pub(crate) const MIGRATE_CHANGE_PROTECTION: u32 = 256;
/// `VIR_MIGRATE_UNSAFE`.
pub(crate) const MIGRATE_UNSAFE: u32 = 512;
/// `VIR_MIGRATE_COMPRESSED`.
pub(crate) const MIGRATE_COMPRESSED: u32 = 2048;
/// `VIR_MIGRATE_AUTO_CONVERGE`.
pub(crate) const MIGRATE_AUTO_CONVERGE: u32 = 8192;
/// `VIR_MIGRATE_TUNNELLED`.
#[cfg(test)]
pub(crate) const MIGRATE_TUNNELLED: u32 = 4;
/// `VIR_MIGRATE_NON_SHARED_DISK`.
pub(crate) const MIGRATE_NON_SHARED_DISK: u32 = 64;
/// `VIR_MIGRATE_NON_SHARED_INC`.
pub(crate) const MIGRATE_NON_SHARED_INC: u32 = 128;
/// `VIR_MIGRATE_OFFLINE`.
pub(crate) const MIGRATE_OFFLINE: u32 = 1024;
/// `VIR_MIGRATE_POSTCOPY`.
pub(crate) const MIGRATE_POSTCOPY: u32 = 32768;
/// `VIR_MIGRATE_TLS`.
pub(crate) const MIGRATE_TLS: u32 = 65536;

#[cfg(test)]
mod tests {
    use super::*;

    /// The values are libvirt's ABI: spot-check the ones a slip would
    /// silently change.
    #[test]
    fn values_are_libvirts() {
        assert_eq!(
            XML_SECURE | XML_INACTIVE | XML_UPDATE_CPU | XML_MIGRATABLE,
            15
        );
        assert_eq!(SAVE_IMAGE_XML_SECURE, 1);
        assert_eq!(VCPU_MAXIMUM | VCPU_GUEST, 12);
        assert_eq!(BLOCK_REBASE_BANDWIDTH_BYTES, 1 << 6);
        assert_eq!(BLOCK_COMMIT_BANDWIDTH_BYTES, 1 << 4);
        assert_eq!(CONSOLE_FORCE | CONSOLE_SAFE, 3);
    }
}
