//! What must hold after every restart, before the clients go on:
//!
//! - no definition lost or duplicated (domains, definition files, pools,
//!   volumes), none resurrected;
//! - every running domain has exactly one QEMU, no QEMU runs without a
//!   running domain (nor a probe of the killed daemon), and the state the
//!   daemon reports is the one QEMU is in;
//! - no temporary or partial file is left (see [`super::files`]);
//! - no job is reported running that nobody runs, and the operations the
//!   kill cut off left either their effect or nothing.
//!
//! States settle: a guest told to power off just before the kill exits a
//! moment later, and the restarted daemon notices. So the process and
//! state checks poll until they hold, with a deadline, and report what
//! still does not hold at the deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rpc::Client;
use rpc::protocol::remote::{
    ConnectListAllDomainsArgs, ConnectListAllDomainsRet, DomainArgs, DomainFlagsArgs,
    DomainGetJobInfoRet, DomainGetStateRet, NonnullDomain, procedure as p,
};
use rpc::protocol::remote::{
    ConnectListAllSecretsArgs, ConnectListAllSecretsRet, SecretFlagsArgs, SecretGetValueRet,
};
use rpc::protocol::remote::{
    ConnectListAllStoragePoolsArgs, ConnectListAllStoragePoolsRet, StoragePoolListAllVolumesArgs,
    StoragePoolListAllVolumesRet,
};

use super::files;
use super::model::{Known, Model};
use super::ops;
use super::world::{POOL, Role, World, uuid_string};
use crate::Error;

/// How long states may take to settle after a restart.
const SETTLE: Duration = Duration::from_secs(20);
/// `VIR_CONNECT_LIST_DOMAINS_PERSISTENT`.
const LIST_PERSISTENT: u32 = 4;
/// `VIR_DOMAIN_RUNNING`, `VIR_DOMAIN_SHUTOFF`.
const RUNNING: i32 = 1;
const SHUTOFF: i32 = 5;

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Broken {
    /// A definition (domain, pool, volume) that should exist is gone.
    Lost,
    /// A QEMU (or probe) runs that no running domain accounts for.
    Orphaned,
    /// Two QEMUs for one domain, or one definition listed twice.
    Duplicated,
    /// The daemon reports a state the process is not in, or something
    /// removed came back.
    State,
    /// A temporary or partial file was left behind.
    Leftover,
    /// A job is reported that nobody runs, or a cut-off job left a trace.
    Job,
}

/// One broken property after one restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kill: usize,
    pub broken: Broken,
    pub detail: String,
}

/// A domain as the restarted daemon lists it.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) dom: NonnullDomain,
    pub(super) state: i32,
    pub(super) persistent: bool,
}

impl Listed {
    pub(super) fn active(&self) -> bool {
        self.state != SHUTOFF && self.state != 0
    }
}

/// Collects the violations of one check.
pub(super) struct Report {
    pub(super) kill: usize,
    pub(super) found: Vec<Violation>,
}

impl Report {
    pub(super) fn add(&mut self, broken: Broken, detail: impl Into<String>) {
        self.found.push(Violation {
            kill: self.kill,
            broken,
            detail: detail.into(),
        });
    }
}

/// Runs every check after restart number `kill`; then the model adopts
/// what it found for the names it did not know.
pub async fn check(w: &World, m: &mut Model, kill: usize) -> Result<Vec<Violation>, Error> {
    let client = crate::client::open(&w.socket).await?;
    let mut r = Report {
        kill,
        found: Vec::new(),
    };
    let listed = settle(w, &client, &mut r).await?;
    definitions(w, m, &listed, &mut r);
    probes(w, &mut r).await;
    jobs(&client, &listed, &mut r).await?;
    files::check(w, m, &client, &listed, &mut r).await?;
    storage(&client, m, &mut r).await?;
    secrets(&client, m, &mut r).await?;
    client.close().await;
    Ok(r.found)
}

