//! A QMP monitor: accepts one client at a time on its listening socket
//! (the next after the previous closes, so a restarted manager can
//! reconnect), reads commands, queues replies and events.
//!
//! Reading and writing run concurrently on one task: the reader parses and
//! executes commands in order; the writer drains the [`Outbox`]. The reader
//! stops reading while the queue is over its bound, so a client that does
//! not read cannot make the simulator grow. Input is parsed as a JSON
//! stream, like QEMU's parser: objects need not end at newlines.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::{Map, Value};
use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};

use crate::faults::garbage;
use crate::output::{CAP, Chunk, Outbox, to_json, write_json_str};
use crate::qmp::{self, Args, QmpError};
use crate::sim::Sim;

pub(crate) const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"qemu-sim\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// Bound of one unparsed input value; QEMU's own limit is larger, but a
/// manager never sends commands near this size.
const MAX_INPUT: usize = 1 << 20;
/// Descriptors kept per connection until getfd claims them.
const MAX_FDS: usize = 16;

/// Serves successive clients of one monitor socket forever.
pub(crate) async fn serve(sim: Rc<Sim>, listener: UnixListener, out: Rc<Outbox>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if sim.exiting() {
                    return;
                }
                connection(&sim, &out, stream).await;
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("qemu-sim: accept on monitor failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(sim: &Rc<Sim>, out: &Rc<Outbox>, stream: UnixStream) {
    out.connect();
    out.push(GREETING);
    if sim.cfg.sim.garbage {
        out.push(&garbage(64));
    }
    let mut fds = Vec::new();
    tokio::select! {
        _ = reader(sim, out, &stream, &mut fds) => {}
        _ = writer(out, &stream) => {}
    }
    out.disconnect();
}

/// `recvmsg` that keeps descriptors passed with SCM_RIGHTS.
fn recv_with_fds(fd: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let n = msg.bytes;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(v) = c {
                for f in v {
                    // SAFETY: the kernel just installed this descriptor for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    if fds.len() < MAX_FDS {
                        fds.push(owned);
                    }
                }
            }
        }
    }
    Ok(n)
}

async fn reader(
    sim: &Rc<Sim>,
    out: &Outbox,
    stream: &UnixStream,
    fds: &mut Vec<OwnedFd>,
) -> io::Result<()> {
    let mut negotiated = false;
    let mut buf: Vec<u8> = Vec::new();
    let mut skip_line = false;
    let mut chunk = [0u8; 4096];
    loop {
        // Backpressure: a client that does not read gets no more replies
        // queued (QEMU stops reading its monitor in that case too).
        while out.len() >= CAP {
            let _ = tokio::time::timeout(Duration::from_millis(20), out.drained.notified()).await;
        }
        stream.readable().await?;
        let raw = stream.as_raw_fd();
        let n = match stream.try_io(Interest::READABLE, || recv_with_fds(raw, &mut chunk, fds)) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut data = &chunk[..n];
        if skip_line {
            match data.iter().position(|b| *b == b'\n') {
                Some(p) => {
                    data = &data[p + 1..];
                    skip_line = false;
                }
                None => continue,
            }
        }
        buf.extend_from_slice(data);
        loop {
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            match it.next() {
                None => {
                    buf.clear();
                    break;
                }
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    buf.drain(..used);
                    handle(sim, out, &mut negotiated, fds, v).await;
                    if sim.exiting() {
                        // After quit QEMU reads no more; the writer flushes.
                        std::future::pending::<()>().await;
                    }
                }
                Some(Err(e)) if e.is_eof() => {
                    if buf.len() > MAX_INPUT {
                        reply(
                            sim,
                            out,
                            None,
                            Err(QmpError::generic("JSON parse error, input too large")),
                        );
                        buf.clear();
                        skip_line = true;
                    }
                    break;
                }
                Some(Err(e)) => {
                    reply(
                        sim,
                        out,
                        None,
                        Err(QmpError::generic(format!("JSON parse error, {e}"))),
                    );
                    // Resynchronise at the next line.
                    match buf.iter().position(|b| *b == b'\n') {
                        Some(p) => {
                            buf.drain(..=p);
                        }
                        None => {
                            buf.clear();
                            skip_line = true;
                        }
                    }
                }
            }
        }
        if buf.is_empty() && buf.capacity() > 4096 {
            buf = Vec::new();
        }
    }
}

/// A parsed command: name, arguments and id.
struct Cmd {
    name: String,
    args: Option<Map<String, Value>>,
    id: Option<Value>,
    oob: bool,
}

/// Checks the QMP envelope exactly as QEMU's dispatcher does.
fn envelope(v: Value) -> Result<Cmd, (Option<Value>, QmpError)> {
    let Value::Object(mut m) = v else {
        return Err((None, QmpError::generic("QMP input must be a JSON object")));
    };
    let id = m.remove("id");
    let mut name = None;
    let mut oob = false;
    let mut args = None;
    for (k, v) in m {
        match k.as_str() {
            "execute" | "exec-oob" => match v {
                Value::String(s) => {
                    oob = k == "exec-oob";
                    name = Some(s);
                }
                _ => {
                    return Err((
                        id,
                        QmpError::generic(format!("QMP input member '{k}' must be a string")),
                    ));
                }
            },
            "arguments" => match v {
                Value::Object(a) => args = Some(a),
                _ => {
                    return Err((
                        id,
                        QmpError::generic("QMP input member 'arguments' must be an object"),
                    ));
                }
            },
            "control" => {}
            _ => {
                return Err((
                    id,
                    QmpError::generic(format!("QMP input member '{k}' is unexpected")),
                ));
            }
        }
    }
    let Some(name) = name else {
        return Err((id, QmpError::generic("QMP input lacks member 'execute'")));
    };
    Ok(Cmd {
        name,
        args,
        id,
        oob,
    })
}

