//! REMOTE program (`remote_protocol.x`): procedure numbers and the wire
//! structures of the procedures ferrovirt serves.
//!
//! Naming: `remote_domain_get_info_args` becomes [`DomainGetInfoArgs`];
//! procedures whose arguments are just a domain (or a domain and flags)
//! share [`DomainArgs`] / [`DomainFlagsArgs`] through type aliases so the
//! daemon can still write the libvirt name. Rust keywords get a trailing
//! underscore (`type_`). `remote_string` (nullable) is `Option<String>`.
//!
//! To add a procedure: add its number to [`procedures!`] below (exact value
//! from `remote_protocol.x`), define its args/ret with `xdr_struct!` in wire
//! order with each `<MAX>` as `[max = ...]`, and, if it does not modify
//! anything, list it in [`is_read_only_safe`].

use crate::xdr::{Decoder, Encoder, Result, Xdr};
use crate::{xdr_enum, xdr_struct};

/// `REMOTE_PROGRAM`.
pub const PROGRAM: u32 = 0x2000_8086;
/// `REMOTE_PROTOCOL_VERSION`.
pub const VERSION: u32 = 1;

/// `REMOTE_STRING_MAX`.
pub const STRING_MAX: usize = 4_194_304;
/// `REMOTE_DOMAIN_LIST_MAX`.
pub const DOMAIN_LIST_MAX: usize = 16_384;
/// `REMOTE_AUTH_TYPE_LIST_MAX`.
pub const AUTH_TYPE_LIST_MAX: usize = 20;
/// `REMOTE_DOMAIN_JOB_STATS_MAX`.
pub const DOMAIN_JOB_STATS_MAX: usize = 64;
/// `REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX`.
pub const DOMAIN_SCHEDULER_PARAMETERS_MAX: usize = 16;
/// `REMOTE_SECURITY_MODEL_MAX` (`VIR_SECURITY_MODEL_BUFLEN`).
pub const SECURITY_MODEL_MAX: usize = 257;
/// `REMOTE_SECURITY_DOI_MAX` (`VIR_SECURITY_DOI_BUFLEN`).
pub const SECURITY_DOI_MAX: usize = 257;
/// `REMOTE_SECURITY_LABEL_MAX` (`VIR_SECURITY_LABEL_BUFLEN`).
pub const SECURITY_LABEL_MAX: usize = 4097;
/// `REMOTE_DOMAIN_EVENT_TUNABLE_MAX`.
pub const DOMAIN_EVENT_TUNABLE_MAX: usize = 2048;
/// `REMOTE_DOMAIN_BLOCK_COPY_PARAMETERS_MAX`.
pub const DOMAIN_BLOCK_COPY_PARAMETERS_MAX: usize = 16;
/// `VIR_UUID_BUFLEN`.
pub const UUID_LEN: usize = 16;

/// A UUID as raw bytes (`remote_uuid`).
pub type Uuid = [u8; UUID_LEN];

/// Declares procedure constants and a name table for logs.
macro_rules! procedures {
    ($( $name:ident = $num:literal ),* $(,)?) => {
        /// `remote_procedure` numbers.
        pub mod procedure {
            $( pub const $name: i32 = $num; )*
        }

        /// The libvirt name of a procedure (without `REMOTE_PROC_`), for
        /// logs. `None` for numbers this crate does not know.
        pub fn procedure_name(proc_: i32) -> Option<&'static str> {
            match proc_ {
                $( $num => Some(stringify!($name)), )*
                _ => None,
            }
        }
    };
}

