//! Volume transfers: `virsh vol-upload` and `vol-download` of a volume
//! through each daemon's streams (the same client, libvirt's own, for
//! both), timed, with the daemon's CPU time and peak RSS sampled during
//! each. The bytes downloaded are checked against those uploaded.

use std::path::Path;
use std::time::{Duration, Instant};

use rpc::protocol::remote::{
    NonnullStoragePool, StoragePoolArgs, StoragePoolRet, StorageVolCreateXmlArgs, StorageVolRet,
    XmlFlagsArgs, procedure as p,
};

use crate::daemon::{Daemon, DaemonKind, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::{TransferPhase, TransferResult};
use crate::stats::{ResourceWindow, Sampler, round1, round3};

/// The sampling pace of the daemon's RSS and CPU.
const SAMPLE: Duration = Duration::from_millis(20);
const VOLUME: &str = "xfer.img";

pub(crate) async fn run(
    kind: DaemonKind,
    env: &Env,
    params: &Params,
) -> BenchResult<TransferResult> {
    let daemon = Daemon::start_with_storage(kind, env, "transfer")?;
    let dir = env.work.join(format!("xfer-{}", kind.name()));
    let result = measure(&daemon, &dir, params.transfer_mib).await;
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(daemon: &Daemon, dir: &Path, size_mib: u64) -> BenchResult<TransferResult> {
    let _ = std::fs::remove_dir_all(dir);
    let pool_dir = dir.join("pool");
    std::fs::create_dir_all(&pool_dir)
        .map_err(BenchError::io(format!("create {}", pool_dir.display())))?;
    let source = dir.join("source.img");
    let back = dir.join("back.img");
    write_source(&source, size_mib)?;
    let client = crate::client::open_within(&daemon.socket, crate::client::CONNECT).await?;
    let pool = create_pool(&client, &pool_dir, daemon.kind).await?;
    create_volume(&client, &pool, size_mib).await?;
    let (s, b) = (path_arg(&source), path_arg(&back));
    let up = ["vol-upload", "--pool", &pool.name, VOLUME, &s];
    let upload = timed_virsh(daemon, &up, size_mib).await?;
    report(daemon, "vol-upload", size_mib, &upload);
    let down = ["vol-download", "--pool", &pool.name, VOLUME, &b];
    let download = timed_virsh(daemon, &down, size_mib).await?;
    report(daemon, "vol-download", size_mib, &download);
    same_bytes(&source, &back)?;
    let _: () = client
        .call(p::STORAGE_POOL_DESTROY, &StoragePoolArgs { pool })
        .await
        .map_err(BenchError::rpc("destroy the pool"))?;
    Ok(TransferResult {
        size_mib,
        upload,
        download,
    })
}

fn report(daemon: &Daemon, what: &str, size_mib: u64, phase: &TransferPhase) {
    eprintln!(
        "  [{}] {what} of {size_mib} MiB: {} s, {} MiB/s, daemon CPU {} s/GiB, RSS peak {} MiB",
        daemon.label(),
        phase.seconds,
        phase.mib_per_s,
        phase.cpu_s_per_gib,
        phase.rss_mib_peak,
    );
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `size_mib` MiB of data no file system compresses or skips: a random
/// MiB, varied per MiB.
fn write_source(path: &Path, size_mib: u64) -> BenchResult<()> {
    use std::io::Write;
    let err = || BenchError::io(format!("write {}", path.display()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(err())?);
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    for i in 0..size_mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all(&block).map_err(err())?;
    }
    f.into_inner()
        .map_err(|e| BenchError::Io {
            what: format!("write {}", path.display()),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(err())
}

/// A transient directory pool on `dir`.
async fn create_pool(
    client: &rpc::Client,
    dir: &Path,
    kind: DaemonKind,
) -> BenchResult<NonnullStoragePool> {
    let xml = format!(
        "<pool type='dir'><name>xfer-{}</name><target><path>{}</path></target></pool>",
        kind.name(),
        dir.display()
    );
    let ret: StoragePoolRet = client
        .call(p::STORAGE_POOL_CREATE_XML, &XmlFlagsArgs { xml, flags: 0 })
        .await
        .map_err(BenchError::rpc("create the pool"))?;
    Ok(ret.pool)
}

/// The (sparse) raw volume the upload fills.
async fn create_volume(
    client: &rpc::Client,
    pool: &NonnullStoragePool,
    size_mib: u64,
) -> BenchResult<()> {
    let xml = format!(
        "<volume><name>{VOLUME}</name><capacity unit='MiB'>{size_mib}</capacity>\
         <allocation>0</allocation></volume>"
    );
    let args = StorageVolCreateXmlArgs {
        pool: pool.clone(),
        xml,
        flags: 0,
    };
    let _: StorageVolRet = client
        .call(p::STORAGE_VOL_CREATE_XML, &args)
        .await
        .map_err(BenchError::rpc("create the volume"))?;
    Ok(())
}

/// Runs virsh moving `size_mib` MiB, with the daemon's CPU and RSS
/// sampled.
async fn timed_virsh(daemon: &Daemon, args: &[&str], size_mib: u64) -> BenchResult<TransferPhase> {
    let pid = daemon
        .pid()
        .ok_or(BenchError::Unsupported("the daemon is gone"))?;
    let uri = testkit::daemon::uri_of(&daemon.socket);
    let mut command = std::process::Command::new("virsh");
    command.arg("-c").arg(&uri).args(args);
    let sampler = Sampler::start(pid, SAMPLE, u64::MAX);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || command.output())
        .await?
        .map_err(BenchError::io("run virsh"))?;
    let seconds = started.elapsed().as_secs_f64();
    let end_s = sampler.now_s();
    let samples = sampler.finish();
    if !out.status.success() {
        return Err(BenchError::Refused {
            what: format!("virsh {}", args.join(" ")),
            answer: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let window = ResourceWindow::of(&samples, 0.0, end_s).ok_or(BenchError::Unsupported(
        "too few samples of the daemon during the transfer",
    ))?;
    Ok(phase(seconds, &window, size_mib))
}

fn phase(seconds: f64, w: &ResourceWindow, size_mib: u64) -> TransferPhase {
    let mib = size_mib as f64;
    TransferPhase {
        seconds: round3(seconds),
        mib_per_s: round1(mib / seconds.max(1e-6)),
        cpu_s: w.cpu_s,
        cpu_s_per_gib: round3(w.cpu_s * 1024.0 / mib.max(1.0)),
        rss_mib_start: w.rss_mib_start,
        rss_mib_peak: w.rss_mib_peak,
    }
}

/// The download must be the upload, byte for byte.
fn same_bytes(a: &Path, b: &Path) -> BenchResult<()> {
    let open =
        |p: &Path| std::fs::File::open(p).map_err(BenchError::io(format!("open {}", p.display())));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Err(BenchError::Refused {
                what: "the downloaded volume".into(),
                answer: "differs from what was uploaded".into(),
            });
        }
        if na == 0 {
            return Ok(());
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> BenchResult<usize> {
    use std::io::Read;
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]).map_err(BenchError::io("read"))? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}
