//! `bench chaos --kills N --seed S`: the chaos test of the suite
//! (`testkit::chaos`), for a long time. The kills are spread over seeds
//! S, S+1, ... (`--kills-per-seed` each, a fresh root per seed); every
//! seed's lost / orphaned / duplicated counts and every violation go to
//! stderr and to `bench-results/<time>-chaos.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use testkit::chaos::{self, Broken, Config, Emulator, Summary};

use crate::cli::{Cli, workspace_root};
use crate::daemon::Env;

/// One seed's figures.
#[derive(Debug, Serialize)]
struct SeedResult {
    seed: u64,
    kills: usize,
    seconds: f64,
    lost: usize,
    orphaned: usize,
    duplicated: usize,
    other: usize,
    violations: Vec<String>,
    /// Per operation: [ok, refused, interrupted].
    ops: BTreeMap<String, [u64; 3]>,
    /// What the restarted daemons killed when they reconciled, by reason.
    reconciled: BTreeMap<String, usize>,
}

/// The whole run.
#[derive(Debug, Serialize)]
struct ChaosReport {
    command: String,
    emulator: String,
    first_seed: u64,
    last_seed: u64,
    kills: usize,
    seconds: f64,
    lost: usize,
    orphaned: usize,
    duplicated: usize,
    other: usize,
    seeds: Vec<SeedResult>,
}

/// Runs the chaos seeds and reports; exit status 1 if anything broke.
pub(crate) async fn run(cli: &Cli, env: &Env) -> ExitCode {
    let first = cli.seed.unwrap_or_else(chaos::seed_from_env);
    let per_seed = cli.kills_per_seed.max(1);
    let started = Instant::now();
    let mut seeds = Vec::new();
    let mut left = cli.kills;
    let mut seed = first;
    while left > 0 {
        let kills = left.min(per_seed);
        let cfg = config(cli, env, seed, kills);
        match chaos::run(&cfg).await {
            Ok(summary) => {
                eprintln!("{}", summary.render());
                seeds.push(result(&summary));
            }
            Err(e) => {
                eprintln!("bench: chaos seed {seed}: the harness failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        left -= kills;
        seed += 1;
    }
    let report = totals(cli, first, seed.saturating_sub(1), started.elapsed(), seeds);
    print_totals(&report);
    write(&report);
    if report.lost + report.orphaned + report.duplicated + report.other == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn config(cli: &Cli, env: &Env, seed: u64, kills: usize) -> Config {
    let (emulator, domains, window, job_ms) = if cli.chaos_real {
        let domain_type = if env.kvm { "kvm" } else { "qemu" };
        let real = Emulator::Real {
            qemu: env.qemu.clone(),
            domain_type: domain_type.into(),
        };
        (real, cli.chaos_domains.min(4), (500, 4000), 0)
    } else {
        (
            Emulator::Sim(env.qemu_sim.clone()),
            cli.chaos_domains,
            (50, 1500),
            400,
        )
    };
    Config {
        seed,
        kills,
        clients: 2,
        base_domains: domains,
        emulator,
        ferrovirtd: env.ferrovirtd.clone(),
        parent: std::env::temp_dir(),
        kill_window: (
            Duration::from_millis(window.0),
            Duration::from_millis(window.1),
        ),
        sim_job_ms: job_ms,
        verbose: false,
    }
}

fn result(s: &Summary) -> SeedResult {
    let (lost, orphaned, duplicated) = (
        s.count(Broken::Lost),
        s.count(Broken::Orphaned),
        s.count(Broken::Duplicated),
    );
    SeedResult {
        seed: s.seed,
        kills: s.kills,
        seconds: s.elapsed.as_secs_f64(),
        lost,
        orphaned,
        duplicated,
        other: s.violations.len() - lost - orphaned - duplicated,
        violations: s
            .violations
            .iter()
            .map(|v| format!("after kill {}: {:?}: {}", v.kill, v.broken, v.detail))
            .collect(),
        ops: s
            .ops
            .iter()
            .map(|(k, c)| (format!("{k:?}"), [c.ok, c.refused, c.interrupted]))
            .collect(),
        reconciled: s.reconciled.clone(),
    }
}

fn totals(cli: &Cli, first: u64, last: u64, took: Duration, seeds: Vec<SeedResult>) -> ChaosReport {
    let sum = |f: fn(&SeedResult) -> usize| seeds.iter().map(f).sum::<usize>();
    ChaosReport {
        command: Cli::command_line(),
        emulator: if cli.chaos_real { "qemu" } else { "qemu-sim" }.into(),
        first_seed: first,
        last_seed: last,
        kills: sum(|s| s.kills),
        seconds: took.as_secs_f64(),
        lost: sum(|s| s.lost),
        orphaned: sum(|s| s.orphaned),
        duplicated: sum(|s| s.duplicated),
        other: sum(|s| s.other),
        seeds,
    }
}

fn print_totals(r: &ChaosReport) {
    let mut reconciled: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &r.seeds {
        for (why, n) in &s.reconciled {
            *reconciled.entry(why).or_default() += n;
        }
    }
    for (why, n) in reconciled {
        eprintln!("bench chaos: restarted daemons killed {n}: {why}");
    }
    let interrupted: u64 = r
        .seeds
        .iter()
        .flat_map(|s| s.ops.values())
        .map(|c| c[2])
        .sum();
    eprintln!(
        "bench chaos: {} kills ({}, seeds {}..={}) in {:.0} s, {interrupted} operations cut off: \
         lost {}, orphaned {}, duplicated {}, other {}",
        r.kills,
        r.emulator,
        r.first_seed,
        r.last_seed,
        r.seconds,
        r.lost,
        r.orphaned,
        r.duplicated,
        r.other
    );
}

fn write(r: &ChaosReport) {
    let dir = workspace_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(".gitignore"), "*\n");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path: PathBuf = dir.join(format!("{now}-chaos.json"));
    match serde_json::to_string_pretty(r) {
        Ok(json) => match std::fs::write(&path, json + "\n") {
            Ok(()) => eprintln!("bench: wrote {}", path.display()),
            Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
        },
        Err(e) => eprintln!("bench: cannot encode the chaos report: {e}"),
    }
}
