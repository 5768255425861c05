//! Long-job procedures: save / restore / managed save and block jobs
//! (copy, pull, rebase-as-copy, commit, abort/pivot, speed, info).
//!
//! The driver runs each as an async job driven by QEMU events; these
//! handlers only translate libvirt's arguments and flags. The info call
//! takes no job, so `blockjob --info` (and virsh `--wait`, which polls it)
//! answers while the job holds the domain.

use std::path::PathBuf;

use bytes::Bytes;
use qemu::{
    AbortOptions, AfterRestore, BlockJobSpec, CopySpec, Driver, SaveOptions, parse_copy_dest,
};
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainBlockCommitArgs, DomainBlockCopyArgs, DomainBlockJobAbortArgs,
    DomainBlockJobSetSpeedArgs, DomainBlockPullArgs, DomainBlockRebaseArgs, DomainFlagsArgs,
    DomainGetBlockJobInfoArgs, DomainGetBlockJobInfoRet, DomainRestoreArgs, DomainRestoreFlagsArgs,
    DomainSaveArgs, DomainSaveFlagsArgs, TypedParamValue, procedure as p,
};
use rpc::server::{decode_args, encode_ret};
use virterror::VirError;

use crate::dispatch::Daemon;
use crate::wire::{check_flags, invalid_arg, resolve, unsupported_flags, vir};

type Reply = Result<Bytes, VirError>;

// virDomainSaveRestoreFlags
const SAVE_BYPASS_CACHE: u32 = 1;
pub(crate) const SAVE_RUNNING: u32 = 2;
pub(crate) const SAVE_PAUSED: u32 = 4;
// virDomainBlockJobAbortFlags
const ABORT_ASYNC: u32 = 1;
const ABORT_PIVOT: u32 = 2;
// virDomainBlockRebaseFlags
const REBASE_SHALLOW: u32 = 1;
const REBASE_REUSE_EXT: u32 = 2;
const REBASE_COPY_RAW: u32 = 4;
const REBASE_COPY: u32 = 8;
const REBASE_BANDWIDTH_BYTES: u32 = 64;
// virDomainBlockCopyFlags
const COPY_SHALLOW: u32 = 1;
const COPY_REUSE_EXT: u32 = 2;
// virDomainBlockCommitFlags
const COMMIT_SHALLOW: u32 = 1;
const COMMIT_ACTIVE: u32 = 4;
const COMMIT_BANDWIDTH_BYTES: u32 = 16;
// virDomainBlockPullFlags
const PULL_BANDWIDTH_BYTES: u32 = 64;
// virDomainBlockJobSetSpeedFlags / virDomainBlockJobInfoFlags
const SPEED_BANDWIDTH_BYTES: u32 = 1;

const MIB: u64 = 1 << 20;

/// Serves a long-job procedure, or `None` if `proc_` is not one.
pub(crate) async fn call(d: &Daemon, _ctx: &CallContext, proc_: i32, args: &[u8]) -> Option<Reply> {
    let drv = &d.driver;
    Some(match proc_ {
        p::DOMAIN_SAVE => {
            save(
                drv,
                decode_args::<DomainSaveArgs>(proc_, args).map(|a| (a.dom, a.to, None, 0)),
            )
            .await
        }
        p::DOMAIN_SAVE_FLAGS => {
            let a = decode_args::<DomainSaveFlagsArgs>(proc_, args);
            save(drv, a.map(|a| (a.dom, a.to, a.dxml, a.flags))).await
        }
        p::DOMAIN_RESTORE => {
            restore(
                drv,
                decode_args::<DomainRestoreArgs>(proc_, args).map(|a| (a.from, None, 0)),
            )
            .await
        }
        p::DOMAIN_RESTORE_FLAGS => {
            let a = decode_args::<DomainRestoreFlagsArgs>(proc_, args);
            restore(drv, a.map(|a| (a.from, a.dxml, a.flags))).await
        }
        p::DOMAIN_MANAGED_SAVE => managed_save(drv, decode_args(proc_, args)).await,
        p::DOMAIN_MANAGED_SAVE_REMOVE => managed_save_remove(drv, decode_args(proc_, args)).await,
        p::DOMAIN_BLOCK_COPY => block_copy(drv, decode_args(proc_, args)).await,
        p::DOMAIN_BLOCK_REBASE => block_rebase(drv, decode_args(proc_, args)).await,
        p::DOMAIN_BLOCK_PULL => block_pull(drv, decode_args(proc_, args)).await,
        p::DOMAIN_BLOCK_COMMIT => block_commit(drv, decode_args(proc_, args)).await,
        p::DOMAIN_BLOCK_JOB_ABORT => block_job_abort(drv, decode_args(proc_, args)).await,
        p::DOMAIN_BLOCK_JOB_SET_SPEED => block_job_speed(drv, decode_args(proc_, args)).await,
        p::DOMAIN_GET_BLOCK_JOB_INFO => block_job_info(drv, decode_args(proc_, args)).await,
        _ => return None,
    })
}

