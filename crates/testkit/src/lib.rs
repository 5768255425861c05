//! The harness ferrovirt's end-to-end tests and its `bench` tool share.
//!
//! | module | what it gives |
//! |---|---|
//! | [`daemon`] | a `ferrovirtd` process on a root of its own: start, wait for its socket, stop, kill |
//! | [`processes`] | finding processes by an argument (the driver's own lookup) and killing them |
//! | [`procfs`] | figures of a process from `/proc`: RSS, threads, CPU time, PSS, fds, command line |
//! | [`wait`] | polling with a deadline, never a bare sleep |
//! | [`tools`] | the outside programs tests drive (`virsh`, libvirt-python, QEMU's tools), checked by name |
//! | [`guest`] | the tiny test guest (`guest/build.sh`) |
//! | [`binaries`] | this workspace's binaries (`ferrovirtd`, `qemu-sim`) beside the running test |
//! | [`control`] | one command on a line-oriented control socket (qemu-sim's `-sim-control`) |
//! | [`client`] | an `rpc::Client` opened the way libvirt's client library opens one |
//! | [`latency`] | percentiles of latency samples |
//! | [`accel`] | which accelerator tests ask real QEMU for |
//! | [`account`] | the unprivileged account QEMU runs as when a test sets the daemon's `user` |
//! | [`chaos`] | kill -9 of the daemon at random instants under random operations, and what must hold after each restart |
//!
//! Fallible functions return [`Error`], so the bench can report a failed
//! step and go on. The few that panic say so: they are the assertions of
//! tests (a missing tool, a missed deadline) and name what is missing.

pub mod accel;
pub mod account;
pub mod binaries;
pub mod chaos;
pub mod client;
pub mod control;
pub mod daemon;
mod error;
pub mod guest;
pub mod latency;
pub mod netns;
pub mod processes;
pub mod procfs;
pub mod tools;
pub mod wait;

pub use error::Error;
/// The open-file limit: the daemon's own function, so tests, the bench and
/// the daemon raise it the same way.
pub use qemu::raise_nofile;
