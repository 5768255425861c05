//! Volume upload and download (`vol-upload`, `vol-download`): the bytes of
//! a volume's file, from an offset, for a length (0 = to the end), with
//! holes when the client asked for a sparse stream.
//!
//! A transfer holds a shared `Volume` job on its pool for its whole life
//! (the pool cannot be stopped under it) and marks the volume in use:
//!
//! - an upload writes the volume: it needs the volume idle (no other
//!   transfer, clone, wipe; not being built) and unused by any running
//!   domain; while it runs the volume is neither deleted, wiped, resized,
//!   cloned from, nor read by a download;
//! - a download reads it: several may run at once and beside clones, but
//!   not beside an upload, and the volume is not deleted meanwhile.
//!
//! An upload writes in place, as libvirt's does. A finished upload is made
//! durable (fsync) before it is confirmed, then the volume is probed again
//! (its format and sizes may have changed) and a pool refresh event is
//! emitted, as libvirt's pool refresh after an upload does. A daemon killed
//! mid-upload leaves the volume in place with the bytes written so far
//! (libvirt's outcome too): the volume is still listed and usable, the
//! next pool start probes it again, and nothing else of the pool changes.
//! Holes are written as holes (punched, or zeros where the file system
//! cannot punch) and a hole that reaches past the end of the file extends
//! it, so the uploaded range reads back exactly as sent.
//!
//! The methods do file I/O: call them off the async workers (the daemon's
//! stream pumps use `spawn_blocking`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use joblock::{JobGuard, NormalJob};

use crate::driver::StorageDriver;
use crate::events::PoolEventKind;
use crate::pool::Pool;
use crate::volops::{Usage, Use};
use crate::{Error, Result};

/// Where a transfer starts and how much it moves (`offset`, `length`; a
/// length of 0 means to the end) and whether holes travel as holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferRange {
    pub offset: u64,
    pub length: u64,
    pub sparse: bool,
}

/// A running upload into a volume.
pub struct Upload {
    file: File,
    path: PathBuf,
    pos: u64,
    /// `offset + length`, when a length was given.
    limit: Option<u64>,
    /// Size of the file when the upload began.
    size: u64,
    drv: StorageDriver,
    pool: Arc<Pool>,
    name: String,
    _usage: Usage,
    _job: JobGuard,
}

/// A running download of a volume.
pub struct Download {
    file: File,
    pos: u64,
    end: u64,
    sparse: bool,
    _usage: Usage,
    _job: JobGuard,
}

/// The next piece of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// A run of zeros this long (sparse downloads only).
    Hole(u64),
    /// Nothing more.
    End,
}

