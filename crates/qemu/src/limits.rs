//! The open-file limit a process driving many VMs needs.
//!
//! Each running VM holds about two descriptors (monitor socket, pidfd) and
//! each client of the daemon one; the usual soft limit of 1,024 would stop
//! the daemon near 500 VMs. Like libvirtd under systemd, the daemon raises
//! the soft limit to the hard limit at start-up; the test harness and the
//! bench call the same function for their own many connections.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the limit
/// now in force.
pub fn raise_nofile() -> nix::Result<u64> {
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
