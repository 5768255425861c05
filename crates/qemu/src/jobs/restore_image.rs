//! `virsh restore` and the managed-save image behind `virsh managedsave` /
//! `virsh start`.
//!
//! The image is validated before anything is created or started (see
//! [`saveimage::open`]); the domain is then started with `-incoming defer`
//! and its state loaded with `migrate-incoming` from the stream after the
//! header, read by QEMU through the descriptor that was validated. The load is woken by MIGRATION events on the
//! run's progress watch (polled as a fallback). If anything fails, QEMU is
//! killed and a domain created for the restore is forgotten, so a bad
//! image leaves nothing behind.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use joblock::{AllowList, AsyncKind};
use serde_json::json;

use super::saveimage;
use crate::def::Def;
use crate::domain::{Domain, RunCtx, command};
use crate::driver::{Driver, Shared};
use crate::lifecycle::{self, Incoming};
use crate::{Error, Result, jobs, monitor};

/// Re-read query-migrate at least this often while loading.
const POLL: Duration = Duration::from_millis(500);

/// Where the managed-save image of domain `name` lives.
pub(crate) fn managed_path(s: &Shared, name: &str) -> PathBuf {
    s.cfg
        .root
        .join("lib/qemu/save")
        .join(format!("{name}.save"))
}

/// The name the image's descriptor is registered under in QEMU.
const RESTORE_FD: &str = "ferrovirt-restore";

/// Loads the saved state into a QEMU started with `-incoming defer`,
/// which reads it from `image` (positioned at the stream) itself: no
/// shell, no second open of a path that may have changed.
pub(crate) async fn load(s: &Shared, dom: &Domain, ctx: &RunCtx, image: &File) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    let mut progress = ctx.progress.subscribe();
    let caps = json!({"capabilities": [{"capability": "events", "state": true}]});
    let _ = command(dom, t, "migrate-set-capabilities", Some(caps)).await;
    crate::domain::pass_fd(dom, RESTORE_FD, image.as_fd()).await?;
    let uri = format!("fd:{RESTORE_FD}");
    command(dom, t, "migrate-incoming", Some(json!({"uri": uri}))).await?;
    loop {
        let (status, closed) = {
            let p = progress.borrow_and_update();
            (p.migration.clone(), p.closed)
        };
        match status.as_deref() {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => {
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
            Err(_) => {
                if let Ok(v) = command(dom, t, "query-migrate", None).await
                    && let Some(st) = monitor::str_field(&v, "status")
                {
                    let st = st.to_owned();
                    ctx.update_progress(|p| p.migration = Some(st));
                }
            }
        }
    }
}

/// `virsh restore FILE [--xml DXML]`: `paused` None = as the guest was
/// when saved; `dxml` replaces the image's XML if it keeps the guest ABI.
pub(crate) async fn restore(
    drv: &Driver,
    path: &Path,
    paused: Option<bool>,
    dxml: Option<&str>,
) -> Result<Arc<Domain>> {
    let s = &drv.s;
    let (h, image) = open_image(path).await?;
    let def = Arc::new(super::image_xml::restore_def(path, &h.xml, dxml)?);
    let (dom, created) = {
        let _d = s.define_lock.lock().await;
        match drv.find_same(&def)? {
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
    let paused = paused.unwrap_or(!h.was_running);
    let res = start_restored(s, &dom, def, image, paused).await;
    if let Err(e) = res {
        if created && !dom.is_active() {
            dom.lock().removed = true;
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
    def: Arc<Def>,
    image: File,
    paused: bool,
) -> Result<()> {
    let _job = jobs::begin_async(
        dom,
        AsyncKind::Restore,
        AllowList::DEFAULT,
        "restore",
        s.cfg.job_wait,
    )
    .await?;
    lifecycle::start_from(s, dom, paused, Some(Incoming { def, image })).await
}

/// Opens and validates the image on the blocking pool.
async fn open_image(path: &Path) -> Result<(saveimage::ImageHeader, File)> {
    let path = path.to_path_buf();
    jobs::blocking(move || saveimage::open(&path)).await
}

/// `virsh start` of a domain with a managed-save image: restore it, then
/// remove the image. The caller holds a job on `dom`.
pub(crate) async fn start_managed(s: &Arc<Shared>, dom: &Arc<Domain>, paused: bool) -> Result<()> {
    let path = managed_path(s, dom.name());
    let (h, image) = open_image(&path).await?;
    let def = Arc::new(super::image_xml::restore_def(&path, &h.xml, None)?);
    if def.uuid() != dom.uuid() {
        return Err(Error::OperationInvalid(format!(
            "managed save image '{}' belongs to another domain",
            path.display()
        )));
    }
    let paused = paused || !h.was_running;
    lifecycle::start_from(s, dom, paused, Some(Incoming { def, image })).await?;
    crate::persist::remove(&path)
        .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))
}
