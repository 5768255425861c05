//! `virsh dump`: libvirt's core-dump flags and formats translated into the
//! driver's typed options. The driver runs the dump as an async job.

use qemu::{AfterDump, DumpContent, DumpOptions, MemoryDumpFormat};
use rpc::CallContext;
use rpc::protocol::remote::{DomainCoreDumpArgs, DomainCoreDumpWithFormatArgs};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{abs_path, invalid_arg, vir};

/// The `virDomainCoreDumpFlags` implemented. Bypassing the page cache is
/// accepted and not done (it changes speed, not results).
const DUMP_FLAGS: u32 =
    f::DUMP_CRASH | f::DUMP_LIVE | f::DUMP_BYPASS_CACHE | f::DUMP_RESET | f::DUMP_MEMORY_ONLY;

/// `virDomainCoreDump`: a memory-only dump is an ELF core.
pub(crate) async fn core_dump(d: &Daemon, _: &CallContext, a: DomainCoreDumpArgs) -> Reply<()> {
    let opts = options("virDomainCoreDump", a.flags, f::CORE_DUMP_FORMAT_RAW)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .core_dump(&dom, &abs_path(&a.to)?, opts)
        .await
        .map_err(vir)
}

/// `virsh dump [--format FORMAT]`.
pub(crate) async fn core_dump_with_format(
    d: &Daemon,
    _: &CallContext,
    a: DomainCoreDumpWithFormatArgs,
) -> Reply<()> {
    let opts = options("virDomainCoreDumpWithFormat", a.flags, a.dumpformat)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .core_dump(&dom, &abs_path(&a.to)?, opts)
        .await
        .map_err(vir)
}

/// The driver's options for `flags` and `format`, with libvirt's checks:
/// `--crash` excludes `--live` and `--reset`, and a format other than raw
/// needs `--memory-only`.
fn options(api: &str, flags: u32, format: u32) -> Result<DumpOptions, VirError> {
    flags::check(api, flags, DUMP_FLAGS)?;
    let has = |bit: u32| flags & bit != 0;
    if has(f::DUMP_CRASH) && has(f::DUMP_LIVE) {
        return Err(invalid_arg("--crash and --live are mutually exclusive"));
    }
    if has(f::DUMP_CRASH) && has(f::DUMP_RESET) {
        return Err(invalid_arg("--crash and --reset are mutually exclusive"));
    }
    let format = memory_format(format)?;
    let content = if has(f::DUMP_MEMORY_ONLY) {
        DumpContent::Memory(format)
    } else if format == MemoryDumpFormat::Elf {
        DumpContent::State
    } else {
        return Err(VirError::new(
            ErrorCode::OperationUnsupported,
            ErrorDomain::Qemu,
            "this function is not supported by the connection driver: \
             a dump format other than raw needs --memory-only",
        ));
    };
    let after = if has(f::DUMP_CRASH) {
        AfterDump::Crash
    } else if has(f::DUMP_RESET) {
        AfterDump::Reset
    } else {
        AfterDump::Continue
    };
    Ok(DumpOptions {
        content,
        live: has(f::DUMP_LIVE),
        after,
    })
}

/// `virDomainCoreDumpFormat` (raw is an ELF core for a memory dump).
fn memory_format(format: u32) -> Result<MemoryDumpFormat, VirError> {
    match format {
        f::CORE_DUMP_FORMAT_RAW => Ok(MemoryDumpFormat::Elf),
        f::CORE_DUMP_FORMAT_KDUMP_ZLIB => Ok(MemoryDumpFormat::KdumpZlib),
        f::CORE_DUMP_FORMAT_KDUMP_LZO => Ok(MemoryDumpFormat::KdumpLzo),
        f::CORE_DUMP_FORMAT_KDUMP_SNAPPY => Ok(MemoryDumpFormat::KdumpSnappy),
        f::CORE_DUMP_FORMAT_WIN_DMP => Ok(MemoryDumpFormat::WinDmp),
        other => Err(invalid_arg(format!("dump format {other} is unknown"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_typed_options() {
        let o = options("x", f::DUMP_MEMORY_ONLY | f::DUMP_RESET, 1).unwrap();
        assert_eq!(o.content, DumpContent::Memory(MemoryDumpFormat::KdumpZlib));
        assert_eq!((o.live, o.after), (false, AfterDump::Reset));
        let o = options("x", f::DUMP_LIVE | f::DUMP_BYPASS_CACHE, 0).unwrap();
        assert_eq!((o.content, o.live), (DumpContent::State, true));
        let o = options("x", f::DUMP_CRASH | f::DUMP_MEMORY_ONLY, 0).unwrap();
        assert_eq!(o.content, DumpContent::Memory(MemoryDumpFormat::Elf));
        assert_eq!(o.after, AfterDump::Crash);
    }

    #[test]
    fn bad_combinations_get_libvirts_codes() {
        let code = |flags, format| options("x", flags, format).unwrap_err().code;
        assert_eq!(code(f::DUMP_CRASH | f::DUMP_LIVE, 0), ErrorCode::InvalidArg);
        assert_eq!(
            code(f::DUMP_CRASH | f::DUMP_RESET, 0),
            ErrorCode::InvalidArg
        );
        assert_eq!(code(0, 1), ErrorCode::OperationUnsupported);
        assert_eq!(code(f::DUMP_MEMORY_ONLY, 9), ErrorCode::InvalidArg);
        assert_eq!(code(64, 0), ErrorCode::InvalidArg);
    }
}
