//! The per-connection event queue, and the typed events it delivers.
//!
//! # Policy
//!
//! QEMU writes replies and events on one stream, in order. If the reader
//! waited for the event consumer, a consumer that is slow (or a QEMU that
//! floods) would hold replies hostage and stall every command on the VM. So
//! the reader **never blocks on this queue**: [`EventQueue::push`] is a short
//! critical section that always succeeds, and memory is bounded instead by
//! giving up individual delivery:
//!
//! 1. **Normal delivery.** Events are queued in QEMU's order while the queue
//!    holds fewer than [`EventLimits::max_events`] events and their raw line
//!    lengths sum to at most [`EventLimits::max_bytes`].
//! 2. **Overflow.** When an event does not fit, the queue enters overflow:
//!    that event and every later one are *coalesced* instead of queued. For
//!    each coalescing key — the event name plus its natural key (`id`,
//!    `device`, `node-name`, `qom-path`, `path`, whichever are present) —
//!    only the newest event is kept, for at most
//!    [`EventLimits::max_coalesced`] keys and `max_bytes` bytes. Data of an
//!    event larger than 64 KiB is not kept (name and timestamp
//!    kept, data reduced to its natural-key fields, or `null` if it has none),
//!    and so is the data of any event that would exceed the byte budget.
//!    Events for further keys are only counted (`untracked`). Every
//!    event not queued individually is counted in `dropped`.
//! 3. **Resync.** The consumer first receives every event queued before the
//!    overflow, then exactly one [`EventItem::Overflow`]. It means: "the
//!    VM's state may have changed without you seeing every event; re-read it
//!    from QEMU (query-status, query-jobs, query-block-jobs, query-migrate)".
//!    `latest` is a hint of what changed, in arrival order. Normal delivery
//!    then resumes with the next event.
//!
//! Memory therefore stays below roughly `2 × max_bytes` of raw JSON (plus
//! the parsed representation's overhead and `max_coalesced` small keys)
//! whatever the rate, size or variety of events. Events are never coalesced
//! while the queue has room, so a well-behaved QEMU loses nothing.
//!
//! When the connection closes, queued events and a pending overflow are
//! still delivered; then [`Events::recv`] returns `None`. Dropping [`Events`]
//! discards queued events and makes later pushes free.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use tokio::sync::Notify;

pub use crate::config::EventLimits;
pub use crate::types::events::*;

/// Data of an event whose raw line is larger than this is not kept while
/// coalescing: a flood of huge events must not fill the coalesced set.
pub const LARGE_EVENT: usize = 64 * 1024;

/// Natural-key values and event names longer than this are not used whole
/// in coalescing keys, so a hostile name cannot make keys expensive.
const MAX_KEY_PART: usize = 256;

/// Accounting overhead per coalesced slot (map entry, strings' headers).
const SLOT_OVERHEAD: usize = 64;

/// Fields that identify "the same thing" across events of one name.
const KEY_FIELDS: [&str; 5] = ["id", "device", "node-name", "qom-path", "path"];

/// An event as it came off the wire, typed only at delivery so events that
/// are coalesced away cost no typing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawEvent {
    pub name: String,
    pub data: Value,
    pub timestamp: Option<Timestamp>,
    /// Raw line length: the unit of the byte budget.
    pub size: usize,
}

impl RawEvent {
    fn into_event(self) -> Event {
        Event::from_parts(self.name, self.data, self.timestamp)
    }
}

/// What [`Events::recv`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    /// An event, in QEMU's order.
    Event(Event),
    /// Events were coalesced or dropped: resync state from QEMU.
    Overflow(Overflow),
}

/// Summary of an overflow episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Overflow {
    /// Events not delivered individually (including those in `latest`).
    pub dropped: u64,
    /// Of those, events whose key could not be remembered (too many keys,
    /// over the byte budget, or an absurd name): `latest` is incomplete if
    /// this is non-zero.
    pub untracked: u64,
    /// The newest event per coalescing key, in order of arrival.
    pub latest: Vec<Event>,
}

/// Why [`Events::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing queued right now.
    #[error("no event queued")]
    Empty,
    /// The connection is closed and everything was delivered.
    #[error("event stream closed")]
    Closed,
}

