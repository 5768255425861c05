//! Crash-safe files: definitions, autostart markers and status records.
//!
//! Every write is atomic (temp file in the same directory, write, fsync,
//! rename, fsync the directory) so that a daemon killed at any instant
//! leaves either the old or the new file, never a torn one (requirement 9).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::state::StateReason;

/// Files larger than this are not ours: refuse to slurp them into memory.
pub const MAX_FILE: u64 = 16 << 20;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces `path` with `data`.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let tmp = temp_sibling(path)?;
    let res = write_synced(&tmp, data).and_then(|()| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
        return res;
    }
    sync_dir(dir)
}

/// A fresh temp name in `path`'s directory (so a rename onto `path` is
/// atomic), unique per process and call: concurrent writers never share
/// one.
pub fn temp_sibling(path: &Path) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok(dir.join(format!(
        ".{}.tmp.{}.{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    )))
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes `path` durably; a missing file is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => path.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads a file we wrote, refusing absurd sizes (a corrupted or hostile
/// file must not exhaust memory).
pub fn read_bounded(path: &Path) -> io::Result<String> {
    let len = fs::metadata(path)?.len();
    if len > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, larger than {MAX_FILE}", path.display()),
        ));
    }
    fs::read_to_string(path)
}

/// Files in `dir` ending in `.ext`, skipping our temp files.
pub fn list_with_ext(dir: &Path, ext: &str) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && path.extension().is_some_and(|e| e == ext) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Removes temp files left by a writer killed between create and rename.
pub fn sweep_temp_files(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp.") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// An async job recorded in the status file so a restarted daemon can
/// report its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// "save".
    pub kind: String,
    /// Target file of a save.
    pub path: PathBuf,
    /// State to return to if the job fails (the state before it paused).
    pub resume_running: bool,
    pub started_ms: u64,
}

/// What a restarted daemon needs to re-adopt a running QEMU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub version: u32,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub id: u32,
    pub pid: i32,
    /// `/proc/PID/stat` field 22: tells a reused PID from our QEMU.
    pub pid_start_time: u64,
    pub monitor: PathBuf,
    pub state: StateReason,
    pub persistent: bool,
    /// The live definition (may differ from the persistent one).
    pub live_xml: String,
    /// A guest/host shutdown was seen: an exit now is a clean shutdown.
    #[serde(default)]
    pub shutdown_seen: bool,
    #[serde(default)]
    pub fake_reboot: bool,
    #[serde(default)]
    pub job: Option<JobRecord>,
    /// A running block job, finished by a restarted daemon.
    #[serde(default)]
    pub block_job: Option<crate::jobs::blockjob::BlockJobState>,
    /// Statistics of the last async job that ended, not yet read.
    #[serde(default)]
    pub completed_job: Option<crate::jobstats::CompletedJob>,
}

pub const STATUS_VERSION: u32 = 1;

impl StatusRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail; fall back to empty
        // (which a loader rejects) rather than panic.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let rec: StatusRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if rec.version != STATUS_VERSION {
            return Err(format!("unsupported status version {}", rec.version));
        }
        if rec.pid <= 1 {
            return Err(format!("invalid pid {}", rec.pid));
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobstats::{CompletedJob, JobEnd, RamStats};
    use crate::state::{DomainState, StateReason};

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.xml");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(list_with_ext(dir.path(), "xml").unwrap(), vec![p.clone()]);
        remove(&p).unwrap();
        remove(&p).unwrap();
    }

    #[test]
    fn sweeps_torn_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".a.xml.tmp.1.2"), b"torn").unwrap();
        sweep_temp_files(dir.path());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn status_roundtrip_and_garbage_rejected() {
        let rec = StatusRecord {
            version: STATUS_VERSION,
            name: "vm".into(),
            uuid: uuid::Uuid::new_v4(),
            id: 3,
            pid: 1234,
            pid_start_time: 99,
            monitor: "/run/x.qmp".into(),
            state: StateReason::new(DomainState::Running, 1),
            persistent: true,
            live_xml: "<domain/>".into(),
            shutdown_seen: false,
            fake_reboot: false,
            job: None,
            block_job: None,
            completed_job: Some(CompletedJob {
                end: JobEnd::Cancelled,
                operation: "save".into(),
                elapsed_ms: 42,
                ram: RamStats {
                    total: 8,
                    bps: Some(1),
                    ..RamStats::default()
                },
                error: Some("save job cancelled".into()),
            }),
        };
        let text = String::from_utf8(rec.to_bytes()).unwrap();
        assert_eq!(StatusRecord::parse(&text).unwrap(), rec);
        assert!(StatusRecord::parse("{garbage").is_err());
        assert!(StatusRecord::parse("").is_err());
    }

    /// A status file written before completed-job statistics existed.
    const OLD_STATUS: &str = r#"{
  "version": 1, "name": "vm", "uuid": "5f1c3c2e-8c4e-4a53-9d0e-3b7a7f1b2c3d",
  "id": 3, "pid": 1234, "pid_start_time": 99, "monitor": "/run/x.qmp",
  "state": {"state": "Running", "reason": 1}, "persistent": true,
  "live_xml": "<domain/>", "shutdown_seen": false, "fake_reboot": false,
  "job": null, "block_job": null
}"#;

    #[test]
    fn old_status_file_without_completed_job_loads() {
        let rec = StatusRecord::parse(OLD_STATUS).expect("old record loads");
        assert_eq!(rec.completed_job, None);
        assert_eq!(rec.id, 3);
    }

    #[test]
    fn completed_job_with_only_the_first_fields_loads() {
        let done = r#"{"end": "Completed", "operation": "save", "elapsed_ms": 7}"#;
        let text = OLD_STATUS.replace(
            r#""block_job": null"#,
            &format!(r#""block_job": null, "completed_job": {done}"#),
        );
        let rec = StatusRecord::parse(&text).expect("record loads");
        let c = rec.completed_job.expect("completed job");
        assert_eq!((c.end, c.elapsed_ms), (JobEnd::Completed, 7));
        assert_eq!((c.ram, c.error), (RamStats::default(), None));
    }
}
