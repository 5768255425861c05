//! Wire structures of live migration: the five phases of protocol v3
//! with typed parameters, and the tuning calls.

use super::{NonnullDomain, TypedParam};
use crate::xdr::Opaque;
use crate::xdr_struct;

/// `REMOTE_MIGRATE_COOKIE_MAX`.
pub const MIGRATE_COOKIE_MAX: usize = 4_194_304;
/// `REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX`.
pub const DOMAIN_MIGRATE_PARAM_LIST_MAX: usize = 64;

xdr_struct! {
    /// `remote_domain_migrate_begin3_params_args`.
    pub struct DomainMigrateBegin3ParamsArgs {
        pub dom: NonnullDomain,
        pub params: Vec<TypedParam> [max = DOMAIN_MIGRATE_PARAM_LIST_MAX],
        pub flags: u32,
    }

    /// `remote_domain_migrate_begin3_params_ret`.
    pub struct DomainMigrateBegin3ParamsRet {
        pub cookie_out: Opaque [max = MIGRATE_COOKIE_MAX],
        pub xml: String,
    }

    /// `remote_domain_migrate_prepare3_params_args`.
    pub struct DomainMigratePrepare3ParamsArgs {
        pub params: Vec<TypedParam> [max = DOMAIN_MIGRATE_PARAM_LIST_MAX],
        pub cookie_in: Opaque [max = MIGRATE_COOKIE_MAX],
        pub flags: u32,
    }

    /// `remote_domain_migrate_prepare3_params_ret`.
    pub struct DomainMigratePrepare3ParamsRet {
        pub cookie_out: Opaque [max = MIGRATE_COOKIE_MAX],
        pub uri_out: Option<String>,
    }

    /// `remote_domain_migrate_perform3_params_args`.
    pub struct DomainMigratePerform3ParamsArgs {
        pub dom: NonnullDomain,
        pub dconnuri: Option<String>,
        pub params: Vec<TypedParam> [max = DOMAIN_MIGRATE_PARAM_LIST_MAX],
        pub cookie_in: Opaque [max = MIGRATE_COOKIE_MAX],
        pub flags: u32,
    }

    /// `remote_domain_migrate_perform3_params_ret`.
    pub struct DomainMigratePerform3ParamsRet {
        pub cookie_out: Opaque [max = MIGRATE_COOKIE_MAX],
    }

    /// `remote_domain_migrate_finish3_params_args`.
    pub struct DomainMigrateFinish3ParamsArgs {
        pub params: Vec<TypedParam> [max = DOMAIN_MIGRATE_PARAM_LIST_MAX],
        pub cookie_in: Opaque [max = MIGRATE_COOKIE_MAX],
        pub flags: u32,
        pub cancelled: i32,
    }

    /// `remote_domain_migrate_finish3_params_ret`.
    pub struct DomainMigrateFinish3ParamsRet {
        pub dom: NonnullDomain,
        pub cookie_out: Opaque [max = MIGRATE_COOKIE_MAX],
    }

    /// `remote_domain_migrate_confirm3_params_args`.
    pub struct DomainMigrateConfirm3ParamsArgs {
        pub dom: NonnullDomain,
        pub params: Vec<TypedParam> [max = DOMAIN_MIGRATE_PARAM_LIST_MAX],
        pub cookie_in: Opaque [max = MIGRATE_COOKIE_MAX],
        pub flags: u32,
        pub cancelled: i32,
    }

    /// `remote_domain_migrate_set_max_speed_args` (MiB/s).
    pub struct DomainMigrateSetMaxSpeedArgs {
        pub dom: NonnullDomain,
        pub bandwidth: u64,
        pub flags: u32,
    }

    /// `remote_domain_migrate_get_max_speed_ret` (MiB/s).
    pub struct DomainMigrateGetMaxSpeedRet {
        pub bandwidth: u64,
    }

    /// `remote_domain_migrate_set_max_downtime_args` (ms).
    pub struct DomainMigrateSetMaxDowntimeArgs {
        pub dom: NonnullDomain,
        pub downtime: u64,
        pub flags: u32,
    }

    /// `remote_domain_event_callback_migration_iteration_msg`.
    pub struct DomainEventCallbackMigrationIterationMsg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub iteration: i32,
    }

    /// `remote_domain_migrate_get_max_downtime_ret` (ms).
    pub struct DomainMigrateGetMaxDowntimeRet {
        pub downtime: u64,
    }
}
