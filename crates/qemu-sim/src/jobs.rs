//! Block nodes and block jobs (mirror, commit, stream).
//!
//! Jobs follow QEMU's job state machine and emit its events in its order:
//! created → running → (ready, for mirror and active commit, until
//! job-complete) → waiting → pending → (finalize) BLOCK_JOB_COMPLETED →
//! concluded → null; a cancel goes aborting → BLOCK_JOB_CANCELLED →
//! concluded → null. `auto-finalize`/`auto-dismiss` stop the sequence at
//! pending/concluded until job-finalize/job-dismiss. Progress is linear over
//! `-sim-job-ms`, computed when queried so a running job costs no timer
//! ticks.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::qmp::{Args, QmpError};
use crate::sim::Sim;

/// Simulated size of every job's work: 1 GiB.
const JOB_LEN: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Mirror,
    Commit,
    Stream,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Mirror => "mirror",
            Kind::Commit => "commit",
            Kind::Stream => "stream",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Job {
    pub id: String,
    kind: Kind,
    device: String,
    target: Option<String>,
    status: &'static str,
    /// Mirror and active commit wait in `ready` for job-complete.
    waits_ready: bool,
    speed: u64,
    auto_finalize: bool,
    auto_dismiss: bool,
    started: Instant,
    serial: u64,
}

impl Job {
    fn offset(&self, job_ms: u64) -> u64 {
        if self.status != "running" && self.status != "created" {
            return JOB_LEN;
        }
        if job_ms == 0 {
            return JOB_LEN;
        }
        let f = self.started.elapsed().as_secs_f64() / (job_ms as f64 / 1000.0);
        (JOB_LEN as f64 * f.min(1.0)) as u64
    }

    fn active(&self) -> bool {
        !matches!(self.status, "concluded" | "null" | "aborting")
    }
}

fn status_event(sim: &Sim, id: &str, status: &str) {
    sim.emit_value("JOB_STATUS_CHANGE", &json!({"status": status, "id": id}));
}

/// Finds a node or drive by name, as `device` arguments accept either.
fn have_device(sim: &Sim, name: &str) -> bool {
    let vm = sim.vm.borrow();
    vm.nodes.iter().any(|n| n == name) || vm.drives.iter().any(|n| n == name)
}

/// Applies `f` to the job with `serial` and returns what it returns.
fn with_job<R>(sim: &Sim, serial: u64, f: impl FnOnce(&mut Job) -> R) -> Option<R> {
    let mut vm = sim.vm.borrow_mut();
    vm.jobs.iter_mut().find(|j| j.serial == serial).map(f)
}

/// Sets a job's status and emits JOB_STATUS_CHANGE; false if the job is gone.
fn transition(sim: &Sim, serial: u64, status: &'static str) -> bool {
    let Some(id) = with_job(sim, serial, |j| {
        j.status = status;
        j.id.clone()
    }) else {
        return false;
    };
    status_event(sim, &id, status);
    if status == "null" {
        sim.vm.borrow_mut().jobs.retain(|j| j.serial != serial);
    }
    true
}

fn block_event(sim: &Sim, name: &str, serial: u64) {
    let job_ms = sim.cfg.sim.job_ms;
    let Some(data) = with_job(sim, serial, |j| {
        json!({"device": j.id, "len": JOB_LEN, "offset": j.offset(job_ms),
               "speed": j.speed, "type": j.kind.as_str()})
    }) else {
        return;
    };
    sim.emit_value(name, &data);
}

async fn run(sim: Rc<Sim>, serial: u64) {
    tokio::time::sleep(Duration::from_millis(sim.cfg.sim.job_ms)).await;
    let Some((status, waits_ready)) = with_job(&sim, serial, |j| (j.status, j.waits_ready)) else {
        return;
    };
    if status != "running" {
        return;
    }
    if waits_ready {
        transition(&sim, serial, "ready");
        block_event(&sim, "BLOCK_JOB_READY", serial);
    } else {
        complete(&sim, serial);
    }
}

/// waiting → pending → (auto-finalize) finalize.
fn complete(sim: &Sim, serial: u64) {
    transition(sim, serial, "waiting");
    transition(sim, serial, "pending");
    if with_job(sim, serial, |j| j.auto_finalize).unwrap_or(false) {
        finalize(sim, serial);
    }
}

fn finalize(sim: &Sim, serial: u64) {
    block_event(sim, "BLOCK_JOB_COMPLETED", serial);
    transition(sim, serial, "concluded");
    if with_job(sim, serial, |j| j.auto_dismiss).unwrap_or(false) {
        transition(sim, serial, "null");
    }
}

fn abort(sim: &Sim, serial: u64) {
    transition(sim, serial, "aborting");
    block_event(sim, "BLOCK_JOB_CANCELLED", serial);
    transition(sim, serial, "concluded");
    if with_job(sim, serial, |j| j.auto_dismiss).unwrap_or(false) {
        transition(sim, serial, "null");
    }
}

