//! Statistics of async jobs: what `domjobinfo` shows for the running job
//! and, with `--completed`, for the last one that ended.
//!
//! The completed record is one small value per domain ([`CompletedJob`]),
//! replaced by the next job that ends and dropped when a client reads it
//! without `--keep-completed`, so it never accumulates.
//!
//! No `JOB_COMPLETED` event is raised for a save: libvirt's QEMU driver
//! records the completed statistics of a save (and managed save) but
//! raises `VIR_DOMAIN_EVENT_ID_JOB_COMPLETED` only when a migration or a
//! backup job ends; migrations raise it (`jobs::migration`).

use qmp::MigrationStatus;
use qmp::commands::MigrationInfo;
use serde::{Deserialize, Serialize};

use crate::state::{JobOperation, JobType};

/// `virDomainGetJobInfo` / `domjobinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStats {
    pub job_type: JobType,
    pub operation: Option<JobOperation>,
    pub elapsed_ms: u64,
    /// Guest memory moved by a migration-based job (the only data a save
    /// moves, so also its data totals).
    pub ram: RamStats,
    /// QEMU's migration status, when a migration-based job runs.
    pub status: Option<MigrationStatus>,
    /// Set for a job that ended: whether it completed, and why not.
    pub success: Option<bool>,
    pub error: Option<String>,
    /// The guest's downtime a completed migration measured, ms.
    pub downtime_ms: Option<u64>,
    /// Disks a running migration copies with the guest.
    pub disk: Option<DiskStats>,
}

/// Bytes of the disks a migration copies (its mirrors' progress, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub total: u64,
    pub processed: u64,
    pub remaining: u64,
}

impl JobStats {
    /// No job.
    pub fn none() -> Self {
        Self {
            job_type: JobType::None,
            operation: None,
            elapsed_ms: 0,
            ram: RamStats::default(),
            status: None,
            success: None,
            error: None,
            downtime_ms: None,
            disk: None,
        }
    }
}

/// Transfer counters of a migration-based job (save), from the `ram`
/// member of QEMU's `query-migrate` reply. Optional counters are absent
/// when QEMU did not report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RamStats {
    pub total: u64,
    pub transferred: u64,
    pub remaining: u64,
    /// Bytes per second (QEMU reports Mbit/s).
    pub bps: Option<u64>,
    /// Pages found to hold one repeated byte ("duplicate").
    pub constant: Option<u64>,
    pub normal: Option<u64>,
    pub normal_bytes: Option<u64>,
    /// Passes over guest memory ("dirty-sync-count").
    pub iteration: Option<u64>,
    pub page_size: Option<u64>,
}

impl RamStats {
    /// Reads the counters of a `query-migrate` reply; `None` when it has
    /// no `ram` member (QEMU omits it before setup and after a cancel).
    pub(crate) fn from_query_migrate(reply: &MigrationInfo) -> Option<Self> {
        let ram = reply.ram.as_ref()?;
        Some(Self {
            total: ram.total.unwrap_or(0),
            transferred: ram.transferred.unwrap_or(0),
            remaining: ram.remaining.unwrap_or(0),
            bps: ram.mbps.and_then(mbps_to_bps),
            constant: ram.duplicate,
            normal: ram.normal,
            normal_bytes: ram.normal_bytes,
            iteration: ram.dirty_sync_count,
            page_size: ram.page_size.filter(|&p| p > 0),
        })
    }
}

/// Mbit/s (decimal, as QEMU computes it) to bytes/s; nonsense is dropped.
fn mbps_to_bps(mbps: f64) -> Option<u64> {
    (mbps.is_finite() && mbps > 0.0).then_some((mbps * 125_000.0) as u64)
}

/// How an async job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobEnd {
    Completed,
    Failed,
    Cancelled,
}

impl JobEnd {
    pub(crate) fn job_type(self) -> JobType {
        match self {
            JobEnd::Completed => JobType::Completed,
            JobEnd::Failed => JobType::Failed,
            JobEnd::Cancelled => JobType::Cancelled,
        }
    }
}

