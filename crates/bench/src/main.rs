//! `bench`: ferrovirtd and libvirtd side by side, on this machine, with the
//! same QEMU and the same client code (issue 7).
//!
//! ```text
//! bench all --daemon both                 # full run (< 15 min), JSON + docs/BENCHMARKS.md
//! bench all --smoke                       # CI: ferrovirtd + qemu-sim only, ~1-2 min
//! bench flood --daemon libvirtd           # one scenario, one daemon
//! bench report --from-json FILE           # re-render the markdown from a JSON file
//! ```

mod client;
mod daemon;
mod qmp;
mod report;
mod scenarios;
mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use daemon::{Emu, Env, Kind};
use scenarios::Params;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Rpc,
    Flood,
    Hung,
    Events,
    Scale,
    /// only render markdown from --from-json
    Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Ferrovirtd,
    Libvirtd,
    Both,
}

/// Benchmarks ferrovirtd and libvirtd side by side (issue 7).
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Cli {
    /// Scenario to run.
    #[arg(value_enum, default_value = "all")]
    scenario: Scenario,
    /// Daemon(s) to measure. Default: ferrovirtd with --smoke, both otherwise.
    #[arg(long, value_enum)]
    daemon: Option<Which>,
    /// Short CI mode: tiny N and short phases; ferrovirtd runs qemu-sim only.
    #[arg(long)]
    smoke: bool,
    /// JSON output file. Default: bench-results/<time>-<scenario>.json under
    /// the workspace (the directory ignores itself for git).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Markdown report to write. Default: docs/BENCHMARKS.md for a full
    /// `all` run, none otherwise.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write no markdown report.
    #[arg(long)]
    no_report: bool,
    /// With `report`: the JSON to render.
    #[arg(long)]
    from_json: Option<PathBuf>,
    /// Skip the like-for-like rows of ferrovirtd with real QEMU behind the
    /// anchors' qmp-proxy.py (flood, hung, events).
    #[arg(long)]
    no_proxy_rows: bool,
    /// Skip the ferrovirtd + qemu-sim rows of flood/hung/events in a full run.
    #[arg(long)]
    no_sim_rows: bool,
    #[arg(long)]
    ferrovirtd: Option<PathBuf>,
    #[arg(long)]
    qemu_sim: Option<PathBuf>,
    #[arg(long, default_value = "/usr/bin/qemu-system-x86_64")]
    qemu: PathBuf,
    /// The libvirt anchors directory (start-libvirtd.sh, qmp-proxy.py, ...).
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// LVB_STATE of the private libvirtd.
    #[arg(long, default_value = "/tmp/fvb-lvb")]
    lvb_state: PathBuf,
    /// Seconds per rpc cell (default 4; smoke 1).
    #[arg(long)]
    cell_secs: Option<f64>,
    /// Flood phase seconds (default 20; smoke 3). The issue asks for 30:
    /// `--flood-secs 30 --cell-secs 5` gives that, in about 16-17 minutes.
    #[arg(long)]
    flood_secs: Option<f64>,
    /// Flood phase seconds of the ferrovirtd + qemu-sim rows (default 10;
    /// not like for like, so shorter to keep a full run under 15 min).
    #[arg(long)]
    sim_flood_secs: Option<f64>,
    /// Flood rates, events/s (default 10000,100000).
    #[arg(long, value_delimiter = ',')]
    flood_rates: Option<Vec<u64>>,
    /// How long to wait for the in-flight call on a hung monitor (default 40; smoke 8).
    #[arg(long)]
    hung_cap_secs: Option<u64>,
    /// VM counts of the rpc scenario (default 10,50,100; smoke 3).
    #[arg(long, value_delimiter = ',')]
    rpc_n: Option<Vec<usize>>,
    /// VM counts of the scale scenario (default 1000,10000; smoke 50).
    #[arg(long, value_delimiter = ',')]
    scale_n: Option<Vec<usize>>,
    /// Free text recorded as the ferrovirtd build that was measured (e.g.
    /// "a93560b, clean export"); default: the workspace's git HEAD.
    #[arg(long)]
    build_label: Option<String>,
    /// ferrovirtd's monitor deadline in seconds.
    #[arg(long, default_value_t = 5)]
    monitor_timeout: u64,
    /// Stop a flood when the daemon's RSS passes this (MiB).
    #[arg(long, default_value_t = 3072)]
    rss_limit_mb: u64,
}

