//! Block jobs: copy (and rebase as copy), pull, commit; abort/pivot, speed
//! and info.
//!
//! The driver runs each as an async job driven by QEMU events; these
//! handlers only translate libvirt's arguments and flags. The info call
//! takes no job, so `blockjob --info` (and virsh `--wait`, which polls it)
//! answers while the job holds the domain.

use std::path::PathBuf;

use qemu::jobs::blockjob::{BlockJobSpec, CopySpec, parse_copy_dest};
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainBlockCommitArgs, DomainBlockCopyArgs, DomainBlockRebaseArgs, DomainGetBlockJobInfoRet,
    DomainPathBandwidthArgs, DomainPathFlagsArgs, TypedParamValue,
};
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{abs_path, invalid_arg, vir};

const MIB: u64 = 1 << 20;

/// A bandwidth argument in bytes/s (MiB/s unless `bytes`).
fn bandwidth(v: u64, bytes: bool) -> Result<u64, VirError> {
    if bytes {
        return Ok(v);
    }
    v.checked_mul(MIB)
        .ok_or_else(|| invalid_arg(format!("bandwidth {v} MiB/s is too large")))
}

/// `virDomainBlockCopy` (`virsh blockcopy` with `--format` or XML).
pub(crate) async fn block_copy(d: &Daemon, _: &CallContext, a: DomainBlockCopyArgs) -> Reply<()> {
    flags::check(
        "virDomainBlockCopy",
        a.flags,
        f::BLOCK_COPY_SHALLOW | f::BLOCK_COPY_REUSE_EXT,
    )?;
    let (dest, format) = parse_copy_dest(&a.destxml).map_err(vir)?;
    let mut bw = 0;
    for p in &a.params {
        match (p.field.as_str(), &p.value) {
            ("bandwidth", TypedParamValue::ULLong(v)) => bw = *v,
            // Tuning QEMU picks well by itself.
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
        shallow: a.flags & f::BLOCK_COPY_SHALLOW != 0,
        reuse_external: a.flags & f::BLOCK_COPY_REUSE_EXT != 0,
    });
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_job_start(&dom, &a.path, spec, bw)
        .await
        .map_err(vir)
}

/// `virDomainBlockRebase`: with COPY it is the old block copy API (what
/// `virsh blockcopy` sends without --format); otherwise a pull onto `base`.
pub(crate) async fn block_rebase(
    d: &Daemon,
    _: &CallContext,
    a: DomainBlockRebaseArgs,
) -> Reply<()> {
    flags::check(
        "virDomainBlockRebase",
        a.flags,
        f::BLOCK_REBASE_SHALLOW
            | f::BLOCK_REBASE_REUSE_EXT
            | f::BLOCK_REBASE_COPY_RAW
            | f::BLOCK_REBASE_COPY
            | f::BLOCK_REBASE_BANDWIDTH_BYTES,
    )?;
    let bw = bandwidth(a.bandwidth, a.flags & f::BLOCK_REBASE_BANDWIDTH_BYTES != 0)?;
    let spec = if a.flags & f::BLOCK_REBASE_COPY != 0 {
        let dest = a
            .base
            .as_deref()
            .ok_or_else(|| invalid_arg("block copy needs a destination"))
            .and_then(abs_path)?;
        BlockJobSpec::Copy(CopySpec {
            dest,
            format: (a.flags & f::BLOCK_REBASE_COPY_RAW != 0).then(|| "raw".to_owned()),
            shallow: a.flags & f::BLOCK_REBASE_SHALLOW != 0,
            reuse_external: a.flags & f::BLOCK_REBASE_REUSE_EXT != 0,
        })
    } else {
        BlockJobSpec::Pull {
            base: a.base.as_deref().map(abs_path).transpose()?,
        }
    };
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_job_start(&dom, &a.path, spec, bw)
        .await
        .map_err(vir)
}

