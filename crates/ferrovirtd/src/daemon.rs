//! Start-up and shutdown: open the driver on the root directory, bind the
//! read-write and read-only sockets, serve until SIGTERM/SIGINT.
//!
//! On shutdown the daemon stops accepting, closes clients and exits; QEMU
//! processes keep running and are adopted again by the next start, so a
//! daemon restart loses no VM and no running job.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use network::{NetworkConfig, NetworkDriver};
use qemu::{Driver, DriverConfig, PausePoint, StartStage};
use rpc::Server;
use secret::{SecretConfig, SecretDriver};
use storage::{StorageConfig, StorageDriver};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::dispatch::Daemon;
use crate::metrics;
use crate::relay::{self, Relay};
use crate::volume_users::DomainVolumeUsers;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot open the driver under {root}: {message}")]
    Driver { root: PathBuf, message: String },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rpc::tls::TlsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Table(#[from] rpc::dispatch::TableError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// Paths of the two sockets under a root.
pub(crate) fn socket_paths(root: &Path) -> (PathBuf, PathBuf) {
    let run = root.join("run");
    (run.join("libvirt-sock"), run.join("libvirt-sock-ro"))
}

/// The URI virsh needs to reach the read-write socket.
pub(crate) fn uri_for(sock: &Path) -> String {
    format!("qemu+unix:///system?socket={}", sock.display())
}

pub(crate) async fn run(cfg: Config, root: PathBuf) -> Result<(), StartError> {
    crate::alloc::start_background_purge();
    let driver_cfg = driver_config(&cfg, &root)?;
    // Networks first: the QEMU driver's start-up removes what is left of
    // guests' taps, and its autostart needs their networks running.
    let network = NetworkDriver::open(network_config(&cfg, &root))
        .await
        .map_err(|e| StartError::Driver {
            root: root.clone(),
            message: e.to_string(),
        })?;
    let driver = Driver::open_with_network(driver_cfg, Some(network.clone()))
        .await
        .map_err(|e| StartError::Driver {
            root: root.clone(),
            message: e.to_string(),
        })?;
    let storage = StorageDriver::open(storage_config(&cfg, &root))
        .await
        .map_err(|e| StartError::Driver {
            root: root.clone(),
            message: e.to_string(),
        })?;
    let mut secrets_cfg = SecretConfig::new(&root);
    secrets_cfg.max_secrets = cfg.max_secrets;
    let secrets = SecretDriver::open(secrets_cfg).map_err(|e| StartError::Driver {
        root: root.clone(),
        message: e.to_string(),
    })?;
    crate::alloc::release_unused();
    crate::alloc::log_heap();
    let (rw_path, ro_path) = socket_paths(&root);
    let rw = bind(&rw_path, 0o600)?;
    let ro = bind(&ro_path, 0o666)?;

    let relay = Arc::new(Relay::new());
    relay::attach(&driver, relay.clone());
    storage.set_volume_users(Arc::new(DomainVolumeUsers(driver.clone())));
    relay::attach_storage(&storage, relay.clone());
    relay::attach_network(&network, relay.clone());
    relay::attach_secrets(&secrets, relay.clone());
    // Probe the default emulator now, so the first client that asks for
    // QEMU's version or capabilities does not wait for it.
    let warm = driver.clone();
    tokio::spawn(async move { warm.emulator_caps(None).await });
    let uri = "qemu:///system".to_owned();
    let daemon = Daemon::new(driver.clone(), storage, network, secrets, relay, uri)?
        .with_peer_tls(cfg.peer_tls_files());
    let server = Server::new(server_config(&cfg), daemon);
    if let Some(addr) = &cfg.metrics_listen {
        let src = metrics::Sources {
            driver,
            server: server.metrics().clone(),
        };
        start_metrics(addr, src).await?;
    }
    start_remote(&cfg, &server).await?;
    let s_rw = server.clone();
    let s_ro = server.clone();
    tokio::spawn(async move { s_rw.serve(rw, false).await });
    tokio::spawn(async move { s_ro.serve(ro, true).await });
    tracing::info!(uri = %uri_for(&rw_path), "ferrovirtd ready");
    println!("ferrovirtd ready: virsh -c '{}'", uri_for(&rw_path));

    wait_for_stop_signal().await?;
    tracing::info!("shutting down; QEMU processes keep running");
    server.shutdown();
    server.wait_closed().await;
    let _ = std::fs::remove_file(&rw_path);
    let _ = std::fs::remove_file(&ro_path);
    Ok(())
}

/// Listens for TCP and TLS clients where the config asks for it.
async fn start_remote(cfg: &Config, server: &Server<Daemon>) -> Result<(), StartError> {
    if let Some(addr) = &cfg.listen_tcp {
        let l = listen(addr).await?;
        tracing::warn!(%addr, "serving unauthenticated TCP clients (auth_tcp = \"none\")");
        let s = server.clone();
        tokio::spawn(async move { s.serve_tcp(l, None).await });
        println!("ferrovirtd listening: virsh -c 'qemu+tcp://{addr}/system'");
    }
    if let Some(addr) = &cfg.listen_tls {
        let tls = Arc::new(rpc::tls::TlsServer::new(&cfg.tls_files())?);
        let l = listen(addr).await?;
        let s = server.clone();
        tokio::spawn(async move { s.serve_tcp(l, Some(tls)).await });
        println!("ferrovirtd listening: virsh -c 'qemu+tls://{addr}/system'");
    }
    Ok(())
}

async fn listen(addr: &str) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Starts the metrics endpoint on `addr` (validated with the config).
async fn start_metrics(addr: &str, src: metrics::Sources) -> Result<(), StartError> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| StartError::Metrics {
        addr: addr.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")),
    })?;
    let local = metrics::serve(sock, src)
        .await
        .map_err(|source| StartError::Metrics {
            addr: addr.to_owned(),
            source,
        })?;
    println!("ferrovirtd metrics: http://{local}/metrics");
    Ok(())
}
/// Test aids, read once at start-up: every start pauses forever right
/// after spawning QEMU (or once it completed and was recorded), having
/// written the file the variable names (see `qemu::DriverConfig::pause_point`),
/// so a test can kill the daemon at exactly that instant.
const PAUSE_ENVS: [(&str, StartStage); 2] = [
    ("FERROVIRT_PAUSE_AFTER_SPAWN", StartStage::Spawned),
    ("FERROVIRT_PAUSE_AFTER_START", StartStage::Recorded),
];

