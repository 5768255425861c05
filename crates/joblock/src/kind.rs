//! What a job is: the vocabulary shared by the state machine, the lock and
//! the error messages.
//!
//! The split mirrors libvirt's two job slots so that the driver's code maps
//! one to one onto libvirt's semantics: a *normal* job ([`NormalJob`]) takes
//! the normal slot (shared for queries, exclusive otherwise); an *async* job
//! ([`AsyncKind`]) takes the async slot for a long time and does its monitor
//! work in *nested* jobs; *destroy* is special because it must never wait
//! behind ordinary work.

use std::fmt;

/// Identity of one request to the lock, unique per [`JobLock`](crate::JobLock)
/// and increasing in enqueue order.
///
/// It exists so that logs and `domjobinfo`-like output can tell two jobs of
/// the same kind and owner apart, and so that tests can check FIFO order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// The raw number, for logging.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A normal (non-async) job, tagged with the operation it performs.
///
/// The tag matters only for exclusive jobs: it is what an async job's
/// [`AllowList`] is written in terms of ("suspend and resume may run during a
/// migration, other modifications must wait").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NormalJob {
    /// Read-only query of live state. Shared: any number run together.
    Query,
    /// Any modification not covered by a more specific tag. Exclusive.
    Modify,
    /// Pause the vCPUs. Exclusive; migrations usually allow it.
    Suspend,
    /// Resume the vCPUs. Exclusive; migrations usually allow it.
    Resume,
    /// Abort the running async job (`domjobabort`). Exclusive; it would be
    /// useless if the async job it aborts did not allow it.
    Abort,
    /// Tune the running migration (max speed, downtime, ...). Exclusive.
    MigrationOp,
    /// Work on one volume of a storage pool (create, clone, wipe, resize,
    /// delete). Shared, so volumes are built in parallel, yet exclusive
    /// against changes of the pool itself (start, destroy, undefine), which
    /// are `Modify`.
    Volume,
}

impl NormalJob {
    /// All tags, for property tests and for building allow-lists.
    pub const ALL: [NormalJob; 7] = [
        NormalJob::Query,
        NormalJob::Modify,
        NormalJob::Suspend,
        NormalJob::Resume,
        NormalJob::Abort,
        NormalJob::MigrationOp,
        NormalJob::Volume,
    ];

    /// Whether this job may share the normal slot with other jobs of the same
    /// kind. Queries do (they read state and never change it), and so do
    /// volume jobs (each works on its own volume).
    pub fn is_shared(self) -> bool {
        matches!(self, NormalJob::Query | NormalJob::Volume)
    }

    const fn bit(self) -> u8 {
        match self {
            NormalJob::Query => 1 << 0,
            NormalJob::Modify => 1 << 1,
            NormalJob::Suspend => 1 << 2,
            NormalJob::Resume => 1 << 3,
            NormalJob::Abort => 1 << 4,
            NormalJob::MigrationOp => 1 << 5,
            NormalJob::Volume => 1 << 6,
        }
    }
}

impl fmt::Display for NormalJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NormalJob::Query => "query",
            NormalJob::Modify => "modify",
            NormalJob::Suspend => "suspend",
            NormalJob::Resume => "resume",
            NormalJob::Abort => "abort",
            NormalJob::MigrationOp => "migration operation",
            NormalJob::Volume => "volume",
        })
    }
}

/// The long-running jobs that hold the async slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AsyncKind {
    /// Outgoing live migration.
    MigrationOut,
    /// Incoming live migration.
    MigrationIn,
    /// `virsh save` / managed save.
    Save,
    /// `virsh dump` (core dump).
    Dump,
    /// Snapshot creation.
    Snapshot,
    /// Starting the domain (QEMU launch through first resume).
    Start,
    /// Restore from a saved image.
    Restore,
    /// Block copy / commit / pull / backup.
    BlockJob,
}

impl AsyncKind {
    /// All kinds, for property tests.
    pub const ALL: [AsyncKind; 8] = [
        AsyncKind::MigrationOut,
        AsyncKind::MigrationIn,
        AsyncKind::Save,
        AsyncKind::Dump,
        AsyncKind::Snapshot,
        AsyncKind::Start,
        AsyncKind::Restore,
        AsyncKind::BlockJob,
    ];
}