procedures! {
    CONNECT_OPEN = 1,
    CONNECT_CLOSE = 2,
    CONNECT_GET_TYPE = 3,
    CONNECT_GET_VERSION = 4,
    CONNECT_GET_MAX_VCPUS = 5,
    NODE_GET_INFO = 6,
    CONNECT_GET_CAPABILITIES = 7,
    DOMAIN_ATTACH_DEVICE = 8,
    DOMAIN_CREATE = 9,
    DOMAIN_CREATE_XML = 10,
    DOMAIN_DEFINE_XML = 11,
    DOMAIN_DESTROY = 12,
    DOMAIN_DETACH_DEVICE = 13,
    DOMAIN_GET_XML_DESC = 14,
    DOMAIN_GET_AUTOSTART = 15,
    DOMAIN_GET_INFO = 16,
    DOMAIN_GET_MAX_MEMORY = 17,
    DOMAIN_GET_MAX_VCPUS = 18,
    DOMAIN_GET_OS_TYPE = 19,
    DOMAIN_GET_VCPUS = 20,
    CONNECT_LIST_DEFINED_DOMAINS = 21,
    DOMAIN_LOOKUP_BY_ID = 22,
    DOMAIN_LOOKUP_BY_NAME = 23,
    DOMAIN_LOOKUP_BY_UUID = 24,
    CONNECT_NUM_OF_DEFINED_DOMAINS = 25,
    DOMAIN_PIN_VCPU = 26,
    DOMAIN_REBOOT = 27,
    DOMAIN_RESUME = 28,
    DOMAIN_SET_AUTOSTART = 29,
    DOMAIN_SET_MAX_MEMORY = 30,
    DOMAIN_SET_MEMORY = 31,
    DOMAIN_SET_VCPUS = 32,
    DOMAIN_SHUTDOWN = 33,
    DOMAIN_SUSPEND = 34,
    DOMAIN_UNDEFINE = 35,
    CONNECT_LIST_DEFINED_NETWORKS = 36,
    CONNECT_LIST_DOMAINS = 37,
    CONNECT_LIST_NETWORKS = 38,
    CONNECT_NUM_OF_DEFINED_NETWORKS = 50,
    CONNECT_NUM_OF_DOMAINS = 51,
    CONNECT_NUM_OF_NETWORKS = 52,
    DOMAIN_CORE_DUMP = 53,
    DOMAIN_RESTORE = 54,
    DOMAIN_SAVE = 55,
    DOMAIN_GET_SCHEDULER_TYPE = 56,
    DOMAIN_GET_SCHEDULER_PARAMETERS = 57,
    DOMAIN_SET_SCHEDULER_PARAMETERS = 58,
    CONNECT_GET_HOSTNAME = 59,
    CONNECT_SUPPORTS_FEATURE = 60,
    DOMAIN_BLOCK_STATS = 64,
    DOMAIN_INTERFACE_STATS = 65,
    AUTH_LIST = 66,
    AUTH_SASL_INIT = 67,
    AUTH_SASL_START = 68,
    AUTH_SASL_STEP = 69,
    AUTH_POLKIT = 70,
    NODE_GET_CELLS_FREE_MEMORY = 101,
    NODE_GET_FREE_MEMORY = 102,
    CONNECT_DOMAIN_EVENT_REGISTER = 105,
    CONNECT_DOMAIN_EVENT_DEREGISTER = 106,
    DOMAIN_EVENT_LIFECYCLE = 107,
    CONNECT_GET_URI = 110,
    DOMAIN_GET_SECURITY_LABEL = 121,
    NODE_GET_SECURITY_MODEL = 122,
    CONNECT_IS_SECURE = 149,
    DOMAIN_IS_ACTIVE = 150,
    DOMAIN_IS_PERSISTENT = 151,
    CONNECT_GET_LIB_VERSION = 157,
    DOMAIN_MEMORY_STATS = 159,
    DOMAIN_ATTACH_DEVICE_FLAGS = 160,
    DOMAIN_DETACH_DEVICE_FLAGS = 161,
    DOMAIN_GET_JOB_INFO = 163,
    DOMAIN_ABORT_JOB = 164,
    CONNECT_DOMAIN_EVENT_REGISTER_ANY = 167,
    CONNECT_DOMAIN_EVENT_DEREGISTER_ANY = 168,
    DOMAIN_EVENT_REBOOT = 169,
    DOMAIN_EVENT_RTC_CHANGE = 170,
    DOMAIN_EVENT_WATCHDOG = 171,
    DOMAIN_EVENT_IO_ERROR = 172,
    DOMAIN_UPDATE_DEVICE_FLAGS = 174,
    DOMAIN_MANAGED_SAVE = 182,
    DOMAIN_HAS_MANAGED_SAVE_IMAGE = 183,
    DOMAIN_MANAGED_SAVE_REMOVE = 184,
    DOMAIN_GET_BLOCK_INFO = 194,
    DOMAIN_EVENT_IO_ERROR_REASON = 195,
    DOMAIN_CREATE_WITH_FLAGS = 196,
    DOMAIN_SET_VCPUS_FLAGS = 199,
    DOMAIN_GET_VCPUS_FLAGS = 200,
    DOMAIN_OPEN_CONSOLE = 201,
    DOMAIN_IS_UPDATED = 202,
    CONNECT_GET_SYSINFO = 203,
    DOMAIN_SET_MEMORY_FLAGS = 204,
    DOMAIN_GET_STATE = 212,
    DOMAIN_GET_CONTROL_INFO = 229,
    DOMAIN_UNDEFINE_FLAGS = 231,
    DOMAIN_SAVE_FLAGS = 232,
    DOMAIN_RESTORE_FLAGS = 233,
    DOMAIN_DESTROY_FLAGS = 234,
    DOMAIN_SAVE_IMAGE_GET_XML_DESC = 235,
    DOMAIN_SAVE_IMAGE_DEFINE_XML = 236,
    DOMAIN_BLOCK_JOB_ABORT = 237,
    DOMAIN_GET_BLOCK_JOB_INFO = 238,
    DOMAIN_BLOCK_JOB_SET_SPEED = 239,
    DOMAIN_BLOCK_PULL = 240,
    DOMAIN_EVENT_BLOCK_JOB = 241,
    DOMAIN_RESET = 245,
    DOMAIN_SHUTDOWN_FLAGS = 258,
    DOMAIN_GET_METADATA = 265,
    DOMAIN_BLOCK_REBASE = 266,
    CONNECT_LIST_ALL_DOMAINS = 273,
    DOMAIN_EVENT_BALLOON_CHANGE = 276,
    DOMAIN_GET_HOSTNAME = 277,
    DOMAIN_GET_SECURITY_LABEL_LIST = 278,
    CONNECT_LIST_ALL_STORAGE_POOLS = 281,
    CONNECT_LIST_ALL_NETWORKS = 283,
    DOMAIN_BLOCK_COMMIT = 290,
    DOMAIN_GET_JOB_STATS = 298,
    CONNECT_NETWORK_EVENT_REGISTER_ANY = 313,
    CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY = 316,
    CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY = 317,
    DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318,
    DOMAIN_EVENT_CALLBACK_REBOOT = 319,
    DOMAIN_EVENT_CALLBACK_RTC_CHANGE = 320,
    DOMAIN_EVENT_CALLBACK_WATCHDOG = 321,
    DOMAIN_EVENT_CALLBACK_IO_ERROR = 322,
    DOMAIN_EVENT_CALLBACK_IO_ERROR_REASON = 324,
    DOMAIN_EVENT_CALLBACK_BLOCK_JOB = 326,
    DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE = 331,
    DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED = 333,
    DOMAIN_GET_TIME = 337,
    DOMAIN_EVENT_BLOCK_JOB_2 = 339,
    CONNECT_GET_DOMAIN_CAPABILITIES = 342,
    CONNECT_GET_ALL_DOMAIN_STATS = 344,
    DOMAIN_BLOCK_COPY = 345,
    DOMAIN_EVENT_CALLBACK_TUNABLE = 346,
    DOMAIN_DEFINE_XML_FLAGS = 350,
    DOMAIN_GET_IOTHREAD_INFO = 351,
    DOMAIN_INTERFACE_ADDRESSES = 353,
    DOMAIN_EVENT_CALLBACK_DEVICE_ADDED = 354,
    DOMAIN_RENAME = 358,
    DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION = 359,
    CONNECT_REGISTER_CLOSE_CALLBACK = 360,
    CONNECT_UNREGISTER_CLOSE_CALLBACK = 361,
    CONNECT_EVENT_CONNECTION_CLOSED = 362,
    DOMAIN_EVENT_CALLBACK_JOB_COMPLETED = 363,
    DOMAIN_GET_PERF_EVENTS = 365,
    DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED = 367,
    CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY = 368,
    DOMAIN_GET_GUEST_VCPUS = 371,
    CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY = 374,
    STORAGE_VOL_GET_INFO_FLAGS = 378,
}

