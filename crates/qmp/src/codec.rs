//! Wire codec: newline-delimited JSON, one QMP message per line.
//!
//! QEMU is not trusted here. The decoder keeps at most `max_line + 1` bytes
//! of an unterminated line: it never asks the socket for more than that, so
//! a peer sending an endless line costs us a bounded buffer and a protocol
//! error, not memory. Every failure is a [`ProtocolError`] value; nothing in
//! this module panics on input.
//!
//! The decoder is synchronous ([`LineDecoder::feed`] / [`LineDecoder::next_line`])
//! so that it can be property-tested without a socket; [`MessageReader`]
//! glues it to a tokio read half.

use bytes::BufMut;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::ProtocolError;
use crate::types::events::Timestamp;

/// The most we ask the socket for per read: big enough that a flood of
/// small events costs few syscalls.
const READ_CHUNK: usize = 64 * 1024;

/// What a connection reads at first. A greeting and a command's reply fit,
/// so the thousands of idle monitors of a big host hold this much each;
/// a read that fills it doubles it, up to [`READ_CHUNK`], so a flooding
/// QEMU reaches the big reads within a few of them.
const FIRST_CHUNK: usize = 2 * 1024;

/// Above this capacity an idle buffer is shrunk back, so one big reply does
/// not pin megabytes per VM for the life of the connection.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// Splits a byte stream into lines with a hard cap on line length.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// Bytes in `buf[start..scanned]` are known to contain no newline, so a
    /// long line arriving in many reads is scanned once, not quadratically.
    scanned: usize,
    max_line: usize,
    /// Bytes the next read asks for, from [`FIRST_CHUNK`] up to
    /// [`READ_CHUNK`] (doubled by each read that fills it).
    chunk: usize,
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max_line` bytes (the newline
    /// excluded; a `\r` before it counts).
    pub fn new(max_line: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
            chunk: FIRST_CHUNK,
        }
    }

    /// The configured cap.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Allocated size of the buffer, for memory accounting and tests.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes buffered but not yet returned as lines.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Returns the next complete line (without its `\n`), `Ok(None)` if more
    /// bytes are needed, or an error once the unterminated tail exceeds the
    /// cap. After an error the decoder must be discarded.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ProtocolError> {
        let from = self.scanned.max(self.start);
        match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(rel) => {
                let end = from + rel;
                let line_start = self.start;
                self.start = end + 1;
                self.scanned = self.start;
                if end - line_start > self.max_line {
                    return Err(ProtocolError::LineTooLong { max: self.max_line });
                }
                Ok(Some(&self.buf[line_start..end]))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max_line {
                    return Err(ProtocolError::LineTooLong { max: self.max_line });
                }
                Ok(None)
            }
        }
    }

    /// Moves the unconsumed tail to the front and makes room for the next
    /// read. Returns how many bytes the next read may add: never more than
    /// what keeps the tail at `max_line + 1` (one byte past the cap is what
    /// lets `next_line` notice the overflow).
    fn prepare(&mut self) -> usize {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        let len = self.buf.len();
        if self.buf.capacity() > SHRINK_ABOVE && len < READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK.max(len));
        }
        let room_to_cap = (self.max_line + 1).saturating_sub(len);
        let want = self.chunk.min(room_to_cap).max(1);
        if self.buf.capacity() - len < want {
            // Grow geometrically (no quadratic copying of a long line) but
            // never past the cap.
            let target = (self.buf.capacity() * 2)
                .max(len + want)
                .min((self.max_line + 1).max(len + want));
            self.buf.reserve_exact(target - len);
        }
        want
    }

    /// Appends as much of `data` as the cap allows and returns how many
    /// bytes were taken. The caller must call [`next_line`](Self::next_line)
    /// until it returns `Ok(None)` before feeding more (as the reader does).
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let want = self.prepare();
        let n = want.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.note_read(n, want);
        n
    }

    /// A read of `n` bytes that asked for `want`: one that filled it means
    /// more is waiting, so the next asks for twice as much.
    fn note_read(&mut self, n: usize, want: usize) {
        if n == want && n == self.chunk {
            self.chunk = (self.chunk * 2).min(READ_CHUNK);
        }
    }

    /// Frees the buffer when nothing is buffered and reads are still at
    /// their first size (no flood under way); says whether it did. An idle
    /// monitor then holds no read buffer while it waits, which is most of
    /// what thousands of idle monitors would otherwise keep.
    fn release_if_idle(&mut self) -> bool {
        if self.start < self.buf.len() || self.chunk != FIRST_CHUNK {
            return false;
        }
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        true
    }

    /// Reads once from `r` into the buffer; returns bytes read (0 = EOF).
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> std::io::Result<usize> {
        let want = self.prepare();
        let n = r.read_buf(&mut (&mut self.buf).limit(want)).await?;
        self.note_read(n, want);
        Ok(n)
    }
}

/// One message from QEMU, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `{"QMP": {...}}`: the greeting, with the inner object.
    Greeting(Value),
    /// `{"return": X, "id": ID}`.
    Return {
        /// The id echoed by QEMU (absent if the command had none).
        id: Option<Value>,
        /// The command's result.
        value: Value,
    },
    /// `{"error": {"class": .., "desc": ..}, "id": ID}`.
    Error {
        /// The id echoed by QEMU.
        id: Option<Value>,
        /// Error class, empty if QEMU sent none.
        class: String,
        /// Description, or the raw error value if it was not an object.
        desc: String,
    },
    /// `{"event": NAME, "data": {...}, "timestamp": {...}}`.
    Event {
        /// Event name.
        name: String,
        /// Event data, `Null` if absent.
        data: Value,
        /// When QEMU emitted it, if it said.
        timestamp: Option<Timestamp>,
    },
    /// A JSON object that is none of the above. QMP says clients must
    /// ignore what they do not understand, so this is dropped, not fatal.
    Unrecognized,
}

/// Field-wise view of a message; serde fails on wrongly typed fields and
/// duplicate keys, which we report as malformed.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "QMP", default, deserialize_with = "present")]
    qmp: Option<Value>,
    #[serde(rename = "return", default, deserialize_with = "present")]
    ret: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
}

/// Distinguishes a present `null` from an absent field (plain `Option<Value>`
/// maps both to `None`, and `"return": null` is still a reply).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Parses one line. Blank lines (QEMU never sends them, but they are
/// harmless) give `Ok(None)`.
pub fn parse_message(line: &[u8]) -> Result<Option<Message>, ProtocolError> {
    if let Err(e) = std::str::from_utf8(line) {
        return Err(ProtocolError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        });
    }
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Distinguish "not JSON" from "JSON but not an object".
        return match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            Ok(_) => Err(ProtocolError::Malformed(
                "message is not a JSON object".into(),
            )),
            Err(e) => Err(ProtocolError::InvalidJson(e.to_string())),
        };
    }
    let wire: Wire = serde_json::from_slice(line).map_err(|e| {
        if e.is_data() {
            ProtocolError::Malformed(e.to_string())
        } else {
            ProtocolError::InvalidJson(e.to_string())
        }
    })?;
    Ok(Some(classify(wire)))
}

fn classify(w: Wire) -> Message {
    if let Some(err) = w.error {
        let (class, desc) = match &err {
            Value::Object(m) => (
                m.get("class")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                m.get("desc")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| err.to_string()),
            ),
            other => (String::new(), other.to_string()),
        };
        return Message::Error {
            id: w.id,
            class,
            desc,
        };
    }
    if let Some(value) = w.ret {
        return Message::Return { id: w.id, value };
    }
    if let Some(Value::String(name)) = w.event {
        let timestamp = w.timestamp.and_then(|t| Timestamp::deserialize(&t).ok());
        return Message::Event {
            name,
            data: w.data.unwrap_or(Value::Null),
            timestamp,
        };
    }
    if let Some(g) = w.qmp {
        return Message::Greeting(g);
    }
    Message::Unrecognized
}

/// Serialises `{"execute": NAME, "arguments": ARGS, "id": ID}\n`.
///
/// The id is a JSON number; QEMU echoes it verbatim.
pub fn encode_request(name: &str, args: Option<&Value>, id: u64) -> Result<Vec<u8>, String> {
    #[derive(serde::Serialize)]
    struct Request<'a> {
        execute: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<&'a Value>,
        id: u64,
    }
    let mut out = Vec::with_capacity(64);
    serde_json::to_writer(
        &mut out,
        &Request {
            execute: name,
            arguments: args,
            id,
        },
    )
    .map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// Reads [`Message`]s from a stream through a [`LineDecoder`].
#[derive(Debug)]
pub struct MessageReader<R> {
    inner: R,
    decoder: LineDecoder,
    bytes_read: u64,
}

/// Why [`MessageReader::next`] stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the stream (a partial last line is discarded).
    Eof,
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// The socket failed.
    Io(std::io::Error),
}

/// A read half that can wait until it has bytes (or EOF) without being
/// handed a buffer to read into.
pub trait ReadReady: AsyncRead + Unpin {
    /// Resolves once a read would not block (possibly spuriously).
    fn ready_to_read(&self) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl ReadReady for tokio::net::unix::OwnedReadHalf {
    fn ready_to_read(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        self.readable()
    }
}

impl<R: ReadReady> MessageReader<R> {
    /// Wraps a read half.
    pub fn new(inner: R, max_line: usize) -> Self {
        MessageReader {
            inner,
            decoder: LineDecoder::new(max_line),
            bytes_read: 0,
        }
    }

    /// Returns the next message and the length of its line.
    pub async fn next(&mut self) -> Result<(Message, usize), ReadError> {
        loop {
            match self.decoder.next_line() {
                Err(e) => return Err(ReadError::Protocol(e)),
                Ok(Some(line)) => {
                    let len = line.len();
                    match parse_message(line) {
                        Ok(Some(m)) => return Ok((m, len)),
                        Ok(None) => continue,
                        Err(e) => return Err(ReadError::Protocol(e)),
                    }
                }
                Ok(None) => {}
            }
            // Nothing buffered: wait for QEMU's next bytes holding no
            // buffer. A readiness that turns out spurious only means the
            // read below waits with one, as it always did.
            if self.decoder.release_if_idle()
                && let Err(e) = self.inner.ready_to_read().await
            {
                return Err(ReadError::Io(e));
            }
            match self.decoder.read_from(&mut self.inner).await {
                Ok(0) => return Err(ReadError::Eof),
                Ok(n) => self.bytes_read += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Like [`next`](Self::next) with a deadline; `None` when it expired.
    pub async fn next_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<Result<(Message, usize), ReadError>> {
        tokio::time::timeout_at(deadline, self.next()).await.ok()
    }

    /// The decoder's buffer capacity (memory held for framing).
    pub fn buffer_capacity(&self) -> usize {
        self.decoder.capacity()
    }

    /// Total bytes read from the stream.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader with nothing buffered waits holding no buffer, and reads
    /// the next message whole when it comes; one that is mid-line keeps
    /// its bytes.
    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        use tokio::io::AsyncWriteExt;
        let (ours, mut qemu) = tokio::net::UnixStream::pair().unwrap();
        let (read, _write) = ours.into_split();
        let mut reader = MessageReader::new(read, 1024);
        qemu.write_all(b"{\"return\": {}}\n{\"ret").await.unwrap();
        assert!(reader.next().await.is_ok());
        // A partial line is buffered: nothing is released.
        let zero = std::time::Duration::ZERO;
        assert!(tokio::time::timeout(zero, reader.next()).await.is_err());
        assert!(reader.buffer_capacity() > 0);
        qemu.write_all(b"urn\": {}}\n").await.unwrap();
        assert!(reader.next().await.is_ok());
        // Nothing buffered: one poll of the next read frees the buffer.
        assert!(tokio::time::timeout(zero, reader.next()).await.is_err());
        assert_eq!(reader.buffer_capacity(), 0);
        qemu.write_all(b"{\"return\": 7}\n").await.unwrap();
        let (msg, _) = reader.next().await.unwrap();
        assert!(matches!(msg, Message::Return { .. }), "{msg:?}");
    }

    fn lines_of(dec: &mut LineDecoder) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let mut out = Vec::new();
        while let Some(l) = dec.next_line()? {
            out.push(l.to_vec());
        }
        Ok(out)
    }

    /// An idle connection holds a small buffer; a flood (every read
    /// filled) brings the reads up to their full size.
    #[test]
    fn reads_start_small_and_grow_while_they_fill() {
        let mut dec = LineDecoder::new(1 << 20);
        let greeting = b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n";
        assert_eq!(dec.feed(greeting), greeting.len());
        assert_eq!(lines_of(&mut dec).unwrap().len(), 1);
        assert!(dec.capacity() <= FIRST_CHUNK, "{}", dec.capacity());

        let event = b"{\"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 1}}\n";
        let flood: Vec<u8> = event.iter().copied().cycle().take(4 * READ_CHUNK).collect();
        let mut rest = &flood[..];
        let mut reads = 0;
        let mut lines = 0;
        while !rest.is_empty() {
            let n = dec.feed(rest);
            rest = &rest[n..];
            reads += 1;
            lines += lines_of(&mut dec).unwrap().len();
        }
        assert_eq!(lines, 4 * READ_CHUNK / event.len());
        assert_eq!(dec.chunk, READ_CHUNK);
        // Doubling from the first size, then full reads: far fewer reads
        // than at the first size.
        assert!(reads < 4 * READ_CHUNK / FIRST_CHUNK / 4, "{reads} reads");
    }

    fn feed_all(dec: &mut LineDecoder, mut data: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let mut out = Vec::new();
        loop {
            out.extend(lines_of(dec)?);
            if data.is_empty() {
                return Ok(out);
            }
            let n = dec.feed(data);
            data = &data[n..];
        }
    }

    #[test]
    fn splits_lines_across_feeds() {
        let mut dec = LineDecoder::new(100);
        let mut got = feed_all(&mut dec, b"{\"a\":1}\n{\"b\"").unwrap();
        got.extend(feed_all(&mut dec, b":2}\r\n\n").unwrap());
        assert_eq!(
            got,
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}\r".to_vec(), b"".to_vec()]
        );
    }

    #[test]
    fn line_at_cap_ok_over_cap_error() {
        let mut dec = LineDecoder::new(10);
        let got = feed_all(&mut dec, b"0123456789\n").unwrap();
        assert_eq!(got.len(), 1);
        let mut dec = LineDecoder::new(10);
        let err = feed_all(&mut dec, b"0123456789A\n").unwrap_err();
        assert_eq!(err, ProtocolError::LineTooLong { max: 10 });
        // Without a newline at all: the error comes once the cap is passed.
        let mut dec = LineDecoder::new(10);
        let err = feed_all(&mut dec, &[b'x'; 1000]).unwrap_err();
        assert_eq!(err, ProtocolError::LineTooLong { max: 10 });
        assert!(dec.buffered() <= 11, "buffered {}", dec.buffered());
    }

    #[test]
    fn buffer_stays_near_cap_for_endless_line() {
        let cap = 1024 * 1024;
        let mut dec = LineDecoder::new(cap);
        let chunk = vec![b'a'; 100_000];
        let mut err = None;
        for _ in 0..100 {
            let mut data = &chunk[..];
            while !data.is_empty() {
                if let Err(e) = dec.next_line() {
                    err = Some(e);
                    break;
                }
                let n = dec.feed(data);
                data = &data[n..];
            }
            if err.is_some() {
                break;
            }
        }
        assert_eq!(err, Some(ProtocolError::LineTooLong { max: cap }));
        assert!(
            dec.capacity() <= cap + 1 + READ_CHUNK,
            "capacity {}",
            dec.capacity()
        );
    }

    #[test]
    fn classifies_messages() {
        let m = parse_message(br#"{"return": {}, "id": 7}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Message::Return {
                id: Some(Value::from(7)),
                value: serde_json::json!({})
            }
        );
        let m = parse_message(br#"{"return": null}"#).unwrap().unwrap();
        assert_eq!(
            m,
            Message::Return {
                id: None,
                value: Value::Null
            }
        );
        let m = parse_message(br#"{"error": {"class": "GenericError", "desc": "no"}, "id": 1}"#)
            .unwrap()
            .unwrap();
        assert!(
            matches!(m, Message::Error { class, desc, .. } if class == "GenericError" && desc == "no")
        );
        let m = parse_message(br#"{"error": 5}"#).unwrap().unwrap();
        assert!(matches!(m, Message::Error { desc, .. } if desc == "5"));
        let m =
            parse_message(br#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#)
                .unwrap()
                .unwrap();
        assert!(
            matches!(m, Message::Event { name, data: Value::Null, timestamp: Some(t) } if name == "STOP" && t.seconds == 1)
        );
        let m = parse_message(br#"{"QMP": {"version": {}}}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(m, Message::Greeting(_)));
        assert_eq!(
            parse_message(br#"{"x": 1}"#).unwrap(),
            Some(Message::Unrecognized)
        );
        assert_eq!(
            parse_message(br#"{"event": 5}"#).unwrap(),
            Some(Message::Unrecognized)
        );
        assert_eq!(parse_message(b"  \r").unwrap(), None);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            parse_message(b"{\"a\": \"\xff\"}"),
            Err(ProtocolError::InvalidUtf8 { valid_up_to: 7 })
        ));
        assert!(matches!(
            parse_message(b"{\"a\": "),
            Err(ProtocolError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_message(b"garbage"),
            Err(ProtocolError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_message(b"[1,2]"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_message(br#"{"id": 1, "id": 2, "return": {}}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_message(b"{} {}"),
            Err(ProtocolError::InvalidJson(_))
        ));
    }

    #[test]
    fn encodes_requests() {
        let b = encode_request("stop", None, 3).unwrap();
        assert_eq!(b, b"{\"execute\":\"stop\",\"id\":3}\n");
        let args = serde_json::json!({"id": "j\n1"});
        let b = encode_request("job-cancel", Some(&args), 4).unwrap();
        assert_eq!(b.iter().filter(|&&c| c == b'\n').count(), 1);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Arbitrary bytes, arbitrarily chunked: no panic, the buffer
            /// stays within the cap, and every line returned is within it.
            #[test]
            fn arbitrary_bytes_never_panic(
                data in proptest::collection::vec(any::<u8>(), 0..4096),
                chunks in proptest::collection::vec(1usize..300, 1..50),
                max_line in 1usize..200,
            ) {
                let mut dec = LineDecoder::new(max_line);
                let mut rest = &data[..];
                let mut ci = 0;
                'outer: loop {
                    loop {
                        match dec.next_line() {
                            Ok(Some(line)) => {
                                prop_assert!(line.len() <= max_line);
                                let _ = parse_message(line);
                            }
                            Ok(None) => break,
                            Err(_) => break 'outer,
                        }
                    }
                    if rest.is_empty() { break; }
                    let c = chunks[ci % chunks.len()].min(rest.len());
                    ci += 1;
                    let n = dec.feed(&rest[..c]);
                    rest = &rest[n..];
                    prop_assert!(dec.buffered() <= max_line + 1);
                }
            }

            /// JSON-ish garbage reaches the parser's deeper paths.
            #[test]
            fn arbitrary_jsonish_never_panics(s in r#"[{}\[\]":,a-z0-9 \\nul\-.eE+]{0,200}"#) {
                let _ = parse_message(s.as_bytes());
            }

            /// Valid messages survive any chunking intact.
            #[test]
            fn valid_stream_roundtrips(
                ids in proptest::collection::vec(any::<u32>(), 1..50),
                chunk in 1usize..97,
            ) {
                let mut data = Vec::new();
                for id in &ids {
                    data.extend_from_slice(format!("{{\"return\": {{}}, \"id\": {id}}}\r\n").as_bytes());
                }
                let mut dec = LineDecoder::new(1000);
                let mut got = Vec::new();
                let mut rest = &data[..];
                loop {
                    while let Some(line) = dec.next_line().map_err(|e| TestCaseError::fail(e.to_string()))? {
                        if let Some(Message::Return { id: Some(id), .. }) = parse_message(line).map_err(|e| TestCaseError::fail(e.to_string()))? {
                            got.push(id.as_u64().unwrap_or(u64::MAX) as u32);
                        }
                    }
                    if rest.is_empty() { break; }
                    let n = dec.feed(&rest[..chunk.min(rest.len())]);
                    rest = &rest[n..];
                }
                prop_assert_eq!(got, ids);
            }
        }
    }
}
