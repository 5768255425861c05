//! Live migration between two daemons of one kind, inside a network
//! namespace the bench creates, each with a plain-TCP listener on its
//! loopback: ferrovirtd, or libvirtd 9.0 ([`libvirtd`]: two instances
//! with their own state and host UUIDs). Guests are moved back and forth
//! with `virsh migrate --live`, timing each migration end to end (the
//! client's five calls) and reading the guest's downtime QEMU measured
//! from the destination's completed-job statistics: an idle diskless
//! guest sitting in its firmware, then the tiny test guest idle and
//! rewriting memory without pause.
//!
//! ferrovirtd also gets a migration under an event flood and a destroy
//! during a migration ([`flood`]).

mod flood;
mod libvirtd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rpc::Client;
use rpc::protocol::remote::{
    DomainFlagsArgs, DomainGetJobStatsRet, TypedParamValue, procedure as p,
};
use testkit::netns::NetNs;

use crate::client::{self, StartAs};
use crate::daemon::{Daemon, DaemonKind, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{MigrationGuest, MigrationResult, Outcome};
use crate::stats::LatencySummary;

const PORTS: [u16; 2] = [16611, 16612];

/// `VIR_DOMAIN_JOB_STATS_COMPLETED`.
const JOB_STATS_COMPLETED: u32 = 1;

/// How long the tiny guest may take to boot (TCG on a loaded machine).
const BOOT: Duration = Duration::from_secs(180);

/// MiB the dirtying guest rewrites without pause.
const DIRTY_MIB: u32 = 32;

/// A longest migration: one that does not converge fails the case.
const MIGRATE_LIMIT: Duration = Duration::from_secs(120);

/// Two daemons of one kind inside the namespace, as the measurement
/// reaches them.
pub(super) struct Pair<'a> {
    kind: DaemonKind,
    ns: &'a NetNs,
    env: &'a Env,
    sockets: [PathBuf; 2],
    ports: [u16; 2],
    /// More `virsh migrate` arguments (libvirtd: where QEMU's stream goes).
    migrate_args: Vec<String>,
}

pub(crate) async fn run(
    kind: DaemonKind,
    env: &Env,
    params: &Params,
) -> BenchResult<MigrationResult> {
    match kind {
        DaemonKind::Ferrovirtd => run_ferrovirtd(env, params).await,
        DaemonKind::Libvirtd => libvirtd::run(env, params).await,
    }
}

async fn run_ferrovirtd(env: &Env, params: &Params) -> BenchResult<MigrationResult> {
    let ns = NetNs::new("benchmig")?;
    let config = |port: u16, first: u16| {
        format!(
            "default_network = false\nnetwork_autostart = false\n\
             listen_tcp = \"127.0.0.1:{port}\"\nauth_tcp = \"none\"\n\
             migration_address = \"127.0.0.1\"\n\
             migration_port_min = {first}\nmigration_port_max = {}\n\
             user = \"root\"\n",
            first + 7
        )
    };
    let a = Daemon::start_ferrovirtd_in(env, "migra", Some(ns.name()), &config(PORTS[0], 49152))?;
    let b = match Daemon::start_ferrovirtd_in(
        env,
        "migrb",
        Some(ns.name()),
        &config(PORTS[1], 49160),
    ) {
        Ok(b) => b,
        Err(e) => {
            a.stop().await;
            return Err(e);
        }
    };
    let pair = Pair {
        kind: DaemonKind::Ferrovirtd,
        ns: &ns,
        env,
        sockets: [a.socket.clone(), b.socket.clone()],
        ports: PORTS,
        migrate_args: Vec::new(),
    };
    let mut result = measure(&pair, params.migration_rounds).await;
    if let Ok(r) = &mut result {
        r.flood = Some(match flood::measure(&ns, [&a, &b], PORTS, params).await {
            Ok(figures) => Outcome::Done(figures),
            Err(error) => {
                eprintln!("  [ferrovirtd] migration under a flood: FAILED: {error}");
                Outcome::Failed {
                    error: error.to_string(),
                }
            }
        });
    }
    a.stop().await;
    b.stop().await;
    drop(ns);
    result
}