/// Procedures that read state only and so are allowed on the read-only
/// socket. Everything not listed is treated as mutating: an allow-list, so
/// a procedure added later is denied on the read-only socket until someone
/// decides otherwise. Flag-dependent cases (e.g. `DOMAIN_GET_XML_DESC` with
/// `VIR_DOMAIN_XML_SECURE`) are for the handler to refine via
/// `CallContext::readonly`.
pub fn is_read_only_safe(proc_: i32) -> bool {
    use procedure::*;
    matches!(
        proc_,
        CONNECT_OPEN
            | CONNECT_CLOSE
            | CONNECT_GET_TYPE
            | CONNECT_GET_VERSION
            | CONNECT_GET_MAX_VCPUS
            | NODE_GET_INFO
            | CONNECT_GET_CAPABILITIES
            | DOMAIN_GET_XML_DESC
            | DOMAIN_GET_AUTOSTART
            | DOMAIN_GET_INFO
            | DOMAIN_GET_MAX_MEMORY
            | DOMAIN_GET_MAX_VCPUS
            | DOMAIN_GET_OS_TYPE
            | DOMAIN_GET_VCPUS
            | CONNECT_LIST_DEFINED_DOMAINS
            | DOMAIN_LOOKUP_BY_ID
            | DOMAIN_LOOKUP_BY_NAME
            | DOMAIN_LOOKUP_BY_UUID
            | CONNECT_NUM_OF_DEFINED_DOMAINS
            | CONNECT_LIST_DEFINED_NETWORKS
            | CONNECT_LIST_DOMAINS
            | CONNECT_LIST_NETWORKS
            | CONNECT_NUM_OF_DEFINED_NETWORKS
            | CONNECT_NUM_OF_DOMAINS
            | CONNECT_NUM_OF_NETWORKS
            | DOMAIN_GET_SCHEDULER_TYPE
            | DOMAIN_GET_SCHEDULER_PARAMETERS
            | CONNECT_GET_HOSTNAME
            | CONNECT_SUPPORTS_FEATURE
            | DOMAIN_BLOCK_STATS
            | DOMAIN_INTERFACE_STATS
            | AUTH_LIST
            | AUTH_SASL_INIT
            | AUTH_SASL_START
            | AUTH_SASL_STEP
            | AUTH_POLKIT
            | NODE_GET_CELLS_FREE_MEMORY
            | NODE_GET_FREE_MEMORY
            | CONNECT_DOMAIN_EVENT_REGISTER
            | CONNECT_DOMAIN_EVENT_DEREGISTER
            | CONNECT_GET_URI
            | DOMAIN_GET_SECURITY_LABEL
            | NODE_GET_SECURITY_MODEL
            | CONNECT_IS_SECURE
            | DOMAIN_IS_ACTIVE
            | DOMAIN_IS_PERSISTENT
            | CONNECT_GET_LIB_VERSION
            | DOMAIN_MEMORY_STATS
            | DOMAIN_GET_JOB_INFO
            | CONNECT_DOMAIN_EVENT_REGISTER_ANY
            | CONNECT_DOMAIN_EVENT_DEREGISTER_ANY
            | DOMAIN_HAS_MANAGED_SAVE_IMAGE
            | DOMAIN_GET_BLOCK_INFO
            | DOMAIN_GET_VCPUS_FLAGS
            | DOMAIN_IS_UPDATED
            | CONNECT_GET_SYSINFO
            | DOMAIN_GET_STATE
            | DOMAIN_GET_CONTROL_INFO
            // libvirt allows it read-only unless the secure flag is asked
            // for; the handler refuses that case.
            | DOMAIN_SAVE_IMAGE_GET_XML_DESC
            | DOMAIN_GET_BLOCK_JOB_INFO
            | DOMAIN_GET_METADATA
            | CONNECT_LIST_ALL_DOMAINS
            | DOMAIN_GET_SECURITY_LABEL_LIST
            | CONNECT_LIST_ALL_STORAGE_POOLS
            | CONNECT_LIST_ALL_NETWORKS
            | DOMAIN_GET_JOB_STATS
            | CONNECT_NETWORK_EVENT_REGISTER_ANY
            | CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
            | CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY
            | CONNECT_GET_DOMAIN_CAPABILITIES
            | CONNECT_GET_ALL_DOMAIN_STATS
            | DOMAIN_GET_IOTHREAD_INFO
            | CONNECT_REGISTER_CLOSE_CALLBACK
            | CONNECT_UNREGISTER_CLOSE_CALLBACK
            | DOMAIN_GET_PERF_EVENTS
            | CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY
            | CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY
            | STORAGE_VOL_GET_INFO_FLAGS
    )
}

/// `virDrvFeature` values asked through `CONNECT_SUPPORTS_FEATURE`.
pub mod feature {
    pub const MIGRATION_V1: i32 = 1;
    pub const REMOTE: i32 = 2;
    pub const MIGRATION_V2: i32 = 3;
    pub const MIGRATION_P2P: i32 = 4;
    pub const MIGRATION_DIRECT: i32 = 5;
    pub const MIGRATION_V3: i32 = 6;
    pub const MIGRATE_CHANGE_PROTECTION: i32 = 7;
    pub const FD_PASSING: i32 = 8;
    pub const TYPED_PARAM_STRING: i32 = 9;
    /// The peer sends and answers KEEPALIVE messages; when a client asks
    /// this, libvirtd starts pinging it (and so does our server).
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    pub const XML_MIGRATABLE: i32 = 11;
    pub const MIGRATION_OFFLINE: i32 = 12;
    pub const MIGRATION_PARAMS: i32 = 13;
    /// Events carry a callbackID (`CONNECT_DOMAIN_EVENT_CALLBACK_*`).
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    /// `CONNECT_REGISTER_CLOSE_CALLBACK` is understood.
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
}