type SaveArgs = (
    rpc::protocol::remote::NonnullDomain,
    String,
    Option<String>,
    u32,
);

async fn save(drv: &Driver, a: Result<SaveArgs, VirError>) -> Reply {
    let (dom, to, dxml, flags) = a?;
    check_flags(
        "virDomainSaveFlags",
        flags,
        SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED,
    )?;
    let opts = SaveOptions {
        xml: dxml,
        after_restore: running_flag(flags)?,
    };
    let dom = resolve(drv, &dom)?;
    drv.save_with(&dom, &abs_path(&to)?, &opts)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn restore(drv: &Driver, a: Result<(String, Option<String>, u32), VirError>) -> Reply {
    let (from, dxml, flags) = a?;
    check_flags(
        "virDomainRestoreFlags",
        flags,
        SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED,
    )?;
    drv.restore(&abs_path(&from)?, running_flag(flags)?, dxml.as_deref())
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

/// VIR_DOMAIN_SAVE_RUNNING / _PAUSED: the state the restored guest
/// starts in; `None` when neither is given.
pub(crate) fn running_flag(flags: u32) -> Result<Option<AfterRestore>, VirError> {
    match (flags & SAVE_RUNNING != 0, flags & SAVE_PAUSED != 0) {
        (true, true) => Err(invalid_arg("--running and --paused are exclusive")),
        (true, false) => Ok(Some(AfterRestore::Running)),
        (false, true) => Ok(Some(AfterRestore::Paused)),
        (false, false) => Ok(None),
    }
}

async fn managed_save(drv: &Driver, a: Result<DomainFlagsArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainManagedSave", a.flags, SAVE_BYPASS_CACHE)?;
    let dom = resolve(drv, &a.dom)?;
    drv.managed_save(&dom).await.map_err(vir)?;
    Ok(Bytes::new())
}

async fn managed_save_remove(drv: &Driver, a: Result<DomainFlagsArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainManagedSaveRemove", a.flags, 0)?;
    let dom = resolve(drv, &a.dom)?;
    drv.managed_save_remove(&dom).await.map_err(vir)?;
    Ok(Bytes::new())
}

pub(crate) fn abs_path(p: &str) -> Result<PathBuf, VirError> {
    if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(invalid_arg(format!("path '{p}' is not absolute")))
    }
}

/// A bandwidth argument in bytes/s (MiB/s unless `bytes`).
fn bandwidth(v: u64, bytes: bool) -> Result<u64, VirError> {
    if bytes {
        return Ok(v);
    }
    v.checked_mul(MIB)
        .ok_or_else(|| invalid_arg(format!("bandwidth {v} MiB/s is too large")))
}

async fn block_copy(drv: &Driver, a: Result<DomainBlockCopyArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainBlockCopy", a.flags, COPY_SHALLOW | COPY_REUSE_EXT)?;
    let (dest, format) = parse_copy_dest(&a.destxml).map_err(vir)?;
    let mut bw = 0;
    for p in &a.params {
        match (p.field.as_str(), &p.value) {
            ("bandwidth", TypedParamValue::ULLong(v)) => bw = *v,
            ("granularity" | "buf-size", _) => {}
            (f, _) => {
                return Err(invalid_arg(format!(
                    "unsupported block copy parameter '{f}'"
                )));
            }
        }
    }
    let spec = BlockJobSpec::Copy(CopySpec {
        dest,
        format,
        shallow: a.flags & COPY_SHALLOW != 0,
        reuse_external: a.flags & COPY_REUSE_EXT != 0,
    });
    let dom = resolve(drv, &a.dom)?;
    drv.block_job_start(&dom, &a.path, spec, bw)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

/// `virDomainBlockRebase`: with COPY it is the old block copy API (what
/// `virsh blockcopy` sends without --format); otherwise a pull onto `base`.
async fn block_rebase(drv: &Driver, a: Result<DomainBlockRebaseArgs, VirError>) -> Reply {
    let a = a?;
    check_flags(
        "virDomainBlockRebase",
        a.flags,
        REBASE_SHALLOW | REBASE_REUSE_EXT | REBASE_COPY_RAW | REBASE_COPY | REBASE_BANDWIDTH_BYTES,
    )?;
    let bw = bandwidth(a.bandwidth, a.flags & REBASE_BANDWIDTH_BYTES != 0)?;
    let spec = if a.flags & REBASE_COPY != 0 {
        let dest = a
            .base
            .as_deref()
            .ok_or_else(|| invalid_arg("block copy needs a destination"))
            .and_then(abs_path)?;
        BlockJobSpec::Copy(CopySpec {
            dest,
            format: (a.flags & REBASE_COPY_RAW != 0).then(|| "raw".to_owned()),
            shallow: a.flags & REBASE_SHALLOW != 0,
            reuse_external: a.flags & REBASE_REUSE_EXT != 0,
        })
    } else {
        BlockJobSpec::Pull {
            base: a.base.as_deref().map(abs_path).transpose()?,
        }
    };
    let dom = resolve(drv, &a.dom)?;
    drv.block_job_start(&dom, &a.path, spec, bw)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn block_pull(drv: &Driver, a: Result<DomainBlockPullArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainBlockPull", a.flags, PULL_BANDWIDTH_BYTES)?;
    let bw = bandwidth(a.bandwidth, a.flags & PULL_BANDWIDTH_BYTES != 0)?;
    let dom = resolve(drv, &a.dom)?;
    drv.block_job_start(&dom, &a.path, BlockJobSpec::Pull { base: None }, bw)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn block_commit(drv: &Driver, a: Result<DomainBlockCommitArgs, VirError>) -> Reply {
    let a = a?;
    check_flags(
        "virDomainBlockCommit",
        a.flags,
        COMMIT_SHALLOW | COMMIT_ACTIVE | COMMIT_BANDWIDTH_BYTES,
    )?;
    if a.flags & COMMIT_SHALLOW != 0 {
        return Err(unsupported_flags("virDomainBlockCommit", COMMIT_SHALLOW));
    }
    let bw = bandwidth(a.bandwidth, a.flags & COMMIT_BANDWIDTH_BYTES != 0)?;
    let path_of = |p: Option<String>| -> Result<Option<PathBuf>, VirError> {
        // virsh passes the disk target for "the active layer".
        match p {
            Some(p) if p == a.disk => Ok(None),
            Some(p) => abs_path(&p).map(Some),
            None => Ok(None),
        }
    };
    let spec = BlockJobSpec::Commit {
        base: path_of(a.base.clone())?,
        top: path_of(a.top.clone())?,
        active: a.flags & COMMIT_ACTIVE != 0,
    };
    let dom = resolve(drv, &a.dom)?;
    drv.block_job_start(&dom, &a.disk, spec, bw)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn block_job_abort(drv: &Driver, a: Result<DomainBlockJobAbortArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainBlockJobAbort", a.flags, ABORT_ASYNC | ABORT_PIVOT)?;
    let dom = resolve(drv, &a.dom)?;
    let opts = AbortOptions {
        pivot: a.flags & ABORT_PIVOT != 0,
        asynchronous: a.flags & ABORT_ASYNC != 0,
    };
    drv.block_job_abort(&dom, &a.path, opts)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn block_job_speed(drv: &Driver, a: Result<DomainBlockJobSetSpeedArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainBlockJobSetSpeed", a.flags, SPEED_BANDWIDTH_BYTES)?;
    let bw = bandwidth(a.bandwidth, a.flags & SPEED_BANDWIDTH_BYTES != 0)?;
    let dom = resolve(drv, &a.dom)?;
    drv.block_job_set_speed(&dom, &a.path, bw)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn block_job_info(drv: &Driver, a: Result<DomainGetBlockJobInfoArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virDomainGetBlockJobInfo", a.flags, SPEED_BANDWIDTH_BYTES)?;
    let dom = resolve(drv, &a.dom)?;
    let info = drv.block_job_info(&dom, &a.path).await.map_err(vir)?;
    let bytes = a.flags & SPEED_BANDWIDTH_BYTES != 0;
    let ret = match info {
        None => DomainGetBlockJobInfoRet {
            found: 0,
            type_: 0,
            bandwidth: 0,
            cur: 0,
            end: 0,
        },
        Some(i) => DomainGetBlockJobInfoRet {
            found: 1,
            type_: i.job_type,
            bandwidth: if bytes {
                i.bandwidth
            } else {
                i.bandwidth / MIB
            },
            cur: i.cur,
            end: i.end,
        },
    };
    encode_ret(&ret)
}
