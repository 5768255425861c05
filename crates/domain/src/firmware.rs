//! Firmware descriptors (QEMU's `docs/interop/firmware.json`, installed as
//! `/usr/share/qemu/firmware/*.json` by packages such as `ovmf`), and the
//! choice of one for `<os firmware='efi'>`.
//!
//! Plain data and pure functions: the driver reads the files (in QEMU's
//! search order) and hands them here; the choice is made once, when the
//! domain is defined, and written into the definition (loader, NVRAM
//! template and path, the features of what was chosen), so the guest keeps
//! its firmware when packages add others.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::def::{DomainDef, MachineFamily};
use crate::error::DomainXmlError;
use crate::os::{Firmware, FirmwareFeature, LoaderDef, LoaderType, NvramDef};

/// One descriptor, reduced to what selection and domain capabilities use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareDescriptor {
    /// The descriptor file (for messages).
    pub source: PathBuf,
    pub description: String,
    pub interface_types: Vec<String>,
    /// `flash` (pflash, with an NVRAM template) or `memory`.
    pub device: String,
    pub executable: PathBuf,
    pub nvram_template: Option<PathBuf>,
    /// (architecture, machine type globs).
    pub targets: Vec<(String, Vec<String>)>,
    pub features: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawDescriptor {
    #[serde(default)]
    description: String,
    interface_types: Vec<String>,
    mapping: RawMapping,
    #[serde(default)]
    targets: Vec<RawTarget>,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMapping {
    device: String,
    executable: Option<RawFile>,
    nvram_template: Option<RawFile>,
    /// `memory` mappings name their image here.
    filename: Option<String>,
}

#[derive(Deserialize)]
struct RawFile {
    filename: String,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize)]
struct RawTarget {
    architecture: String,
    #[serde(default)]
    machines: Vec<String>,
}

impl FirmwareDescriptor {
    /// Parses one descriptor file's JSON. Descriptors we cannot use (not
    /// raw, no executable) are errors the caller logs and skips.
    pub fn parse(source: &Path, json: &str) -> Result<Self, String> {
        let raw: RawDescriptor =
            serde_json::from_str(json).map_err(|e| format!("{}: {e}", source.display()))?;
        let exec = match (&raw.mapping.executable, &raw.mapping.filename) {
            (Some(f), _) => f,
            (None, Some(name)) => &RawFile {
                filename: name.clone(),
                format: None,
            },
            (None, None) => return Err(format!("{}: no executable", source.display())),
        };
        let raw_format = |f: &RawFile| f.format.as_deref().is_none_or(|x| x == "raw");
        if !raw_format(exec)
            || raw
                .mapping
                .nvram_template
                .as_ref()
                .is_some_and(|t| !raw_format(t))
        {
            return Err(format!(
                "{}: only raw images are supported",
                source.display()
            ));
        }
        Ok(FirmwareDescriptor {
            source: source.to_path_buf(),
            description: raw.description,
            interface_types: raw.interface_types,
            device: raw.mapping.device,
            executable: PathBuf::from(&exec.filename),
            nvram_template: raw
                .mapping
                .nvram_template
                .map(|t| PathBuf::from(t.filename)),
            targets: raw
                .targets
                .into_iter()
                .map(|t| (t.architecture, t.machines))
                .collect(),
            features: raw.features,
        })
    }

    pub fn is_uefi_flash(&self) -> bool {
        self.interface_types.iter().any(|t| t == "uefi") && self.device == "flash"
    }

    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether it runs x86_64 `machine` (a versioned name or an alias).
    pub fn supports_machine(&self, machine: &str) -> bool {
        let name = match MachineFamily::of(machine) {
            Some(MachineFamily::Q35) if !machine.starts_with("pc-q35-") => "pc-q35-0",
            Some(MachineFamily::I440fx) if !machine.starts_with("pc-i440fx-") => "pc-i440fx-0",
            _ => machine,
        };
        self.targets
            .iter()
            .filter(|(arch, _)| arch == "x86_64")
            .any(|(_, globs)| globs.iter().any(|g| glob_match(g, name)))
    }
}

