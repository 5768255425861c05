//! Daemon configuration: embedded defaults, optionally overridden by a TOML
//! file (`--config FILE`) and by command-line flags.
//!
//! Every limit that outside input can push against (clients, in-flight
//! calls, output queues, event queues, waits) lives here, so an operator can
//! see and tune all of them in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything the daemon needs to start. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Root of all state: `etc/` definitions, `run/` sockets and status,
    /// `log/` QEMU logs. `None` picks the default for the current user.
    pub root: Option<PathBuf>,
    /// Most simultaneously connected clients; further connections are
    /// accepted and closed at once.
    pub max_clients: usize,
    /// Calls one client may have running at once; at the bound the daemon
    /// reads one more message from that client and stops reading it until
    /// a call finishes.
    pub max_client_requests: usize,
    /// Extra calls per client that only never-queued procedures (destroy,
    /// lookups, state queries, connection calls) may use, so they still
    /// run while the client's other calls all wait (say, for a job).
    pub max_client_priority_requests: usize,
    /// Outgoing queue per client (messages); a client that lets it fill is
    /// disconnected.
    pub client_queue_messages: usize,
    /// Outgoing queue per client (bytes).
    pub client_queue_bytes: usize,
    /// Streams (consoles, volume transfers, screenshots) one client may
    /// have open at once.
    pub max_client_streams: usize,
    /// Stream data queued for one client beyond its outgoing queue
    /// (bytes). At the bound the stream's source (a console, a volume)
    /// is not read until the client reads; the client is not dropped for
    /// it.
    pub client_stream_queue_bytes: usize,
    /// Stream data read from one client and not yet written to its sink
    /// (bytes). At the bound the client is not read until the sink takes
    /// it.
    pub client_stream_inbound_bytes: usize,
    /// Seconds between keepalive probes; 0 disables them.
    pub keepalive_interval: u64,
    /// Unanswered probes before a client is dropped.
    pub keepalive_count: u32,
    /// Seconds a job waits for the domain's job lock.
    pub job_wait_secs: u64,
    /// Seconds a QEMU monitor command may take.
    pub monitor_timeout_secs: u64,
    /// Seconds between SIGTERM and SIGKILL on destroy.
    pub destroy_grace_secs: u64,
    /// Seconds `detach-device` waits for the guest to release a device
    /// before returning with the removal pending (libvirt waits 5).
    pub unplug_timeout_secs: u64,
    /// Queued QMP events per VM before coalescing starts.
    pub vm_event_queue: usize,
    /// Define libvirt's `default` NAT network (192.168.122.0/24 on
    /// `virbr0`) on the first start; it is set to autostart only when its
    /// subnet collides with no route of the host.
    pub default_network: bool,
    /// Start the networks marked autostart when the daemon starts. Off,
    /// the daemon touches the host's networking only when asked to.
    pub network_autostart: bool,
    /// The nftables table (family `ip`) this daemon owns for NAT and
    /// forwarding rules; two daemons sharing a network namespace need two.
    pub nft_table: String,
    /// Seconds between two statistics rounds of one VM (one QMP round per
    /// VM per interval, spread over it); 0 turns statistics polling off.
    /// A running VM's figures are at most this plus one round deadline
    /// (the smaller of this and `monitor_timeout_secs`) old; older ones are
    /// reported stale.
    pub stats_interval_secs: u64,
    /// Statistics rounds in flight at once, over all VMs.
    pub stats_max_in_flight: usize,
    /// `ADDR:PORT` of the Prometheus metrics endpoint (plain HTTP, `GET
    /// /metrics`); off when absent.
    pub metrics_listen: Option<String>,
    /// Start QEMU with its own system-call filter (`-sandbox`), as
    /// libvirt's `seccomp_sandbox`.
    pub seccomp_sandbox: bool,
    /// The `-sandbox` argument when `seccomp_sandbox` is on.
    pub seccomp_sandbox_options: String,
    /// Namespaces each QEMU gets of its own, as libvirt's `namespaces`:
    /// `["mount"]` gives it a private `/dev` holding only the nodes its
    /// guest uses (needs root; a daemon run by another user warns and
    /// starts QEMU without it).
    pub namespaces: Vec<Namespace>,
    /// The exec helper QEMU is started through; by default the
    /// `ferrovirt-exec` installed beside `ferrovirtd`.
    pub exec_helper: Option<PathBuf>,
    /// The user each guest's QEMU runs as (libvirt's `user`): an account
    /// name, or `+N` for a numeric id. Absent: the system account
    /// [`DEFAULT_QEMU_USER`] when the daemon runs as root (the daemon
    /// refuses to start when that account is missing), the daemon's own
    /// user otherwise. `root` (or `+0`) keeps root, with a warning.
    pub user: Option<String>,
    /// QEMU's group (libvirt's `group`): a name or `+N`; by default the
    /// user's primary group. QEMU also gets the user's supplementary
    /// groups (`kvm`, for `/dev/kvm`).
    pub group: Option<String>,
    /// With `user` set: give QEMU's user the files its guest opens (disk
    /// images, kernel, initrd, NVRAM, serial log files) while the guest
    /// runs, and put the original owners back after (libvirt's
    /// `dynamic_ownership`).
    pub dynamic_ownership: bool,
    /// `ADDR:PORT` for plain TCP clients (`qemu+tcp://`); off when absent.
    /// Needs `auth_tcp = "none"` set explicitly: anyone who reaches the
    /// port controls the daemon, so this is for tests and trusted networks.
    pub listen_tcp: Option<String>,
    /// Authentication of TCP clients; only `"none"` exists here.
    pub auth_tcp: Option<AuthTcp>,
    /// `ADDR:PORT` for TLS clients (`qemu+tls://`); off when absent.
    pub listen_tls: Option<String>,
    /// CA certificate client certificates must chain to (libvirt's path).
    pub ca_file: PathBuf,
    /// The server's certificate.
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// Client certificate DNs let in over TLS (`*`, `?` globs, as
    /// libvirt's); empty lets in every client whose certificate verifies.
    pub tls_allowed_dn_list: Vec<String>,
    /// A directory in libvirt's `pkipath` layout (`cacert.pem`,
    /// `clientcert.pem`, `clientkey.pem`): the client certificate this
    /// daemon presents, and the CA it trusts, when it connects to a peer
    /// daemon over TLS (peer-to-peer migration to `qemu+tls://`). By
    /// default libvirt's system-wide client files
    /// (`/etc/pki/CA/cacert.pem`, `/etc/pki/libvirt/clientcert.pem`,
    /// `/etc/pki/libvirt/private/clientkey.pem`). A `pkipath` parameter
    /// in the peer's URI takes precedence.
    pub client_pkipath: Option<PathBuf>,
    /// Most secrets defined at once (persistent and ephemeral); a define
    /// beyond it is refused with `VIR_ERR_OPERATION_FAILED`. At most
    /// 16384, what one list reply can carry.
    pub max_secrets: usize,
    /// The address incoming migrations listen on and the source is told
    /// to send to (libvirt's `migration_address`); by default every
    /// address, and the source is told this host's name.
    pub migration_address: Option<String>,
    /// The ports incoming migrations listen on (libvirt's
    /// `migration_port_min` / `migration_port_max`).
    pub migration_port_min: u16,
    pub migration_port_max: u16,
    /// A migration whose stream (memory or disk copies), or a save or
    /// state dump whose stream, moves no byte for this long fails (a cut
    /// network or a hung disk fails it instead of hanging it).
    pub migration_stall_timeout_secs: u64,
    /// A destination that prepared an incoming migration and is not
    /// told to finish it within this long kills its QEMU.
    pub migration_finish_timeout_secs: u64,
    /// QEMU's credentials for `--tls` migrations (libvirt's
    /// `migrate_tls_x509_cert_dir`): `ca-cert.pem`, `server-cert.pem`,
    /// `server-key.pem`, `client-cert.pem`, `client-key.pem`.
    pub migrate_tls_x509_cert_dir: PathBuf,
    /// Whether an incoming `--tls` migration requires a client
    /// certificate the CA signed (libvirt's `migrate_tls_x509_verify`).
    pub migrate_tls_x509_verify: bool,
}