impl StorageDriver {
    /// Starts `vol-upload` into `name`: see the module documentation for
    /// what the volume must be and becomes.
    pub async fn upload(
        &self,
        pool: &Arc<Pool>,
        name: &str,
        range: TransferRange,
    ) -> Result<Upload> {
        let job = self
            .job(
                pool,
                NormalJob::Volume,
                format!("upload to volume '{name}'"),
            )
            .await?;
        let vol = self.idle_volume(pool, name)?;
        if let Some(dom) = self.running_user(&vol.path) {
            return Err(crate::volops::in_use_by(name, &dom));
        }
        let usage = Usage::try_mark(pool, name, Use::Write)?;
        let path = vol.path.clone();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open volume '{}'", path.display()), e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat volume '{}'", path.display()), e))?
            .len();
        Ok(Upload {
            file,
            path,
            pos: range.offset,
            limit: (range.length > 0).then(|| range.offset.saturating_add(range.length)),
            size,
            drv: self.clone(),
            pool: pool.clone(),
            name: name.to_owned(),
            _usage: usage,
            _job: job,
        })
    }

    /// Starts `vol-download` of `name`.
    pub async fn download(
        &self,
        pool: &Arc<Pool>,
        name: &str,
        range: TransferRange,
    ) -> Result<Download> {
        let job = self
            .job(
                pool,
                NormalJob::Volume,
                format!("download of volume '{name}'"),
            )
            .await?;
        let vol = self.lookup_volume(pool, name)?;
        if vol.building.is_some() {
            return Err(crate::volops::still_building(name));
        }
        let usage = Usage::try_mark(pool, name, Use::Read)?;
        let path = &vol.path;
        let file = File::open(path)
            .map_err(|e| Error::io(format!("cannot open volume '{}'", path.display()), e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat volume '{}'", path.display()), e))?
            .len();
        let end = match range.length {
            0 => size,
            n => range.offset.saturating_add(n).min(size),
        };
        Ok(Download {
            file,
            pos: range.offset.min(end),
            end,
            sparse: range.sparse,
            _usage: usage,
            _job: job,
        })
    }
}

impl Upload {
    /// Writes `data` at the current position. Beyond the requested length
    /// nothing is written and the upload fails, as libvirt's does.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let n = self.room(data.len() as u64)?;
        let data = &data[..usize::try_from(n).unwrap_or(data.len())];
        self.file
            .write_all_at(data, self.pos)
            .map_err(|e| self.io_err(e))?;
        self.pos += n;
        Ok(())
    }

    /// A hole of `len` bytes at the current position: what the file held
    /// there reads as zeros afterwards.
    pub fn hole(&mut self, len: u64) -> Result<()> {
        let len = self.room(len)?;
        let inside = self.size.saturating_sub(self.pos).min(len);
        if inside > 0 {
            zero_range(&self.file, self.pos, inside).map_err(|e| self.io_err(e))?;
        }
        self.pos += len;
        Ok(())
    }

    /// How much of `want` bytes fits before the requested length ends.
    fn room(&self, want: u64) -> Result<u64> {
        let Some(limit) = self.limit else {
            return Ok(want);
        };
        match limit.saturating_sub(self.pos) {
            0 if want > 0 => Err(self.io_err(io::Error::from_raw_os_error(libc::ENOSPC))),
            left => Ok(want.min(left)),
        }
    }

    fn io_err(&self, e: io::Error) -> Error {
        Error::io(
            format!("cannot write to volume '{}'", self.path.display()),
            e,
        )
    }

    /// The client finished: extends the file to the end of what was sent
    /// (a trailing hole), makes it durable, probes the volume again and
    /// emits a pool refresh event. Only then is the upload confirmed.
    pub fn finish(self) -> Result<()> {
        if self.pos > self.size {
            self.file.set_len(self.pos).map_err(|e| self.io_err(e))?;
        }
        self.file.sync_all().map_err(|e| self.io_err(e))?;
        self.drv.reprobe(&self.pool, &self.name, &self.path)?;
        self.pool
            .lock()
            .emit(&self.drv.s.listeners, PoolEventKind::Refresh);
        Ok(())
    }

    /// The upload was aborted or broke off: what was written stays (as
    /// libvirt's), the volume's facts are read again.
    pub fn abandon(self) {
        let _ = self.drv.reprobe(&self.pool, &self.name, &self.path);
    }

    /// Bytes written or skipped so far (from the start of the file).
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Download {
    /// The next piece: up to `buf.len()` bytes of data read into `buf`, or
    /// (sparse downloads) the hole that starts here.
    pub fn next(&mut self, buf: &mut [u8]) -> Result<Piece> {
        if self.pos >= self.end {
            return Ok(Piece::End);
        }
        let data_len = match self.sparse {
            true => match self.extent().map_err(read_err)? {
                Extent::Hole(len) => {
                    self.pos += len;
                    return Ok(Piece::Hole(len));
                }
                Extent::Data(len) => len,
            },
            false => self.end - self.pos,
        };
        let want = usize::try_from(data_len)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = read_full_at(&self.file, &mut buf[..want], self.pos).map_err(read_err)?;
        if n == 0 {
            // The file shrank under us: what is left does not exist.
            self.end = self.pos;
            return Ok(Piece::End);
        }
        self.pos += n as u64;
        Ok(Piece::Data(n))
    }

    /// The data or hole that starts at the current position, cut at the
    /// end of the range (`SEEK_DATA`/`SEEK_HOLE`).
    fn extent(&self) -> io::Result<Extent> {
        let at = |whence| seek(&self.file, self.pos, whence);
        let data = match at(libc::SEEK_DATA) {
            Ok(d) => d.min(self.end),
            // No data after `pos`: the rest is a hole.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => self.end,
            Err(e) => return Err(e),
        };
        if data > self.pos {
            return Ok(Extent::Hole(data - self.pos));
        }
        let hole = at(libc::SEEK_HOLE)?.min(self.end);
        Ok(Extent::Data(hole.saturating_sub(self.pos).max(1)))
    }
}

enum Extent {
    Data(u64),
    Hole(u64),
}

fn read_err(e: io::Error) -> Error {
    Error::io("cannot read volume", e)
}

fn seek(file: &File, pos: u64, whence: libc::c_int) -> io::Result<u64> {
    let off = i64::try_from(pos).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    nix::unistd::lseek(file.as_raw_fd(), off, whence_of(whence))
        .map(|o| o.unsigned_abs())
        .map_err(io::Error::from)
}

fn whence_of(w: libc::c_int) -> nix::unistd::Whence {
    match w {
        libc::SEEK_DATA => nix::unistd::Whence::SeekData,
        _ => nix::unistd::Whence::SeekHole,
    }
}

/// Reads as much of `buf` as the file has at `pos`.
fn read_full_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Makes `[pos, pos + len)` read as zeros: a punched hole, or written
/// zeros on a file system that cannot punch.
fn zero_range(file: &File, pos: u64, len: u64) -> io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let (off, n) = match (i64::try_from(pos), i64::try_from(len)) {
        (Ok(o), Ok(n)) => (o, n),
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    match fallocate(file.as_raw_fd(), flags, off, n) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => write_zeros(file, pos, len),
        Err(e) => Err(e.into()),
    }
}

fn write_zeros(file: &File, mut pos: u64, mut len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    while len > 0 {
        let n = len.min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], pos)?;
        pos += n;
        len -= n;
    }
    Ok(())
}