/// Runs `f` after the current command's reply is queued, as QEMU's job
/// coroutines do.
fn later(sim: &Rc<Sim>, f: impl FnOnce(&Sim) + 'static) {
    let sim = Rc::clone(sim);
    tokio::task::spawn_local(async move {
        tokio::task::yield_now().await;
        f(&sim);
    });
}

pub(crate) fn blockdev_add(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    // blockdev-add takes the whole BlockdevOptions union: only node-name
    // matters here.
    let Some(name) = args.opt_str("node-name")? else {
        return Err(QmpError::generic(
            "'node-name' must be specified for the root node",
        ));
    };
    let mut vm = sim.vm.borrow_mut();
    if vm.nodes.iter().any(|n| n == name) {
        return Err(QmpError::generic(format!(
            "Duplicate nodes with node-name='{name}'"
        )));
    }
    vm.nodes.push(name.to_string());
    Ok(json!({}))
}

pub(crate) fn blockdev_del(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    args.only(&["node-name"])?;
    let name = args.str("node-name")?;
    let mut vm = sim.vm.borrow_mut();
    let Some(pos) = vm.nodes.iter().position(|n| n == name) else {
        return Err(QmpError::generic(format!(
            "Failed to find node with node-name='{name}'"
        )));
    };
    if let Some(j) = vm
        .jobs
        .iter()
        .find(|j| j.active() && (j.device == name || j.target.as_deref() == Some(name)))
    {
        return Err(QmpError::generic(format!(
            "Node '{name}' is busy: block device is in use by block job: {}",
            j.kind.as_str()
        )));
    }
    vm.nodes.remove(pos);
    Ok(json!({}))
}

pub(crate) fn query_named_block_nodes(sim: &Sim) -> Value {
    let vm = sim.vm.borrow();
    Value::Array(
        vm.nodes
            .iter()
            .map(|n| {
                json!({"node-name": n, "drv": "qcow2", "ro": false, "file": n,
                       "image": crate::stats::image(n)})
            })
            .collect(),
    )
}

const COMMON: &[&str] = &[
    "job-id",
    "device",
    "speed",
    "on-error",
    "on-source-error",
    "on-target-error",
    "filter-node-name",
    "auto-finalize",
    "auto-dismiss",
];

/// blockdev-mirror, drive-mirror, block-commit and block-stream.
pub(crate) fn start(sim: &Rc<Sim>, cmd: &str, args: &Args<'_>) -> Result<Value, QmpError> {
    let (kind, extra): (Kind, &[&str]) = match cmd {
        "blockdev-mirror" => (
            Kind::Mirror,
            &[
                "target",
                "sync",
                "replaces",
                "granularity",
                "buf-size",
                "copy-mode",
            ],
        ),
        "drive-mirror" => (
            Kind::Mirror,
            &[
                "target",
                "format",
                "node-name",
                "replaces",
                "sync",
                "mode",
                "granularity",
                "buf-size",
                "unmap",
                "copy-mode",
            ],
        ),
        "block-commit" => (
            Kind::Commit,
            &[
                "base-node",
                "base",
                "top-node",
                "top",
                "backing-file",
                "backing-mask-protocol",
            ],
        ),
        _ => (
            Kind::Stream,
            &[
                "base",
                "base-node",
                "backing-file",
                "backing-mask-protocol",
                "bottom",
            ],
        ),
    };
    args.only_two(COMMON, extra)?;
    let device = args.str("device")?;
    let target = match cmd {
        "blockdev-mirror" | "drive-mirror" => Some(args.str("target")?),
        _ => None,
    };
    if matches!(cmd, "blockdev-mirror" | "drive-mirror") {
        args.str("sync")?;
    }
    let job_id = args.opt_str("job-id")?.unwrap_or(device).to_string();
    let speed = args.opt_u64("speed")?.unwrap_or(0);
    let auto_finalize = args.opt_bool("auto-finalize")?.unwrap_or(true);
    let auto_dismiss = args.opt_bool("auto-dismiss")?.unwrap_or(true);
    if !have_device(sim, device) {
        return Err(QmpError::generic(format!(
            "Cannot find device='{device}' nor node-name='{device}'"
        )));
    }
    if cmd == "blockdev-mirror"
        && let Some(t) = target
        && !have_device(sim, t)
    {
        return Err(QmpError::generic(format!(
            "Cannot find device='{t}' nor node-name='{t}'"
        )));
    }
    // A commit is "active" (and waits in ready) when it commits the top.
    let waits_ready = match kind {
        Kind::Mirror => true,
        Kind::Commit => match args.opt_str("top-node")?.or(args.opt_str("top")?) {
            None => true,
            Some(t) => t == device,
        },
        Kind::Stream => false,
    };
    let serial = {
        let mut vm = sim.vm.borrow_mut();
        if vm.jobs.iter().any(|j| j.id == job_id) {
            return Err(QmpError::generic(format!(
                "Job ID '{job_id}' already in use"
            )));
        }
        if let Some(j) = vm.jobs.iter().find(|j| j.active() && j.device == device) {
            return Err(QmpError::generic(format!(
                "Node '{device}' is busy: block device is in use by block job: {}",
                j.kind.as_str()
            )));
        }
        let serial = vm.jobs.iter().map(|j| j.serial).max().unwrap_or(0) + 1;
        vm.jobs.push(Job {
            id: job_id.clone(),
            kind,
            device: device.to_string(),
            target: target.map(str::to_string),
            status: "created",
            waits_ready,
            speed,
            auto_finalize,
            auto_dismiss,
            started: Instant::now(),
            serial,
        });
        serial
    };
    status_event(sim, &job_id, "created");
    transition(sim, serial, "running");
    tokio::task::spawn_local(run(Rc::clone(sim), serial));
    Ok(json!({}))
}