async fn handle(
    sim: &Rc<Sim>,
    out: &Outbox,
    negotiated: &mut bool,
    fds: &mut Vec<OwnedFd>,
    v: Value,
) {
    sim.stats.commands.set(sim.stats.commands.get() + 1);
    let cmd = match envelope(v) {
        Ok(c) => c,
        Err((id, e)) => return reply(sim, out, id.as_ref(), Err(e)),
    };
    let args = Args(cmd.args.as_ref());
    if cmd.oob {
        let e = QmpError::generic(format!("The command {} does not support OOB", cmd.name));
        return reply(sim, out, cmd.id.as_ref(), Err(e));
    }
    if !*negotiated {
        let r = if cmd.name == "qmp_capabilities" {
            args.only(&["enable"]).map(|_| serde_json::json!({}))
        } else {
            Err(QmpError {
                class: "CommandNotFound",
                desc: "Expecting capabilities negotiation with 'qmp_capabilities'".into(),
            })
        };
        let ok = r.is_ok();
        reply(sim, out, cmd.id.as_ref(), r);
        if ok {
            *negotiated = true;
            out.set_events_on(true);
            if let Some(mib) = sim.cfg.sim.huge_mib {
                crate::faults::push_huge(out, mib);
            }
        }
        return;
    }
    if cmd.name == "qmp_capabilities" {
        let e = QmpError {
            class: "CommandNotFound",
            desc: "Capabilities negotiation is already complete, command ignored".into(),
        };
        return reply(sim, out, cmd.id.as_ref(), Err(e));
    }
    wait_unhung(sim).await;
    let slow = sim.faults.slow_ms.get();
    if slow > 0 {
        tokio::time::sleep(Duration::from_millis(slow)).await;
    }
    let r = qmp::execute(sim, &cmd.name, args, fds);
    reply(sim, out, cmd.id.as_ref(), r);
}

/// `hang`: commands stay unanswered (and unread) until `hang off`.
async fn wait_unhung(sim: &Sim) {
    loop {
        let notified = sim.faults.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !sim.faults.hang.get() {
            return;
        }
        notified.await;
    }
}

/// The id a `-sim-wrong-ids` monitor answers with instead of `id`.
fn wrong_id(id: Option<&Value>) -> Value {
    match id {
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            Value::from(n.as_u64().unwrap_or_default().wrapping_add(1_000_000))
        }
        Some(Value::String(s)) => Value::String(format!("{s}-wrong")),
        _ => Value::String("qemu-sim-wrong-id".into()),
    }
}

fn reply(sim: &Sim, out: &Outbox, id: Option<&Value>, r: Result<Value, QmpError>) {
    let wrong;
    let id = if sim.faults.wrong_ids.get() {
        wrong = wrong_id(id);
        Some(&wrong)
    } else {
        id
    };
    let mut s = String::with_capacity(64);
    match r {
        Ok(v) => {
            s.push_str("{\"return\": ");
            s.push_str(&to_json(&v));
            if let Some(id) = id {
                s.push_str(", \"id\": ");
                s.push_str(&to_json(id));
            }
            s.push_str("}\r\n");
        }
        Err(e) => {
            s.push('{');
            if let Some(id) = id {
                s.push_str("\"id\": ");
                s.push_str(&to_json(id));
                s.push_str(", ");
            }
            s.push_str("\"error\": {\"class\": ");
            write_json_str(&mut s, e.class);
            s.push_str(", \"desc\": ");
            write_json_str(&mut s, &e.desc);
            s.push_str("}}\r\n");
        }
    }
    out.push(s.as_bytes());
}

async fn write_all(s: &UnixStream, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        s.writable().await?;
        match s.try_write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Filler of huge lines, in read-only memory.
static FILL: [u8; 4096] = [b'x'; 4096];

async fn writer(out: &Outbox, stream: &UnixStream) -> io::Result<()> {
    loop {
        match out.pop() {
            Some(Chunk::Data(v)) => {
                write_all(stream, &v).await?;
                out.written(v.len());
            }
            Some(Chunk::Fill(n)) => {
                let mut left = n;
                while left > 0 {
                    let k = left.min(FILL.len());
                    write_all(stream, &FILL[..k]).await?;
                    out.written(k);
                    left -= k;
                }
            }
            None => {
                out.trim();
                out.wake.notified().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_errors_match_qemu() {
        let e = |v: Value| envelope(v).err().map(|(_, e)| e.desc);
        assert_eq!(
            e(json!([1])).as_deref(),
            Some("QMP input must be a JSON object")
        );
        assert_eq!(
            e(json!({"foo": 1})).as_deref(),
            Some("QMP input member 'foo' is unexpected")
        );
        assert_eq!(
            e(json!({"execute": 1})).as_deref(),
            Some("QMP input member 'execute' must be a string")
        );
        assert_eq!(
            e(json!({})).as_deref(),
            Some("QMP input lacks member 'execute'")
        );
        let c = envelope(json!({"execute": "x", "id": {"a": 1}}))
            .ok()
            .unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.id, Some(json!({"a": 1})));
    }

    #[test]
    fn wrong_ids() {
        assert_eq!(wrong_id(Some(&json!(1))), json!(1_000_001));
        assert_eq!(wrong_id(Some(&json!("a"))), json!("a-wrong"));
        assert_eq!(wrong_id(None), json!("qemu-sim-wrong-id"));
    }
}
