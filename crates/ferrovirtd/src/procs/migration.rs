//! Live migration: libvirt's protocol v3 with typed parameters. The
//! client (virsh) calls begin, perform and confirm on the source daemon
//! and prepare and finish on the destination; these handlers translate
//! flags and parameters into the driver's and carry the cookies.

use qemu::{CopyStorage, MigrateFlags, MigrationParams};
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainFlagsArgs, DomainMigrateBegin3ParamsArgs, DomainMigrateBegin3ParamsRet,
    DomainMigrateConfirm3ParamsArgs, DomainMigrateFinish3ParamsArgs, DomainMigrateFinish3ParamsRet,
    DomainMigrateGetMaxDowntimeRet, DomainMigrateGetMaxSpeedRet, DomainMigratePerform3ParamsArgs,
    DomainMigratePerform3ParamsRet, DomainMigratePrepare3ParamsArgs,
    DomainMigratePrepare3ParamsRet, DomainMigrateSetMaxDowntimeArgs, DomainMigrateSetMaxSpeedArgs,
    TypedParam, TypedParamValue,
};
use rpc::xdr::Opaque;
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f};
use crate::wire::{invalid_arg, vir, wire_domain};

/// The `virDomainMigrateFlags` implemented. `--unsafe` only skips safety
/// checks this driver does not make.
const MIGRATE_FLAGS: u32 = f::MIGRATE_LIVE
    | f::MIGRATE_PEER2PEER
    | f::MIGRATE_PERSIST_DEST
    | f::MIGRATE_UNDEFINE_SOURCE
    | f::MIGRATE_PAUSED
    | f::MIGRATE_CHANGE_PROTECTION
    | f::MIGRATE_UNSAFE
    | f::MIGRATE_OFFLINE
    | f::MIGRATE_COMPRESSED
    | f::MIGRATE_AUTO_CONVERGE
    | f::MIGRATE_NON_SHARED_DISK
    | f::MIGRATE_NON_SHARED_INC
    | f::MIGRATE_POSTCOPY
    | f::MIGRATE_TLS;

/// The driver's flags from libvirt's, refusing the rest.
pub(super) fn migrate_flags(api: &str, bits: u32) -> Result<MigrateFlags, VirError> {
    flags::check(api, bits, MIGRATE_FLAGS)?;
    if bits & f::MIGRATE_OFFLINE != 0 && bits & f::MIGRATE_PERSIST_DEST == 0 {
        return Err(invalid_arg("offline migration requires --persistent"));
    }
    Ok(MigrateFlags {
        live: bits & f::MIGRATE_LIVE != 0,
        persist_dest: bits & f::MIGRATE_PERSIST_DEST != 0,
        undefine_source: bits & f::MIGRATE_UNDEFINE_SOURCE != 0,
        paused: bits & f::MIGRATE_PAUSED != 0,
        offline: bits & f::MIGRATE_OFFLINE != 0,
        auto_converge: bits & f::MIGRATE_AUTO_CONVERGE != 0,
        compressed: bits & f::MIGRATE_COMPRESSED != 0,
        copy_storage: copy_storage(bits),
        postcopy: bits & f::MIGRATE_POSTCOPY != 0,
        tls: bits & f::MIGRATE_TLS != 0,
    })
}

/// `--copy-storage-all` wins over `--copy-storage-inc`, as in libvirt.
fn copy_storage(bits: u32) -> CopyStorage {
    if bits & f::MIGRATE_NON_SHARED_DISK != 0 {
        CopyStorage::All
    } else if bits & f::MIGRATE_NON_SHARED_INC != 0 {
        CopyStorage::Incremental
    } else {
        CopyStorage::None
    }
}

