//! Outgoing and incoming migration.
//!
//! The migration stream is a small file: a header line and the simulator's
//! state as JSON, so a save/restore or a sim-to-sim migration round-trips
//! without pretending to move guest RAM. Timing and events follow QEMU:
//! MIGRATION events only once the `events` capability is on (as in QEMU;
//! libvirt always sets it), setup → active over `-sim-job-ms`, then STOP (if
//! running), finish-migrate, completed, postmigrate.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::qmp::{Args, QmpError};
use crate::sim::Sim;
use crate::state::RunState;

pub(crate) const MAGIC: &str = "QEMU-SIM-MIGRATION 1";
/// An incoming stream larger than this is not ours.
const MAX_STREAM: u64 = 16 << 20;

pub(crate) struct Migration {
    pub status: &'static str,
    incoming: bool,
    started: Instant,
    total_ms: Option<u64>,
    serial: u64,
}

/// Capabilities QEMU 7.2 knows.
const CAPS: &[&str] = &[
    "xbzrle",
    "rdma-pin-all",
    "auto-converge",
    "zero-blocks",
    "compress",
    "events",
    "postcopy-ram",
    "x-colo",
    "release-ram",
    "block",
    "return-path",
    "pause-before-switchover",
    "multifd",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "x-ignore-shared",
    "validate-uuid",
    "background-snapshot",
    "zero-copy-send",
    "postcopy-preempt",
];

enum Channel {
    Exec(String),
    File(PathBuf),
    Fd(OwnedFd),
    Unix(PathBuf),
    Tcp(String),
}

fn in_progress(sim: &Sim) -> bool {
    sim.vm
        .borrow()
        .migration
        .as_ref()
        .is_some_and(|m| matches!(m.status, "setup" | "active" | "cancelling"))
}

fn set_status(sim: &Sim, serial: u64, status: &'static str) -> bool {
    let events = {
        let mut vm = sim.vm.borrow_mut();
        let Some(m) = vm.migration.as_mut().filter(|m| m.serial == serial) else {
            return false;
        };
        m.status = status;
        if matches!(status, "completed" | "failed" | "cancelled") {
            m.total_ms = Some(m.started.elapsed().as_millis() as u64);
        }
        vm.mig_caps.get("events").copied().unwrap_or(false)
    };
    if events {
        sim.emit_value("MIGRATION", &json!({"status": status}));
    }
    true
}

fn current(sim: &Sim, serial: u64) -> bool {
    sim.vm
        .borrow()
        .migration
        .as_ref()
        .is_some_and(|m| m.serial == serial)
}

fn new_migration(sim: &Sim, incoming: bool) -> u64 {
    let mut vm = sim.vm.borrow_mut();
    let serial = vm.migration.as_ref().map_or(1, |m| m.serial + 1);
    vm.migration = Some(Migration {
        status: "none",
        incoming,
        started: Instant::now(),
        total_ms: None,
        serial,
    });
    serial
}

/// Resolves `fd:X`: a name registered with getfd, or (for `-incoming`) a
/// number inherited from the parent.
fn take_fd(sim: &Sim, name: &str, allow_number: bool) -> Result<OwnedFd, QmpError> {
    if let Some(fd) = sim.vm.borrow_mut().fds.remove(name) {
        return Ok(fd);
    }
    if allow_number && let Ok(n) = name.parse::<RawFd>() {
        // SAFETY: fcntl only queries the descriptor; a closed one fails.
        if n > 2 && unsafe { libc::fcntl(n, libc::F_GETFD) } >= 0 {
            // SAFETY: the descriptor is open and was handed to us (on the
            // command line) to own.
            return Ok(unsafe { OwnedFd::from_raw_fd(n) });
        }
    }
    Err(QmpError::generic(format!(
        "File descriptor named '{name}' has not been found"
    )))
}

