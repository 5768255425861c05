//! Chaos: random mixes of every mutating operation the daemon has, driven
//! over the real RPC protocol by concurrent clients, with `kill -9` of the
//! daemon at random instants. After every restart, and before the clients
//! go on, the properties of [`check`] must hold.
//!
//! | module | what it is |
//! |---|---|
//! | [`world`] | the daemon's root, its domains (qemu-sim or real QEMU), pool and paths |
//! | [`ops`] | the operations, chosen at random, and how an answer is classified |
//! | [`model`] | what the clients know from their answers, and what a cut-off operation must have left |
//! | [`check`] | the properties after a restart (files in `files`) |
//! | [`rng`] | the seeded generator: a seed replays the same choices |
//!
//! The seed decides every choice (operations, names, the instant of each
//! kill); the timing of the daemon decides which operations a kill cuts
//! off, so a replay exercises the same mix, not the same interleaving.

pub mod check;
mod files;
pub mod model;
pub mod ops;
pub mod rng;
pub mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc::protocol::remote::{DomainDefineXmlArgs, DomainRet, XmlFlagsArgs, procedure as p};
use rpc::protocol::remote::{StoragePoolFlagsArgs, StoragePoolRet};
use tokio::sync::Mutex;

pub use check::{Broken, Violation};
pub use world::Emulator;

use crate::Error;
use crate::daemon::Ferrovirtd;
use model::{Counts, Model};
use ops::{Choice, Kind, Outcome};
use rng::Rng;
use world::{Role, Setup, World};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// How many times the daemon is killed (and checked after restart).
    pub kills: usize,
    pub clients: usize,
    /// Persistent domains every client drives.
    pub base_domains: usize,
    pub emulator: Emulator,
    pub ferrovirtd: PathBuf,
    /// The root is made in this directory (keep it short: UNIX socket
    /// paths are limited to 108 bytes).
    pub parent: PathBuf,
    /// The kill comes at a random instant in this window after the
    /// clients began.
    pub kill_window: (Duration, Duration),
    /// `-sim-job-ms`: duration of a simulated save or block job.
    pub sim_job_ms: u64,
    /// A line on stderr after every restart.
    pub verbose: bool,
}

/// What a run found.
#[derive(Debug)]
pub struct Summary {
    pub seed: u64,
    pub kills: usize,
    pub ops: BTreeMap<Kind, Counts>,
    /// Refusals by operation and libvirt error code, with a sample.
    pub refusals: BTreeMap<(Kind, i32), (u64, String)>,
    /// What the restarted daemons killed when they reconciled, by the
    /// reason they logged (an unfinished start, a process no record
    /// names, a probe, a second QEMU).
    pub reconciled: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
    /// The root (kept when something was found).
    pub root: PathBuf,
    pub elapsed: Duration,
}

impl Summary {
    /// Violations of one kind.
    pub fn count(&self, broken: Broken) -> usize {
        self.violations
            .iter()
            .filter(|v| v.broken == broken)
            .count()
    }

    /// A table of the operations and every violation.
    pub fn render(&self) -> String {
        let mut s = format!(
            "chaos seed {} — {} kills in {:.1} s\n{:<13} {:>6} {:>8} {:>11}\n",
            self.seed,
            self.kills,
            self.elapsed.as_secs_f64(),
            "operation",
            "ok",
            "refused",
            "interrupted"
        );
        for (kind, c) in &self.ops {
            let _ = writeln!(
                s,
                "{:<13} {:>6} {:>8} {:>11}",
                format!("{kind:?}"),
                c.ok,
                c.refused,
                c.interrupted
            );
        }
        for (why, n) in &self.reconciled {
            let _ = writeln!(s, "restarts killed {n}: {why}");
        }
        let _ = writeln!(
            s,
            "lost {}  orphaned {}  duplicated {}  other {}",
            self.count(Broken::Lost),
            self.count(Broken::Orphaned),
            self.count(Broken::Duplicated),
            self.violations.len()
                - self.count(Broken::Lost)
                - self.count(Broken::Orphaned)
                - self.count(Broken::Duplicated)
        );
        for v in &self.violations {
            let _ = writeln!(s, "after kill {}: {:?}: {}", v.kill, v.broken, v.detail);
        }
        s
    }

    /// Why operations were refused: count, libvirt code, a sample message.
    pub fn render_refusals(&self) -> String {
        let mut s = String::new();
        for ((kind, code), (n, sample)) in &self.refusals {
            let _ = writeln!(
                s,
                "{:<13} code {code:>3} x{n:<5} {sample}",
                format!("{kind:?}")
            );
        }
        s
    }
}

/// The seed of a run: `FERROVIRT_CHAOS_SEED` when set (to replay a
/// failure), else one from the clock.
pub fn seed_from_env() -> u64 {
    std::env::var("FERROVIRT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
        })
}

/// Runs `cfg.kills` kill-and-restart cycles and checks after each.
pub async fn run(cfg: &Config) -> Result<Summary, Error> {
    let started = Instant::now();
    let (world, mut daemon) = World::create(&setup(cfg))?;
    let world = Arc::new(world);
    populate(&world, cfg.sim_job_ms).await?;
    let model = Arc::new(Mutex::new(Model::new(&world)));
    let mut violations = Vec::new();
    let rng = Rng::new(cfg.seed);
    for kill in 0..cfg.kills {
        let stream = rng.fork(kill as u64);
        let found = cycle(cfg, &world, &mut daemon, &model, stream, kill).await?;
        if cfg.verbose {
            let (seed, n) = (cfg.seed, found.len());
            eprintln!(
                "chaos seed {seed}: kill {}/{}: {n} violation(s)",
                kill + 1,
                cfg.kills
            );
        }
        violations.extend(found);
    }
    daemon.kill();
    let _ = daemon.kill_processes_under_root();
    let reconciled = reconcile_kills(&daemon.log());
    if violations.is_empty() {
        let _ = std::fs::remove_dir_all(&world.paths.root);
    }
    let m = model.lock().await;
    Ok(Summary {
        seed: cfg.seed,
        kills: cfg.kills,
        ops: m.counts.clone(),
        refusals: m.refusals.clone(),
        reconciled,
        violations,
        root: world.paths.root.clone(),
        elapsed: started.elapsed(),
    })
}

