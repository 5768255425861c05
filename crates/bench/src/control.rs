//! The fault injectors' control sockets (qemu-sim's `-sim-control`, the
//! libvirt harness's `qmp-proxy.py`) and a minimal QMP client for a second
//! monitor of our own on a VM (to make QEMU raise real events).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout};

use crate::error::{BenchError, BenchResult};

/// Deadline of one exchange on a control socket or our QMP monitor.
const EXCHANGE: Duration = Duration::from_secs(10);

/// One command on a line-oriented control socket; returns the answer.
async fn send_line(path: &Path, command: &str) -> BenchResult<String> {
    let (path, command) = (path.to_path_buf(), command.to_owned());
    let answer = tokio::task::spawn_blocking(move || {
        testkit::control::send(&path, &command, Duration::from_secs(5))
    })
    .await??;
    Ok(answer)
}

/// The fault injector of one VM: qemu-sim's control socket, or the
/// harness's QMP proxy in front of real QEMU.
#[derive(Debug, Clone)]
pub(crate) enum Injector {
    Sim(PathBuf),
    Proxy(PathBuf),
}

/// qemu-sim's `stats` answer (the fields the bench reads).
#[derive(Deserialize)]
struct SimStats {
    events_sent: u64,
}

/// qmp-proxy.py's JSON answer.
#[derive(Deserialize)]
struct ProxyAnswer {
    ok: bool,
    #[serde(default)]
    stats: Option<ProxyStats>,
}

#[derive(Deserialize)]
struct ProxyStats {
    injected_total: u64,
}

impl Injector {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Injector::Sim(path) | Injector::Proxy(path) => path,
        }
    }

    /// qemu-sim: its answer after `ok`, or the refusal.
    async fn sim(path: &Path, command: &str) -> BenchResult<String> {
        let answer = send_line(path, command).await?;
        match answer.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(BenchError::Refused {
                what: format!("qemu-sim {command}"),
                answer,
            }),
        }
    }

    /// qmp-proxy.py: its JSON answer, unless it says `ok: false`.
    async fn proxy(path: &Path, command: &str) -> BenchResult<ProxyAnswer> {
        let line = send_line(path, command).await?;
        let answer: ProxyAnswer =
            serde_json::from_str(&line).map_err(BenchError::json(format!("proxy {command}")))?;
        if answer.ok {
            Ok(answer)
        } else {
            Err(BenchError::Refused {
                what: format!("proxy {command}"),
                answer: line,
            })
        }
    }

    /// Sends `event` at `rate` per second for `secs`.
    pub(crate) async fn flood(&self, event: &str, rate: u64, secs: f64) -> BenchResult<()> {
        let command = format!("flood {event} {rate} {secs}");
        match self {
            Injector::Sim(path) => Self::sim(path, &command).await.map(drop),
            Injector::Proxy(path) => Self::proxy(path, &command).await.map(drop),
        }
    }

    pub(crate) async fn stop_flood(&self) -> BenchResult<()> {
        match self {
            Injector::Sim(path) => Self::sim(path, "flood off").await.map(drop),
            Injector::Proxy(path) => Self::proxy(path, "stop").await.map(drop),
        }
    }

    /// Events delivered to the daemon so far.
    pub(crate) async fn sent(&self) -> BenchResult<u64> {
        match self {
            Injector::Sim(path) => {
                let json = Self::sim(path, "stats").await?;
                let stats: SimStats =
                    serde_json::from_str(&json).map_err(BenchError::json("qemu-sim stats"))?;
                Ok(stats.events_sent)
            }
            Injector::Proxy(path) => {
                let answer = Self::proxy(path, "stats").await?;
                Ok(answer.stats.map_or(0, |stats| stats.injected_total))
            }
        }
    }

    /// Makes the monitor stop answering (`on`) or answer again.
    pub(crate) async fn hang(&self, on: bool) -> BenchResult<()> {
        let switch = if on { "on" } else { "off" };
        match self {
            Injector::Sim(path) => Self::sim(path, &format!("hang {switch}")).await.map(drop),
            Injector::Proxy(path) => Self::proxy(path, &format!("swallow {switch}"))
                .await
                .map(drop),
        }
    }

    /// qemu-sim: raises one QMP event (`STOP`, `RESUME`, ...).
    pub(crate) async fn raise_event(&self, event: &str) -> BenchResult<()> {
        match self {
            Injector::Sim(path) => Self::sim(path, &format!("event {event}")).await.map(drop),
            Injector::Proxy(_) => Err(BenchError::Unsupported(
                "the QMP proxy raises no single events",
            )),
        }
    }

    /// Polls until the control socket answers `ping`.
    pub(crate) async fn wait_ready(&self, limit: Duration) -> BenchResult<()> {
        let deadline = Instant::now() + limit;
        while send_line(self.path(), "ping").await.is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: format!("control socket {}", self.path().display()),
                    after: limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// A line from QEMU's monitor (the fields the bench reads).
#[derive(Deserialize)]
struct QmpLine {
    #[serde(default)]
    event: Option<String>,
    #[serde(default, rename = "return")]
    returned: Option<QmpReturn>,
}

#[derive(Deserialize)]
struct QmpReturn {
    #[serde(default)]
    status: Option<String>,
}

/// A QMP connection of our own to a QEMU monitor (`-qmp unix:PATH,...`).
pub(crate) struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects (polling until QEMU created the socket, up to `limit`),
    /// reads the greeting and negotiates capabilities.
    pub(crate) async fn connect(path: &Path, limit: Duration) -> BenchResult<Qmp> {
        let deadline = Instant::now() + limit;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    return Err(BenchError::io(format!("connect {}", path.display()))(error));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (reader, writer) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(reader),
            writer,
        };
        qmp.read_line().await?;
        qmp.send("qmp_capabilities").await?;
        while qmp.read_line().await?.returned.is_none() {}
        Ok(qmp)
    }

    async fn send(&mut self, command: &str) -> BenchResult<()> {
        self.writer
            .write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())
            .await
            .map_err(BenchError::io(format!("QMP {command}")))
    }

    async fn read_line(&mut self) -> BenchResult<QmpLine> {
        let mut line = String::new();
        let read = timeout(EXCHANGE, self.reader.read_line(&mut line))
            .await
            .map_err(|_| BenchError::Timeout {
                what: "QMP read".into(),
                after: EXCHANGE,
            })?
            .map_err(BenchError::io("QMP read"))?;
        if read == 0 {
            return Err(BenchError::Unsupported("QEMU closed our QMP monitor"));
        }
        serde_json::from_str(&line).map_err(BenchError::json("QMP line"))
    }

    /// Sends `command` and waits for event `event`; returns when the
    /// command was sent and when the event was read.
    pub(crate) async fn exec_until_event(
        &mut self,
        command: &str,
        event: &str,
    ) -> BenchResult<(Instant, Instant)> {
        let sent = Instant::now();
        self.send(command).await?;
        loop {
            let line = self.read_line().await?;
            if line.event.as_deref() == Some(event) {
                return Ok((sent, Instant::now()));
            }
        }
    }

    /// `query-status`: whether the guest runs.
    pub(crate) async fn running(&mut self) -> BenchResult<bool> {
        self.send("query-status").await?;
        loop {
            if let Some(returned) = self.read_line().await?.returned {
                return Ok(returned.status.as_deref() == Some("running"));
            }
        }
    }
}