/// The driver's parameters from `VIR_MIGRATE_PARAM_*`; one it does not
/// implement (or of the wrong type) is refused.
pub(super) fn migrate_params(params: &[TypedParam]) -> Result<MigrationParams, VirError> {
    let mut m = MigrationParams::default();
    for p in params {
        match (p.field.as_str(), &p.value) {
            ("migrate_uri", TypedParamValue::String(v)) => m.uri = Some(v.clone()),
            ("destination_name", TypedParamValue::String(v)) => m.dest_name = Some(v.clone()),
            ("destination_xml", TypedParamValue::String(v)) => m.dest_xml = Some(v.clone()),
            ("persistent_xml", TypedParamValue::String(v)) => m.persistent_xml = Some(v.clone()),
            ("listen_address", TypedParamValue::String(v)) => {
                m.listen_address = Some(v.clone());
            }
            ("bandwidth", TypedParamValue::ULLong(v)) => m.bandwidth_mib = Some(*v),
            ("bandwidth.postcopy", TypedParamValue::ULLong(v)) => {
                m.postcopy_bandwidth_mib = Some(*v);
            }
            ("migrate_disks", TypedParamValue::String(v)) => m.migrate_disks.push(v.clone()),
            (name, _) => {
                return Err(invalid_arg(format!(
                    "migration parameter '{name}' is not supported"
                )));
            }
        }
    }
    Ok(m)
}

pub(crate) async fn begin3_params(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainMigrateBegin3ParamsArgs,
) -> Reply<DomainMigrateBegin3ParamsRet> {
    let flags = migrate_flags("virDomainMigrateBegin3Params", a.flags)?;
    let params = migrate_params(&a.params)?;
    let dom = d.domain(&a.dom)?;
    let (xml, cookie) = d
        .driver
        .migrate_begin(&dom, &params, flags, ctx.client.0)
        .await
        .map_err(vir)?;
    Ok(DomainMigrateBegin3ParamsRet {
        cookie_out: Opaque(cookie),
        xml,
    })
}

pub(crate) async fn prepare3_params(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainMigratePrepare3ParamsArgs,
) -> Reply<DomainMigratePrepare3ParamsRet> {
    let flags = migrate_flags("virDomainMigratePrepare3Params", a.flags)?;
    let params = migrate_params(&a.params)?;
    let (cookie, uri) = d
        .driver
        .migrate_prepare(&params, &a.cookie_in.0, flags, ctx.client.0)
        .await
        .map_err(vir)?;
    Ok(DomainMigratePrepare3ParamsRet {
        cookie_out: Opaque(cookie),
        uri_out: Some(uri),
    })
}

pub(crate) async fn perform3_params(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainMigratePerform3ParamsArgs,
) -> Reply<DomainMigratePerform3ParamsRet> {
    let dom = d.domain(&a.dom)?;
    if a.flags & f::MIGRATE_PEER2PEER != 0 {
        let uri = a
            .dconnuri
            .as_deref()
            .ok_or_else(|| invalid_arg("peer-to-peer migration needs the destination's URI"))?;
        super::peer::migrate(d, &dom, uri, &a.params, a.flags, ctx.client.0).await?;
        return Ok(DomainMigratePerform3ParamsRet {
            cookie_out: Opaque(Vec::new()),
        });
    }
    let flags = migrate_flags("virDomainMigratePerform3Params", a.flags)?;
    let params = migrate_params(&a.params)?;
    let cookie = d
        .driver
        .migrate_perform(&dom, &params, &a.cookie_in.0, flags)
        .await
        .map_err(vir)?;
    Ok(DomainMigratePerform3ParamsRet {
        cookie_out: Opaque(cookie),
    })
}

pub(crate) async fn finish3_params(
    d: &Daemon,
    _: &CallContext,
    a: DomainMigrateFinish3ParamsArgs,
) -> Reply<DomainMigrateFinish3ParamsRet> {
    let flags = migrate_flags("virDomainMigrateFinish3Params", a.flags)?;
    let params = migrate_params(&a.params)?;
    let dom = d
        .driver
        .migrate_finish(&params, &a.cookie_in.0, flags, a.cancelled != 0)
        .await
        .map_err(vir)?;
    Ok(DomainMigrateFinish3ParamsRet {
        dom: wire_domain(&dom),
        cookie_out: Opaque(Vec::new()),
    })
}

pub(crate) async fn confirm3_params(
    d: &Daemon,
    _: &CallContext,
    a: DomainMigrateConfirm3ParamsArgs,
) -> Reply<()> {
    let flags = migrate_flags("virDomainMigrateConfirm3Params", a.flags)?;
    migrate_params(&a.params)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .migrate_confirm(&dom, flags, a.cancelled != 0)
        .await
        .map_err(vir)
}

