//! Runs the chosen scenarios for each daemon and builds the report.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{Cli, Scenario, Which, workspace_root};
use crate::daemon::{DaemonKind, Emu, Env};
use crate::error::BenchResult;
use crate::machine;
use crate::params::Params;
use crate::results::{Outcome, Report, Row, Scenarios};
use crate::scenarios::{
    self, events, flood, hotplug, hung, migration, nics, rpc, scale, stats, storage, transfer,
};
use crate::stats::round1;

/// Everything a run needs, decided before it starts.
pub(crate) struct Plan<'a> {
    pub cli: &'a Cli,
    pub env: Env,
    pub params: Params,
    /// RLIMIT_NOFILE in force (the scale scenario stays under it).
    pub nofile: u64,
}

/// Runs the plan; the report holds every row, failed ones with their error.
pub(crate) async fn run(plan: &Plan<'_>) -> Report {
    let started = Instant::now();
    let machine = machine::describe(&plan.env.qemu, plan.env.kvm);
    let (scenarios, scenario_s) = run_scenarios(plan).await;
    cleanup(plan);
    let cli = plan.cli;
    Report {
        bench: "ferrovirtd vs libvirtd".into(),
        format: 2,
        mode: cli.mode(),
        scenario: cli.scenario.name().into(),
        daemons: cli.which().name().into(),
        command: Cli::command_line(),
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
        machine,
        git: cli
            .build_label
            .clone()
            .or_else(|| machine::git_state(&workspace_root())),
        loadavg_end: testkit::procfs::loadavg(),
        duration_s: round1(started.elapsed().as_secs_f64()),
        scenario_s,
        params: plan.params.clone(),
        scenarios,
    }
}

/// The scenarios and the seconds each took.
async fn run_scenarios(plan: &Plan<'_>) -> (Scenarios, BTreeMap<String, f64>) {
    let (cli, env, params) = (plan.cli, &plan.env, &plan.params);
    let mut scenarios = Scenarios::default();
    let mut timings = BTreeMap::new();
    let mut lap = Instant::now();
    let mut record = |name: &str, lap: &mut Instant| {
        timings.insert(name.to_owned(), round1(lap.elapsed().as_secs_f64()));
        *lap = Instant::now();
    };
    let fault_rows = cli.fault_rows();
    if cli.wants(Scenario::Rpc) {
        let measure = |kind, emu| rpc::run(kind, emu, env, params);
        scenarios.rpc = Some(rows(&cli.rpc_rows(), measure).await);
        record("rpc", &mut lap);
    }
    if cli.wants(Scenario::Flood) {
        let measure = |kind, emu| flood::run(kind, emu, env, params);
        scenarios.flood = Some(rows(&fault_rows, measure).await);
        record("flood", &mut lap);
    }
    if cli.wants(Scenario::Hung) {
        let measure = |kind, emu| hung::run(kind, emu, env, params);
        scenarios.hung = Some(rows(&fault_rows, measure).await);
        record("hung", &mut lap);
    }
    if cli.wants(Scenario::Events) {
        let measure = |kind, emu| events::run(kind, emu, env, params);
        scenarios.events = Some(rows(&fault_rows, measure).await);
        record("events", &mut lap);
    }
    if cli.wants(Scenario::Stats) {
        let measure = |kind, emu| stats::run(kind, emu, env, params);
        scenarios.stats = Some(rows(&fault_rows, measure).await);
        record("stats", &mut lap);
    }
    if cli.wants(Scenario::Scale) && cli.which() != Which::Libvirtd {
        let scale_row = [(DaemonKind::Ferrovirtd, Emu::Sim)];
        let measure = |_, _| scale::run(env, params, plan.nofile);
        scenarios.scale = Some(rows(&scale_row, measure).await);
        record("scale", &mut lap);
    }
    if cli.wants(Scenario::Storage) {
        let measure = |kind, _| storage::run(kind, env, params);
        scenarios.storage = Some(rows(&cli.storage_rows(), measure).await);
        record("storage", &mut lap);
    }
    if cli.wants(Scenario::Transfer) {
        let measure = |kind, _| transfer::run(kind, env, params);
        scenarios.transfer = Some(rows(&cli.storage_rows(), measure).await);
        record("transfer", &mut lap);
    }
    if cli.wants(Scenario::Nics) && cli.which() != Which::Libvirtd {
        let row = [(DaemonKind::Ferrovirtd, Emu::Real)];
        let measure = |_, _| nics::run(env, params);
        scenarios.nics = Some(rows(&row, measure).await);
        record("nics", &mut lap);
    }
    if cli.wants(Scenario::Hotplug) {
        let measure = |kind, _| hotplug::run(kind, env, params);
        scenarios.hotplug = Some(rows(&cli.storage_rows(), measure).await);
        record("hotplug", &mut lap);
    }
    if cli.wants(Scenario::Migration) {
        let measure = |kind, _| migration::run(kind, env, params);
        scenarios.migration = Some(rows(&cli.storage_rows(), measure).await);
        record("migration", &mut lap);
    }
    (scenarios, timings)
}

/// One row per (daemon, QEMU): its figures or its error.
async fn rows<T, Measure, Fut>(pairs: &[(DaemonKind, Emu)], measure: Measure) -> Vec<Row<T>>
where
    Measure: Fn(DaemonKind, Emu) -> Fut,
    Fut: Future<Output = BenchResult<T>>,
{
    let mut rows = Vec::new();
    for &(daemon, qemu) in pairs {
        let outcome = match measure(daemon, qemu).await {
            Ok(figures) => Outcome::Done(figures),
            Err(error) => {
                eprintln!("  [{}/{}] FAILED: {error}", daemon.name(), qemu.label());
                Outcome::Failed {
                    error: error.to_string(),
                }
            }
        };
        rows.push(Row {
            daemon,
            qemu,
            outcome,
        });
    }
    rows
}

/// Kills whatever a failed step left behind, and the work directory.
fn cleanup(plan: &Plan<'_>) {
    let work = &plan.env.work;
    let leftovers = [
        work.to_string_lossy().into_owned(),
        format!("guest={}", scenarios::run_tag()),
    ];
    let killed: usize = leftovers
        .iter()
        .filter_map(|needle| {
            testkit::processes::kill_with_arg(needle, std::time::Duration::from_secs(10)).ok()
        })
        .sum();
    if killed > 0 {
        eprintln!(
            "bench: killed {killed} leftover process(es) under {}",
            work.display()
        );
    }
    let _ = std::fs::remove_dir_all(work);
}
