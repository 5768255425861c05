//! The domain's job: `domjobinfo` (running or last completed) and
//! `domjobabort`.

use qemu::{JobStats, JobType};
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainArgs, DomainFlagsArgs, DomainGetJobInfoRet, DomainGetJobStatsRet, TypedParam,
    TypedParamValue,
};
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::vir;

pub(crate) async fn get_job_info(
    d: &Daemon,
    _: &CallContext,
    a: DomainArgs,
) -> Reply<DomainGetJobInfoRet> {
    let j = d.driver.job_info(&*d.domain(&a.dom)?).await.map_err(vir)?;
    let r = &j.ram;
    let disk = j.disk.unwrap_or_default();
    Ok(DomainGetJobInfoRet {
        type_: j.job_type as i32,
        time_elapsed: j.elapsed_ms,
        time_remaining: 0,
        data_total: r.total.saturating_add(disk.total),
        data_processed: r.transferred.saturating_add(disk.processed),
        data_remaining: r.remaining.saturating_add(disk.remaining),
        mem_total: r.total,
        mem_processed: r.transferred,
        mem_remaining: r.remaining,
        file_total: disk.total,
        file_processed: disk.processed,
        file_remaining: disk.remaining,
    })
}

/// `virDomainGetJobStats`: the running job, or with
/// `VIR_DOMAIN_JOB_STATS_COMPLETED` the last one that ended (discarded
/// once read unless `..._KEEP_COMPLETED`, which alone is ignored).
pub(crate) async fn get_job_stats(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainGetJobStatsRet> {
    let dom = d.domain(&a.dom)?;
    let j = match completed_mode(a.flags)? {
        Some(keep) => d.driver.completed_job_stats(&dom, keep),
        None => d.driver.job_info(&dom).await.map_err(vir)?,
    };
    Ok(DomainGetJobStatsRet {
        type_: j.job_type as i32,
        params: job_params(&j),
    })
}

pub(crate) async fn abort_job(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.abort_job(&dom).await.map_err(vir)
}

/// `Some(keep)` when `flags` ask for the completed job, `None` for the
/// running one; unknown flags are refused.
fn completed_mode(flags: u32) -> Result<Option<bool>, VirError> {
    flags::check(
        "virDomainGetJobStats",
        flags,
        f::JOB_STATS_COMPLETED | f::JOB_STATS_KEEP_COMPLETED,
    )?;
    Ok((flags & f::JOB_STATS_COMPLETED != 0).then_some(flags & f::JOB_STATS_KEEP_COMPLETED != 0))
}

/// The typed parameters of a job's statistics (none without a job). A
/// save moves only guest memory, so its data and memory totals agree; a
/// migration that copies disks adds their bytes to the data totals.
pub(crate) fn job_params(j: &JobStats) -> Vec<TypedParam> {
    if j.job_type == JobType::None {
        return Vec::new();
    }
    let r = &j.ram;
    let mut params = Vec::with_capacity(16);
    if let Some(op) = j.operation {
        params.push(param_int("operation", op.as_i32()));
    }
    let disk = j.disk.unwrap_or_default();
    params.extend([
        param_u64("time_elapsed", j.elapsed_ms),
        param_u64("data_total", r.total.saturating_add(disk.total)),
        param_u64(
            "data_processed",
            r.transferred.saturating_add(disk.processed),
        ),
        param_u64("data_remaining", r.remaining.saturating_add(disk.remaining)),
        param_u64("memory_total", r.total),
        param_u64("memory_processed", r.transferred),
        param_u64("memory_remaining", r.remaining),
    ]);
    let optional = [
        ("memory_bps", r.bps),
        ("memory_constant", r.constant),
        ("memory_normal", r.normal),
        ("memory_normal_bytes", r.normal_bytes),
        ("memory_iteration", r.iteration),
        ("memory_page_size", r.page_size),
    ];
    params.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| param_u64(k, v))),
    );
    if let Some(d) = j.disk {
        params.extend([
            param_u64("disk_total", d.total),
            param_u64("disk_processed", d.processed),
            param_u64("disk_remaining", d.remaining),
        ]);
    }
    if let Some(ms) = j.downtime_ms {
        params.push(param_u64("downtime", ms));
    }
    if let Some(ok) = j.success {
        params.push(TypedParam {
            field: "success".into(),
            value: TypedParamValue::Boolean(i32::from(ok)),
        });
    }
    if let Some(msg) = &j.error {
        params.push(TypedParam {
            field: "errmsg".into(),
            value: TypedParamValue::String(msg.clone()),
        });
    }
    params
}

