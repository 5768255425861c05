//! Volume operations: create, clone, delete, wipe, resize, lookups.
//!
//! A volume is built under a hidden partial name (`store::partial_path`)
//! and renamed into place only when whole, so a daemon killed mid-build
//! leaves nothing a client could mistake for a volume, and the next pool
//! start removes the partial file. While it is built the pool lists it,
//! with its allocation read live from the partial file.
//!
//! Every operation holds a shared `Volume` job on its pool (so volumes are
//! built in parallel but the pool cannot be stopped under them) and, for
//! the heavy part, a permit of the driver's build semaphore (so at most
//! `max_builds` qemu-img runs or fills are under way at once).

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use joblock::NormalJob;

use crate::driver::{StorageDriver, not_active};
use crate::pool::Pool;
use crate::probe::{self, Probed};
use crate::qemu_img::Progress;
use crate::store::partial_path;
use crate::volume::{Building, Volume};
use crate::xml::{Permissions, VolFormat, VolumeDef};
use crate::{Error, Result, refresh};

/// Default mode of a volume file, as libvirt's.
const DEFAULT_VOL_MODE: u32 = 0o600;
/// Chunk of a zero or random fill.
const FILL_CHUNK: usize = 1 << 20;

/// `vol-create` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateOptions {
    /// `VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA` (qcow2 only).
    pub prealloc_metadata: bool,
}

/// `virStorageVolWipeAlgorithm` values this driver can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeAlgorithm {
    Zero,
    Random,
}

/// `vol-resize` options (`virStorageVolResizeFlags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResizeOptions {
    pub allocate: bool,
    pub delta: bool,
    pub shrink: bool,
}

/// Where a domain disk of `type='volume'` finds its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVolume {
    pub path: PathBuf,
    pub format: VolFormat,
}

/// What to build into a partial file.
enum Recipe {
    Raw {
        capacity: u64,
        allocation: u64,
    },
    Qcow2 {
        def: VolumeDef,
        prealloc: Option<&'static str>,
    },
    Clone {
        src: PathBuf,
        src_format: VolFormat,
        def: VolumeDef,
        capacity: u64,
    },
}

impl StorageDriver {
    // ---- lookups: snapshots, no job ----

    pub fn lookup_volume(&self, pool: &Pool, name: &str) -> Result<Arc<Volume>> {
        if !pool.is_active() {
            return Err(not_active(pool.name()));
        }
        pool.volume(name)
            .ok_or_else(|| Error::NoVolume(format!("no storage vol with matching name '{name}'")))
    }

    /// A volume by key (its path).
    pub fn lookup_volume_by_key(&self, key: &str) -> Result<(Arc<Pool>, Arc<Volume>)> {
        self.find_by_path(key)
            .ok_or_else(|| Error::NoVolume(format!("no storage vol with matching key {key}")))
    }

    /// A volume by path.
    pub fn lookup_volume_by_path(&self, path: &str) -> Result<(Arc<Pool>, Arc<Volume>)> {
        self.find_by_path(path)
            .ok_or_else(|| Error::NoVolume(format!("no storage vol with matching path '{path}'")))
    }

    fn find_by_path(&self, path: &str) -> Option<(Arc<Pool>, Arc<Volume>)> {
        let p = crate::xml::pool::normalise_abs(path)?;
        let (dir, name) = (p.parent()?, p.file_name()?.to_str()?);
        self.all().into_iter().find_map(|pool| {
            let g = pool.lock();
            if !g.active || g.def.target != dir {
                return None;
            }
            let vol = g.volumes.get(name).cloned();
            drop(g);
            vol.map(|v| (pool, v))
        })
    }

    /// The image behind `<source pool='P' volume='V'/>` of a domain disk.
    pub fn resolve_volume(&self, pool: &str, volume: &str) -> Result<ResolvedVolume> {
        let p = self.lookup_by_name(pool)?;
        if !p.is_active() {
            return Err(Error::OperationInvalid(format!(
                "storage pool '{pool}' containing volume '{volume}' is not active"
            )));
        }
        let v = self.lookup_volume(&p, volume)?;
        if v.building.is_some() {
            return Err(still_building(volume));
        }
        Ok(ResolvedVolume {
            path: v.path.clone(),
            format: v.facts.format,
        })
    }

