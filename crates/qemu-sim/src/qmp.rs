//! QMP command dispatch and the lifecycle commands.
//!
//! Argument checking mirrors QEMU's QAPI visitor (unexpected, missing and
//! mistyped parameters are GenericError with QEMU's wording) so a manager
//! exercising its error paths against the simulator sees what it would see
//! against QEMU.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::sim::Sim;
use crate::state::{AfterShutdown, Ev};
use crate::{jobs, migration, probe};

/// A QMP error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QmpError {
    pub class: &'static str,
    pub desc: String,
}

impl QmpError {
    pub(crate) fn generic(desc: impl Into<String>) -> QmpError {
        QmpError {
            class: "GenericError",
            desc: desc.into(),
        }
    }

    pub(crate) fn not_found(cmd: &str) -> QmpError {
        QmpError {
            class: "CommandNotFound",
            desc: format!("The command {cmd} has not been found"),
        }
    }

    pub(crate) fn device_not_active(id: &str) -> QmpError {
        QmpError {
            class: "DeviceNotActive",
            desc: format!("Block job '{id}' not found"),
        }
    }
}

/// A command's `arguments` object.
#[derive(Clone, Copy)]
pub(crate) struct Args<'a>(pub Option<&'a Map<String, Value>>);

fn type_error(k: &str, want: &str) -> QmpError {
    QmpError::generic(format!(
        "Invalid parameter type for '{k}', expected: {want}"
    ))
}

impl<'a> Args<'a> {
    /// Rejects parameters not in `allowed`.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), QmpError> {
        self.only_two(allowed, &[])
    }

    pub(crate) fn only_two(&self, a: &[&str], b: &[&str]) -> Result<(), QmpError> {
        if let Some(m) = self.0 {
            for k in m.keys() {
                if !a.contains(&k.as_str()) && !b.contains(&k.as_str()) {
                    return Err(QmpError::generic(format!("Parameter '{k}' is unexpected")));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.and_then(|m| m.get(k))
    }

    fn missing(k: &str) -> QmpError {
        QmpError::generic(format!("Parameter '{k}' is missing"))
    }

    pub(crate) fn str(&self, k: &str) -> Result<&'a str, QmpError> {
        self.opt_str(k)?.ok_or_else(|| Self::missing(k))
    }

    pub(crate) fn opt_str(&self, k: &str) -> Result<Option<&'a str>, QmpError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(k, "string")),
        }
    }

    pub(crate) fn opt_bool(&self, k: &str) -> Result<Option<bool>, QmpError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(type_error(k, "boolean")),
        }
    }

    pub(crate) fn u64(&self, k: &str) -> Result<u64, QmpError> {
        self.opt_u64(k)?.ok_or_else(|| Self::missing(k))
    }

    pub(crate) fn opt_u64(&self, k: &str) -> Result<Option<u64>, QmpError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| type_error(k, "integer")),
        }
    }
}

/// Every command the simulator answers (query-commands).
pub(crate) const COMMANDS: &[&str] = &[
    "qmp_capabilities",
    "query-status",
    "query-version",
    "query-name",
    "query-uuid",
    "query-kvm",
    "query-commands",
    "query-cpus-fast",
    "query-hotpluggable-cpus",
    "query-balloon",
    "query-machines",
    "query-cpu-definitions",
    "query-cpu-model-expansion",
    "qom-list-types",
    "query-chardev",
    "stop",
    "cont",
    "system_powerdown",
    "system_reset",
    "quit",
    "query-jobs",
    "query-block-jobs",
    "query-block",
    "query-named-block-nodes",
    "query-blockstats",
    "query-iothreads",
    "qom-get",
    "qom-set",
    "blockdev-add",
    "blockdev-del",
    "blockdev-mirror",
    "drive-mirror",
    "block-commit",
    "block-stream",
    "job-complete",
    "job-cancel",
    "job-dismiss",
    "job-finalize",
    "block-job-complete",
    "block-job-cancel",
    "block-job-dismiss",
    "block-job-finalize",
    "block-job-set-speed",
    "migrate",
    "migrate_cancel",
    "migrate-incoming",
    "query-migrate",
    "migrate-set-capabilities",
    "query-migrate-capabilities",
    "migrate-set-parameters",
    "query-migrate-parameters",
    "getfd",
    "closefd",
    "device_add",
    "device_del",
    "qom-list",
    "netdev_add",
    "netdev_del",
    "object-add",
    "object-del",
    "watchdog-set-action",
    "balloon",
    "block_resize",
    "block-set-write-threshold",
    "blockdev-open-tray",
    "blockdev-close-tray",
    "blockdev-remove-medium",
    "blockdev-insert-medium",
    "human-monitor-command",
];