fn workspace_root() -> PathBuf {
    // crates/bench -> workspace
    let m = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    m.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(m)
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn main() {
    let cli = Cli::parse();
    if cli.scenario == Scenario::Report {
        let Some(src) = cli.from_json.as_ref() else {
            eprintln!("bench report needs --from-json FILE");
            std::process::exit(2);
        };
        let v: Value = match std::fs::read_to_string(src)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("bench: {}: {e}", src.display());
                std::process::exit(2);
            }
        };
        let out = cli
            .report
            .clone()
            .unwrap_or_else(|| workspace_root().join("docs/BENCHMARKS.md"));
        write_report(&v, &out, src);
        return;
    }
    let nofile = util::raise_nofile();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(cli, nofile));
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn run(cli: Cli, nofile: u64) -> i32 {
    let which = cli.daemon.unwrap_or(if cli.smoke {
        Which::Ferrovirtd
    } else {
        Which::Both
    });
    let ferro = which != Which::Libvirtd;
    let lv = which != Which::Ferrovirtd;
    let smoke = cli.smoke;
    let p = Params {
        rpc_ns: cli
            .rpc_n
            .clone()
            .unwrap_or(if smoke { vec![3] } else { vec![10, 50, 100] }),
        cell: Duration::from_secs_f64(cli.cell_secs.unwrap_or(if smoke { 1.0 } else { 4.0 })),
        flood_s: cli.flood_secs.unwrap_or(if smoke { 3.0 } else { 20.0 }),
        sim_flood_s: cli.sim_flood_secs.unwrap_or(if smoke { 3.0 } else { 10.0 }),
        flood_rates: cli.flood_rates.clone().unwrap_or(vec![10_000, 100_000]),
        pre_s: if smoke { 1.0 } else { 2.0 },
        post_s: if smoke { 1.0 } else { 3.0 },
        bg_vms: if smoke { 3 } else { 10 },
        probe_rate: 500.0,
        hung_cap: Duration::from_secs(cli.hung_cap_secs.unwrap_or(if smoke { 8 } else { 40 })),
        hung_window: Duration::from_secs(if smoke { 2 } else { 8 }),
        ev_samples: if smoke { 20 } else { 100 },
        scale_ns: cli
            .scale_n
            .clone()
            .unwrap_or(if smoke { vec![50] } else { vec![1000, 10_000] }),
        rss_limit_mb: cli.rss_limit_mb,
        rpc_emu_ferro: if smoke { Emu::Sim } else { Emu::Real },
    };
    let work = PathBuf::from(format!("/tmp/fvb-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&work);
    let env = Env {
        work: work.clone(),
        ferrovirtd: cli
            .ferrovirtd
            .clone()
            .unwrap_or_else(|| sibling("ferrovirtd")),
        qemu_sim: cli.qemu_sim.clone().unwrap_or_else(|| sibling("qemu-sim")),
        qemu: cli.qemu.clone(),
        anchors: cli.anchors.clone().unwrap_or_else(daemon::anchors_default),
        lvb_state: cli.lvb_state.clone(),
        monitor_timeout_s: cli.monitor_timeout,
    };
    for (what, path) in [("ferrovirtd", &env.ferrovirtd), ("qemu-sim", &env.qemu_sim)] {
        if ferro && !path.exists() {
            eprintln!(
                "bench: {what} not found at {} (build it: cargo build --release -p ferrovirtd -p qemu-sim)",
                path.display()
            );
            return 2;
        }
    }
    if lv && !env.anchors.join("start-libvirtd.sh").exists() {
        eprintln!(
            "bench: libvirt anchors not found at {} (--anchors)",
            env.anchors.display()
        );
        return 2;
    }
    let t_run = Instant::now();
    let machine = util::machine_info(&env.qemu.display().to_string());
    let sc = cli.scenario;
    let want = |s: Scenario| sc == Scenario::All || sc == s;
    let proxy_rows = ferro && !cli.no_proxy_rows && !smoke;
    let sim_rows = ferro && (smoke || !cli.no_sim_rows);
    let mut out = serde_json::Map::new();
    let argv: Vec<String> = std::env::args()
        .map(|a| {
            if a.contains([' ', '\'', '"', '(', ')']) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect();
    eprintln!("bench: work dir {}, nofile {nofile}", work.display());

    // rows: (daemon, qemu)
    let special_rows = {
        let mut v = Vec::new();
        if sim_rows {
            v.push((Kind::Ferro, Emu::Sim));
        }
        if proxy_rows {
            v.push((Kind::Ferro, Emu::Proxy));
        }
        if lv {
            v.push((Kind::Libvirt, Emu::Proxy));
        }
        v
    };

    let mut timings = serde_json::Map::new();
    let mut t_sc = Instant::now();
    let mut lap = |name: &str, t: &mut Instant| {
        timings.insert(name.into(), json!(util::round1(t.elapsed().as_secs_f64())));
        *t = Instant::now();
    };
    if want(Scenario::Rpc) {
        let mut rows = Vec::new();
        if ferro {
            rows.push(row(
                scenarios::rpc(Kind::Ferro, p.rpc_emu_ferro, &env, &p).await,
                "ferrovirtd",
                p.rpc_emu_ferro,
            ));
        }
        if lv {
            rows.push(row(
                scenarios::rpc(Kind::Libvirt, Emu::Real, &env, &p).await,
                "libvirtd",
                Emu::Real,
            ));
        }
        out.insert("rpc".into(), Value::Array(rows));
        lap("rpc", &mut t_sc);
    }
    if want(Scenario::Flood) {
        let mut rows = Vec::new();
        for &(k, e) in &special_rows {
            rows.push(row(scenarios::flood(k, e, &env, &p).await, kname(k), e));
        }
        out.insert("flood".into(), Value::Array(rows));
        lap("flood", &mut t_sc);
    }
    if want(Scenario::Hung) {
        let mut rows = Vec::new();
        for &(k, e) in &special_rows {
            let r = row(scenarios::hung(k, e, &env, &p).await, kname(k), e);
            eprintln!(
                "  [{}/{}] hung: in-flight {} destroy {} others p99 {} -> {} us",
                kname(k),
                scenarios::emu_label(e),
                r["inflight"],
                r["destroy"],
                r["others_base"]["p99_us"],
                r["others_stuck"]["p99_us"]
            );
            rows.push(r);
        }
        out.insert("hung".into(), Value::Array(rows));
        lap("hung", &mut t_sc);
    }
    if want(Scenario::Events) {
        let mut rows = Vec::new();
        for &(k, e) in &special_rows {
            let r = row(scenarios::events(k, e, &env, &p).await, kname(k), e);
            eprintln!(
                "  [{}/{}] events: idle p50 {} p99 {} us; during job p50 {} p99 {} us",
                kname(k),
                scenarios::emu_label(e),
                r["idle"]["p50_us"],
                r["idle"]["p99_us"],
                r["during_job"]["p50_us"],
                r["during_job"]["p99_us"]
            );
            rows.push(r);
        }
        out.insert("events".into(), Value::Array(rows));
        lap("events", &mut t_sc);
    }
    if want(Scenario::Scale) && ferro {
        out.insert(
            "scale".into(),
            Value::Array(vec![row(
                scenarios::scale(&env, &p).await,
                "ferrovirtd",
                Emu::Sim,
            )]),
        );
        lap("scale", &mut t_sc);
    }

    let n = util::kill_processes_under(&work) + util::kill_run_vms();
    if n > 0 {
        eprintln!(
            "bench: killed {n} leftover process(es) under {}",
            work.display()
        );
    }
    let _ = std::fs::remove_dir_all(&work);

    let result = json!({
        "bench": "ferrovirt issue 7: ferrovirtd vs libvirtd",
        "format": 1,
        "mode": if smoke { "smoke" } else { "full" },
        "scenario": format!("{sc:?}").to_lowercase(),
        "daemons": format!("{which:?}").to_lowercase(),
        "command": argv.join(" "),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "machine": machine,
        "git": cli.build_label.clone().map(Value::from).unwrap_or_else(git_state),
        "loadavg_end": util::loadavg(),
        "duration_s": util::round1(t_run.elapsed().as_secs_f64()),
        "scenario_s": Value::Object(timings),
        "params": {
            "rpc_n": p.rpc_ns, "cell_s": p.cell.as_secs_f64(), "flood_s": p.flood_s, "sim_flood_s": p.sim_flood_s, "flood_rates": p.flood_rates,
            "pre_s": p.pre_s, "post_s": p.post_s, "quiet_vms": p.bg_vms, "probe_rate_per_s": p.probe_rate,
            "hung_cap_s": p.hung_cap.as_secs(), "hung_window_s": p.hung_window.as_secs(), "event_samples": p.ev_samples,
            "scale_n": p.scale_ns, "ferrovirtd_monitor_timeout_s": env.monitor_timeout_s, "rss_limit_mib": p.rss_limit_mb,
        },
        "scenarios": Value::Object(out),
    });
    let path = cli.out.clone().unwrap_or_else(|| {
        let dir = workspace_root().join("bench-results");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(".gitignore"), "*\n");
        dir.join(format!(
            "{}-{}-{}.json",
            result["unix_time"],
            result["mode"].as_str().unwrap_or(""),
            result["scenario"].as_str().unwrap_or("")
        ))
    });
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(&result).unwrap_or_default() + "\n",
    ) {
        Ok(()) => eprintln!(
            "bench: wrote {} ({} s)",
            path.display(),
            result["duration_s"]
        ),
        Err(e) => {
            eprintln!("bench: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    let report = if cli.no_report {
        None
    } else if let Some(r) = cli.report.clone() {
        Some(r)
    } else if sc == Scenario::All && !smoke {
        Some(workspace_root().join("docs/BENCHMARKS.md"))
    } else {
        None
    };
    if let Some(r) = report {
        write_report(&result, &r, &path);
    }
    0
}

fn kname(k: Kind) -> &'static str {
    match k {
        Kind::Ferro => "ferrovirtd",
        Kind::Libvirt => "libvirtd",
    }
}

fn row(r: Result<Value, String>, daemon: &str, emu: Emu) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("  [{daemon}/{}] FAILED: {e}", scenarios::emu_label(emu));
            json!({"daemon": daemon, "qemu": scenarios::emu_label(emu), "error": e})
        }
    }
}

fn write_report(v: &Value, out: &std::path::Path, src: &std::path::Path) {
    let md = report::render(v, &src.display().to_string());
    match std::fs::write(out, md) {
        Ok(()) => eprintln!("bench: wrote {}", out.display()),
        Err(e) => eprintln!("bench: cannot write {}: {e}", out.display()),
    }
}

/// HEAD of the workspace and how many paths differ from it (read-only git).
fn git_state() -> Value {
    let root = workspace_root();
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(h) => {
            let dirty = run(&["status", "--porcelain"])
                .map(|s| s.lines().count())
                .unwrap_or(0);
            json!(format!("{} ({} changed paths)", h.trim(), dirty))
        }
        None => Value::Null,
    }
}
