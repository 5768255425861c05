//! `<os>`: machine type, firmware (BIOS, UEFI with its loader and NVRAM),
//! boot order and menu, SMBIOS mode, direct kernel boot.

use std::path::PathBuf;

use crate::def::MachineFamily;
use crate::error::DomainXmlError;
use crate::values::{
    check_singletons, named, named_attr, named_enum, parse_abs_path, parse_yes_no, simple_text,
    uint_attr, yes_no, yes_no_attr,
};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<boot dev>`.
    pub enum BootDev {
        Hd = "hd",
        Cdrom = "cdrom",
        Network = "network",
    }
}

named_enum! {
    /// `<os firmware>`: autoselection from the installed descriptors.
    pub enum Firmware {
        Bios = "bios",
        Efi = "efi",
    }
}

named_enum! {
    /// `<loader type>`.
    pub enum LoaderType {
        Rom = "rom",
        Pflash = "pflash",
    }
}

named_enum! {
    /// `<firmware><feature name>`: what autoselection must (or must not)
    /// pick.
    pub enum FirmwareFeature {
        EnrolledKeys = "enrolled-keys",
        SecureBoot = "secure-boot",
    }
}

named_enum! {
    /// `<smbios mode>`.
    pub enum SmbiosMode {
        Emulate = "emulate",
        Host = "host",
        Sysinfo = "sysinfo",
    }
}

/// `<loader>`: the firmware image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoaderDef {
    pub path: Option<PathBuf>,
    pub readonly: Option<bool>,
    /// Secure boot (needs SMM, so q35).
    pub secure: Option<bool>,
    pub ltype: Option<LoaderType>,
}

/// `<nvram>`: the per-domain UEFI variable store and the template it is
/// copied from when it does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NvramDef {
    pub path: Option<PathBuf>,
    pub template: Option<PathBuf>,
}

/// `<bootmenu enable timeout>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootMenu {
    pub enable: bool,
    /// Milliseconds.
    pub timeout: Option<u32>,
}

/// `<bios useserial rebootTimeout>` (SeaBIOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BiosDef {
    pub useserial: Option<bool>,
    /// Milliseconds before a failed boot is retried; -1 never.
    pub reboot_timeout: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsDef {
    /// As written; `None` means q35 (resolved against EmulatorCaps by
    /// `build_argv`, or persistently by `DomainDef::resolve_machine`).
    pub machine: Option<String>,
    pub firmware: Option<Firmware>,
    /// `<firmware><feature>`: requirements on the autoselected firmware,
    /// and after selection what it has.
    pub firmware_features: Vec<(FirmwareFeature, bool)>,
    pub loader: Option<LoaderDef>,
    pub nvram: Option<NvramDef>,
    /// Legacy `<boot dev>` order. Empty when devices carry `<boot order>`;
    /// `[Hd]` when neither is given (libvirt's default).
    pub boot_devs: Vec<BootDev>,
    pub bootmenu: Option<BootMenu>,
    pub bios: Option<BiosDef>,
    pub smbios: Option<SmbiosMode>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
}

impl OsDef {
    pub fn family(&self) -> MachineFamily {
        self.machine
            .as_deref()
            .and_then(MachineFamily::of)
            .unwrap_or(MachineFamily::Q35)
    }

    /// UEFI: autoselected, or a pflash loader given by path.
    pub fn is_uefi(&self) -> bool {
        self.firmware == Some(Firmware::Efi)
            || self
                .loader
                .as_ref()
                .is_some_and(|l| l.ltype == Some(LoaderType::Pflash))
    }

    /// Whether secure boot is asked for (loader or firmware feature).
    pub fn wants_secure_boot(&self) -> Option<bool> {
        self.loader.as_ref().and_then(|l| l.secure).or_else(|| {
            self.firmware_features
                .iter()
                .find(|(f, _)| *f == FirmwareFeature::SecureBoot)
                .map(|(_, on)| *on)
        })
    }
}

