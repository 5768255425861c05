//! Name/uuid/id → domain lookup without a global lock on per-VM paths.
//!
//! A sharded map of `RwLock<HashMap>`: a lookup read-locks one of 64 shards
//! for the duration of a hash probe and an `Arc` clone, never across an
//! `.await` or any per-VM work, so 10,000 VMs' RPCs only meet on the same
//! shard for nanoseconds and writers (define/undefine/start) block at most
//! one shard. We implement it here (80 lines) instead of pulling dashmap.
//! Mutations that must be atomic across maps (define: "name and uuid are
//! unique together") are serialised by the driver's definition lock, which
//! lookups never take.

use crate::stats::health::Health;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, RwLock};

use super::Domain;
use crate::{Error, Result};

const SHARDS: usize = 64;

/// A concurrent map split into independently locked shards.
pub(crate) struct ShardedMap<K, V> {
    shards: Box<[RwLock<HashMap<K, V>>]>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V: Clone> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<K: Hash + Eq, V: Clone> ShardedMap<K, V> {
    fn shard(&self, k: &K) -> &RwLock<HashMap<K, V>> {
        let i = (self.hasher.hash_one(k) as usize) % SHARDS;
        &self.shards[i]
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        // A poisoned shard only means a panic elsewhere mid-insert; the map
        // itself is still consistent, so keep serving.
        let g = self.shard(k).read().unwrap_or_else(|e| e.into_inner());
        g.get(k).cloned()
    }

    pub(crate) fn insert(&self, k: K, v: V) -> Option<V> {
        let mut g = self.shard(&k).write().unwrap_or_else(|e| e.into_inner());
        g.insert(k, v)
    }

    /// Removes `k` only if `pred` accepts the current value (so a stale
    /// remover never deletes a newer entry).
    pub(crate) fn remove_if(&self, k: &K, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        let mut g = self.shard(k).write().unwrap_or_else(|e| e.into_inner());
        if g.get(k).is_some_and(pred) {
            return g.remove(k);
        }
        None
    }

    pub(crate) fn values(&self) -> Vec<V> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let g = s.read().unwrap_or_else(|e| e.into_inner());
            out.extend(g.values().cloned());
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// The driver's domains by every key a client may use.
#[derive(Default)]
pub(crate) struct Registry {
    by_name: ShardedMap<String, Arc<Domain>>,
    by_uuid: ShardedMap<uuid::Uuid, Arc<Domain>>,
    by_id: ShardedMap<u32, Arc<Domain>>,
    /// Given to every domain inserted: its jobs and monitor commands
    /// record into it.
    health: Arc<Health>,
}

impl Registry {
    /// An empty registry whose domains record into `health`.
    pub(crate) fn new(health: Arc<Health>) -> Self {
        Self {
            health,
            ..Self::default()
        }
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<Arc<Domain>> {
        self.by_name.get(&name.to_owned())
    }

    pub(crate) fn by_uuid(&self, uuid: &uuid::Uuid) -> Option<Arc<Domain>> {
        self.by_uuid.get(uuid)
    }

    pub(crate) fn by_id(&self, id: u32) -> Option<Arc<Domain>> {
        self.by_id.get(&id)
    }

    /// The domain that `name` and `uuid` both name, if any; a DomainExists
    /// error if they name different domains (same name with another uuid,
    /// or the reverse). The caller holds the definition lock.
    pub(crate) fn find_same(&self, name: &str, uuid: &uuid::Uuid) -> Result<Option<Arc<Domain>>> {
        match (self.by_name(name), self.by_uuid(uuid)) {
            (Some(a), Some(b)) if Arc::ptr_eq(&a, &b) => Ok(Some(a)),
            (Some(a), _) => Err(Error::DomainExists(format!(
                "domain '{}' already exists with uuid {}",
                a.name(),
                a.uuid()
            ))),
            (None, Some(b)) => Err(Error::DomainExists(format!(
                "domain '{}' is already defined with uuid {}",
                b.name(),
                b.uuid()
            ))),
            (None, None) => Ok(None),
        }
    }

    /// Caller holds the definition lock and has checked for conflicts.
    pub(crate) fn insert(&self, dom: &Arc<Domain>) {
        dom.attach_health(&self.health);
        self.by_name.insert(dom.name().to_owned(), dom.clone());
        self.by_uuid.insert(dom.uuid(), dom.clone());
    }

    pub(crate) fn set_id(&self, id: u32, dom: &Arc<Domain>) {
        self.by_id.insert(id, dom.clone());
    }

    pub(crate) fn clear_id(&self, id: u32, dom: &Arc<Domain>) {
        self.by_id.remove_if(&id, |d| Arc::ptr_eq(d, dom));
    }

    /// Removes `dom` under every key that still points at it.
    pub(crate) fn remove(&self, dom: &Arc<Domain>) {
        let same = |d: &Arc<Domain>| Arc::ptr_eq(d, dom);
        self.by_name.remove_if(&dom.name().to_owned(), same);
        self.by_uuid.remove_if(&dom.uuid(), same);
        if let Some(id) = dom.id() {
            self.by_id.remove_if(&id, same);
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<Domain>> {
        let mut v = self.by_uuid.values();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    pub(crate) fn len(&self) -> usize {
        self.by_uuid.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_map_basics() {
        let m: ShardedMap<u32, u32> = ShardedMap::default();
        for i in 0..1000 {
            m.insert(i, i * 2);
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(&7), Some(14));
        assert_eq!(m.remove_if(&7, |v| *v == 0), None);
        assert_eq!(m.remove_if(&7, |v| *v == 14), Some(14));
        assert_eq!(m.get(&7), None);
        assert_eq!(m.values().len(), 999);
    }
}