/// The pause point the environment sets, if any (the first that is set).
fn pause_point() -> Option<PausePoint> {
    let (var, at, marker) = PAUSE_ENVS.iter().find_map(|(var, at)| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(|v| (var, *at, PathBuf::from(v)))
    })?;
    tracing::warn!(marker = %marker.display(), "{var} is set: every start pauses ({at:?})");
    Some(PausePoint { at, marker })
}

fn driver_config(cfg: &Config, root: &Path) -> Result<DriverConfig, crate::config::ConfigError> {
    let mut d = DriverConfig::new(root);
    d.job_wait = cfg.job_wait();
    d.monitor_timeout = cfg.monitor_timeout();
    d.destroy_grace = cfg.destroy_grace();
    d.unplug_timeout = cfg.unplug_timeout();
    d.events.max_events = cfg.vm_event_queue;
    d.stats = cfg.stats();
    d.pause_point = pause_point();
    d.confinement = confinement(cfg)?;
    d.migration = qemu::MigrationConfig {
        address: cfg.migration_address.clone(),
        port_min: cfg.migration_port_min,
        port_max: cfg.migration_port_max,
        stall_timeout: std::time::Duration::from_secs(cfg.migration_stall_timeout_secs),
        finish_timeout: std::time::Duration::from_secs(cfg.migration_finish_timeout_secs),
        tls_dir: cfg.migrate_tls_x509_cert_dir.clone(),
        tls_verify: cfg.migrate_tls_x509_verify,
    };
    Ok(d)
}

fn confinement(cfg: &Config) -> Result<qemu::Confinement, crate::config::ConfigError> {
    let mut c = qemu::Confinement::default();
    if let Some(helper) = &cfg.exec_helper {
        c.exec_helper = helper.clone();
    }
    c.sandbox = cfg
        .seccomp_sandbox
        .then(|| cfg.seccomp_sandbox_options.clone());
    if c.sandbox.is_none() {
        tracing::warn!("seccomp_sandbox is off: QEMU runs without a system-call filter");
    }
    let wanted = cfg.namespaces.contains(&crate::config::Namespace::Mount);
    let root = nix::unistd::geteuid().is_root();
    if wanted && !root {
        tracing::warn!("namespaces = [\"mount\"] needs root: QEMU shares the host's /dev");
    }
    c.mount_namespace = wanted && root;
    // Checked when the configuration was loaded too; an account removed
    // since then stops the daemon rather than run QEMU as root.
    c.creds = cfg.qemu_creds()?;
    c.dynamic_ownership = cfg.dynamic_ownership;
    if c.creds.is_none() && root {
        tracing::warn!(
            "QEMU runs as root (`user = \"root\"`): without `user` it runs as the \
             unprivileged account {}",
            crate::config::DEFAULT_QEMU_USER
        );
    }
    Ok(c)
}

fn storage_config(cfg: &Config, root: &Path) -> StorageConfig {
    let mut s = StorageConfig::new(root);
    s.job_wait = cfg.job_wait();
    s
}

fn network_config(cfg: &Config, root: &Path) -> NetworkConfig {
    let mut n = NetworkConfig::new(root);
    n.job_wait = cfg.job_wait();
    n.default_network = cfg.default_network;
    n.autostart = cfg.network_autostart;
    n.nft_table = cfg.nft_table.clone();
    n
}

fn server_config(cfg: &Config) -> rpc::Config {
    rpc::Config {
        max_clients: cfg.max_clients,
        max_inflight_per_client: cfg.max_client_requests,
        max_priority_inflight_per_client: cfg.max_client_priority_requests,
        max_queued_messages: cfg.client_queue_messages,
        max_queued_bytes: cfg.client_queue_bytes,
        keepalive_interval: (cfg.keepalive_interval > 0)
            .then(|| std::time::Duration::from_secs(cfg.keepalive_interval)),
        keepalive_count: cfg.keepalive_count,
        max_streams_per_client: cfg.max_client_streams,
        max_stream_queued_bytes: cfg.client_stream_queue_bytes,
        max_stream_inbound_bytes: cfg.client_stream_inbound_bytes,
        ..rpc::Config::default()
    }
}

/// Binds a socket, replacing a stale one left by a killed daemon (but never
/// one a live daemon is serving).
fn bind(path: &Path, mode: u32) -> Result<UnixListener, StartError> {
    let err = |source| StartError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another daemon is serving this socket",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(l)
}

async fn wait_for_stop_signal() -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