const CHILDREN: &[&str] = &[
    "type", "boot", "bootmenu", "kernel", "initrd", "cmdline", "loader", "nvram", "firmware",
    "smbios", "bios",
];

pub(crate) fn parse_os(el: &XmlElement) -> Result<OsDef, DomainXmlError> {
    el.check_attrs("os", &["firmware"])?;
    el.check_children("os", CHILDREN)?;
    let single: Vec<&str> = CHILDREN.iter().copied().filter(|c| *c != "boot").collect();
    check_singletons(el, "os", &single)?;
    let mut os = OsDef {
        machine: parse_type(el)?,
        firmware: named_attr(el, "os", "firmware", Firmware::from_name)?,
        ..OsDef::default()
    };
    parse_boot(el, &mut os)?;
    parse_firmware(el, &mut os)?;
    parse_direct_boot(el, &mut os)?;
    os.smbios = match el.child("smbios") {
        Some(s) => {
            s.check_attrs("os/smbios", &["mode"])?;
            s.check_children("os/smbios", &[])?;
            let m = named(
                "smbios mode",
                s.req_attr("os/smbios", "mode")?,
                SmbiosMode::from_name,
            )?;
            if m == SmbiosMode::Host {
                return Err(DomainXmlError::unsupported_because(
                    "smbios mode",
                    "host",
                    "copying the host's SMBIOS tables is not supported; use mode='sysinfo'",
                ));
            }
            Some(m)
        }
        None => None,
    };
    Ok(os)
}

fn parse_type(el: &XmlElement) -> Result<Option<String>, DomainXmlError> {
    let t = el
        .child("type")
        .ok_or_else(|| DomainXmlError::structure("missing <os><type>"))?;
    t.check_attrs("os/type", &["arch", "machine"])?;
    t.check_children("os/type", &[])?;
    let ty = t.text();
    if ty.trim() != "hvm" {
        return Err(DomainXmlError::OsType(ty.trim().to_string()));
    }
    if let Some(arch) = t.attr("arch")
        && arch != "x86_64"
    {
        return Err(DomainXmlError::unsupported("os arch", arch));
    }
    let machine = t.attr("machine").map(str::to_string);
    if let Some(m) = &machine
        && MachineFamily::of(m).is_none()
    {
        return Err(DomainXmlError::unsupported_because(
            "machine type",
            m,
            "only pc (i440fx) and q35 machine types are supported",
        ));
    }
    Ok(machine)
}

fn parse_boot(el: &XmlElement, os: &mut OsDef) -> Result<(), DomainXmlError> {
    for c in el.children_named("boot") {
        c.check_attrs("os/boot", &["dev"])?;
        c.check_children("os/boot", &[])?;
        let dev = named(
            "os boot dev",
            c.req_attr("os/boot", "dev")?,
            BootDev::from_name,
        )?;
        if os.boot_devs.contains(&dev) {
            return Err(DomainXmlError::structure(format!(
                "boot dev '{}' listed twice",
                dev.as_str()
            )));
        }
        os.boot_devs.push(dev);
    }
    if let Some(c) = el.child("bootmenu") {
        const B: &str = "os/bootmenu";
        c.check_attrs(B, &["enable", "timeout"])?;
        c.check_children(B, &[])?;
        let timeout = uint_attr(c, B, "timeout")?;
        if timeout.is_some_and(|t| t > 65535) {
            return Err(DomainXmlError::invalid(
                "<os/bootmenu timeout>",
                timeout.unwrap_or(0).to_string(),
                "must be 0..65535 ms",
            ));
        }
        os.bootmenu = Some(BootMenu {
            enable: parse_yes_no("<os/bootmenu enable>", c.req_attr(B, "enable")?)?,
            timeout,
        });
    }
    if let Some(b) = el.child("bios") {
        os.bios = Some(parse_bios(b)?);
    }
    Ok(())
}