/// The idle firmware guest's rounds, then the tiny guest's, idle and
/// dirtying memory.
async fn measure(pair: &Pair<'_>, rounds: usize) -> BenchResult<MigrationResult> {
    let clients = [
        client::open_within(&pair.sockets[0], client::CONNECT).await?,
        client::open_within(&pair.sockets[1], client::CONNECT).await?,
    ];
    let name = format!("{}mig", super::run_tag());
    let domain_type = if pair.env.kvm { "kvm" } else { "qemu" };
    let xml = crate::daemon::domain_xml(&name, domain_type, &pair.env.qemu, &[]);
    client::define_start(&clients[0], &xml, StartAs::Running).await?;
    let (total, downtime) = back_and_forth(pair, &clients, &name, rounds, &[]).await?;
    let mut r = MigrationResult {
        rounds,
        total: LatencySummary::of(&total),
        downtime: LatencySummary::of(&downtime),
        flood: None,
        guests: Vec::new(),
    };
    eprintln!(
        "  [{}] migration: total p50 {:?} us, downtime p50 {:?} us",
        pair.kind.name(),
        r.total.p50_us,
        r.downtime.p50_us
    );
    for (dirty, postcopy) in [
        (None, false),
        (Some(DIRTY_MIB), false),
        (Some(DIRTY_MIB), true),
    ] {
        r.guests
            .push(tiny_guest_case(pair, &clients, dirty, postcopy, rounds).await);
    }
    for c in clients {
        c.close().await;
    }
    Ok(r)
}

/// `rounds` migrations of `name`, alternating direction (it starts on
/// the first daemon, persistent, and migrates with `--persistent`, so
/// that each side keeps it and its statistics): each one's total, and
/// the downtime the source's QEMU measured (libvirt's destination reports
/// its own figure, up to the guest's resumption, so the source's is the
/// one both daemons report alike).
async fn back_and_forth(
    pair: &Pair<'_>,
    clients: &[Client; 2],
    name: &str,
    rounds: usize,
    extra: &[&str],
) -> BenchResult<(Vec<Duration>, Vec<Duration>)> {
    let (mut total, mut downtime) = (Vec::new(), Vec::new());
    let mut args = pair.migrate_args.clone();
    args.push("--persistent".into());
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    for round in 0..rounds {
        let (from, to) = (round % 2, (round + 1) % 2);
        let (src, dst) = (uri(pair.ports[from]), uri(pair.ports[to]));
        let took = migrate(pair.ns.name(), name, &src, &dst, &args).await?;
        total.push(took);
        downtime.push(downtime_of(&clients[from], name).await?);
    }
    Ok((total, downtime))
}

