//! What a network is made of on the host: the bridge and its address
//! (netlink), dnsmasq (a supervised child), the firewall (nftables), taps
//! and traffic shaping (tc). Nothing here knows about network objects or
//! jobs; the driver composes these pieces.

pub(crate) mod cmd;
pub(crate) mod dnsmasq;
pub(crate) mod link;
pub(crate) mod nft;
pub(crate) mod proc;
pub(crate) mod routes;
pub(crate) mod tap;
pub(crate) mod tc;
