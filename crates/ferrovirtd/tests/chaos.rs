//! Chaos (docs/REQUIREMENTS.md 9, survives restarts): two clients drive
//! random mixes of every mutating operation the daemon has (start, create,
//! destroy, shutdown, suspend, resume, define, undefine, save, restore,
//! managed save, block copy and abort, storage volume create, delete and
//! clone, pool define and undefine, secret define with its value and
//! undefine) over the real RPC protocol, while the daemon is killed with
//! SIGKILL at random instants and started again. After every restart
//! (`testkit::chaos::check`): no definition lost or duplicated, every
//! acknowledged secret holds its whole value, every running domain has
//! exactly one QEMU, no QEMU runs without a running domain, the state
//! reported is the process's, no temporary or partial file is left, no job
//! dangles.
//!
//! Seeded: a failure prints its seed; `FERROVIRT_CHAOS_SEED=N` replays
//! its choices (`FERROVIRT_CHAOS_KILLS=N` changes the number of kills).
//! `bench chaos --kills N --seed S` runs the same for a long time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use testkit::chaos::{self, Config, Emulator};

fn kills(default: usize) -> usize {
    std::env::var("FERROVIRT_CHAOS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}

async fn run_and_assert(cfg: Config) {
    let seed = cfg.seed;
    println!("chaos seed {seed} (replay: FERROVIRT_CHAOS_SEED={seed})");
    let summary = chaos::run(&cfg)
        .await
        .unwrap_or_else(|e| panic!("chaos seed {seed}: the harness failed: {e}"));
    println!("{}", summary.render());
    println!("refusals:\n{}", summary.render_refusals());
    assert!(
        summary.violations.is_empty(),
        "chaos seed {seed} broke a property (replay with FERROVIRT_CHAOS_SEED={seed}; \
         root and daemon log kept in {}):\n{}",
        summary.root.display(),
        summary.render()
    );
    // Every kill cut off the clients' calls: the kills landed while they
    // worked, not between runs.
    let interrupted: u64 = summary.ops.values().map(|c| c.interrupted).sum();
    assert!(interrupted >= cfg.kills as u64, "{}", summary.render());
    let done: u64 = summary.ops.values().map(|c| c.ok).sum();
    assert!(
        done >= cfg.kills as u64,
        "operations succeeded between kills\n{}",
        summary.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_domains_survive_sigkill_at_random_instants() {
    let cfg = Config {
        seed: chaos::seed_from_env(),
        kills: kills(40),
        clients: 2,
        base_domains: 10,
        emulator: Emulator::Sim(common::qemu_sim()),
        ferrovirtd: PathBuf::from(env!("CARGO_BIN_EXE_ferrovirtd")),
        parent: PathBuf::from("/tmp"),
        kill_window: (Duration::from_millis(50), Duration::from_millis(1200)),
        sim_job_ms: 400,
        verbose: true,
    };
    run_and_assert(cfg).await;
}

/// The same with real QEMU and qcow2 disks, over a few kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_domains_survive_sigkill_at_random_instants() {
    testkit::tools::Tool::QemuImg.require();
    let cfg = Config {
        seed: chaos::seed_from_env(),
        kills: kills(4),
        clients: 2,
        base_domains: 3,
        emulator: Emulator::Real {
            qemu: PathBuf::from("/usr/bin/qemu-system-x86_64"),
            domain_type: testkit::accel::test_domain_type().to_owned(),
        },
        ferrovirtd: PathBuf::from(env!("CARGO_BIN_EXE_ferrovirtd")),
        parent: PathBuf::from("/tmp"),
        kill_window: (Duration::from_millis(500), Duration::from_millis(4000)),
        sim_job_ms: 0,
        verbose: true,
    };
    run_and_assert(cfg).await;
}