/// Statistics of the last async job that ended (`domjobinfo --completed`).
/// Persisted in the status file, so new fields must default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedJob {
    pub end: JobEnd,
    /// What the job did (persisted by name, as it always was).
    pub operation: JobOperation,
    pub elapsed_ms: u64,
    #[serde(default)]
    pub ram: RamStats,
    /// Why it did not complete.
    #[serde(default)]
    pub error: Option<String>,
    /// The guest's downtime a migration measured (QEMU's `downtime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
}

impl CompletedJob {
    /// The record of a job doing `operation`, started at `started`, that
    /// ended with `res` (an abort is Cancelled, any other error Failed).
    pub(crate) fn ended(
        operation: JobOperation,
        started: std::time::SystemTime,
        res: &crate::Result<RamStats>,
    ) -> Self {
        match res {
            Ok(ram) => Self::failed_with(operation, started, *ram, None),
            Err(e) => Self::failed_with(operation, started, RamStats::default(), Some(e)),
        }
    }

    /// The same, for a job that failed with `failure` if any; `ram`
    /// counts only when it completed.
    pub(crate) fn failed_with(
        operation: JobOperation,
        started: std::time::SystemTime,
        ram: RamStats,
        failure: Option<&crate::Error>,
    ) -> Self {
        let end = match failure {
            None => JobEnd::Completed,
            Some(crate::Error::Aborted(_)) => JobEnd::Cancelled,
            Some(_) => JobEnd::Failed,
        };
        CompletedJob {
            end,
            operation,
            elapsed_ms: elapsed_ms(started),
            ram: if failure.is_none() {
                ram
            } else {
                RamStats::default()
            },
            error: failure.map(ToString::to_string),
            downtime_ms: None,
        }
    }

    /// The record as `virDomainGetJobStats` reports it.
    pub fn stats(&self) -> JobStats {
        JobStats {
            job_type: self.end.job_type(),
            operation: Some(self.operation),
            elapsed_ms: self.elapsed_ms,
            ram: self.ram,
            status: None,
            success: Some(self.end == JobEnd::Completed),
            error: self.error.clone(),
            downtime_ms: self.downtime_ms,
            disk: None,
        }
    }
}

/// Milliseconds from `started` until now (0 if the clock went back).
pub(crate) fn elapsed_ms(started: std::time::SystemTime) -> u64 {
    started
        .elapsed()
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(v: serde_json::Value) -> MigrationInfo {
        serde_json::from_value(v).expect("a query-migrate reply")
    }

    #[test]
    fn ram_stats_from_query_migrate() {
        let reply = reply(json!({"status": "completed", "ram": {
            "total": 1000, "transferred": 900, "remaining": 0, "mbps": 8.0,
            "duplicate": 5, "normal": 2, "normal-bytes": 8192,
            "dirty-sync-count": 3, "page-size": 4096}}));
        let r = RamStats::from_query_migrate(&reply).expect("ram");
        assert_eq!((r.total, r.transferred, r.remaining), (1000, 900, 0));
        assert_eq!(r.bps, Some(1_000_000));
        assert_eq!(r.constant, Some(5));
        assert_eq!(r.normal_bytes, Some(8192));
        assert_eq!(r.iteration, Some(3));
        assert_eq!(r.page_size, Some(4096));
    }

    #[test]
    fn hostile_or_missing_ram_is_not_trusted() {
        assert_eq!(
            RamStats::from_query_migrate(&reply(json!({"status": "cancelled"}))),
            None
        );
        let odd =
            reply(json!({"ram": {"total": -1, "transferred": "x", "mbps": -3.0, "page-size": 0}}));
        let r = RamStats::from_query_migrate(&odd).expect("ram");
        assert_eq!(r, RamStats::default());
    }

    #[test]
    fn completed_record_reports_its_end() {
        let mut c = CompletedJob {
            end: JobEnd::Completed,
            operation: JobOperation::Save,
            elapsed_ms: 12,
            ram: RamStats::default(),
            error: None,
            downtime_ms: None,
        };
        let s = c.stats();
        assert_eq!(s.job_type, JobType::Completed);
        assert_eq!(s.success, Some(true));
        c.end = JobEnd::Cancelled;
        c.error = Some("save job cancelled".into());
        let s = c.stats();
        assert_eq!(s.job_type as i32, 5);
        assert_eq!(s.success, Some(false));
        assert_eq!(s.error.as_deref(), Some("save job cancelled"));
        assert_eq!(JobEnd::Failed.job_type() as i32, 4);
    }
}
