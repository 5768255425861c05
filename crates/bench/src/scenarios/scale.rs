//! Scenario 5, Scale (ferrovirtd alone, qemu-sim): define and start N simulated
//! VMs, then SIGKILL the daemon and start it again: time until it listens,
//! and until every VM is reported running.

use std::time::{Duration, Instant};

use testkit::{processes, procfs};

use crate::client::{self, StartAs};
use crate::daemon::{Daemon, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{
    CallOutcome, Outcome, PollerCost, Restart, ScaleFigures, ScaleResult, ScaleStep,
};
use crate::stats::{ResourceWindow, Sampler, round1, round3, shown};
use rpc::protocol::remote::{ConnectGetAllDomainStatsArgs, ConnectGetAllDomainStatsRet, procedure};

use super::{start_vms, vm_names};

/// Descriptors ferrovirtd holds per VM (monitor socket, pidfd), and what
/// it needs besides.
const FDS_PER_VM: usize = 2;
const FDS_SPARE: usize = 300;
/// How long re-adoption of every VM may take after a restart.
const READOPT: Duration = Duration::from_secs(300);
/// A pause after starting the VMs, before measuring the daemon's memory.
const SETTLE: Duration = Duration::from_secs(1);

pub(crate) async fn run(env: &Env, params: &Params, nofile: u64) -> BenchResult<ScaleResult> {
    // Stay under RLIMIT_NOFILE, which an unprivileged container may not
    // raise.
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    let cap = nofile.saturating_sub(FDS_SPARE) / FDS_PER_VM;
    let mut rows = Vec::new();
    for &requested in &params.scale_n {
        let count = requested.min(cap);
        let capped_by = (count < requested).then(|| {
            format!(
                "RLIMIT_NOFILE hard limit {nofile} (cannot be raised here), {FDS_PER_VM} fds per VM"
            )
        });
        if let Some(why) = &capped_by {
            eprintln!("  [ferrovirtd] scale: N={requested} capped to {count}: {why}");
        }
        let outcome = match step(env, count, params.scale_qemu_user.as_deref()).await {
            Ok(figures) => Outcome::Done(figures),
            Err(error) => Outcome::Failed {
                error: error.to_string(),
            },
        };
        report_step(count, &outcome);
        rows.push(ScaleStep {
            vms: count,
            requested_n: requested,
            capped_by,
            outcome,
        });
    }
    Ok(ScaleResult { rows })
}

fn report_step(count: usize, outcome: &Outcome<ScaleFigures>) {
    match outcome {
        Outcome::Done(figures) => eprintln!(
            "  [ferrovirtd] scale N={count}: started in {} s, RSS {} MiB, restart: listening {} s, all running {} s, {} answer running",
            figures.start.total_s,
            shown(figures.daemon_after_start.map(|memory| memory.rss_mib)),
            figures.restart.listening_s,
            shown(figures.restart.all_running_s),
            figures.restart.get_state_running
        ),
        Outcome::Failed { error } => eprintln!("  [ferrovirtd] scale N={count}: FAILED: {error}"),
    }
}

async fn step(env: &Env, count: usize, user: Option<&str>) -> BenchResult<ScaleFigures> {
    let extra = user
        .map(|u| format!("user = \"{u}\"\n"))
        .unwrap_or_default();
    let mut daemon = Daemon::start_ferrovirtd_in(env, &format!("scale{count}"), None, &extra)?;
    let figures = measure(&mut daemon, count).await;
    // Thousands of destroys through the RPC would take a while: SIGTERM
    // the daemon and kill the sims by pid (their command lines name the
    // root).
    daemon.wedged = true;
    daemon.stop().await;
    figures
}

async fn measure(daemon: &mut Daemon, count: usize) -> BenchResult<ScaleFigures> {
    let daemon_idle = daemon.memory();
    let names = vm_names("s", 0, count);
    let start = start_vms(daemon, &names, Emu::Sim, &[], StartAs::Running, 16).await?;
    tokio::time::sleep(SETTLE).await;
    let daemon_after_start = daemon.memory();
    let daemon_fds = daemon.pid().and_then(procfs::fd_count).unwrap_or(0);
    let sim_pss_kib_avg = sim_pss(daemon);
    let poller = poller_cost(daemon).await?;
    let restart = restart(daemon, count).await?;
    Ok(ScaleFigures {
        start,
        daemon_idle,
        daemon_after_start,
        daemon_fds,
        sim_pss_kib_avg,
        restart,
        daemon_after_restart: daemon.memory(),
        poller: Some(poller),
    })
}

/// The daemon's default statistics interval (the bench does not change it).
const POLLER_INTERVAL: Duration = Duration::from_secs(10);

/// The daemon over two poller intervals with every VM running, then one
/// bulk statistics call over all of them.
async fn poller_cost(daemon: &Daemon) -> BenchResult<PollerCost> {
    let pid = daemon
        .pid()
        .ok_or(BenchError::Unsupported("the daemon is not running"))?;
    let sampler = Sampler::start(pid, Duration::from_millis(500), u64::MAX);
    tokio::time::sleep(2 * POLLER_INTERVAL).await;
    let window = ResourceWindow::of(&sampler.finish(), 0.0, f64::MAX);
    let c = client::open_within(&daemon.socket, client::CONNECT).await?;
    let args = ConnectGetAllDomainStatsArgs {
        doms: Vec::new(),
        stats: 0,
        flags: 0,
    };
    let t0 = Instant::now();
    let reply: Result<ConnectGetAllDomainStatsRet, _> =
        c.call(procedure::CONNECT_GET_ALL_DOMAIN_STATS, &args).await;
    let after_s = Some(round3(t0.elapsed().as_secs_f64()));
    c.close().await;
    let (domstats, domstats_records) = match reply {
        Ok(r) => (
            CallOutcome {
                after_s,
                result: "ok".into(),
            },
            r.ret_stats.len(),
        ),
        Err(e) => (
            CallOutcome {
                after_s,
                result: format!("error: {e}"),
            },
            0,
        ),
    };
    eprintln!(
        "  [ferrovirtd] poller: CPU {} % over two intervals; domstats over all {} s ({domstats_records} records)",
        shown(window.as_ref().map(|w| w.cpu_pct_mean)),
        shown(domstats.after_s)
    );
    Ok(PollerCost {
        interval_s: POLLER_INTERVAL.as_secs_f64(),
        window,
        domstats,
        domstats_records,
    })
}

/// Average PSS of up to 20 of the daemon's simulators, KiB.
fn sim_pss(daemon: &Daemon) -> f64 {
    let run_dir = daemon.root.join("run").display().to_string();
    let pss: Vec<u64> = processes::with_arg(&run_dir)
        .into_iter()
        .filter(|pid| Some(*pid) != daemon.pid())
        .take(20)
        .filter_map(procfs::pss_kib)
        .collect();
    if pss.is_empty() {
        0.0
    } else {
        round1(pss.iter().sum::<u64>() as f64 / pss.len() as f64)
    }
}

/// SIGKILL and start again; poll until every VM is reported running, then
/// ask each for its state.
async fn restart(daemon: &mut Daemon, count: usize) -> BenchResult<Restart> {
    let started = Instant::now();
    daemon.kill_and_restart()?;
    let listening_s = round3(started.elapsed().as_secs_f64());
    let client = client::open_within(&daemon.socket, Duration::from_secs(60)).await?;
    let list = async |flags| {
        client
            .list_all_domains(flags)
            .await
            .map_err(BenchError::rpc("list domains"))
    };
    let mut running_seen;
    let all_running_s = loop {
        running_seen = list(client::LIST_ACTIVE | client::LIST_RUNNING)
            .await?
            .len();
        if running_seen >= count {
            break Some(round3(started.elapsed().as_secs_f64()));
        }
        if started.elapsed() > READOPT {
            break None;
        }
        // The polling pace.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // And they answer: GET_STATE on every VM.
    let mut get_state_running = 0;
    for dom in list(client::LIST_ACTIVE).await? {
        if client::state(&client, &dom).await.ok() == Some(client::STATE_RUNNING) {
            get_state_running += 1;
        }
    }
    client.close().await;
    Ok(Restart {
        listening_s,
        all_running_s,
        running_seen,
        get_state_running,
    })
}
