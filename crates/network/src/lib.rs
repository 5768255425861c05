//! The network driver: libvirt's virtual networks.
//!
//! A network is a Linux bridge with an IPv4 address (made over netlink),
//! a dnsmasq serving DHCP and DNS on it (a supervised child per network),
//! and nftables rules for NAT or routing (one chain set per network in a
//! table the daemon owns). The daemon's rules hold here too:
//!
//! - **queries never wait**: lookups, lists, XML and leases read a
//!   snapshot under a short lock; no job;
//! - **changes are jobs**: start, destroy, undefine, update and autostart
//!   take the network's FIFO-fair job lock with a deadline;
//! - **every helper is supervised**: nft and tc run with deadlines and
//!   bounded output; dnsmasq is watched through a pidfd and restarted with
//!   backoff, and the network reported degraded if it keeps dying;
//! - **nothing leaked, nothing duplicated**: a start records its intent
//!   before touching the host, so a daemon killed at any instant either
//!   re-adopts a network (its bridge, rules and the one dnsmasq of its
//!   configuration) or removes everything the record names.
//!
//! Guest NICs: [`NetworkDriver::create_tap`] gives the QEMU driver a tap
//! on a network's bridge, with its descriptor.
//!
//! Entry point: [`NetworkDriver::open`].

pub mod addr;
mod driver;
mod error;
pub mod events;
mod host;
mod leases;
mod lifecycle;
mod network;
mod readopt;
mod store;
mod supervise;
mod taps;
mod update;
pub mod xml;

pub use addr::{MacAddr, Subnet};
pub use driver::{NetworkConfig, NetworkDriver, NetworkFilter, RestartPolicy};
pub use error::{Error, Result};
pub use events::{NetworkEvent, NetworkLifecycle, NetworkListener};
pub use host::tap::{InterfaceStats, Tap};
pub use leases::{DhcpLease, IP_ADDR_TYPE_IPV4};
pub use network::{Health, Network, NetworkSummary};
pub use taps::{TapAttach, TapOptions, tap_counters};
pub use update::{Update, UpdateCommand, UpdateFlags, UpdateSection};
pub use xml::{Bandwidth, NetworkDef, Rate};