/// Counters and current usage of an event queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventQueueStats {
    /// Events queued for individual delivery now.
    pub queued_events: usize,
    /// The most events ever queued at once since connect.
    pub high_water_events: usize,
    /// Their raw bytes.
    pub queued_bytes: usize,
    /// Keys in the coalesced set now.
    pub coalesced_keys: usize,
    /// Accounted bytes of the coalesced set now.
    pub coalesced_bytes: usize,
    /// Events received since connect.
    pub received_total: u64,
    /// Events not delivered individually since connect.
    pub dropped_total: u64,
    /// Overflow items delivered since connect.
    pub overflows_total: u64,
}

#[derive(Debug)]
struct Slot {
    seq: u64,
    event: RawEvent,
    cost: usize,
}

/// The coalesced set of one overflow episode.
#[derive(Debug, Default)]
struct Coalescer {
    dropped: u64,
    untracked: u64,
    latest: HashMap<String, Slot>,
    bytes: usize,
    seq: u64,
}

impl Coalescer {
    fn add(&mut self, ev: RawEvent, limits: &EventLimits) {
        self.dropped += 1;
        self.seq += 1;
        let Some(key) = coalesce_key(&ev.name, &ev.data) else {
            self.untracked += 1;
            return;
        };
        // The reduced form keeps the natural-key fields (at most the key's
        // size again), so the consumer still knows *which* job or device.
        let base = 2 * key.len() + ev.name.len() + SLOT_OVERHEAD;
        let full_cost = base + ev.size;
        let old_cost = self.latest.get(&key).map_or(0, |s| s.cost);
        if !self.latest.contains_key(&key) && self.latest.len() >= limits.max_coalesced {
            self.untracked += 1;
            return;
        }
        let budget = limits.max_bytes + old_cost;
        let (event, cost) = if ev.size <= LARGE_EVENT && self.bytes + full_cost <= budget {
            (ev, full_cost)
        } else if self.bytes + base <= budget {
            (
                RawEvent {
                    data: key_fields_only(&ev.data),
                    ..ev
                },
                base,
            )
        } else {
            // Not even the name fits: forget the key rather than keep a
            // stale newest-event for it.
            if let Some(old) = self.latest.remove(&key) {
                self.bytes -= old.cost;
            }
            self.untracked += 1;
            return;
        };
        self.bytes = self.bytes - old_cost + cost;
        self.latest.insert(
            key,
            Slot {
                seq: self.seq,
                event,
                cost,
            },
        );
    }

    fn into_overflow(self) -> Overflow {
        let mut slots: Vec<Slot> = self.latest.into_values().collect();
        slots.sort_by_key(|s| s.seq);
        Overflow {
            dropped: self.dropped,
            untracked: self.untracked,
            latest: slots.into_iter().map(|s| s.event.into_event()).collect(),
        }
    }
}

/// Builds the coalescing key: the name plus the natural-key fields present
/// in the data. `None` for names too long to be a real event name.
pub(crate) fn coalesce_key(name: &str, data: &Value) -> Option<String> {
    if name.len() > MAX_KEY_PART {
        return None;
    }
    let mut key = String::with_capacity(name.len() + 32);
    key.push_str(name);
    if let Value::Object(map) = data {
        for field in KEY_FIELDS {
            if let Some(v) = map.get(field) {
                key.push('\0');
                key.push_str(field);
                key.push('=');
                match v {
                    Value::String(s) => push_truncated(&mut key, s),
                    other => push_truncated(&mut key, &other.to_string()),
                }
            }
        }
    }
    Some(key)
}

/// The natural-key fields of `data` whose values are short enough to be
/// kept whole; `Null` if there are none. Used instead of data too large to
/// keep while coalescing.
fn key_fields_only(data: &Value) -> Value {
    let Value::Object(map) = data else {
        return Value::Null;
    };
    let kept: serde_json::Map<String, Value> = KEY_FIELDS
        .iter()
        .filter_map(|f| {
            let v = map.get(*f)?;
            let short = match v {
                Value::String(s) => s.len() <= MAX_KEY_PART,
                Value::Number(_) | Value::Bool(_) | Value::Null => true,
                _ => false,
            };
            short.then(|| ((*f).to_owned(), v.clone()))
        })
        .collect();
    if kept.is_empty() {
        Value::Null
    } else {
        Value::Object(kept)
    }
}

fn push_truncated(out: &mut String, s: &str) {
    let mut end = s.len().min(MAX_KEY_PART);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&s[..end]);
}

#[derive(Debug)]
struct QueueState {
    limits: EventLimits,
    queue: VecDeque<RawEvent>,
    bytes: usize,
    overflow: Option<Coalescer>,
    closed: bool,
    receiver_gone: bool,
    received_total: u64,
    dropped_total: u64,
    overflows_total: u64,
    high_water: usize,
}