pub(crate) async fn block_pull(
    d: &Daemon,
    _: &CallContext,
    a: DomainPathBandwidthArgs,
) -> Reply<()> {
    flags::check("virDomainBlockPull", a.flags, f::BLOCK_PULL_BANDWIDTH_BYTES)?;
    let bw = bandwidth(a.bandwidth, a.flags & f::BLOCK_PULL_BANDWIDTH_BYTES != 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_job_start(&dom, &a.path, BlockJobSpec::Pull { base: None }, bw)
        .await
        .map_err(vir)
}

/// `virsh blockcommit`. A shallow commit is refused: base is always the
/// image below `top` or the one named.
pub(crate) async fn block_commit(
    d: &Daemon,
    _: &CallContext,
    a: DomainBlockCommitArgs,
) -> Reply<()> {
    flags::check(
        "virDomainBlockCommit",
        a.flags,
        f::BLOCK_COMMIT_ACTIVE | f::BLOCK_COMMIT_BANDWIDTH_BYTES,
    )?;
    let bw = bandwidth(a.bandwidth, a.flags & f::BLOCK_COMMIT_BANDWIDTH_BYTES != 0)?;
    let spec = BlockJobSpec::Commit {
        base: layer(&a.disk, a.base.as_deref())?,
        top: layer(&a.disk, a.top.as_deref())?,
        active: a.flags & f::BLOCK_COMMIT_ACTIVE != 0,
    };
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_job_start(&dom, &a.disk, spec, bw)
        .await
        .map_err(vir)
}

/// A commit's base or top: virsh passes the disk target for "the active
/// layer", which is the driver's default (`None`).
fn layer(disk: &str, path: Option<&str>) -> Result<Option<PathBuf>, VirError> {
    match path {
        Some(p) if p == disk => Ok(None),
        Some(p) => abs_path(p).map(Some),
        None => Ok(None),
    }
}

/// `virsh blockjob --abort [--pivot] [--async]`.
pub(crate) async fn block_job_abort(
    d: &Daemon,
    _: &CallContext,
    a: DomainPathFlagsArgs,
) -> Reply<()> {
    flags::check(
        "virDomainBlockJobAbort",
        a.flags,
        f::BLOCK_JOB_ABORT_ASYNC | f::BLOCK_JOB_ABORT_PIVOT,
    )?;
    let pivot = a.flags & f::BLOCK_JOB_ABORT_PIVOT != 0;
    let asynchronous = a.flags & f::BLOCK_JOB_ABORT_ASYNC != 0;
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_job_abort(&dom, &a.path, pivot, asynchronous)
        .await
        .map_err(vir)
}

pub(crate) async fn block_job_set_speed(
    d: &Daemon,
    _: &CallContext,
    a: DomainPathBandwidthArgs,
) -> Reply<()> {
    flags::check(
        "virDomainBlockJobSetSpeed",
        a.flags,
        f::BLOCK_JOB_SPEED_BANDWIDTH_BYTES,
    )?;
    let bw = bandwidth(
        a.bandwidth,
        a.flags & f::BLOCK_JOB_SPEED_BANDWIDTH_BYTES != 0,
    )?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .block_job_set_speed(&dom, &a.path, bw)
        .await
        .map_err(vir)
}

/// `virsh blockjob --info`: no job taken.
pub(crate) async fn get_block_job_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainPathFlagsArgs,
) -> Reply<DomainGetBlockJobInfoRet> {
    flags::check(
        "virDomainGetBlockJobInfo",
        a.flags,
        f::BLOCK_JOB_INFO_BANDWIDTH_BYTES,
    )?;
    let dom = d.domain(&a.dom)?;
    let info = d.driver.block_job_info(&dom, &a.path).await.map_err(vir)?;
    let bytes = a.flags & f::BLOCK_JOB_INFO_BANDWIDTH_BYTES != 0;
    Ok(match info {
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
    })
}