fn parse_uri(sim: &Sim, uri: &str, incoming: bool) -> Result<Channel, QmpError> {
    if let Some(c) = uri.strip_prefix("exec:") {
        Ok(Channel::Exec(c.to_string()))
    } else if let Some(p) = uri.strip_prefix("file:") {
        // QEMU 8.2's file: URI may carry ",offset=N": not simulated.
        Ok(Channel::File(PathBuf::from(p)))
    } else if let Some(n) = uri.strip_prefix("fd:") {
        Ok(Channel::Fd(take_fd(sim, n, incoming)?))
    } else if let Some(p) = uri.strip_prefix("unix:") {
        Ok(Channel::Unix(PathBuf::from(p)))
    } else if let Some(a) = uri.strip_prefix("tcp:") {
        Ok(Channel::Tcp(a.to_string()))
    } else {
        Err(QmpError::generic(format!(
            "unknown migration protocol: {uri}"
        )))
    }
}

fn payload(sim: &Sim, was_running: bool) -> Vec<u8> {
    let vm = sim.vm.borrow();
    let state = json!({
        "name": sim.cfg.name, "uuid": sim.cfg.uuid, "memory-mib": sim.cfg.mem_mib,
        "smp": sim.cfg.smp, "was-running": was_running, "devices": vm.devices,
    });
    format!("{MAGIC}\n{state}\n").into_bytes()
}

/// `migrate`.
pub(crate) fn migrate(sim: &Rc<Sim>, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["uri", "blk", "inc", "detach", "resume"])?;
    let uri = args.str("uri")?;
    if args.opt_bool("resume")?.unwrap_or(false) {
        return Err(QmpError::generic(
            "Cannot resume if there is no paused migration",
        ));
    }
    if in_progress(sim) {
        return Err(QmpError::generic("There's a migration process in progress"));
    }
    match sim.vm.borrow().run {
        RunState::InMigrate => {
            return Err(QmpError::generic(
                "Guest is waiting for an incoming migration",
            ));
        }
        RunState::Shutdown | RunState::FinishMigrate => {
            return Err(QmpError::generic(
                "Migration is not possible in the current state",
            ));
        }
        _ => {}
    }
    let ch = parse_uri(sim, uri, false)?;
    let serial = new_migration(sim, false);
    set_status(sim, serial, "setup");
    tokio::task::spawn_local(outgoing(Rc::clone(sim), serial, ch));
    Ok(json!({}))
}

async fn outgoing(sim: Rc<Sim>, serial: u64, ch: Channel) {
    tokio::task::yield_now().await;
    if !set_status(&sim, serial, "active") {
        return;
    }
    tokio::time::sleep(Duration::from_millis(sim.cfg.sim.job_ms)).await;
    // A stalled stream stays active until the fault is lifted (or the
    // migration is cancelled).
    let active = |sim: &Sim| {
        sim.vm
            .borrow()
            .migration
            .as_ref()
            .is_some_and(|m| m.serial == serial && m.status == "active")
    };
    while sim.faults.stall_migration.get() && active(&sim) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !current(&sim, serial)
        || sim
            .vm
            .borrow()
            .migration
            .as_ref()
            .is_some_and(|m| m.status != "active")
    {
        return;
    }
    let before = sim.vm.borrow().run;
    let was_running = before == RunState::Running;
    sim.vm.borrow_mut().run = RunState::FinishMigrate;
    if was_running {
        sim.emit("STOP", None);
    }
    let data = payload(&sim, was_running);
    let r = write_channel(ch, &data).await;
    let still = sim
        .vm
        .borrow()
        .migration
        .as_ref()
        .is_some_and(|m| m.serial == serial && m.status == "active");
    if r.is_ok() && still {
        set_status(&sim, serial, "completed");
        sim.vm.borrow_mut().run = RunState::PostMigrate;
        return;
    }
    if let Err(e) = &r {
        eprintln!("qemu-sim: migration failed: {e}");
        set_status(&sim, serial, "failed");
    }
    // Failed or cancelled while writing: the source keeps the guest.
    sim.vm.borrow_mut().run = before;
    if was_running {
        sim.emit("RESUME", None);
    }
}

