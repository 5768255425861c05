//! Domain procedures: lookups, definitions, lifecycle and queries.
//!
//! Queries (info, state, XML, lists, lookups) read the driver's snapshot
//! and never wait behind a job; lifecycle calls go through the driver's job
//! lock; destroy never waits behind anything.

use bytes::Bytes;
use qemu::{Domain, Driver, JobStats, JobType, ListFilter, StartOptions};
use rpc::CallContext;
use rpc::protocol::remote::{
    ConnectListAllDomainsArgs, ConnectListAllDomainsRet, ConnectListDefinedDomainsArgs,
    ConnectListDefinedDomainsRet, ConnectListDomainsArgs, ConnectListDomainsRet, DomainArgs,
    DomainCreateXmlArgs, DomainDefineXmlArgs, DomainDefineXmlFlagsArgs, DomainFlagsArgs,
    DomainGetAutostartRet, DomainGetControlInfoRet, DomainGetInfoRet, DomainGetJobInfoRet,
    DomainGetJobStatsRet, DomainGetMaxMemoryRet, DomainGetOsTypeRet, DomainGetStateRet,
    DomainGetXmlDescRet, DomainHasManagedSaveImageRet, DomainIsActiveRet, DomainIsPersistentRet,
    DomainIsUpdatedRet, DomainLookupByIdArgs, DomainLookupByNameArgs, DomainLookupByUuidArgs,
    DomainRet, DomainSetAutostartArgs, NumRet, TypedParam, TypedParamValue, procedure as p,
};
use rpc::server::{decode_args, encode_ret};
use virterror::VirError;

use crate::dispatch::Daemon;
use crate::wire::{check_flags, resolve, vir, wire_domain};

type Reply = Result<Bytes, VirError>;

// virConnectListAllDomainsFlags
const LIST_ACTIVE: u32 = 1;
const LIST_INACTIVE: u32 = 2;
const LIST_PERSISTENT: u32 = 4;
const LIST_TRANSIENT: u32 = 8;
const LIST_RUNNING: u32 = 16;
const LIST_PAUSED: u32 = 32;
const LIST_SHUTOFF: u32 = 64;
const LIST_OTHER: u32 = 128;
const LIST_MANAGEDSAVE: u32 = 256;
const LIST_NO_MANAGEDSAVE: u32 = 512;
const LIST_AUTOSTART: u32 = 1024;
const LIST_NO_AUTOSTART: u32 = 2048;
const LIST_HAS_SNAPSHOT: u32 = 4096;
const LIST_NO_SNAPSHOT: u32 = 8192;
const LIST_HAS_CHECKPOINT: u32 = 16384;
const LIST_NO_CHECKPOINT: u32 = 32768;
const LIST_ALL_FLAGS: u32 = 65535;

// virDomainCreateFlags
const START_PAUSED: u32 = 1;
const START_AUTODESTROY: u32 = 2;
const START_BYPASS_CACHE: u32 = 4;
const START_FORCE_BOOT: u32 = 8;
const START_VALIDATE: u32 = 16;
// virDomainDestroyFlags
const DESTROY_GRACEFUL: u32 = 1;
// virDomainShutdownFlagValues / virDomainRebootFlagValues: default or ACPI.
const POWER_ACPI: u32 = 1;
// virDomainXMLFlags
const XML_SECURE: u32 = 1;
const XML_INACTIVE: u32 = 2;
const XML_UPDATE_CPU: u32 = 4;
const XML_MIGRATABLE: u32 = 8;
// virDomainDefineFlags
const DEFINE_VALIDATE: u32 = 1;
// virDomainUndefineFlagsValues that are no-ops here (no managed save,
// snapshots, checkpoints, nvram or TPM state to remove).
const UNDEFINE_HARMLESS: u32 = 1 | 2 | 4 | 8 | 16 | 32 | 64;
// virDomainGetJobStatsFlags
const JOB_STATS_COMPLETED: u32 = 1;
const JOB_STATS_KEEP_COMPLETED: u32 = 2;
// virDomainVcpuFlags
const VCPU_MAXIMUM: u32 = 4;
const VCPU_ALL: u32 = 1 | 2 | 4 | 8;

