//! The control socket (`-sim-control PATH`): one line in, one line out,
//! so a test can inject faults at run time with nothing but a UNIX socket.
//! Clients are served one after the other.

use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::faults::{self, FloodSpec};
use crate::sim::Sim;

/// Longest accepted command line.
const MAX_LINE: usize = 64 * 1024;
/// Bounds of `garbage` and `huge` so a typo cannot exhaust the machine.
const MAX_GARBAGE: usize = 16 << 20;
const MAX_HUGE_MIB: u64 = 4096;

pub(crate) async fn serve(sim: Rc<Sim>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => session(&sim, s).await,
            Err(e) => {
                eprintln!("qemu-sim: accept on control socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn session(sim: &Rc<Sim>, mut s: UnixStream) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        while let Some(p) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=p).collect();
            let line = String::from_utf8_lossy(&line[..p]);
            let (answer, exit) = command(sim, line.trim());
            if s.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                return;
            }
            if let Some(code) = exit {
                let _ = s.flush().await;
                sim.exit_now(code, false);
            }
        }
        if buf.len() > MAX_LINE {
            let _ = s.write_all(b"err line too long\n").await;
            return;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Splits off the first word: `("word", "rest of the line")`.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (s, ""),
    }
}

fn on_off(v: Option<&str>) -> Result<bool, String> {
    match v {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        _ => Err("expected on|off".into()),
    }
}

fn num<T: std::str::FromStr>(v: Option<&str>, what: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}"))
}

/// Runs one control command; returns the answer and, for `exit`, the
/// status to exit with once the answer is sent.
pub(crate) fn command(sim: &Rc<Sim>, line: &str) -> (String, Option<i32>) {
    match run(sim, line) {
        Ok(Reply::Text(t)) => (t, None),
        Ok(Reply::Exit(c)) => ("ok".into(), Some(c)),
        Err(e) => (format!("err {e}"), None),
    }
}

enum Reply {
    Text(String),
    Exit(i32),
}

fn ok() -> Result<Reply, String> {
    Ok(Reply::Text("ok".into()))
}

fn run(sim: &Rc<Sim>, line: &str) -> Result<Reply, String> {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Err("empty command".into());
    };
    match cmd {
        "ping" => Ok(Reply::Text("ok pong".into())),
        "flood" => {
            let name = words
                .next()
                .ok_or("usage: flood NAME RATE [SECONDS] | flood off")?;
            if name == "off" {
                faults::stop_flood(sim);
                return ok();
            }
            let rate = words.next().ok_or("usage: flood NAME RATE [SECONDS]")?;
            let spec = FloodSpec::new(name, rate, words.next())?;
            faults::start_flood(sim, spec);
            ok()
        }
        "hang" => {
            sim.faults.set_hang(on_off(words.next())?);
            ok()
        }
        "slow" => {
            sim.faults.slow_ms.set(num(words.next(), "milliseconds")?);
            ok()
        }
        "wrong-ids" => {
            sim.faults.wrong_ids.set(on_off(words.next())?);
            ok()
        }
        "ignore-unplug" => {
            sim.faults.ignore_unplug.set(on_off(words.next())?);
            ok()
        }
        "stall-migration" => {
            sim.faults.stall_migration.set(on_off(words.next())?);
            ok()
        }
        "release" => {
            let id = words.next().ok_or("usage: release ID")?;
            crate::qmp::release_device(sim, id)
                .map(|()| Reply::Text("ok".into()))
                .map_err(|e| e.desc)
        }
        "devices" => {
            let vm = sim.vm.borrow();
            let v = serde_json::json!({"devices": vm.devices, "nodes": vm.nodes, "objects": vm.objects});
            Ok(Reply::Text(format!("ok {v}")))
        }
        "garbage" => {
            let n: usize = match words.next() {
                None => 64,
                v => num(v, "byte count")?,
            };
            if n == 0 || n > MAX_GARBAGE {
                return Err(format!("byte count must be 1..={MAX_GARBAGE}"));
            }
            let g = faults::garbage(n);
            for out in sim.outboxes.iter().filter(|o| o.connected()) {
                out.push(&g);
            }
            ok()
        }
        "huge" => {
            let mib: u64 = num(words.next(), "MiB")?;
            if mib == 0 || mib > MAX_HUGE_MIB {
                return Err(format!("MiB must be 1..={MAX_HUGE_MIB}"));
            }
            for out in sim.outboxes.iter().filter(|o| o.connected()) {
                faults::push_huge(out, mib);
            }
            ok()
        }
        "event" => {
            // The JSON is the rest of the line, spaces included.
            let (name, rest) = split_word(split_word(line).1);
            if name.is_empty() {
                return Err("usage: event NAME [JSON]".into());
            }
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!("bad event name '{name}'"));
            }
            if rest.is_empty() {
                sim.emit(name, None);
            } else {
                let v: serde_json::Value =
                    serde_json::from_str(rest).map_err(|e| format!("bad JSON: {e}"))?;
                sim.emit_value(name, &v);
            }
            ok()
        }
        "exit" => {
            let code: i32 = match words.next() {
                None => 1,
                v => num(v, "exit code")?,
            };
            Ok(Reply::Exit(code))
        }
        "stats" => {
            let st = &sim.stats;
            let v = serde_json::json!({
                "events_sent": st.events_sent.get(),
                "events_skipped": st.events_skipped.get(),
                "commands": st.commands.get(),
                "state": sim.vm.borrow().run.as_str(),
                "flood": faults::flood_running(sim),
            });
            Ok(Reply::Text(format!("ok {v}")))
        }
        _ => Err(format!("unknown command '{cmd}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::split_word;

    #[test]
    fn words() {
        assert_eq!(
            split_word("event ev {\"a\": 1}"),
            ("event", "ev {\"a\": 1}")
        );
        assert_eq!(
            split_word(split_word("event ev  {\"a\": 1} ").1),
            ("ev", "{\"a\": 1}")
        );
        assert_eq!(split_word("ping"), ("ping", ""));
        assert_eq!(split_word(""), ("", ""));
    }
}
