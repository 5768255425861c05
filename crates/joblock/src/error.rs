//! Errors of the lock, and the holder snapshot they carry.
//!
//! The point of the timeout error is to be actionable: libvirt's "cannot
//! acquire state change lock" says neither who holds the lock nor for how
//! long, so an operator cannot tell a stuck migration from a busy stats
//! client. Ours names every holder, its owner and how long it has held.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::kind::{JobId, JobKind};

/// One holder of the lock, as seen at the moment of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderInfo {
    /// The job's identity.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// Who asked for it, e.g. "remote DOMAIN_SAVE from client 3".
    pub owner: String,
    /// When it was granted.
    pub since: Instant,
    /// How long it had been held when the snapshot was taken.
    pub held_for: Duration,
}

impl fmt::Display for HolderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (owner '{}') for {}",
            self.kind,
            self.owner,
            HumanDuration(self.held_for)
        )
    }
}

/// Why an acquire failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The deadline passed before the job could be granted.
    #[error(
        "cannot acquire job lock for {wanted} within {}: {}",
        HumanDuration(*.waited),
        Blockers::new(.holders, *.waiters_ahead)
    )]
    Timeout {
        /// The job that was asked for.
        wanted: JobKind,
        /// How long the caller waited.
        waited: Duration,
        /// Who held the lock when the deadline passed.
        holders: Vec<HolderInfo>,
        /// How many earlier waiters were still queued ahead of this one.
        waiters_ahead: usize,
    },
    /// The lock was closed because its domain no longer exists
    /// (see [`JobLock::close`](crate::JobLock::close)).
    #[error("cannot acquire job lock for {wanted}: {reason}")]
    Closed {
        /// The job that was asked for.
        wanted: JobKind,
        /// The reason given to `close`.
        reason: String,
    },
    /// A nested job was asked for, but the domain was destroyed while its
    /// async job ran: the QEMU the async job was driving is gone, and any
    /// monitor work would be against a dead (or, later, a different) process.
    #[error("cannot start {wanted}: the domain was destroyed while the async job ran")]
    Destroyed {
        /// The nested job that was asked for.
        wanted: JobKind,
    },
}

impl JobError {
    /// The job that was asked for.
    pub fn wanted(&self) -> JobKind {
        match self {
            JobError::Timeout { wanted, .. }
            | JobError::Closed { wanted, .. }
            | JobError::Destroyed { wanted } => *wanted,
        }
    }
}

/// At most this many holders are spelled out in a timeout message; with many
/// concurrent queries the message would otherwise grow without bound.
const MAX_HOLDERS_SHOWN: usize = 4;

struct Blockers<'a> {
    holders: &'a [HolderInfo],
    waiters_ahead: usize,
}

impl<'a> Blockers<'a> {
    fn new(holders: &'a [HolderInfo], waiters_ahead: usize) -> Self {
        Blockers {
            holders,
            waiters_ahead,
        }
    }
}

impl fmt::Display for Blockers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holders.is_empty() {
            f.write_str("not held")?;
        } else {
            f.write_str("held by ")?;
            for (i, h) in self.holders.iter().take(MAX_HOLDERS_SHOWN).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{h}")?;
            }
            if self.holders.len() > MAX_HOLDERS_SHOWN {
                write!(f, " and {} more", self.holders.len() - MAX_HOLDERS_SHOWN)?;
            }
        }
        match self.waiters_ahead {
            0 => Ok(()),
            1 => f.write_str("; 1 earlier waiter queued ahead"),
            n => write!(f, "; {n} earlier waiters queued ahead"),
        }
    }
}

/// Durations as an operator wants to read them: "30s", "41s", "1.5s", "250ms".
pub(crate) struct HumanDuration(pub(crate) Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d >= Duration::from_secs(10) || (d >= Duration::from_secs(1) && d.subsec_millis() == 0) {
            write!(f, "{}s", d.as_secs())
        } else if d >= Duration::from_secs(1) {
            write!(f, "{}.{}s", d.as_secs(), d.subsec_millis() / 100)
        } else {
            write!(f, "{}ms", d.as_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{AsyncKind, NormalJob};

    fn holder(kind: JobKind, owner: &str, secs: u64) -> HolderInfo {
        HolderInfo {
            id: JobId(1),
            kind,
            owner: owner.to_owned(),
            since: Instant::now(),
            held_for: Duration::from_secs(secs),
        }
    }

    #[test]
    fn timeout_message_names_holder_and_duration() {
        let e = JobError::Timeout {
            wanted: JobKind::Normal(NormalJob::Suspend),
            waited: Duration::from_secs(30),
            holders: vec![holder(
                JobKind::Async(AsyncKind::Save),
                "remote DOMAIN_SAVE from client 3",
                41,
            )],
            waiters_ahead: 0,
        };
        assert_eq!(
            e.to_string(),
            "cannot acquire job lock for suspend within 30s: held by async job save \
             (owner 'remote DOMAIN_SAVE from client 3') for 41s"
        );
    }

    #[test]
    fn timeout_message_caps_holders_and_counts_waiters() {
        let q = JobKind::Normal(NormalJob::Query);
        let e = JobError::Timeout {
            wanted: JobKind::Destroy,
            waited: Duration::from_millis(1500),
            holders: (0..6).map(|i| holder(q, &format!("c{i}"), i)).collect(),
            waiters_ahead: 2,
        };
        let s = e.to_string();
        assert!(s.starts_with("cannot acquire job lock for destroy within 1.5s: held by query"));
        assert!(s.contains("(owner 'c3') for 3s and 2 more; 2 earlier waiters queued ahead"));
        assert!(!s.contains("c4"));
    }

    #[test]
    fn human_durations() {
        let f = |d| HumanDuration(d).to_string();
        assert_eq!(f(Duration::from_millis(250)), "250ms");
        assert_eq!(f(Duration::from_millis(2300)), "2.3s");
        assert_eq!(f(Duration::from_secs(2)), "2s");
        assert_eq!(f(Duration::from_millis(41_900)), "41s");
    }
}