    // ---- create and clone ----

    /// `vol-create`: a new raw or qcow2 volume in `pool`.
    pub async fn create_volume(
        &self,
        pool: &Arc<Pool>,
        xml: &str,
        opts: CreateOptions,
    ) -> Result<Arc<Volume>> {
        let def = VolumeDef::parse(xml)?;
        let recipe = self.create_recipe(def.clone(), opts)?;
        let capacity = def.capacity.unwrap_or(0);
        self.build_volume(pool, &def, capacity, recipe, false).await
    }

    fn create_recipe(&self, mut def: VolumeDef, opts: CreateOptions) -> Result<Recipe> {
        match def.format {
            VolFormat::Raw => {
                if opts.prealloc_metadata {
                    return Err(Error::Unsupported(
                        "metadata preallocation only available with qcow2".into(),
                    ));
                }
                let capacity = def.capacity.unwrap_or(0);
                let allocation = def.allocation.unwrap_or(capacity).min(capacity);
                Ok(Recipe::Raw {
                    capacity,
                    allocation,
                })
            }
            VolFormat::Qcow2 => {
                if let Some(b) = &mut def.backing {
                    check_backing(b)?;
                }
                let prealloc = opts.prealloc_metadata.then(|| {
                    if def.allocation.unwrap_or(0) >= def.capacity.unwrap_or(u64::MAX) {
                        "falloc"
                    } else {
                        "metadata"
                    }
                });
                Ok(Recipe::Qcow2 { def, prealloc })
            }
            f => Err(Error::Unsupported(format!(
                "cannot create volumes of format '{}'",
                f.as_str()
            ))),
        }
    }

    /// `vol-create-from`: a copy of `src` (in `src_pool`) as a new volume
    /// of `pool`, in the format and at least the capacity `xml` asks for.
    pub async fn clone_volume(
        &self,
        pool: &Arc<Pool>,
        xml: &str,
        src_pool: &Arc<Pool>,
        src_name: &str,
        opts: CreateOptions,
    ) -> Result<Arc<Volume>> {
        let def = VolumeDef::parse_without_capacity(xml)?;
        if opts.prealloc_metadata && def.format != VolFormat::Qcow2 {
            return Err(Error::Unsupported(
                "metadata preallocation only available with qcow2".into(),
            ));
        }
        let src = self.lookup_volume(src_pool, src_name)?;
        if src.building.is_some() {
            return Err(still_building(src_name));
        }
        let capacity = def.capacity.unwrap_or(0).max(src.facts.capacity);
        let recipe = Recipe::Clone {
            src: src.path.clone(),
            src_format: src.facts.format,
            def: def.clone(),
            capacity,
        };
        // Read while it is copied: not deleted, wiped or uploaded into.
        let _src_busy = Usage::try_mark(src_pool, src_name, Use::Read)?;
        // The source's pool must stay up while it is read.
        let _src_job = if Arc::ptr_eq(pool, src_pool) {
            None
        } else {
            let what = format!("clone of volume '{src_name}'");
            Some(self.job(src_pool, NormalJob::Volume, what).await?)
        };
        self.build_volume(pool, &def, capacity, recipe, true).await
    }

    /// Reserves the name, builds the image under a partial name, renames
    /// it into place. `clone` picks libvirt's error for a taken name.
    async fn build_volume(
        &self,
        pool: &Arc<Pool>,
        def: &VolumeDef,
        capacity: u64,
        recipe: Recipe,
        clone: bool,
    ) -> Result<Arc<Volume>> {
        let what = format!("creation of volume '{}'", def.name);
        let _job = self.job(pool, NormalJob::Volume, what).await?;
        let (final_path, building) = reserve(pool, def, capacity, clone)?;
        let res = async {
            let _permit = self
                .s
                .builds
                .acquire()
                .await
                .map_err(|_| Error::Helper("storage driver is shutting down".into()))?;
            self.run_recipe(recipe, &building).await?;
            finish_file(&building.partial, &final_path, &def.perms, Place::New).await
        }
        .await;
        let mut g = pool.lock();
        match res {
            Ok(facts) => {
                let vol = Arc::new(Volume {
                    name: def.name.clone(),
                    path: final_path,
                    facts,
                    building: None,
                });
                g.volumes.insert(def.name.clone(), vol.clone());
                drop(g);
                self.update_sizes(pool);
                Ok(vol)
            }
            Err(e) => {
                g.volumes.remove(&def.name);
                drop(g);
                let _ = std::fs::remove_file(&building.partial);
                Err(e)
            }
        }
    }

