//! The tasks that move a stream's data between the client and what it
//! opened: a console's character device, a volume, a screenshot. Each
//! task owns its stream and ends it the way libvirt's clients expect:
//! end of data, then the client's finish confirmed; or an error.
//!
//! Nothing here buffers beyond one chunk per direction: a source is read
//! only when the stream has room for what was read (the client reads), and
//! a sink is handed data only as fast as it takes it (the rpc layer stops
//! reading a client whose sinks are full). File I/O runs on the blocking
//! pool, one chunk (or one batch of chunks already received) per hop.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use qemu::OpenChardev;
use rpc::{Incoming, Stream, StreamData, StreamReceiver};
use storage::{Download, Piece, Upload};
use tokio::io::unix::AsyncFd;
use virterror::{ErrorCode, ErrorDomain, ToVirError, VirError};

use crate::consoles::Claim;

/// Bytes read from a character device at once.
const CONSOLE_CHUNK: usize = 64 * 1024;
/// Stream messages an upload writes in one blocking call, at most.
const UPLOAD_BATCH: usize = 8;

fn system_error(what: &str, e: &io::Error) -> VirError {
    VirError::new(
        ErrorCode::SystemError,
        ErrorDomain::Streams,
        format!("{what}: {e}"),
    )
}

fn internal(msg: impl Into<String>) -> VirError {
    VirError::new(
        ErrorCode::InternalError,
        ErrorDomain::Streams,
        format!("internal error: {}", msg.into()),
    )
}

/// Runs file work on the blocking pool; a panic there becomes an error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, VirError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(format!("stream task failed: {e}")))
}

/// Waits for the client's finish or abort (data after the end is
/// dropped) and confirms it.
async fn confirm_end(mut rx: StreamReceiver, stream: Stream) {
    loop {
        match rx.recv().await {
            Some(Incoming::Finish | Incoming::Abort) => return stream.confirm().await,
            Some(Incoming::Data(_) | Incoming::Hole(_)) => {}
            None => return,
        }
    }
}

// ---- consoles ----

/// How the guest-to-client half of a console ended.
enum OutEnd {
    /// The device hung up: the guest stopped.
    Eof,
    /// The client is gone.
    Gone,
    Failed(io::Error),
}

/// How the client-to-guest half of a console ended.
enum InEnd {
    /// The client finished or aborted: confirm it.
    Closed,
    Gone,
    /// The device hung up under a write.
    Eof,
    Failed(io::Error),
}

/// A console session: the device's output to the client, the client's
/// input to the device, until one side ends or another session takes the
/// device over.
pub(crate) async fn console(mut stream: Stream, dev: OpenChardev, mut claim: Claim) {
    let OpenChardev { fd, lock } = dev;
    // SAFETY: an OwnedFd keeps its descriptor open, and the same, for as
    // long as the AsyncFd that owns it lives.
    let fd = match unsafe { AsyncFd::register(fd) } {
        Ok(fd) => fd,
        Err(e) => {
            let e = io::Error::from(e);
            return stream
                .fail(&system_error("cannot watch the console", &e))
                .await;
        }
    };
    let mut rx = stream.take_receiver();
    enum End {
        Out(OutEnd),
        In(InEnd),
        TakenOver,
    }
    // The client going away ends the session even while input waits for
    // a device that takes none.
    let end = tokio::select! {
        e = console_output(&fd, &stream) => End::Out(e),
        e = console_input(&fd, &mut rx) => End::In(e),
        _ = claim.stopped() => End::TakenOver,
        _ = stream.closed() => End::Out(OutEnd::Gone),
    };
    // The device is free for the next session before this one's client
    // has acknowledged anything.
    drop((fd, lock, claim));
    match end {
        End::Out(OutEnd::Eof) | End::In(InEnd::Eof) => {
            if stream.send_eof().await.is_ok() {
                confirm_end(rx, stream).await;
            }
        }
        End::In(InEnd::Closed) => stream.confirm().await,
        End::Out(OutEnd::Gone) | End::In(InEnd::Gone) => {}
        End::Out(OutEnd::Failed(e)) => {
            stream
                .fail(&system_error("cannot read from console", &e))
                .await
        }
        End::In(InEnd::Failed(e)) => {
            stream
                .fail(&system_error("cannot write to console", &e))
                .await
        }
        End::TakenOver => {
            let e = VirError::new(
                ErrorCode::OperationAborted,
                ErrorDomain::Streams,
                "operation aborted: the console was taken over by another session",
            );
            stream.fail(&e).await;
        }
    }
}

async fn console_output(fd: &AsyncFd<OwnedFd>, stream: &Stream) -> OutEnd {
    let mut buf = vec![0u8; CONSOLE_CHUNK];
    loop {
        let n = match read_some(fd, &mut buf).await {
            Ok(0) => return OutEnd::Eof,
            Ok(n) => n,
            Err(e) => return OutEnd::Failed(e),
        };
        if stream.send(&buf[..n]).await.is_err() {
            return OutEnd::Gone;
        }
    }
}

async fn console_input(fd: &AsyncFd<OwnedFd>, rx: &mut StreamReceiver) -> InEnd {
    loop {
        let data = match rx.recv().await {
            Some(Incoming::Data(d)) => d,
            Some(Incoming::Hole(_)) => continue,
            Some(Incoming::Finish | Incoming::Abort) => return InEnd::Closed,
            None => return InEnd::Gone,
        };
        match write_all(fd, &data).await {
            Ok(()) => {}
            Err(e) if hung_up(&e) => return InEnd::Eof,
            Err(e) => return InEnd::Failed(e),
        }
    }
}

