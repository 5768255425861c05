//! The domain definition as the driver uses it: a thin adapter over the
//! `domain` crate, so that crate's API reaches the driver in one place.
//!
//! A `Def` is either the persistent definition or the live one of a running
//! domain; the live one carries the domain id so its XML is libvirt's live
//! XML (`id='N'`, device aliases).

use std::path::Path;

use domain::{DomainDef, DomainType, EmulatorCaps, LaunchParams, LiveInfo, MachineType};
use virterror::ToVirError;

use crate::caps::Caps;
use crate::{Error, Result};

/// Accelerator QEMU runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// What to do when the guest powers off / crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
}

impl From<domain::LifecycleAction> for LifecycleAction {
    fn from(a: domain::LifecycleAction) -> Self {
        match a {
            domain::LifecycleAction::Destroy => LifecycleAction::Destroy,
            domain::LifecycleAction::Restart => LifecycleAction::Restart,
            domain::LifecycleAction::Preserve => LifecycleAction::Preserve,
        }
    }
}

/// A parsed, validated domain definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Def {
    inner: DomainDef,
    /// Set on the live definition of a running domain: its id and the pty
    /// path of each serial (None where not a pty or not known yet).
    live: Option<(u32, Vec<Option<String>>)>,
}

impl Def {
    /// Parses and validates libvirt domain XML; errors carry the domain
    /// crate's libvirt code (XML_ERROR, CONFIG_UNSUPPORTED, ...).
    pub fn parse(xml: &str) -> Result<Self> {
        let inner = DomainDef::parse(xml).map_err(|e| Error::Xml(e.to_vir_error()))?;
        Ok(Self { inner, live: None })
    }

    /// The live definition of this domain running with `id`.
    pub fn live(&self, id: u32) -> Self {
        Self {
            inner: self.inner.clone(),
            live: Some((id, Vec::new())),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }
    pub fn uuid(&self) -> uuid::Uuid {
        self.inner.uuid
    }
    pub fn max_memory_kib(&self) -> u64 {
        self.inner.memory_kib
    }
    pub fn current_memory_kib(&self) -> u64 {
        self.inner.current_memory_kib
    }
    pub fn vcpus(&self) -> u32 {
        self.inner.vcpus
    }
    pub fn emulator(&self) -> &Path {
        self.inner.emulator()
    }
    pub fn accel(&self) -> Accel {
        match self.inner.domain_type {
            DomainType::Kvm => Accel::Kvm,
            DomainType::Qemu => Accel::Tcg,
        }
    }
    pub fn on_poweroff(&self) -> LifecycleAction {
        self.inner.on_poweroff.into()
    }
    pub fn on_crash(&self) -> LifecycleAction {
        self.inner.on_crash.into()
    }
    /// Environment `qemu:commandline` asks for.
    pub fn env(&self) -> &[(String, String)] {
        &self.inner.qemu_commandline.env
    }

    /// The emulator must exist and be executable: checked at define time,
    /// as libvirt does, so a typo is reported before anything is stored.
    pub fn check_emulator(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.emulator();
        let ctx = || format!("Cannot check QEMU binary {}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| Error::io(ctx(), e))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            let e = std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "not an executable file",
            );
            return Err(Error::io(ctx(), e));
        }
        Ok(())
    }

    /// Every disk and kernel/initrd file must be accessible: checked before
    /// QEMU is started so the error names the file, not QEMU's argv.
    pub fn check_disks(&self) -> Result<()> {
        for p in self.inner.disk_paths() {
            std::fs::metadata(p).map_err(|e| {
                Error::io(format!("Cannot access storage file '{}'", p.display()), e)
            })?;
        }
        Ok(())
    }

    /// QEMU chardev ids of the serial ports, in order (for query-chardev).
    pub fn serial_chardev_ids(&self) -> Vec<String> {
        self.inner.serial_chardev_ids()
    }