/// `virDomainEventID` values used in event registration.
pub mod event_id {
    pub const LIFECYCLE: i32 = 0;
    pub const REBOOT: i32 = 1;
    pub const RTC_CHANGE: i32 = 2;
    pub const WATCHDOG: i32 = 3;
    pub const IO_ERROR: i32 = 4;
    pub const GRAPHICS: i32 = 5;
    pub const IO_ERROR_REASON: i32 = 6;
    pub const CONTROL_ERROR: i32 = 7;
    pub const BLOCK_JOB: i32 = 8;
    pub const DISK_CHANGE: i32 = 9;
    pub const TRAY_CHANGE: i32 = 10;
    pub const PMWAKEUP: i32 = 11;
    pub const PMSUSPEND: i32 = 12;
    pub const BALLOON_CHANGE: i32 = 13;
    pub const PMSUSPEND_DISK: i32 = 14;
    pub const DEVICE_REMOVED: i32 = 15;
    pub const BLOCK_JOB_2: i32 = 16;
    pub const TUNABLE: i32 = 17;
    pub const AGENT_LIFECYCLE: i32 = 18;
    pub const DEVICE_ADDED: i32 = 19;
    pub const MIGRATION_ITERATION: i32 = 20;
    pub const JOB_COMPLETED: i32 = 21;
    pub const DEVICE_REMOVAL_FAILED: i32 = 22;
}

/// `virErrorLevel` `VIR_ERR_ERROR`.
pub const ERR_LEVEL_ERROR: i32 = 2;

xdr_struct! {
    /// `remote_nonnull_domain`: how a domain is named on the wire. `id` is
    /// -1 for an inactive domain.
    pub struct NonnullDomain {
        pub name: String,
        pub uuid: Uuid,
        pub id: i32,
    }

    /// `remote_nonnull_network`.
    pub struct NonnullNetwork {
        pub name: String,
        pub uuid: Uuid,
    }

    /// `remote_error`: the body of every `REPLY` with status `ERROR`.
    /// `virsh` prints `error: <message>`; bindings expose code and domain.
    pub struct RemoteError {
        pub code: i32,
        pub domain: i32,
        pub message: Option<String>,
        pub level: i32,
        pub dom: Option<NonnullDomain>,
        pub str1: Option<String>,
        pub str2: Option<String>,
        pub str3: Option<String>,
        pub int1: i32,
        pub int2: i32,
        pub net: Option<NonnullNetwork>,
    }
}

impl RemoteError {
    /// An error with code, domain and message; everything else empty.
    pub fn new(code: i32, domain: i32, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code,
            domain,
            // libvirt fills str1 with the message too; clients that format
            // from str1 then still show something useful.
            str1: Some(message.clone()),
            message: Some(message),
            level: ERR_LEVEL_ERROR,
            dom: None,
            str2: None,
            str3: None,
            int1: -1,
            int2: -1,
            net: None,
        }
    }
}

impl From<&virterror::VirError> for RemoteError {
    fn from(e: &virterror::VirError) -> Self {
        RemoteError::new(e.code.as_i32(), e.domain.as_i32(), e.message.clone())
    }
}

impl From<virterror::VirError> for RemoteError {
    fn from(e: virterror::VirError) -> Self {
        RemoteError::from(&e)
    }
}

xdr_enum! {
    /// `remote_auth_type`.
    pub enum AuthType {
        None = 0,
        Sasl = 1,
        Polkit = 2,
    }
}

/// `remote_typed_param_value`: a union discriminated by
/// `VIR_TYPED_PARAM_*`.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedParamValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(i32),
    String(String),
}

impl TypedParamValue {
    /// The `VIR_TYPED_PARAM_*` discriminant.
    pub fn type_code(&self) -> i32 {
        match self {
            Self::Int(_) => 1,
            Self::UInt(_) => 2,
            Self::LLong(_) => 3,
            Self::ULLong(_) => 4,
            Self::Double(_) => 5,
            Self::Boolean(_) => 6,
            Self::String(_) => 7,
        }
    }
}

impl Xdr for TypedParamValue {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_i32(self.type_code());
        match self {
            Self::Int(v) | Self::Boolean(v) => enc.put_i32(*v),
            Self::UInt(v) => enc.put_u32(*v),
            Self::LLong(v) => enc.put_i64(*v),
            Self::ULLong(v) => enc.put_u64(*v),
            Self::Double(v) => enc.put_f64(*v),
            Self::String(s) => enc.put_str(s),
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        Ok(match dec.get_i32()? {
            1 => Self::Int(dec.get_i32()?),
            2 => Self::UInt(dec.get_u32()?),
            3 => Self::LLong(dec.get_i64()?),
            4 => Self::ULLong(dec.get_u64()?),
            5 => Self::Double(dec.get_f64()?),
            6 => Self::Boolean(dec.get_i32()?),
            7 => Self::String(dec.get_string(STRING_MAX)?),
            d => return Err(crate::error::XdrError::InvalidDiscriminant(d)),
        })
    }
}

