//! The command line, and the plan of a run drawn from it.

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

use crate::daemon::{DaemonKind, Emu};
use crate::params::Params;
use crate::results::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    All,
    Rpc,
    Flood,
    Hung,
    Events,
    Scale,
    Storage,
    Stats,
    /// Volume upload and download through the daemon's streams.
    Transfer,
    /// Guest networking in a namespace (ferrovirtd alone).
    Nics,
    /// Attach + detach of a virtio disk on a booted real guest.
    Hotplug,
    /// Live migration between two daemons of one kind in a namespace
    /// (libvirtd: two instances, needs the libvirt harness's reaper.py);
    /// ferrovirtd also under an event flood.
    Migration,
    /// Only render the Markdown report of --from-json.
    Report,
    /// kill -9 of ferrovirtd at random instants under random operations
    /// (not part of `all`): lost / orphaned / duplicated counts.
    Chaos,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Rpc => "rpc",
            Scenario::Flood => "flood",
            Scenario::Hung => "hung",
            Scenario::Events => "events",
            Scenario::Scale => "scale",
            Scenario::Storage => "storage",
            Scenario::Stats => "stats",
            Scenario::Transfer => "transfer",
            Scenario::Nics => "nics",
            Scenario::Hotplug => "hotplug",
            Scenario::Migration => "migration",
            Scenario::Report => "report",
            Scenario::Chaos => "chaos",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
    Ferrovirtd,
    Libvirtd,
    Both,
}

impl Which {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Which::Ferrovirtd => "ferrovirtd",
            Which::Libvirtd => "libvirtd",
            Which::Both => "both",
        }
    }
}

