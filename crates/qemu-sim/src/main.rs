//! qemu-sim: a lean stand-in for `qemu-system-x86_64` that speaks QMP, for
//! scale tests (thousands of instances on one machine) and for faults real
//! QEMU cannot produce on demand. See README.md for options and the control
//! protocol.
//!
//! Everything runs on one current-thread tokio runtime: an idle instance is
//! one thread, a few sockets and a few KiB of heap.

mod args;
mod control;
mod daemonize;
mod faults;
mod hostile;
mod jobs;
mod listen;
mod migration;
mod monitor;
mod output;
mod probe;
mod qmp;
mod sim;
mod state;
mod stats;
mod tray;

use std::rc::Rc;
use std::time::Duration;

use args::Action;
use output::Outbox;
use sim::Sim;

const HELP: &str = "\
usage: qemu-sim [options]
Accepts the options a manager passes to qemu-system-x86_64 and serves QMP on
-qmp unix:PATH,server=on,wait=off or -chardev socket,...,server=on + -mon mode=control.
Simulator options: -sim-control PATH, -sim-flood NAME:RATE[:SECONDS], -sim-hang,
-sim-slow MS, -sim-garbage, -sim-wrong-ids, -sim-huge-mib N, -sim-exit-after MS,
-sim-job-ms MS, -sim-powerdown-ms MS, -sim-ignore-unplug, -sim-hostile read=PATH,write=PATH,open=PATH.
See crates/qemu-sim/README.md.
";

fn main() {
    let code = match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qemu-sim: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run() -> Result<i32, String> {
    let cfg = match args::parse(std::env::args().skip(1)).map_err(|e| e.to_string())? {
        Action::Version => {
            println!("QEMU emulator version 7.2.0 (qemu-sim)");
            return Ok(0);
        }
        Action::Help => {
            print!("{HELP}");
            return Ok(0);
        }
        Action::Run(c) => *c,
    };
    // As QEMU: daemonize, lock the pidfile (held until exit), then create
    // the sockets, all before the daemonized parent exits: a manager
    // connects once the parent has exited, or once the socket exists.
    let ready = if cfg.daemonize {
        daemonize::daemonize()?
    } else {
        daemonize::Ready::none()
    };
    let _pidfile = match &cfg.pidfile {
        Some(p) => Some(daemonize::lock_pidfile(p)?),
        None => None,
    };
    if let Some(spec) = &cfg.sim.hostile {
        hostile::attack(spec, cfg.sandbox_spawn_deny);
    }
    let bound = listen::bind_all(&cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (monitors, control, mut cleanup) = bound.into_tokio()?;
        if let Some(p) = &cfg.pidfile {
            cleanup.push(p.clone());
        }
        let outboxes: Vec<Rc<Outbox>> = monitors
            .iter()
            .map(|_| Rc::new(Outbox::default()))
            .collect();
        let sim = Sim::new(cfg, outboxes.clone());
        *sim.cleanup.borrow_mut() = cleanup;
        for (l, out) in monitors.into_iter().zip(outboxes) {
            tokio::task::spawn_local(monitor::serve(Rc::clone(&sim), l, out));
        }
        if let Some(l) = control {
            tokio::task::spawn_local(control::serve(Rc::clone(&sim), l));
        }
        if let Some(spec) = sim.cfg.sim.flood.clone() {
            faults::start_flood(&sim, spec);
        }
        if let Some(ms) = sim.cfg.sim.exit_after_ms {
            let s = Rc::clone(&sim);
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                // A crash: no SHUTDOWN, sockets left behind.
                s.exit_now(1, false);
            });
        }
        if let Some(uri) = sim.cfg.incoming.clone()
            && uri != "defer"
        {
            migration::start_incoming(&sim, &uri)
                .map_err(|e| format!("-incoming {uri}: {}", e.desc))?;
        }
        tokio::task::spawn_local(signals(Rc::clone(&sim)));
        ready.done();
        let code = sim.wait_exit().await;
        sim.flush(Duration::from_secs(1)).await;
        sim.exit_now(code, true)
    })
}

/// SIGTERM/SIGINT/SIGHUP end QEMU with SHUTDOWN{reason: host-signal}, even
/// with -no-shutdown: that is how a manager destroys a VM.
async fn signals(sim: Rc<Sim>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let n = tokio::select! {
        _ = term.recv() => 15,
        _ = int.recv() => 2,
        _ = hup.recv() => 1,
    };
    eprintln!("qemu-sim: terminating on signal {n}");
    qmp::host_shutdown(&sim, "host-signal");
}
