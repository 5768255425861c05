//! The daemon's RPC handler and its procedure table.
//!
//! One row per REMOTE procedure the daemon serves: its number, whether the
//! read-only socket may call it (`Read`) or not (`Write`), whether it may
//! wait behind the client's other calls (`Normal`) or must never queue
//! (`Priority`: destroy, lookups, snapshot queries, connection calls — none
//! of them waits for a job or the monitor), and its handler in `procs/`.
//! The rpc crate decodes the arguments and encodes the return value from
//! the handler's types. Serving a new procedure is one handler and one row.
//! A procedure without a row is answered `VIR_ERR_NO_SUPPORT`.

use std::sync::Arc;

use ::network::NetworkDriver;
use ::secret::SecretDriver;
use ::storage::StorageDriver;
use bytes::Bytes;
use qemu::{Domain, Driver};
use rpc::dispatch::{Access::*, Lane, Lane::*, Row, Table, TableError};
use rpc::protocol::remote::{NonnullDomain, procedure as p};
use rpc::{CallContext, ClientId, Handler};
use virterror::VirError;

use crate::consoles::Consoles;
use crate::procs::{
    blockjob, connect, cpu, devices, domain, dump, events, interfaces, jobs, migration, network,
    node, pins, query, save, secret, stats, storage, streams,
};
use crate::relay::Relay;

/// Shared by every call: the driver, the event relay, what the daemon
/// tells clients about itself, and the procedure table.
pub(crate) struct Daemon {
    pub driver: Driver,
    pub storage: StorageDriver,
    pub network: NetworkDriver,
    pub secrets: SecretDriver,
    pub relay: Arc<Relay>,
    /// Open console and channel sessions, one per device.
    pub consoles: Arc<Consoles>,
    pub uri: String,
    /// What this daemon presents and trusts when it connects to a peer
    /// daemon over TLS (peer-to-peer migration to `qemu+tls://`).
    pub peer_tls: rpc::tls::TlsClientFiles,
    table: Table<Daemon>,
}

impl Daemon {
    pub(crate) fn new(
        driver: Driver,
        storage: StorageDriver,
        network: NetworkDriver,
        secrets: SecretDriver,
        relay: Arc<Relay>,
        uri: String,
    ) -> Result<Self, TableError> {
        Ok(Self {
            driver,
            storage,
            network,
            secrets,
            relay,
            consoles: Arc::new(Consoles::default()),
            uri,
            peer_tls: rpc::tls::TlsClientFiles::system(),
            table: table()?,
        })
    }

    /// The same daemon presenting `files` to TLS peers.
    pub(crate) fn with_peer_tls(self, files: rpc::tls::TlsClientFiles) -> Self {
        Self {
            peer_tls: files,
            ..self
        }
    }

    /// The domain a client names (looked up by UUID, as libvirt does).
    pub(crate) fn domain(&self, dom: &NonnullDomain) -> Result<Arc<Domain>, VirError> {
        crate::wire::resolve(&self.driver, dom)
    }
}

impl Handler for Daemon {
    async fn call(&self, ctx: CallContext, proc_: i32, args: Bytes) -> Result<Bytes, VirError> {
        self.table.call(self, &ctx, proc_, args).await
    }

    fn is_mutating(&self, proc_: i32) -> bool {
        self.table.is_mutating(proc_)
    }

    fn lane(&self, proc_: i32) -> Lane {
        self.table.lane(proc_)
    }

    fn on_disconnect(&self, client: ClientId) {
        self.relay.drop_client(client);
        // A migration this client was driving is undone, not left holding
        // its domain's job.
        let driver = self.driver.clone();
        tokio::spawn(async move { driver.abandon_migrations(client.0).await });
    }
}

