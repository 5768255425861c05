//! The scenarios, one module each, and what they share: starting
//! sets of VMs, and a rig of quiet VMs beside one VM with a fault injector.

pub(crate) mod events;
pub(crate) mod flood;
pub(crate) mod hotplug;
pub(crate) mod hung;
pub(crate) mod migration;
pub(crate) mod nics;
pub(crate) mod rpc;
pub(crate) mod scale;
pub(crate) mod stats;
pub(crate) mod storage;
pub(crate) mod transfer;

use std::time::{Duration, Instant};

use testkit::latency::Percentiles;

use crate::client::{self, StartAs};
use crate::control::Injector;
use crate::daemon::{Daemon, DaemonKind, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::StartFigures;
use crate::stats::{round1, round3};

/// A pause after starting VMs, before measuring, so start-up work (QMP
/// negotiation, the first status writes) is not measured as load.
const SETTLE: Duration = Duration::from_millis(500);

/// A tag unique to this run, the first characters of every VM name, so
/// that QEMUs left behind can be found by pid (`guest=TAG...`).
pub(crate) fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| format!("b{}", std::process::id()))
}

/// VM names `TAG<prefix>00001...` for indices `from..to`.
fn vm_names(prefix: &str, from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|index| format!("{}{prefix}{:05}", run_tag(), index + 1))
        .collect()
}

/// Defines and starts `names` with `parallel` calls in flight; `extra`
/// goes to each one's `<qemu:commandline>`.
async fn start_vms(
    daemon: &Daemon,
    names: &[String],
    emu: Emu,
    extra: &[String],
    start_as: StartAs,
    parallel: usize,
) -> BenchResult<StartFigures> {
    let client = client::open_within(&daemon.socket, client::CONNECT).await?;
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut collect =
        |joined: Option<Result<BenchResult<Duration>, tokio::task::JoinError>>| match joined {
            Some(Ok(Ok(took))) => latencies.push(took),
            Some(Ok(Err(error))) => errors.push(error.to_string()),
            Some(Err(error)) => errors.push(error.to_string()),
            None => {}
        };
    for name in names {
        while calls.len() >= parallel {
            collect(calls.join_next().await);
        }
        let xml = daemon.domain_xml(name, emu, extra)?;
        let client = client.clone();
        calls.spawn(async move {
            let sent = Instant::now();
            client::define_start(&client, &xml, start_as).await?;
            Ok(sent.elapsed())
        });
    }
    while !calls.is_empty() {
        collect(calls.join_next().await);
    }
    let total_s = started.elapsed().as_secs_f64();
    client.close().await;
    if let Some(first) = errors.first() {
        return Err(BenchError::Start {
            failed: errors.len(),
            total: names.len(),
            first: first.clone(),
        });
    }
    let per_vm = Percentiles::of(&latencies);
    let millis = |value: Duration| round1(value.as_secs_f64() * 1e3);
    Ok(StartFigures {
        vms: names.len(),
        parallel,
        total_s: round3(total_s),
        per_vm_ms_p50: millis(per_vm.p50),
        per_vm_ms_p99: millis(per_vm.p99),
    })
}

/// A daemon with quiet paused VMs and one special VM with a fault
/// injector (qemu-sim's control socket, or the QMP proxy).
pub(crate) struct Rig {
    pub daemon: Daemon,
    pub quiet: Vec<String>,
    pub special: String,
    pub injector: Injector,
    pub special_emu: Emu,
}

/// How the rig's special VM is started.
pub(crate) struct Special {
    pub emu: Emu,
    pub start_as: StartAs,
    /// More `<qemu:commandline>` arguments.
    pub extra: Vec<String>,
}

impl Rig {
    pub(crate) async fn start(
        kind: DaemonKind,
        special: Special,
        env: &Env,
        params: &Params,
        tag: &str,
    ) -> BenchResult<Rig> {
        let daemon = Daemon::start(kind, env, tag)?;
        match Self::populate(&daemon, special, params).await {
            Ok((quiet, name, injector, special_emu)) => {
                tokio::time::sleep(SETTLE).await;
                Ok(Rig {
                    daemon,
                    quiet,
                    special: name,
                    injector,
                    special_emu,
                })
            }
            Err(error) => {
                daemon.stop().await;
                Err(error)
            }
        }
    }

    /// Starts the quiet VMs and the special one; waits for its injector.
    async fn populate(
        daemon: &Daemon,
        special: Special,
        params: &Params,
    ) -> BenchResult<(Vec<String>, String, Injector, Emu)> {
        let quiet_emu = if special.emu == Emu::Sim {
            Emu::Sim
        } else {
            Emu::Real
        };
        let quiet = vm_names("q", 0, params.quiet_vms);
        start_vms(daemon, &quiet, quiet_emu, &[], StartAs::Paused, 4).await?;
        let name = format!("{}fl00001", run_tag());
        let mut extra = special.extra;
        let injector = if special.emu == Emu::Sim {
            let ctl = daemon.sim_ctl(&name);
            extra.extend(["-sim-control".to_owned(), ctl.display().to_string()]);
            Injector::Sim(ctl)
        } else {
            Injector::Proxy(daemon.proxy_ctl(&name))
        };
        let names = std::slice::from_ref(&name);
        start_vms(daemon, names, special.emu, &extra, special.start_as, 1).await?;
        injector.wait_ready(Duration::from_secs(10)).await?;
        Ok((quiet, name, injector, special.emu))
    }

    /// A paced GET_INFO probe over `names` on a connection of its own.
    fn probe(&self, names: Vec<String>, params: &Params, duration: Duration) -> client::Probe {
        client::Probe {
            socket: self.daemon.socket.clone(),
            names,
            op: client::Op::Info,
            period: params.probe_period(),
            duration,
            grace: Duration::from_secs(5),
        }
    }
}

/// Does the daemon answer a fresh connection + GET_INFO within `limit`?
/// Returns how long it took.
async fn responsive(daemon: &Daemon, dom: &str, limit: Duration) -> Option<f64> {
    let started = Instant::now();
    let call = async {
        let client = testkit::client::open(&daemon.socket).await?;
        let found = client::lookup(&client, dom).await?;
        client
            .domain_get_info(&found)
            .await
            .map_err(BenchError::rpc("get info"))?;
        client.close().await;
        Ok::<_, BenchError>(())
    };
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(())) => Some(round3(started.elapsed().as_secs_f64())),
        _ => None,
    }
}