/// The shared queue between the reader task (producer) and [`Events`]
/// (the single consumer).
#[derive(Debug)]
pub(crate) struct EventQueue {
    state: Mutex<QueueState>,
    notify: Notify,
}

impl EventQueue {
    pub(crate) fn new(limits: EventLimits) -> Self {
        EventQueue {
            state: Mutex::new(QueueState {
                limits,
                queue: VecDeque::new(),
                bytes: 0,
                overflow: None,
                closed: false,
                receiver_gone: false,
                received_total: 0,
                dropped_total: 0,
                overflows_total: 0,
                high_water: 0,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic elsewhere while holding the lock leaves consistent
        // counters (no multi-step invariant is broken mid-way), so keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an event; never blocks beyond the short lock, never fails.
    pub(crate) fn push(&self, ev: RawEvent) {
        {
            let mut st = self.lock();
            if st.closed || st.receiver_gone {
                return;
            }
            st.received_total += 1;
            let fits = st.overflow.is_none()
                && st.queue.len() < st.limits.max_events
                && st.bytes.saturating_add(ev.size) <= st.limits.max_bytes;
            if fits {
                st.bytes += ev.size;
                st.queue.push_back(ev);
                st.high_water = st.high_water.max(st.queue.len());
            } else {
                st.dropped_total += 1;
                let limits = st.limits;
                st.overflow
                    .get_or_insert_with(Coalescer::default)
                    .add(ev, &limits);
            }
        }
        self.notify.notify_one();
    }

    /// Marks the stream closed: later pushes are ignored, the consumer sees
    /// what is queued and then the end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    fn pop_locked(st: &mut QueueState) -> Result<EventItem, TryRecvError> {
        if let Some(ev) = st.queue.pop_front() {
            st.bytes -= ev.size;
            return Ok(EventItem::Event(ev.into_event()));
        }
        if let Some(c) = st.overflow.take() {
            st.overflows_total += 1;
            return Ok(EventItem::Overflow(c.into_overflow()));
        }
        if st.closed {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    pub(crate) fn try_pop(&self) -> Result<EventItem, TryRecvError> {
        Self::pop_locked(&mut self.lock())
    }

    pub(crate) fn stats(&self) -> EventQueueStats {
        let st = self.lock();
        EventQueueStats {
            queued_events: st.queue.len(),
            high_water_events: st.high_water,
            queued_bytes: st.bytes,
            coalesced_keys: st.overflow.as_ref().map_or(0, |c| c.latest.len()),
            coalesced_bytes: st.overflow.as_ref().map_or(0, |c| c.bytes),
            received_total: st.received_total,
            dropped_total: st.dropped_total,
            overflows_total: st.overflows_total,
        }
    }

    fn receiver_dropped(&self) {
        let mut st = self.lock();
        st.receiver_gone = true;
        st.queue = VecDeque::new();
        st.bytes = 0;
        st.overflow = None;
    }
}

/// The consumer end of a monitor's event queue. Not `Clone`: one consumer
/// per connection keeps QEMU's order meaningful.
#[derive(Debug)]
pub struct Events {
    queue: Arc<EventQueue>,
}

impl Events {
    pub(crate) fn new(queue: Arc<EventQueue>) -> Self {
        Events { queue }
    }

    /// The next event or overflow; `None` once the connection is closed and
    /// everything queued was delivered. Cancellation-safe.
    pub async fn recv(&mut self) -> Option<EventItem> {
        loop {
            // Notify keeps a permit if a push happens between the check and
            // the await, so no wake-up is lost.
            match self.queue.try_pop() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => self.queue.notify.notified().await,
            }
        }
    }

    /// Non-blocking variant of [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<EventItem, TryRecvError> {
        self.queue.try_pop()
    }

    /// Waits for at least one item, then moves up to `max` items into `out`
    /// under one lock. Returns how many were added; 0 means closed (or
    /// `max == 0`).
    pub async fn recv_many(&mut self, out: &mut Vec<EventItem>, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let Some(first) = self.recv().await else {
            return 0;
        };
        out.push(first);
        let mut n = 1;
        let mut st = self.queue.lock();
        while n < max {
            match EventQueue::pop_locked(&mut st) {
                Ok(item) => {
                    out.push(item);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }

    /// Current usage and counters of the queue.
    pub fn stats(&self) -> EventQueueStats {
        self.queue.stats()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.queue.receiver_dropped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(name: &str, data: Value, size: usize) -> RawEvent {
        RawEvent {
            name: name.into(),
            data,
            timestamp: None,
            size,
        }
    }

    fn limits(max_events: usize, max_bytes: usize, max_coalesced: usize) -> EventLimits {
        EventLimits {
            max_events,
            max_bytes,
            max_coalesced,
        }
    }

    fn drain(q: &EventQueue) -> Vec<EventItem> {
        let mut out = Vec::new();
        while let Ok(i) = q.try_pop() {
            out.push(i);
        }
        out
    }

    #[test]
    fn delivers_in_order_without_overflow() {
        let q = EventQueue::new(limits(10, 1000, 4));
        for i in 0..5 {
            q.push(raw("E", json!({"i": i}), 10));
        }
        let items = drain(&q);
        assert_eq!(items.len(), 5);
        for (i, item) in items.iter().enumerate() {
            match item {
                EventItem::Event(e) => {
                    assert!(matches!(&e.kind, EventKind::Unknown { data, .. } if data["i"] == i))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn overflow_by_count_coalesces_per_key() {
        let q = EventQueue::new(limits(3, 1_000_000, 8));
        for i in 0..3 {
            q.push(raw("STOP", Value::Null, 10 + i));
        }
        // Overflow: job a twice, job b once, RESUME twice.
        q.push(raw(
            "JOB_STATUS_CHANGE",
            json!({"id": "a", "status": "running"}),
            50,
        ));
        q.push(raw("RESUME", Value::Null, 20));
        q.push(raw(
            "JOB_STATUS_CHANGE",
            json!({"id": "b", "status": "running"}),
            50,
        ));
        q.push(raw(
            "JOB_STATUS_CHANGE",
            json!({"id": "a", "status": "concluded"}),
            50,
        ));
        q.push(raw("RESUME", Value::Null, 21));
        let st = q.stats();
        assert_eq!(
            (st.queued_events, st.coalesced_keys, st.dropped_total),
            (3, 3, 5)
        );
        let items = drain(&q);
        assert_eq!(items.len(), 4);
        let EventItem::Overflow(o) = &items[3] else {
            panic!("expected overflow last, got {:?}", items[3]);
        };
        assert_eq!(o.dropped, 5);
        assert_eq!(o.untracked, 0);
        let names: Vec<_> = o.latest.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(names.len(), 3);
        // Arrival order of the newest per key: b, a(concluded), RESUME.
        assert!(matches!(&names[0], EventKind::JobStatusChange(d) if d.id == "b"));
        assert!(
            matches!(&names[1], EventKind::JobStatusChange(d) if d.id == "a" && d.status == crate::types::JobStatus::Concluded)
        );
        assert_eq!(names[2], EventKind::Resume);
        // Normal delivery resumes.
        q.push(raw("STOP", Value::Null, 10));
        assert!(matches!(q.try_pop(), Ok(EventItem::Event(_))));
        assert_eq!(q.try_pop(), Err(TryRecvError::Empty));
        assert_eq!(q.stats().overflows_total, 1);
    }

    #[test]
    fn overflow_by_bytes_and_large_data_nulled() {
        let q = EventQueue::new(limits(1000, 1000, 8));
        q.push(raw("A", json!({"x": 1}), 600));
        q.push(raw("B", json!({"x": 2}), 600)); // 1200 > 1000: overflow
        q.push(raw("C", json!({"big": "y"}), LARGE_EVENT + 1));
        q.push(raw(
            "D",
            json!({"device": "d0", "big": "y"}),
            LARGE_EVENT + 1,
        ));
        let items = drain(&q);
        assert_eq!(items.len(), 2);
        let EventItem::Overflow(o) = &items[1] else {
            panic!("expected overflow");
        };
        assert_eq!(o.dropped, 3);
        assert_eq!(o.latest.len(), 3);
        assert!(
            matches!(&o.latest[0].kind, EventKind::Unknown { name, data } if name == "B" && data["x"] == 2)
        );
        assert!(
            matches!(&o.latest[1].kind, EventKind::Unknown { name, data: Value::Null } if name == "C")
        );
        assert!(
            matches!(&o.latest[2].kind, EventKind::Unknown { name, data } if name == "D" && *data == json!({"device": "d0"}))
        );
    }

    #[test]
    fn key_map_is_bounded() {
        let q = EventQueue::new(limits(0, 1_000_000, 4));
        for i in 0..10_000 {
            q.push(raw(&format!("EV_{i}"), Value::Null, 30));
        }
        let st = q.stats();
        assert_eq!(st.coalesced_keys, 4);
        assert!(st.coalesced_bytes < 4 * (SLOT_OVERHEAD + 64));
        let items = drain(&q);
        let [EventItem::Overflow(o)] = &items[..] else {
            panic!("expected one overflow, got {items:?}");
        };
        assert_eq!(o.dropped, 10_000);
        assert_eq!(o.untracked, 10_000 - 4);
    }

    #[test]
    fn hostile_names_and_keys_are_bounded() {
        let q = EventQueue::new(limits(0, 10_000, 1000));
        let long = "X".repeat(100_000);
        q.push(raw(&long, Value::Null, 100_010));
        q.push(raw("E", json!({"device": long}), 100_030));
        let st = q.stats();
        assert_eq!(st.coalesced_keys, 1);
        assert!(st.coalesced_bytes <= 10_000);
        let items = drain(&q);
        let [EventItem::Overflow(o)] = &items[..] else {
            panic!("expected one overflow");
        };
        assert_eq!((o.dropped, o.untracked), (2, 1));
    }

    #[test]
    fn close_delivers_rest_then_ends() {
        let q = EventQueue::new(limits(1, 1000, 4));
        q.push(raw("A", Value::Null, 1));
        q.push(raw("B", Value::Null, 1));
        q.close();
        q.push(raw("C", Value::Null, 1));
        assert!(matches!(q.try_pop(), Ok(EventItem::Event(_))));
        assert!(matches!(q.try_pop(), Ok(EventItem::Overflow(o)) if o.dropped == 1));
        assert_eq!(q.try_pop(), Err(TryRecvError::Closed));
    }

    #[test]
    fn keys_use_natural_fields() {
        assert_eq!(coalesce_key("STOP", &Value::Null).as_deref(), Some("STOP"));
        let k = coalesce_key(
            "BLOCK_IO_ERROR",
            &json!({"device": "", "node-name": "n1", "x": 1}),
        );
        assert_eq!(k.as_deref(), Some("BLOCK_IO_ERROR\0device=\0node-name=n1"));
        let k = coalesce_key("X", &json!({"id": 5}));
        assert_eq!(k.as_deref(), Some("X\0id=5"));
        let k = coalesce_key("X", &json!({"device": "é".repeat(200)})).unwrap_or_default();
        assert!(k.len() <= 2 + 7 + MAX_KEY_PART);
    }

    #[tokio::test]
    async fn recv_wakes_and_ends() {
        let q = Arc::new(EventQueue::new(EventLimits::default()));
        let mut ev = Events::new(q.clone());
        let task = tokio::spawn(async move {
            let mut n = 0;
            while ev.recv().await.is_some() {
                n += 1;
            }
            n
        });
        for _ in 0..10 {
            q.push(raw("A", Value::Null, 1));
            tokio::task::yield_now().await;
        }
        q.close();
        assert_eq!(task.await.ok(), Some(10));
    }

    #[tokio::test]
    async fn recv_many_batches() {
        let q = Arc::new(EventQueue::new(EventLimits::default()));
        let mut ev = Events::new(q.clone());
        for _ in 0..10 {
            q.push(raw("A", Value::Null, 1));
        }
        let mut out = Vec::new();
        assert_eq!(ev.recv_many(&mut out, 4).await, 4);
        assert_eq!(ev.recv_many(&mut out, 100).await, 6);
        q.close();
        assert_eq!(ev.recv_many(&mut out, 100).await, 0);
    }

    #[test]
    fn high_water_is_the_deepest_the_queue_was() {
        let q = EventQueue::new(limits(3, 1_000_000, 8));
        for _ in 0..2 {
            q.push(raw("A", Value::Null, 1));
        }
        assert!(q.try_pop().is_ok());
        q.push(raw("A", Value::Null, 1));
        assert_eq!(q.stats().high_water_events, 2);
        for _ in 0..10 {
            q.push(raw("A", Value::Null, 1));
        }
        let st = q.stats();
        assert_eq!(st.high_water_events, 3, "bounded by max_events");
        assert_eq!(st.queued_events, 3);
    }

    #[test]
    fn dropped_receiver_frees_queue() {
        let q = Arc::new(EventQueue::new(EventLimits::default()));
        let ev = Events::new(q.clone());
        q.push(raw("A", Value::Null, 100));
        drop(ev);
        q.push(raw("A", Value::Null, 100));
        let st = q.stats();
        assert_eq!((st.queued_events, st.queued_bytes), (0, 0));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push { name: u8, key: u8, size: usize },
            Pop,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (0u8..6, 0u8..6, 1usize..300).prop_map(|(name, key, size)| Op::Push { name, key, size }),
                2 => Just(Op::Pop),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Bounds hold at every step; events delivered individually come
            /// in push order; every pushed event is either delivered or
            /// counted in exactly one overflow; `latest` holds the newest
            /// event of each key among those dropped in its episode.
            #[test]
            fn queue_invariants(
                ops in proptest::collection::vec(op(), 0..400),
                max_events in 0usize..20,
                max_bytes in 0usize..3000,
                max_coalesced in 0usize..8,
            ) {
                let lim = limits(max_events, max_bytes, max_coalesced);
                let q = EventQueue::new(lim);
                let mut seq = 0u64;
                let mut delivered: Vec<u64> = Vec::new();
                let mut dropped_sum = 0u64;
                let mut overflow_pending = false;
                // Events pushed since the current overflow began, newest last.
                let mut episode: Vec<(String, u64)> = Vec::new();
                let check_pop = |item: EventItem,
                                     delivered: &mut Vec<u64>,
                                     dropped_sum: &mut u64,
                                     episode: &mut Vec<(String, u64)>,
                                     overflow_pending: &mut bool| -> Result<(), TestCaseError> {
                    match item {
                        EventItem::Event(e) => {
                            let EventKind::Unknown { data, .. } = e.kind else {
                                return Err(TestCaseError::fail("typed?"));
                            };
                            delivered.push(data["seq"].as_u64().unwrap_or(u64::MAX));
                        }
                        EventItem::Overflow(o) => {
                            prop_assert!(*overflow_pending);
                            *overflow_pending = false;
                            prop_assert_eq!(o.dropped, episode.len() as u64);
                            *dropped_sum += o.dropped;
                            prop_assert!(o.latest.len() <= max_coalesced);
                            let mut last_seq = 0;
                            for e in &o.latest {
                                let EventKind::Unknown { data, .. } = &e.kind else {
                                    return Err(TestCaseError::fail("typed?"));
                                };
                                let key = coalesce_key(e.name(), data).unwrap_or_default();
                                // newest of its key within the episode
                                let newest = episode.iter().rev().find(|(k, _)| *k == key).map(|(_, s)| *s);
                                prop_assert!(newest.is_some(), "key not in episode");
                                // Reduced events (over budget) lost `seq`.
                                if let Some(s) = data["seq"].as_u64() {
                                    prop_assert_eq!(Some(s), newest);
                                    prop_assert!(s > last_seq, "latest not in arrival order");
                                    last_seq = s;
                                }
                            }
                            let distinct: std::collections::HashSet<_> = episode.iter().map(|(k, _)| k).collect();
                            prop_assert!(distinct.len() as u64 <= o.latest.len() as u64 + o.untracked);
                            episode.clear();
                        }
                    }
                    Ok(())
                };
                for op in ops {
                    match op {
                        Op::Push { name, key, size } => {
                            seq += 1;
                            let data = json!({"device": format!("d{key}"), "seq": seq});
                            let name = format!("EV{name}");
                            let before = q.stats();
                            q.push(raw(&name, data.clone(), size));
                            let after = q.stats();
                            if after.dropped_total > before.dropped_total {
                                overflow_pending = true;
                                episode.push((coalesce_key(&name, &data).unwrap_or_default(), seq));
                            }
                        }
                        Op::Pop => {
                            if let Ok(item) = q.try_pop() {
                                check_pop(item, &mut delivered, &mut dropped_sum, &mut episode, &mut overflow_pending)?;
                            }
                        }
                    }
                    let st = q.stats();
                    prop_assert!(st.queued_events <= max_events);
                    prop_assert!(st.queued_bytes <= max_bytes);
                    prop_assert!(st.coalesced_keys <= max_coalesced);
                    prop_assert!(st.coalesced_bytes <= max_bytes);
                }
                while let Ok(item) = q.try_pop() {
                    check_pop(item, &mut delivered, &mut dropped_sum, &mut episode, &mut overflow_pending)?;
                }
                prop_assert!(!overflow_pending);
                prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]), "order broken");
                prop_assert_eq!(delivered.len() as u64 + dropped_sum, seq);
                prop_assert_eq!(q.stats().dropped_total, dropped_sum);
            }
        }
    }
}
