//! The secret driver: every secret in memory, the persistent ones mirrored
//! on disk ([`crate::store`]), events to listeners.
//!
//! Readers take the map's read lock only. Changes are serialised by one
//! writer lock, held across the file writes (which happen before the map
//! changes, so the map never shows what is not yet durable) and across
//! the event (so events come in the order of the changes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use virterror::{ErrorCode, VirError};

use crate::VALUE_MAX;
use crate::def::{SecretDef, UsageType};
use crate::error::{err, internal, io, no_secret, no_uuid};
use crate::events::{Listeners, SecretEventKind, SecretListener};
use crate::store::Store;

/// Where the driver keeps its files and how many secrets it holds.
#[derive(Debug, Clone)]
pub struct SecretConfig {
    pub root: PathBuf,
    /// Most secrets defined at once; a define beyond it is refused.
    pub max_secrets: usize,
}

impl SecretConfig {
    /// The default bound on the number of secrets.
    pub const DEFAULT_MAX_SECRETS: usize = 1024;

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            max_secrets: Self::DEFAULT_MAX_SECRETS,
        }
    }
}

/// How a client names a secret: uuid, usage type and usage id (empty for
/// usage `none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHandle {
    pub uuid: uuid::Uuid,
    pub usage_type: UsageType,
    pub usage_id: String,
}

impl SecretHandle {
    fn of(def: &SecretDef) -> Self {
        Self {
            uuid: def.uuid,
            usage_type: def.usage.kind,
            usage_id: def.usage.id.clone(),
        }
    }
}

/// `virConnectListAllSecrets`' filters: `None` takes both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretFilter {
    pub ephemeral: Option<bool>,
    pub private: Option<bool>,
}

impl SecretFilter {
    fn matches(&self, d: &SecretDef) -> bool {
        self.ephemeral.is_none_or(|e| e == d.ephemeral)
            && self.private.is_none_or(|p| p == d.private)
    }
}

#[derive(Clone)]
struct Entry {
    def: SecretDef,
    value: Option<Arc<Value>>,
}

/// A value in memory, overwritten with zeros when the last reference to
/// it goes (a replaced or undefined secret's value does not linger in
/// freed memory).
struct Value(Vec<u8>);

