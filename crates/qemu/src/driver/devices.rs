//! What console, screenshot and graphics clients ask of a running domain:
//! the character device a console session opens, an image of a screen,
//! and a connection to its VNC server handed over as a descriptor.
//!
//! Consoles take no job (as libvirt's): they only read the live
//! definition. A screenshot is a query job, opening a graphics connection
//! a modify job, both with one monitor command of the usual deadline.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use joblock::NormalJob;
use qmp::commands::{AddClient, Closefd, RemoveFd, Screendump};

use super::Driver;
use crate::emulator::chardev::{self, OpenChardev};
use crate::jobs;
use crate::object::Domain;
use crate::object::def::Chardev;
use crate::{Error, Result};

/// The descriptor name graphics connections are passed to QEMU under.
const GRAPHICS_FDNAME: &str = "graphicsfd";

/// An image of a guest's screen: the file QEMU wrote (already unlinked,
/// so nothing is left behind however it is read) and its MIME type.
#[derive(Debug)]
pub struct Screenshot {
    pub file: std::fs::File,
    /// `image/png`, or `image/x-portable-pixmap` where QEMU cannot write
    /// PNG, as libvirt reports them.
    pub mime: &'static str,
}

impl Driver {
    /// The serial `virsh console DOMAIN [DEVNAME]` opens (see
    /// `Def::console` for how the name is resolved).
    pub fn console(&self, dom: &Domain, dev_name: Option<&str>) -> Result<Chardev> {
        dom.lock().active_ctx()?;
        dom.def_for_xml(false).console(dev_name)
    }

    /// The channel `virDomainOpenChannel` opens.
    pub fn channel(&self, dom: &Domain, name: Option<&str>) -> Result<Chardev> {
        dom.lock().active_ctx()?;
        dom.def_for_xml(false).channel(name)
    }

    /// Opens a character device for a session: non-blocking, a pty in raw
    /// mode and locked by its tty lock file (see `emulator/chardev.rs`).
    pub fn open_chardev(&self, c: &Chardev) -> Result<OpenChardev> {
        chardev::open(&c.endpoint, Path::new(chardev::LOCK_DIR))
    }

    /// `virsh screenshot`: screen `screen` as PNG (PPM where QEMU cannot
    /// write PNG).
    pub async fn screenshot(&self, dom: &Domain, screen: u32) -> Result<Screenshot> {
        let t = self.s.cfg.monitor_timeout;
        let _job = jobs::begin(dom, NormalJob::Query, "screenshot", self.s.cfg.job_wait).await?;
        dom.lock().active_ctx()?;
        let target = dom.def_for_xml(false).screen(screen)?;
        let tmp = TempFile::create(&self.s.layout.run_dir, &dom.uuid())?;
        let fdset = self.screendump_fdset(dom, &tmp).await?;
        let filename = match fdset {
            Some(id) => format!("/dev/fdset/{id}"),
            None => tmp.0.to_string_lossy().into_owned(),
        };
        let dumped = self.screendump(dom, filename, target, t).await;
        if let Some(id) = fdset {
            let gone = RemoveFd {
                fdset_id: id,
                fd: None,
            };
            let _ = dom.qmp(&gone, t).await;
        }
        let mime = dumped?;
        let file =
            std::fs::File::open(&tmp.0).map_err(|e| Error::io("cannot open the screendump", e))?;
        Ok(Screenshot { file, mime })
    }

    /// A QEMU that runs as its own user cannot open the daemon's temporary
    /// file by name: it gets the file as a descriptor set instead.
    async fn screendump_fdset(&self, dom: &Domain, tmp: &TempFile) -> Result<Option<u64>> {
        if self.s.cfg.confinement.creds.is_none() {
            return Ok(None);
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp.0)
            .map_err(|e| Error::io(format!("cannot open {}", tmp.0.display()), e))?;
        dom.add_fd("screendump", file.as_fd()).await.map(Some)
    }

    /// `screendump` to `filename` as PNG, or as PPM where QEMU cannot
    /// write PNG; returns the image's MIME type.
    async fn screendump(
        &self,
        dom: &Domain,
        filename: String,
        target: Option<(String, u32)>,
        t: std::time::Duration,
    ) -> Result<&'static str> {
        let mut cmd = Screendump {
            filename,
            device: target.as_ref().map(|(d, _)| d.clone()),
            head: target.map(|(_, h)| h),
            format: Some("png".into()),
        };
        let mime = match dom.qmp(&cmd, t).await {
            Ok(_) => "image/png",
            Err(Error::Qemu(e)) => {
                tracing::debug!(domain = dom.name(), error = %e, "PNG screendump refused; trying PPM");
                cmd.format = None;
                dom.qmp(&cmd, t).await?;
                "image/x-portable-pixmap"
            }
            Err(e) => return Err(e),
        };
        Ok(mime)
    }

    /// `virDomainOpenGraphicsFD`: a new connection to graphics `idx`
    /// (its VNC or SPICE server), as the client's end of a socket pair whose other
    /// end QEMU took with `add_client`.
    pub async fn open_graphics_fd(
        &self,
        dom: &Domain,
        idx: u32,
        skipauth: bool,
    ) -> Result<OwnedFd> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::io("cannot create a socket pair", e.into()))?;
        self.open_graphics(dom, idx, theirs, skipauth).await?;
        Ok(ours)
    }

    /// `virDomainOpenGraphics`: `fd` (a connected socket of the client's)
    /// becomes a client of graphics `idx`.
    pub async fn open_graphics(
        &self,
        dom: &Domain,
        idx: u32,
        fd: OwnedFd,
        skipauth: bool,
    ) -> Result<()> {
        let t = self.s.cfg.monitor_timeout;
        let _job =
            jobs::begin(dom, NormalJob::Modify, "open graphics", self.s.cfg.job_wait).await?;
        dom.lock().active_ctx()?;
        let protocol = dom.def_for_xml(false).graphics_protocol(idx)?;
        dom.pass_fd(GRAPHICS_FDNAME, fd.as_fd()).await?;
        let add = AddClient {
            protocol: protocol.into(),
            fdname: GRAPHICS_FDNAME.into(),
            skipauth: Some(skipauth),
        };
        if let Err(e) = dom.qmp(&add, t).await {
            let close = Closefd {
                fdname: GRAPHICS_FDNAME.into(),
            };
            let _ = dom.qmp(&close, t).await;
            return Err(e);
        }
        Ok(())
    }
}

/// A file under the run directory for QEMU to write, removed on drop.
/// Its name is a temp file's, so one left by a killed daemon is swept
/// when the driver opens again.
struct TempFile(PathBuf);

impl TempFile {
    fn create(dir: &Path, uuid: &uuid::Uuid) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{uuid}.screendump.tmp.{}.{n}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        Ok(Self(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
