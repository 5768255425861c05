//! Scenario 1, RPC latency and throughput: N paused VMs, closed loops of GET_INFO
//! and GET_STATE with 1 and 8 clients, N stepping up.

use crate::client::{self, Op, StartAs};
use crate::daemon::{Daemon, DaemonKind, Emu, Env};
use crate::error::BenchResult;
use crate::params::Params;
use crate::results::{RpcCell, RpcResult, RpcStart};
use crate::stats::shown;

use super::{SETTLE, start_vms, vm_names};

pub(crate) async fn run(
    kind: DaemonKind,
    emu: Emu,
    env: &Env,
    params: &Params,
) -> BenchResult<RpcResult> {
    let daemon = Daemon::start(kind, env, "rpc")?;
    let result = measure(&daemon, emu, params).await;
    daemon.stop().await;
    result
}

async fn measure(daemon: &Daemon, emu: Emu, params: &Params) -> BenchResult<RpcResult> {
    let mut result = RpcResult::default();
    let mut names: Vec<String> = Vec::new();
    for &count in &params.rpc_n {
        let added = vm_names("r", names.len(), count);
        let start = start_vms(daemon, &added, emu, &[], StartAs::Paused, 4).await?;
        eprintln!(
            "  [{}] rpc: +{} VMs in {} s",
            daemon.label(),
            added.len(),
            start.total_s
        );
        result.starts.push(RpcStart {
            running: count,
            start,
        });
        names.extend(added);
        tokio::time::sleep(SETTLE).await;
        let memory = daemon.memory();
        for op in [Op::Info, Op::State] {
            for conns in [1usize, 8] {
                let load =
                    client::closed_loop(&daemon.socket, &names, op, conns, params.cell()).await?;
                eprintln!(
                    "  [{}] rpc N={count} {} x{conns}: {} ops/s p50 {} p99 {} max {} us",
                    daemon.label(),
                    op.name(),
                    load.ops_per_s,
                    shown(load.latency.p50_us),
                    shown(load.latency.p99_us),
                    shown(load.latency.max_us)
                );
                result.cells.push(RpcCell {
                    load,
                    n_vms: count,
                    daemon_after_start: memory,
                });
            }
        }
    }
    result.daemon_end = daemon.memory();
    Ok(result)
}
