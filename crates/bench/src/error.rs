//! What can go wrong in a bench step. A failed step becomes an `error`
//! row in the results; the run goes on.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// Starting, stopping or observing a daemon or a process.
    #[error(transparent)]
    Harness(#[from] testkit::Error),
    #[error("{what}: {source}")]
    Rpc {
        what: String,
        #[source]
        source: rpc::ClientError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    /// A fault injector or script answered, but not with success.
    #[error("{what}: {answer}")]
    Refused { what: String, answer: String },
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{failed} of {total} VMs failed to start, e.g. {first}")]
    Start {
        failed: usize,
        total: usize,
        first: String,
    },
    #[error("a bench task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A combination the bench does not measure.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl BenchError {
    pub(crate) fn rpc(what: impl Into<String>) -> impl FnOnce(rpc::ClientError) -> BenchError {
        let what = what.into();
        move |source| BenchError::Rpc { what, source }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }

    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Json { what, source }
    }
}

pub(crate) type BenchResult<T> = Result<T, BenchError>;
