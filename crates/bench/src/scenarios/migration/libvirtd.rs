//! Two libvirtd 9.0 instances for the migration scenario, started by
//! `scripts/libvirtd-pair.sh` inside the bench's network namespace: each
//! with its own state directory under the bench's work directory, its own
//! `host_uuid` (libvirt refuses to migrate between daemons reporting the
//! same one), a TCP listener on the namespace's loopback, the QEMU driver
//! alone (no networks, no firewall). QEMU's stream goes to 127.0.0.1
//! (`--migrateuri`: libvirt refuses a loopback `migration_address`).

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::netns::NetNs;

use crate::cli::workspace_root;
use crate::daemon::{DaemonKind, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::MigrationResult;

use super::{Pair, measure};

const PORTS: [u16; 2] = [16621, 16622];
const HOST_UUIDS: [&str; 2] = [
    "6b7e2a5c-1f0d-4c8e-9a3b-0d5f1e2c3a4b",
    "9d1c3e7f-2a4b-4d6e-8f0a-1b2c3d4e5f60",
];
const MIGRATION_PORTS: [u16; 2] = [49200, 49210];

pub(super) async fn run(env: &Env, params: &Params) -> BenchResult<MigrationResult> {
    let reaper = env.harness_file("reaper.py")?;
    let ns = NetNs::new("benchmiglv")?;
    let dirs = [env.work.join("lvmig-a"), env.work.join("lvmig-b")];
    let mut started = Vec::new();
    let mut result = Err(BenchError::Unsupported("no libvirtd started"));
    for (i, dir) in dirs.iter().enumerate() {
        let up = script(&[
            "start".as_ref(),
            dir.as_os_str(),
            ns.name().as_ref(),
            PORTS[i].to_string().as_ref(),
            HOST_UUIDS[i].as_ref(),
            MIGRATION_PORTS[i].to_string().as_ref(),
            reaper.as_os_str(),
        ])
        .await;
        match up {
            Ok(()) => started.push(dir.clone()),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if started.len() == 2 {
        let pair = Pair {
            kind: DaemonKind::Libvirtd,
            ns: &ns,
            env,
            sockets: [socket(&dirs[0]), socket(&dirs[1])],
            ports: PORTS,
            migrate_args: vec!["--migrateuri".into(), "tcp://127.0.0.1".into()],
        };
        result = measure(&pair, params.migration_rounds).await;
    }
    for dir in started {
        if let Err(e) = script(&["stop".as_ref(), dir.as_os_str()]).await {
            eprintln!("  [libvirtd] stopping {}: {e}", dir.display());
        }
    }
    drop(ns);
    result
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("sock/libvirt-sock")
}

/// Runs `scripts/libvirtd-pair.sh ARGS`.
async fn script(args: &[&std::ffi::OsStr]) -> BenchResult<()> {
    let mut cmd = Command::new(workspace_root().join("scripts/libvirtd-pair.sh"));
    cmd.args(args);
    let what = format!("libvirtd-pair.sh {}", args[0].to_string_lossy());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .map_err(BenchError::io(what.clone()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::Refused {
            what,
            answer: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
