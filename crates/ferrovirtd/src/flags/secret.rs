//! `virSecret*` flags and enums of `libvirt-secret.h`, under libvirt's
//! names without the `VIR_SECRET_` prefix (the list filters keep
//! `CONNECT_`). Only the values the daemon reads.

// virSecretDefineFlags
pub(crate) const DEFINE_VALIDATE: u32 = 1 << 0;

// virConnectListAllSecretsFlags (`VIR_CONNECT_LIST_SECRETS_*`)
pub(crate) const CONNECT_LIST_SECRETS_EPHEMERAL: u32 = 1 << 0;
pub(crate) const CONNECT_LIST_SECRETS_NO_EPHEMERAL: u32 = 1 << 1;
pub(crate) const CONNECT_LIST_SECRETS_PRIVATE: u32 = 1 << 2;
pub(crate) const CONNECT_LIST_SECRETS_NO_PRIVATE: u32 = 1 << 3;

// virSecretEventID
pub(crate) const EVENT_ID_LIFECYCLE: i32 = 0;
pub(crate) const EVENT_ID_VALUE_CHANGED: i32 = 1;

// virSecretEventLifecycleType
pub(crate) const EVENT_DEFINED: i32 = 0;
pub(crate) const EVENT_UNDEFINED: i32 = 1;