    async fn run_recipe(&self, recipe: Recipe, b: &Building) -> Result<()> {
        let partial = b.partial.clone();
        match recipe {
            Recipe::Raw {
                capacity,
                allocation,
            } => blocking(move || create_raw(&partial, capacity, allocation)).await,
            Recipe::Qcow2 { def, prealloc } => {
                let args = qcow2_create_args(&def, prealloc, &partial);
                self.s.qemu_img.run(&args, Some(&partial), None).await
            }
            Recipe::Clone {
                src,
                src_format,
                def,
                capacity,
            } => {
                let args = convert_args(&src, src_format, &def, capacity, &partial);
                let progress = Some(&b.progress);
                self.s.qemu_img.run(&args, Some(&partial), progress).await?;
                let size = probe::probe(&partial)
                    .map_err(|e| Error::io("cannot read the copied image", e))?
                    .capacity;
                if size < capacity {
                    let args = resize_args(def.format, &partial, capacity, false);
                    self.s.qemu_img.run(&args, None, None).await?;
                }
                Ok(())
            }
        }
    }

    // ---- delete, wipe, resize ----

    /// `vol-delete`.
    pub async fn delete_volume(&self, pool: &Arc<Pool>, name: &str) -> Result<()> {
        let what = format!("deletion of volume '{name}'");
        let _job = self.job(pool, NormalJob::Volume, what).await?;
        let vol = self.idle_volume(pool, name)?;
        if let Some(dom) = self.running_user(&vol.path) {
            return Err(in_use_by(name, &dom));
        }
        let path = vol.path.clone();
        let dir = vol.facts.format == VolFormat::Dir;
        // No fsync of the directory: an unlink survives a killed daemon
        // without one, and a deleted volume that reappears after a power
        // loss is found by the next refresh like any file.
        blocking(move || {
            let r = if dir {
                std::fs::remove_dir(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match r {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
            .map_err(|e| Error::io(format!("cannot unlink file '{}'", path.display()), e))
        })
        .await?;
        pool.lock().volumes.remove(name);
        self.update_sizes(pool);
        Ok(())
    }

    /// `vol-wipe`: raw volumes are overwritten in place; a qcow2 volume is
    /// replaced by an empty image of the same size and backing file.
    pub async fn wipe_volume(
        &self,
        pool: &Arc<Pool>,
        name: &str,
        algorithm: WipeAlgorithm,
    ) -> Result<()> {
        let what = format!("wipe of volume '{name}'");
        let _job = self.job(pool, NormalJob::Volume, what).await?;
        let vol = self.idle_volume(pool, name)?;
        if let Some(dom) = self.running_user(&vol.path) {
            return Err(in_use_by(name, &dom));
        }
        let _busy = Usage::try_mark(pool, name, Use::Write)?;
        let _permit = self
            .s
            .builds
            .acquire()
            .await
            .map_err(|_| Error::Helper("storage driver is shutting down".into()))?;
        match vol.facts.format {
            VolFormat::Raw => {
                let (path, len) = (vol.path.clone(), vol.facts.physical);
                blocking(move || fill(&path, len, algorithm)).await?;
            }
            VolFormat::Qcow2 if algorithm == WipeAlgorithm::Zero => {
                self.recreate_qcow2(&vol).await?;
            }
            f => {
                return Err(Error::Unsupported(format!(
                    "wiping a {} volume with this algorithm",
                    f.as_str()
                )));
            }
        }
        self.reprobe(pool, name, &vol.path)
    }

    async fn recreate_qcow2(&self, vol: &Volume) -> Result<()> {
        let q = vol.facts.qcow2.as_ref();
        let def = VolumeDef {
            name: vol.name.clone(),
            capacity: Some(vol.facts.capacity),
            allocation: Some(0),
            format: VolFormat::Qcow2,
            perms: Permissions {
                mode: Some(vol.facts.mode),
                owner: Some(vol.facts.uid),
                group: Some(vol.facts.gid),
            },
            qcow2: crate::xml::volume::Qcow2Options {
                compat: q.map(|q| q.compat().to_owned()),
                lazy_refcounts: q.is_some_and(|q| q.lazy_refcounts),
                cluster_size: q.map(|q| q.cluster_size),
            },
            backing: q.and_then(|q| {
                q.backing.clone().map(|path| crate::xml::BackingStore {
                    path,
                    format: q.backing_format,
                })
            }),
        };
        let target = vol.path.parent().unwrap_or(Path::new("/"));
        let partial = partial_path(target, &vol.name);
        let mut def = def;
        if let Some(b) = &mut def.backing {
            check_backing(b)?;
        }
        let args = qcow2_create_args(&def, None, &partial);
        let res = async {
            self.s.qemu_img.run(&args, Some(&partial), None).await?;
            finish_file(&partial, &vol.path, &def.perms, Place::Replace).await
        }
        .await;
        if res.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        res.map(|_| ())
    }

    /// `vol-resize`, with libvirt's rules for growing and shrinking.
    pub async fn resize_volume(
        &self,
        pool: &Arc<Pool>,
        name: &str,
        capacity: u64,
        opts: ResizeOptions,
    ) -> Result<()> {
        let what = format!("resize of volume '{name}'");
        let _job = self.job(pool, NormalJob::Volume, what).await?;
        let vol = self.idle_volume(pool, name)?;
        let f = &vol.facts;
        let new = new_capacity(f.capacity, f.allocation, capacity, opts)?;
        if opts.allocate && f.format != VolFormat::Raw {
            return Err(Error::Unsupported(
                "preallocate is only supported for raw type volume".into(),
            ));
        }
        let delta = if opts.allocate {
            new.saturating_sub(f.allocation)
        } else {
            0
        };
        if delta > pool.info().available {
            return Err(Error::OperationFailed(
                "Not enough space left in storage pool".into(),
            ));
        }
        if let Some(dom) = (new < f.capacity)
            .then(|| self.running_user(&vol.path))
            .flatten()
        {
            return Err(in_use_by(name, &dom));
        }
        match f.format {
            VolFormat::Raw => {
                let (path, alloc) = (vol.path.clone(), opts.allocate);
                blocking(move || resize_raw(&path, new, alloc)).await?;
            }
            VolFormat::Qcow2 => {
                let args = resize_args(f.format, &vol.path, new, new < f.capacity);
                self.s.qemu_img.run(&args, None, None).await?;
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "resizing {} volumes",
                    other.as_str()
                )));
            }
        }
        self.reprobe(pool, name, &vol.path)
    }