/// Lists the domains until processes and states agree with the daemon
/// (or the deadline passes, then what still disagrees goes to `r`);
/// returns the last listing.
async fn settle(w: &World, client: &Client, r: &mut Report) -> Result<Vec<Listed>, Error> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let listed = list(client).await?;
        let mut round = Report {
            kill: r.kill,
            found: Vec::new(),
        };
        compare_processes(w, &listed, &mut round);
        compare_states(w, &listed, &mut round);
        let settled = round.found.is_empty();
        if settled || tokio::time::Instant::now() >= deadline {
            r.found.extend(round.found);
            return Ok(listed);
        }
        tokio::time::sleep(crate::wait::POLL * 10).await;
    }
}

/// Every domain with its state and whether it is persistent.
async fn list(client: &Client) -> Result<Vec<Listed>, Error> {
    let all = list_domains(client, 0).await?;
    let persistent: BTreeSet<[u8; 16]> = list_domains(client, LIST_PERSISTENT)
        .await?
        .into_iter()
        .map(|d| d.uuid)
        .collect();
    let mut out = Vec::with_capacity(all.len());
    for dom in all {
        let args = DomainFlagsArgs {
            dom: dom.clone(),
            flags: 0,
        };
        let st: DomainGetStateRet = match client.call(p::DOMAIN_GET_STATE, &args).await {
            Ok(st) => st,
            // A transient domain that stopped since the listing is gone.
            Err(rpc::ClientError::Remote(_)) => continue,
            Err(e) => return Err(Error::rpc(format!("state of {}", dom.name))(e)),
        };
        let persistent = persistent.contains(&dom.uuid);
        out.push(Listed {
            dom,
            state: st.state,
            persistent,
        });
    }
    Ok(out)
}

async fn list_domains(client: &Client, flags: u32) -> Result<Vec<NonnullDomain>, Error> {
    let args = ConnectListAllDomainsArgs {
        need_results: 1,
        flags,
    };
    let ret: ConnectListAllDomainsRet = client
        .call(p::CONNECT_LIST_ALL_DOMAINS, &args)
        .await
        .map_err(Error::rpc("list domains"))?;
    Ok(ret.domains)
}

/// Definitions: none lost, none listed twice, none resurrected; the
/// definition files are exactly the persistent domains.
fn definitions(w: &World, m: &mut Model, listed: &[Listed], r: &mut Report) {
    let mut names = BTreeSet::new();
    let mut uuids = BTreeSet::new();
    for l in listed {
        if !names.insert(l.dom.name.clone()) || !uuids.insert(l.dom.uuid) {
            r.add(
                Broken::Duplicated,
                format!("domain {} listed twice", l.dom.name),
            );
        }
    }
    let persistent: BTreeSet<&str> = listed
        .iter()
        .filter(|l| l.persistent)
        .map(|l| l.dom.name.as_str())
        .collect();
    for d in w.domains.iter().filter(|d| d.role == Role::Base) {
        if !persistent.contains(d.name.as_str()) {
            r.add(Broken::Lost, format!("definition of {} lost", d.name));
        }
    }
    for (name, known) in m.defs.iter_mut() {
        let present = persistent.contains(name.as_str());
        expect(r, "definition of domain", name, *known, present);
        *known = if present {
            Known::Present
        } else {
            Known::Absent
        };
    }
    let files = names_with_ext(&w.paths.config_dir(), "xml");
    let listed_names: BTreeSet<String> = persistent.iter().map(|s| (*s).to_owned()).collect();
    for extra in files.difference(&listed_names) {
        r.add(
            Broken::Duplicated,
            format!("definition file {extra}.xml of no persistent domain"),
        );
    }
    for missing in listed_names.difference(&files) {
        r.add(
            Broken::Lost,
            format!("persistent domain {missing} has no definition file"),
        );
    }
}

/// Whether `present` is what the model expected of `name`.
fn expect(r: &mut Report, what: &str, name: &str, known: Known, present: bool) {
    match (known, present) {
        (Known::Present, false) => r.add(Broken::Lost, format!("{what} {name} lost")),
        (Known::Absent, true) => r.add(
            Broken::State,
            format!("{what} {name} came back after it was removed"),
        ),
        _ => {}
    }
}

