//! Storage pool events, delivered synchronously to listeners in the order
//! each pool changed state.

use std::sync::RwLock;

/// `virStoragePoolEventLifecycleType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PoolLifecycle {
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Stopped = 3,
    Created = 4,
    Deleted = 5,
}

/// What happened to a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEventKind {
    /// `VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE` (detail is always 0).
    Lifecycle(PoolLifecycle),
    /// `VIR_STORAGE_POOL_EVENT_ID_REFRESH`.
    Refresh,
}

/// One event of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEvent {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub kind: PoolEventKind,
}

/// Called for every pool event. It runs while the pool's state lock is
/// held (that is what keeps each pool's events in order), so it must not
/// block and must not call back into the storage driver: hand the event
/// to a bounded queue and return.
pub type PoolListener = Box<dyn Fn(&PoolEvent) + Send + Sync>;

/// The registered listeners.
#[derive(Default)]
pub(crate) struct Listeners {
    /// Read-locked on every event, write-locked only to add a listener
    /// (at daemon start-up); never held across an await.
    list: RwLock<Vec<PoolListener>>,
}

impl Listeners {
    pub(crate) fn add(&self, f: PoolListener) {
        self.list.write().unwrap_or_else(|e| e.into_inner()).push(f);
    }

    pub(crate) fn emit(&self, ev: &PoolEvent) {
        for f in self.list.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f(ev);
        }
    }
}