fn param_u64(field: &str, v: u64) -> TypedParam {
    TypedParam {
        field: field.into(),
        value: TypedParamValue::ULLong(v),
    }
}

fn param_int(field: &str, v: i32) -> TypedParam {
    TypedParam {
        field: field.into(),
        value: TypedParamValue::Int(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qemu::{CompletedJob, JobEnd, RamStats};

    #[test]
    fn job_stats_flags() {
        assert_eq!(completed_mode(0).unwrap(), None);
        assert_eq!(completed_mode(f::JOB_STATS_KEEP_COMPLETED).unwrap(), None);
        assert_eq!(completed_mode(f::JOB_STATS_COMPLETED).unwrap(), Some(false));
        assert_eq!(completed_mode(3).unwrap(), Some(true));
        // libvirt answers unknown flags with VIR_ERR_INVALID_ARG.
        let e = completed_mode(4).unwrap_err();
        assert_eq!(e.code, virterror::ErrorCode::InvalidArg, "{e:?}");
        assert!(e.message.contains("virDomainGetJobStats"), "{e:?}");
    }

    fn field<'a>(params: &'a [TypedParam], name: &str) -> Option<&'a TypedParamValue> {
        params.iter().find(|p| p.field == name).map(|p| &p.value)
    }

    #[test]
    fn completed_save_params() {
        let done = CompletedJob {
            end: JobEnd::Completed,
            operation: qemu::JobOperation::Save,
            elapsed_ms: 250,
            ram: RamStats {
                total: 100,
                transferred: 90,
                remaining: 0,
                page_size: Some(4096),
                ..RamStats::default()
            },
            error: None,
            downtime_ms: None,
        };
        let p = job_params(&done.stats());
        assert_eq!(p[0].field, "operation", "operation comes first");
        assert_eq!(field(&p, "operation"), Some(&TypedParamValue::Int(2)));
        assert_eq!(
            field(&p, "time_elapsed"),
            Some(&TypedParamValue::ULLong(250))
        );
        assert_eq!(
            field(&p, "data_processed"),
            Some(&TypedParamValue::ULLong(90))
        );
        assert_eq!(
            field(&p, "memory_total"),
            Some(&TypedParamValue::ULLong(100))
        );
        assert_eq!(
            field(&p, "memory_page_size"),
            Some(&TypedParamValue::ULLong(4096))
        );
        assert_eq!(
            field(&p, "memory_bps"),
            None,
            "unreported counters are left out"
        );
        assert_eq!(field(&p, "success"), Some(&TypedParamValue::Boolean(1)));
        assert_eq!(field(&p, "errmsg"), None);
        let mut names: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), p.len(), "no duplicate fields");
    }

    #[test]
    fn cancelled_save_params_and_no_job() {
        let done = CompletedJob {
            end: JobEnd::Cancelled,
            operation: qemu::JobOperation::Save,
            elapsed_ms: 1,
            ram: RamStats::default(),
            error: Some("save job cancelled".into()),
            downtime_ms: None,
        };
        let st = done.stats();
        assert_eq!(st.job_type as i32, 5);
        let p = job_params(&st);
        assert_eq!(field(&p, "success"), Some(&TypedParamValue::Boolean(0)));
        assert_eq!(
            field(&p, "errmsg"),
            Some(&TypedParamValue::String("save job cancelled".into()))
        );
        assert!(job_params(&JobStats::none()).is_empty());
    }
}
