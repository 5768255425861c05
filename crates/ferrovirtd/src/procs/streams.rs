//! The procedures that open a stream or pass a descriptor: `virsh
//! console` and channels, `vol-upload` and `vol-download`, `screenshot`,
//! and connections to a domain's VNC server (`virDomainOpenGraphics`,
//! `virDomainOpenGraphicsFD`).
//!
//! Each checks its flags and opens what it serves, then opens the call's
//! stream last (nothing fails after it) and hands it to a pump task
//! (`pumps.rs`); the stream carries data once this call is answered.

use std::sync::Arc;

use qemu::{Chardev, Domain};
use rpc::CallContext;
use rpc::protocol::remote::{
    DomainOpenChardevArgs, DomainOpenGraphicsArgs, DomainScreenshotArgs, DomainScreenshotRet,
    StorageVolTransferArgs,
};
use storage::TransferRange;
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, domain as f, storage as fs};
use crate::pumps::{self, Source};
use crate::wire::vir;

/// `virsh console DOMAIN [DEVNAME] [--force] [--safe]`: a pty serial (or
/// one on a UNIX socket QEMU listens on). One session per device;
/// `--force` takes over the one there is. `--safe` needs the tty's lock
/// file (a pty, and a daemon that may write the lock directory); where
/// the daemon cannot honour it, the flag is refused as libvirt's drivers
/// refuse it.
pub(crate) async fn open_console(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainOpenChardevArgs,
) -> Reply<()> {
    let api = "virDomainOpenConsole";
    flags::check(api, a.flags, f::CONSOLE_FORCE | f::CONSOLE_SAFE)?;
    let dom = d.domain(&a.dom)?;
    let dev = d.driver.console(&dom, a.name.as_deref()).map_err(vir)?;
    let session = Session {
        api,
        force: a.flags & f::CONSOLE_FORCE != 0,
        safe: a.flags & f::CONSOLE_SAFE != 0,
    };
    session.open(d, ctx, &dom, &dev).await
}

/// `virDomainOpenChannel`: as a console, on a channel's UNIX socket.
pub(crate) async fn open_channel(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainOpenChardevArgs,
) -> Reply<()> {
    let api = "virDomainOpenChannel";
    flags::check(api, a.flags, f::CHANNEL_FORCE)?;
    let dom = d.domain(&a.dom)?;
    let dev = d.driver.channel(&dom, a.name.as_deref()).map_err(vir)?;
    let session = Session {
        api,
        force: a.flags & f::CHANNEL_FORCE != 0,
        safe: false,
    };
    session.open(d, ctx, &dom, &dev).await
}

/// A console or channel session about to start.
struct Session {
    api: &'static str,
    force: bool,
    safe: bool,
}

impl Session {
    async fn open(
        self,
        d: &Daemon,
        ctx: &CallContext,
        dom: &Arc<Domain>,
        dev: &Chardev,
    ) -> Reply<()> {
        let claim = d.consoles.claim(dom.uuid(), &dev.alias, self.force).await?;
        let open = d.driver.open_chardev(dev).map_err(vir)?;
        if self.safe && open.lock.is_none() {
            return Err(flags::unsupported(self.api, f::CONSOLE_SAFE));
        }
        let stream = ctx.open_stream(false)?;
        tracing::info!(domain = dom.name(), device = %dev.alias, client = %ctx.client, "console session opened");
        tokio::spawn(pumps::console(stream, open, claim));
        Ok(())
    }
}

fn range(a: &StorageVolTransferArgs, sparse_flag: u32) -> TransferRange {
    TransferRange {
        offset: a.offset,
        length: a.length,
        sparse: a.flags & sparse_flag != 0,
    }
}

/// `virsh vol-upload [--offset N] [--length N] [--sparse]`.
pub(crate) async fn vol_upload(
    d: &Daemon,
    ctx: &CallContext,
    a: StorageVolTransferArgs,
) -> Reply<()> {
    flags::check("virStorageVolUpload", a.flags, fs::VOL_UPLOAD_SPARSE_STREAM)?;
    let (pool, vol) = d.volume(&a.vol)?;
    let r = range(&a, fs::VOL_UPLOAD_SPARSE_STREAM);
    let up = d.storage.upload(&pool, &vol.name, r).await.map_err(vir)?;
    let stream = ctx.open_stream(r.sparse)?;
    tokio::spawn(pumps::upload(stream, up));
    Ok(())
}

/// `virsh vol-download [--offset N] [--length N] [--sparse]`.
pub(crate) async fn vol_download(
    d: &Daemon,
    ctx: &CallContext,
    a: StorageVolTransferArgs,
) -> Reply<()> {
    flags::check(
        "virStorageVolDownload",
        a.flags,
        fs::VOL_DOWNLOAD_SPARSE_STREAM,
    )?;
    let (pool, vol) = d.volume(&a.vol)?;
    let r = range(&a, fs::VOL_DOWNLOAD_SPARSE_STREAM);
    let down = d.storage.download(&pool, &vol.name, r).await.map_err(vir)?;
    let stream = ctx.open_stream(r.sparse)?;
    tokio::spawn(pumps::download(stream, Source::Volume(down)));
    Ok(())
}

/// `virsh screenshot DOMAIN [FILE] [--screen N]`: the image streams, its
/// MIME type is the reply.
pub(crate) async fn screenshot(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainScreenshotArgs,
) -> Reply<DomainScreenshotRet> {
    flags::check("virDomainScreenshot", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    let shot = d.driver.screenshot(&dom, a.screen).await.map_err(vir)?;
    let stream = ctx.open_stream(false)?;
    tokio::spawn(pumps::download(stream, Source::File(shot.file)));
    Ok(DomainScreenshotRet {
        mime: Some(shot.mime.to_owned()),
    })
}

/// `virDomainOpenGraphics`: the socket the client passed
/// (`CALL_WITH_FDS`) becomes a client of the domain's VNC server.
pub(crate) async fn open_graphics(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainOpenGraphicsArgs,
) -> Reply<()> {
    flags::check("virDomainOpenGraphics", a.flags, f::OPEN_GRAPHICS_SKIPAUTH)?;
    let mut fds = ctx.take_fds();
    if fds.len() != 1 {
        return Err(VirError::new(
            ErrorCode::InternalError,
            ErrorDomain::Rpc,
            format!(
                "internal error: expected one file descriptor, got {}",
                fds.len()
            ),
        ));
    }
    let fd = fds.remove(0);
    let dom = d.domain(&a.dom)?;
    let skip = a.flags & f::OPEN_GRAPHICS_SKIPAUTH != 0;
    d.driver
        .open_graphics(&dom, a.idx, fd, skip)
        .await
        .map_err(vir)
}

/// `virDomainOpenGraphicsFD`: a new connection to the domain's VNC
/// server, passed back with the reply (`REPLY_WITH_FDS`).
pub(crate) async fn open_graphics_fd(
    d: &Daemon,
    ctx: &CallContext,
    a: DomainOpenGraphicsArgs,
) -> Reply<()> {
    flags::check(
        "virDomainOpenGraphicsFD",
        a.flags,
        f::OPEN_GRAPHICS_SKIPAUTH,
    )?;
    let dom = d.domain(&a.dom)?;
    let skip = a.flags & f::OPEN_GRAPHICS_SKIPAUTH != 0;
    let fd = d
        .driver
        .open_graphics_fd(&dom, a.idx, skip)
        .await
        .map_err(vir)?;
    ctx.add_reply_fd(fd);
    Ok(())
}
