//! `bench`: ferrovirtd and libvirtd side by side, on this machine, with the
//! same QEMU and the same client code.
//!
//! ```text
//! bench all --daemon both --libvirt-harness DIR  # full run (< 15 min), JSON + docs/BENCHMARKS.md
//! bench all --smoke                              # CI: ferrovirtd + qemu-sim only, ~1-2 min
//! bench flood --daemon libvirtd --libvirt-harness DIR
//! bench report --from-json FILE                  # re-render the Markdown from a JSON file
//! bench chaos --kills 500 --seed S               # kill -9 at random instants: lost / orphaned / duplicated
//! ```
//!
//! The scenario runner (`runner`, `scenarios/`) produces typed results
//! (`results`); the renderer (`report/`) turns them into Markdown.

mod chaos;
mod cli;
mod client;
mod control;
mod daemon;
mod error;
mod machine;
mod params;
mod report;
mod results;
mod runner;
mod scenarios;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Scenario, workspace_root};
use daemon::Env;
use results::{Mode, Report};
use runner::Plan;

/// RLIMIT_NOFILE the scale scenario asks for: 10,000 VMs hold two
/// descriptors each in the daemon, which inherits the limit.
const SCALE_NOFILE: u64 = 262_144;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.scenario == Scenario::Report {
        return render_only(&cli);
    }
    if let Err(message) = check_inputs(&cli) {
        eprintln!("bench: {message}");
        return ExitCode::from(2);
    }
    let nofile = raise_nofile();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = if cli.scenario == Scenario::Chaos {
        runtime.block_on(run_chaos(&cli))
    } else {
        runtime.block_on(run(&cli, nofile))
    };
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// The binaries to measure and the libvirt harness, when needed, exist.
fn check_inputs(cli: &Cli) -> Result<(), String> {
    let env = environment(cli, false);
    if cli.which() != cli::Which::Libvirtd {
        for path in [&env.ferrovirtd, &env.qemu_sim] {
            if !path.is_file() {
                return Err(format!(
                    "{} not found (build it: cargo build --release -p ferrovirtd -p qemu-sim)",
                    path.display()
                ));
            }
        }
    }
    if !needs_libvirt_harness(cli) {
        return Ok(());
    }
    let Some(harness) = &env.libvirt_harness else {
        return Err(
            "measuring libvirtd and the qmp-proxy rows needs the libvirt harness \
             (start-libvirtd.sh, stop-libvirtd.sh, qmp-proxy.py): pass --libvirt-harness DIR \
             or set FERROVIRT_LIBVIRT_HARNESS, or run with --daemon ferrovirtd --no-proxy-rows"
                .into(),
        );
    };
    for script in ["start-libvirtd.sh", "stop-libvirtd.sh", "qmp-proxy.py"] {
        if !harness.join(script).is_file() {
            return Err(format!(
                "the libvirt harness {} has no {script}",
                harness.display()
            ));
        }
    }
    Ok(())
}

/// Whether a chosen scenario runs libvirtd or a proxied QEMU.
fn needs_libvirt_harness(cli: &Cli) -> bool {
    let proxied = |rows: Vec<(daemon::DaemonKind, daemon::Emu)>| {
        rows.iter()
            .any(|(kind, emu)| *kind == daemon::DaemonKind::Libvirtd || *emu == daemon::Emu::Proxy)
    };
    let faults = [Scenario::Flood, Scenario::Hung, Scenario::Events];
    (cli.wants(Scenario::Rpc) && proxied(cli.rpc_rows()))
        || (faults.iter().any(|scenario| cli.wants(*scenario)) && proxied(cli.fault_rows()))
}

/// Paths and facts of the run; `kvm` as probed.
fn environment(cli: &Cli, kvm: bool) -> Env {
    let beside_bench = |name: &str| {
        testkit::binaries::target_dir()
            .map(|dir| dir.join(name))
            .unwrap_or_else(|_| PathBuf::from(name))
    };
    Env {
        work: std::env::temp_dir().join(format!("fvb-{}", std::process::id())),
        ferrovirtd: cli
            .ferrovirtd
            .clone()
            .unwrap_or_else(|| beside_bench("ferrovirtd")),
        qemu_sim: cli
            .qemu_sim
            .clone()
            .unwrap_or_else(|| beside_bench("qemu-sim")),
        qemu: cli.qemu.clone(),
        libvirt_harness: cli.libvirt_harness.clone(),
        lvb_state: cli.lvb_state.clone(),
        monitor_timeout_s: cli.monitor_timeout,
        kvm,
    }
}