fn emit_ev(sim: &Sim, ev: Option<Ev>) {
    if let Some(Ev(name, data)) = ev {
        sim.emit(name, data);
    }
}

/// The guest released device `id`: it is gone, and `DEVICE_DELETED` says so.
pub(crate) fn release_device(sim: &Sim, id: &str) -> Result<(), QmpError> {
    {
        let mut vm = sim.vm.borrow_mut();
        let Some(pos) = vm.devices.iter().position(|d| d == id) else {
            return Err(QmpError::generic(format!("Device '{id}' not found")));
        };
        vm.devices.remove(pos);
        vm.unplugging.retain(|d| d != id);
    }
    let path = format!("/machine/peripheral/{id}");
    sim.emit_value("DEVICE_DELETED", &json!({"device": id, "path": path}));
    Ok(())
}

/// The guest reacted to the power button (or otherwise powered off).
pub(crate) fn guest_poweroff(sim: &Sim) {
    sim.emit(
        "SHUTDOWN",
        Some("{\"guest\": true, \"reason\": \"guest-shutdown\"}"),
    );
    finish_shutdown(sim, false);
}

/// A shutdown QEMU cannot refuse: quit or a termination signal.
pub(crate) fn host_shutdown(sim: &Sim, reason: &str) {
    sim.emit_value("SHUTDOWN", &json!({"guest": false, "reason": reason}));
    finish_shutdown(sim, true);
}

fn finish_shutdown(sim: &Sim, forced: bool) {
    let (after, ev) = sim.vm.borrow_mut().shutdown(forced);
    emit_ev(sim, ev);
    if after == AfterShutdown::Exit {
        sim.request_exit(0);
    }
}

/// Arms the simulated guest's reaction to a pending power button press: it
/// powers off `-sim-powerdown-ms` after it runs, unless stopped or reset.
pub(crate) fn arm_powerdown(sim: &Rc<Sim>) {
    let (pending, running, boot) = {
        let vm = sim.vm.borrow();
        (vm.powerdown_pending, vm.running(), vm.boot)
    };
    if !pending || !running {
        return;
    }
    let sim = Rc::clone(sim);
    tokio::task::spawn_local(async move {
        tokio::time::sleep(Duration::from_millis(sim.cfg.sim.powerdown_ms)).await;
        let go = {
            let vm = sim.vm.borrow();
            vm.powerdown_pending && vm.running() && vm.boot == boot
        };
        if go && !sim.exiting() {
            guest_poweroff(&sim);
        }
    });
}