/// `virsh migrate-setspeed DOM MiB`.
pub(crate) async fn set_max_speed(
    d: &Daemon,
    _: &CallContext,
    a: DomainMigrateSetMaxSpeedArgs,
) -> Reply<()> {
    flags::check("virDomainMigrateSetMaxSpeed", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .migrate_set_max_speed(&dom, a.bandwidth)
        .await
        .map_err(vir)
}

pub(crate) async fn get_max_speed(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainMigrateGetMaxSpeedRet> {
    flags::check("virDomainMigrateGetMaxSpeed", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    let bandwidth = d.driver.migrate_max_speed(&dom).await.map_err(vir)?;
    Ok(DomainMigrateGetMaxSpeedRet { bandwidth })
}

/// `virsh migrate-setmaxdowntime DOM MS`.
pub(crate) async fn set_max_downtime(
    d: &Daemon,
    _: &CallContext,
    a: DomainMigrateSetMaxDowntimeArgs,
) -> Reply<()> {
    flags::check("virDomainMigrateSetMaxDowntime", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver
        .migrate_set_max_downtime(&dom, a.downtime)
        .await
        .map_err(vir)
}

/// `virsh migrate-postcopy`: the outgoing migration (started with
/// `--postcopy`) switches to post-copy.
pub(crate) async fn start_post_copy(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check("virDomainMigrateStartPostCopy", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver.migrate_start_postcopy(&dom).await.map_err(vir)
}

pub(crate) async fn get_max_downtime(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainMigrateGetMaxDowntimeRet> {
    flags::check("virDomainMigrateGetMaxDowntime", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    let downtime = d.driver.migrate_max_downtime(&dom).await.map_err(vir)?;
    Ok(DomainMigrateGetMaxDowntimeRet { downtime })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(field: &str, v: &str) -> TypedParam {
        TypedParam {
            field: field.into(),
            value: TypedParamValue::String(v.into()),
        }
    }

    #[test]
    fn parameters_are_typed_and_unknown_ones_refused() {
        let p = migrate_params(&[
            s("migrate_uri", "tcp:h:49152"),
            s("destination_xml", "<domain/>"),
            TypedParam {
                field: "bandwidth".into(),
                value: TypedParamValue::ULLong(8),
            },
        ])
        .unwrap();
        assert_eq!(p.uri.as_deref(), Some("tcp:h:49152"));
        assert_eq!(p.bandwidth_mib, Some(8));
        let disks =
            migrate_params(&[s("migrate_disks", "vda"), s("migrate_disks", "vdb")]).unwrap();
        assert_eq!(disks.migrate_disks, ["vda", "vdb"]);
        assert!(migrate_params(&[s("graphics_uri", "spice://h")]).is_err());
        assert!(
            migrate_params(&[TypedParam {
                field: "migrate_uri".into(),
                value: TypedParamValue::Int(1),
            }])
            .is_err()
        );
    }

    #[test]
    fn flags_map_and_unimplemented_ones_are_refused() {
        let fl = migrate_flags("x", f::MIGRATE_LIVE | f::MIGRATE_PERSIST_DEST).unwrap();
        assert!(fl.live && fl.persist_dest && !fl.offline);
        assert!(
            migrate_flags("x", f::MIGRATE_OFFLINE).is_err(),
            "offline needs persist"
        );
        assert!(
            migrate_flags("x", f::MIGRATE_TUNNELLED).is_err(),
            "tunnelled"
        );
        let copy = |bits| migrate_flags("x", bits).unwrap().copy_storage;
        assert_eq!(copy(0), CopyStorage::None);
        assert_eq!(copy(f::MIGRATE_NON_SHARED_DISK), CopyStorage::All);
        assert_eq!(copy(f::MIGRATE_NON_SHARED_INC), CopyStorage::Incremental);
        assert_eq!(
            copy(f::MIGRATE_NON_SHARED_DISK | f::MIGRATE_NON_SHARED_INC),
            CopyStorage::All
        );
    }
}