/// As root, lifts RLIMIT_NOFILE's hard limit to SCALE_NOFILE; then raises
/// the soft limit to the hard one, as the daemon does. Returns the limit.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && hard < SCALE_NOFILE
    {
        // Refused unless privileged: then the hard limit stays as it is.
        let _ = setrlimit(Resource::RLIMIT_NOFILE, SCALE_NOFILE, SCALE_NOFILE);
    }
    testkit::raise_nofile().unwrap_or(0)
}

/// `bench chaos`: not a comparison, so no report of the other scenarios.
async fn run_chaos(cli: &Cli) -> ExitCode {
    let kvm = cli.chaos_real && testkit::accel::kvm_works(&cli.qemu, &std::env::temp_dir()).await;
    chaos::run(cli, &environment(cli, kvm)).await
}

async fn run(cli: &Cli, nofile: u64) -> ExitCode {
    let kvm = testkit::accel::kvm_works(&cli.qemu, &std::env::temp_dir()).await;
    let plan = Plan {
        cli,
        env: environment(cli, kvm),
        params: cli.params(),
        nofile,
    };
    if let Err(error) = std::fs::create_dir_all(&plan.env.work) {
        eprintln!("bench: cannot create {}: {error}", plan.env.work.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "bench: work dir {}, nofile {nofile}, KVM {kvm}",
        plan.env.work.display()
    );
    let report = runner::run(&plan).await;
    let json_path = cli
        .out
        .clone()
        .unwrap_or_else(|| default_json_path(&report));
    if let Err(message) = write_json(&report, &json_path) {
        eprintln!("bench: {message}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "bench: wrote {} ({} s)",
        json_path.display(),
        report.duration_s
    );
    if let Some(markdown) = report_path(cli) {
        write_markdown(&report, &markdown, &json_path);
    }
    ExitCode::SUCCESS
}

/// `bench-results/<time>-<mode>-<scenario>.json` under the workspace (the
/// directory ignores itself for git).
fn default_json_path(report: &Report) -> PathBuf {
    let dir = workspace_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(".gitignore"), "*\n");
    dir.join(format!(
        "{}-{}-{}.json",
        report.unix_time,
        report.mode.name(),
        report.scenario
    ))
}

fn write_json(report: &Report, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let json =
        serde_json::to_string_pretty(report).map_err(|error| format!("encode JSON: {error}"))?;
    std::fs::write(path, json + "\n")
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// The Markdown report to write: --report, else docs/BENCHMARKS.md for a
/// full `all` run.
fn report_path(cli: &Cli) -> Option<PathBuf> {
    if cli.no_report {
        None
    } else if let Some(path) = &cli.report {
        Some(path.clone())
    } else if cli.scenario == Scenario::All && cli.mode() == Mode::Full {
        Some(workspace_root().join("docs/BENCHMARKS.md"))
    } else {
        None
    }
}

/// `bench report --from-json FILE`.
fn render_only(cli: &Cli) -> ExitCode {
    let Some(source) = &cli.from_json else {
        eprintln!("bench report needs --from-json FILE");
        return ExitCode::from(2);
    };
    let report: Result<Report, String> = std::fs::read_to_string(source)
        .map_err(|error| error.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()));
    match report {
        Ok(report) => {
            let out = cli
                .report
                .clone()
                .unwrap_or_else(|| workspace_root().join("docs/BENCHMARKS.md"));
            write_markdown(&report, &out, source);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: {}: {error}", source.display());
            ExitCode::from(2)
        }
    }
}

fn write_markdown(report: &Report, out: &Path, source: &Path) {
    let markdown = report::render(report, &source.display().to_string());
    match std::fs::write(out, markdown) {
        Ok(()) => eprintln!("bench: wrote {}", out.display()),
        Err(error) => eprintln!("bench: cannot write {}: {error}", out.display()),
    }
}
