//! Storage: a directory pool on each daemon; create, list and delete many
//! small volumes one call at a time, then refresh the pool with many files
//! dropped into its directory and list them.

use std::path::Path;
use std::time::{Duration, Instant};

use rpc::protocol::remote::{
    NonnullStoragePool, StoragePoolArgs, StoragePoolFlagsArgs, StoragePoolListAllVolumesArgs,
    StoragePoolListAllVolumesRet, StoragePoolRet, StorageVolCreateXmlArgs, StorageVolFlagsArgs,
    StorageVolRet, XmlFlagsArgs, procedure as p,
};

use crate::daemon::{Daemon, DaemonKind, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{StorageResult, TimedCalls};
use crate::stats::{LatencySummary, round3};

/// Listing calls per measurement.
const LISTS: usize = 50;
/// Refreshes per measurement.
const REFRESHES: usize = 5;

pub(crate) async fn run(
    kind: DaemonKind,
    env: &Env,
    params: &Params,
) -> BenchResult<StorageResult> {
    let daemon = Daemon::start_with_storage(kind, env, "storage")?;
    let dir = env.work.join(format!("pool-{}", kind.name()));
    let result = measure(&daemon, &dir, params).await;
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(daemon: &Daemon, dir: &Path, params: &Params) -> BenchResult<StorageResult> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("create {}", dir.display())))?;
    let client = crate::client::open_within(&daemon.socket, crate::client::CONNECT).await?;
    let pool = create_pool(&client, dir).await?;
    let names: Vec<String> = (0..params.storage_volumes)
        .map(|i| format!("vol{i:05}.img"))
        .collect();
    let create = timed(&names, |name| create_volume(&client, &pool, name)).await?;
    eprintln!(
        "  [{}] storage: {} volumes created in {} s",
        daemon.label(),
        names.len(),
        create.total_s
    );
    let list = list_latency(&client, &pool, names.len()).await?;
    let delete = timed(&names, |name| delete_volume(&client, &pool, name)).await?;
    eprintln!(
        "  [{}] storage: deleted in {} s",
        daemon.label(),
        delete.total_s
    );
    drop_files(dir, params.storage_files)?;
    let mut refresh = Vec::new();
    for _ in 0..REFRESHES {
        let started = Instant::now();
        call::<_, ()>(
            &client,
            p::STORAGE_POOL_REFRESH,
            &StoragePoolFlagsArgs {
                pool: pool.clone(),
                flags: 0,
            },
        )
        .await?;
        refresh.push(started.elapsed());
    }
    let refresh = LatencySummary::of(&refresh);
    eprintln!(
        "  [{}] storage: refresh of {} files p50 {:?} us",
        daemon.label(),
        params.storage_files,
        refresh.p50_us
    );
    let list_files = list_latency(&client, &pool, params.storage_files).await?;
    call::<_, ()>(&client, p::STORAGE_POOL_DESTROY, &StoragePoolArgs { pool }).await?;
    Ok(StorageResult {
        volumes: names.len(),
        create,
        list,
        delete,
        files: params.storage_files,
        refresh,
        list_files,
    })
}

async fn call<A: rpc::xdr::Xdr, R: rpc::xdr::Xdr>(
    client: &rpc::Client,
    procedure: i32,
    args: &A,
) -> BenchResult<R> {
    client
        .call(procedure, args)
        .await
        .map_err(|e| BenchError::Refused {
            what: rpc::server::describe_procedure(procedure),
            answer: e.to_string(),
        })
}

/// A transient directory pool on `dir`.
async fn create_pool(client: &rpc::Client, dir: &Path) -> BenchResult<NonnullStoragePool> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench".into());
    let xml = format!(
        "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let ret: StoragePoolRet = call(
        client,
        p::STORAGE_POOL_CREATE_XML,
        &XmlFlagsArgs { xml, flags: 0 },
    )
    .await?;
    Ok(ret.pool)
}

async fn create_volume(
    client: &rpc::Client,
    pool: &NonnullStoragePool,
    name: &str,
) -> BenchResult<()> {
    let xml = format!(
        "<volume><name>{name}</name><capacity unit='MiB'>1</capacity><allocation>0</allocation></volume>"
    );
    let _: StorageVolRet = call(
        client,
        p::STORAGE_VOL_CREATE_XML,
        &StorageVolCreateXmlArgs {
            pool: pool.clone(),
            xml,
            flags: 0,
        },
    )
    .await?;
    Ok(())
}

async fn delete_volume(
    client: &rpc::Client,
    pool: &NonnullStoragePool,
    name: &str,
) -> BenchResult<()> {
    let ret: StorageVolRet = call(
        client,
        p::STORAGE_VOL_LOOKUP_BY_NAME,
        &rpc::protocol::remote::StorageVolLookupByNameArgs {
            pool: pool.clone(),
            name: name.to_owned(),
        },
    )
    .await?;
    call(
        client,
        p::STORAGE_VOL_DELETE,
        &StorageVolFlagsArgs {
            vol: ret.vol,
            flags: 0,
        },
    )
    .await
}

/// Runs `op` for each name in turn: total time and per-call latency.
async fn timed<'a, F, Fut>(names: &'a [String], op: F) -> BenchResult<TimedCalls>
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = BenchResult<()>>,
{
    let mut samples = Vec::with_capacity(names.len());
    let started = Instant::now();
    for name in names {
        let t = Instant::now();
        op(name).await?;
        samples.push(t.elapsed());
    }
    Ok(TimedCalls {
        calls: names.len(),
        total_s: round3(started.elapsed().as_secs_f64()),
        latency: LatencySummary::of(&samples),
    })
}

/// `LISTS` calls of list-all-volumes; each must see `expect` volumes.
async fn list_latency(
    client: &rpc::Client,
    pool: &NonnullStoragePool,
    expect: usize,
) -> BenchResult<LatencySummary> {
    let mut samples: Vec<Duration> = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        let started = Instant::now();
        let ret: StoragePoolListAllVolumesRet = call(
            client,
            p::STORAGE_POOL_LIST_ALL_VOLUMES,
            &StoragePoolListAllVolumesArgs {
                pool: pool.clone(),
                need_results: 1,
                flags: 0,
            },
        )
        .await?;
        samples.push(started.elapsed());
        if ret.vols.len() != expect {
            return Err(BenchError::Refused {
                what: "list of all volumes".into(),
                answer: format!("{} volumes, expected {expect}", ret.vols.len()),
            });
        }
    }
    Ok(LatencySummary::of(&samples))
}

/// Drops `count` small files into the pool's directory behind the
/// daemon's back, as a user copying images in would.
fn drop_files(dir: &Path, count: usize) -> BenchResult<()> {
    let data = vec![0x5au8; 4096];
    for i in 0..count {
        let path = dir.join(format!("file{i:05}.img"));
        std::fs::write(&path, &data)
            .map_err(BenchError::io(format!("write {}", path.display())))?;
    }
    Ok(())
}
