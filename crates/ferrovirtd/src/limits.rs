//! Process limits the daemon needs for its scale.
//!
//! Each running VM holds about two descriptors (monitor socket, pidfd) and
//! each client one; the usual soft limit of 1,024 would stop the daemon near
//! 500 VMs. Like libvirtd under systemd, raise the soft limit to the hard
//! limit at start-up.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the limit
/// now in force.
pub(crate) fn raise_nofile() -> nix::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_reaches_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        assert_eq!(raise_nofile().expect("raise"), hard);
    }
}
