//! Wire structures of the secret procedures.

use super::Uuid;
use crate::xdr::Opaque;
use crate::xdr_struct;

/// `REMOTE_SECRET_LIST_MAX`.
pub const SECRET_LIST_MAX: usize = 16_384;
/// `REMOTE_SECRET_VALUE_MAX`.
pub const SECRET_VALUE_MAX: usize = 65_536;

xdr_struct! {
    /// `remote_nonnull_secret`: how a secret is named on the wire.
    pub struct NonnullSecret {
        pub uuid: Uuid,
        pub usage_type: i32,
        pub usage_id: String,
    }

    /// `remote_connect_list_secrets_args`.
    pub struct ConnectListSecretsArgs {
        pub maxuuids: i32,
    }

    /// `remote_connect_list_secrets_ret`.
    pub struct ConnectListSecretsRet {
        pub uuids: Vec<String> [max = SECRET_LIST_MAX],
    }

    /// `remote_connect_list_all_secrets_args`.
    pub struct ConnectListAllSecretsArgs {
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_connect_list_all_secrets_ret`.
    pub struct ConnectListAllSecretsRet {
        pub secrets: Vec<NonnullSecret> [max = SECRET_LIST_MAX],
        pub ret: u32,
    }

    /// A return value that is just a secret (lookups and define).
    pub struct SecretRet {
        pub secret: NonnullSecret,
    }

    /// Arguments that are just a secret (`remote_secret_undefine_args`).
    pub struct SecretArgs {
        pub secret: NonnullSecret,
    }

    /// Arguments that are a secret and flags (get XML, get value).
    pub struct SecretFlagsArgs {
        pub secret: NonnullSecret,
        pub flags: u32,
    }

    /// `remote_secret_lookup_by_usage_args`.
    pub struct SecretLookupByUsageArgs {
        pub usage_type: i32,
        pub usage_id: String,
    }

    /// `remote_secret_set_value_args`.
    pub struct SecretSetValueArgs {
        pub secret: NonnullSecret,
        pub value: Opaque [max = SECRET_VALUE_MAX],
        pub flags: u32,
    }

    /// `remote_secret_get_value_ret`.
    pub struct SecretGetValueRet {
        pub value: Opaque [max = SECRET_VALUE_MAX],
    }

    /// `remote_connect_secret_event_register_any_args`.
    pub struct ConnectSecretEventRegisterAnyArgs {
        pub event_id: i32,
        pub secret: Option<NonnullSecret>,
    }

    /// `remote_secret_event_lifecycle_msg`.
    pub struct SecretEventLifecycleMsg {
        pub callback_id: i32,
        pub secret: NonnullSecret,
        pub event: i32,
        pub detail: i32,
    }

    /// `remote_secret_event_value_changed_msg`.
    pub struct SecretEventValueChangedMsg {
        pub callback_id: i32,
        pub secret: NonnullSecret,
    }
}