xdr_struct! {
    /// `remote_typed_param`.
    pub struct TypedParam {
        pub field: String,
        pub value: TypedParamValue,
    }

    // ---- shared shapes ----

    /// Arguments that are just a domain.
    pub struct DomainArgs {
        pub dom: NonnullDomain,
    }

    /// Arguments that are a domain and flags.
    pub struct DomainFlagsArgs {
        pub dom: NonnullDomain,
        pub flags: u32,
    }

    /// A return value that is just a domain.
    pub struct DomainRet {
        pub dom: NonnullDomain,
    }

    /// `{ int num; }` returns.
    pub struct NumRet {
        pub num: i32,
    }

    // ---- connection ----

    /// `remote_auth_list_ret`.
    pub struct AuthListRet {
        pub types: Vec<AuthType> [max = AUTH_TYPE_LIST_MAX],
    }

    /// `remote_connect_open_args`.
    pub struct ConnectOpenArgs {
        pub name: Option<String>,
        pub flags: u32,
    }

    /// `remote_connect_supports_feature_args`.
    pub struct ConnectSupportsFeatureArgs {
        pub feature: i32,
    }

    /// `remote_connect_supports_feature_ret`.
    pub struct ConnectSupportsFeatureRet {
        pub supported: i32,
    }

    /// `remote_connect_get_type_ret`.
    pub struct ConnectGetTypeRet {
        pub type_: String,
    }

    /// `remote_connect_get_version_ret`.
    pub struct ConnectGetVersionRet {
        pub hv_ver: u64,
    }

    /// `remote_connect_get_lib_version_ret`.
    pub struct ConnectGetLibVersionRet {
        pub lib_ver: u64,
    }

    /// `remote_connect_get_hostname_ret`.
    pub struct ConnectGetHostnameRet {
        pub hostname: String,
    }

    /// `remote_connect_get_uri_ret`.
    pub struct ConnectGetUriRet {
        pub uri: String,
    }

    /// `remote_connect_get_sysinfo_args`.
    pub struct ConnectGetSysinfoArgs {
        pub flags: u32,
    }

    /// `remote_connect_get_sysinfo_ret`.
    pub struct ConnectGetSysinfoRet {
        pub sysinfo: String,
    }

    /// `remote_connect_get_max_vcpus_args`.
    pub struct ConnectGetMaxVcpusArgs {
        pub type_: Option<String>,
    }

    /// `remote_connect_get_max_vcpus_ret`.
    pub struct ConnectGetMaxVcpusRet {
        pub max_vcpus: i32,
    }

    /// `remote_connect_get_capabilities_ret`.
    pub struct ConnectGetCapabilitiesRet {
        pub capabilities: String,
    }

    /// `remote_connect_is_secure_ret`.
    pub struct ConnectIsSecureRet {
        pub secure: i32,
    }

    /// `remote_node_get_info_ret`. `model` is `char model[32]` (4 bytes per
    /// char on the wire); build it with [`model_chars`].
    pub struct NodeGetInfoRet {
        pub model: [i8; 32],
        pub memory: u64,
        pub cpus: i32,
        pub mhz: i32,
        pub nodes: i32,
        pub sockets: i32,
        pub cores: i32,
        pub threads: i32,
    }

    /// `remote_node_get_security_model_ret` (`char model<>`, `char doi<>`).
    pub struct NodeGetSecurityModelRet {
        pub model: Vec<i8> [max = SECURITY_MODEL_MAX],
        pub doi: Vec<i8> [max = SECURITY_DOI_MAX],
    }

    // ---- domain lists ----

    /// `remote_connect_list_domains_args`.
    pub struct ConnectListDomainsArgs {
        pub maxids: i32,
    }

    /// `remote_connect_list_domains_ret`.
    pub struct ConnectListDomainsRet {
        pub ids: Vec<i32> [max = DOMAIN_LIST_MAX],
    }

    /// `remote_connect_list_defined_domains_args`.
    pub struct ConnectListDefinedDomainsArgs {
        pub maxnames: i32,
    }

    /// `remote_connect_list_defined_domains_ret`.
    pub struct ConnectListDefinedDomainsRet {
        pub names: Vec<String> [max = DOMAIN_LIST_MAX],
    }

    /// `remote_connect_list_all_domains_args`.
    pub struct ConnectListAllDomainsArgs {
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_connect_list_all_domains_ret`.
    pub struct ConnectListAllDomainsRet {
        pub domains: Vec<NonnullDomain> [max = DOMAIN_LIST_MAX],
        pub ret: u32,
    }

    // ---- domain lookups and lifecycle ----

    /// `remote_domain_lookup_by_id_args`.
    pub struct DomainLookupByIdArgs {
        pub id: i32,
    }

    /// `remote_domain_lookup_by_uuid_args`.
    pub struct DomainLookupByUuidArgs {
        pub uuid: Uuid,
    }

    /// `remote_domain_lookup_by_name_args`.
    pub struct DomainLookupByNameArgs {
        pub name: String,
    }

    /// `remote_domain_define_xml_args`.
    pub struct DomainDefineXmlArgs {
        pub xml: String,
    }

    /// `remote_domain_define_xml_flags_args`.
    pub struct DomainDefineXmlFlagsArgs {
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_domain_create_xml_args`.
    pub struct DomainCreateXmlArgs {
        pub xml_desc: String,
        pub flags: u32,
    }

    /// `remote_domain_set_autostart_args`.
    pub struct DomainSetAutostartArgs {
        pub dom: NonnullDomain,
        pub autostart: i32,
    }

    // ---- domain queries ----

    /// `remote_domain_get_info_ret` (`unsigned char state`, `unsigned short
    /// nrVirtCpu` are 4 bytes each on the wire).
    pub struct DomainGetInfoRet {
        pub state: u8,
        pub max_mem: u64,
        pub memory: u64,
        pub nr_virt_cpu: u16,
        pub cpu_time: u64,
    }

    /// `remote_domain_get_state_ret`.
    pub struct DomainGetStateRet {
        pub state: i32,
        pub reason: i32,
    }

    /// `remote_domain_get_xml_desc_ret`.
    pub struct DomainGetXmlDescRet {
        pub xml: String,
    }

    /// `remote_domain_get_os_type_ret`.
    pub struct DomainGetOsTypeRet {
        pub type_: String,
    }

    /// `remote_domain_is_active_ret`.
    pub struct DomainIsActiveRet {
        pub active: i32,
    }

    /// `remote_domain_is_persistent_ret`.
    pub struct DomainIsPersistentRet {
        pub persistent: i32,
    }

    /// `remote_domain_is_updated_ret`.
    pub struct DomainIsUpdatedRet {
        pub updated: i32,
    }

    /// `remote_domain_get_autostart_ret`.
    pub struct DomainGetAutostartRet {
        pub autostart: i32,
    }

    /// `remote_domain_get_max_memory_ret`.
    pub struct DomainGetMaxMemoryRet {
        pub memory: u64,
    }

    /// `remote_domain_has_managed_save_image_ret`.
    pub struct DomainHasManagedSaveImageRet {
        pub result: i32,
    }

    /// `remote_domain_get_scheduler_type_ret`.
    pub struct DomainGetSchedulerTypeRet {
        pub type_: String,
        pub nparams: i32,
    }

    /// `remote_domain_get_control_info_ret`.
    pub struct DomainGetControlInfoRet {
        pub state: u32,
        pub details: u32,
        pub state_time: u64,
    }

    /// `remote_domain_get_security_label_ret` (`char label<>`).
    pub struct DomainGetSecurityLabelRet {
        pub label: Vec<i8> [max = SECURITY_LABEL_MAX],
        pub enforcing: i32,
    }

    /// `remote_domain_get_job_info_ret`.
    pub struct DomainGetJobInfoRet {
        pub type_: i32,
        pub time_elapsed: u64,
        pub time_remaining: u64,
        pub data_total: u64,
        pub data_processed: u64,
        pub data_remaining: u64,
        pub mem_total: u64,
        pub mem_processed: u64,
        pub mem_remaining: u64,
        pub file_total: u64,
        pub file_processed: u64,
        pub file_remaining: u64,
    }

    /// `remote_domain_get_job_stats_ret`.
    pub struct DomainGetJobStatsRet {
        pub type_: i32,
        pub params: Vec<TypedParam> [max = DOMAIN_JOB_STATS_MAX],
    }

    // ---- events ----

    /// `remote_connect_domain_event_register_ret` and `..._deregister_ret`
    /// (legacy procedures 105/106).
    pub struct ConnectDomainEventRegisterRet {
        pub cb_registered: i32,
    }

    /// `remote_connect_domain_event_register_any_args` (also the
    /// `..._deregister_any_args`).
    pub struct ConnectDomainEventRegisterAnyArgs {
        pub event_id: i32,
    }

    /// `remote_connect_domain_event_callback_register_any_args`; `dom` is
    /// the optional domain filter.
    pub struct ConnectDomainEventCallbackRegisterAnyArgs {
        pub event_id: i32,
        pub dom: Option<NonnullDomain>,
    }

    /// `remote_connect_domain_event_callback_register_any_ret`.
    pub struct ConnectDomainEventCallbackRegisterAnyRet {
        pub callback_id: i32,
    }

    /// `remote_connect_domain_event_callback_deregister_any_args`.
    pub struct ConnectDomainEventCallbackDeregisterAnyArgs {
        pub callback_id: i32,
    }

    /// `remote_domain_event_lifecycle_msg` (body of `DOMAIN_EVENT_LIFECYCLE`).
    pub struct DomainEventLifecycleMsg {
        pub dom: NonnullDomain,
        pub event: i32,
        pub detail: i32,
    }

    /// `remote_domain_event_callback_lifecycle_msg`.
    pub struct DomainEventCallbackLifecycleMsg {
        pub callback_id: i32,
        pub msg: DomainEventLifecycleMsg,
    }

    /// `remote_domain_event_reboot_msg`.
    pub struct DomainEventRebootMsg {
        pub dom: NonnullDomain,
    }

    /// `remote_domain_event_callback_reboot_msg`.
    pub struct DomainEventCallbackRebootMsg {
        pub callback_id: i32,
        pub msg: DomainEventRebootMsg,
    }

    pub struct DomainEventRtcChangeMsg {
        pub dom: NonnullDomain,
        pub offset: i64,
    }

    pub struct DomainEventCallbackRtcChangeMsg {
        pub callback_id: i32,
        pub msg: DomainEventRtcChangeMsg,
    }

    /// `remote_domain_event_watchdog_msg`; `action` is a
    /// `virDomainEventWatchdogAction`.
    pub struct DomainEventWatchdogMsg {
        pub dom: NonnullDomain,
        pub action: i32,
    }

    /// `remote_domain_event_callback_watchdog_msg`.
    pub struct DomainEventCallbackWatchdogMsg {
        pub callback_id: i32,
        pub msg: DomainEventWatchdogMsg,
    }

    /// `remote_domain_event_io_error_msg`; `action` is a
    /// `virDomainEventIOErrorAction`.
    pub struct DomainEventIoErrorMsg {
        pub dom: NonnullDomain,
        pub src_path: String,
        pub dev_alias: String,
        pub action: i32,
    }

    /// `remote_domain_event_callback_io_error_msg`.
    pub struct DomainEventCallbackIoErrorMsg {
        pub callback_id: i32,
        pub msg: DomainEventIoErrorMsg,
    }

    /// `remote_domain_event_io_error_reason_msg`.
    pub struct DomainEventIoErrorReasonMsg {
        pub dom: NonnullDomain,
        pub src_path: String,
        pub dev_alias: String,
        pub action: i32,
        pub reason: String,
    }

    /// `remote_domain_event_callback_io_error_reason_msg`.
    pub struct DomainEventCallbackIoErrorReasonMsg {
        pub callback_id: i32,
        pub msg: DomainEventIoErrorReasonMsg,
    }

    pub struct DomainEventBalloonChangeMsg {
        pub dom: NonnullDomain,
        pub actual: u64,
    }

    pub struct DomainEventCallbackBalloonChangeMsg {
        pub callback_id: i32,
        pub msg: DomainEventBalloonChangeMsg,
    }

    /// `remote_domain_event_callback_job_completed_msg`.
    pub struct DomainEventCallbackJobCompletedMsg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub params: Vec<TypedParam> [max = DOMAIN_JOB_STATS_MAX],
    }

    /// `remote_domain_event_block_job_msg` (legacy `DOMAIN_EVENT_BLOCK_JOB`).
    pub struct DomainEventBlockJobMsg {
        pub dom: NonnullDomain,
        pub path: String,
        pub type_: i32,
        pub status: i32,
    }

    /// `remote_domain_event_callback_block_job_msg`.
    pub struct DomainEventCallbackBlockJobMsg {
        pub callback_id: i32,
        pub msg: DomainEventBlockJobMsg,
    }

    /// `remote_domain_event_block_job_2_msg` (always with a callback id).
    pub struct DomainEventBlockJob2Msg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub dst: String,
        pub type_: i32,
        pub status: i32,
    }

    // ---- save / restore ----

    /// `remote_domain_save_args`.
    pub struct DomainSaveArgs {
        pub dom: NonnullDomain,
        pub to: String,
    }

    /// `remote_domain_save_flags_args`.
    pub struct DomainSaveFlagsArgs {
        pub dom: NonnullDomain,
        pub to: String,
        pub dxml: Option<String>,
        pub flags: u32,
    }

    /// `remote_domain_restore_args`.
    pub struct DomainRestoreArgs {
        pub from: String,
    }

    /// `remote_domain_restore_flags_args`.
    pub struct DomainRestoreFlagsArgs {
        pub from: String,
        pub dxml: Option<String>,
        pub flags: u32,
    }

    /// `remote_domain_save_image_get_xml_desc_args`.
    pub struct DomainSaveImageGetXmlDescArgs {
        pub file: String,
        pub flags: u32,
    }

    /// `remote_domain_save_image_get_xml_desc_ret`.
    pub struct DomainSaveImageGetXmlDescRet {
        pub xml: String,
    }

    /// `remote_domain_save_image_define_xml_args`.
    pub struct DomainSaveImageDefineXmlArgs {
        pub file: String,
        pub dxml: String,
        pub flags: u32,
    }

    // ---- block jobs ----

    /// `remote_domain_block_job_abort_args` (also `get_block_job_info_args`).
    pub struct DomainBlockJobAbortArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub flags: u32,
    }

    /// `remote_domain_get_block_job_info_ret`.
    pub struct DomainGetBlockJobInfoRet {
        pub found: i32,
        pub type_: i32,
        pub bandwidth: u64,
        pub cur: u64,
        pub end: u64,
    }

    /// `remote_domain_block_job_set_speed_args` (also `block_pull_args`).
    pub struct DomainBlockJobSetSpeedArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub bandwidth: u64,
        pub flags: u32,
    }

    /// `remote_domain_block_rebase_args`.
    pub struct DomainBlockRebaseArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub base: Option<String>,
        pub bandwidth: u64,
        pub flags: u32,
    }

    /// `remote_domain_block_copy_args`.
    pub struct DomainBlockCopyArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub destxml: String,
        pub params: Vec<TypedParam> [max = DOMAIN_BLOCK_COPY_PARAMETERS_MAX],
        pub flags: u32,
    }

    /// `remote_domain_block_commit_args`.
    pub struct DomainBlockCommitArgs {
        pub dom: NonnullDomain,
        pub disk: String,
        pub base: Option<String>,
        pub top: Option<String>,
        pub bandwidth: u64,
        pub flags: u32,
    }

    /// `remote_connect_event_connection_closed_msg`.
    pub struct ConnectEventConnectionClosedMsg {
        pub reason: i32,
    }
}