/// Every procedure the daemon serves, one row each: number, access from the
/// read-only socket, lane, handler.
#[rustfmt::skip]
fn table() -> Result<Table<Daemon>, TableError> {
    Table::new([
        // The connection and the host.
        Row::new(p::AUTH_LIST,                                   Read,  Priority, connect::auth_list),
        Row::new(p::CONNECT_OPEN,                                Read,  Priority, connect::open),
        Row::new(p::CONNECT_CLOSE,                               Read,  Priority, connect::accept),
        Row::new(p::CONNECT_REGISTER_CLOSE_CALLBACK,             Read,  Priority, connect::accept),
        Row::new(p::CONNECT_UNREGISTER_CLOSE_CALLBACK,           Read,  Priority, connect::accept),
        Row::new(p::CONNECT_SUPPORTS_FEATURE,                    Read,  Priority, connect::supports_feature),
        Row::new(p::CONNECT_GET_TYPE,                            Read,  Priority, connect::get_type),
        Row::new(p::CONNECT_GET_VERSION,                         Read,  Priority, connect::get_version),
        Row::new(p::CONNECT_GET_LIB_VERSION,                     Read,  Priority, connect::get_lib_version),
        Row::new(p::CONNECT_GET_HOSTNAME,                        Read,  Priority, connect::get_hostname),
        Row::new(p::CONNECT_GET_URI,                             Read,  Priority, connect::get_uri),
        Row::new(p::CONNECT_GET_SYSINFO,                         Read,  Priority, connect::get_sysinfo),
        Row::new(p::CONNECT_GET_MAX_VCPUS,                       Read,  Priority, connect::get_max_vcpus),
        Row::new(p::CONNECT_IS_SECURE,                           Read,  Priority, connect::is_secure),
        Row::new(p::NODE_GET_INFO,                               Read,  Priority, connect::node_get_info),
        Row::new(p::NODE_GET_SECURITY_MODEL,                     Read,  Priority, connect::node_get_security_model),
        Row::new(p::CONNECT_GET_CAPABILITIES,                    Read,  Normal,   connect::get_capabilities),
        Row::new(p::CONNECT_GET_DOMAIN_CAPABILITIES,             Read,  Normal,   connect::get_domain_capabilities),
        Row::new(p::CONNECT_GET_CPU_MODEL_NAMES,                 Read,  Normal,   cpu::get_cpu_model_names),
        Row::new(p::CONNECT_BASELINE_CPU,                        Read,  Normal,   cpu::baseline_cpu),
        Row::new(p::CONNECT_BASELINE_HYPERVISOR_CPU,             Read,  Normal,   cpu::baseline_hypervisor_cpu),
        Row::new(p::CONNECT_COMPARE_HYPERVISOR_CPU,              Read,  Normal,   cpu::compare_hypervisor_cpu),
        // The host's statistics, read from /proc and /sys.
        Row::new(p::NODE_GET_CPU_STATS,                          Read,  Priority, node::get_cpu_stats),
        Row::new(p::NODE_GET_MEMORY_STATS,                       Read,  Priority, node::get_memory_stats),
        Row::new(p::NODE_GET_FREE_MEMORY,                        Read,  Priority, node::get_free_memory),
        Row::new(p::NODE_GET_CELLS_FREE_MEMORY,                  Read,  Priority, node::get_cells_free_memory),
        Row::new(p::NODE_GET_CPU_MAP,                            Read,  Priority, node::get_cpu_map),
        // Event registrations.
        Row::new(p::CONNECT_DOMAIN_EVENT_REGISTER,               Read,  Priority, events::register),
        Row::new(p::CONNECT_DOMAIN_EVENT_DEREGISTER,             Read,  Priority, events::deregister),
        Row::new(p::CONNECT_DOMAIN_EVENT_REGISTER_ANY,           Read,  Priority, events::register_any),
        Row::new(p::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY,         Read,  Priority, events::deregister_any),
        Row::new(p::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,  Read,  Priority, events::callback_register_any),
        Row::new(p::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,Read,  Priority, events::callback_deregister_any),
        // Domain lists and lookups.
        Row::new(p::CONNECT_LIST_ALL_DOMAINS,                    Read,  Priority, domain::list_all),
        Row::new(p::CONNECT_NUM_OF_DOMAINS,                      Read,  Priority, domain::num_of_domains),
        Row::new(p::CONNECT_LIST_DOMAINS,                        Read,  Priority, domain::list_domains),
        Row::new(p::CONNECT_NUM_OF_DEFINED_DOMAINS,              Read,  Priority, domain::num_of_defined_domains),
        Row::new(p::CONNECT_LIST_DEFINED_DOMAINS,                Read,  Priority, domain::list_defined_domains),
        Row::new(p::DOMAIN_LOOKUP_BY_NAME,                       Read,  Priority, domain::lookup_by_name),
        Row::new(p::DOMAIN_LOOKUP_BY_UUID,                       Read,  Priority, domain::lookup_by_uuid),
        Row::new(p::DOMAIN_LOOKUP_BY_ID,                         Read,  Priority, domain::lookup_by_id),
        // Definitions and lifecycle.
        Row::new(p::DOMAIN_DEFINE_XML,                           Write, Normal,   domain::define_xml),
        Row::new(p::DOMAIN_DEFINE_XML_FLAGS,                     Write, Normal,   domain::define_xml_flags),
        Row::new(p::DOMAIN_UNDEFINE,                             Write, Normal,   domain::undefine),
        Row::new(p::DOMAIN_UNDEFINE_FLAGS,                       Write, Normal,   domain::undefine_flags),
        Row::new(p::DOMAIN_CREATE_XML,                           Write, Normal,   domain::create_xml),
        Row::new(p::DOMAIN_CREATE,                               Write, Normal,   domain::create),
        Row::new(p::DOMAIN_CREATE_WITH_FLAGS,                    Write, Normal,   domain::create_with_flags),
        Row::new(p::DOMAIN_DESTROY,                              Write, Priority, domain::destroy),
        Row::new(p::DOMAIN_DESTROY_FLAGS,                        Write, Priority, domain::destroy_flags),
        Row::new(p::DOMAIN_SHUTDOWN,                             Write, Normal,   domain::shutdown),
        Row::new(p::DOMAIN_SHUTDOWN_FLAGS,                       Write, Normal,   domain::shutdown_flags),
        Row::new(p::DOMAIN_REBOOT,                               Write, Normal,   domain::reboot),
        Row::new(p::DOMAIN_RESET,                                Write, Normal,   domain::reset),
        Row::new(p::DOMAIN_SUSPEND,                              Write, Normal,   domain::suspend),
        Row::new(p::DOMAIN_ATTACH_DEVICE,                        Write, Normal,   devices::attach),
        Row::new(p::DOMAIN_ATTACH_DEVICE_FLAGS,                  Write, Normal,   devices::attach_flags),
        Row::new(p::DOMAIN_DETACH_DEVICE,                        Write, Normal,   devices::detach),
        Row::new(p::DOMAIN_DETACH_DEVICE_FLAGS,                  Write, Normal,   devices::detach_flags),
        Row::new(p::DOMAIN_DETACH_DEVICE_ALIAS,                  Write, Normal,   devices::detach_alias),
        Row::new(p::DOMAIN_UPDATE_DEVICE_FLAGS,                  Write, Normal,   devices::update_flags),
        Row::new(p::DOMAIN_SET_MEMORY,                           Write, Normal,   devices::set_memory),
        Row::new(p::DOMAIN_SET_MEMORY_FLAGS,                     Write, Normal,   devices::set_memory_flags),
        Row::new(p::DOMAIN_BLOCK_RESIZE,                         Write, Normal,   devices::block_resize),
        Row::new(p::DOMAIN_SET_BLOCK_THRESHOLD,                  Write, Normal,   devices::set_block_threshold),
        Row::new(p::DOMAIN_SET_VCPUS_FLAGS,                      Write, Normal,   devices::set_vcpus_flags),
        Row::new(p::DOMAIN_PIN_VCPU_FLAGS,                       Write, Normal,   pins::pin_vcpu_flags),
        Row::new(p::DOMAIN_PIN_EMULATOR,                         Write, Normal,   pins::pin_emulator),
        Row::new(p::DOMAIN_RESUME,                               Write, Normal,   domain::resume),
        Row::new(p::DOMAIN_SET_AUTOSTART,                        Write, Normal,   domain::set_autostart),
        // Snapshot queries.
        Row::new(p::DOMAIN_GET_INFO,                             Read,  Priority, query::get_info),
        Row::new(p::DOMAIN_GET_STATE,                            Read,  Priority, query::get_state),
        Row::new(p::DOMAIN_GET_CONTROL_INFO,                     Read,  Priority, query::get_control_info),
        Row::new(p::DOMAIN_GET_XML_DESC,                         Read,  Priority, query::get_xml_desc),
        Row::new(p::DOMAIN_GET_OS_TYPE,                          Read,  Priority, query::get_os_type),
        Row::new(p::DOMAIN_IS_ACTIVE,                            Read,  Priority, query::is_active),
        Row::new(p::DOMAIN_IS_PERSISTENT,                        Read,  Priority, query::is_persistent),
        Row::new(p::DOMAIN_IS_UPDATED,                           Read,  Priority, query::is_updated),
        Row::new(p::DOMAIN_GET_AUTOSTART,                        Read,  Priority, query::get_autostart),
        Row::new(p::DOMAIN_GET_MAX_MEMORY,                       Read,  Priority, query::get_max_memory),
        Row::new(p::DOMAIN_HAS_MANAGED_SAVE_IMAGE,               Read,  Priority, query::has_managed_save_image),
        Row::new(p::DOMAIN_GET_MAX_VCPUS,                        Read,  Priority, query::get_max_vcpus),
        Row::new(p::DOMAIN_GET_VCPUS_FLAGS,                      Read,  Priority, query::get_vcpus_flags),
        Row::new(p::DOMAIN_GET_VCPU_PIN_INFO,                    Read,  Priority, pins::get_vcpu_pin_info),
        Row::new(p::DOMAIN_GET_EMULATOR_PIN_INFO,                Read,  Priority, pins::get_emulator_pin_info),
        // Statistics, from the driver's cache: no job, no monitor.
        Row::new(p::CONNECT_GET_ALL_DOMAIN_STATS,                Read,  Priority, stats::get_all_domain_stats),
        Row::new(p::DOMAIN_BLOCK_STATS,                          Read,  Priority, stats::block_stats),
        Row::new(p::DOMAIN_BLOCK_STATS_FLAGS,                    Read,  Priority, stats::block_stats_flags),
        Row::new(p::DOMAIN_INTERFACE_STATS,                      Read,  Priority, stats::interface_stats),
        Row::new(p::DOMAIN_INTERFACE_ADDRESSES,                  Read,  Priority, interfaces::interface_addresses),
        Row::new(p::DOMAIN_GET_INTERFACE_PARAMETERS,             Read,  Priority, interfaces::get_interface_parameters),
        Row::new(p::DOMAIN_SET_INTERFACE_PARAMETERS,             Write, Normal,   interfaces::set_interface_parameters),
        Row::new(p::DOMAIN_MEMORY_STATS,                         Read,  Priority, stats::memory_stats),
        Row::new(p::DOMAIN_GET_CPU_STATS,                        Read,  Priority, stats::get_cpu_stats),
        Row::new(p::DOMAIN_GET_BLOCK_INFO,                       Read,  Priority, stats::get_block_info),
        Row::new(p::DOMAIN_GET_VCPUS,                            Read,  Priority, stats::get_vcpus),
        Row::new(p::DOMAIN_SET_MEMORY_STATS_PERIOD,              Write, Normal,   stats::set_memory_stats_period),
        // The domain's job (asks QEMU for migration progress).
        Row::new(p::DOMAIN_GET_JOB_INFO,                         Read,  Normal,   jobs::get_job_info),
        Row::new(p::DOMAIN_GET_JOB_STATS,                        Read,  Normal,   jobs::get_job_stats),
        Row::new(p::DOMAIN_ABORT_JOB,                            Write, Normal,   jobs::abort_job),
        Row::new(p::DOMAIN_MIGRATE_BEGIN3_PARAMS,                Write, Normal,   migration::begin3_params),
        Row::new(p::DOMAIN_MIGRATE_PREPARE3_PARAMS,              Write, Normal,   migration::prepare3_params),
        Row::new(p::DOMAIN_MIGRATE_PERFORM3_PARAMS,              Write, Normal,   migration::perform3_params),
        Row::new(p::DOMAIN_MIGRATE_FINISH3_PARAMS,               Write, Normal,   migration::finish3_params),
        Row::new(p::DOMAIN_MIGRATE_CONFIRM3_PARAMS,              Write, Normal,   migration::confirm3_params),
        Row::new(p::DOMAIN_MIGRATE_SET_MAX_SPEED,                Write, Normal,   migration::set_max_speed),
        Row::new(p::DOMAIN_MIGRATE_GET_MAX_SPEED,                Read,  Normal,   migration::get_max_speed),
        Row::new(p::DOMAIN_MIGRATE_SET_MAX_DOWNTIME,             Write, Normal,   migration::set_max_downtime),
        Row::new(p::DOMAIN_MIGRATE_GET_MAX_DOWNTIME,             Read,  Normal,   migration::get_max_downtime),
        Row::new(p::DOMAIN_MIGRATE_START_POST_COPY,              Write, Normal,   migration::start_post_copy),
        // Save, restore, managed save, save images.
        Row::new(p::DOMAIN_SAVE,                                 Write, Normal,   save::save),
        Row::new(p::DOMAIN_SAVE_FLAGS,                           Write, Normal,   save::save_flags),
        Row::new(p::DOMAIN_RESTORE,                              Write, Normal,   save::restore),
        Row::new(p::DOMAIN_RESTORE_FLAGS,                        Write, Normal,   save::restore_flags),
        Row::new(p::DOMAIN_MANAGED_SAVE,                         Write, Normal,   save::managed_save),
        Row::new(p::DOMAIN_MANAGED_SAVE_REMOVE,                  Write, Normal,   save::managed_save_remove),
        Row::new(p::DOMAIN_SAVE_IMAGE_GET_XML_DESC,              Read,  Normal,   save::save_image_get_xml_desc),
        Row::new(p::DOMAIN_SAVE_IMAGE_DEFINE_XML,                Write, Normal,   save::save_image_define_xml),
        Row::new(p::DOMAIN_CORE_DUMP,                            Write, Normal,   dump::core_dump),
        Row::new(p::DOMAIN_CORE_DUMP_WITH_FORMAT,                Write, Normal,   dump::core_dump_with_format),
        // Block jobs.
        Row::new(p::DOMAIN_BLOCK_COPY,                           Write, Normal,   blockjob::block_copy),
        Row::new(p::DOMAIN_BLOCK_REBASE,                         Write, Normal,   blockjob::block_rebase),
        Row::new(p::DOMAIN_BLOCK_PULL,                           Write, Normal,   blockjob::block_pull),
        Row::new(p::DOMAIN_BLOCK_COMMIT,                         Write, Normal,   blockjob::block_commit),
        Row::new(p::DOMAIN_BLOCK_JOB_ABORT,                      Write, Normal,   blockjob::block_job_abort),
        Row::new(p::DOMAIN_BLOCK_JOB_SET_SPEED,                  Write, Normal,   blockjob::block_job_set_speed),
        Row::new(p::DOMAIN_GET_BLOCK_JOB_INFO,                   Read,  Normal,   blockjob::get_block_job_info),
        // Storage pools: lists, lookups and queries from the snapshot.
        Row::new(p::CONNECT_LIST_ALL_STORAGE_POOLS,              Read,  Priority, storage::list_all_pools),
        Row::new(p::CONNECT_NUM_OF_STORAGE_POOLS,                Read,  Priority, storage::num_of_pools),
        Row::new(p::CONNECT_LIST_STORAGE_POOLS,                  Read,  Priority, storage::list_pools),
        Row::new(p::CONNECT_NUM_OF_DEFINED_STORAGE_POOLS,        Read,  Priority, storage::num_of_defined_pools),
        Row::new(p::CONNECT_LIST_DEFINED_STORAGE_POOLS,          Read,  Priority, storage::list_defined_pools),
        Row::new(p::STORAGE_POOL_LOOKUP_BY_NAME,                 Read,  Priority, storage::pool_lookup_by_name),
        Row::new(p::STORAGE_POOL_LOOKUP_BY_UUID,                 Read,  Priority, storage::pool_lookup_by_uuid),
        Row::new(p::STORAGE_POOL_LOOKUP_BY_VOLUME,               Read,  Priority, storage::pool_lookup_by_volume),
        Row::new(p::STORAGE_POOL_LOOKUP_BY_TARGET_PATH,          Read,  Priority, storage::pool_lookup_by_target_path),
        Row::new(p::STORAGE_POOL_GET_INFO,                       Read,  Priority, storage::pool_get_info),
        Row::new(p::STORAGE_POOL_GET_XML_DESC,                   Read,  Priority, storage::pool_get_xml_desc),
        Row::new(p::STORAGE_POOL_GET_AUTOSTART,                  Read,  Priority, storage::pool_get_autostart),
        Row::new(p::STORAGE_POOL_IS_ACTIVE,                      Read,  Priority, storage::pool_is_active),
        Row::new(p::STORAGE_POOL_IS_PERSISTENT,                  Read,  Priority, storage::pool_is_persistent),
        Row::new(p::STORAGE_POOL_NUM_OF_VOLUMES,                 Read,  Priority, storage::pool_num_of_volumes),
        Row::new(p::STORAGE_POOL_LIST_VOLUMES,                   Read,  Priority, storage::pool_list_volumes),
        Row::new(p::STORAGE_POOL_LIST_ALL_VOLUMES,               Read,  Priority, storage::pool_list_all_volumes),
        Row::new(p::CONNECT_GET_STORAGE_POOL_CAPABILITIES,       Read,  Priority, storage::get_pool_capabilities),
        // Storage pools: lifecycle (jobs on the pool).
        Row::new(p::STORAGE_POOL_DEFINE_XML,                     Write, Normal,   storage::pool_define_xml),
        Row::new(p::STORAGE_POOL_CREATE_XML,                     Write, Normal,   storage::pool_create_xml),
        Row::new(p::STORAGE_POOL_CREATE,                         Write, Normal,   storage::pool_create),
        Row::new(p::STORAGE_POOL_BUILD,                          Write, Normal,   storage::pool_build),
        Row::new(p::STORAGE_POOL_DESTROY,                        Write, Normal,   storage::pool_destroy),
        Row::new(p::STORAGE_POOL_DELETE,                         Write, Normal,   storage::pool_delete),
        Row::new(p::STORAGE_POOL_UNDEFINE,                       Write, Normal,   storage::pool_undefine),
        Row::new(p::STORAGE_POOL_REFRESH,                        Write, Normal,   storage::pool_refresh),
        Row::new(p::STORAGE_POOL_SET_AUTOSTART,                  Write, Normal,   storage::pool_set_autostart),
        // Storage volumes: lookups and queries from the snapshot.
        Row::new(p::STORAGE_VOL_LOOKUP_BY_NAME,                  Read,  Priority, storage::vol_lookup_by_name),
        Row::new(p::STORAGE_VOL_LOOKUP_BY_KEY,                   Read,  Priority, storage::vol_lookup_by_key),
        Row::new(p::STORAGE_VOL_LOOKUP_BY_PATH,                  Read,  Priority, storage::vol_lookup_by_path),
        Row::new(p::STORAGE_VOL_GET_INFO,                        Read,  Priority, storage::vol_get_info),
        Row::new(p::STORAGE_VOL_GET_INFO_FLAGS,                  Read,  Priority, storage::vol_get_info_flags),
        Row::new(p::STORAGE_VOL_GET_XML_DESC,                    Read,  Priority, storage::vol_get_xml_desc),
        Row::new(p::STORAGE_VOL_GET_PATH,                        Read,  Priority, storage::vol_get_path),
        // Storage volumes: changes (shared jobs on the pool).
        Row::new(p::STORAGE_VOL_CREATE_XML,                      Write, Normal,   storage::vol_create_xml),
        Row::new(p::STORAGE_VOL_CREATE_XML_FROM,                 Write, Normal,   storage::vol_create_xml_from),
        Row::new(p::STORAGE_VOL_DELETE,                          Write, Normal,   storage::vol_delete),
        Row::new(p::STORAGE_VOL_WIPE,                            Write, Normal,   storage::vol_wipe),
        Row::new(p::STORAGE_VOL_WIPE_PATTERN,                    Write, Normal,   storage::vol_wipe_pattern),
        Row::new(p::STORAGE_VOL_RESIZE,                          Write, Normal,   storage::vol_resize),
        // Storage pool events.
        Row::new(p::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY,     Read,  Priority, storage::event_register_any),
        Row::new(p::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY,   Read,  Priority, storage::event_deregister_any),
        // Networks: lists, lookups and queries from the snapshot.
        Row::new(p::CONNECT_LIST_ALL_NETWORKS,                   Read,  Priority, network::list_all),
        Row::new(p::CONNECT_NUM_OF_NETWORKS,                     Read,  Priority, network::num_of_networks),
        Row::new(p::CONNECT_LIST_NETWORKS,                       Read,  Priority, network::list_networks),
        Row::new(p::CONNECT_NUM_OF_DEFINED_NETWORKS,             Read,  Priority, network::num_of_defined_networks),
        Row::new(p::CONNECT_LIST_DEFINED_NETWORKS,               Read,  Priority, network::list_defined_networks),
        Row::new(p::NETWORK_LOOKUP_BY_NAME,                      Read,  Priority, network::lookup_by_name),
        Row::new(p::NETWORK_LOOKUP_BY_UUID,                      Read,  Priority, network::lookup_by_uuid),
        Row::new(p::NETWORK_GET_XML_DESC,                        Read,  Priority, network::get_xml_desc),
        Row::new(p::NETWORK_GET_BRIDGE_NAME,                     Read,  Priority, network::get_bridge_name),
        Row::new(p::NETWORK_GET_AUTOSTART,                       Read,  Priority, network::get_autostart),
        Row::new(p::NETWORK_IS_ACTIVE,                           Read,  Priority, network::is_active),
        Row::new(p::NETWORK_IS_PERSISTENT,                       Read,  Priority, network::is_persistent),
        Row::new(p::NETWORK_GET_DHCP_LEASES,                     Read,  Priority, network::get_dhcp_leases),
        // Networks: changes (jobs on the network).
        Row::new(p::NETWORK_DEFINE_XML,                          Write, Normal,   network::define_xml),
        Row::new(p::NETWORK_DEFINE_XML_FLAGS,                    Write, Normal,   network::define_xml_flags),
        Row::new(p::NETWORK_CREATE_XML,                          Write, Normal,   network::create_xml),
        Row::new(p::NETWORK_CREATE_XML_FLAGS,                    Write, Normal,   network::create_xml_flags),
        Row::new(p::NETWORK_CREATE,                              Write, Normal,   network::create),
        Row::new(p::NETWORK_DESTROY,                             Write, Normal,   network::destroy),
        Row::new(p::NETWORK_UNDEFINE,                            Write, Normal,   network::undefine),
        Row::new(p::NETWORK_SET_AUTOSTART,                       Write, Normal,   network::set_autostart),
        Row::new(p::NETWORK_UPDATE,                              Write, Normal,   network::update),
        // Network events.
        Row::new(p::CONNECT_NETWORK_EVENT_REGISTER_ANY,          Read,  Priority, network::event_register_any),
        Row::new(p::CONNECT_NETWORK_EVENT_DEREGISTER_ANY,        Read,  Priority, network::event_deregister_any),
        // Secrets: lists, lookups and definitions from the driver's map.
        Row::new(p::CONNECT_NUM_OF_SECRETS,                      Read,  Priority, secret::num_of_secrets),
        Row::new(p::CONNECT_LIST_SECRETS,                        Read,  Priority, secret::list_secrets),
        Row::new(p::CONNECT_LIST_ALL_SECRETS,                    Read,  Priority, secret::list_all),
        Row::new(p::SECRET_LOOKUP_BY_UUID,                       Read,  Priority, secret::lookup_by_uuid),
        Row::new(p::SECRET_LOOKUP_BY_USAGE,                      Read,  Priority, secret::lookup_by_usage),
        Row::new(p::SECRET_GET_XML_DESC,                         Read,  Priority, secret::get_xml_desc),
        // Secrets: changes (files written on a blocking thread), and the
        // value, which the read-only socket may never read.
        Row::new(p::SECRET_DEFINE_XML,                           Write, Normal,   secret::define_xml),
        Row::new(p::SECRET_SET_VALUE,                            Write, Normal,   secret::set_value),
        Row::new(p::SECRET_GET_VALUE,                            Write, Normal,   secret::get_value),
        Row::new(p::SECRET_UNDEFINE,                             Write, Normal,   secret::undefine),
        // Secret events.
        Row::new(p::CONNECT_SECRET_EVENT_REGISTER_ANY,           Read,  Priority, secret::event_register_any),
        Row::new(p::CONNECT_SECRET_EVENT_DEREGISTER_ANY,         Read,  Priority, secret::event_deregister_any),
        // Streams and descriptors: consoles, volume transfers, screenshots,
        // graphics connections (libvirt refuses all of them read-only).
        Row::new(p::DOMAIN_OPEN_CONSOLE,                         Write, Normal,   streams::open_console),
        Row::new(p::DOMAIN_OPEN_CHANNEL,                         Write, Normal,   streams::open_channel),
        Row::new(p::STORAGE_VOL_UPLOAD,                          Write, Normal,   streams::vol_upload),
        Row::new(p::STORAGE_VOL_DOWNLOAD,                        Write, Normal,   streams::vol_download),
        Row::new(p::DOMAIN_SCREENSHOT,                           Write, Normal,   streams::screenshot),
        Row::new(p::DOMAIN_OPEN_GRAPHICS,                        Write, Normal,   streams::open_graphics),
        Row::new(p::DOMAIN_OPEN_GRAPHICS_FD,                     Write, Normal,   streams::open_graphics_fd),
    ])
}

#[cfg(test)]
mod tests;
