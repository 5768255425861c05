//! Bounded fan-out of domain events to subscribers and listeners: each
//! VM's events in its order, and a reader that stops reading is dropped,
//! never allowed to grow the daemon.
//!
//! Each subscriber has its own bounded queue filled with `try_send`: the
//! emitter never waits for a reader. A subscriber whose queue is full is
//! dropped (its stream ends with [`SubscriptionEnd::Lagged`] after the
//! events already queued), so a client that stops reading costs at most
//! `capacity` events, never unbounded memory, and never delays anyone.
//! Events are emitted while the emitting domain's short state lock is held,
//! so each VM's events reach every subscriber in the order its state changed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use crate::state::DomainEvent;

struct Sub {
    id: u64,
    tx: mpsc::Sender<DomainEvent>,
    lagged: Arc<AtomicBool>,
}

/// A synchronous event listener; see `Driver::add_event_listener`.
pub type Listener = Arc<dyn Fn(&DomainEvent) + Send + Sync>;

/// The set of subscribers.
pub(crate) struct Hub {
    subs: RwLock<Vec<Sub>>,
    listeners: RwLock<Vec<Listener>>,
    capacity: usize,
    next_id: AtomicU64,
    dropped_lagging: AtomicU64,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionEnd {
    /// The subscriber fell `capacity` events behind and was disconnected.
    #[error("subscriber dropped: it fell behind by the queue capacity")]
    Lagged,
    /// The driver went away.
    #[error("event source closed")]
    Closed,
}

/// A stream of domain events.
pub struct Subscription {
    rx: mpsc::Receiver<DomainEvent>,
    lagged: Arc<AtomicBool>,
    id: u64,
}

impl Subscription {
    /// The next event; after an `Err` the stream is over.
    pub async fn recv(&mut self) -> Result<DomainEvent, SubscriptionEnd> {
        match self.rx.recv().await {
            Some(ev) => Ok(ev),
            None => Err(self.end_reason()),
        }
    }

    /// Non-blocking variant of [`Subscription::recv`]; `Ok(None)` = nothing yet.
    pub fn try_recv(&mut self) -> Result<Option<DomainEvent>, SubscriptionEnd> {
        match self.rx.try_recv() {
            Ok(ev) => Ok(Some(ev)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(self.end_reason()),
        }
    }

    fn end_reason(&self) -> SubscriptionEnd {
        if self.lagged.load(Ordering::Acquire) {
            SubscriptionEnd::Lagged
        } else {
            SubscriptionEnd::Closed
        }
    }

    /// Identifies this subscription to `Driver::unsubscribe`.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Hub {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            subs: RwLock::new(Vec::new()),
            listeners: RwLock::new(Vec::new()),
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            dropped_lagging: AtomicU64::new(0),
        }
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Sub {
            id,
            tx,
            lagged: lagged.clone(),
        };
        self.subs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sub);
        Subscription { rx, lagged, id }
    }

    /// Adds a listener called synchronously for every event, in each
    /// domain's order, while the emitting domain's short state lock is held.
    ///
    /// For fan-out layers that keep their own per-consumer bounds (the RPC
    /// relay pushes into each client's bounded output queue): with no shared
    /// queue in between, one slow consumer can never make every consumer
    /// lose events. A listener must not block, await, or call the driver.
    pub(crate) fn add_listener(&self, f: Listener) {
        self.listeners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        self.remove(&[id]);
    }

    /// Delivers `ev` to every subscriber without waiting; drops those that
    /// are full or gone.
    pub(crate) fn emit(&self, ev: &DomainEvent) {
        for l in self
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            l(ev);
        }
        let mut dead = Vec::new();
        {
            let subs = self.subs.read().unwrap_or_else(|e| e.into_inner());
            if subs.is_empty() {
                return;
            }
            for s in subs.iter() {
                match s.tx.try_send(ev.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.lagged.store(true, Ordering::Release);
                        self.dropped_lagging.fetch_add(1, Ordering::Relaxed);
                        // The bound doing its job: the subscriber's stream
                        // ends with `Lagged`, which tells its reader.
                        tracing::info!(
                            subscriber = s.id,
                            capacity = self.capacity,
                            "dropping event subscriber: queue full (client not reading)"
                        );
                        dead.push(s.id);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => dead.push(s.id),
                }
            }
        }
        if !dead.is_empty() {
            self.remove(&dead);
        }
    }

    fn remove(&self, ids: &[u64]) {
        let mut subs = self.subs.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| !ids.contains(&s.id));
    }

    pub(crate) fn len(&self) -> usize {
        self.subs.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many subscribers were dropped for lagging so far.
    #[cfg(test)]
    pub(crate) fn dropped_lagging(&self) -> u64 {
        self.dropped_lagging.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{EventKind, LifecycleKind};

    fn ev(i: i32) -> DomainEvent {
        DomainEvent {
            name: "vm".into(),
            uuid: uuid::Uuid::nil(),
            id: i,
            kind: EventKind::lifecycle(LifecycleKind::Started, 0),
        }
    }

    #[tokio::test]
    async fn full_subscriber_is_dropped_others_continue() {
        let hub = Hub::new(8);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..100 {
            hub.emit(&ev(i));
            assert_eq!(fast.recv().await.unwrap().id, i);
        }
        assert_eq!(hub.len(), 1);
        assert_eq!(hub.dropped_lagging(), 1);
        // The slow one gets what fit, in order, then the lag marker.
        for i in 0..8 {
            assert_eq!(slow.recv().await.unwrap().id, i);
        }
        assert_eq!(slow.recv().await, Err(SubscriptionEnd::Lagged));
    }

    #[tokio::test]
    async fn dropped_receiver_is_pruned() {
        let hub = Hub::new(4);
        let s = hub.subscribe();
        drop(s);
        hub.emit(&ev(1));
        assert!(hub.is_empty());
    }
}
