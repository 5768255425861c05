//! IPv4 subnets and MAC addresses, the two value types every part of the
//! driver speaks.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet: an address and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// `None` when `prefix` is over 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then_some(Self { addr, prefix })
    }

    pub fn mask_bits(self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p)),
        }
    }

    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.network())
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(self, other: Subnet) -> bool {
        let mask = self.mask_bits() & other.mask_bits();
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// Prefix length of a contiguous netmask, `None` when it has holes.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random address in QEMU's 52:54:00 range, as libvirt generates
    /// them for bridges and guests.
    pub fn generate() -> Self {
        let r = uuid::Uuid::new_v4().into_bytes();
        Self([0x52, 0x54, 0x00, r[0], r[1], r[2]])
    }

    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = ();

    /// Six colon-separated hex octets (one or two digits each).
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in &mut out {
            let p = parts.next().ok_or(())?;
            if p.is_empty() || p.len() > 2 {
                return Err(());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s = Subnet::new("192.168.122.1".parse().unwrap(), 24).unwrap();
        assert_eq!(s.network(), Ipv4Addr::new(192, 168, 122, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(192, 168, 122, 255));
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(s.contains(Ipv4Addr::new(192, 168, 122, 254)));
        assert!(!s.contains(Ipv4Addr::new(192, 168, 123, 1)));
        let wide = Subnet::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap();
        assert!(s.overlaps(wide) && wide.overlaps(s));
        let other = Subnet::new(Ipv4Addr::new(192, 168, 123, 0), 24).unwrap();
        assert!(!s.overlaps(other));
        assert_eq!(s.to_string(), "192.168.122.0/24");
        assert!(Subnet::new(Ipv4Addr::LOCALHOST, 33).is_none());
        assert_eq!(
            Subnet::new(Ipv4Addr::UNSPECIFIED, 0).unwrap().mask_bits(),
            0
        );
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(netmask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn macs() {
        let m: MacAddr = "52:54:00:AB:0c:1".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:0c:01");
        assert!("52:54:00:ab:0c".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:0c:01:02".parse::<MacAddr>().is_err());
        assert!("zz:54:00:ab:0c:01".parse::<MacAddr>().is_err());
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        let g = MacAddr::generate();
        assert_eq!(&g.0[..3], &[0x52, 0x54, 0x00]);
        assert!(!g.is_multicast());
    }
}