/// Runs one command (after negotiation). `fds` holds the descriptors the
/// client passed with SCM_RIGHTS (for getfd).
pub(crate) fn execute(
    sim: &Rc<Sim>,
    name: &str,
    args: Args<'_>,
    fds: &mut Vec<OwnedFd>,
) -> Result<Value, QmpError> {
    let none: &[&str] = &[];
    match name {
        "query-status" => {
            args.only(none)?;
            let vm = sim.vm.borrow();
            Ok(json!({"status": vm.run.as_str(), "singlestep": false, "running": vm.running()}))
        }
        "query-version" => {
            args.only(none)?;
            Ok(json!({"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "qemu-sim"}))
        }
        "query-name" => {
            args.only(none)?;
            Ok(match &sim.cfg.name {
                Some(n) => json!({"name": n}),
                None => json!({}),
            })
        }
        "query-uuid" => {
            args.only(none)?;
            let u = sim
                .cfg
                .uuid
                .as_deref()
                .unwrap_or("00000000-0000-0000-0000-000000000000");
            Ok(json!({"UUID": u}))
        }
        "query-kvm" => {
            args.only(none)?;
            Ok(json!({"enabled": sim.cfg.kvm, "present": true}))
        }
        "query-commands" => {
            args.only(none)?;
            Ok(Value::Array(
                COMMANDS.iter().map(|c| json!({"name": c})).collect(),
            ))
        }
        "query-cpus-fast" => {
            args.only(none)?;
            let pid = std::process::id();
            Ok(Value::Array(
                cpus_present(sim)
                    .into_iter()
                    .map(|(i, path)| {
                        json!({"cpu-index": i, "thread-id": pid, "target": "x86_64",
                               "qom-path": path,
                               "props": {"core-id": 0, "thread-id": 0, "socket-id": i}})
                    })
                    .collect(),
            ))
        }
        "query-hotpluggable-cpus" => {
            args.only(none)?;
            let present = cpus_present(sim);
            Ok(Value::Array(
                (0..sim.cfg.max_cpus)
                    .rev()
                    .map(|s| {
                        let mut slot = json!({"type": CPU_DRIVER, "vcpus-count": 1,
                            "props": {"core-id": 0, "thread-id": 0, "socket-id": s}});
                        if let Some((_, p)) = present.iter().find(|(i, _)| *i == s) {
                            slot["qom-path"] = json!(p);
                        }
                        slot
                    })
                    .collect(),
            ))
        }
        "query-balloon" => {
            args.only(none)?;
            let actual = sim.vm.borrow().balloon.unwrap_or(sim.cfg.mem_mib << 20);
            Ok(json!({ "actual": actual }))
        }
        "query-machines" => args.only(none).map(|()| probe::machines()),
        "query-cpu-definitions" => args.only(none).map(|()| probe::cpu_definitions(sim)),
        "query-cpu-model-expansion" => probe::cpu_model_expansion(sim, &args),
        "qom-list-types" => probe::list_types(&args),
        // No serial devices are simulated.
        "query-chardev" => args.only(none).map(|()| json!([])),
        "stop" => {
            args.only(none)?;
            let ev = sim.vm.borrow_mut().stop();
            emit_ev(sim, ev);
            Ok(json!({}))
        }
        "cont" => {
            args.only(none)?;
            let ev = sim.vm.borrow_mut().cont().map_err(QmpError::generic)?;
            emit_ev(sim, ev);
            arm_powerdown(sim);
            Ok(json!({}))
        }
        "system_powerdown" => {
            args.only(none)?;
            sim.emit("POWERDOWN", None);
            sim.vm.borrow_mut().powerdown_pending = true;
            arm_powerdown(sim);
            Ok(json!({}))
        }
        "system_reset" => {
            args.only(none)?;
            let r = sim.vm.borrow_mut().reset();
            match r {
                Ok(ev) => emit_ev(sim, Some(ev)),
                Err(()) => {
                    // -no-reboot: QEMU turns the reset into a shutdown.
                    sim.emit(
                        "SHUTDOWN",
                        Some("{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}"),
                    );
                    finish_shutdown(sim, false);
                }
            }
            Ok(json!({}))
        }
        "quit" => {
            args.only(none)?;
            host_shutdown(sim, "host-qmp-quit");
            Ok(json!({}))
        }
        "query-jobs" => {
            args.only(none)?;
            Ok(jobs::query_jobs(sim))
        }
        "query-block-jobs" => {
            args.only(none)?;
            Ok(jobs::query_block_jobs(sim))
        }
        "query-block" => {
            args.only(&["flat"])?;
            Ok(json!([]))
        }
        "query-named-block-nodes" => {
            args.only(&["flat"])?;
            Ok(jobs::query_named_block_nodes(sim))
        }
        "query-blockstats" => crate::stats::query_blockstats(sim, &args),
        // No I/O threads are simulated.
        "query-iothreads" => args.only(none).map(|()| json!([])),
        "qom-get" => crate::stats::qom_get(sim, &args),
        "qom-set" => crate::stats::qom_set(sim, &args),
        "blockdev-add" => jobs::blockdev_add(sim, &args),
        "blockdev-del" => jobs::blockdev_del(sim, &args),
        "blockdev-mirror" | "drive-mirror" | "block-commit" | "block-stream" => {
            jobs::start(sim, name, &args)
        }
        "job-complete"
        | "job-cancel"
        | "job-dismiss"
        | "job-finalize"
        | "block-job-complete"
        | "block-job-cancel"
        | "block-job-dismiss"
        | "block-job-finalize"
        | "block-job-set-speed" => jobs::verb(sim, name, &args),
        "migrate" => migration::migrate(sim, &args),
        "migrate_cancel" => {
            args.only(none)?;
            migration::cancel(sim);
            Ok(json!({}))
        }
        "migrate-incoming" => migration::migrate_incoming(sim, &args),
        "query-migrate" => {
            args.only(none)?;
            Ok(migration::query(sim))
        }
        "migrate-set-capabilities" => migration::set_capabilities(sim, &args),
        "query-migrate-capabilities" => {
            args.only(none)?;
            Ok(migration::query_capabilities(sim))
        }
        "migrate-set-parameters" => migration::set_parameters(sim, &args),
        "query-migrate-parameters" => {
            args.only(none)?;
            Ok(migration::query_parameters(sim))
        }
        "getfd" => {
            args.only(&["fdname"])?;
            let fdname = args.str("fdname")?;
            if fdname.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(QmpError::generic(
                    "Parameter 'fdname' expects a name not starting with a digit",
                ));
            }
            let Some(fd) = fds.pop() else {
                return Err(QmpError::generic(
                    "No file descriptor supplied via SCM_RIGHTS",
                ));
            };
            fds.clear();
            sim.vm.borrow_mut().fds.insert(fdname.to_string(), fd);
            Ok(json!({}))
        }
        "closefd" => {
            args.only(&["fdname"])?;
            let fdname = args.str("fdname")?;
            match sim.vm.borrow_mut().fds.remove(fdname) {
                Some(_) => Ok(json!({})),
                None => Err(QmpError::generic(format!(
                    "File descriptor named '{fdname}' not found"
                ))),
            }
        }
        "device_add" => {
            // Any device properties are accepted; only the id is tracked
            // (and a CPU's slot).
            let driver = args.str("driver")?;
            if let Some(id) = args.opt_str("id")? {
                let mut vm = sim.vm.borrow_mut();
                if vm.devices.iter().any(|d| d == id) {
                    return Err(QmpError::generic(format!("Duplicate device ID '{id}'")));
                }
                if driver == CPU_DRIVER {
                    drop(vm);
                    let socket = cpu_slot(sim, &args)?;
                    vm = sim.vm.borrow_mut();
                    vm.cpus.insert(id.to_owned(), socket);
                }
                vm.devices.push(id.to_string());
            }
            Ok(json!({}))
        }
        "device_del" => {
            args.only(&["id"])?;
            let id = args.str("id")?.to_string();
            if !sim.vm.borrow().devices.contains(&id) {
                return Err(QmpError::generic(format!("Device '{id}' not found")));
            }
            if sim.vm.borrow().unplugging.contains(&id) {
                return Err(QmpError::generic(format!(
                    "Device {id} is already in the process of unplug"
                )));
            }
            sim.vm.borrow_mut().unplugging.push(id.clone());
            if sim.faults.ignore_unplug.get() {
                return Ok(json!({}));
            }
            // The guest acknowledges the unplug a little later.
            let sim = Rc::clone(sim);
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(sim.cfg.sim.powerdown_ms)).await;
                let _ = release_device(&sim, &id);
            });
            Ok(json!({}))
        }
        "blockdev-open-tray"
        | "blockdev-close-tray"
        | "blockdev-remove-medium"
        | "blockdev-insert-medium" => crate::tray::command(sim, name, &args),
        "balloon" => {
            args.only(&["value"])?;
            let value = args.u64("value")?;
            sim.vm.borrow_mut().balloon = Some(value);
            sim.emit_value("BALLOON_CHANGE", &json!({ "actual": value }));
            Ok(json!({}))
        }
        "block_resize" | "block-set-write-threshold" => {
            let size = if name == "block_resize" {
                "size"
            } else {
                "write-threshold"
            };
            args.only(&["node-name", size])?;
            let node = args.str("node-name")?;
            args.u64(size)?;
            if !sim.vm.borrow().nodes.iter().any(|n| n == node) {
                return Err(QmpError::generic(format!(
                    "Cannot find device='' nor node-name='{node}'"
                )));
            }
            Ok(json!({}))
        }
        // Backends are accepted; only their ids matter.
        "netdev_add" => netdev_add(sim, &args),
        "object-add" => {
            args.str("qom-type")?;
            let id = args.str("id")?;
            let mut vm = sim.vm.borrow_mut();
            if !vm.objects.insert(id.to_owned()) {
                return Err(QmpError::generic(format!(
                    "attempt to add duplicate property '{id}' to object (type 'container')"
                )));
            }
            Ok(json!({}))
        }
        "object-del" => {
            args.only(&["id"])?;
            let id = args.str("id")?;
            match sim.vm.borrow_mut().objects.remove(id) {
                true => Ok(json!({})),
                false => Err(QmpError::generic(format!("object '{id}' not found"))),
            }
        }
        "watchdog-set-action" => {
            args.only(&["action"])?;
            match args.str("action")? {
                "reset" | "shutdown" | "poweroff" | "pause" | "debug" | "none" | "inject-nmi" => {
                    Ok(json!({}))
                }
                a => Err(QmpError::generic(format!(
                    "Parameter 'action' does not accept value '{a}'"
                ))),
            }
        }
        "netdev_del" => {
            args.only(&["id"])?;
            sim.vm.borrow_mut().tap_netdevs.remove(args.str("id")?);
            Ok(json!({}))
        }
        "qom-list" => {
            args.only(&["path"])?;
            match args.str("path")? {
                "/machine/peripheral" => {
                    let vm = sim.vm.borrow();
                    let list = vm
                        .devices
                        .iter()
                        .map(|d| json!({"name": d, "type": "child<device>"}));
                    Ok(Value::Array(list.collect()))
                }
                p => Err(QmpError::generic(format!("Device '{p}' not found"))),
            }
        }
        "human-monitor-command" => {
            args.only(&["command-line", "cpu-index"])?;
            args.str("command-line")?;
            Ok(json!(""))
        }
        _ => Err(QmpError::not_found(name)),
    }
}