/// A namespace QEMU can be given (libvirt's `namespaces` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Namespace {
    /// A private mount namespace with a minimal `/dev`.
    Mount,
}

/// How TCP clients authenticate (libvirt's `auth_tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthTcp {
    /// No authentication.
    None,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root: None,
            max_clients: 5000,
            max_client_requests: 16,
            max_client_priority_requests: 4,
            client_queue_messages: 4096,
            client_queue_bytes: 8 << 20,
            max_client_streams: 16,
            client_stream_queue_bytes: 1 << 20,
            client_stream_inbound_bytes: 1 << 20,
            keepalive_interval: 5,
            keepalive_count: 5,
            job_wait_secs: 30,
            monitor_timeout_secs: 30,
            destroy_grace_secs: 5,
            unplug_timeout_secs: 5,
            vm_event_queue: 1024,
            default_network: true,
            network_autostart: true,
            nft_table: "ferrovirt".into(),
            stats_interval_secs: 10,
            stats_max_in_flight: 32,
            metrics_listen: None,
            seccomp_sandbox: true,
            seccomp_sandbox_options: qemu::DEFAULT_SANDBOX.into(),
            namespaces: vec![Namespace::Mount],
            exec_helper: None,
            user: None,
            group: None,
            dynamic_ownership: true,
            listen_tcp: None,
            auth_tcp: None,
            listen_tls: None,
            ca_file: "/etc/pki/CA/cacert.pem".into(),
            cert_file: "/etc/pki/libvirt/servercert.pem".into(),
            key_file: "/etc/pki/libvirt/private/serverkey.pem".into(),
            tls_allowed_dn_list: Vec::new(),
            client_pkipath: None,
            max_secrets: secret::SecretConfig::DEFAULT_MAX_SECRETS,
            migration_address: None,
            migration_port_min: 49152,
            migration_port_max: 49215,
            migration_stall_timeout_secs: 30,
            migrate_tls_x509_cert_dir: PathBuf::from("/etc/pki/qemu"),
            migrate_tls_x509_verify: true,
            migration_finish_timeout_secs: 600,
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file; keys it does not name keep their defaults.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values that would make a limit meaningless.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_clients", self.max_clients),
            ("max_client_requests", self.max_client_requests),
            (
                "max_client_priority_requests",
                self.max_client_priority_requests,
            ),
            ("client_queue_messages", self.client_queue_messages),
            ("client_queue_bytes", self.client_queue_bytes),
            ("max_client_streams", self.max_client_streams),
            ("client_stream_queue_bytes", self.client_stream_queue_bytes),
            (
                "client_stream_inbound_bytes",
                self.client_stream_inbound_bytes,
            ),
            ("vm_event_queue", self.vm_event_queue),
            ("stats_max_in_flight", self.stats_max_in_flight),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        let secrets_max = rpc::protocol::remote::SECRET_LIST_MAX;
        if !(1..=secrets_max).contains(&self.max_secrets) {
            return Err(ConfigError::Invalid(format!(
                "max_secrets must be between 1 and {secrets_max}"
            )));
        }
        if self.migration_stall_timeout_secs == 0 || self.migration_finish_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "migration_stall_timeout_secs and migration_finish_timeout_secs must be at least 1"
                    .into(),
            ));
        }
        if self.job_wait_secs == 0 || self.monitor_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "job_wait_secs and monitor_timeout_secs must be at least 1".into(),
            ));
        }
        for (key, addr) in [
            ("metrics_listen", &self.metrics_listen),
            ("listen_tcp", &self.listen_tcp),
            ("listen_tls", &self.listen_tls),
        ] {
            if let Some(addr) = addr {
                addr.parse::<std::net::SocketAddr>().map_err(|e| {
                    ConfigError::Invalid(format!("{key} '{addr}' is not ADDR:PORT: {e}"))
                })?;
            }
        }
        if self.migration_port_min == 0 || self.migration_port_min > self.migration_port_max {
            return Err(ConfigError::Invalid(
                "migration_port_min must be at least 1 and at most migration_port_max".into(),
            ));
        }
        if let Some(addr) = &self.migration_address {
            addr.parse::<std::net::IpAddr>().map_err(|e| {
                ConfigError::Invalid(format!("migration_address '{addr}' is not an address: {e}"))
            })?;
        }
        self.qemu_creds()?;
        if self.listen_tcp.is_some() && self.auth_tcp != Some(AuthTcp::None) {
            return Err(ConfigError::Invalid(
                "listen_tcp needs auth_tcp = \"none\" set explicitly: TCP clients are not \
                 authenticated, so plain TCP is for tests and trusted networks (use listen_tls \
                 otherwise)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The TLS files and allow-list, when TLS is to be served.
    pub(crate) fn tls_files(&self) -> rpc::tls::TlsFiles {
        rpc::tls::TlsFiles {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            allowed_dn: self.tls_allowed_dn_list.clone(),
        }
    }

    /// What this daemon presents to TLS peers.
    pub(crate) fn peer_tls_files(&self) -> rpc::tls::TlsClientFiles {
        match &self.client_pkipath {
            Some(dir) => rpc::tls::TlsClientFiles::in_dir(dir),
            None => rpc::tls::TlsClientFiles::system(),
        }
    }

    /// The credentials each guest's QEMU runs with (`user`, `group`);
    /// `None` where QEMU keeps the daemon's (root set explicitly, or a
    /// daemon not run by root with no `user` set).
    pub(crate) fn qemu_creds(&self) -> Result<Option<qemu::Creds>, ConfigError> {
        self.qemu_creds_for(nix::unistd::geteuid().is_root())
    }

    /// [`Config::qemu_creds`] for a daemon run by root (`root`) or not.
    fn qemu_creds_for(&self, root: bool) -> Result<Option<qemu::Creds>, ConfigError> {
        use nix::unistd::{Gid, Group, User};
        let user = match (self.user.as_deref(), root) {
            (Some(user), _) => user,
            (None, true) => DEFAULT_QEMU_USER,
            (None, false) => return Ok(None),
        };
        let unknown =
            |what: &str, v: &str| ConfigError::Invalid(format!("{what} '{v}': no such account"));
        let (uid, account) = match numeric(user) {
            Some(uid) => (uid, User::from_uid(uid.into()).ok().flatten()),
            None => {
                let u = User::from_name(user)
                    .ok()
                    .flatten()
                    .ok_or_else(|| match self.user {
                        None => missing_default_user(),
                        Some(_) => unknown("user", user),
                    })?;
                (u.uid.as_raw(), Some(u))
            }
        };
        let gid = match self.group.as_deref() {
            Some(g) => match numeric(g) {
                Some(gid) => gid,
                None => Group::from_name(g)
                    .ok()
                    .flatten()
                    .ok_or_else(|| unknown("group", g))?
                    .gid
                    .as_raw(),
            },
            None => account.as_ref().map(|a| a.gid.as_raw()).ok_or_else(|| {
                ConfigError::Invalid(format!("user '{user}' has no account: set group"))
            })?,
        };
        if uid == 0 {
            return Ok(None);
        }
        let mut groups = vec![gid];
        if let Some(a) = &account {
            let name =
                std::ffi::CString::new(a.name.as_bytes()).map_err(|_| unknown("user", user))?;
            if let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
                groups = list.into_iter().map(Gid::as_raw).collect();
            }
        }
        groups.sort_unstable();
        groups.dedup();
        groups.truncate(qemu::MAX_GROUPS);
        Ok(Some(qemu::Creds { uid, gid, groups }))
    }

    /// The statistics poller's settings.
    pub(crate) fn stats(&self) -> qemu::StatsConfig {
        qemu::StatsConfig {
            interval: Duration::from_secs(self.stats_interval_secs),
            max_in_flight: self.stats_max_in_flight,
        }
    }

    pub(crate) fn job_wait(&self) -> Duration {
        Duration::from_secs(self.job_wait_secs)
    }

    pub(crate) fn monitor_timeout(&self) -> Duration {
        Duration::from_secs(self.monitor_timeout_secs)
    }

    pub(crate) fn unplug_timeout(&self) -> Duration {
        Duration::from_secs(self.unplug_timeout_secs)
    }

    pub(crate) fn destroy_grace(&self) -> Duration {
        Duration::from_secs(self.destroy_grace_secs)
    }
}

/// The account QEMU runs as when the daemon runs as root and `user` is not
/// set: a system account with no home and no shell, in the `kvm` group,
/// which `scripts/deps.sh` creates.
pub(crate) const DEFAULT_QEMU_USER: &str = "ferrovirt-qemu";

/// The default account is missing: starting anyway would run every QEMU
/// as root without anyone having asked for it (libvirt likewise fails to
/// load its QEMU driver when its configured user does not exist).
fn missing_default_user() -> ConfigError {
    ConfigError::Invalid(format!(
        "QEMU runs as the system account '{DEFAULT_QEMU_USER}' by default, and it does not \
         exist: create it with scripts/deps.sh (ferrovirt_create_account), or set \
         user = \"root\" in the config to run QEMU as root"
    ))
}

/// `+N`: a numeric user or group id, as libvirt writes one.
fn numeric(v: &str) -> Option<u32> {
    v.strip_prefix('+')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default()
            .validate()
            .expect("defaults must validate");
    }

    #[test]
    fn file_overrides_only_named_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferrovirtd.toml");
        std::fs::write(&path, "max_clients = 7\njob_wait_secs = 3\n").expect("write");
        let cfg = Config::load(&path).expect("load");
        assert_eq!(cfg.max_clients, 7);
        assert_eq!(cfg.job_wait(), Duration::from_secs(3));
        assert_eq!(
            cfg.max_client_requests,
            Config::default().max_client_requests
        );
    }

    #[test]
    fn qemu_user_and_group_resolve_by_name_or_number() {
        let with = |user: &str, group: Option<&str>| Config {
            user: Some(user.into()),
            group: group.map(Into::into),
            ..Config::default()
        };
        assert_eq!(with("root", None).qemu_creds().expect("root"), None);
        assert_eq!(with("+0", Some("+0")).qemu_creds().expect("+0"), None);
        // `nobody` exists on every Debian system.
        let c = with("nobody", None)
            .qemu_creds()
            .expect("nobody")
            .expect("not root");
        assert_eq!(c.uid, 65534);
        assert!(c.groups.contains(&c.gid), "{c:?}");
        let c = with("+4242", Some("+4343"))
            .qemu_creds()
            .expect("numeric")
            .expect("creds");
        assert_eq!((c.uid, c.gid, c.groups), (4242, 4343, vec![4343]));
        let e = with("no-such-user-here", None)
            .validate()
            .expect_err("unknown user");
        assert!(e.to_string().contains("no-such-user-here"), "{e}");
        let e = with("+4242", None)
            .qemu_creds()
            .expect_err("no account, no group");
        assert!(e.to_string().contains("set group"), "{e}");
        let e = with("nobody", Some("no-such-group"))
            .qemu_creds()
            .expect_err("group");
        assert!(e.to_string().contains("no-such-group"), "{e}");
    }

    #[test]
    fn by_default_qemu_runs_as_the_system_account_or_the_daemon_refuses() {
        let d = Config::default();
        assert_eq!(d.user, None);
        // A daemon not run by root cannot switch: QEMU keeps its user.
        assert_eq!(d.qemu_creds_for(false).expect("not root"), None);
        let account = nix::unistd::User::from_name(DEFAULT_QEMU_USER)
            .ok()
            .flatten();
        match (account, d.qemu_creds_for(true)) {
            (Some(a), Ok(Some(c))) => {
                assert_eq!((c.uid, c.gid), (a.uid.as_raw(), a.gid.as_raw()));
                assert_ne!(c.uid, 0);
            }
            (None, Err(e)) => assert_eq!(e.to_string(), missing_default_user().to_string()),
            (a, c) => panic!("account {a:?} resolved to {c:?}"),
        }
        let msg = missing_default_user().to_string();
        for needle in [DEFAULT_QEMU_USER, "scripts/deps.sh", "user = \"root\""] {
            assert!(msg.contains(needle), "{msg}");
        }
        // Root set explicitly is root, run by root or not.
        let root = Config {
            user: Some("root".into()),
            ..Config::default()
        };
        assert_eq!(root.qemu_creds_for(true).expect("root"), None);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "max_clientz = 7\n").expect("write");
        let err = Config::load(&path).expect_err("must fail");
        assert!(err.to_string().contains("max_clientz"), "{err}");
    }

    #[test]
    fn statistics_and_metrics_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "stats_interval_secs = 3\nstats_max_in_flight = 4\nmetrics_listen = \"127.0.0.1:9177\"\n",
        )
        .expect("write");
        let cfg = Config::load(&path).expect("load");
        assert_eq!(cfg.stats().interval, Duration::from_secs(3));
        assert_eq!(cfg.stats().max_in_flight, 4);
        assert_eq!(cfg.metrics_listen.as_deref(), Some("127.0.0.1:9177"));
        assert_eq!(Config::default().metrics_listen, None, "off by default");
        let bad = Config {
            metrics_listen: Some("localhost".into()),
            ..Config::default()
        };
        let err = bad.validate().expect_err("must fail");
        assert!(err.to_string().contains("metrics_listen"), "{err}");
        let tcp = Config {
            listen_tcp: Some("127.0.0.1:16509".into()),
            ..Config::default()
        };
        let err = tcp.validate().unwrap_err();
        assert!(err.to_string().contains("auth_tcp"), "{err}");
        let tcp = Config {
            auth_tcp: Some(AuthTcp::None),
            ..tcp
        };
        assert!(tcp.validate().is_ok());
    }

    #[test]
    fn max_secrets_is_bounded_by_what_a_list_carries() {
        for (n, ok) in [(0, false), (1, true), (16_384, true), (16_385, false)] {
            let cfg = Config {
                max_secrets: n,
                ..Config::default()
            };
            assert_eq!(cfg.validate().is_ok(), ok, "{n}");
        }
    }

    #[test]
    fn zero_limit_is_rejected() {
        let cfg = Config {
            max_client_requests: 0,
            ..Config::default()
        };
        let err = cfg.validate().expect_err("must fail");
        assert!(err.to_string().contains("max_client_requests"));
    }
}