/// Shell-style matching with `*` and `?` (what descriptors use).
fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Default NVRAM file of a domain: `DIR/NAME_VARS.fd`, as libvirt names it.
pub fn default_nvram_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}_VARS.fd"))
}

/// Whether `d` fits what the domain asks of its firmware.
fn fits(d: &FirmwareDescriptor, def: &DomainDef, machine: &str) -> bool {
    if !d.is_uefi_flash() || !d.supports_machine(machine) {
        return false;
    }
    let feature = |f: FirmwareFeature| {
        def.os
            .firmware_features
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(_, on)| *on)
    };
    let secure = def.os.wants_secure_boot();
    if secure.is_some_and(|want| want != d.has("secure-boot")) {
        return false;
    }
    if feature(FirmwareFeature::EnrolledKeys).is_some_and(|want| want != d.has("enrolled-keys")) {
        return false;
    }
    // A firmware that needs SMM cannot run with SMM turned off.
    !(d.has("requires-smm") && def.features.smm == Some(false))
}

/// The first descriptor (in the order given) that fits `def`.
pub fn select<'a>(
    descriptors: &'a [FirmwareDescriptor],
    def: &DomainDef,
) -> Option<&'a FirmwareDescriptor> {
    let machine = def.os.machine.as_deref().unwrap_or("q35");
    descriptors.iter().find(|d| fits(d, def, machine))
}

impl DomainDef {
    /// Makes the firmware concrete, as libvirt does at define time:
    /// `<os firmware='efi'>` picks a descriptor and records its loader,
    /// NVRAM template and features (and turns SMM on when it needs it); a
    /// UEFI loader gets its NVRAM file under `nvram_dir` and, when the
    /// loader is a known one, its template. Already concrete definitions
    /// (a dumpxml fed back) are left as they are.
    pub fn resolve_firmware(
        &mut self,
        descriptors: &[FirmwareDescriptor],
        nvram_dir: &Path,
    ) -> Result<(), DomainXmlError> {
        let autoselect = self.os.firmware == Some(Firmware::Efi)
            && self.os.loader.as_ref().is_none_or(|l| l.path.is_none());
        if autoselect {
            self.autoselect(descriptors)?;
        }
        if self.os.is_uefi() {
            self.fill_nvram(descriptors, nvram_dir);
        }
        check_secure_boot(self)
    }

    fn autoselect(&mut self, descriptors: &[FirmwareDescriptor]) -> Result<(), DomainXmlError> {
        let d = select(descriptors, self).ok_or_else(|| {
            DomainXmlError::NoFirmware(format!(
                "unable to find any firmware to satisfy 'efi' for machine '{}'{}",
                self.os.machine.as_deref().unwrap_or("q35"),
                if descriptors.is_empty() {
                    " (no firmware descriptors are installed; install the ovmf package)"
                } else {
                    ""
                }
            ))
        })?;
        let secure = d.has("secure-boot");
        self.os.loader = Some(LoaderDef {
            path: Some(d.executable.clone()),
            readonly: Some(true),
            secure: Some(secure),
            ltype: Some(LoaderType::Pflash),
        });
        let nvram = self.os.nvram.get_or_insert_with(NvramDef::default);
        if nvram.template.is_none() {
            nvram.template = d.nvram_template.clone();
        }
        self.os.firmware_features = vec![
            (FirmwareFeature::EnrolledKeys, d.has("enrolled-keys")),
            (FirmwareFeature::SecureBoot, secure),
        ];
        if d.has("requires-smm") && self.features.smm.is_none() {
            self.features.smm = Some(true);
        }
        Ok(())
    }

    fn fill_nvram(&mut self, descriptors: &[FirmwareDescriptor], nvram_dir: &Path) {
        let loader = self.os.loader.as_ref().and_then(|l| l.path.clone());
        let nvram = self.os.nvram.get_or_insert_with(NvramDef::default);
        if nvram.path.is_none() {
            nvram.path = Some(default_nvram_path(nvram_dir, &self.name));
        }
        if nvram.template.is_none() {
            nvram.template = descriptors
                .iter()
                .find(|d| Some(&d.executable) == loader.as_ref())
                .and_then(|d| d.nvram_template.clone());
        }
    }
}