/// `netdev_add`: a tap backend takes the descriptor named `fd` (received
/// with getfd) and holds it until `netdev_del`, as QEMU does.
fn netdev_add(sim: &Sim, args: &Args<'_>) -> Result<Value, QmpError> {
    let id = args.str("id")?;
    if args.opt_str("type")? != Some("tap") {
        return Ok(json!({}));
    }
    let fdname = args.str("fd")?;
    let mut vm = sim.vm.borrow_mut();
    let Some(fd) = vm.fds.remove(fdname) else {
        return Err(QmpError::generic(format!(
            "File descriptor named '{fdname}' has not been found"
        )));
    };
    vm.tap_netdevs.insert(id.to_owned(), fd);
    Ok(json!({}))
}

/// The CPU type of the simulated machine.
const CPU_DRIVER: &str = "qemu64-x86_64-cpu";

/// The CPUs present: (socket, QOM path), the boot ones and those plugged
/// and not yet unplugged.
fn cpus_present(sim: &Sim) -> Vec<(u32, String)> {
    let vm = sim.vm.borrow();
    let boot = (0..sim.cfg.smp).map(|i| (i, format!("/machine/unattached/device[{i}]")));
    let plugged = vm
        .cpus
        .iter()
        .filter(|(id, _)| vm.devices.contains(id))
        .map(|(id, s)| (*s, format!("/machine/peripheral/{id}")));
    let mut v: Vec<_> = boot.chain(plugged).collect();
    v.sort();
    v
}

/// The free slot a CPU's `device_add` names (`socket-id`).
fn cpu_slot(sim: &Sim, args: &Args<'_>) -> Result<u32, QmpError> {
    let socket = args
        .0
        .and_then(|m| m.get("socket-id"))
        .and_then(Value::as_u64)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| QmpError::generic("Parameter 'socket-id' is missing or not a number"))?;
    if socket >= sim.cfg.max_cpus {
        return Err(QmpError::generic(format!(
            "Invalid CPU socket-id: {socket} must be in range 0:{}",
            sim.cfg.max_cpus.saturating_sub(1)
        )));
    }
    if cpus_present(sim).iter().any(|(s, _)| *s == socket) {
        return Err(QmpError::generic(format!(
            "CPU[{socket}] with APIC ID {socket} exists"
        )));
    }
    Ok(socket)
}
