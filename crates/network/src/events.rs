//! Network lifecycle events, delivered synchronously to listeners in the
//! order each network changed state.

use std::sync::RwLock;

/// `virNetworkEventLifecycleType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum NetworkLifecycle {
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Stopped = 3,
}

/// One event of one network (`VIR_NETWORK_EVENT_ID_LIFECYCLE`; detail is
/// always 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEvent {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub lifecycle: NetworkLifecycle,
}

/// Called for every network event. It runs while the network's state lock
/// is held (that is what keeps each network's events in order), so it
/// must not block and must not call back into the network driver: hand
/// the event to a bounded queue and return.
pub type NetworkListener = Box<dyn Fn(&NetworkEvent) + Send + Sync>;

/// The registered listeners.
#[derive(Default)]
pub(crate) struct Listeners {
    /// Read-locked on every event, write-locked only to add a listener
    /// (at daemon start-up); never held across an await.
    list: RwLock<Vec<NetworkListener>>,
}

impl Listeners {
    pub(crate) fn add(&self, f: NetworkListener) {
        self.list.write().unwrap_or_else(|e| e.into_inner()).push(f);
    }

    pub(crate) fn emit(&self, ev: &NetworkEvent) {
        for f in self.list.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f(ev);
        }
    }
}
