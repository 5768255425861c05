//! Inputs, the TPM, redirected USB devices, the watchdog, the balloon and
//! RNGs.

use super::{Args, Ctx, check_socket_path, esc_path, tpm_socket};
use crate::devices::address::Address;
use crate::devices::misc::MemballoonModel;
use crate::devices::rng::{EgdSource, RngBackend};
use crate::error::DomainXmlError;

fn usb_port(addr: Option<&Address>) -> String {
    match addr {
        Some(Address::Usb(u)) => format!(
            ",bus={},port={}",
            super::controllers::usb_bus(u.bus),
            u.port
        ),
        _ => String::new(),
    }
}

pub(super) fn inputs(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    for i in 0..cx.def.devices.inputs.len() {
        if let Some(dev) = input_device(cx, i)? {
            a.device(dev);
        }
    }
    Ok(())
}

/// The `-device` options of input `i` (none for the builtin PS/2 ones).
pub(crate) fn input_device(cx: &Ctx<'_>, i: usize) -> Result<Option<String>, DomainXmlError> {
    let Some(x) = cx.def.devices.inputs.get(i) else {
        return Ok(None);
    };
    let Some(dev) = x.qemu_device() else {
        return Ok(None);
    };
    cx.require_device(dev, "input device", dev)?;
    let place = match x.address {
        Some(Address::Usb(_)) => usb_port(x.address.as_ref()),
        _ => cx.pci_opts(x.address.as_ref()),
    };
    Ok(Some(format!("{dev},id=input{}{place}", x.alias_number(i))))
}

pub(super) fn tpm(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let Some(t) = cx.def.devices.tpms.first() else {
        return Ok(());
    };
    cx.require_device(t.model.as_str(), "tpm model", t.model.as_str())?;
    let sock = tpm_socket(cx.launch);
    check_socket_path("swtpm socket", &sock)?;
    a.opt(
        "-chardev",
        format!("socket,id=chrtpm,path={}", esc_path(&sock)),
    );
    a.opt("-tpmdev", "emulator,id=tpm-tpm0,chardev=chrtpm");
    a.device(format!("{},tpmdev=tpm-tpm0,id=tpm0", t.model.as_str()));
    Ok(())
}

pub(super) fn redirdevs(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    for (i, r) in cx.def.devices.redirdevs.iter().enumerate() {
        cx.require_device("usb-redir", "redirdev bus", "usb")?;
        a.opt(
            "-chardev",
            format!("spicevmc,id=charredir{i},name=usbredir"),
        );
        a.device(format!(
            "usb-redir,chardev=charredir{i},id=redir{i}{}",
            usb_port(r.address.as_ref())
        ));
    }
    Ok(())
}

pub(super) fn watchdog(cx: &Ctx<'_>, a: &mut Args) {
    if let Some(dev) = watchdog_device(cx) {
        a.device(dev);
    }
}

/// The `-device` options of the watchdog, if there is one.
pub(crate) fn watchdog_device(cx: &Ctx<'_>) -> Option<String> {
    let w = cx.def.devices.watchdog.as_ref()?;
    Some(format!(
        "i6300esb,id=watchdog0{}",
        cx.pci_opts(w.address.as_ref())
    ))
}

pub(super) fn balloon(cx: &Ctx<'_>, a: &mut Args) {
    let Some(b) = &cx.def.devices.memballoon else {
        return;
    };
    if b.model != MemballoonModel::Virtio {
        return;
    }
    let mut s = "virtio-balloon-pci,id=balloon0".to_string();
    if let Some(d) = b.autodeflate {
        s.push_str(if d {
            ",deflate-on-oom=on"
        } else {
            ",deflate-on-oom=off"
        });
    }
    if let Some(f) = b.free_page_reporting {
        s.push_str(if f {
            ",free-page-reporting=on"
        } else {
            ",free-page-reporting=off"
        });
    }
    s.push_str(&cx.pci_opts(b.address.as_ref()));
    a.device(s);
}

pub(super) fn rngs(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    for (n, r) in cx.def.devices.rngs.iter().enumerate() {
        let i = r.alias_number(n);
        cx.require_device("virtio-rng-pci", "rng model", "virtio")?;
        match &r.backend {
            RngBackend::Random(p) => a.opt(
                "-object",
                format!("rng-random,id=objrng{i},filename={}", esc_path(p)),
            ),
            RngBackend::Egd(src) => {
                let c = match src {
                    EgdSource::Unix(p) => format!("socket,id=charrng{i},path={}", esc_path(p)),
                    EgdSource::Tcp { host, port } => {
                        format!("socket,id=charrng{i},host={host},port={port}")
                    }
                };
                a.opt("-chardev", c);
                a.opt(
                    "-object",
                    format!("rng-egd,id=objrng{i},chardev=charrng{i}"),
                );
            }
        }
        a.device(rng_device(cx, n));
    }
    Ok(())
}

/// The `-device` options of rng `n` (its backend is `objrngN`).
pub(crate) fn rng_device(cx: &Ctx<'_>, n: usize) -> String {
    let Some(r) = cx.def.devices.rngs.get(n) else {
        return String::new();
    };
    let i = r.alias_number(n);
    let mut dev = format!("virtio-rng-pci,rng=objrng{i},id=rng{i}");
    if let Some((bytes, period)) = r.rate {
        dev.push_str(&format!(
            ",max-bytes={bytes},period={}",
            period.unwrap_or(1000)
        ));
    }
    dev.push_str(&cx.pci_opts(r.address.as_ref()));
    dev
}
