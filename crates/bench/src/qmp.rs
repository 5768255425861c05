//! Control sockets of the fault injectors (qemu-sim's `-sim-control`,
//! the anchors' qmp-proxy.py) and a minimal QMP client for a second
//! monitor of our own on the VM (to make QEMU raise real events).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

use crate::client::{Res, es};
use crate::util::now_ns;

/// One command on a line-oriented control socket; returns the reply line.
pub(crate) async fn ctl(path: &Path, cmd: &str) -> Res<String> {
    let fut = async {
        let s = UnixStream::connect(path)
            .await
            .map_err(|e| format!("connect {}: {e}", path.display()))?;
        let (r, mut w) = s.into_split();
        w.write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(es)?;
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).await.map_err(es)?;
        Ok::<_, String>(line.trim().to_owned())
    };
    timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| format!("control socket {} did not answer", path.display()))?
}

/// qemu-sim control command; errors unless the reply starts with `ok`.
pub(crate) async fn sim(path: &Path, cmd: &str) -> Res<String> {
    let r = ctl(path, cmd).await?;
    if r.starts_with("ok") {
        Ok(r)
    } else {
        Err(format!("sim {cmd}: {r}"))
    }
}

/// qmp-proxy.py control command; returns its JSON reply.
pub(crate) async fn proxy(path: &Path, cmd: &str) -> Res<Value> {
    let r = ctl(path, cmd).await?;
    let v: Value = serde_json::from_str(&r).map_err(es)?;
    if v["ok"] == Value::Bool(true) {
        Ok(v)
    } else {
        Err(format!("proxy {cmd}: {r}"))
    }
}

/// Waits until a control socket answers `ping`.
pub(crate) async fn wait_ctl(path: &Path, t: Duration) -> Res<()> {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        if ctl(path, "ping").await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("control socket {} never answered", path.display()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A QMP connection of our own to a QEMU monitor (`-qmp unix:PATH,...`).
pub(crate) struct Qmp {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Qmp {
    pub(crate) async fn connect(path: &Path, t: Duration) -> Res<Qmp> {
        let deadline = tokio::time::Instant::now() + t;
        let s = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(format!("connect {}: {e}", path.display()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (r, w) = s.into_split();
        let mut q = Qmp {
            r: BufReader::new(r),
            w,
        };
        q.read_msg().await?; // greeting
        q.w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .await
            .map_err(es)?;
        loop {
            let m = q.read_msg().await?;
            if m.get("return").is_some() {
                break;
            }
        }
        Ok(q)
    }

    async fn read_msg(&mut self) -> Res<Value> {
        let mut line = String::new();
        let n = timeout(Duration::from_secs(10), self.r.read_line(&mut line))
            .await
            .map_err(|_| "QMP read timed out".to_string())?
            .map_err(es)?;
        if n == 0 {
            return Err("QMP closed".into());
        }
        serde_json::from_str(&line).map_err(es)
    }

    /// Sends `cmd` and waits for event `ev`; returns (time sent, time the
    /// event was read), monotonic ns.
    pub(crate) async fn exec_until_event(&mut self, cmd: &str, ev: &str) -> Res<(u64, u64)> {
        let t0 = now_ns();
        self.w
            .write_all(format!("{{\"execute\":\"{cmd}\"}}\n").as_bytes())
            .await
            .map_err(es)?;
        loop {
            let m = self.read_msg().await?;
            if m.get("event").and_then(Value::as_str) == Some(ev) {
                return Ok((t0, now_ns()));
            }
        }
    }

    /// query-status → "running" / "paused" / ...
    pub(crate) async fn status(&mut self) -> Res<String> {
        self.w
            .write_all(b"{\"execute\":\"query-status\"}\n")
            .await
            .map_err(es)?;
        loop {
            let m = self.read_msg().await?;
            if let Some(r) = m.get("return") {
                return Ok(r["status"].as_str().unwrap_or("").to_owned());
            }
        }
    }
}
