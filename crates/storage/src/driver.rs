//! The storage driver handle: pools, their lifecycle, lookups and events.
//! Volume operations are in `volops.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use joblock::NormalJob;
use tokio::sync::Semaphore;

use crate::events::{Listeners, PoolEventKind, PoolLifecycle, PoolListener};
use crate::pool::{Pool, PoolSummary};
use crate::qemu_img::QemuImg;
use crate::store::{self, Layout};
use crate::xml::PoolDef;
use crate::{Error, Result, refresh};

/// How the storage driver runs.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The daemon's state root (see `store.rs` for what lives where).
    pub root: PathBuf,
    /// How long an operation waits for its pool's job lock.
    pub job_wait: Duration,
    /// The qemu-img binary.
    pub qemu_img: PathBuf,
    /// A qemu-img run that shows no progress for this long is killed.
    pub stall_timeout: Duration,
    /// Most volume builds (qemu-img runs, zero fills) at once, over all
    /// pools; later ones wait their turn in order.
    pub max_builds: usize,
    /// Define and autostart the `default` pool on the first start.
    pub default_pool: bool,
    /// Start autostart pools when the driver opens.
    pub autostart: bool,
}

impl StorageConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            job_wait: Duration::from_secs(30),
            qemu_img: PathBuf::from("/usr/bin/qemu-img"),
            stall_timeout: Duration::from_secs(60),
            max_builds: 4,
            default_pool: true,
            autostart: true,
        }
    }
}

/// Who uses a volume: the domain driver answers, so a volume a running
/// domain uses is never deleted or shrunk under it.
pub trait VolumeUsers: Send + Sync {
    /// The name of a running domain that uses `path` (as a disk or a
    /// backing file), if any.
    fn running_user(&self, path: &Path) -> Option<String>;
}

/// Which pools [`StorageDriver::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolFilter {
    All,
    Active,
    Inactive,
}

/// How `pool-build` / `pool-start --build` treat an existing directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildMode {
    /// Create the directory if missing; fix its permissions if present.
    #[default]
    Normal,
    /// Refuse to touch an existing directory.
    NoOverwrite,
    /// Same as `Normal` for a directory pool (nothing to format).
    Overwrite,
}

#[derive(Default)]
struct Registry {
    by_name: HashMap<String, Arc<Pool>>,
    by_uuid: HashMap<uuid::Uuid, Arc<Pool>>,
}

pub(crate) struct Shared {
    pub cfg: StorageConfig,
    pub layout: Layout,
    /// Every pool. Read-locked for lookups and lists (a hash probe or a
    /// clone of a few pointers), write-locked to add or remove one; never
    /// held across an await.
    registry: RwLock<Registry>,
    /// Serialises define/create/undefine so name, uuid and target stay
    /// unique together. Lookups never take it.
    define_lock: tokio::sync::Mutex<()>,
    pub listeners: Listeners,
    /// Set once by the daemon after the domain driver opens.
    pub users: RwLock<Option<Arc<dyn VolumeUsers>>>,
    pub qemu_img: QemuImg,
    /// Bounds concurrent volume builds; tokio's semaphore is FIFO.
    pub builds: Semaphore,
}

/// The storage driver. Clone freely.
#[derive(Clone)]
pub struct StorageDriver {
    pub(crate) s: Arc<Shared>,
}

impl StorageDriver {
    /// Opens the driver: loads definitions, re-adopts active pools,
    /// defines the default pool on the first start, then autostarts.
    pub async fn open(cfg: StorageConfig) -> Result<Self> {
        let layout = Layout::new(&cfg.root);
        let first = layout
            .create_all()
            .map_err(|e| Error::io(format!("cannot create {}", layout.config_dir.display()), e))?;
        let s = Arc::new(Shared {
            qemu_img: QemuImg {
                binary: cfg.qemu_img.clone(),
                stall: cfg.stall_timeout,
            },
            builds: Semaphore::new(cfg.max_builds.max(1)),
            layout,
            registry: RwLock::default(),
            define_lock: tokio::sync::Mutex::new(()),
            listeners: Listeners::default(),
            users: RwLock::new(None),
            cfg,
        });
        let drv = Self { s };
        drv.load_definitions();
        drv.readopt_active().await;
        if first && drv.s.cfg.default_pool {
            drv.define_default().await;
        }
        if drv.s.cfg.autostart {
            drv.autostart_all().await;
        }
        Ok(drv)
    }

