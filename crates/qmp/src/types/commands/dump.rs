//! Guest memory dumps: `dump-guest-memory` run detached, its progress
//! (`query-dump`) and the `DUMP_COMPLETED` event's data.

use serde::{Deserialize, Serialize};

use super::{Command, Empty};
use crate::types::{lenient, string_enum};

string_enum! {
    /// Status of a detached dump (`DumpStatus`).
    pub enum DumpStatus {
        /// No dump has run.
        None = "none",
        /// Writing.
        Active = "active",
        /// Written.
        Completed = "completed",
        /// Stopped by an error.
        Failed = "failed",
    }
}

string_enum! {
    /// What `dump-guest-memory` writes (`DumpGuestMemoryFormat`).
    pub enum DumpFormat {
        /// An ELF core file.
        Elf = "elf",
        /// kdump, pages compressed with zlib.
        KdumpZlib = "kdump-zlib",
        /// kdump, pages compressed with LZO.
        KdumpLzo = "kdump-lzo",
        /// kdump, pages compressed with snappy.
        KdumpSnappy = "kdump-snappy",
        /// A Windows crash dump (Windows guests only).
        WinDmp = "win-dmp",
    }
}

/// `dump-guest-memory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpGuestMemory {
    /// Walk the guest's page tables (slow; off for a plain memory dump).
    pub paging: bool,
    /// Where to write: `fd:NAME` (a descriptor given with `getfd`) or
    /// `file:PATH`.
    pub protocol: String,
    /// Return at once and report the end with `DUMP_COMPLETED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detach: Option<bool>,
    /// The file format (ELF when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<DumpFormat>,
}
command!(DumpGuestMemory = "dump-guest-memory" => Empty);

no_args!(
    /// `query-dump`: how far a detached dump has got.
    QueryDump = "query-dump" => DumpQueryResult
);

/// The progress of a dump (`DumpQueryResult`). Counters of the wrong type
/// read as absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpQueryResult {
    pub status: DumpStatus,
    /// Bytes written so far.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub completed: Option<u64>,
    /// Bytes the dump will write.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub total: Option<u64>,
}

/// Data of `DUMP_COMPLETED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpCompletedData {
    /// The dump's final progress.
    pub result: DumpQueryResult,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dump_guest_memory_serializes_as_qemu_spells_it() {
        let cmd = DumpGuestMemory {
            paging: false,
            protocol: "fd:dump".into(),
            detach: Some(true),
            format: Some(DumpFormat::KdumpZlib),
        };
        assert_eq!(
            serde_json::to_value(&cmd).unwrap(),
            json!({"paging": false, "protocol": "fd:dump", "detach": true, "format": "kdump-zlib"})
        );
    }

    #[test]
    fn dump_progress_parses_and_tolerates_odd_counters() {
        let done: DumpCompletedData = serde_json::from_value(json!({
            "result": {"status": "failed", "completed": 4096, "total": "x"},
            "error": "disk full"
        }))
        .unwrap();
        assert_eq!(done.result.status, DumpStatus::Failed);
        assert_eq!(
            (done.result.completed, done.result.total),
            (Some(4096), None)
        );
        assert_eq!(done.error.as_deref(), Some("disk full"));
        let q: DumpQueryResult =
            serde_json::from_value(json!({"status": "someday", "completed": 1, "total": 2}))
                .unwrap();
        assert_eq!(q.status, DumpStatus::Other("someday".into()));
    }
}