fn parse_bios(b: &XmlElement) -> Result<BiosDef, DomainXmlError> {
    const B: &str = "os/bios";
    b.check_attrs(B, &["useserial", "rebootTimeout"])?;
    b.check_children(B, &[])?;
    let reboot_timeout = match b.attr("rebootTimeout") {
        None => None,
        Some(v) => {
            let n: i32 = v.trim().parse().map_err(|_| {
                DomainXmlError::invalid("<os/bios rebootTimeout>", v, "expected -1..65535")
            })?;
            if !(-1..=65535).contains(&n) {
                return Err(DomainXmlError::invalid(
                    "<os/bios rebootTimeout>",
                    v,
                    "expected -1..65535",
                ));
            }
            Some(n)
        }
    };
    Ok(BiosDef {
        useserial: yes_no_attr(b, B, "useserial")?,
        reboot_timeout,
    })
}

fn parse_firmware(el: &XmlElement, os: &mut OsDef) -> Result<(), DomainXmlError> {
    if let Some(f) = el.child("firmware") {
        f.check_attrs("os/firmware", &[])?;
        f.check_children("os/firmware", &["feature"])?;
        for feat in f.children_named("feature") {
            const F: &str = "os/firmware/feature";
            feat.check_attrs(F, &["enabled", "name"])?;
            feat.check_children(F, &[])?;
            let name = named(
                "firmware feature",
                feat.req_attr(F, "name")?,
                FirmwareFeature::from_name,
            )?;
            let on = parse_yes_no(
                "<os/firmware/feature enabled>",
                feat.req_attr(F, "enabled")?,
            )?;
            if os.firmware_features.iter().any(|(n, _)| *n == name) {
                return Err(DomainXmlError::structure(format!(
                    "firmware feature '{}' listed twice",
                    name.as_str()
                )));
            }
            os.firmware_features.push((name, on));
        }
        if os.firmware != Some(Firmware::Efi) && !os.firmware_features.is_empty() {
            return Err(DomainXmlError::structure(
                "<firmware><feature> needs <os firmware='efi'>",
            ));
        }
    }
    if let Some(l) = el.child("loader") {
        os.loader = Some(parse_loader(l)?);
    }
    if let Some(n) = el.child("nvram") {
        os.nvram = Some(parse_nvram(n)?);
    }
    Ok(())
}

fn parse_loader(l: &XmlElement) -> Result<LoaderDef, DomainXmlError> {
    const L: &str = "os/loader";
    l.check_attrs(L, &["readonly", "secure", "type", "format"])?;
    l.check_children(L, &[])?;
    if let Some(f) = l.attr("format")
        && f != "raw"
    {
        return Err(DomainXmlError::unsupported("loader format", f));
    }
    let text = l.text();
    let path = match text.trim() {
        "" => None,
        p => Some(parse_abs_path("<os/loader>", p)?),
    };
    Ok(LoaderDef {
        path,
        readonly: yes_no_attr(l, L, "readonly")?,
        secure: yes_no_attr(l, L, "secure")?,
        ltype: named_attr(l, L, "type", LoaderType::from_name)?,
    })
}

fn parse_nvram(n: &XmlElement) -> Result<NvramDef, DomainXmlError> {
    const N: &str = "os/nvram";
    n.check_attrs(N, &["template", "format"])?;
    n.check_children(N, &[])?;
    if let Some(f) = n.attr("format")
        && f != "raw"
    {
        return Err(DomainXmlError::unsupported("nvram format", f));
    }
    let text = n.text();
    Ok(NvramDef {
        path: match text.trim() {
            "" => None,
            p => Some(parse_abs_path("<os/nvram>", p)?),
        },
        template: n
            .attr("template")
            .map(|t| parse_abs_path("<os/nvram template>", t))
            .transpose()?,
    })
}

