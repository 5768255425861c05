//! REMOTE program (`remote_protocol.x`): every procedure number of
//! libvirt 9.0 with its name, and the wire structures of the procedures
//! ferrovirt serves.
//!
//! Naming: `remote_domain_get_info_args` becomes [`DomainGetInfoArgs`].
//! Procedures whose arguments or return share one shape share one struct,
//! named after the shape: [`DomainArgs`] (just a domain),
//! [`DomainFlagsArgs`] (a domain and flags), [`DomainRet`], [`NumRet`],
//! [`DomainPathFlagsArgs`], [`DomainPathBandwidthArgs`]. Rust keywords get a
//! trailing underscore (`type_`). `remote_string` (nullable) is
//! `Option<String>`.
//!
//! To serve a new procedure whose shape is not here yet, define its
//! args/ret with `xdr_struct!` in wire order, each `<MAX>` as
//! `[max = ...]`. Which procedures a server serves, and whether the
//! read-only socket may call them, is the server's table
//! ([`crate::dispatch::Table`]), not this module's.

use crate::xdr::{Decoder, Encoder, Result, Xdr};
use crate::{xdr_enum, xdr_struct};

mod cpu;
mod migration;
mod network;
mod secret;
mod stats;
mod storage;
mod streams;
pub use cpu::*;
pub use migration::*;
pub use network::*;
pub use secret::*;
pub use stats::*;
pub use storage::*;
pub use streams::*;

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
/// `REMOTE_STORAGE_POOL_LIST_MAX`, `REMOTE_STORAGE_VOL_LIST_MAX`,
/// `REMOTE_NETWORK_LIST_MAX`: all the same.
pub const OBJECT_LIST_MAX: usize = 16_384;
/// `VIR_UUID_BUFLEN`.
pub const UUID_LEN: usize = 16;

/// A UUID as raw bytes (`remote_uuid`).
pub type Uuid = [u8; UUID_LEN];

/// Declares the procedure constants and their name table.
macro_rules! procedures {
    ($( $name:ident = $num:literal ),* $(,)?) => {
        /// `remote_procedure`: every procedure number of libvirt 9.0, named
        /// as in `remote_protocol.x` without the `REMOTE_PROC_` prefix.
        pub mod procedure {
            $( pub const $name: i32 = $num; )*
        }

        /// Every `(number, name)` pair of [`procedure`], in protocol order.
        pub const PROCEDURES: &[(i32, &str)] = &[ $( ($num, stringify!($name)), )* ];

        /// The libvirt name of a procedure (without `REMOTE_PROC_`); `None`
        /// for a number libvirt 9.0 does not define.
        pub fn procedure_name(proc_: i32) -> Option<&'static str> {
            match proc_ {
                $( $num => Some(stringify!($name)), )*
                _ => None,
            }
        }
    };
}