    // ---- helpers ----

    /// The volume `name`, refusing one that is being built, read or
    /// written.
    pub(crate) fn idle_volume(&self, pool: &Pool, name: &str) -> Result<Arc<Volume>> {
        let vol = self.lookup_volume(pool, name)?;
        if vol.building.is_some() {
            return Err(still_building(name));
        }
        if pool.lock().busy.get(name).is_some_and(InUse::any) {
            return Err(still_in_use(name));
        }
        Ok(vol)
    }

    pub(crate) fn running_user(&self, path: &Path) -> Option<String> {
        let users = self.s.users.read().unwrap_or_else(|e| e.into_inner());
        users.as_ref().and_then(|u| u.running_user(path))
    }

    /// Re-reads a volume's file after it changed.
    pub(crate) fn reprobe(&self, pool: &Pool, name: &str, path: &Path) -> Result<()> {
        let facts = probe::probe(path)
            .map_err(|e| Error::io(format!("cannot read '{}'", path.display()), e))?;
        let mut g = pool.lock();
        if let Some(v) = g.volumes.get(name) {
            let updated = Volume {
                facts,
                ..(**v).clone()
            };
            g.volumes.insert(name.to_owned(), Arc::new(updated));
        }
        drop(g);
        self.update_sizes(pool);
        Ok(())
    }

