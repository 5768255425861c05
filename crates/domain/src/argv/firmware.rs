//! Firmware (`-bios`, UEFI pflash drives, secure boot) and `-boot`.

use serde_json::json;

use super::{Args, Ctx};
use crate::def::*;

pub(super) fn firmware(cx: &Ctx<'_>, a: &mut Args) {
    let os = &cx.def.os;
    let Some(loader) = &os.loader else {
        return;
    };
    let Some(path) = &loader.path else {
        return;
    };
    if loader.ltype != Some(LoaderType::Pflash) {
        a.opt("-bios", path.to_string_lossy());
        return;
    }
    pflash(
        a,
        0,
        &path.to_string_lossy(),
        loader.readonly != Some(false),
    );
    if let Some(nv) = os.nvram.as_ref().and_then(|n| n.path.as_ref()) {
        pflash(a, 1, &nv.to_string_lossy(), false);
    }
    if loader.secure == Some(true) {
        a.opt("-global", "driver=cfi.pflash01,property=secure,value=on");
    }
}

/// The two block nodes of pflash unit `n` (`-machine pflashN=` names the
/// format node).
fn pflash(a: &mut Args, n: u32, file: &str, readonly: bool) {
    let storage = format!("libvirt-pflash{n}-storage");
    a.opt(
        "-blockdev",
        json!({
            "driver": "file",
            "filename": file,
            "node-name": storage,
            "auto-read-only": true,
            "discard": "unmap",
        })
        .to_string(),
    );
    a.opt(
        "-blockdev",
        json!({
            "node-name": format!("libvirt-pflash{n}-format"),
            "read-only": readonly,
            "driver": "raw",
            "file": storage,
        })
        .to_string(),
    );
}

pub(super) fn boot(cx: &Ctx<'_>, a: &mut Args) {
    let os = &cx.def.os;
    let mut b = String::new();
    if let Some(m) = os.bootmenu
        && m.enable
    {
        b.push_str("menu=on,");
        if let Some(t) = m.timeout {
            b.push_str(&format!("splash-time={t},"));
        }
    }
    if let Some(r) = os.bios.and_then(|b| b.reboot_timeout) {
        b.push_str(&format!("reboot-timeout={r},"));
    }
    b.push_str("strict=on");
    a.opt("-boot", b);
    if let Some(k) = &os.kernel {
        a.opt("-kernel", k.to_string_lossy());
    }
    if let Some(i) = &os.initrd {
        a.opt("-initrd", i.to_string_lossy());
    }
    if let Some(c) = &os.cmdline {
        a.opt("-append", c.clone());
    }
}