/// Benchmarks ferrovirtd and libvirtd side by side, on this machine, with
/// the same QEMU and the same client.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
pub(crate) struct Cli {
    /// Scenario to run.
    #[arg(value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// Daemon(s) to measure. Default: ferrovirtd with --smoke, both otherwise.
    #[arg(long, value_enum)]
    pub daemon: Option<Which>,
    /// Short CI mode: tiny N and short phases; ferrovirtd runs qemu-sim only.
    #[arg(long)]
    pub smoke: bool,
    /// JSON output file. Default: bench-results/<time>-<mode>-<scenario>.json
    /// under the workspace (the directory ignores itself for git).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Markdown report to write. Default: docs/BENCHMARKS.md for a full
    /// `all` run, none otherwise.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write no Markdown report.
    #[arg(long)]
    pub no_report: bool,
    /// With `report`: the JSON to render.
    #[arg(long)]
    pub from_json: Option<PathBuf>,
    /// Skip the like-for-like rows of ferrovirtd with real QEMU behind the
    /// libvirt harness's qmp-proxy.py (flood, hung, events).
    #[arg(long)]
    pub no_proxy_rows: bool,
    /// Skip the ferrovirtd + qemu-sim rows of flood/hung/events in a full run.
    #[arg(long)]
    pub no_sim_rows: bool,
    /// The ferrovirtd binary. Default: beside this one.
    #[arg(long)]
    pub ferrovirtd: Option<PathBuf>,
    /// The qemu-sim binary. Default: beside this one.
    #[arg(long)]
    pub qemu_sim: Option<PathBuf>,
    #[arg(long, default_value = "/usr/bin/qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// The libvirt harness: a directory with start-libvirtd.sh,
    /// stop-libvirtd.sh and qmp-proxy.py, which run a private libvirtd and
    /// put a fault-injecting proxy in front of QEMU's monitor. Needed to
    /// measure libvirtd and for the proxy rows.
    #[arg(long, env = "FERROVIRT_LIBVIRT_HARNESS")]
    pub libvirt_harness: Option<PathBuf>,
    /// LVB_STATE of the private libvirtd.
    #[arg(long, default_value = "/tmp/fvb-lvb")]
    pub lvb_state: PathBuf,
    /// Seconds per rpc cell (default 4; smoke 1).
    #[arg(long)]
    pub cell_secs: Option<f64>,
    /// Flood phase seconds (default 20; smoke 3). `--flood-secs 30
    /// --cell-secs 5` gives 30 s floods in about 16-17 minutes.
    #[arg(long)]
    pub flood_secs: Option<f64>,
    /// Flood phase seconds of the ferrovirtd + qemu-sim rows (default 10;
    /// not like for like, so shorter to keep a full run under 15 min).
    #[arg(long)]
    pub sim_flood_secs: Option<f64>,
    /// Flood rates, events/s (default 10000,100000).
    #[arg(long, value_delimiter = ',')]
    pub flood_rates: Option<Vec<u64>>,
    /// How long to wait for the in-flight call on a hung monitor (default 40; smoke 8).
    #[arg(long)]
    pub hung_cap_secs: Option<u64>,
    /// Migrations per guest in the migration scenario, back and forth
    /// (default 10; smoke 2).
    #[arg(long)]
    pub migration_rounds: Option<usize>,
    /// VM counts of the rpc scenario (default 10,50,100; smoke 3).
    #[arg(long, value_delimiter = ',')]
    pub rpc_n: Option<Vec<usize>>,
    /// VM counts of the scale scenario (default 1000,10000; smoke 50).
    #[arg(long, value_delimiter = ',')]
    pub scale_n: Option<Vec<usize>>,
    /// scale: run the simulators as this account (ferrovirtd's `user`).
    #[arg(long)]
    pub scale_qemu_user: Option<String>,
    /// Free text recorded as the ferrovirtd build that was measured (e.g.
    /// "a93560b, clean export"); default: the workspace's git HEAD.
    #[arg(long)]
    pub build_label: Option<String>,
    /// ferrovirtd's monitor deadline in seconds.
    #[arg(long, default_value_t = 5)]
    pub monitor_timeout: u64,
    /// Stop a flood when the daemon's RSS passes this (MiB).
    #[arg(long, default_value_t = 3072)]
    pub rss_limit_mb: u64,
    /// chaos: how many times ferrovirtd is killed, over all seeds.
    #[arg(long, default_value_t = 500)]
    pub kills: usize,
    /// chaos: the first seed (default: from the clock); seeds SEED,
    /// SEED+1, ... each run on a fresh root.
    #[arg(long)]
    pub seed: Option<u64>,
    /// chaos: kills per seed.
    #[arg(long, default_value_t = 50)]
    pub kills_per_seed: usize,
    /// chaos: real QEMU with qcow2 disks instead of qemu-sim.
    #[arg(long)]
    pub chaos_real: bool,
    /// chaos: persistent domains every client drives.
    #[arg(long, default_value_t = 10)]
    pub chaos_domains: usize,
}

impl Cli {
    pub(crate) fn mode(&self) -> Mode {
        if self.smoke { Mode::Smoke } else { Mode::Full }
    }

    pub(crate) fn which(&self) -> Which {
        self.daemon.unwrap_or(match self.mode() {
            Mode::Smoke => Which::Ferrovirtd,
            Mode::Full => Which::Both,
        })
    }