    fn update_sizes(&self, pool: &Pool) {
        let target = pool.def().target.clone();
        if let Ok(sizes) = refresh::fs_sizes(&target) {
            pool.lock().sizes = sizes;
        }
    }
}

/// How running operations use a volume (the pool's `busy` map).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InUse {
    readers: usize,
    writers: usize,
}

impl InUse {
    fn any(&self) -> bool {
        self.readers + self.writers > 0
    }
}

/// What an operation does to a volume it marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Reads it (a clone's source, a download): others may read too.
    Read,
    /// Writes it (a wipe, an upload): nobody else may use it.
    Write,
}

/// Marks a volume as used by a running operation until dropped: it cannot
/// be deleted, wiped or resized meanwhile, and a written one cannot be
/// read either.
pub(crate) struct Usage {
    pool: Arc<Pool>,
    name: String,
    kind: Use,
}

impl Usage {
    /// Marks `name` if `kind` goes with its current users: a reader beside
    /// other readers, a writer alone.
    pub(crate) fn try_mark(pool: &Arc<Pool>, name: &str, kind: Use) -> Result<Self> {
        let mut g = pool.lock();
        let u = g.busy.entry(name.to_owned()).or_default();
        let ok = match kind {
            Use::Read => u.writers == 0,
            Use::Write => !u.any(),
        };
        if !ok {
            if !u.any() {
                g.busy.remove(name);
            }
            return Err(still_in_use(name));
        }
        match kind {
            Use::Read => u.readers += 1,
            Use::Write => u.writers += 1,
        }
        Ok(Self {
            pool: pool.clone(),
            name: name.to_owned(),
            kind,
        })
    }
}

impl Drop for Usage {
    fn drop(&mut self) {
        let mut g = self.pool.lock();
        if let Some(u) = g.busy.get_mut(&self.name) {
            match self.kind {
                Use::Read => u.readers = u.readers.saturating_sub(1),
                Use::Write => u.writers = u.writers.saturating_sub(1),
            }
            if !u.any() {
                g.busy.remove(&self.name);
            }
        }
    }
}

/// Puts a placeholder for the new volume into the pool; returns its final
/// path and where it is built.
fn reserve(
    pool: &Pool,
    def: &VolumeDef,
    capacity: u64,
    clone: bool,
) -> Result<(PathBuf, Building)> {
    let mut g = pool.lock();
    if !g.active {
        return Err(not_active(pool.name()));
    }
    let final_path = g.def.target.join(&def.name);
    if g.volumes.contains_key(&def.name) || final_path.symlink_metadata().is_ok() {
        return Err(if clone {
            Error::Helper(format!(
                "storage volume name '{}' already in use.",
                def.name
            ))
        } else {
            Error::VolumeExists(def.name.clone())
        });
    }
    let building = Building {
        partial: partial_path(&g.def.target, &def.name),
        progress: Progress::default(),
    };
    let vol = Volume {
        name: def.name.clone(),
        path: final_path.clone(),
        facts: Probed::placeholder(def.format, capacity),
        building: Some(building.clone()),
    };
    g.volumes.insert(def.name.clone(), Arc::new(vol));
    Ok((final_path, building))
}

/// How a finished image takes its final name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A new volume: fail if the name was taken meanwhile.
    New,
    /// A rebuilt volume: atomically replace the old file.
    Replace,
}