/// `migrate_cancel`: a no-op unless a migration is under way.
pub(crate) fn cancel(sim: &Sim) {
    let serial = {
        let vm = sim.vm.borrow();
        match vm.migration.as_ref() {
            Some(m) if !m.incoming && matches!(m.status, "setup" | "active") => m.serial,
            _ => return,
        }
    };
    set_status(sim, serial, "cancelling");
    set_status(sim, serial, "cancelled");
}

/// Puts a descriptor in non-blocking mode so tokio can poll it.
fn set_nonblock(raw: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller owns.
    unsafe {
        let fl = libc::fcntl(raw, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

async fn write_channel(ch: Channel, data: &[u8]) -> std::io::Result<()> {
    match ch {
        Channel::File(p) => std::fs::write(p, data),
        Channel::Exec(cmd) => {
            let mut child = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(data).await?;
            }
            // QEMU does not look at the command's exit status either.
            child.wait().await?;
            Ok(())
        }
        Channel::Fd(fd) => write_fd(fd, data).await,
        Channel::Unix(p) => {
            let mut s = tokio::net::UnixStream::connect(p).await?;
            s.write_all(data).await?;
            s.shutdown().await
        }
        Channel::Tcp(a) => {
            let mut s = tokio::net::TcpStream::connect(a).await?;
            s.write_all(data).await?;
            s.shutdown().await
        }
    }
}

/// Registers `fd` with the reactor; regular files (which epoll refuses)
/// come back as `Err` and are then used blocking: they never block long.
fn register(fd: OwnedFd) -> Result<tokio::io::unix::AsyncFd<OwnedFd>, OwnedFd> {
    set_nonblock(fd.as_raw_fd());
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open
    // and the same for the AsyncFd's whole life.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().0)
}

async fn write_fd(fd: OwnedFd, data: &[u8]) -> std::io::Result<()> {
    match register(fd) {
        Ok(afd) => {
            let mut off = 0;
            while off < data.len() {
                let mut g = afd.writable().await?;
                match g
                    .try_io(|a| nix::unistd::write(a.get_ref(), &data[off..]).map_err(Into::into))
                {
                    Ok(Ok(n)) => off += n,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => continue,
                }
            }
            Ok(())
        }
        Err(fd) => std::fs::File::from(fd).write_all(data),
    }
}

async fn read_fd(fd: OwnedFd) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match register(fd) {
        Ok(afd) => {
            let mut buf = [0u8; 4096];
            loop {
                let mut g = afd.readable().await?;
                match g.try_io(|a| nix::unistd::read(a.as_raw_fd(), &mut buf).map_err(Into::into)) {
                    Ok(Ok(0)) => return Ok(out),
                    Ok(Ok(n)) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.len() as u64 > MAX_STREAM {
                            return Err(std::io::Error::other("migration stream too large"));
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => continue,
                }
            }
        }
        Err(fd) => {
            std::fs::File::from(fd)
                .take(MAX_STREAM)
                .read_to_end(&mut out)?;
            Ok(out)
        }
    }
}

/// Where an incoming stream comes from, once set up.
enum Source {
    Ch(Channel),
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

async fn read_source(src: Source) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match src {
        Source::Ch(Channel::File(p)) => {
            std::fs::File::open(p)?
                .take(MAX_STREAM)
                .read_to_end(&mut out)?;
        }
        Source::Ch(Channel::Exec(cmd)) => {
            let mut child = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            if let Some(so) = child.stdout.take() {
                so.take(MAX_STREAM).read_to_end(&mut out).await?;
            }
            child.wait().await?;
        }
        Source::Ch(Channel::Fd(fd)) => return read_fd(fd).await,
        Source::Unix(l, path) => {
            let (s, _) = l.accept().await?;
            let _ = std::fs::remove_file(path);
            s.take(MAX_STREAM).read_to_end(&mut out).await?;
        }
        Source::Tcp(l) => {
            let (s, _) = l.accept().await?;
            s.take(MAX_STREAM).read_to_end(&mut out).await?;
        }
        Source::Ch(Channel::Unix(_) | Channel::Tcp(_)) => {
            return Err(std::io::Error::other("unsupported incoming channel"));
        }
    }
    Ok(out)
}

fn check_stream(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|_| "stream is not a qemu-sim stream")?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err("bad magic: not a qemu-sim migration stream".into());
    }
    let state: Value = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or("truncated migration stream")?;
    if !state.is_object() {
        return Err("bad state in migration stream".into());
    }
    Ok(())
}

