use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// What went wrong in a harness step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not happen within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{binary} exited during start-up ({status}); its log is {}", log.display())]
    ExitedEarly {
        binary: PathBuf,
        status: ExitStatus,
        log: PathBuf,
    },
    /// An outside program or file the harness needs is not installed.
    #[error("{what} is missing: {remedy}")]
    Missing { what: String, remedy: String },
    #[error("{command} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    CommandFailed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Rpc {
        what: String,
        #[source]
        source: rpc::ClientError,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn rpc(what: impl Into<String>) -> impl FnOnce(rpc::ClientError) -> Error {
        let what = what.into();
        move |source| Error::Rpc { what, source }
    }
}