// Transcribed from libvirt 9.0's `remote_protocol.x` (enum
// `remote_procedure`, 1 to 443). Numbers are wire ABI: append, never
// renumber.
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
    NETWORK_CREATE = 39,
    NETWORK_CREATE_XML = 40,
    NETWORK_DEFINE_XML = 41,
    NETWORK_DESTROY = 42,
    NETWORK_GET_XML_DESC = 43,
    NETWORK_GET_AUTOSTART = 44,
    NETWORK_GET_BRIDGE_NAME = 45,
    NETWORK_LOOKUP_BY_NAME = 46,
    NETWORK_LOOKUP_BY_UUID = 47,
    NETWORK_SET_AUTOSTART = 48,
    NETWORK_UNDEFINE = 49,
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
    DOMAIN_MIGRATE_PREPARE = 61,
    DOMAIN_MIGRATE_PERFORM = 62,
    DOMAIN_MIGRATE_FINISH = 63,
    DOMAIN_BLOCK_STATS = 64,
    DOMAIN_INTERFACE_STATS = 65,
    AUTH_LIST = 66,
    AUTH_SASL_INIT = 67,
    AUTH_SASL_START = 68,
    AUTH_SASL_STEP = 69,
    AUTH_POLKIT = 70,
    CONNECT_NUM_OF_STORAGE_POOLS = 71,
    CONNECT_LIST_STORAGE_POOLS = 72,
    CONNECT_NUM_OF_DEFINED_STORAGE_POOLS = 73,
    CONNECT_LIST_DEFINED_STORAGE_POOLS = 74,
    CONNECT_FIND_STORAGE_POOL_SOURCES = 75,
    STORAGE_POOL_CREATE_XML = 76,
    STORAGE_POOL_DEFINE_XML = 77,
    STORAGE_POOL_CREATE = 78,
    STORAGE_POOL_BUILD = 79,
    STORAGE_POOL_DESTROY = 80,
    STORAGE_POOL_DELETE = 81,
    STORAGE_POOL_UNDEFINE = 82,
    STORAGE_POOL_REFRESH = 83,
    STORAGE_POOL_LOOKUP_BY_NAME = 84,
    STORAGE_POOL_LOOKUP_BY_UUID = 85,
    STORAGE_POOL_LOOKUP_BY_VOLUME = 86,
    STORAGE_POOL_GET_INFO = 87,
    STORAGE_POOL_GET_XML_DESC = 88,
    STORAGE_POOL_GET_AUTOSTART = 89,
    STORAGE_POOL_SET_AUTOSTART = 90,
    STORAGE_POOL_NUM_OF_VOLUMES = 91,
    STORAGE_POOL_LIST_VOLUMES = 92,
    STORAGE_VOL_CREATE_XML = 93,
    STORAGE_VOL_DELETE = 94,
    STORAGE_VOL_LOOKUP_BY_NAME = 95,
    STORAGE_VOL_LOOKUP_BY_KEY = 96,
    STORAGE_VOL_LOOKUP_BY_PATH = 97,
    STORAGE_VOL_GET_INFO = 98,
    STORAGE_VOL_GET_XML_DESC = 99,
    STORAGE_VOL_GET_PATH = 100,
    NODE_GET_CELLS_FREE_MEMORY = 101,
    NODE_GET_FREE_MEMORY = 102,
    DOMAIN_BLOCK_PEEK = 103,
    DOMAIN_MEMORY_PEEK = 104,
    CONNECT_DOMAIN_EVENT_REGISTER = 105,
    CONNECT_DOMAIN_EVENT_DEREGISTER = 106,
    DOMAIN_EVENT_LIFECYCLE = 107,
    DOMAIN_MIGRATE_PREPARE2 = 108,
    DOMAIN_MIGRATE_FINISH2 = 109,
    CONNECT_GET_URI = 110,
    NODE_NUM_OF_DEVICES = 111,
    NODE_LIST_DEVICES = 112,
    NODE_DEVICE_LOOKUP_BY_NAME = 113,
    NODE_DEVICE_GET_XML_DESC = 114,
    NODE_DEVICE_GET_PARENT = 115,
    NODE_DEVICE_NUM_OF_CAPS = 116,
    NODE_DEVICE_LIST_CAPS = 117,
    NODE_DEVICE_DETTACH = 118,
    NODE_DEVICE_RE_ATTACH = 119,
    NODE_DEVICE_RESET = 120,
    DOMAIN_GET_SECURITY_LABEL = 121,
    NODE_GET_SECURITY_MODEL = 122,
    NODE_DEVICE_CREATE_XML = 123,
    NODE_DEVICE_DESTROY = 124,
    STORAGE_VOL_CREATE_XML_FROM = 125,
    CONNECT_NUM_OF_INTERFACES = 126,
    CONNECT_LIST_INTERFACES = 127,
    INTERFACE_LOOKUP_BY_NAME = 128,
    INTERFACE_LOOKUP_BY_MAC_STRING = 129,
    INTERFACE_GET_XML_DESC = 130,
    INTERFACE_DEFINE_XML = 131,
    INTERFACE_UNDEFINE = 132,
    INTERFACE_CREATE = 133,
    INTERFACE_DESTROY = 134,
    CONNECT_DOMAIN_XML_FROM_NATIVE = 135,
    CONNECT_DOMAIN_XML_TO_NATIVE = 136,
    CONNECT_NUM_OF_DEFINED_INTERFACES = 137,
    CONNECT_LIST_DEFINED_INTERFACES = 138,
    CONNECT_NUM_OF_SECRETS = 139,
    CONNECT_LIST_SECRETS = 140,
    SECRET_LOOKUP_BY_UUID = 141,
    SECRET_DEFINE_XML = 142,
    SECRET_GET_XML_DESC = 143,
    SECRET_SET_VALUE = 144,
    SECRET_GET_VALUE = 145,
    SECRET_UNDEFINE = 146,
    SECRET_LOOKUP_BY_USAGE = 147,
    DOMAIN_MIGRATE_PREPARE_TUNNEL = 148,
    CONNECT_IS_SECURE = 149,
    DOMAIN_IS_ACTIVE = 150,
    DOMAIN_IS_PERSISTENT = 151,
    NETWORK_IS_ACTIVE = 152,
    NETWORK_IS_PERSISTENT = 153,
    STORAGE_POOL_IS_ACTIVE = 154,
    STORAGE_POOL_IS_PERSISTENT = 155,
    INTERFACE_IS_ACTIVE = 156,
    CONNECT_GET_LIB_VERSION = 157,
    CONNECT_COMPARE_CPU = 158,
    DOMAIN_MEMORY_STATS = 159,
    DOMAIN_ATTACH_DEVICE_FLAGS = 160,
    DOMAIN_DETACH_DEVICE_FLAGS = 161,
    CONNECT_BASELINE_CPU = 162,
    DOMAIN_GET_JOB_INFO = 163,
    DOMAIN_ABORT_JOB = 164,
    STORAGE_VOL_WIPE = 165,
    DOMAIN_MIGRATE_SET_MAX_DOWNTIME = 166,
    CONNECT_DOMAIN_EVENT_REGISTER_ANY = 167,
    CONNECT_DOMAIN_EVENT_DEREGISTER_ANY = 168,
    DOMAIN_EVENT_REBOOT = 169,
    DOMAIN_EVENT_RTC_CHANGE = 170,
    DOMAIN_EVENT_WATCHDOG = 171,
    DOMAIN_EVENT_IO_ERROR = 172,
    DOMAIN_EVENT_GRAPHICS = 173,
    DOMAIN_UPDATE_DEVICE_FLAGS = 174,
    NWFILTER_LOOKUP_BY_NAME = 175,
    NWFILTER_LOOKUP_BY_UUID = 176,
    NWFILTER_GET_XML_DESC = 177,
    CONNECT_NUM_OF_NWFILTERS = 178,
    CONNECT_LIST_NWFILTERS = 179,
    NWFILTER_DEFINE_XML = 180,
    NWFILTER_UNDEFINE = 181,
    DOMAIN_MANAGED_SAVE = 182,
    DOMAIN_HAS_MANAGED_SAVE_IMAGE = 183,
    DOMAIN_MANAGED_SAVE_REMOVE = 184,
    DOMAIN_SNAPSHOT_CREATE_XML = 185,
    DOMAIN_SNAPSHOT_GET_XML_DESC = 186,
    DOMAIN_SNAPSHOT_NUM = 187,
    DOMAIN_SNAPSHOT_LIST_NAMES = 188,
    DOMAIN_SNAPSHOT_LOOKUP_BY_NAME = 189,
    DOMAIN_HAS_CURRENT_SNAPSHOT = 190,
    DOMAIN_SNAPSHOT_CURRENT = 191,
    DOMAIN_REVERT_TO_SNAPSHOT = 192,
    DOMAIN_SNAPSHOT_DELETE = 193,
    DOMAIN_GET_BLOCK_INFO = 194,
    DOMAIN_EVENT_IO_ERROR_REASON = 195,
    DOMAIN_CREATE_WITH_FLAGS = 196,
    DOMAIN_SET_MEMORY_PARAMETERS = 197,
    DOMAIN_GET_MEMORY_PARAMETERS = 198,
    DOMAIN_SET_VCPUS_FLAGS = 199,
    DOMAIN_GET_VCPUS_FLAGS = 200,
    DOMAIN_OPEN_CONSOLE = 201,
    DOMAIN_IS_UPDATED = 202,
    CONNECT_GET_SYSINFO = 203,
    DOMAIN_SET_MEMORY_FLAGS = 204,
    DOMAIN_SET_BLKIO_PARAMETERS = 205,
    DOMAIN_GET_BLKIO_PARAMETERS = 206,
    DOMAIN_MIGRATE_SET_MAX_SPEED = 207,
    STORAGE_VOL_UPLOAD = 208,
    STORAGE_VOL_DOWNLOAD = 209,
    DOMAIN_INJECT_NMI = 210,
    DOMAIN_SCREENSHOT = 211,
    DOMAIN_GET_STATE = 212,
    DOMAIN_MIGRATE_BEGIN3 = 213,
    DOMAIN_MIGRATE_PREPARE3 = 214,
    DOMAIN_MIGRATE_PREPARE_TUNNEL3 = 215,
    DOMAIN_MIGRATE_PERFORM3 = 216,
    DOMAIN_MIGRATE_FINISH3 = 217,
    DOMAIN_MIGRATE_CONFIRM3 = 218,
    DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS = 219,
    INTERFACE_CHANGE_BEGIN = 220,
    INTERFACE_CHANGE_COMMIT = 221,
    INTERFACE_CHANGE_ROLLBACK = 222,
    DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS = 223,
    DOMAIN_EVENT_CONTROL_ERROR = 224,
    DOMAIN_PIN_VCPU_FLAGS = 225,
    DOMAIN_SEND_KEY = 226,
    NODE_GET_CPU_STATS = 227,
    NODE_GET_MEMORY_STATS = 228,
    DOMAIN_GET_CONTROL_INFO = 229,
    DOMAIN_GET_VCPU_PIN_INFO = 230,
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
    DOMAIN_MIGRATE_GET_MAX_SPEED = 242,
    DOMAIN_BLOCK_STATS_FLAGS = 243,
    DOMAIN_SNAPSHOT_GET_PARENT = 244,
    DOMAIN_RESET = 245,
    DOMAIN_SNAPSHOT_NUM_CHILDREN = 246,
    DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES = 247,
    DOMAIN_EVENT_DISK_CHANGE = 248,
    DOMAIN_OPEN_GRAPHICS = 249,
    NODE_SUSPEND_FOR_DURATION = 250,
    DOMAIN_BLOCK_RESIZE = 251,
    DOMAIN_SET_BLOCK_IO_TUNE = 252,
    DOMAIN_GET_BLOCK_IO_TUNE = 253,
    DOMAIN_SET_NUMA_PARAMETERS = 254,
    DOMAIN_GET_NUMA_PARAMETERS = 255,
    DOMAIN_SET_INTERFACE_PARAMETERS = 256,
    DOMAIN_GET_INTERFACE_PARAMETERS = 257,
    DOMAIN_SHUTDOWN_FLAGS = 258,
    STORAGE_VOL_WIPE_PATTERN = 259,
    STORAGE_VOL_RESIZE = 260,
    DOMAIN_PM_SUSPEND_FOR_DURATION = 261,
    DOMAIN_GET_CPU_STATS = 262,
    DOMAIN_GET_DISK_ERRORS = 263,
    DOMAIN_SET_METADATA = 264,
    DOMAIN_GET_METADATA = 265,
    DOMAIN_BLOCK_REBASE = 266,
    DOMAIN_PM_WAKEUP = 267,
    DOMAIN_EVENT_TRAY_CHANGE = 268,
    DOMAIN_EVENT_PMWAKEUP = 269,
    DOMAIN_EVENT_PMSUSPEND = 270,
    DOMAIN_SNAPSHOT_IS_CURRENT = 271,
    DOMAIN_SNAPSHOT_HAS_METADATA = 272,
    CONNECT_LIST_ALL_DOMAINS = 273,
    DOMAIN_LIST_ALL_SNAPSHOTS = 274,
    DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN = 275,
    DOMAIN_EVENT_BALLOON_CHANGE = 276,
    DOMAIN_GET_HOSTNAME = 277,
    DOMAIN_GET_SECURITY_LABEL_LIST = 278,
    DOMAIN_PIN_EMULATOR = 279,
    DOMAIN_GET_EMULATOR_PIN_INFO = 280,
    CONNECT_LIST_ALL_STORAGE_POOLS = 281,
    STORAGE_POOL_LIST_ALL_VOLUMES = 282,
    CONNECT_LIST_ALL_NETWORKS = 283,
    CONNECT_LIST_ALL_INTERFACES = 284,
    CONNECT_LIST_ALL_NODE_DEVICES = 285,
    CONNECT_LIST_ALL_NWFILTERS = 286,
    CONNECT_LIST_ALL_SECRETS = 287,
    NODE_SET_MEMORY_PARAMETERS = 288,
    NODE_GET_MEMORY_PARAMETERS = 289,
    DOMAIN_BLOCK_COMMIT = 290,
    NETWORK_UPDATE = 291,
    DOMAIN_EVENT_PMSUSPEND_DISK = 292,
    NODE_GET_CPU_MAP = 293,
    DOMAIN_FSTRIM = 294,
    DOMAIN_SEND_PROCESS_SIGNAL = 295,
    DOMAIN_OPEN_CHANNEL = 296,
    NODE_DEVICE_LOOKUP_SCSI_HOST_BY_WWN = 297,
    DOMAIN_GET_JOB_STATS = 298,
    DOMAIN_MIGRATE_GET_COMPRESSION_CACHE = 299,
    DOMAIN_MIGRATE_SET_COMPRESSION_CACHE = 300,
    NODE_DEVICE_DETACH_FLAGS = 301,
    DOMAIN_MIGRATE_BEGIN3_PARAMS = 302,
    DOMAIN_MIGRATE_PREPARE3_PARAMS = 303,
    DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS = 304,
    DOMAIN_MIGRATE_PERFORM3_PARAMS = 305,
    DOMAIN_MIGRATE_FINISH3_PARAMS = 306,
    DOMAIN_MIGRATE_CONFIRM3_PARAMS = 307,
    DOMAIN_SET_MEMORY_STATS_PERIOD = 308,
    DOMAIN_CREATE_XML_WITH_FILES = 309,
    DOMAIN_CREATE_WITH_FILES = 310,
    DOMAIN_EVENT_DEVICE_REMOVED = 311,
    CONNECT_GET_CPU_MODEL_NAMES = 312,
    CONNECT_NETWORK_EVENT_REGISTER_ANY = 313,
    CONNECT_NETWORK_EVENT_DEREGISTER_ANY = 314,
    NETWORK_EVENT_LIFECYCLE = 315,
    CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY = 316,
    CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY = 317,
    DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318,
    DOMAIN_EVENT_CALLBACK_REBOOT = 319,
    DOMAIN_EVENT_CALLBACK_RTC_CHANGE = 320,
    DOMAIN_EVENT_CALLBACK_WATCHDOG = 321,
    DOMAIN_EVENT_CALLBACK_IO_ERROR = 322,
    DOMAIN_EVENT_CALLBACK_GRAPHICS = 323,
    DOMAIN_EVENT_CALLBACK_IO_ERROR_REASON = 324,
    DOMAIN_EVENT_CALLBACK_CONTROL_ERROR = 325,
    DOMAIN_EVENT_CALLBACK_BLOCK_JOB = 326,
    DOMAIN_EVENT_CALLBACK_DISK_CHANGE = 327,
    DOMAIN_EVENT_CALLBACK_TRAY_CHANGE = 328,
    DOMAIN_EVENT_CALLBACK_PMWAKEUP = 329,
    DOMAIN_EVENT_CALLBACK_PMSUSPEND = 330,
    DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE = 331,
    DOMAIN_EVENT_CALLBACK_PMSUSPEND_DISK = 332,
    DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED = 333,
    DOMAIN_CORE_DUMP_WITH_FORMAT = 334,
    DOMAIN_FSFREEZE = 335,
    DOMAIN_FSTHAW = 336,
    DOMAIN_GET_TIME = 337,
    DOMAIN_SET_TIME = 338,
    DOMAIN_EVENT_BLOCK_JOB_2 = 339,
    NODE_GET_FREE_PAGES = 340,
    NETWORK_GET_DHCP_LEASES = 341,
    CONNECT_GET_DOMAIN_CAPABILITIES = 342,
    DOMAIN_OPEN_GRAPHICS_FD = 343,
    CONNECT_GET_ALL_DOMAIN_STATS = 344,
    DOMAIN_BLOCK_COPY = 345,
    DOMAIN_EVENT_CALLBACK_TUNABLE = 346,
    NODE_ALLOC_PAGES = 347,
    DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE = 348,
    DOMAIN_GET_FSINFO = 349,
    DOMAIN_DEFINE_XML_FLAGS = 350,
    DOMAIN_GET_IOTHREAD_INFO = 351,
    DOMAIN_PIN_IOTHREAD = 352,
    DOMAIN_INTERFACE_ADDRESSES = 353,
    DOMAIN_EVENT_CALLBACK_DEVICE_ADDED = 354,
    DOMAIN_ADD_IOTHREAD = 355,
    DOMAIN_DEL_IOTHREAD = 356,
    DOMAIN_SET_USER_PASSWORD = 357,
    DOMAIN_RENAME = 358,
    DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION = 359,
    CONNECT_REGISTER_CLOSE_CALLBACK = 360,
    CONNECT_UNREGISTER_CLOSE_CALLBACK = 361,
    CONNECT_EVENT_CONNECTION_CLOSED = 362,
    DOMAIN_EVENT_CALLBACK_JOB_COMPLETED = 363,
    DOMAIN_MIGRATE_START_POST_COPY = 364,
    DOMAIN_GET_PERF_EVENTS = 365,
    DOMAIN_SET_PERF_EVENTS = 366,
    DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED = 367,
    CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY = 368,
    CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY = 369,
    STORAGE_POOL_EVENT_LIFECYCLE = 370,
    DOMAIN_GET_GUEST_VCPUS = 371,
    DOMAIN_SET_GUEST_VCPUS = 372,
    STORAGE_POOL_EVENT_REFRESH = 373,
    CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY = 374,
    CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY = 375,
    NODE_DEVICE_EVENT_LIFECYCLE = 376,
    NODE_DEVICE_EVENT_UPDATE = 377,
    STORAGE_VOL_GET_INFO_FLAGS = 378,
    DOMAIN_EVENT_CALLBACK_METADATA_CHANGE = 379,
    CONNECT_SECRET_EVENT_REGISTER_ANY = 380,
    CONNECT_SECRET_EVENT_DEREGISTER_ANY = 381,
    SECRET_EVENT_LIFECYCLE = 382,
    SECRET_EVENT_VALUE_CHANGED = 383,
    DOMAIN_SET_VCPU = 384,
    DOMAIN_EVENT_BLOCK_THRESHOLD = 385,
    DOMAIN_SET_BLOCK_THRESHOLD = 386,
    DOMAIN_MIGRATE_GET_MAX_DOWNTIME = 387,
    DOMAIN_MANAGED_SAVE_GET_XML_DESC = 388,
    DOMAIN_MANAGED_SAVE_DEFINE_XML = 389,
    DOMAIN_SET_LIFECYCLE_ACTION = 390,
    STORAGE_POOL_LOOKUP_BY_TARGET_PATH = 391,
    DOMAIN_DETACH_DEVICE_ALIAS = 392,
    CONNECT_COMPARE_HYPERVISOR_CPU = 393,
    CONNECT_BASELINE_HYPERVISOR_CPU = 394,
    NODE_GET_SEV_INFO = 395,
    DOMAIN_GET_LAUNCH_SECURITY_INFO = 396,
    NWFILTER_BINDING_LOOKUP_BY_PORT_DEV = 397,
    NWFILTER_BINDING_GET_XML_DESC = 398,
    NWFILTER_BINDING_CREATE_XML = 399,
    NWFILTER_BINDING_DELETE = 400,
    CONNECT_LIST_ALL_NWFILTER_BINDINGS = 401,
    DOMAIN_SET_IOTHREAD_PARAMS = 402,
    CONNECT_GET_STORAGE_POOL_CAPABILITIES = 403,
    NETWORK_LIST_ALL_PORTS = 404,
    NETWORK_PORT_LOOKUP_BY_UUID = 405,
    NETWORK_PORT_CREATE_XML = 406,
    NETWORK_PORT_GET_PARAMETERS = 407,
    NETWORK_PORT_SET_PARAMETERS = 408,
    NETWORK_PORT_GET_XML_DESC = 409,
    NETWORK_PORT_DELETE = 410,
    DOMAIN_CHECKPOINT_CREATE_XML = 411,
    DOMAIN_CHECKPOINT_GET_XML_DESC = 412,
    DOMAIN_LIST_ALL_CHECKPOINTS = 413,
    DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN = 414,
    DOMAIN_CHECKPOINT_LOOKUP_BY_NAME = 415,
    DOMAIN_CHECKPOINT_GET_PARENT = 416,
    DOMAIN_CHECKPOINT_DELETE = 417,
    DOMAIN_GET_GUEST_INFO = 418,
    CONNECT_SET_IDENTITY = 419,
    DOMAIN_AGENT_SET_RESPONSE_TIMEOUT = 420,
    DOMAIN_BACKUP_BEGIN = 421,
    DOMAIN_BACKUP_GET_XML_DESC = 422,
    DOMAIN_EVENT_MEMORY_FAILURE = 423,
    DOMAIN_AUTHORIZED_SSH_KEYS_GET = 424,
    DOMAIN_AUTHORIZED_SSH_KEYS_SET = 425,
    DOMAIN_GET_MESSAGES = 426,
    DOMAIN_START_DIRTY_RATE_CALC = 427,
    NODE_DEVICE_DEFINE_XML = 428,
    NODE_DEVICE_UNDEFINE = 429,
    NODE_DEVICE_CREATE = 430,
    NWFILTER_DEFINE_XML_FLAGS = 431,
    NETWORK_DEFINE_XML_FLAGS = 432,
    NODE_DEVICE_GET_AUTOSTART = 433,
    NODE_DEVICE_SET_AUTOSTART = 434,
    NODE_DEVICE_IS_PERSISTENT = 435,
    NODE_DEVICE_IS_ACTIVE = 436,
    NETWORK_CREATE_XML_FLAGS = 437,
    DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE = 438,
    DOMAIN_SET_LAUNCH_SECURITY_STATE = 439,
    DOMAIN_SAVE_PARAMS = 440,
    DOMAIN_RESTORE_PARAMS = 441,
    DOMAIN_ABORT_JOB_FLAGS = 442,
    DOMAIN_FD_ASSOCIATE = 443,
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
    pub const METADATA_CHANGE: i32 = 23;
    pub const BLOCK_THRESHOLD: i32 = 24;
    pub const MEMORY_FAILURE: i32 = 25;
    /// The last id libvirt 9.0 defines.
    pub const MEMORY_DEVICE_SIZE_CHANGE: i32 = 26;
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

    /// `{ int <value>; }` returns of the is-active, is-persistent and
    /// get-autostart calls of pools and networks.
    pub struct IntRet {
        pub value: i32,
    }

    /// `{ unsigned int flags; }` arguments.
    pub struct FlagsArgs {
        pub flags: u32,
    }

    /// `{ remote_nonnull_string xml; unsigned int flags; }` arguments (define
    /// and create of pools and networks).
    pub struct XmlFlagsArgs {
        pub xml: String,
        pub flags: u32,
    }

    /// `{ remote_nonnull_string xml; }` returns (XML descriptions) and
    /// arguments.
    pub struct XmlRet {
        pub xml: String,
    }

    /// `{ remote_nonnull_string name; }`: lookups by name (and a volume's
    /// path, key or path lookups).
    pub struct NameArgs {
        pub name: String,
    }

    /// `{ remote_uuid uuid; }`: lookups by UUID.
    pub struct UuidArgs {
        pub uuid: Uuid,
    }

    /// `{ int maxnames; }` arguments of the old list calls.
    pub struct MaxNamesArgs {
        pub maxnames: i32,
    }

    /// `{ remote_nonnull_string names<...>; }` returns of the old list calls
    /// of pools, volumes and networks (their limits are all 16384).
    pub struct NamesRet {
        pub names: Vec<String> [max = OBJECT_LIST_MAX],
    }

    /// `{ int callbackID; }`: event registrations' return and
    /// deregistrations' argument.
    pub struct CallbackIdArgs {
        pub callback_id: i32,
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

    /// `remote_connect_get_domain_capabilities_args`.
    pub struct ConnectGetDomainCapabilitiesArgs {
        pub emulatorbin: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub flags: u32,
    }

    /// `remote_connect_get_domain_capabilities_ret`.
    pub struct ConnectGetDomainCapabilitiesRet {
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

    /// `remote_domain_attach_device_args` (also `detach_device`).
    pub struct DomainAttachDeviceArgs {
        pub dom: NonnullDomain,
        pub xml: String,
    }

    /// `remote_domain_attach_device_flags_args` (also `detach_device_flags`,
    /// `update_device_flags`).
    pub struct DomainAttachDeviceFlagsArgs {
        pub dom: NonnullDomain,
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_domain_set_vcpus_flags_args`.
    pub struct DomainSetVcpusFlagsArgs {
        pub dom: NonnullDomain,
        pub nvcpus: u32,
        pub flags: u32,
    }

    /// `remote_domain_set_memory_args` (`memory` in KiB).
    pub struct DomainSetMemoryArgs {
        pub dom: NonnullDomain,
        pub memory: u64,
    }

    /// `remote_domain_set_memory_flags_args`.
    pub struct DomainSetMemoryFlagsArgs {
        pub dom: NonnullDomain,
        pub memory: u64,
        pub flags: u32,
    }

    /// `remote_domain_block_resize_args` (`size` in KiB unless
    /// `VIR_DOMAIN_BLOCK_RESIZE_BYTES`).
    pub struct DomainBlockResizeArgs {
        pub dom: NonnullDomain,
        pub disk: String,
        pub size: u64,
        pub flags: u32,
    }

    /// `remote_domain_set_block_threshold_args`.
    pub struct DomainSetBlockThresholdArgs {
        pub dom: NonnullDomain,
        pub dev: String,
        pub threshold: u64,
        pub flags: u32,
    }

    /// `remote_domain_detach_device_alias_args`.
    pub struct DomainDetachDeviceAliasArgs {
        pub dom: NonnullDomain,
        pub alias: String,
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

    /// `remote_domain_event_block_threshold_msg` (callback form only).
    pub struct DomainEventBlockThresholdMsg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub dev: String,
        pub path: Option<String>,
        pub threshold: u64,
        pub excess: u64,
    }

    /// `remote_domain_event_tray_change_msg`; `reason` is a
    /// `virDomainEventTrayChangeReason` (0 open, 1 close).
    pub struct DomainEventTrayChangeMsg {
        pub dom: NonnullDomain,
        pub dev_alias: String,
        pub reason: i32,
    }

    /// `remote_domain_event_callback_tray_change_msg`.
    pub struct DomainEventCallbackTrayChangeMsg {
        pub callback_id: i32,
        pub msg: DomainEventTrayChangeMsg,
    }

    /// `remote_domain_event_device_removed_msg`.
    pub struct DomainEventDeviceRemovedMsg {
        pub dom: NonnullDomain,
        pub dev_alias: String,
    }

    /// `remote_domain_event_callback_device_removed_msg`.
    pub struct DomainEventCallbackDeviceRemovedMsg {
        pub callback_id: i32,
        pub msg: DomainEventDeviceRemovedMsg,
    }

    /// `remote_domain_event_callback_device_added_msg` (callback form only).
    pub struct DomainEventCallbackDeviceAddedMsg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub dev_alias: String,
    }

    /// `remote_domain_event_callback_device_removal_failed_msg` (callback
    /// form only).
    pub struct DomainEventCallbackDeviceRemovalFailedMsg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub dev_alias: String,
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

    /// `remote_domain_core_dump_args`.
    pub struct DomainCoreDumpArgs {
        pub dom: NonnullDomain,
        pub to: String,
        pub flags: u32,
    }

    /// `remote_domain_core_dump_with_format_args`.
    pub struct DomainCoreDumpWithFormatArgs {
        pub dom: NonnullDomain,
        pub to: String,
        pub dumpformat: u32,
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

    /// A domain, a disk and flags: `remote_domain_block_job_abort_args`
    /// and `remote_domain_get_block_job_info_args`.
    pub struct DomainPathFlagsArgs {
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

    /// A domain, a disk, a bandwidth and flags:
    /// `remote_domain_block_job_set_speed_args` and
    /// `remote_domain_block_pull_args`.
    pub struct DomainPathBandwidthArgs {
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
    fn procedure_table_is_libvirt_9_0() {
        // Contiguous from 1 to 443 (DOMAIN_FD_ASSOCIATE, the last of 9.0),
        // each name once.
        assert_eq!(PROCEDURES.len(), 443);
        for (i, (num, name)) in PROCEDURES.iter().enumerate() {
            assert_eq!(usize::try_from(*num).unwrap(), i + 1, "{name}");
            assert_eq!(procedure_name(*num), Some(*name));
        }
        let mut names: Vec<_> = PROCEDURES.iter().map(|(_, n)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROCEDURES.len(), "a name is listed twice");
        assert_eq!(procedure::NODE_GET_CPU_MAP, 293);
        assert_eq!(procedure::DOMAIN_EVENT_BLOCK_JOB_2, 339);
        assert_eq!(procedure::DOMAIN_FD_ASSOCIATE, 443);
        assert_eq!(procedure_name(64), Some("DOMAIN_BLOCK_STATS"));
        assert_eq!(procedure_name(0), None);
        assert_eq!(procedure_name(444), None);
    }
}