/// File stems with extension `ext` in `dir`.
pub(super) fn names_with_ext(dir: &std::path::Path, ext: &str) -> BTreeSet<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// No probe of a killed daemon is left (the restarted daemon's own probe
/// ends by itself).
async fn probes(w: &World, r: &mut Report) {
    let caps = format!("{}/", w.paths.caps_dir().display());
    let gone =
        crate::wait::until_async(SETTLE, || crate::processes::with_arg(&caps).is_empty()).await;
    if !gone {
        let pids = crate::processes::with_arg(&caps);
        r.add(
            Broken::Orphaned,
            format!("probe processes {pids:?} outlive their daemon"),
        );
    }
}

/// One QEMU per active domain, none for another.
fn compare_processes(w: &World, listed: &[Listed], r: &mut Report) {
    let mut qemus = qemus_by_uuid(w);
    for l in listed {
        let uuid = uuid_string(&l.dom.uuid);
        let pids = qemus.remove(&uuid).unwrap_or_default();
        match (l.active(), pids.len()) {
            (true, 1) | (false, 0) => {}
            (_, n) if n > 1 => r.add(
                Broken::Duplicated,
                format!("domain {} has {n} QEMUs {pids:?}", l.dom.name),
            ),
            (true, _) => r.add(
                Broken::State,
                format!(
                    "domain {} reported in state {} but no QEMU runs",
                    l.dom.name, l.state
                ),
            ),
            (false, _) => r.add(
                Broken::Orphaned,
                format!(
                    "domain {} reported shut off but QEMU {pids:?} runs",
                    l.dom.name
                ),
            ),
        }
    }
    for (uuid, pids) in qemus {
        r.add(
            Broken::Orphaned,
            format!("QEMU {pids:?} of uuid {uuid} runs for no domain"),
        );
    }
}

/// The QEMUs of the root by the uuid their pidfile or monitor names.
fn qemus_by_uuid(w: &World) -> BTreeMap<String, Vec<u32>> {
    let prefix = format!("{}/", w.paths.run_dir().display());
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for pid in crate::processes::with_arg(&prefix) {
        let Some(mut cmdline) = crate::procfs::cmdline(pid) else {
            continue;
        };
        // A QEMU run as another user names its pidfile in its environment.
        cmdline.extend(i32::try_from(pid).ok().and_then(qemu::process::env_pidfile));
        let uuid = cmdline.iter().find_map(|arg| {
            let rest = &arg[arg.find(&prefix)? + prefix.len()..];
            let file = rest.split(',').next()?;
            let stem = file
                .strip_suffix(".pid")
                .or_else(|| file.strip_suffix(".qmp"))?;
            (stem.len() == 36).then(|| stem.to_owned())
        });
        if let Some(u) = uuid {
            out.entry(u).or_default().push(pid);
        }
    }
    out
}