impl Drop for Value {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

struct Inner {
    store: Store,
    max_secrets: usize,
    secrets: RwLock<BTreeMap<uuid::Uuid, Entry>>,
    writer: Mutex<()>,
    listeners: Listeners,
}

/// The secrets of one daemon. Cheap to clone; every clone is the same
/// driver. Its changing calls write files: call them off the async
/// runtime's threads.
#[derive(Clone)]
pub struct SecretDriver {
    inner: Arc<Inner>,
}

impl SecretDriver {
    /// Loads the persistent secrets under `cfg.root`.
    pub fn open(cfg: SecretConfig) -> Result<Self, VirError> {
        let store = Store::new(&cfg.root);
        let mut secrets = BTreeMap::new();
        for l in store.load().map_err(|e| io("cannot load secrets", &e))? {
            let entry = Entry {
                def: l.def,
                value: l.value.map(|v| Arc::new(Value(v))),
            };
            if let Some(other) = usage_holder(&secrets, &entry.def) {
                tracing::error!(uuid = %entry.def.uuid, %other, "skipping secret: its usage is taken");
                continue;
            }
            secrets.insert(entry.def.uuid, entry);
        }
        tracing::info!(count = secrets.len(), "secrets loaded");
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                max_secrets: cfg.max_secrets,
                secrets: RwLock::new(secrets),
                writer: Mutex::new(()),
                listeners: Listeners::default(),
            }),
        })
    }

    pub fn add_event_listener(&self, f: SecretListener) {
        self.inner.listeners.add(f);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<uuid::Uuid, Entry>> {
        self.inner.secrets.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<uuid::Uuid, Entry>> {
        self.inner
            .secrets
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.inner.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, uuid: &uuid::Uuid) -> Result<Entry, VirError> {
        self.read().get(uuid).cloned().ok_or_else(|| no_uuid(uuid))
    }

    /// The secrets the filter takes, in uuid order.
    pub fn list(&self, filter: SecretFilter) -> Vec<SecretHandle> {
        self.read()
            .values()
            .filter(|e| filter.matches(&e.def))
            .map(|e| SecretHandle::of(&e.def))
            .collect()
    }

    pub fn lookup_by_uuid(&self, uuid: &uuid::Uuid) -> Result<SecretHandle, VirError> {
        Ok(SecretHandle::of(&self.entry(uuid)?.def))
    }

    /// The secret of a usage type and id; usage `none` matches nothing.
    pub fn lookup_by_usage(&self, usage_type: i32, id: &str) -> Result<SecretHandle, VirError> {
        self.read()
            .values()
            .find(|e| {
                e.def.usage.kind != UsageType::None
                    && e.def.usage.kind as i32 == usage_type
                    && e.def.usage.id == id
            })
            .map(|e| SecretHandle::of(&e.def))
            .ok_or_else(|| no_secret(format_args!("no secret with matching usage '{id}'")))
    }

    pub fn xml_desc(&self, uuid: &uuid::Uuid) -> Result<String, VirError> {
        Ok(self.entry(uuid)?.def.to_xml())
    }

    /// The value, refused for a private secret as libvirt refuses it to
    /// every client.
    pub fn value(&self, uuid: &uuid::Uuid) -> Result<Vec<u8>, VirError> {
        let e = self.entry(uuid)?;
        if e.def.private {
            return Err(err(
                ErrorCode::InvalidSecret,
                "Invalid secret: secret is private",
            ));
        }
        e.value
            .map(|v| v.0.clone())
            .ok_or_else(|| no_secret(format_args!("secret '{uuid}' does not have a value")))
    }

    /// Defines a new secret or redefines one with the same uuid.
    pub fn define_xml(&self, xml: &str) -> Result<SecretHandle, VirError> {
        let def = SecretDef::parse(xml)?;
        let _w = self.writer();
        let old = self.read().get(&def.uuid).cloned();
        match &old {
            Some(old) => check_redefine(&old.def, &def)?,
            None => self.check_new(&def)?,
        }
        self.persist_def(old.as_ref(), &def)?;
        let value = old.and_then(|o| o.value);
        let handle = SecretHandle::of(&def);
        self.write().insert(def.uuid, Entry { def, value });
        self.inner
            .listeners
            .emit(handle.clone(), SecretEventKind::Defined);
        Ok(handle)
    }

    fn check_new(&self, def: &SecretDef) -> Result<(), VirError> {
        let secrets = self.read();
        if let Some(other) = usage_holder(&secrets, def) {
            return Err(internal(format_args!(
                "a secret with UUID {other} already defined for use with {}",
                def.usage.id
            )));
        }
        if secrets.len() >= self.inner.max_secrets {
            return Err(err(
                ErrorCode::OperationFailed,
                format!(
                    "operation failed: too many secrets: {} are defined, the limit (max_secrets) is {}",
                    secrets.len(),
                    self.inner.max_secrets
                ),
            ));
        }
        Ok(())
    }

    /// Writes (or removes) the files a definition needs, value first when
    /// an ephemeral secret becomes persistent.
    fn persist_def(&self, old: Option<&Entry>, def: &SecretDef) -> Result<(), VirError> {
        let store = &self.inner.store;
        let was_ephemeral = old.is_some_and(|o| o.def.ephemeral);
        let was_persistent = old.is_some_and(|o| !o.def.ephemeral);
        if def.ephemeral {
            if was_persistent {
                store
                    .remove_def(&def.uuid)
                    .map_err(|e| io("cannot remove the secret's definition", &e))?;
                remove_value_logged(store, &def.uuid);
            }
            return Ok(());
        }
        let moved_value = match old.and_then(|o| o.value.as_ref()) {
            Some(v) if was_ephemeral => {
                store
                    .save_value(&def.uuid, &v.0)
                    .map_err(|e| io("cannot save the secret's value", &e))?;
                true
            }
            _ => false,
        };
        store.save_def(def).map_err(|e| {
            if moved_value {
                remove_value_logged(store, &def.uuid);
            }
            io("cannot save the secret's definition", &e)
        })
    }

    /// Replaces the value (at most [`VALUE_MAX`] bytes).
    pub fn set_value(&self, uuid: &uuid::Uuid, value: &[u8]) -> Result<(), VirError> {
        if value.len() > VALUE_MAX {
            return Err(err(
                ErrorCode::InvalidArg,
                format!(
                    "invalid argument: a secret value is at most {VALUE_MAX} bytes, not {}",
                    value.len()
                ),
            ));
        }
        let _w = self.writer();
        let e = self.entry(uuid)?;
        if !e.def.ephemeral {
            self.inner
                .store
                .save_value(uuid, value)
                .map_err(|e| io("cannot save the secret's value", &e))?;
        }
        if let Some(entry) = self.write().get_mut(uuid) {
            entry.value = Some(Arc::new(Value(value.to_vec())));
        }
        self.inner
            .listeners
            .emit(SecretHandle::of(&e.def), SecretEventKind::ValueChanged);
        Ok(())
    }

    /// Removes a secret and its value.
    pub fn undefine(&self, uuid: &uuid::Uuid) -> Result<(), VirError> {
        let _w = self.writer();
        let e = self.entry(uuid)?;
        if !e.def.ephemeral {
            self.inner
                .store
                .remove_def(uuid)
                .map_err(|e| io("cannot remove the secret's definition", &e))?;
            remove_value_logged(&self.inner.store, uuid);
        }
        self.write().remove(uuid);
        self.inner
            .listeners
            .emit(SecretHandle::of(&e.def), SecretEventKind::Undefined);
        Ok(())
    }
}

/// libvirt's rules for redefining a secret: same usage id, and a private
/// secret stays private.
fn check_redefine(old: &SecretDef, new: &SecretDef) -> Result<(), VirError> {
    if old.usage.id != new.usage.id {
        return Err(internal(format_args!(
            "a secret with UUID {} is already defined for use with {}",
            old.uuid, old.usage.id
        )));
    }
    if old.private && !new.private {
        return Err(internal("cannot change private flag on existing secret"));
    }
    Ok(())
}

/// Another secret with the same usage (type and id), if any.
fn usage_holder(secrets: &BTreeMap<uuid::Uuid, Entry>, def: &SecretDef) -> Option<uuid::Uuid> {
    if def.usage.kind == UsageType::None {
        return None;
    }
    secrets
        .values()
        .find(|e| e.def.uuid != def.uuid && e.def.usage == def.usage)
        .map(|e| e.def.uuid)
}

/// A value file left behind is unreachable without its definition and is
/// removed at the next start; failing to remove it now is not an error.
fn remove_value_logged(store: &Store, uuid: &uuid::Uuid) {
    if let Err(e) = store.remove_value(uuid) {
        tracing::warn!(%uuid, "cannot remove the secret's value now: {e}");
    }
}

#[cfg(test)]
mod tests;