    /// Registers the domain driver's answer to "who uses this volume".
    pub fn set_volume_users(&self, users: Arc<dyn VolumeUsers>) {
        *self.s.users.write().unwrap_or_else(|e| e.into_inner()) = Some(users);
    }

    /// Calls `f` for every pool event; see [`PoolListener`] for its rules.
    pub fn add_event_listener(&self, f: PoolListener) {
        self.s.listeners.add(f);
    }

    fn reg(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.s.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn reg_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.s.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, pool: &Arc<Pool>) {
        let mut r = self.reg_mut();
        r.by_name.insert(pool.name().to_owned(), pool.clone());
        r.by_uuid.insert(pool.uuid(), pool.clone());
    }

    fn remove(&self, pool: &Pool) {
        let mut r = self.reg_mut();
        r.by_name.remove(pool.name());
        r.by_uuid.remove(&pool.uuid());
        pool.jobs.close("storage pool removed");
    }

    // ---- lookups and lists: snapshots, no job ----

    pub fn lookup_by_name(&self, name: &str) -> Result<Arc<Pool>> {
        self.reg()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoPool(format!("no storage pool with matching name '{name}'")))
    }

    pub fn lookup_by_uuid(&self, uuid: &uuid::Uuid) -> Result<Arc<Pool>> {
        self.reg()
            .by_uuid
            .get(uuid)
            .cloned()
            .ok_or_else(|| Error::NoPool(format!("no storage pool with matching uuid '{uuid}'")))
    }

    /// The active pool whose directory is `path`.
    pub fn lookup_by_target_path(&self, path: &str) -> Result<Arc<Pool>> {
        let want = crate::xml::pool::normalise_abs(path);
        self.all()
            .into_iter()
            .find(|p| p.is_active() && Some(&p.def().target) == want.as_ref())
            .ok_or_else(|| {
                Error::NoPool(format!(
                    "no storage pool with matching target path '{path}'"
                ))
            })
    }

    /// Every pool, sorted by name.
    pub fn all(&self) -> Vec<Arc<Pool>> {
        let mut v: Vec<_> = self.reg().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    pub fn list(&self, filter: PoolFilter) -> Vec<PoolSummary> {
        self.all()
            .iter()
            .map(|p| p.summary())
            .filter(|s| match filter {
                PoolFilter::All => true,
                PoolFilter::Active => s.active,
                PoolFilter::Inactive => !s.active,
            })
            .collect()
    }

    // ---- definitions ----

    /// Defines (or updates) a persistent pool.
    pub async fn define(&self, xml: &str) -> Result<Arc<Pool>> {
        let def = Arc::new(PoolDef::parse(xml)?);
        let _d = self.s.define_lock.lock().await;
        let existing = self.find_same(&def)?;
        let path = self.s.layout.definition(&def.name);
        durable::atomic_write(&path, def.to_xml((0, 0, 0), default_perms(&def)).as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        let pool = match existing {
            Some(pool) => {
                let mut g = pool.lock();
                if g.active {
                    // The running pool keeps its directory; the new
                    // definition applies from the next start.
                    g.pending_def = Some(def);
                } else {
                    g.def = def;
                }
                g.persistent = true;
                g.lifecycle(&self.s.listeners, PoolLifecycle::Defined);
                drop(g);
                pool
            }
            None => {
                let pool = Pool::new(def, true);
                self.insert(&pool);
                pool.lock()
                    .lifecycle(&self.s.listeners, PoolLifecycle::Defined);
                pool
            }
        };
        Ok(pool)
    }

    /// The pool `def` redefines, or an error if it clashes with another
    /// (same name with another uuid, same uuid with another name, or the
    /// same directory).
    fn find_same(&self, def: &PoolDef) -> Result<Option<Arc<Pool>>> {
        let r = self.reg();
        let by_name = r.by_name.get(&def.name).cloned();
        let by_uuid = r.by_uuid.get(&def.uuid).cloned();
        drop(r);
        let same = match (by_name, by_uuid) {
            (Some(a), Some(b)) if Arc::ptr_eq(&a, &b) => Some(a),
            (Some(a), _) => {
                return Err(Error::PoolExists(format!(
                    "pool '{}' is already defined with uuid {}",
                    a.name(),
                    a.uuid()
                )));
            }
            (None, Some(b)) => {
                return Err(Error::PoolExists(format!(
                    "pool '{}' already exists with uuid {}",
                    b.name(),
                    b.uuid()
                )));
            }
            (None, None) => None,
        };
        for other in self.all() {
            let clash = same.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &other));
            if clash && other.def().target == def.target {
                return Err(Error::PoolExists(format!(
                    "Storage source conflict with pool: '{}'",
                    other.name()
                )));
            }
        }
        Ok(same)
    }

    /// Removes an inactive pool's definition.
    pub async fn undefine(&self, pool: &Arc<Pool>) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-undefine").await?;
        let _d = self.s.define_lock.lock().await;
        let mut g = pool.lock();
        if g.active {
            return Err(inactive_needed(pool.name()));
        }
        if !g.persistent {
            return Err(Error::OperationInvalid(format!(
                "storage pool '{}' is transient",
                pool.name()
            )));
        }
        let def_path = self.s.layout.definition(pool.name());
        durable::remove(&def_path)
            .map_err(|e| Error::io(format!("cannot remove {}", def_path.display()), e))?;
        let _ = durable::remove(&self.s.layout.autostart(pool.name()));
        g.persistent = false;
        g.autostart = false;
        g.removed = true;
        g.lifecycle(&self.s.listeners, PoolLifecycle::Undefined);
        drop(g);
        self.remove(pool);
        Ok(())
    }

    // ---- lifecycle ----

    /// Creates and starts a transient pool.
    pub async fn create(&self, xml: &str, build: Option<BuildMode>) -> Result<Arc<Pool>> {
        let def = Arc::new(PoolDef::parse(xml)?);
        let pool = {
            let _d = self.s.define_lock.lock().await;
            if self.find_same(&def)?.is_some() {
                return Err(Error::PoolExists(format!(
                    "storage pool '{}' already exists",
                    def.name
                )));
            }
            let pool = Pool::new(def, false);
            self.insert(&pool);
            pool
        };
        match self.start(&pool, build).await {
            Ok(()) => Ok(pool),
            Err(e) => {
                pool.lock().removed = true;
                self.remove(&pool);
                Err(e)
            }
        }
    }

    /// Builds (`Some`) if asked, then starts an inactive pool.
    pub async fn start(&self, pool: &Arc<Pool>, build: Option<BuildMode>) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-start").await?;
        let def = {
            let g = pool.lock();
            if g.active {
                return Err(Error::OperationInvalid(format!(
                    "storage pool '{}' is already active",
                    pool.name()
                )));
            }
            g.def.clone()
        };
        if let Some(mode) = build {
            build_dir(&def, mode)?;
        }
        let target = def.target.clone();
        let scan = tokio::task::spawn_blocking(move || {
            store::sweep_partials(&target);
            refresh::scan(&target)
        })
        .await
        .map_err(|e| Error::Helper(format!("pool scan failed: {e}")))??;
        let state = self.s.layout.state(pool.name());
        durable::atomic_write(&state, def.to_xml((0, 0, 0), scan.dir_perms).as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", state.display()), e))?;
        let mut g = pool.lock();
        g.sizes = scan.sizes;
        g.dir_perms = scan.dir_perms;
        g.volumes = scan.volumes;
        g.active = true;
        g.lifecycle(&self.s.listeners, PoolLifecycle::Started);
        Ok(())
    }

    /// Stops an active pool (its files stay).
    pub async fn destroy(&self, pool: &Arc<Pool>) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-destroy").await?;
        if !pool.is_active() {
            return Err(not_active(pool.name()));
        }
        let state = self.s.layout.state(pool.name());
        durable::remove(&state)
            .map_err(|e| Error::io(format!("cannot remove {}", state.display()), e))?;
        let mut g = pool.lock();
        g.active = false;
        g.volumes.clear();
        if let Some(next) = g.pending_def.take() {
            g.def = next;
        }
        g.lifecycle(&self.s.listeners, PoolLifecycle::Stopped);
        let transient = !g.persistent;
        if transient {
            g.removed = true;
        }
        drop(g);
        if transient {
            self.remove(pool);
        }
        Ok(())
    }

    /// `pool-build`: creates the directory of an inactive pool.
    pub async fn build(&self, pool: &Arc<Pool>, mode: BuildMode) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-build").await?;
        let g = pool.lock();
        if g.active {
            return Err(Error::OperationInvalid(format!(
                "storage pool '{}' is already active",
                pool.name()
            )));
        }
        build_dir(&g.def, mode)?;
        g.lifecycle(&self.s.listeners, PoolLifecycle::Created);
        Ok(())
    }

    /// `pool-delete`: removes the (empty) directory of an inactive pool.
    pub async fn delete(&self, pool: &Arc<Pool>) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-delete").await?;
        let g = pool.lock();
        if g.active {
            return Err(inactive_needed(pool.name()));
        }
        let target = &g.def.target;
        match std::fs::remove_dir(target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    format!("failed to remove pool '{}'", target.display()),
                    e,
                ));
            }
        }
        g.lifecycle(&self.s.listeners, PoolLifecycle::Deleted);
        Ok(())
    }

    /// `pool-refresh`: re-reads the directory.
    pub async fn refresh(&self, pool: &Arc<Pool>) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-refresh").await?;
        let target = {
            let g = pool.lock();
            if !g.active {
                return Err(not_active(pool.name()));
            }
            g.def.target.clone()
        };
        let scan = tokio::task::spawn_blocking(move || refresh::scan(&target))
            .await
            .map_err(|e| Error::Helper(format!("pool scan failed: {e}")))??;
        let mut g = pool.lock();
        g.sizes = scan.sizes;
        g.dir_perms = scan.dir_perms;
        g.volumes = scan.volumes;
        g.emit(&self.s.listeners, PoolEventKind::Refresh);
        Ok(())
    }

    pub async fn set_autostart(&self, pool: &Arc<Pool>, on: bool) -> Result<()> {
        let _job = self.job(pool, NormalJob::Modify, "pool-autostart").await?;
        if !pool.is_persistent() {
            return Err(Error::InvalidArg("pool has no config file".into()));
        }
        let marker = self.s.layout.autostart(pool.name());
        let res = if on {
            durable::atomic_write(&marker, b"")
        } else {
            durable::remove(&marker)
        };
        res.map_err(|e| Error::io(format!("cannot update {}", marker.display()), e))?;
        pool.lock().autostart = on;
        Ok(())
    }

    /// Takes a job on `pool`; `what` names it in the errors of others
    /// that wait for it.
    pub(crate) async fn job(
        &self,
        pool: &Pool,
        job: NormalJob,
        what: impl Into<String>,
    ) -> Result<joblock::JobGuard> {
        Ok(pool.jobs.acquire(job, what, self.s.cfg.job_wait).await?)
    }

    // ---- opening ----

    fn load_definitions(&self) {
        let files = durable::list_with_ext(&self.s.layout.config_dir, "xml").unwrap_or_default();
        for path in files {
            let def = durable::read_bounded(&path)
                .map_err(|e| e.to_string())
                .and_then(|x| PoolDef::parse(&x).map_err(|e| e.to_string()));
            match def {
                Ok(def) if self.find_same(&def).is_ok_and(|s| s.is_none()) => {
                    let pool = Pool::new(Arc::new(def), true);
                    pool.lock().autostart = self.s.layout.autostart(pool.name()).exists();
                    self.insert(&pool);
                }
                Ok(_) => {
                    tracing::error!(file = %path.display(), "skipping duplicate pool definition")
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "skipping bad pool definition")
                }
            }
        }
    }

    /// Pools that were active when the daemon stopped are active again.
    async fn readopt_active(&self) {
        let files = durable::list_with_ext(&self.s.layout.state_dir, "xml").unwrap_or_default();
        for path in files {
            let def = durable::read_bounded(&path)
                .ok()
                .and_then(|x| PoolDef::parse(&x).ok());
            let Some(def) = def else {
                tracing::error!(file = %path.display(), "removing bad pool state file");
                let _ = durable::remove(&path);
                continue;
            };
            let pool = match self.lookup_by_name(&def.name) {
                Ok(p) if p.uuid() == def.uuid => p,
                Ok(_) | Err(_) if self.find_same(&def).is_ok_and(|s| s.is_none()) => {
                    let p = Pool::new(Arc::new(def.clone()), false);
                    self.insert(&p);
                    p
                }
                _ => {
                    tracing::error!(file = %path.display(), "pool state conflicts with a definition; dropping it");
                    let _ = durable::remove(&path);
                    continue;
                }
            };
            // The running pool's definition is the one it was started with.
            pool.lock().def = Arc::new(def);
            if let Err(e) = self.reactivate(&pool).await {
                tracing::warn!(pool = pool.name(), error = %e, "cannot re-adopt active pool; it is inactive now");
                let _ = durable::remove(&path);
                if !pool.is_persistent() {
                    self.remove(&pool);
                }
            }
        }
    }

    async fn reactivate(&self, pool: &Arc<Pool>) -> Result<()> {
        let target = pool.def().target.clone();
        let scan = tokio::task::spawn_blocking(move || {
            store::sweep_partials(&target);
            refresh::scan(&target)
        })
        .await
        .map_err(|e| Error::Helper(format!("pool scan failed: {e}")))??;
        let mut g = pool.lock();
        g.sizes = scan.sizes;
        g.dir_perms = scan.dir_perms;
        g.volumes = scan.volumes;
        g.active = true;
        Ok(())
    }

    /// libvirt ships a `default` directory pool; so does the daemon, under
    /// its own root, so that `virt-install --disk size=N` works at once.
    async fn define_default(&self) {
        if self.lookup_by_name("default").is_ok() {
            return;
        }
        let xml = format!(
            "<pool type='dir'><name>default</name><target><path>{}</path></target></pool>",
            virxml::escape(&self.s.layout.default_target.to_string_lossy())
        );
        let res = async {
            let pool = self.define(&xml).await?;
            self.build(&pool, BuildMode::Normal).await?;
            self.set_autostart(&pool, true).await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot define the default storage pool");
        }
    }

    async fn autostart_all(&self) {
        for pool in self.all() {
            let (want, active) = {
                let g = pool.lock();
                (g.autostart, g.active)
            };
            if !want || active {
                continue;
            }
            if let Err(e) = self.start(&pool, None).await {
                tracing::warn!(pool = pool.name(), error = %e, "cannot autostart storage pool");
            }
        }
    }
}

