//! A storage pool: its definition, whether it runs, and the snapshot of its
//! volumes that every query reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use joblock::JobLock;

use crate::events::{Listeners, PoolEvent, PoolEventKind, PoolLifecycle};
use crate::volume::Volume;
use crate::xml::PoolDef;

/// `virStoragePoolState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PoolState {
    Inactive = 0,
    Building = 1,
    Running = 2,
}

/// `virStoragePoolGetInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolInfo {
    pub state: PoolState,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// A snapshot of a pool for lists.
#[derive(Debug, Clone)]
pub struct PoolSummary {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
}

/// One pool. Its name and uuid never change (a definition with the same
/// name and uuid updates it; anything else is another pool).
pub struct Pool {
    name: String,
    uuid: uuid::Uuid,
    /// Pool changes (start, destroy, undefine, delete, build, refresh) take
    /// an exclusive job; volume operations take shared `Volume` jobs, so
    /// volumes are built in parallel while the pool cannot be stopped
    /// under them. FIFO: a waiting pool change holds back later volume
    /// jobs, so it is never starved. Queries take no job.
    pub(crate) jobs: JobLock,
    /// Definition, state and the volume snapshot. A short lock: never held
    /// across an await; events are emitted under it so that each pool's
    /// events follow its state changes in order.
    inner: Mutex<PoolInner>,
}

pub(crate) struct PoolInner {
    /// The definition in effect (for an active pool: the one it started
    /// with).
    pub def: Arc<PoolDef>,
    /// A redefinition made while active, applied when the pool stops.
    pub pending_def: Option<Arc<PoolDef>>,
    pub persistent: bool,
    pub autostart: bool,
    pub active: bool,
    /// Undefined while inactive: gone from the registry.
    pub removed: bool,
    /// (capacity, allocation, available) from the last refresh.
    pub sizes: (u64, u64, u64),
    /// (mode, uid, gid) of the directory at the last refresh.
    pub dir_perms: (u32, u32, u32),
    pub volumes: BTreeMap<String, Arc<Volume>>,
    /// Volumes a running operation reads (a clone's source, a download)
    /// or writes (a wipe, an upload): they cannot be deleted until it
    /// ends, and one being written is not read either.
    pub busy: BTreeMap<String, crate::volops::InUse>,
}

impl PoolInner {
    /// Emits a pool event; call with the lock held.
    pub(crate) fn emit(&self, listeners: &Listeners, kind: PoolEventKind) {
        listeners.emit(&PoolEvent {
            name: self.def.name.clone(),
            uuid: self.def.uuid,
            kind,
        });
    }

    pub(crate) fn lifecycle(&self, listeners: &Listeners, what: PoolLifecycle) {
        self.emit(listeners, PoolEventKind::Lifecycle(what));
    }
}

impl Pool {
    pub(crate) fn new(def: Arc<PoolDef>, persistent: bool) -> Arc<Self> {
        Arc::new(Self {
            name: def.name.clone(),
            uuid: def.uuid,
            jobs: JobLock::new(),
            inner: Mutex::new(PoolInner {
                def,
                pending_def: None,
                persistent,
                autostart: false,
                active: false,
                removed: false,
                sizes: (0, 0, 0),
                dir_perms: (0, 0, 0),
                volumes: BTreeMap::new(),
                busy: BTreeMap::new(),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolInner> {
        // A panic while holding this lock leaves plain data behind, never a
        // broken invariant worth refusing every later call for.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.lock().active
    }

    pub fn is_persistent(&self) -> bool {
        self.lock().persistent
    }

    pub fn autostart(&self) -> bool {
        self.lock().autostart
    }

    pub fn def(&self) -> Arc<PoolDef> {
        self.lock().def.clone()
    }

    pub fn summary(&self) -> PoolSummary {
        let g = self.lock();
        PoolSummary {
            name: self.name.clone(),
            uuid: self.uuid,
            active: g.active,
            persistent: g.persistent,
            autostart: g.autostart,
        }
    }

    pub fn info(&self) -> PoolInfo {
        let g = self.lock();
        if !g.active {
            return PoolInfo {
                state: PoolState::Inactive,
                capacity: 0,
                allocation: 0,
                available: 0,
            };
        }
        PoolInfo {
            state: PoolState::Running,
            capacity: g.sizes.0,
            allocation: g.sizes.1,
            available: g.sizes.2,
        }
    }

    /// `pool-dumpxml`.
    pub fn to_xml(&self) -> String {
        let g = self.lock();
        let sizes = if g.active { g.sizes } else { (0, 0, 0) };
        g.def.to_xml(sizes, g.dir_perms)
    }

    /// `pool-dumpxml --inactive`: the definition the pool starts with next.
    pub fn inactive_xml(&self) -> String {
        let g = self.lock();
        let def = g.pending_def.as_ref().unwrap_or(&g.def);
        def.to_xml((0, 0, 0), g.dir_perms)
    }

    /// The volumes, by name (a snapshot).
    pub fn volumes(&self) -> Vec<Arc<Volume>> {
        self.lock().volumes.values().cloned().collect()
    }

    pub fn volume_count(&self) -> usize {
        self.lock().volumes.len()
    }

    pub fn volume(&self, name: &str) -> Option<Arc<Volume>> {
        self.lock().volumes.get(name).cloned()
    }
}