/// Starts an incoming migration from `uri` (`-incoming URI` or
/// migrate-incoming). Listening sockets exist when this returns, as a
/// manager connects the source right after.
pub(crate) fn start_incoming(sim: &Rc<Sim>, uri: &str) -> Result<(), QmpError> {
    let ch = parse_uri(sim, uri, true)?;
    let src = match ch {
        Channel::Unix(p) => {
            let _ = std::fs::remove_file(&p);
            let l = std::os::unix::net::UnixListener::bind(&p)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .and_then(tokio::net::UnixListener::from_std)
                .map_err(|e| QmpError::generic(format!("Failed to bind socket: {e}")))?;
            Source::Unix(l, p)
        }
        Channel::Tcp(a) => {
            let l = std::net::TcpListener::bind(&a)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .and_then(tokio::net::TcpListener::from_std)
                .map_err(|e| QmpError::generic(format!("Failed to bind socket: {e}")))?;
            Source::Tcp(l)
        }
        other => Source::Ch(other),
    };
    let serial = new_migration(sim, true);
    set_status(sim, serial, "setup");
    tokio::task::spawn_local(incoming(Rc::clone(sim), serial, src));
    Ok(())
}

async fn incoming(sim: Rc<Sim>, serial: u64, src: Source) {
    tokio::task::yield_now().await;
    set_status(&sim, serial, "active");
    let r = read_source(src)
        .await
        .map_err(|e| e.to_string())
        .and_then(|d| check_stream(&d));
    match r {
        Ok(()) => {
            set_status(&sim, serial, "completed");
            let autostart = sim.vm.borrow().autostart;
            if autostart {
                sim.vm.borrow_mut().run = RunState::Running;
                sim.emit("RESUME", None);
                crate::qmp::arm_powerdown(&sim);
            } else {
                sim.vm.borrow_mut().run = RunState::Paused;
            }
        }
        Err(e) => {
            // QEMU exits when the incoming stream cannot be loaded.
            set_status(&sim, serial, "failed");
            eprintln!("qemu-sim: load of migration failed: {e}");
            sim.request_exit(1);
        }
    }
}

/// `migrate-incoming`.
pub(crate) fn migrate_incoming(sim: &Rc<Sim>, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["uri", "channels"])?;
    let uri = args.str("uri")?;
    if sim.vm.borrow().run != RunState::InMigrate {
        return Err(QmpError::generic(
            "'-incoming' was not specified on the command line",
        ));
    }
    if sim.cfg.incoming.as_deref() != Some("defer") || sim.vm.borrow().migration.is_some() {
        return Err(QmpError::generic(
            "The incoming migration has already been started",
        ));
    }
    start_incoming(sim, uri)?;
    Ok(json!({}))
}