/// With qemu-sim, the run state the daemon reports is the simulator's.
fn compare_states(w: &World, listed: &[Listed], r: &mut Report) {
    if !w.emulator.is_sim() {
        return;
    }
    for l in listed.iter().filter(|l| l.active()) {
        let ctl = w.paths.control(&l.dom.name);
        let Ok(stats) = crate::control::send(&ctl, "stats", Duration::from_secs(5)) else {
            r.add(
                Broken::State,
                format!("domain {} runs but its QEMU does not answer", l.dom.name),
            );
            continue;
        };
        let sim_running = stats.contains(r#""state":"running""#);
        if sim_running != (l.state == RUNNING) {
            r.add(
                Broken::State,
                format!(
                    "domain {} reported in state {}, QEMU says {stats}",
                    l.dom.name, l.state
                ),
            );
        }
    }
}

/// No job survives a restart unless QEMU still runs it: a save is
/// finished or undone when the daemon opens.
async fn jobs(client: &Client, listed: &[Listed], r: &mut Report) -> Result<(), Error> {
    for l in listed.iter().filter(|l| l.active()) {
        let args = DomainArgs { dom: l.dom.clone() };
        let info: DomainGetJobInfoRet = match client.call(p::DOMAIN_GET_JOB_INFO, &args).await {
            Ok(info) => info,
            // Stopped (or gone) since the listing: no job.
            Err(rpc::ClientError::Remote(_)) => continue,
            Err(e) => return Err(Error::rpc(format!("job info of {}", l.dom.name))(e)),
        };
        if info.type_ != 0 {
            r.add(
                Broken::Job,
                format!(
                    "domain {} reports job type {} after the restart",
                    l.dom.name, info.type_
                ),
            );
        }
    }
    Ok(())
}

/// Pools and volumes: none lost, none listed twice, none resurrected.
async fn storage(client: &Client, m: &mut Model, r: &mut Report) -> Result<(), Error> {
    let args = ConnectListAllStoragePoolsArgs {
        need_results: 1,
        flags: 0,
    };
    let ret: ConnectListAllStoragePoolsRet = client
        .call(p::CONNECT_LIST_ALL_STORAGE_POOLS, &args)
        .await
        .map_err(Error::rpc("list pools"))?;
    let names: Vec<String> = ret.pools.iter().map(|p| p.name.clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    if unique.len() != names.len() {
        r.add(Broken::Duplicated, format!("pools listed twice: {names:?}"));
    }
    if !unique.contains(&POOL.to_owned()) {
        r.add(Broken::Lost, format!("pool {POOL} lost"));
        return Ok(());
    }
    for (name, known) in m.pools.iter_mut() {
        let present = unique.contains(name);
        expect(r, "pool", name, *known, present);
        *known = if present {
            Known::Present
        } else {
            Known::Absent
        };
    }
    volumes(client, m, r).await
}

/// Secrets: none lost, none listed twice, none resurrected, and every
/// acknowledged one holds its whole value.
async fn secrets(client: &Client, m: &mut Model, r: &mut Report) -> Result<(), Error> {
    let args = ConnectListAllSecretsArgs {
        need_results: 1,
        flags: 0,
    };
    let ret: ConnectListAllSecretsRet = client
        .call(p::CONNECT_LIST_ALL_SECRETS, &args)
        .await
        .map_err(Error::rpc("list secrets"))?;
    let names: Vec<String> = ret.secrets.iter().map(|s| s.usage_id.clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    if unique.len() != names.len() {
        r.add(
            Broken::Duplicated,
            format!("secrets listed twice: {names:?}"),
        );
    }
    for (name, known) in m.secrets.iter_mut() {
        let present = unique.contains(name);
        expect(r, "secret", name, *known, present);
        let whole = present && value(client, name).await == Some(ops::secret_value(name));
        if *known == Known::Present && present && !whole {
            r.add(Broken::Lost, format!("secret {name} lost its value"));
        }
        // A define cut off between its two calls leaves a secret without
        // its value: present, but not as acknowledged.
        *known = match (present, whole) {
            (false, _) => Known::Absent,
            (true, true) => Known::Present,
            (true, false) => Known::Unknown,
        };
    }
    Ok(())
}

async fn value(client: &Client, name: &str) -> Option<Vec<u8>> {
    let args = SecretFlagsArgs {
        secret: ops::wire_secret(name),
        flags: 0,
    };
    let ret: Result<SecretGetValueRet, _> = client.call(p::SECRET_GET_VALUE, &args).await;
    ret.ok().map(|v| v.value.0)
}

async fn volumes(client: &Client, m: &mut Model, r: &mut Report) -> Result<(), Error> {
    let pool = ops::pool(client, POOL)
        .await
        .map_err(Error::rpc("look up the pool"))?;
    let args = StoragePoolListAllVolumesArgs {
        pool,
        need_results: 1,
        flags: 0,
    };
    let ret: StoragePoolListAllVolumesRet = client
        .call(p::STORAGE_POOL_LIST_ALL_VOLUMES, &args)
        .await
        .map_err(Error::rpc("list volumes"))?;
    let names: Vec<String> = ret.vols.iter().map(|v| v.name.clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    if unique.len() != names.len() {
        r.add(
            Broken::Duplicated,
            format!("volumes listed twice: {names:?}"),
        );
    }
    for (name, known) in m.vols.iter_mut() {
        let present = unique.contains(name);
        expect(r, "volume", name, *known, present);
        *known = if present {
            Known::Present
        } else {
            Known::Absent
        };
    }
    Ok(())
}
