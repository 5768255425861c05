//! Connecting to a QEMU monitor.
//!
//! QEMU creates its QMP socket some time after exec; we poll for it with a
//! deadline and give up early if the process dies (then the log tells why).
//! Commands and replies are typed by the `qmp` crate, whose types are
//! lenient (unknown values, absent members): a hostile QEMU's odd reply
//! becomes an error or a default, not a crash.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::process::Process;
use crate::{Error, Result};

/// qmp client settings derived from the driver's.
pub(crate) fn qmp_config(monitor_timeout: Duration, events: &qmp::EventLimits) -> qmp::Config {
    qmp::Config {
        command_timeout: monitor_timeout,
        greeting_timeout: monitor_timeout,
        events: *events,
        ..qmp::Config::default()
    }
}

/// Polls for `path` until QEMU listens, then negotiates capabilities.
pub(crate) async fn connect(
    path: &Path,
    cfg: &qmp::Config,
    process: &Process,
    timeout: Duration,
    log: Option<&Path>,
) -> Result<(qmp::Monitor, qmp::Events)> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(2);
    loop {
        if process.has_exited() {
            return Err(exited_at_startup(process, log));
        }
        if path.exists() {
            match qmp::Monitor::connect(path, cfg.clone()).await {
                Ok(pair) => return Ok(pair),
                // Socket file exists but QEMU does not listen yet (or a stale
                // file from a crashed run): retry until the deadline.
                Err(qmp::QmpError::Connect { .. }) => {}
                Err(e) => return Err(handshake_failed(process, log, &e).await),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::MonitorTimeout {
                command: "connect".into(),
                after: timeout,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// How long a failed handshake waits for QEMU to exit before it reports
/// the handshake's own error.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// QEMU is gone before it greeted: its own reason, from its log.
fn exited_at_startup(process: &Process, log: Option<&Path>) -> Error {
    process.reap();
    Error::Qemu(format!(
        "QEMU exited during startup{}",
        log.map(log_tail).unwrap_or_default()
    ))
}

/// The monitor closed (or garbled) its greeting. When QEMU inherited a
/// socket that was already listening, the kernel accepted our connection
/// before QEMU ran at all, so a QEMU that refuses its command line shows
/// up here as a closed monitor: wait (bounded) for it to exit and report
/// its own reason rather than the closed socket.
async fn handshake_failed(process: &Process, log: Option<&Path>, e: &qmp::QmpError) -> Error {
    if tokio::time::timeout(EXIT_WAIT, process.exited())
        .await
        .is_ok()
    {
        return exited_at_startup(process, log);
    }
    Error::Qemu(format!("monitor handshake failed: {e}"))
}

/// The last lines QEMU itself printed during its last start (after the
/// driver's `--- starting domain` header), for error messages: a start
/// failure carries QEMU's own reason ("Could not open ..."), not our argv.
pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(text) = std::fs::read(path) else {
        return String::new();
    };
    let start = text.len().saturating_sub(8192);
    let tail = String::from_utf8_lossy(&text[start..]);
    let own = match tail.rfind("--- starting domain") {
        Some(i) => tail[i..].split_once('\n').map_or("", |(_, rest)| rest),
        None => &tail,
    };
    let lines: Vec<&str> = own.lines().filter(|l| !l.trim().is_empty()).collect();
    let lines = &lines[lines.len().saturating_sub(5)..];
    if lines.is_empty() {
        return String::new();
    }
    format!(": {}", lines.join(" | "))
}