/// A pty whose other side closed answers EIO.
fn hung_up(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::EIO as i32)
}

/// Reads what the device has; 0 when it hung up.
async fn read_some(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut ready = fd.readable().await?;
        let r = ready
            .try_io(|f| nix::unistd::read(f.get_ref().as_raw_fd(), buf).map_err(io::Error::from));
        match r {
            Ok(Err(e)) if hung_up(&e) => return Ok(0),
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Writes all of `data`, waiting while the device takes nothing (the
/// client is then not read: see the module documentation).
async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut ready = fd.writable().await?;
        let r = ready.try_io(|f| nix::unistd::write(f.get_ref(), data).map_err(io::Error::from));
        match r {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

// ---- uploads ----

/// `vol-upload`: the client's data into the volume until it finishes
/// (then durable, confirmed) or aborts (what was written stays).
pub(crate) async fn upload(mut stream: Stream, up: Upload) {
    let mut up = Some(up);
    let mut next = None;
    loop {
        let item = match next.take() {
            Some(item) => Some(item),
            None => stream.recv().await,
        };
        let Some(u) = up.take() else { return };
        let step = match item {
            None => return abandon(u).await,
            Some(Incoming::Abort) => {
                abandon(u).await;
                return stream.confirm().await;
            }
            Some(Incoming::Finish) => {
                let r = blocking(move || u.finish().map_err(|e| e.to_vir_error())).await;
                return match r.and_then(|r| r) {
                    Ok(()) => stream.confirm().await,
                    Err(e) => stream.fail(&e).await,
                };
            }
            Some(Incoming::Hole(n)) => write_step(u, Vec::new(), Some(n)).await,
            Some(Incoming::Data(d)) => {
                let mut batch = vec![d];
                next = gather(&mut stream, &mut batch);
                write_step(u, batch, None).await
            }
        };
        match step {
            Ok(u) => up = Some(u),
            Err(e) => return stream.fail(&e).await,
        }
    }
}

/// Moves further data the client already sent into `batch` (up to
/// `UPLOAD_BATCH`); returns the first other message, if one came.
fn gather(stream: &mut Stream, batch: &mut Vec<StreamData>) -> Option<Incoming> {
    while batch.len() < UPLOAD_BATCH {
        match stream.try_recv()? {
            Incoming::Data(d) => batch.push(d),
            other => return Some(other),
        }
    }
    None
}

/// Writes a batch of data, or a hole, on the blocking pool.
async fn write_step(
    mut u: Upload,
    batch: Vec<StreamData>,
    hole: Option<u64>,
) -> Result<Upload, VirError> {
    blocking(move || {
        let r = match hole {
            Some(n) => u.hole(n),
            None => batch.iter().try_for_each(|d| u.write(d)),
        };
        match r {
            Ok(()) => Ok(u),
            Err(e) => {
                let err = e.to_vir_error();
                u.abandon();
                Err(err)
            }
        }
    })
    .await?
}

async fn abandon(u: Upload) {
    let _ = blocking(move || u.abandon()).await;
}

// ---- downloads and screenshots ----

/// What a download reads: a volume, or a file (a screenshot).
pub(crate) enum Source {
    Volume(Download),
    File(std::fs::File),
}

impl Source {
    fn next(&mut self, buf: &mut [u8]) -> Result<Piece, VirError> {
        match self {
            Source::Volume(d) => d.next(buf).map_err(|e| e.to_vir_error()),
            Source::File(f) => match io::Read::read(f, buf) {
                Ok(0) => Ok(Piece::End),
                Ok(n) => Ok(Piece::Data(n)),
                Err(e) => Err(system_error("cannot read the image", &e)),
            },
        }
    }
}

/// `vol-download`, `screenshot`: the source to the client, then the end
/// of data and the client's finish. The source is let go (the volume is
/// free again) as soon as it is read.
pub(crate) async fn download(mut stream: Stream, src: Source) {
    let mut rx = stream.take_receiver();
    let sent = tokio::select! {
        r = send_all(&stream, src) => r,
        stop = stopped_by_client(&mut rx) => Err(stop),
    };
    match sent {
        Ok(()) => confirm_end(rx, stream).await,
        // Aborted (or finished early): stop and confirm, as libvirt does.
        Err(Stopped::ByClient) => stream.confirm().await,
        Err(Stopped::Gone) => {}
        Err(Stopped::Failed(e)) => stream.fail(&e).await,
    }
}

enum Stopped {
    ByClient,
    Gone,
    Failed(VirError),
}

/// Resolves when the client aborts (or finishes early) or goes away.
async fn stopped_by_client(rx: &mut StreamReceiver) -> Stopped {
    loop {
        match rx.recv().await {
            Some(Incoming::Finish | Incoming::Abort) => return Stopped::ByClient,
            Some(Incoming::Data(_) | Incoming::Hole(_)) => {}
            None => return Stopped::Gone,
        }
    }
}

async fn send_all(stream: &Stream, mut src: Source) -> Result<(), Stopped> {
    let mut buf = vec![0u8; rpc::stream::CHUNK_MAX];
    loop {
        let (s, b, piece) = blocking(move || {
            let p = src.next(&mut buf);
            (src, buf, p)
        })
        .await
        .map_err(Stopped::Failed)?;
        (src, buf) = (s, b);
        let sent = match piece.map_err(Stopped::Failed)? {
            Piece::Data(n) => stream.send(&buf[..n]).await,
            Piece::Hole(n) => stream.send_hole(n).await,
            Piece::End => {
                drop(src);
                return stream.send_eof().await.map_err(|_| Stopped::Gone);
            }
        };
        sent.map_err(|_| Stopped::Gone)?;
    }
}
