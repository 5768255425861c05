//! Tap devices for guest NICs: created on `/dev/net/tun` with the name
//! asked for (or the first free `vnetN`), attached to a bridge and up; the
//! open descriptor is what QEMU gets. The tap is not persistent: it goes
//! away when the last descriptor closes (QEMU exits), or when removed.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::addr::MacAddr;
use crate::host::link;
use crate::{Error, Result};

/// A tap with its queue descriptor.
#[derive(Debug)]
pub struct Tap {
    pub name: String,
    pub ifindex: u32,
    /// Opened with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`; hand it to QEMU
    /// (`-netdev tap,fd=N,vhost=...`).
    pub fd: OwnedFd,
}

/// Counters of a tap from the guest's side, as libvirt's `domifstat`
/// reports them: what the host's tap sends, the guest receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

/// Whether `name` is an interface name we accept (or a `%d` template).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.%".contains(&b))
        && name.matches('%').count() == name.matches("%d").count()
}

/// Opens the tun device and creates the tap `name` (`%d` lets the kernel
/// pick the number). Returns the descriptor and the name given.
fn open_tap(name: &str) -> Result<(OwnedFd, String)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| Error::io("cannot open /dev/net/tun", e))?;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq we pass, which lives
    // for the whole call; the descriptor is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(Error::io(
            format!("Unable to create tap device {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    let given: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    Ok((
        OwnedFd::from(file),
        String::from_utf8_lossy(&given).into_owned(),
    ))
}

/// The host side's MAC: the guest's with the first byte set to 0xFE, as
/// libvirt does, so the bridge never takes the guest's address as its own.
pub(crate) fn host_mac(guest: MacAddr) -> MacAddr {
    let mut m = guest.octets();
    m[0] = 0xfe;
    MacAddr(m)
}

/// Creates a tap named `name` (or `vnet%d`), gives it the host-side MAC
/// for `guest_mac`, attaches it to `bridge` (its MTU too) and brings it
/// up. On any failure nothing is left (the descriptor closes and the
/// non-persistent tap goes with it).
pub(crate) async fn create(
    name: Option<&str>,
    guest_mac: MacAddr,
    bridge: Option<&str>,
) -> Result<Tap> {
    let want = name.unwrap_or("vnet%d");
    if !valid_name(want) {
        return Err(Error::InvalidArg(format!(
            "invalid tap device name '{want}'"
        )));
    }
    let h = link::connect()?;
    if !want.contains('%') && link::get(&h, want).await?.is_some() {
        return Err(Error::OperationInvalid(format!(
            "tap device '{want}' already exists"
        )));
    }
    let (fd, name) = open_tap(want)?;
    let tap = link::get(&h, &name)
        .await?
        .ok_or_else(|| Error::Helper(format!("tap {name} vanished after creation")))?;
    link::set_mac(&h, tap.index, host_mac(guest_mac)).await?;
    if let Some(br) = bridge {
        let b = link::get(&h, br)
            .await?
            .filter(link::is_bridge)
            .ok_or_else(|| Error::OperationInvalid(format!("bridge '{br}' does not exist")))?;
        if let Some(mtu) = read_sys(br, "mtu").filter(|m| *m > 0) {
            link::set_mtu(&h, tap.index, u32::try_from(mtu).unwrap_or(1500)).await?;
        }
        link::set_master(&h, tap.index, b.index).await?;
    }
    link::set_up(&h, tap.index).await?;
    Ok(Tap {
        name,
        ifindex: tap.index,
        fd,
    })
}

/// Opens the existing (persistent) tap `name` as it is: no address,
/// bridge or state of it changes.
pub(crate) async fn open_existing(name: &str) -> Result<Tap> {
    if !valid_name(name) || name.contains('%') {
        return Err(Error::InvalidArg(format!(
            "invalid tap device name '{name}'"
        )));
    }
    let h = link::connect()?;
    let l = link::get(&h, name)
        .await?
        .ok_or_else(|| Error::OperationInvalid(format!("tap device '{name}' does not exist")))?;
    let (fd, _) = open_tap(name)?;
    Ok(Tap {
        name: name.to_owned(),
        ifindex: l.index,
        fd,
    })
}

/// Removes the tap `name` (a missing one is not an error).
pub(crate) async fn remove(name: &str) -> Result<()> {
    if !valid_name(name) || name.contains('%') {
        return Err(Error::InvalidArg(format!(
            "invalid tap device name '{name}'"
        )));
    }
    let h = link::connect()?;
    link::delete(&h, name).await
}

fn read_sys(dev: &str, file: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/{file}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The counters of tap `name`, from the guest's side.
pub(crate) fn stats(name: &str) -> Result<InterfaceStats> {
    if !valid_name(name)
        || name.contains('%')
        || !std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
    {
        return Err(Error::InvalidArg(format!(
            "invalid path, '{name}' is not a known interface"
        )));
    }
    let s = |f: &str| read_sys(name, &format!("statistics/{f}")).unwrap_or(0);
    Ok(InterfaceStats {
        rx_bytes: s("tx_bytes"),
        rx_packets: s("tx_packets"),
        rx_errs: s("tx_errors"),
        rx_drop: s("tx_dropped"),
        tx_bytes: s("rx_bytes"),
        tx_packets: s("rx_packets"),
        tx_errs: s("rx_errors"),
        tx_drop: s("rx_dropped"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs() {
        assert!(valid_name("vnet%d") && valid_name("tap-1.a"));
        assert!(!valid_name("bad name") && !valid_name("x%s") && !valid_name("0123456789abcdef"));
        let m: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(host_mac(m).to_string(), "fe:54:00:12:34:56");
    }
}