/// Makes the partial file's data durable, gives it its mode and owner,
/// moves it into place and reads what it became. The directory itself is
/// not synced (as libvirt does not): a rename or link survives a killed
/// daemon without it, and after a power loss the next pool start finds
/// either the whole volume or a partial file it sweeps.
async fn finish_file(
    partial: &Path,
    final_path: &Path,
    perms: &Permissions,
    place: Place,
) -> Result<Probed> {
    let (partial, final_path, perms) = (partial.to_owned(), final_path.to_owned(), *perms);
    blocking(move || {
        let err = |e| {
            Error::io(
                format!("cannot finish volume '{}'", final_path.display()),
                e,
            )
        };
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(err)?;
        let mode = perms.mode.unwrap_or(DEFAULT_VOL_MODE);
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        if perms.owner.is_some() || perms.group.is_some() {
            std::os::unix::fs::chown(&partial, perms.owner, perms.group).map_err(err)?;
        }
        if place == Place::Replace {
            std::fs::rename(&partial, &final_path).map_err(err)?;
            return probe::probe(&final_path).map_err(err);
        }
        // `rename` would replace a file created meanwhile under the final
        // name; a hard link fails instead, and then the partial goes.
        std::fs::hard_link(&partial, &final_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::VolumeExists(
                    final_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else {
                err(e)
            }
        })?;
        std::fs::remove_file(&partial).map_err(err)?;
        probe::probe(&final_path).map_err(err)
    })
    .await
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Helper(format!("storage task failed: {e}")))?
}

fn create_raw(path: &Path, capacity: u64, allocation: u64) -> Result<()> {
    let err = |e| Error::io(format!("cannot create volume '{}'", path.display()), e);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DEFAULT_VOL_MODE)
        .open(path)
        .map_err(err)?;
    f.set_len(capacity).map_err(err)?;
    if allocation > 0 {
        let len = i64::try_from(allocation)
            .map_err(|_| Error::InvalidArg("allocation too large".into()))?;
        nix::fcntl::fallocate(f.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), 0, len)
            .map_err(|e| err(std::io::Error::from(e)))?;
    }
    Ok(())
}

fn resize_raw(path: &Path, capacity: u64, allocate: bool) -> Result<()> {
    let err = |e| Error::io(format!("cannot resize volume '{}'", path.display()), e);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(err)?;
    f.set_len(capacity).map_err(err)?;
    if allocate {
        let len =
            i64::try_from(capacity).map_err(|_| Error::InvalidArg("capacity too large".into()))?;
        nix::fcntl::fallocate(f.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), 0, len)
            .map_err(|e| err(std::io::Error::from(e)))?;
    }
    f.sync_all().map_err(err)
}

/// Overwrites `len` bytes of `path` with zeros or random bytes.
fn fill(path: &Path, len: u64, algorithm: WipeAlgorithm) -> Result<()> {
    use std::io::{Read, Seek, Write};
    let err = |e| Error::io(format!("cannot wipe volume '{}'", path.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(err)?;
    f.seek(std::io::SeekFrom::Start(0)).map_err(err)?;
    let mut buf = vec![0u8; FILL_CHUNK];
    let mut random = match algorithm {
        WipeAlgorithm::Random => Some(std::fs::File::open("/dev/urandom").map_err(err)?),
        WipeAlgorithm::Zero => None,
    };
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(FILL_CHUNK as u64)).unwrap_or(FILL_CHUNK);
        if let Some(r) = random.as_mut() {
            r.read_exact(&mut buf[..n]).map_err(err)?;
        }
        f.write_all(&buf[..n]).map_err(err)?;
        left -= n as u64;
    }
    f.sync_all().map_err(err)
}

/// libvirt's arithmetic for a new capacity.
fn new_capacity(cur: u64, allocation: u64, arg: u64, o: ResizeOptions) -> Result<u64> {
    let new = if o.delta {
        if o.shrink {
            cur - arg.min(cur)
        } else {
            cur.checked_add(arg)
                .ok_or_else(|| Error::InvalidArg("new capacity overflows".into()))?
        }
    } else {
        arg
    };
    if new < allocation {
        return Err(Error::InvalidArg(
            "can't shrink capacity below existing allocation".into(),
        ));
    }
    if new < cur && !o.shrink {
        return Err(Error::InvalidArg(
            "Can't shrink capacity below current capacity unless shrink flag explicitly specified"
                .into(),
        ));
    }
    Ok(new)
}