    /// The run's parameters: smoke or full defaults, then the options.
    pub(crate) fn params(&self) -> Params {
        let smoke = self.smoke;
        fn pick<T>(smoke: bool, smoke_value: T, full_value: T) -> T {
            if smoke { smoke_value } else { full_value }
        }
        Params {
            rpc_n: self
                .rpc_n
                .clone()
                .unwrap_or(pick(smoke, vec![3], vec![10, 50, 100])),
            cell_s: self.cell_secs.unwrap_or(pick(smoke, 1.0, 4.0)),
            flood_s: self.flood_secs.unwrap_or(pick(smoke, 3.0, 20.0)),
            sim_flood_s: self.sim_flood_secs.unwrap_or(pick(smoke, 3.0, 10.0)),
            flood_rates: self.flood_rates.clone().unwrap_or(vec![10_000, 100_000]),
            pre_s: pick(smoke, 1.0, 2.0),
            post_s: pick(smoke, 1.0, 3.0),
            quiet_vms: pick(smoke, 3, 10),
            probe_rate_per_s: 500.0,
            hung_cap_s: self.hung_cap_secs.unwrap_or(pick(smoke, 8, 40)),
            hung_window_s: pick(smoke, 2, 8),
            event_samples: pick(smoke, 20, 100),
            scale_n: self
                .scale_n
                .clone()
                .unwrap_or(pick(smoke, vec![50], vec![1000, 10_000])),
            scale_qemu_user: self.scale_qemu_user.clone(),
            stats_n: pick(smoke, 5, 100),
            stats_calls: pick(smoke, 3, 10),
            ferrovirtd_monitor_timeout_s: self.monitor_timeout,
            rss_limit_mib: self.rss_limit_mb,
            storage_volumes: pick(smoke, 100, 1000),
            storage_files: pick(smoke, 1000, 10_000),
            transfer_mib: pick(smoke, 64, 1024),
            nics_rounds: pick(smoke, 5, 30),
            hotplug_rounds: pick(smoke, 5, 20),
            migration_rounds: self.migration_rounds.unwrap_or(pick(smoke, 2, 10)),
        }
    }

    /// The daemons of the storage scenario (no QEMU is involved; the row
    /// says `QEMU` for the report's layout).
    pub(crate) fn storage_rows(&self) -> Vec<(DaemonKind, Emu)> {
        let which = self.which();
        let mut rows = Vec::new();
        if which != Which::Libvirtd {
            rows.push((DaemonKind::Ferrovirtd, Emu::Real));
        }
        if which != Which::Ferrovirtd {
            rows.push((DaemonKind::Libvirtd, Emu::Real));
        }
        rows
    }

    /// The (daemon, QEMU) rows of the flood, hung and events scenarios.
    pub(crate) fn fault_rows(&self) -> Vec<(DaemonKind, Emu)> {
        let which = self.which();
        let ferro = which != Which::Libvirtd;
        let mut rows = Vec::new();
        if ferro && (self.smoke || !self.no_sim_rows) {
            rows.push((DaemonKind::Ferrovirtd, Emu::Sim));
        }
        if ferro && !self.smoke && !self.no_proxy_rows {
            rows.push((DaemonKind::Ferrovirtd, Emu::Proxy));
        }
        if which != Which::Ferrovirtd {
            rows.push((DaemonKind::Libvirtd, Emu::Proxy));
        }
        rows
    }

    /// The rows of the rpc scenario: ferrovirtd on qemu-sim in smoke runs
    /// and on real QEMU otherwise; libvirtd on real QEMU.
    pub(crate) fn rpc_rows(&self) -> Vec<(DaemonKind, Emu)> {
        let which = self.which();
        let mut rows = Vec::new();
        if which != Which::Libvirtd {
            let emu = if self.smoke { Emu::Sim } else { Emu::Real };
            rows.push((DaemonKind::Ferrovirtd, emu));
        }
        if which != Which::Ferrovirtd {
            rows.push((DaemonKind::Libvirtd, Emu::Real));
        }
        rows
    }

    /// Whether `scenario` is to run.
    pub(crate) fn wants(&self, scenario: Scenario) -> bool {
        self.scenario == Scenario::All || self.scenario == scenario
    }

    /// The command line, quoted for a shell.
    pub(crate) fn command_line() -> String {
        let quoted: Vec<String> = std::env::args()
            .map(|arg| {
                if arg.contains([' ', '\'', '"', '(', ')']) {
                    format!("'{}'", arg.replace('\'', "'\\''"))
                } else {
                    arg
                }
            })
            .collect();
        quoted.join(" ")
    }
}

/// The workspace this bench was built in (crates/bench/../..).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}