    /// This live definition with the serials' pty paths filled in.
    pub fn with_ptys(&self, ptys: Vec<Option<String>>) -> Self {
        let mut out = self.clone();
        if let Some((_, p)) = out.live.as_mut() {
            *p = ptys;
        }
        out
    }

    /// Inactive XML, or live XML for a live definition.
    pub fn to_xml(&self) -> String {
        match &self.live {
            Some((id, ptys)) => self.inner.to_xml(Some(&LiveInfo {
                id: *id,
                serial_ptys: ptys.clone(),
                vnc_port: None,
            })),
            None => self.inner.to_xml(None),
        }
    }

    /// QEMU's argv including the emulator path (without `-no-shutdown`,
    /// which the driver adds so that it decides what a guest poweroff
    /// means).
    pub fn argv(&self, monitor: &Path, accel: Accel, caps: &Caps) -> Result<Vec<String>> {
        let launch = LaunchParams {
            qmp_socket: monitor.to_path_buf(),
            pidfile: monitor.with_extension("pid"),
            domain_run_dir: monitor.parent().map(Path::to_path_buf).unwrap_or_default(),
            accel: match accel {
                Accel::Kvm => domain::Accel::Kvm,
                Accel::Tcg => domain::Accel::Tcg,
            },
            daemonize: false,
        };
        let args = domain::build_argv(&self.inner, &emulator_caps(caps), &launch)
            .map_err(|e| Error::Xml(e.to_vir_error()))?;
        let mut v = Vec::with_capacity(args.len() + 1);
        v.push(self.emulator().to_string_lossy().into_owned());
        v.extend(args);
        Ok(v)
    }
}

/// What block jobs need to know about one disk of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// Position in the definition: decides the startup node names.
    pub index: usize,
    /// `<target dev>` (vda, sda, ...).
    pub target: String,
    /// The device alias (`virtio-disk0`, ...), which names the QEMU device.
    pub alias: String,
    pub source: Option<std::path::PathBuf>,
    /// "raw" or "qcow2".
    pub format: &'static str,
}

impl Def {
    /// The disk a user names by target (`vda`) or by its source path, as
    /// libvirt's virDomainDiskByName accepts both.
    pub fn disk(&self, name: &str) -> Option<DiskInfo> {
        let disks = &self.inner.devices.disks;
        let (index, d) = disks
            .iter()
            .enumerate()
            .find(|(_, d)| d.target == name || d.source.as_deref() == Some(Path::new(name)))?;
        Some(DiskInfo {
            index,
            target: d.target.clone(),
            alias: d.alias(),
            source: d.source.clone(),
            format: d.driver.format.unwrap_or(domain::DiskFormat::Raw).as_str(),
        })
    }

    /// This definition with disk `target` now backed by `source` in
    /// `format`: the live definition after a block job pivoted the disk,
    /// so the live XML shows the chain the guest really uses.
    pub fn with_disk_source(&self, target: &str, source: &Path, qcow2: bool) -> Self {
        let mut out = self.clone();
        if let Some(d) = out
            .inner
            .devices
            .disks
            .iter_mut()
            .find(|d| d.target == target)
        {
            d.source = Some(source.to_path_buf());
            d.driver.format = Some(if qcow2 {
                domain::DiskFormat::Qcow2
            } else {
                domain::DiskFormat::Raw
            });
        }
        out
    }
}

/// The domain crate's view of what the emulator supports.
fn emulator_caps(caps: &Caps) -> EmulatorCaps {
    let (a, b, c) = caps.version;
    let v = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    EmulatorCaps {
        version: (v(a), v(b), v(c)),
        machines: caps
            .machines
            .iter()
            .map(|name| MachineType {
                name: name.clone(),
                alias: None,
                is_default: caps.default_machine.as_deref() == Some(name),
                cpu_max: None,
                deprecated: false,
            })
            .collect(),
        kvm: caps.kvm_supported,
    }
}