// libvirt names for the shared shapes, so handler code reads like the
// protocol file.
pub type DomainLookupByIdRet = DomainRet;
pub type DomainLookupByUuidRet = DomainRet;
pub type DomainLookupByNameRet = DomainRet;
pub type DomainDefineXmlRet = DomainRet;
pub type DomainDefineXmlFlagsRet = DomainRet;
pub type DomainCreateXmlRet = DomainRet;
pub type DomainCreateWithFlagsRet = DomainRet;
pub type DomainCreateArgs = DomainArgs;
pub type DomainDestroyArgs = DomainArgs;
pub type DomainShutdownArgs = DomainArgs;
pub type DomainSuspendArgs = DomainArgs;
pub type DomainResumeArgs = DomainArgs;
pub type DomainUndefineArgs = DomainArgs;
pub type DomainGetInfoArgs = DomainArgs;
pub type DomainGetOsTypeArgs = DomainArgs;
pub type DomainGetMaxMemoryArgs = DomainArgs;
pub type DomainIsActiveArgs = DomainArgs;
pub type DomainIsPersistentArgs = DomainArgs;
pub type DomainIsUpdatedArgs = DomainArgs;
pub type DomainGetAutostartArgs = DomainArgs;
pub type DomainAbortJobArgs = DomainArgs;
pub type DomainGetJobInfoArgs = DomainArgs;
pub type DomainGetSchedulerTypeArgs = DomainArgs;
pub type DomainGetSecurityLabelArgs = DomainArgs;
pub type DomainGetMaxVcpusArgs = DomainArgs;
pub type DomainCreateWithFlagsArgs = DomainFlagsArgs;
pub type DomainDestroyFlagsArgs = DomainFlagsArgs;
pub type DomainShutdownFlagsArgs = DomainFlagsArgs;
pub type DomainRebootArgs = DomainFlagsArgs;
pub type DomainResetArgs = DomainFlagsArgs;
pub type DomainUndefineFlagsArgs = DomainFlagsArgs;
pub type DomainGetXmlDescArgs = DomainFlagsArgs;
pub type DomainGetStateArgs = DomainFlagsArgs;
pub type DomainHasManagedSaveImageArgs = DomainFlagsArgs;
pub type DomainGetVcpusFlagsArgs = DomainFlagsArgs;
pub type DomainGetJobStatsArgs = DomainFlagsArgs;
pub type DomainGetControlInfoArgs = DomainFlagsArgs;
pub type DomainManagedSaveArgs = DomainFlagsArgs;
pub type DomainManagedSaveRemoveArgs = DomainFlagsArgs;
pub type DomainGetBlockJobInfoArgs = DomainBlockJobAbortArgs;
pub type DomainBlockPullArgs = DomainBlockJobSetSpeedArgs;
pub type DomainGetVcpusFlagsRet = NumRet;
pub type DomainGetMaxVcpusRet = NumRet;
pub type ConnectNumOfDomainsRet = NumRet;
pub type ConnectNumOfDefinedDomainsRet = NumRet;
pub type ConnectDomainEventDeregisterAnyArgs = ConnectDomainEventRegisterAnyArgs;
pub type ConnectDomainEventDeregisterRet = ConnectDomainEventRegisterRet;