/// Secure boot needs q35 and SMM, as in libvirt.
pub(crate) fn check_secure_boot(def: &DomainDef) -> Result<(), DomainXmlError> {
    let secure = def.os.loader.as_ref().and_then(|l| l.secure) == Some(true);
    if !secure {
        return Ok(());
    }
    if def.os.family() != MachineFamily::Q35 {
        return Err(DomainXmlError::unsupported_because(
            "secure boot on machine",
            def.os.machine.as_deref().unwrap_or("pc"),
            "secure boot is supported with q35 machine types only",
        ));
    }
    if def.features.smm != Some(true) {
        return Err(DomainXmlError::unsupported_because(
            "secure boot with smm",
            "off",
            "secure boot requires the SMM feature (<smm state='on'/>)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECURE: &str = r#"{"description":"s","interface-types":["uefi"],
        "mapping":{"device":"flash","executable":{"filename":"/fw/CODE.secboot.fd","format":"raw"},
        "nvram-template":{"filename":"/fw/VARS.ms.fd","format":"raw"}},
        "targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],
        "features":["enrolled-keys","requires-smm","secure-boot"],"tags":[]}"#;
    const PLAIN: &str = r#"{"description":"p","interface-types":["uefi"],
        "mapping":{"device":"flash","executable":{"filename":"/fw/CODE.fd","format":"raw"},
        "nvram-template":{"filename":"/fw/VARS.fd","format":"raw"}},
        "targets":[{"architecture":"x86_64","machines":["pc-i440fx-*","pc-q35-*"]}],
        "features":["acpi-s3"],"tags":[]}"#;

    fn descriptors() -> Vec<FirmwareDescriptor> {
        vec![
            FirmwareDescriptor::parse(Path::new("40.json"), SECURE).unwrap(),
            FirmwareDescriptor::parse(Path::new("60.json"), PLAIN).unwrap(),
        ]
    }

    #[test]
    fn globs() {
        assert!(glob_match("pc-q35-*", "pc-q35-7.2"));
        assert!(!glob_match("pc-q35-*", "pc-i440fx-7.2"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "ac"));
    }

    #[test]
    fn selection_follows_priority_and_requests() {
        let ds = descriptors();
        let def = |os: &str| {
            DomainDef::parse(&format!(
                "<domain type='qemu'><name>v</name><memory unit='MiB'>64</memory>{os}</domain>"
            ))
            .unwrap()
        };
        let q35 = def("<os firmware='efi'><type machine='q35'>hvm</type></os>");
        assert_eq!(select(&ds, &q35).unwrap().source, Path::new("40.json"));
        let pc = def("<os firmware='efi'><type machine='pc'>hvm</type></os>");
        assert_eq!(select(&ds, &pc).unwrap().source, Path::new("60.json"));
        let insecure = def(
            "<os firmware='efi'><type machine='q35'>hvm</type><firmware>\
             <feature enabled='no' name='secure-boot'/></firmware></os>",
        );
        assert_eq!(select(&ds, &insecure).unwrap().source, Path::new("60.json"));
        let mut d = def("<os firmware='efi'><type machine='q35'>hvm</type></os>");
        d.resolve_firmware(&ds, Path::new("/nv")).unwrap();
        assert_eq!(d.features.smm, Some(true));
        let nv = d.os.nvram.clone().unwrap();
        assert_eq!(nv.path.as_deref(), Some(Path::new("/nv/v_VARS.fd")));
        assert_eq!(nv.template.as_deref(), Some(Path::new("/fw/VARS.ms.fd")));
        let mut none = def("<os firmware='efi'><type machine='q35'>hvm</type></os>");
        assert!(none.resolve_firmware(&[], Path::new("/nv")).is_err());
    }
}