/// Looks a job up by id: `block` selects the block-job-* error message.
fn find(sim: &Sim, id: &str, block: bool) -> Result<(u64, &'static str), QmpError> {
    let vm = sim.vm.borrow();
    vm.jobs
        .iter()
        .find(|j| j.id == id)
        .map(|j| (j.serial, j.status))
        .ok_or_else(|| {
            if block {
                QmpError::device_not_active(id)
            } else {
                QmpError::generic("Job not found")
            }
        })
}

fn verb_error(id: &str, status: &str, verb: &str) -> QmpError {
    QmpError::generic(format!(
        "Job '{id}' in state '{status}' cannot accept command verb '{verb}'"
    ))
}

/// job-complete, job-cancel, job-dismiss, job-finalize and their
/// block-job-* spellings.
pub(crate) fn verb(sim: &Rc<Sim>, cmd: &str, args: &Args<'_>) -> Result<Value, QmpError> {
    let block = cmd.starts_with("block-job-");
    let key = if block { "device" } else { "id" };
    match cmd {
        "job-cancel" | "block-job-cancel" => args.only(&[key, "force"])?,
        "block-job-set-speed" => args.only(&[key, "speed"])?,
        _ => args.only(&[key])?,
    }
    let id = args.str(key)?;
    let (serial, status) = find(sim, id, block)?;
    match cmd {
        "job-complete" | "block-job-complete" => {
            if status != "ready" {
                return Err(if block {
                    QmpError::generic(format!("The active block job '{id}' cannot be completed"))
                } else {
                    verb_error(id, status, "complete")
                });
            }
            // Leave `ready` at once so a second complete fails, as in QEMU.
            with_job(sim, serial, |j| j.status = "ready-completing");
            later(sim, move |s| complete(s, serial));
        }
        "job-cancel" | "block-job-cancel" => {
            if matches!(status, "concluded" | "null" | "aborting") {
                return Err(verb_error(id, status, "cancel"));
            }
            // block-job-cancel without force on a ready mirror completes it
            // (the target keeps a point-in-time copy); job-cancel aborts.
            let force = cmd == "job-cancel" || args.opt_bool("force")?.unwrap_or(false);
            if status == "ready" && !force {
                with_job(sim, serial, |j| j.status = "ready-completing");
                later(sim, move |s| complete(s, serial));
            } else {
                with_job(sim, serial, |j| j.status = "cancelling");
                later(sim, move |s| abort(s, serial));
            }
        }
        "job-dismiss" | "block-job-dismiss" => {
            if status != "concluded" {
                return Err(verb_error(id, status, "dismiss"));
            }
            transition(sim, serial, "null");
        }
        "job-finalize" | "block-job-finalize" => {
            if status != "pending" {
                return Err(verb_error(id, status, "finalize"));
            }
            finalize(sim, serial);
        }
        "block-job-set-speed" => {
            let speed = args.u64("speed")?;
            with_job(sim, serial, |j| j.speed = speed);
        }
        _ => return Err(QmpError::not_found(cmd)),
    }
    Ok(json!({}))
}

/// What query-jobs shows for in-between states that QEMU does not have.
fn shown(status: &'static str) -> &'static str {
    match status {
        "ready-completing" => "ready",
        "cancelling" => "running",
        s => s,
    }
}

pub(crate) fn query_jobs(sim: &Sim) -> Value {
    let vm = sim.vm.borrow();
    let job_ms = sim.cfg.sim.job_ms;
    Value::Array(
        vm.jobs
            .iter()
            .map(|j| {
                json!({"current-progress": j.offset(job_ms), "status": shown(j.status),
                       "total-progress": JOB_LEN, "type": j.kind.as_str(), "id": j.id})
            })
            .collect(),
    )
}

pub(crate) fn query_block_jobs(sim: &Sim) -> Value {
    let vm = sim.vm.borrow();
    let job_ms = sim.cfg.sim.job_ms;
    Value::Array(
        vm.jobs
            .iter()
            .filter(|j| j.status != "null")
            .map(|j| {
                let st = shown(j.status);
                json!({"auto-finalize": j.auto_finalize, "io-status": "ok", "device": j.id,
                       "auto-dismiss": j.auto_dismiss, "busy": st == "running",
                       "len": JOB_LEN, "offset": j.offset(job_ms), "status": st,
                       "paused": false, "speed": j.speed, "ready": st == "ready",
                       "type": j.kind.as_str()})
            })
            .collect(),
    )
}
