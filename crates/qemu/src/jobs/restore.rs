//! `virsh restore` and the managed-save image behind `virsh managedsave`
//! and `virsh start`.
//!
//! The image is validated before anything is created or started (see
//! [`header::open`]); the domain is then started with `-incoming defer`
//! and its state loaded with `migrate-incoming` from the stream after the
//! header, read by QEMU through the very descriptor that was validated.
//! The load is woken by MIGRATION events on the run's progress watch
//! (polled as a fallback). If anything fails, QEMU is killed and a domain
//! created for the restore is forgotten, so a bad image leaves nothing
//! behind.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use joblock::{AllowList, AsyncKind};
use qmp::MigrationStatus;
use qmp::commands::{MigrateIncoming, MigrateSetCapabilities};

use super::AfterRestore;
use super::image::{header, xml};
use crate::lifecycle::start::{self, Incoming, IncomingFrom};
use crate::object::Domain;
use crate::object::run::RunCtx;
use crate::shared::Shared;
use crate::{Error, Result, jobs};

/// Re-read query-migrate at least this often while loading.
const POLL: Duration = Duration::from_millis(500);

/// The name the image's descriptor is registered under in QEMU.
const RESTORE_FD: &str = "ferrovirt-restore";

/// Loads the saved state into a QEMU started with `-incoming defer`,
/// which reads it from `image` (positioned at the stream) itself: no
/// shell, no second open of a path that may have changed.
pub(crate) async fn load(s: &Shared, dom: &Domain, ctx: &RunCtx, image: &File) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    // Subscribed before `migrate-incoming`, so its events cannot be missed.
    let mut progress = ctx.progress.subscribe();
    if let Err(e) = dom.qmp(&MigrateSetCapabilities::events(), t).await {
        tracing::debug!(domain = dom.name(), error = %e, "no migration events");
    }
    dom.pass_fd(RESTORE_FD, image.as_fd()).await?;
    let incoming = MigrateIncoming {
        uri: format!("fd:{RESTORE_FD}"),
    };
    // A corrupt image can make QEMU exit before it answers.
    dom.qmp(&incoming, t).await.map_err(|e| {
        Error::Qemu(format!(
            "QEMU could not start loading the saved state (corrupt image?): {e}"
        ))
    })?;
    loop {
        let (status, closed) = {
            let p = progress.borrow_and_update();
            (p.migration.clone(), p.closed)
        };
        match status {
            Some(MigrationStatus::Completed) => return Ok(()),
            Some(MigrationStatus::Failed | MigrationStatus::Cancelled) => {
                return Err(Error::Qemu(
                    "QEMU could not load the saved state (corrupt image?)".into(),
                ));
            }
            _ if closed => {
                return Err(Error::Qemu(
                    "QEMU exited while loading the saved state (corrupt image?)".into(),
                ));
            }
            _ => {}
        }
        match tokio::time::timeout(POLL, progress.changed()).await {
            Ok(Err(_)) => {
                return Err(Error::Qemu(
                    "QEMU exited while loading the saved state".into(),
                ));
            }
            Ok(Ok(())) => {}
            Err(_) => jobs::stream::poll_migration(s, dom, ctx).await,
        }
    }
}

/// `virsh restore FILE [--xml DXML]`: `after` None = as the guest was
/// when saved; `dxml` replaces the image's XML if it keeps the guest ABI.
pub(crate) async fn restore(
    s: &Arc<Shared>,
    path: &Path,
    after: Option<AfterRestore>,
    dxml: Option<&str>,
) -> Result<Arc<Domain>> {
    let (h, image) = open_image(path).await?;
    let def = Arc::new(xml::restore_def(path, &h.xml, dxml)?);
    let (dom, created) = {
        let _d = s.define_lock.lock().await;
        match s.registry.find_same(def.name(), &def.uuid())? {
            Some(dom) if dom.is_active() => {
                return Err(Error::OperationInvalid(format!(
                    "domain '{}' is already active",
                    dom.name()
                )));
            }
            Some(dom) => (dom, false),
            None => {
                let dom = Domain::new(def.clone(), false);
                s.registry.insert(&dom);
                (dom, true)
            }
        }
    };
    let after = after.unwrap_or(AfterRestore::from_running(h.was_running));
    let res = start_restored(s, &dom, def, image, after).await;
    if let Err(e) = res {
        if created && !dom.is_active() {
            dom.lock().forget();
            s.registry.remove(&dom);
            dom.jobs.close("restore failed");
        }
        return Err(e);
    }
    Ok(dom)
}

/// Starts `dom` from the image under an async Restore job.
async fn start_restored(
    s: &Arc<Shared>,
    dom: &Arc<Domain>,
    def: Arc<crate::object::def::Def>,
    image: File,
    after: AfterRestore,
) -> Result<()> {
    let _job = jobs::begin_async(
        dom,
        AsyncKind::Restore,
        AllowList::DEFAULT,
        "restore",
        s.cfg.job_wait,
    )
    .await?;
    let paused = !after.is_running();
    let incoming = Incoming {
        def,
        from: IncomingFrom::Image {
            image,
            consume: None,
        },
    };
    start::start_from(s, dom, paused, Some(incoming)).await
}

/// Opens and validates the image on the blocking pool.
async fn open_image(path: &Path) -> Result<(header::ImageHeader, File)> {
    let path = path.to_path_buf();
    jobs::blocking(move || header::open(&path)).await
}

/// `virsh start` of a domain with a managed-save image: restore it; the
/// image is removed once QEMU holds the state, before the guest runs. The
/// caller holds a job on `dom`.
pub(crate) async fn start_managed(s: &Arc<Shared>, dom: &Arc<Domain>, paused: bool) -> Result<()> {
    let path = s.layout.managed_save(dom.name());
    let (h, image) = open_image(&path).await?;
    let def = Arc::new(xml::restore_def(&path, &h.xml, None)?);
    if def.uuid() != dom.uuid() {
        return Err(Error::OperationInvalid(format!(
            "managed save image '{}' belongs to another domain",
            path.display()
        )));
    }
    let paused = paused || !h.was_running;
    let incoming = Incoming {
        def,
        from: IncomingFrom::Image {
            image,
            consume: Some(path),
        },
    };
    start::start_from(s, dom, paused, Some(incoming)).await
}