/// The backing file must exist; its format is probed when not given.
fn check_backing(b: &mut crate::xml::BackingStore) -> Result<()> {
    let facts = probe::probe(&b.path).map_err(|e| {
        Error::io(
            format!("cannot access backing file '{}'", b.path.display()),
            e,
        )
    })?;
    if b.format.is_none() {
        b.format = Some(facts.format);
    }
    Ok(())
}

fn qcow2_options(def: &VolumeDef, prealloc: Option<&str>) -> String {
    let mut o = vec![format!(
        "compat={}",
        def.qcow2.compat.as_deref().unwrap_or("1.1")
    )];
    if def.qcow2.lazy_refcounts {
        o.push("lazy_refcounts=on".into());
    }
    if let Some(cs) = def.qcow2.cluster_size {
        o.push(format!("cluster_size={cs}"));
    }
    if let Some(p) = prealloc {
        o.push(format!("preallocation={p}"));
    }
    o.join(",")
}

fn qcow2_create_args(def: &VolumeDef, prealloc: Option<&str>, out: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["create".into(), "-q".into(), "-f".into(), "qcow2".into()];
    a.extend(["-o".into(), qcow2_options(def, prealloc).into()]);
    if let Some(b) = &def.backing {
        a.extend(["-b".into(), b.path.clone().into_os_string()]);
        let fmt = b.format.unwrap_or(VolFormat::Raw).as_str();
        a.extend(["-F".into(), fmt.into()]);
    }
    a.push(out.as_os_str().to_owned());
    if let Some(c) = def.capacity {
        a.push(c.to_string().into());
    }
    a
}

fn convert_args(
    src: &Path,
    src_format: VolFormat,
    def: &VolumeDef,
    capacity: u64,
    out: &Path,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["convert".into(), "-p".into()];
    a.extend(["-f".into(), src_format.as_str().into()]);
    a.extend(["-O".into(), def.format.as_str().into()]);
    let allocation = def.allocation.unwrap_or(capacity);
    match def.format {
        VolFormat::Qcow2 => a.extend(["-o".into(), qcow2_options(def, None).into()]),
        _ if allocation >= capacity => {
            a.extend(["-o".into(), "preallocation=falloc".into()]);
        }
        _ => {}
    }
    a.push(src.as_os_str().to_owned());
    a.push(out.as_os_str().to_owned());
    a
}

fn resize_args(format: VolFormat, path: &Path, capacity: u64, shrink: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["resize".into(), "-q".into()];
    if shrink {
        a.push("--shrink".into());
    }
    a.extend(["-f".into(), format.as_str().into()]);
    a.push(path.as_os_str().to_owned());
    a.push(capacity.to_string().into());
    a
}

pub(crate) fn still_building(name: &str) -> Error {
    Error::OperationInvalid(format!("volume '{name}' is still being allocated."))
}

fn still_in_use(name: &str) -> Error {
    Error::OperationInvalid(format!("volume '{name}' is still in use."))
}

pub(crate) fn in_use_by(name: &str, dom: &str) -> Error {
    Error::OperationInvalid(format!(
        "volume '{name}' is in use by running domain '{dom}'"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_rules_are_libvirts() {
        let o = ResizeOptions::default();
        assert_eq!(new_capacity(100, 10, 200, o).unwrap(), 200);
        assert!(new_capacity(100, 10, 50, o).is_err());
        let shrink = ResizeOptions { shrink: true, ..o };
        assert_eq!(new_capacity(100, 10, 50, shrink).unwrap(), 50);
        assert!(new_capacity(100, 60, 50, shrink).is_err());
        let delta = ResizeOptions { delta: true, ..o };
        assert_eq!(new_capacity(100, 0, 28, delta).unwrap(), 128);
        assert!(new_capacity(u64::MAX, 0, 1, delta).is_err());
        let both = ResizeOptions {
            delta: true,
            shrink: true,
            ..o
        };
        assert_eq!(new_capacity(100, 0, 30, both).unwrap(), 70);
        assert_eq!(new_capacity(100, 0, 300, both).unwrap(), 0);
    }
}