/// `char model[32]` from a string (truncated, NUL-terminated).
pub fn model_chars(s: &str) -> [i8; 32] {
    let mut out = [0i8; 32];
    for (o, b) in out.iter_mut().zip(s.bytes().take(31)) {
        *o = b as i8;
    }
    out
}

/// A `char x<>` / `char x[N]` value as a string (up to the first NUL).
pub fn chars_to_string(c: &[i8]) -> String {
    let bytes: Vec<u8> = c
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A string as `char x<>` including the terminating NUL, as libvirtd sends
/// security models and labels.
pub fn string_to_chars(s: &str) -> Vec<i8> {
    s.bytes()
        .map(|b| b as i8)
        .chain(std::iter::once(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::{from_bytes, to_bytes};

    #[test]
    fn procedure_numbers_match_remote_protocol_x() {
        assert_eq!(procedure::CONNECT_OPEN, 1);
        assert_eq!(procedure::AUTH_LIST, 66);
        assert_eq!(procedure::CONNECT_LIST_ALL_DOMAINS, 273);
        assert_eq!(procedure::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, 316);
        assert_eq!(procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE, 318);
        assert_eq!(procedure::DOMAIN_DEFINE_XML_FLAGS, 350);
        assert_eq!(procedure::DOMAIN_SAVE_FLAGS, 232);
        assert_eq!(procedure::DOMAIN_SAVE_IMAGE_GET_XML_DESC, 235);
        assert_eq!(procedure::DOMAIN_SAVE_IMAGE_DEFINE_XML, 236);
        assert_eq!(procedure::DOMAIN_BLOCK_PULL, 240);
        assert_eq!(procedure::DOMAIN_BLOCK_REBASE, 266);
        assert_eq!(procedure::DOMAIN_BLOCK_COMMIT, 290);
        assert_eq!(procedure::DOMAIN_BLOCK_COPY, 345);
        assert_eq!(procedure::DOMAIN_EVENT_WATCHDOG, 171);
        assert_eq!(procedure::DOMAIN_EVENT_IO_ERROR, 172);
        assert_eq!(procedure::DOMAIN_EVENT_IO_ERROR_REASON, 195);
        assert_eq!(procedure::DOMAIN_EVENT_CALLBACK_WATCHDOG, 321);
        assert_eq!(procedure::DOMAIN_EVENT_CALLBACK_IO_ERROR, 322);
        assert_eq!(procedure::DOMAIN_EVENT_CALLBACK_IO_ERROR_REASON, 324);
        assert_eq!(procedure_name(212), Some("DOMAIN_GET_STATE"));
        assert_eq!(procedure_name(100_000), None);
    }

    #[test]
    fn remote_error_layout() {
        let e = RemoteError::new(3, 13, "nope");
        let b = to_bytes(&e);
        // code, domain, message(ptr+len+4 bytes), level, dom null, str1
        // (ptr+len+4), str2 null, str3 null, int1, int2, net null
        assert_eq!(b.len(), 4 + 4 + 12 + 4 + 4 + 12 + 4 + 4 + 4 + 4 + 4);
        assert_eq!(from_bytes::<RemoteError>(&b).unwrap(), e);
    }

    #[test]
    fn domain_get_info_ret_is_40_bytes() {
        let r = DomainGetInfoRet {
            state: 1,
            max_mem: 2,
            memory: 3,
            nr_virt_cpu: 4,
            cpu_time: 5,
        };
        assert_eq!(to_bytes(&r).len(), 4 + 8 + 8 + 4 + 8);
    }

    #[test]
    fn typed_param_union() {
        let p = TypedParam {
            field: "time_elapsed".into(),
            value: TypedParamValue::ULLong(42),
        };
        assert_eq!(from_bytes::<TypedParam>(&to_bytes(&p)).unwrap(), p);
        let mut bad = to_bytes(&p).to_vec();
        // discriminant right after the 12-byte field name: set to 99
        bad[16..20].copy_from_slice(&99i32.to_be_bytes());
        assert!(from_bytes::<TypedParam>(&bad).is_err());
    }

    #[test]
    fn io_error_reason_msg_layout() {
        let m = DomainEventCallbackIoErrorReasonMsg {
            callback_id: 7,
            msg: DomainEventIoErrorReasonMsg {
                dom: NonnullDomain {
                    name: "vm".into(),
                    uuid: [1; UUID_LEN],
                    id: 3,
                },
                src_path: "/d.img".into(),
                dev_alias: "virtio-disk0".into(),
                action: 1,
                reason: "enospc".into(),
            },
        };
        let b = to_bytes(&m);
        // callbackID, dom (len+"vm" padded, uuid, id), srcPath (len +
        // 6 padded to 8), devAlias (len + 12), action, reason (len + 6 + 2)
        assert_eq!(
            b.len(),
            4 + (4 + 4 + 16 + 4) + (4 + 8) + (4 + 12) + 4 + (4 + 8)
        );
        assert_eq!(&b[..4], &7i32.to_be_bytes());
        assert_eq!(&b[b.len() - 12..b.len() - 8], &6u32.to_be_bytes());
        assert_eq!(
            from_bytes::<DomainEventCallbackIoErrorReasonMsg>(&b).unwrap(),
            m
        );
    }

    #[test]
    fn read_only_allow_list() {
        assert!(is_read_only_safe(procedure::DOMAIN_GET_INFO));
        assert!(!is_read_only_safe(procedure::DOMAIN_DESTROY));
        assert!(!is_read_only_safe(procedure::DOMAIN_DEFINE_XML));
        assert!(is_read_only_safe(procedure::DOMAIN_SAVE_IMAGE_GET_XML_DESC));
        assert!(!is_read_only_safe(procedure::DOMAIN_SAVE_IMAGE_DEFINE_XML));
        assert!(!is_read_only_safe(9999));
    }
}