/// Serves a domain procedure, or `None` if `proc_` is not one.
pub(crate) async fn call(d: &Daemon, _ctx: &CallContext, proc_: i32, args: &[u8]) -> Option<Reply> {
    let drv = &d.driver;
    Some(match proc_ {
        p::CONNECT_LIST_ALL_DOMAINS => list_all(drv, decode_args(proc_, args)),
        p::CONNECT_NUM_OF_DOMAINS => num(drv.list(ListFilter::Active).len()),
        p::CONNECT_LIST_DOMAINS => list_ids(drv, decode_args(proc_, args)),
        p::CONNECT_NUM_OF_DEFINED_DOMAINS => num(defined(drv).len()),
        p::CONNECT_LIST_DEFINED_DOMAINS => list_defined(drv, decode_args(proc_, args)),
        p::DOMAIN_LOOKUP_BY_NAME => lookup_name(drv, decode_args(proc_, args)),
        p::DOMAIN_LOOKUP_BY_UUID => lookup_uuid(drv, decode_args(proc_, args)),
        p::DOMAIN_LOOKUP_BY_ID => lookup_id(drv, decode_args(proc_, args)),
        p::DOMAIN_DEFINE_XML => {
            define(
                drv,
                decode_args::<DomainDefineXmlArgs>(proc_, args).map(|a| (a.xml, 0)),
            )
            .await
        }
        p::DOMAIN_DEFINE_XML_FLAGS => {
            define(
                drv,
                decode_args::<DomainDefineXmlFlagsArgs>(proc_, args).map(|a| (a.xml, a.flags)),
            )
            .await
        }
        p::DOMAIN_CREATE_XML => create_xml(drv, decode_args(proc_, args)).await,
        p::DOMAIN_CREATE => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.start(&dom, false).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_CREATE_WITH_FLAGS => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                check_flags(
                    "virDomainCreateWithFlags",
                    flags,
                    START_PAUSED
                        | START_AUTODESTROY
                        | START_BYPASS_CACHE
                        | START_FORCE_BOOT
                        | START_VALIDATE,
                )?;
                let opts = StartOptions {
                    paused: flags & START_PAUSED != 0,
                    force_boot: flags & START_FORCE_BOOT != 0,
                };
                drv.start_with(&dom, opts).await.map_err(vir)?;
                encode_ret(&DomainRet {
                    dom: wire_domain(&dom),
                })
            })
            .await
        }
        p::DOMAIN_UNDEFINE => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.undefine(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_UNDEFINE_FLAGS => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                check_flags("virDomainUndefineFlags", flags, UNDEFINE_HARMLESS)?;
                drv.undefine(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_DESTROY => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.destroy(&dom, false).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_DESTROY_FLAGS => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                check_flags("virDomainDestroyFlags", flags, DESTROY_GRACEFUL)?;
                drv.destroy(&dom, flags & DESTROY_GRACEFUL != 0)
                    .await
                    .map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_SHUTDOWN => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.shutdown(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_SHUTDOWN_FLAGS => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                check_flags("virDomainShutdownFlags", flags, POWER_ACPI)?;
                drv.shutdown(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_REBOOT => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                check_flags("virDomainReboot", flags, POWER_ACPI)?;
                drv.reboot(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_RESET => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                check_flags("virDomainReset", flags, 0)?;
                drv.reset(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_SUSPEND => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.suspend(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_RESUME => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.resume(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_SET_AUTOSTART => set_autostart(drv, decode_args(proc_, args)).await,
        p::DOMAIN_ABORT_JOB => {
            with_dom(drv, proc_, args, |dom| async move {
                drv.abort_job(&dom).await.map_err(vir)?;
                Ok(Bytes::new())
            })
            .await
        }
        p::DOMAIN_GET_JOB_INFO => {
            with_dom(
                drv,
                proc_,
                args,
                |dom| async move { job_info(drv, &dom).await },
            )
            .await
        }
        p::DOMAIN_GET_JOB_STATS => {
            with_dom_flags(drv, proc_, args, |dom, flags| async move {
                job_stats(drv, &dom, flags).await
            })
            .await
        }
        _ => return query(drv, proc_, args),
    })
}

/// Snapshot queries: synchronous, no job, no monitor.
fn query(drv: &Driver, proc_: i32, args: &[u8]) -> Option<Reply> {
    Some(match proc_ {
        p::DOMAIN_GET_INFO => sync_dom(drv, proc_, args, |dom| {
            let i = drv.info(dom);
            encode_ret(&DomainGetInfoRet {
                state: i.state.as_i32() as u8,
                max_mem: i.max_mem_kib,
                memory: i.memory_kib,
                nr_virt_cpu: u16::try_from(i.nr_virt_cpu).unwrap_or(u16::MAX),
                cpu_time: i.cpu_time_ns,
            })
        }),
        p::DOMAIN_GET_STATE => sync_dom_flags(drv, proc_, args, |dom, flags| {
            check_flags("virDomainGetState", flags, 0)?;
            let s = drv.state(dom);
            encode_ret(&DomainGetStateRet {
                state: s.state.as_i32(),
                reason: s.reason,
            })
        }),
        p::DOMAIN_GET_CONTROL_INFO => sync_dom_flags(drv, proc_, args, |dom, flags| {
            check_flags("virDomainGetControlInfo", flags, 0)?;
            let c = drv.control_info(dom);
            encode_ret(&DomainGetControlInfoRet {
                state: c.state as u32,
                details: c.details,
                state_time: c.state_time_ms,
            })
        }),
        p::DOMAIN_GET_XML_DESC => sync_dom_flags(drv, proc_, args, |dom, flags| {
            check_flags(
                "virDomainGetXMLDesc",
                flags,
                XML_SECURE | XML_INACTIVE | XML_UPDATE_CPU | XML_MIGRATABLE,
            )?;
            let xml = drv
                .get_xml(dom, flags & (XML_INACTIVE | XML_MIGRATABLE) != 0)
                .map_err(vir)?;
            encode_ret(&DomainGetXmlDescRet { xml })
        }),
        p::DOMAIN_GET_OS_TYPE => sync_dom(drv, proc_, args, |_| {
            encode_ret(&DomainGetOsTypeRet {
                type_: "hvm".into(),
            })
        }),
        p::DOMAIN_IS_ACTIVE => sync_dom(drv, proc_, args, |dom| {
            encode_ret(&DomainIsActiveRet {
                active: i32::from(dom.is_active()),
            })
        }),
        p::DOMAIN_IS_PERSISTENT => sync_dom(drv, proc_, args, |dom| {
            encode_ret(&DomainIsPersistentRet {
                persistent: i32::from(dom.is_persistent()),
            })
        }),
        p::DOMAIN_IS_UPDATED => sync_dom(drv, proc_, args, |_| {
            encode_ret(&DomainIsUpdatedRet { updated: 0 })
        }),
        p::DOMAIN_GET_AUTOSTART => sync_dom(drv, proc_, args, |dom| {
            encode_ret(&DomainGetAutostartRet {
                autostart: i32::from(drv.get_autostart(dom)),
            })
        }),
        p::DOMAIN_GET_MAX_MEMORY => sync_dom(drv, proc_, args, |dom| {
            encode_ret(&DomainGetMaxMemoryRet {
                memory: drv.info(dom).max_mem_kib,
            })
        }),
        p::DOMAIN_HAS_MANAGED_SAVE_IMAGE => sync_dom_flags(drv, proc_, args, |dom, flags| {
            check_flags("virDomainHasManagedSaveImage", flags, 0)?;
            encode_ret(&DomainHasManagedSaveImageRet {
                result: i32::from(drv.has_managed_save(dom)),
            })
        }),
        p::DOMAIN_GET_VCPUS_FLAGS => sync_dom_flags(drv, proc_, args, |dom, flags| {
            check_flags("virDomainGetVcpusFlags", flags, VCPU_ALL)?;
            let _ = flags & VCPU_MAXIMUM;
            encode_ret(&NumRet {
                num: i32::try_from(drv.info(dom).nr_virt_cpu).unwrap_or(i32::MAX),
            })
        }),
        p::DOMAIN_GET_MAX_VCPUS => sync_dom(drv, proc_, args, |dom| {
            encode_ret(&NumRet {
                num: i32::try_from(drv.info(dom).nr_virt_cpu).unwrap_or(i32::MAX),
            })
        }),
        _ => return None,
    })
}

fn num(n: usize) -> Reply {
    encode_ret(&NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    })
}

/// Inactive persistent domains (what `virsh list --inactive` shows).
fn defined(drv: &Driver) -> Vec<qemu::DomainSummary> {
    drv.list(ListFilter::Inactive)
        .into_iter()
        .filter(|s| s.persistent)
        .collect()
}

fn list_all(drv: &Driver, a: Result<ConnectListAllDomainsArgs, VirError>) -> Reply {
    let a = a?;
    check_flags("virConnectListAllDomains", a.flags, LIST_ALL_FLAGS)?;
    let f = a.flags;
    let want = |s: &qemu::DomainSummary, managed_save: bool| -> bool {
        use qemu::DomainState as S;
        let active = s.state.state.is_active();
        let pick = |on: u32, off: u32, v: bool| {
            (f & (on | off)) == 0 || (f & on != 0 && v) || (f & off != 0 && !v)
        };
        let st = s.state.state;
        let state_ok = f & (LIST_RUNNING | LIST_PAUSED | LIST_SHUTOFF | LIST_OTHER) == 0
            || (f & LIST_RUNNING != 0 && st == S::Running)
            || (f & LIST_PAUSED != 0 && st == S::Paused)
            || (f & LIST_SHUTOFF != 0 && st == S::Shutoff)
            || (f & LIST_OTHER != 0 && !matches!(st, S::Running | S::Paused | S::Shutoff));
        pick(LIST_ACTIVE, LIST_INACTIVE, active)
            && pick(LIST_PERSISTENT, LIST_TRANSIENT, s.persistent)
            && state_ok
            && pick(LIST_MANAGEDSAVE, LIST_NO_MANAGEDSAVE, managed_save)
            && pick(LIST_AUTOSTART, LIST_NO_AUTOSTART, s.autostart)
            && pick(LIST_HAS_SNAPSHOT, LIST_NO_SNAPSHOT, false)
            && pick(LIST_HAS_CHECKPOINT, LIST_NO_CHECKPOINT, false)
    };
    let doms: Vec<_> = drv
        .list(ListFilter::All)
        .into_iter()
        .filter(|s| {
            let ms = drv
                .lookup_by_uuid(&s.uuid)
                .map(|d| drv.has_managed_save(&d))
                .unwrap_or(false);
            want(s, ms)
        })
        .map(|s| rpc::protocol::remote::NonnullDomain {
            name: s.name,
            uuid: *s.uuid.as_bytes(),
            id: s.id.map_or(-1, |id| id as i32),
        })
        .collect();
    let count = u32::try_from(doms.len()).unwrap_or(u32::MAX);
    encode_ret(&ConnectListAllDomainsRet {
        domains: if a.need_results != 0 {
            doms
        } else {
            Vec::new()
        },
        ret: count,
    })
}

fn list_ids(drv: &Driver, a: Result<ConnectListDomainsArgs, VirError>) -> Reply {
    let max = usize::try_from(a?.maxids).unwrap_or(0);
    let ids = drv
        .list(ListFilter::Active)
        .into_iter()
        .filter_map(|s| s.id.map(|id| id as i32))
        .take(max)
        .collect();
    encode_ret(&ConnectListDomainsRet { ids })
}

fn list_defined(drv: &Driver, a: Result<ConnectListDefinedDomainsArgs, VirError>) -> Reply {
    let max = usize::try_from(a?.maxnames).unwrap_or(0);
    let names = defined(drv).into_iter().map(|s| s.name).take(max).collect();
    encode_ret(&ConnectListDefinedDomainsRet { names })
}

fn lookup_name(drv: &Driver, a: Result<DomainLookupByNameArgs, VirError>) -> Reply {
    let dom = drv.lookup_by_name(&a?.name).map_err(vir)?;
    encode_ret(&DomainRet {
        dom: wire_domain(&dom),
    })
}

fn lookup_uuid(drv: &Driver, a: Result<DomainLookupByUuidArgs, VirError>) -> Reply {
    let dom = drv
        .lookup_by_uuid(&uuid::Uuid::from_bytes(a?.uuid))
        .map_err(vir)?;
    encode_ret(&DomainRet {
        dom: wire_domain(&dom),
    })
}

fn lookup_id(drv: &Driver, a: Result<DomainLookupByIdArgs, VirError>) -> Reply {
    let id = u32::try_from(a?.id).map_err(|_| crate::wire::invalid_arg("negative domain id"))?;
    let dom = drv.lookup_by_id(id).map_err(vir)?;
    encode_ret(&DomainRet {
        dom: wire_domain(&dom),
    })
}

async fn define(drv: &Driver, a: Result<(String, u32), VirError>) -> Reply {
    let (xml, flags) = a?;
    check_flags("virDomainDefineXMLFlags", flags, DEFINE_VALIDATE)?;
    let dom = drv.define_xml(&xml).await.map_err(vir)?;
    encode_ret(&DomainRet {
        dom: wire_domain(&dom),
    })
}

async fn create_xml(drv: &Driver, a: Result<DomainCreateXmlArgs, VirError>) -> Reply {
    let a = a?;
    check_flags(
        "virDomainCreateXML",
        a.flags,
        START_PAUSED | START_AUTODESTROY | START_BYPASS_CACHE | START_FORCE_BOOT | START_VALIDATE,
    )?;
    let dom = drv
        .create_xml(&a.xml_desc, a.flags & START_PAUSED != 0)
        .await
        .map_err(vir)?;
    encode_ret(&DomainRet {
        dom: wire_domain(&dom),
    })
}

async fn set_autostart(drv: &Driver, a: Result<DomainSetAutostartArgs, VirError>) -> Reply {
    let a = a?;
    let dom = resolve(drv, &a.dom)?;
    drv.set_autostart(&dom, a.autostart != 0)
        .await
        .map_err(vir)?;
    Ok(Bytes::new())
}

async fn job_info(drv: &Driver, dom: &Domain) -> Reply {
    let j = drv.job_info(dom).await.map_err(vir)?;
    let r = &j.ram;
    encode_ret(&DomainGetJobInfoRet {
        type_: j.job_type as i32,
        time_elapsed: j.elapsed_ms,
        time_remaining: 0,
        data_total: r.total,
        data_processed: r.transferred,
        data_remaining: r.remaining,
        mem_total: r.total,
        mem_processed: r.transferred,
        mem_remaining: r.remaining,
        file_total: 0,
        file_processed: 0,
        file_remaining: 0,
    })
}

/// `virDomainGetJobStats`: the running job, or with
/// `VIR_DOMAIN_JOB_STATS_COMPLETED` the last one that ended (discarded
/// once read unless `..._KEEP_COMPLETED`, which alone is ignored).
async fn job_stats(drv: &Driver, dom: &Domain, flags: u32) -> Reply {
    let j = match completed_mode(flags)? {
        Some(keep) => drv.completed_job_stats(dom, keep),
        None => drv.job_info(dom).await.map_err(vir)?,
    };
    encode_ret(&DomainGetJobStatsRet {
        type_: j.job_type as i32,
        params: job_params(&j),
    })
}

/// `Some(keep)` when `flags` ask for the completed job, `None` for the
/// running one; unknown flags are refused.
fn completed_mode(flags: u32) -> Result<Option<bool>, VirError> {
    check_flags(
        "virDomainGetJobStats",
        flags,
        JOB_STATS_COMPLETED | JOB_STATS_KEEP_COMPLETED,
    )?;
    Ok((flags & JOB_STATS_COMPLETED != 0).then_some(flags & JOB_STATS_KEEP_COMPLETED != 0))
}

/// The typed parameters of a job's statistics (none without a job). A
/// save moves only guest memory, so its data and memory totals agree.
fn job_params(j: &JobStats) -> Vec<TypedParam> {
    if j.job_type == JobType::None {
        return Vec::new();
    }
    let r = &j.ram;
    let mut params = Vec::with_capacity(16);
    if let Some(op) = j.operation {
        params.push(param_int("operation", op.as_i32()));
    }
    params.extend([
        param_u64("time_elapsed", j.elapsed_ms),
        param_u64("data_total", r.total),
        param_u64("data_processed", r.transferred),
        param_u64("data_remaining", r.remaining),
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

async fn with_dom<'a, F, Fut>(drv: &'a Driver, proc_: i32, args: &[u8], f: F) -> Reply
where
    F: FnOnce(std::sync::Arc<Domain>) -> Fut,
    Fut: Future<Output = Reply> + 'a,
{
    let a: DomainArgs = decode_args(proc_, args)?;
    f(resolve(drv, &a.dom)?).await
}

async fn with_dom_flags<'a, F, Fut>(drv: &'a Driver, proc_: i32, args: &[u8], f: F) -> Reply
where
    F: FnOnce(std::sync::Arc<Domain>, u32) -> Fut,
    Fut: Future<Output = Reply> + 'a,
{
    let a: DomainFlagsArgs = decode_args(proc_, args)?;
    f(resolve(drv, &a.dom)?, a.flags).await
}

fn sync_dom(drv: &Driver, proc_: i32, args: &[u8], f: impl FnOnce(&Domain) -> Reply) -> Reply {
    let a: DomainArgs = decode_args(proc_, args)?;
    let dom = resolve(drv, &a.dom)?;
    f(&dom)
}

fn sync_dom_flags(
    drv: &Driver,
    proc_: i32,
    args: &[u8],
    f: impl FnOnce(&Domain, u32) -> Reply,
) -> Reply {
    let a: DomainFlagsArgs = decode_args(proc_, args)?;
    let dom = resolve(drv, &a.dom)?;
    f(&dom, a.flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qemu::{CompletedJob, JobEnd, JobOperation, RamStats};

    #[test]
    fn job_stats_flags() {
        assert_eq!(completed_mode(0).unwrap(), None);
        assert_eq!(completed_mode(JOB_STATS_KEEP_COMPLETED).unwrap(), None);
        assert_eq!(completed_mode(JOB_STATS_COMPLETED).unwrap(), Some(false));
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
            operation: JobOperation::Save,
            elapsed_ms: 250,
            ram: RamStats {
                total: 100,
                transferred: 90,
                remaining: 0,
                page_size: Some(4096),
                ..RamStats::default()
            },
            error: None,
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
            operation: JobOperation::Save,
            elapsed_ms: 1,
            ram: RamStats::default(),
            error: Some("save job cancelled".into()),
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
