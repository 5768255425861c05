//! Bounded output queue of one monitor and QMP message formatting.
//!
//! Replies and events share one ordered stream, as in QEMU. Messages are
//! always appended whole, so a flood interleaves with replies only between
//! complete lines. Producers never block: state events and replies are
//! always queued (they are bounded by command processing, which stops while
//! the queue is over [`CAP`]), whereas flood events are skipped and counted
//! when the queue is over [`CAP`] — a real QEMU would block its main loop,
//! the simulator must instead stay small.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// Pending-output bound of one monitor connection.
pub(crate) const CAP: usize = 256 * 1024;

/// Chunks are merged up to this size so a flood does not allocate per event
/// yet the writer never holds a large buffer.
const MERGE: usize = 32 * 1024;

pub(crate) enum Chunk {
    Data(Vec<u8>),
    /// `n` bytes of `x`, produced while writing: a huge line costs no memory.
    Fill(usize),
}

/// Output queue of one monitor (reused across its successive connections).
#[derive(Default)]
pub(crate) struct Outbox {
    chunks: RefCell<VecDeque<Chunk>>,
    len: Cell<usize>,
    /// A client is connected (replies may be queued).
    connected: Cell<bool>,
    /// Capabilities negotiated: events are delivered.
    events_on: Cell<bool>,
    /// Wakes the writer.
    pub wake: Notify,
    /// The queue fell below half of [`CAP`] (flood at `max`, reader).
    pub drained: Notify,
    /// The queue became empty (flush before exit).
    pub emptied: Notify,
}

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.get()
    }

    pub(crate) fn events_on(&self) -> bool {
        self.events_on.get()
    }

    pub(crate) fn set_events_on(&self, on: bool) {
        self.events_on.set(on);
    }

    /// A new client: start from an empty queue.
    pub(crate) fn connect(&self) {
        self.clear();
        self.connected.set(true);
        self.events_on.set(false);
    }

    /// The client is gone: what it did not read is discarded, like QEMU does.
    pub(crate) fn disconnect(&self) {
        self.connected.set(false);
        self.events_on.set(false);
        self.clear();
    }

    fn clear(&self) {
        let mut c = self.chunks.borrow_mut();
        c.clear();
        c.shrink_to_fit();
        self.len.set(0);
        self.emptied.notify_one();
        self.drained.notify_one();
    }

    /// Appends raw bytes (a whole message including its newline).
    pub(crate) fn push(&self, bytes: &[u8]) {
        if !self.connected.get() {
            return;
        }
        {
            let mut chunks = self.chunks.borrow_mut();
            match chunks.back_mut() {
                Some(Chunk::Data(v)) if v.len() + bytes.len() <= MERGE => {
                    v.extend_from_slice(bytes)
                }
                _ => chunks.push_back(Chunk::Data(bytes.to_vec())),
            }
        }
        self.len.set(self.len.get() + bytes.len());
        self.wake.notify_one();
    }

    /// Appends `n` filler bytes.
    pub(crate) fn push_fill(&self, n: usize) {
        if !self.connected.get() || n == 0 {
            return;
        }
        self.chunks.borrow_mut().push_back(Chunk::Fill(n));
        self.len.set(self.len.get() + n);
        self.wake.notify_one();
    }

    /// Takes the next chunk to write. Its bytes stay counted until
    /// [`Outbox::written`] so backpressure reflects unsent output.
    pub(crate) fn pop(&self) -> Option<Chunk> {
        self.chunks.borrow_mut().pop_front()
    }

    /// Accounts `n` bytes as written to the peer.
    pub(crate) fn written(&self, n: usize) {
        let before = self.len.get();
        let after = before.saturating_sub(n);
        self.len.set(after);
        if before >= CAP / 2 && after < CAP / 2 {
            self.drained.notify_one();
        }
        if after == 0 {
            self.emptied.notify_one();
            self.drained.notify_one();
        }
    }

    /// Drops the memory of a burst once idle again: an idle instance must
    /// stay small.
    pub(crate) fn trim(&self) {
        let mut c = self.chunks.borrow_mut();
        if c.is_empty() && c.capacity() > 8 {
            c.shrink_to_fit();
        }
    }
}

/// QEMU's event timestamp.
pub(crate) fn timestamp() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

/// Formats an event line the way QEMU does (key order and spacing).
/// `data` is already-formatted JSON, or `None` for events without data.
pub(crate) fn format_event(buf: &mut String, name: &str, data: Option<&str>) {
    let (s, us) = timestamp();
    let _ = write!(
        buf,
        "{{\"timestamp\": {{\"seconds\": {s}, \"microseconds\": {us}}}, \"event\": "
    );
    write_json_str(buf, name);
    if let Some(d) = data {
        buf.push_str(", \"data\": ");
        buf.push_str(d);
    }
    buf.push_str("}\r\n");
}

/// Serializes a JSON value with QEMU's spacing (`{"a": 1, "b": [1, 2]}`).
pub(crate) fn to_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_json_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_str(out, k);
                out.push_str(": ");
                write_value(out, x);
            }
            out.push('}');
        }
    }
}

pub(crate) fn write_json_str(out: &mut String, s: &str) {
    // serde_json's string escaping is correct and fast; it cannot fail for
    // a &str.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_format_is_qemu_like() {
        let mut s = String::new();
        format_event(&mut s, "STOP", None);
        assert!(s.starts_with("{\"timestamp\": {\"seconds\": "));
        assert!(s.ends_with(", \"event\": \"STOP\"}\r\n"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["event"], "STOP");
        s.clear();
        format_event(&mut s, "X", Some("{\"a\": 1}"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["data"]["a"], 1);
    }

    #[test]
    fn json_spacing() {
        let v = serde_json::json!({"a": [1, "x\n"], "b": {}});
        assert_eq!(to_json(&v), "{\"a\": [1, \"x\\n\"], \"b\": {}}");
    }

    #[test]
    fn outbox_accounting() {
        let o = Outbox::default();
        o.push(b"dropped: not connected\n");
        assert!(o.is_empty());
        o.connect();
        o.push(b"abc\n");
        o.push(b"def\n");
        o.push_fill(10);
        assert_eq!(o.len(), 18);
        match o.pop() {
            Some(Chunk::Data(v)) => assert_eq!(v, b"abc\ndef\n"),
            _ => panic!("expected data"),
        }
        o.written(8);
        assert!(matches!(o.pop(), Some(Chunk::Fill(10))));
        o.written(10);
        assert!(o.is_empty());
        o.disconnect();
        assert!(!o.connected());
    }
}
