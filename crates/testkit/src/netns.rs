//! A network namespace a test creates and removes, so that everything a
//! networking test does (bridges, taps, addresses, dnsmasq, nftables, the
//! traffic itself) stays inside it and the host's own namespace is never
//! changed.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Error;

/// A named namespace (`ip netns add`), loopback up; deleted on drop,
/// after every process still in it is killed.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `fv<tag><pid><n>`; `tag` keeps names readable in `ip netns`.
    pub fn new(tag: &str) -> Result<NetNs, Error> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fv{tag}{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace; its stdout on success.
    pub fn exec(&self, argv: &[&str]) -> Result<String, Error> {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(argv);
        ip(&all)
    }

    /// Pids of the processes in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        ip(&["netns", "pids", &self.name])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = crate::processes::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(Error::io(format!("run ip {}", args.join(" "))))?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: format!("ip {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