pub(crate) fn query(sim: &Sim) -> Value {
    let vm = sim.vm.borrow();
    let Some(m) = vm.migration.as_ref() else {
        return json!({});
    };
    let mut v = json!({"status": m.status});
    if m.incoming || m.status == "none" {
        return v;
    }
    let total = sim.cfg.mem_mib << 20;
    let elapsed = m
        .total_ms
        .unwrap_or_else(|| m.started.elapsed().as_millis() as u64);
    let done = match m.status {
        "completed" => total,
        "setup" => 0,
        _ if sim.faults.stall_migration.get() => 0,
        _ => {
            let f = elapsed as f64 / sim.cfg.sim.job_ms.max(1) as f64;
            (total as f64 * f.min(1.0)) as u64
        }
    };
    v["total-time"] = json!(elapsed);
    v["setup-time"] = json!(1);
    if m.status == "completed" {
        v["downtime"] = json!(10);
    } else {
        v["expected-downtime"] = json!(300);
    }
    if m.status != "setup" {
        let mbps = if elapsed > 0 {
            done as f64 * 8.0 / 1e6 / (elapsed as f64 / 1000.0)
        } else {
            0.0
        };
        v["ram"] = json!({
            "total": total, "transferred": done, "remaining": total - done,
            "duplicate": 0, "normal": done / 4096, "normal-bytes": done,
            "dirty-sync-count": 1, "page-size": 4096, "mbps": mbps,
            "dirty-pages-rate": 0, "pages-per-second": 0, "postcopy-requests": 0,
            "multifd-bytes": 0, "precopy-bytes": done, "downtime-bytes": 0,
            "postcopy-bytes": 0, "skipped": 0,
        });
    }
    v
}

pub(crate) fn set_capabilities(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["capabilities"])?;
    let Some(Value::Array(list)) = args.get("capabilities") else {
        return Err(QmpError::generic(
            "Invalid parameter type for 'capabilities', expected: array",
        ));
    };
    if in_progress(sim) {
        return Err(QmpError::generic("There's a migration process in progress"));
    }
    let mut parsed = Vec::with_capacity(list.len());
    for item in list {
        let a = Args(item.as_object());
        if item.as_object().is_none() {
            return Err(QmpError::generic(
                "Invalid parameter type for 'capabilities[0]', expected: object",
            ));
        }
        a.only(&["capability", "state"])?;
        let name = a.str("capability")?;
        let state = a
            .opt_bool("state")?
            .ok_or_else(|| QmpError::generic("Parameter 'state' is missing"))?;
        if !CAPS.contains(&name) {
            return Err(QmpError::generic(format!(
                "Parameter 'capability' does not accept value '{name}'"
            )));
        }
        parsed.push((name.to_string(), state));
    }
    let mut vm = sim.vm.borrow_mut();
    for (k, v) in parsed {
        vm.mig_caps.insert(k, v);
    }
    Ok(json!({}))
}

pub(crate) fn query_capabilities(sim: &Sim) -> Value {
    let vm = sim.vm.borrow();
    Value::Array(
        CAPS.iter()
            .map(|c| json!({"capability": c, "state": vm.mig_caps.get(*c).copied().unwrap_or(false)}))
            .collect(),
    )
}

pub(crate) fn set_parameters(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    if let Some(m) = args.0 {
        let mut vm = sim.vm.borrow_mut();
        for (k, v) in m {
            vm.mig_params.insert(k.clone(), v.clone());
        }
    }
    Ok(json!({}))
}

pub(crate) fn query_parameters(sim: &Sim) -> Value {
    let mut v = json!({
        "max-bandwidth": 134217728u64, "downtime-limit": 300, "multifd-channels": 2,
        "x-checkpoint-delay": 20000, "tls-creds": "", "tls-hostname": "",
        "max-postcopy-bandwidth": 0, "announce-initial": 50,
    });
    if let Some(o) = v.as_object_mut() {
        for (k, x) in &sim.vm.borrow().mig_params {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_check() {
        assert!(check_stream(format!("{MAGIC}\n{{\"a\":1}}\n").as_bytes()).is_ok());
        assert!(check_stream(b"QEVM\x00\x00").is_err());
        assert!(check_stream(format!("{MAGIC}\n").as_bytes()).is_err());
    }
}
