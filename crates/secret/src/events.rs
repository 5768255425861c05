//! Secret events (`VIR_SECRET_EVENT_ID_LIFECYCLE` and
//! `VIR_SECRET_EVENT_ID_VALUE_CHANGED`), delivered synchronously to
//! listeners in the order the secrets changed.

use std::sync::RwLock;

use crate::driver::SecretHandle;

/// What happened to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEventKind {
    /// `VIR_SECRET_EVENT_DEFINED` (also a redefinition).
    Defined,
    /// `VIR_SECRET_EVENT_UNDEFINED`.
    Undefined,
    /// A new value was set.
    ValueChanged,
}

/// One event of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEvent {
    pub secret: SecretHandle,
    pub kind: SecretEventKind,
}

/// Called for every secret event while the driver's lock is held (which
/// keeps events in order): it must not block and must not call back into
/// the driver.
pub type SecretListener = Box<dyn Fn(&SecretEvent) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Listeners {
    list: RwLock<Vec<SecretListener>>,
}

impl Listeners {
    pub(crate) fn add(&self, f: SecretListener) {
        self.list.write().unwrap_or_else(|e| e.into_inner()).push(f);
    }

    pub(crate) fn emit(&self, secret: SecretHandle, kind: SecretEventKind) {
        let ev = SecretEvent { secret, kind };
        for f in self.list.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f(&ev);
        }
    }
}
