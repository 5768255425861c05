//! The shared context of one simulated QEMU process.
//!
//! Everything runs on one current-thread runtime, so the context is shared
//! with `Rc` and interior mutability: no locks, no atomics, and no borrow is
//! ever held across an `.await`.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::args::Config;
use crate::faults::Faults;
use crate::output::{CAP, Outbox, format_event};
use crate::state::Vm;

/// Counters reported by the control socket's `stats`.
#[derive(Default)]
pub(crate) struct Stats {
    pub events_sent: Cell<u64>,
    pub events_skipped: Cell<u64>,
    pub commands: Cell<u64>,
}

pub(crate) struct Sim {
    pub cfg: Config,
    pub vm: RefCell<Vm>,
    pub outboxes: Vec<Rc<Outbox>>,
    pub faults: Faults,
    pub stats: Stats,
    /// Made-up guest statistics and the balloon's polling period.
    pub guest: crate::stats::GuestStats,
    /// Files to unlink at a clean exit (sockets, pidfile), as QEMU does.
    pub cleanup: RefCell<Vec<PathBuf>>,
    exit_code: Cell<Option<i32>>,
    exit_notify: Notify,
    /// Reused formatting buffer: the flood formats without allocating.
    scratch: RefCell<String>,
}

impl Sim {
    pub(crate) fn new(cfg: Config, outboxes: Vec<Rc<Outbox>>) -> Rc<Sim> {
        let vm = Vm::new(&cfg);
        let faults = Faults::new(&cfg.sim);
        Rc::new(Sim {
            cfg,
            vm: RefCell::new(vm),
            outboxes,
            faults,
            stats: Stats::default(),
            guest: crate::stats::GuestStats::default(),
            cleanup: RefCell::new(Vec::new()),
            exit_code: Cell::new(None),
            exit_notify: Notify::new(),
            scratch: RefCell::new(String::new()),
        })
    }

    /// Emits a state event to every negotiated monitor. Never skipped: these
    /// events are what a manager's state machine depends on.
    pub(crate) fn emit(&self, name: &str, data: Option<&str>) {
        self.emit_inner(name, data, false);
    }

    pub(crate) fn emit_value(&self, name: &str, data: &serde_json::Value) {
        let d = crate::output::to_json(data);
        self.emit_inner(name, Some(&d), false);
    }

    /// Emits a flood event; skipped (and counted) where the peer's queue is
    /// over its bound. Returns false if every monitor skipped it.
    pub(crate) fn emit_flood(&self, name: &str, data: Option<&str>) -> bool {
        self.emit_inner(name, data, true)
    }

    fn emit_inner(&self, name: &str, data: Option<&str>, skippable: bool) -> bool {
        let mut any = false;
        let mut line = self.scratch.borrow_mut();
        line.clear();
        for out in &self.outboxes {
            if !out.events_on() {
                continue;
            }
            if skippable && out.len() >= CAP {
                self.stats
                    .events_skipped
                    .set(self.stats.events_skipped.get() + 1);
                continue;
            }
            if line.is_empty() {
                format_event(&mut line, name, data);
            }
            out.push(line.as_bytes());
            self.stats.events_sent.set(self.stats.events_sent.get() + 1);
            any = true;
        }
        if line.capacity() > 4096 {
            *line = String::new();
        }
        any
    }

    /// True while some negotiated monitor is over its output bound.
    pub(crate) fn all_monitors_full(&self) -> bool {
        let mut any = false;
        for out in &self.outboxes {
            if out.events_on() {
                if out.len() < CAP {
                    return false;
                }
                any = true;
            }
        }
        any
    }

    pub(crate) fn request_exit(&self, code: i32) {
        if self.exit_code.get().is_none() {
            self.exit_code.set(Some(code));
            self.exit_notify.notify_one();
        }
    }

    pub(crate) fn exiting(&self) -> bool {
        self.exit_code.get().is_some()
    }

    pub(crate) async fn wait_exit(&self) -> i32 {
        loop {
            if let Some(c) = self.exit_code.get() {
                return c;
            }
            self.exit_notify.notified().await;
        }
    }

    /// Gives connected clients up to `limit` to receive what is queued
    /// (the reply to `quit`, the SHUTDOWN event).
    pub(crate) async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        for out in &self.outboxes {
            while out.connected() && !out.is_empty() {
                if tokio::time::timeout_at(deadline, out.emptied.notified())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    /// Unlinks sockets and pidfile and exits at once.
    pub(crate) fn exit_now(&self, code: i32, clean: bool) -> ! {
        if clean {
            for p in self.cleanup.borrow().iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        std::process::exit(code)
    }
}
