//! Character devices: the ISA serial ports and virtio-serial channels.

use super::{Args, Ctx, check_socket_path, esc_path};
use crate::devices::address::Address;
use crate::devices::chardev::{ChrLog, ChrSource, UnixMode, channel_socket};
use crate::error::DomainXmlError;

/// `-chardev` for `src` with id `id`. `auto_path`: where a unix source
/// without a path listens.
fn chardev(
    cx: &Ctx<'_>,
    id: &str,
    src: &ChrSource,
    log: Option<&ChrLog>,
    auto_path: Option<&std::path::Path>,
) -> Result<String, DomainXmlError> {
    let mut s = match src {
        ChrSource::Pty => format!("pty,id={id}"),
        ChrSource::Null => format!("null,id={id}"),
        ChrSource::SpiceVmc => format!("spicevmc,id={id},name=vdagent"),
        ChrSource::File { path, append } => {
            let mut s = format!("file,id={id},path={}", esc_path(path));
            if let Some(a) = append {
                s.push_str(if *a { ",append=on" } else { ",append=off" });
            }
            s
        }
        ChrSource::Unix { path, mode } => {
            let p = path.as_deref().or(auto_path).ok_or_else(|| {
                DomainXmlError::structure(format!("chardev {id} has no socket path"))
            })?;
            check_socket_path("channel socket", p)?;
            let bound = cx.launch.bound_sockets.iter().find(|(b, _)| b == p);
            let mut s = match bound {
                Some((_, fd)) if *mode == UnixMode::Bind => format!("socket,id={id},fd={fd}"),
                _ => format!("socket,id={id},path={}", esc_path(p)),
            };
            if *mode == UnixMode::Bind {
                s.push_str(",server=on,wait=off");
            }
            s
        }
    };
    if let Some(l) = log {
        s.push_str(&format!(",logfile={}", esc_path(&l.file)));
        if let Some(ap) = l.append {
            s.push_str(if ap {
                ",logappend=on"
            } else {
                ",logappend=off"
            });
        }
    }
    Ok(s)
}

pub(super) fn serials(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    for (i, s) in cx.def.devices.serials.iter().enumerate() {
        let id = format!("charserial{i}");
        a.opt(
            "-chardev",
            chardev(cx, &id, &s.source, s.log.as_ref(), None)?,
        );
        a.device(format!(
            "isa-serial,chardev={id},id=serial{i},index={}",
            s.port
        ));
    }
    Ok(())
}

pub(super) fn channels(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    for (i, ch) in cx.def.devices.channels.iter().enumerate() {
        let id = format!("charchannel{i}");
        let auto = channel_socket(&cx.launch.domain_run_dir, i, ch);
        a.opt(
            "-chardev",
            chardev(cx, &id, &ch.source, ch.log.as_ref(), Some(&auto))?,
        );
        let Some(Address::VirtioSerial(addr)) = ch.address else {
            return Err(DomainXmlError::structure(format!(
                "channel {i} has no virtio-serial address"
            )));
        };
        let mut dev = format!(
            "virtserialport,bus=virtio-serial{}.{},nr={},chardev={id},id=channel{i}",
            addr.controller, addr.bus, addr.port
        );
        if let Some(n) = &ch.name {
            dev.push_str(&format!(",name={n}"));
        }
        a.device(dev);
    }
    Ok(())
}
