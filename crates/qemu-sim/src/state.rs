//! The simulated VM's run state machine, as QEMU 7.2 implements it.
//!
//! Transitions are pure: they return the events to emit so the caller emits
//! them in QEMU's order and unit tests can check the machine without I/O.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use crate::args::Config;
use crate::jobs::Job;
use crate::migration::Migration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunState {
    Prelaunch,
    Running,
    Paused,
    Shutdown,
    InMigrate,
    FinishMigrate,
    PostMigrate,
}

impl RunState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunState::Prelaunch => "prelaunch",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Shutdown => "shutdown",
            RunState::InMigrate => "inmigrate",
            RunState::FinishMigrate => "finish-migrate",
            RunState::PostMigrate => "postmigrate",
        }
    }
}

/// An event the caller must emit (name, data as JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ev(pub &'static str, pub Option<&'static str>);

pub(crate) const STOP: Ev = Ev("STOP", None);
pub(crate) const RESUME: Ev = Ev("RESUME", None);

/// What the caller must do after a shutdown request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterShutdown {
    Exit,
    /// `-no-shutdown`: stay, in state `shutdown`.
    Stay,
}

pub(crate) struct Vm {
    pub run: RunState,
    /// QEMU's `autostart`: run after an incoming migration completes.
    pub autostart: bool,
    /// ACPI power button pressed; the guest reacts once it runs.
    pub powerdown_pending: bool,
    pub no_shutdown: bool,
    pub no_reboot: bool,
    pub nodes: Vec<String>,
    pub drives: Vec<String>,
    pub devices: Vec<String>,
    /// The balloon's target (`balloon`), bytes; the memory size until set.
    pub balloon: Option<u64>,
    /// Devices asked to unplug that the guest has not released yet.
    pub unplugging: Vec<String>,
    /// Devices whose tray is open.
    pub open_trays: Vec<String>,
    /// Devices whose medium was removed (and not replaced).
    pub empty_trays: Vec<String>,
    pub jobs: Vec<Job>,
    pub migration: Option<Migration>,
    pub mig_caps: BTreeMap<String, bool>,
    pub mig_params: serde_json::Map<String, serde_json::Value>,
    pub fds: BTreeMap<String, OwnedFd>,
    /// Tap backends (`netdev_add` of type tap), by id, holding the
    /// descriptor they took from `fds` as QEMU does.
    pub tap_netdevs: BTreeMap<String, OwnedFd>,
    /// Ids of the objects `object-add` created.
    pub objects: std::collections::BTreeSet<String>,
    /// CPUs plugged with `device_add`: id and socket.
    pub cpus: BTreeMap<String, u32>,
    /// Bumped on every guest reset: pending guest actions of the previous
    /// boot are void.
    pub boot: u64,
}

impl Vm {
    pub(crate) fn new(cfg: &Config) -> Vm {
        let run = if cfg.incoming.is_some() {
            RunState::InMigrate
        } else if cfg.start_paused {
            RunState::Prelaunch
        } else {
            RunState::Running
        };
        Vm {
            run,
            autostart: !cfg.start_paused,
            powerdown_pending: false,
            no_shutdown: cfg.no_shutdown,
            no_reboot: cfg.no_reboot,
            nodes: cfg.nodes.clone(),
            drives: cfg.drives.clone(),
            devices: cfg.devices.clone(),
            balloon: None,
            unplugging: Vec::new(),
            open_trays: Vec::new(),
            empty_trays: Vec::new(),
            jobs: Vec::new(),
            migration: None,
            mig_caps: BTreeMap::new(),
            mig_params: serde_json::Map::new(),
            fds: BTreeMap::new(),
            tap_netdevs: BTreeMap::new(),
            objects: std::collections::BTreeSet::new(),
            cpus: BTreeMap::new(),
            boot: 0,
        }
    }

    pub(crate) fn running(&self) -> bool {
        self.run == RunState::Running
    }