fn parse_direct_boot(el: &XmlElement, os: &mut OsDef) -> Result<(), DomainXmlError> {
    if let Some(k) = el.child("kernel") {
        os.kernel = Some(parse_abs_path(
            "<os/kernel>",
            simple_text(k, "os/kernel")?.trim(),
        )?);
    }
    if let Some(i) = el.child("initrd") {
        os.initrd = Some(parse_abs_path(
            "<os/initrd>",
            simple_text(i, "os/initrd")?.trim(),
        )?);
    }
    if let Some(c) = el.child("cmdline") {
        os.cmdline = Some(simple_text(c, "os/cmdline")?);
    }
    if os.kernel.is_none() && (os.initrd.is_some() || os.cmdline.is_some()) {
        return Err(DomainXmlError::structure(
            "<initrd> and <cmdline> require <kernel>",
        ));
    }
    Ok(())
}

pub(crate) fn format_os(w: &mut XmlWriter, os: &OsDef) {
    let attrs: Vec<(&str, String)> = os
        .firmware
        .map(|f| ("firmware", f.as_str().to_string()))
        .into_iter()
        .collect();
    w.open("os", &attrs);
    let mut t = vec![("arch", "x86_64".to_string())];
    if let Some(m) = &os.machine {
        t.push(("machine", m.clone()));
    }
    w.text_elem("type", &t, "hvm");
    format_firmware(w, os);
    if let Some(k) = &os.kernel {
        w.text_elem("kernel", &[], &k.to_string_lossy());
    }
    if let Some(i) = &os.initrd {
        w.text_elem("initrd", &[], &i.to_string_lossy());
    }
    if let Some(c) = &os.cmdline {
        w.text_elem("cmdline", &[], c);
    }
    for b in &os.boot_devs {
        w.empty("boot", &[("dev", b.as_str().into())]);
    }
    format_boot_extras(w, os);
    w.close("os");
}

fn format_firmware(w: &mut XmlWriter, os: &OsDef) {
    if !os.firmware_features.is_empty() {
        w.open("firmware", &[]);
        for (f, on) in &os.firmware_features {
            w.empty(
                "feature",
                &[("enabled", yes_no(*on)), ("name", f.as_str().into())],
            );
        }
        w.close("firmware");
    }
    if let Some(l) = &os.loader {
        let mut a = Vec::new();
        if let Some(r) = l.readonly {
            a.push(("readonly", yes_no(r)));
        }
        if let Some(s) = l.secure {
            a.push(("secure", yes_no(s)));
        }
        if let Some(t) = l.ltype {
            a.push(("type", t.as_str().to_string()));
        }
        match &l.path {
            Some(p) => w.text_elem("loader", &a, &p.to_string_lossy()),
            None => w.empty("loader", &a),
        }
    }
    if let Some(n) = &os.nvram {
        let a: Vec<(&str, String)> = n
            .template
            .iter()
            .map(|t| ("template", t.to_string_lossy().into_owned()))
            .collect();
        match &n.path {
            Some(p) => w.text_elem("nvram", &a, &p.to_string_lossy()),
            None => w.empty("nvram", &a),
        }
    }
}

fn format_boot_extras(w: &mut XmlWriter, os: &OsDef) {
    if let Some(m) = os.bootmenu {
        let mut a = vec![("enable", yes_no(m.enable))];
        if let Some(t) = m.timeout {
            a.push(("timeout", t.to_string()));
        }
        w.empty("bootmenu", &a);
    }
    if let Some(s) = os.smbios {
        w.empty("smbios", &[("mode", s.as_str().into())]);
    }
    if let Some(b) = os.bios {
        let mut a = Vec::new();
        if let Some(u) = b.useserial {
            a.push(("useserial", yes_no(u)));
        }
        if let Some(r) = b.reboot_timeout {
            a.push(("rebootTimeout", r.to_string()));
        }
        w.empty("bios", &a);
    }
}