/// The tiny test guest (192 MiB), idle or rewriting `dirty` MiB without
/// pause, migrated `rounds` times; with `postcopy`, switched to post-copy
/// after the first pass (`--postcopy --postcopy-after-precopy`).
async fn tiny_guest_case(
    pair: &Pair<'_>,
    clients: &[Client; 2],
    dirty: Option<u32>,
    postcopy: bool,
    rounds: usize,
) -> MigrationGuest {
    let mut guest = match dirty {
        Some(mib) => format!("tiny guest rewriting {mib} MiB"),
        None => "tiny guest, idle".to_owned(),
    };
    let extra: &[&str] = if postcopy {
        guest.push_str(", post-copy after the first pass");
        &["--postcopy", "--postcopy-after-precopy"]
    } else {
        &[]
    };
    let measured = async {
        let name = format!(
            "{}t{}{}",
            super::run_tag(),
            dirty.unwrap_or(0),
            if postcopy { "p" } else { "" }
        );
        let serial = pair
            .env
            .work
            .join(format!("{name}-{}.serial", pair.kind.name()));
        let xml = tiny_guest_xml(&name, pair.env, &serial, dirty)?;
        client::define_start(&clients[0], &xml, StartAs::Running).await?;
        let marker = if dirty.is_some() {
            "FERROVIRT-DIRTY"
        } else {
            testkit::guest::READY_MARKER
        };
        wait_for_line(&serial, marker, BOOT).await?;
        let figures = back_and_forth(pair, clients, &name, rounds, extra).await;
        // Whichever daemon runs it now stops it; the next guest has the
        // machine to itself.
        for c in clients {
            if let Ok(dom) = client::lookup(c, &name).await {
                let _ = c.destroy(&dom).await;
            }
        }
        figures
    };
    let (total, downtime, error) = match measured.await {
        Ok((total, downtime)) => (total, downtime, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    let case = MigrationGuest {
        guest,
        rounds: total.len(),
        total: LatencySummary::of(&total),
        downtime: LatencySummary::of(&downtime),
        error,
    };
    eprintln!(
        "  [{}] migration, {}: total p50 {:?} us, downtime p50 {:?} us{}",
        pair.kind.name(),
        case.guest,
        case.total.p50_us,
        case.downtime.p50_us,
        case.error
            .as_deref()
            .map(|e| format!(", FAILED: {e}"))
            .unwrap_or_default()
    );
    case
}

/// The tiny guest's domain XML: direct kernel boot, the serial console
/// appended to `serial` (by the QEMU of either side).
fn tiny_guest_xml(name: &str, env: &Env, serial: &Path, dirty: Option<u32>) -> BenchResult<String> {
    let guest = testkit::guest::build()?;
    let domain_type = if env.kvm { "kvm" } else { "qemu" };
    let dirty = dirty
        .map(|mib| format!(" ferrovirt.dirty={mib}"))
        .unwrap_or_default();
    Ok(format!(
        "<domain type='{domain_type}'>\n  <name>{name}</name>\n  <memory unit='MiB'>192</memory>\n  \
         <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    \
         <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 quiet{dirty}</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
         <devices>\n    <emulator>{}</emulator>\n    \
         <serial type='file'><source path='{}' append='on'/><target port='0'/></serial>\n  \
         </devices>\n</domain>\n",
        guest.kernel.display(),
        guest.initrd.display(),
        env.qemu.display(),
        serial.display()
    ))
}

/// Polls `file` until a line holds `marker`, for `limit` at most.
async fn wait_for_line(file: &Path, marker: &str, limit: Duration) -> BenchResult<()> {
    let started = Instant::now();
    loop {
        let text = tokio::fs::read_to_string(file).await.unwrap_or_default();
        if text.contains(marker) {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(BenchError::Timeout {
                what: format!("'{marker}' on the guest's console"),
                after: limit,
            });
        }
        // The polling pace.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A daemon's URI on the namespace's loopback.
fn uri(port: u16) -> String {
    format!("qemu+tcp://127.0.0.1:{port}/system")
}

/// `virsh migrate --live [EXTRA] NAME TO` on `from`, inside network
/// namespace `ns`, timed.
async fn migrate(
    ns: &str,
    name: &str,
    from: &str,
    to: &str,
    extra: &[String],
) -> BenchResult<Duration> {
    let limit = MIGRATE_LIMIT.as_secs().to_string();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "timeout", &limit, "virsh", "-c", from])
        .args(["migrate", "--live"])
        .args(extra)
        .args([name, to]);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| BenchError::Refused {
            what: "virsh migrate".into(),
            answer: e.to_string(),
        })?
        .map_err(BenchError::io("run virsh migrate"))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(BenchError::Refused {
            what: "virsh migrate".into(),
            answer: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(took)
}

/// The downtime a daemon's last completed migration job of `name`
/// reports.
async fn downtime_of(client: &Client, name: &str) -> BenchResult<Duration> {
    let dom = client::lookup(client, name).await?;
    let stats: DomainGetJobStatsRet = client
        .call(
            p::DOMAIN_GET_JOB_STATS,
            &DomainFlagsArgs {
                dom,
                flags: JOB_STATS_COMPLETED,
            },
        )
        .await
        .map_err(BenchError::rpc("completed job statistics"))?;
    stats
        .params
        .iter()
        .find_map(|p| match (&*p.field, &p.value) {
            ("downtime", TypedParamValue::ULLong(ms)) => Some(Duration::from_millis(*ms)),
            _ => None,
        })
        .ok_or_else(|| BenchError::Refused {
            what: "completed job statistics".into(),
            answer: "no downtime reported".into(),
        })
}
