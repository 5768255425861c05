//! ferrovirtd: a QEMU management daemon that speaks libvirt's remote
//! protocol, so virsh and libvirt-python drive it unchanged.

mod alloc;
mod config;
mod consoles;
mod daemon;
mod dispatch;
mod flags;
mod host;
mod metrics;
mod procs;
mod pumps;
mod relay;
mod volume_users;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command line. Everything else is in the config file.
#[derive(Debug, Parser)]
#[command(name = "ferrovirtd", version, about)]
struct Args {
    /// Root directory of all state (definitions, sockets, logs). Defaults
    /// to /var/lib/ferrovirt for root, ~/.local/share/ferrovirt otherwise.
    #[arg(long)]
    root: Option<PathBuf>,
    /// TOML file overriding the embedded defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. "info" or
    /// "ferrovirtd=debug,qemu=debug". RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log);
    let cfg = match args.config.as_deref().map(config::Config::load) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("ferrovirtd: {e}");
            return ExitCode::from(2);
        }
        None => config::Config::default(),
    };
    match qemu::raise_nofile() {
        Ok(n) => tracing::debug!(nofile = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let root = args
        .root
        .or_else(|| cfg.root.clone())
        .unwrap_or_else(qemu::default_root);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrovirtd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(cfg, root)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrovirtd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .init();
}