fn default_perms(def: &PoolDef) -> (u32, u32, u32) {
    (
        def.perms.mode.unwrap_or(crate::xml::pool::DEFAULT_DIR_MODE),
        def.perms
            .owner
            .unwrap_or_else(|| nix::unistd::getuid().as_raw()),
        def.perms
            .group
            .unwrap_or_else(|| nix::unistd::getgid().as_raw()),
    )
}

/// Creates the pool's directory (and parents) with the defined mode and
/// ownership, or fixes them on an existing one.
fn build_dir(def: &PoolDef, mode: BuildMode) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = &def.target;
    let exists = target.exists();
    if exists && mode == BuildMode::NoOverwrite {
        return Err(Error::OperationInvalid(format!(
            "storage pool directory '{}' already exists",
            target.display()
        )));
    }
    if exists && !target.is_dir() {
        return Err(Error::io(
            format!(
                "cannot create storage pool directory '{}'",
                target.display()
            ),
            std::io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    let err = |e| {
        Error::io(
            format!(
                "cannot create storage pool directory '{}'",
                target.display()
            ),
            e,
        )
    };
    std::fs::create_dir_all(target).map_err(err)?;
    let (m, uid, gid) = default_perms(def);
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(m)).map_err(err)?;
    if def.perms.owner.is_some() || def.perms.group.is_some() {
        std::os::unix::fs::chown(target, Some(uid), Some(gid)).map_err(err)?;
    }
    Ok(())
}

pub(crate) fn not_active(name: &str) -> Error {
    Error::OperationInvalid(format!("storage pool '{name}' is not active"))
}

fn inactive_needed(name: &str) -> Error {
    Error::OperationInvalid(format!("storage pool '{name}' is still active"))
}