impl fmt::Display for AsyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AsyncKind::MigrationOut => "migration out",
            AsyncKind::MigrationIn => "migration in",
            AsyncKind::Save => "save",
            AsyncKind::Dump => "dump",
            AsyncKind::Snapshot => "snapshot",
            AsyncKind::Start => "start",
            AsyncKind::Restore => "restore",
            AsyncKind::BlockJob => "block job",
        })
    }
}

/// The set of normal jobs that may run beside an async job.
///
/// Destroy and the async job's own nested jobs are always allowed and are not
/// part of the list. A waiter whose job is not in the list cannot run until
/// the async job ends (or widens the list), so it does not hold up later
/// waiters that *are* allowed: that is what keeps queries flowing during a
/// migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AllowList(u8);

impl AllowList {
    /// Nothing but nested jobs and destroy may run beside the async job.
    pub const NONE: AllowList = AllowList(0);

    /// libvirt's default mask: queries, and abort so that the job can be
    /// cancelled (destroy is implicit).
    pub const DEFAULT: AllowList = AllowList::NONE
        .with(NormalJob::Query)
        .with(NormalJob::Abort);

    /// Every normal job.
    pub const ALL: AllowList = AllowList(0b111_1111);

    /// This list plus `job`.
    #[must_use]
    pub const fn with(self, job: NormalJob) -> AllowList {
        AllowList(self.0 | job.bit())
    }

    /// This list without `job`.
    #[must_use]
    pub const fn without(self, job: NormalJob) -> AllowList {
        AllowList(self.0 & !job.bit())
    }

    /// Whether `job` may run beside the async job.
    pub const fn contains(self, job: NormalJob) -> bool {
        self.0 & job.bit() != 0
    }

    /// The allowed jobs, in [`NormalJob::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = NormalJob> {
        NormalJob::ALL
            .into_iter()
            .filter(move |j| self.contains(*j))
    }
}

impl FromIterator<NormalJob> for AllowList {
    fn from_iter<I: IntoIterator<Item = NormalJob>>(iter: I) -> Self {
        iter.into_iter().fold(AllowList::NONE, AllowList::with)
    }
}

/// What a holder or waiter of the lock is doing, as reported in
/// [`HolderInfo`](crate::HolderInfo) and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A normal job.
    Normal(NormalJob),
    /// A nested job of the running async job `parent` (its monitor work).
    Nested {
        /// What the nested job does (informational; nested jobs are always
        /// exclusive on the normal slot).
        op: NormalJob,
        /// The async job it belongs to.
        parent: AsyncKind,
    },
    /// An async job.
    Async(AsyncKind),
    /// Destroy.
    Destroy,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobKind::Normal(op) => write!(f, "{op}"),
            JobKind::Nested { op, parent } => write!(f, "nested {op} of async job {parent}"),
            JobKind::Async(kind) => write!(f, "async job {kind}"),
            JobKind::Destroy => f.write_str("destroy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_with_and_without() {
        for job in NormalJob::ALL {
            assert!(AllowList::NONE.with(job).contains(job));
            assert!(!AllowList::ALL.without(job).contains(job));
        }
        assert_eq!(AllowList::ALL, NormalJob::ALL.into_iter().collect());
    }

    #[test]
    fn default_allows_query_and_abort_only() {
        let allowed: Vec<_> = AllowList::DEFAULT.iter().collect();
        assert_eq!(allowed, vec![NormalJob::Query, NormalJob::Abort]);
    }

    #[test]
    fn display_names() {
        assert_eq!(JobKind::Normal(NormalJob::Suspend).to_string(), "suspend");
        assert_eq!(
            JobKind::Async(AsyncKind::Save).to_string(),
            "async job save"
        );
        assert_eq!(
            JobKind::Nested {
                op: NormalJob::Query,
                parent: AsyncKind::MigrationOut
            }
            .to_string(),
            "nested query of async job migration out"
        );
        assert_eq!(JobKind::Destroy.to_string(), "destroy");
    }
}