/// A fresh root under `cfg.parent` (a leftover of the same seed and
/// process is removed first).
fn setup(cfg: &Config) -> Setup {
    let root = cfg
        .parent
        .join(format!("fvc{}-{}", std::process::id(), cfg.seed % 100_000));
    let _ = std::fs::remove_dir_all(&root);
    Setup {
        root,
        ferrovirtd: cfg.ferrovirtd.clone(),
        emulator: cfg.emulator.clone(),
        base_domains: cfg.base_domains,
        clients: cfg.clients,
        seed: cfg.seed,
    }
}

/// The kills the driver logged while it reconciled, by reason.
fn reconcile_kills(log: &str) -> BTreeMap<String, usize> {
    const MARK: &str = "killing a process of this root: ";
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some(at) = line.find(MARK) {
            let rest = &line[at + MARK.len()..];
            // The reason ends where tracing's fields begin.
            let why = rest.split('\u{1b}').next().unwrap_or(rest);
            let why = why.split(" pid=").next().unwrap_or(why).trim();
            *out.entry(why.to_owned()).or_default() += 1;
        }
    }
    out
}

/// Defines the base domains and the main pool.
async fn populate(w: &World, sim_job_ms: u64) -> Result<(), Error> {
    let client = crate::client::open(&w.socket).await?;
    for d in w.domains.iter().filter(|d| d.role == Role::Base) {
        let args = DomainDefineXmlArgs {
            xml: w.xml(d, sim_job_ms),
        };
        let _: DomainRet = client
            .call(p::DOMAIN_DEFINE_XML, &args)
            .await
            .map_err(Error::rpc(format!("define {}", d.name)))?;
    }
    let args = XmlFlagsArgs {
        xml: ops::pool_xml(world::POOL, &w.paths.pool),
        flags: 0,
    };
    let ret: StoragePoolRet = client
        .call(p::STORAGE_POOL_DEFINE_XML, &args)
        .await
        .map_err(Error::rpc("define the pool"))?;
    let args = StoragePoolFlagsArgs {
        pool: ret.pool,
        flags: 0,
    };
    client
        .call::<_, ()>(p::STORAGE_POOL_CREATE, &args)
        .await
        .map_err(Error::rpc("start the pool"))?;
    client.close().await;
    Ok(())
}

/// Clients run until a kill at a random instant; the daemon is started
/// again and checked.
async fn cycle(
    cfg: &Config,
    world: &Arc<World>,
    daemon: &mut Ferrovirtd,
    model: &Arc<Mutex<Model>>,
    mut rng: Rng,
    kill: usize,
) -> Result<Vec<Violation>, Error> {
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..cfg.clients {
        let (w, m, r) = (world.clone(), model.clone(), rng.fork(c as u64));
        clients.spawn(client_loop(w, m, c, r, cfg.sim_job_ms));
    }
    tokio::time::sleep(rng.between(cfg.kill_window.0, cfg.kill_window.1)).await;
    let mut found = Vec::new();
    if let Some(status) = daemon.exited() {
        found.push(Violation {
            kill,
            broken: Broken::State,
            detail: format!(
                "the daemon exited by itself ({status}); see {}",
                daemon.log_path().display()
            ),
        });
    }
    daemon.kill();
    while clients.join_next().await.is_some() {}
    daemon.spawn()?;
    let mut m = model.lock().await;
    found.extend(check::check(world, &mut m, kill).await?);
    Ok(found)
}

/// One client: random operations until the daemon is killed under it.
async fn client_loop(
    w: Arc<World>,
    model: Arc<Mutex<Model>>,
    c: usize,
    mut rng: Rng,
    sim_job_ms: u64,
) {
    let Ok(client) = crate::client::open(&w.socket).await else {
        return;
    };
    loop {
        let op = {
            let mut m = model.lock().await;
            let serial = m.next_serial();
            let choice = Choice {
                world: &w,
                client: c,
                images: &m.images,
                serial,
            };
            ops::choose(&mut rng, &choice)
        };
        let out = ops::run(&client, &w, sim_job_ms, &op).await;
        model.lock().await.record(&w, &op, &out);
        if out == Outcome::Interrupted {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_kills_are_counted_by_reason() {
        let log = "\
2026 WARN qemu::store::reconcile: killing a process of this root: its start had not completed when the previous daemon stopped pid=5 owner=Domain(x)
2026 WARN qemu::store::reconcile: killing a process of this root: a probe the previous daemon left \u{1b}[3mpid\u{1b}[0m=7
2026 WARN qemu::store::reconcile: killing a process of this root: its start had not completed when the previous daemon stopped pid=9 owner=Domain(y)
2026 INFO something else";
        let k = reconcile_kills(log);
        assert_eq!(k.len(), 2, "{k:?}");
        assert_eq!(
            k["its start had not completed when the previous daemon stopped"],
            2
        );
        assert_eq!(k["a probe the previous daemon left"], 1);
    }
}