    /// `stop`: only a running VM stops (and emits STOP); during an incoming
    /// migration it cancels autostart; otherwise nothing.
    pub(crate) fn stop(&mut self) -> Option<Ev> {
        match self.run {
            RunState::Running => {
                self.run = RunState::Paused;
                Some(STOP)
            }
            RunState::InMigrate => {
                self.autostart = false;
                None
            }
            _ => None,
        }
    }

    /// `cont`.
    pub(crate) fn cont(&mut self) -> Result<Option<Ev>, &'static str> {
        match self.run {
            RunState::Shutdown => Err("Resetting the Virtual Machine is required"),
            RunState::FinishMigrate => Err("Migration is not finalized yet"),
            RunState::InMigrate => {
                self.autostart = true;
                Ok(None)
            }
            RunState::Running => Ok(None),
            _ => {
                self.run = RunState::Running;
                Ok(Some(RESUME))
            }
        }
    }

    /// A host-requested reset (`system_reset`). With `-no-reboot` QEMU turns
    /// it into a shutdown, which the caller handles when `Err` is returned.
    pub(crate) fn reset(&mut self) -> Result<Ev, ()> {
        if self.no_reboot {
            return Err(());
        }
        self.boot += 1;
        self.powerdown_pending = false;
        if !matches!(
            self.run,
            RunState::Running | RunState::InMigrate | RunState::FinishMigrate
        ) {
            self.run = RunState::Prelaunch;
        }
        Ok(Ev(
            "RESET",
            Some("{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}"),
        ))
    }

    /// A shutdown request of any cause. `host` requests (quit, signals)
    /// always exit; guest ones stay with `-no-shutdown`, stopping the VM.
    pub(crate) fn shutdown(&mut self, host_forced: bool) -> (AfterShutdown, Option<Ev>) {
        self.powerdown_pending = false;
        if self.no_shutdown && !host_forced {
            let ev = if self.running() { Some(STOP) } else { None };
            self.run = RunState::Shutdown;
            (AfterShutdown::Stay, ev)
        } else {
            (AfterShutdown::Exit, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(args: &[&str]) -> Vm {
        match crate::args::parse(args.iter().copied()) {
            Ok(crate::args::Action::Run(c)) => Vm::new(&c),
            _ => panic!("bad args"),
        }
    }

    #[test]
    fn prelaunch_cont_stop() {
        let mut v = vm(&["-S"]);
        assert_eq!(v.run, RunState::Prelaunch);
        assert_eq!(v.stop(), None);
        assert_eq!(v.run, RunState::Prelaunch);
        assert_eq!(v.cont(), Ok(Some(RESUME)));
        assert_eq!(v.cont(), Ok(None));
        assert_eq!(v.stop(), Some(STOP));
        assert_eq!(v.run, RunState::Paused);
        assert!(v.reset().is_ok());
        assert_eq!(v.run, RunState::Prelaunch);
    }

    #[test]
    fn shutdown_states() {
        let mut v = vm(&["-no-shutdown"]);
        assert_eq!(v.shutdown(false), (AfterShutdown::Stay, Some(STOP)));
        assert_eq!(v.run, RunState::Shutdown);
        assert!(v.cont().is_err());
        assert!(v.reset().is_ok());
        assert_eq!(v.run, RunState::Prelaunch);
        assert_eq!(v.shutdown(true).0, AfterShutdown::Exit);
        let mut v = vm(&["-no-reboot"]);
        assert!(v.reset().is_err());
    }

    #[test]
    fn incoming_autostart() {
        let mut v = vm(&["-S", "-incoming", "defer"]);
        assert_eq!(v.run, RunState::InMigrate);
        assert!(!v.autostart);
        assert_eq!(v.cont(), Ok(None));
        assert!(v.autostart);
        assert_eq!(v.stop(), None);
        assert!(!v.autostart);
    }
}
