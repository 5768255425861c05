//! The domain definition as the driver uses it: a thin adapter over the
//! `domain` crate, so that crate's API reaches the driver in one place.
//!
//! A `Def` is either the persistent definition or the live one of a running
//! domain; the live one carries the domain id so its XML is libvirt's live
//! XML (`id='N'`, device aliases).

use std::path::Path;

use domain::{
    Accel, ChrSource, DomainDef, EmulatorCaps, LaunchParams, LifecycleAction, LiveInfo, UnixMode,
    XmlOptions,
};
use virterror::ToVirError;

use crate::{Error, Result};

/// A parsed, validated domain definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Def {
    inner: DomainDef,
    /// Set on the live definition of a running domain: its id, the pty
    /// path of each serial (None where not a pty or not known yet), its
    /// run directory.
    live: Option<LiveInfo>,
}

impl Def {
    /// Parses and validates libvirt domain XML; errors carry the domain
    /// crate's libvirt code (XML_ERROR, CONFIG_UNSUPPORTED, ...).
    pub(crate) fn parse(xml: &str) -> Result<Self> {
        let inner = DomainDef::parse(xml).map_err(|e| Error::Xml(e.to_vir_error()))?;
        Ok(Self { inner, live: None })
    }

    /// The live definition of this domain running with `id` (every disk
    /// numbered for its block nodes, see [`DomainDef::number_disk_nodes`]).
    pub(crate) fn live(&self, id: u32) -> Self {
        let mut inner = self.inner.clone();
        inner.number_disk_nodes();
        inner.number_interfaces();
        Self {
            inner,
            live: Some(LiveInfo {
                id,
                ..LiveInfo::default()
            }),
        }
    }

    /// Makes `<os firmware='efi'>` concrete and gives a UEFI loader its
    /// NVRAM file, as libvirt does at define time (see
    /// [`DomainDef::resolve_firmware`]).
    pub(crate) fn resolve_firmware(
        &mut self,
        descriptors: &[domain::FirmwareDescriptor],
        nvram_dir: &Path,
    ) -> Result<()> {
        self.inner
            .resolve_firmware(descriptors, nvram_dir)
            .map_err(|e| Error::Xml(e.to_vir_error()))
    }

    /// Replaces an alias machine type with the emulator's versioned name
    /// (see [`DomainDef::resolve_machine`]).
    pub(crate) fn resolve_machine(&mut self, caps: &EmulatorCaps) -> Result<()> {
        self.inner
            .resolve_machine(caps)
            .map_err(|e| Error::Xml(e.to_vir_error()))
    }

    /// Whether the definition holds a secret (a display password).
    pub(crate) fn has_secrets(&self) -> bool {
        self.inner
            .devices
            .graphics
            .iter()
            .any(|g| g.display().is_some_and(|d| d.password.is_some()))
    }

    /// The domain crate's definition, for what prepares the host.
    pub(crate) fn domain(&self) -> &DomainDef {
        &self.inner
    }

    /// This definition changed by `f` (a device added or removed), live
    /// information kept.
    pub(crate) fn changed<T>(
        &self,
        f: impl FnOnce(&mut DomainDef) -> Result<T, domain::DeviceError>,
    ) -> Result<(Self, T)> {
        let mut out = self.clone();
        let v = f(&mut out.inner).map_err(|e| Error::Xml(e.to_vir_error()))?;
        Ok((out, v))
    }

    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }
    /// This definition under the name `name` (see [`DomainDef::rename`]).
    pub(crate) fn renamed(mut self, name: &str) -> Result<Self> {
        self.inner
            .rename(name)
            .map_err(|e| Error::Xml(e.to_vir_error()))?;
        Ok(self)
    }
    pub(crate) fn uuid(&self) -> uuid::Uuid {
        self.inner.uuid
    }
    pub(crate) fn max_memory_kib(&self) -> u64 {
        self.inner.memory_kib
    }
    pub(crate) fn current_memory_kib(&self) -> u64 {
        self.inner.current_memory_kib
    }
    /// vCPUs online (at boot).
    pub(crate) fn vcpus(&self) -> u32 {
        self.inner.boot_vcpus()
    }
    pub(crate) fn emulator(&self) -> &Path {
        self.inner.emulator()
    }
    /// The accelerator the domain type asks for.
    pub(crate) fn accel(&self) -> Accel {
        Accel::for_domain(&self.inner)
    }
    pub(crate) fn on_poweroff(&self) -> LifecycleAction {
        self.inner.on_poweroff
    }
    pub(crate) fn on_crash(&self) -> LifecycleAction {
        self.inner.on_crash
    }
    /// Environment `qemu:commandline` asks for.
    pub(crate) fn env(&self) -> &[(String, String)] {
        &self.inner.qemu_commandline.env
    }

    /// `new` must describe the same guest as `self` (name, uuid, sizes,
    /// machine, device set); host-side details such as a disk's source may
    /// differ. Reported as the domain crate's CONFIG_UNSUPPORTED.
    pub(crate) fn check_abi(&self, new: &Def) -> Result<()> {
        domain::check_abi_stability(&self.inner, &new.inner)
            .map_err(|e| Error::Xml(e.to_vir_error()))
    }

    /// The emulator must exist and be executable: checked at define time,
    /// as libvirt does, so a typo is reported before anything is stored.
    pub(crate) fn check_emulator(&self) -> Result<()> {
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
    pub(crate) fn check_disks(&self) -> Result<()> {
        for p in self.inner.disk_paths() {
            std::fs::metadata(p).map_err(|e| {
                Error::io(format!("Cannot access storage file '{}'", p.display()), e)
            })?;
        }
        Ok(())
    }

    /// The files QEMU opens for disks, kernel and initrd.
    pub(crate) fn disk_paths(&self) -> Vec<std::path::PathBuf> {
        self.inner
            .disk_paths()
            .into_iter()
            .map(Path::to_path_buf)
            .collect()
    }

    /// QEMU chardev ids of the serial ports, in order (for query-chardev).
    pub(crate) fn serial_chardev_ids(&self) -> Vec<String> {
        self.inner.serial_chardev_ids()
    }

    /// Whether [`with_ptys`](Self::with_ptys) would change nothing: the
    /// serial ports' pseudo-terminals are already `ptys` (a missing one is
    /// one not known), or this is not a live definition.
    pub(crate) fn has_ptys(&self, ptys: &[Option<String>]) -> bool {
        self.live.as_ref().is_none_or(|l| {
            l.serial_ptys == ptys || (l.serial_ptys.is_empty() && ptys.iter().all(Option::is_none))
        })
    }

    /// This live definition with the serials' pty paths filled in.
    pub(crate) fn with_ptys(&self, ptys: Vec<Option<String>>) -> Self {
        let mut out = self.clone();
        if let Some(l) = out.live.as_mut() {
            l.serial_ptys = ptys;
        }
        out
    }

    /// Interface `i` with `<link state>` `up` (absent means up, so up is
    /// written as absent when it was).
    pub(crate) fn with_interface_link(&self, i: usize, up: bool) -> Self {
        let mut out = self.clone();
        if let Some(n) = out.inner.devices.interfaces.get_mut(i) {
            n.link_up = if up && n.link_up.is_none() {
                None
            } else {
                Some(up)
            };
        }
        out
    }

    /// Interface `i` with `bw` as its `<bandwidth>`.
    pub(crate) fn with_interface_bandwidth(&self, i: usize, bw: Option<domain::Bandwidth>) -> Self {
        let mut out = self.clone();
        if let Some(n) = out.inner.devices.interfaces.get_mut(i) {
            n.bandwidth = bw;
        }
        out
    }

    /// This live definition with what only the run knows: its run
    /// directory (where unix channels without a path listen) and the
    /// ports its displays got.
    pub(crate) fn with_live(&self, f: impl FnOnce(&mut LiveInfo)) -> Self {
        let mut out = self.clone();
        if let Some(l) = out.live.as_mut() {
            f(l);
        }
        out
    }

    /// vCPUs at most (`<vcpu>`).
    pub(crate) fn max_vcpus(&self) -> u32 {
        self.inner.vcpus
    }

    /// Inactive XML, or live XML for a live definition, with secrets: what
    /// the driver stores (definition, status and save image files).
    pub(crate) fn to_xml(&self) -> String {
        self.to_xml_for(true)
    }

    /// The XML a client sees: graphics passwords only when `secure`.
    pub(crate) fn to_xml_for(&self, secure: bool) -> String {
        self.inner.to_xml_with(XmlOptions {
            live: self.live.as_ref(),
            secure,
        })
    }

    /// QEMU's argv including the emulator path (without `-no-shutdown`,
    /// which the driver adds so that it decides what a guest poweroff
    /// means). `launch` gives the run's choices; its QMP socket, pidfile
    /// and daemonize flag are set here.
    pub(crate) fn argv(
        &self,
        monitor: &Path,
        caps: &EmulatorCaps,
        launch: LaunchParams,
    ) -> Result<Vec<String>> {
        let launch = LaunchParams {
            qmp_socket: monitor.to_path_buf(),
            daemonize: false,
            ..launch
        };
        let args = domain::build_argv(&self.inner, caps, &launch)
            .map_err(|e| Error::Xml(e.to_vir_error()))?;
        let mut v = Vec::with_capacity(args.len() + 1);
        v.push(self.emulator().to_string_lossy().into_owned());
        v.extend(args);
        Ok(v)
    }
}

impl Def {
    /// The disks as statistics report them, in definition order.
    pub(crate) fn disk_descs(&self) -> Vec<crate::stats::DiskDesc> {
        self.inner
            .devices
            .disks
            .iter()
            .map(|d| crate::stats::DiskDesc {
                target: d.target.clone(),
                source: d.source.clone(),
                qcow2: d.driver.format == Some(domain::DiskFormat::Qcow2),
                cdrom: d.device == domain::DiskDevice::Cdrom,
            })
            .collect()
    }

    /// MAC addresses of the NICs, in definition order.
    pub(crate) fn nic_macs(&self) -> Vec<String> {
        self.inner
            .devices
            .interfaces
            .iter()
            .map(|i| i.mac.to_string())
            .collect()
    }

    /// Whether the guest has a virtio balloon (`argv` names it `balloon0`).
    pub(crate) fn has_balloon(&self) -> bool {
        self.inner
            .devices
            .memballoon
            .as_ref()
            .is_some_and(|b| b.model == domain::MemballoonModel::Virtio)
    }
}

/// What block jobs need to know about one disk of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskInfo {
    /// Position in the definition: decides the startup node names.
    pub(crate) index: usize,
    /// `<target dev>` (vda, sda, ...).
    pub(crate) target: String,
    /// The device alias (`virtio-disk0`, ...), which names the QEMU device.
    pub(crate) alias: String,
    pub(crate) source: Option<std::path::PathBuf>,
    pub(crate) format: domain::DiskFormat,
    /// The format node QEMU's device reads from at start.
    pub(crate) format_node: String,
    /// The storage (file) node under it: where host allocation grows.
    pub(crate) storage_node: String,
}

impl Def {
    /// The disk a user names by target (`vda`) or by its source path, as
    /// libvirt's virDomainDiskByName accepts both.
    pub(crate) fn disk(&self, name: &str) -> Option<DiskInfo> {
        let index = self
            .inner
            .devices
            .disks
            .iter()
            .position(|d| d.target == name || d.source.as_deref() == Some(Path::new(name)))?;
        self.disk_at(index)
    }

    /// The disks the guest writes to and that have an image (not
    /// read-only, not a CD-ROM): those a migration copies with
    /// `--copy-storage-*`.
    pub(crate) fn writable_disks(&self) -> Vec<DiskInfo> {
        let disks = &self.inner.devices.disks;
        (0..disks.len())
            .filter(|i| {
                disks.get(*i).is_some_and(|d| {
                    d.source.is_some() && !d.readonly && d.device == domain::DiskDevice::Disk
                })
            })
            .filter_map(|i| self.disk_at(i))
            .collect()
    }

    fn disk_at(&self, index: usize) -> Option<DiskInfo> {
        let d = self.inner.devices.disks.get(index)?;
        Some(DiskInfo {
            index,
            target: d.target.clone(),
            alias: d.alias(),
            source: d.source.clone(),
            format: d.driver.format.unwrap_or(domain::DiskFormat::Raw),
            format_node: domain::disk_nodes(index, d).1,
            storage_node: domain::disk_nodes(index, d).0,
        })
    }

    /// The disk a QMP block event names, as QEMU names it for the devices
    /// and nodes `argv` created: by the device's QOM path
    /// (`/machine/peripheral/ALIAS/...`), by a non-empty `device` (`ALIAS`
    /// or legacy `drive-ALIAS`), or by a startup node name
    /// (`libvirt-N-format` / `libvirt-N-storage`, see
    /// [`domain::disk_node_names`]). Nodes a block job pivoted a disk onto
    /// are not known here (the caller maps those).
    pub(crate) fn disk_of_qmp(
        &self,
        device: Option<&str>,
        node: Option<&str>,
        qom_path: Option<&str>,
    ) -> Option<DiskInfo> {
        let disks = &self.inner.devices.disks;
        let by_alias = |a: &str| disks.iter().position(|d| d.alias() == a);
        let peripheral = qom_path
            .and_then(|p| p.strip_prefix("/machine/peripheral/"))
            .and_then(|rest| rest.split('/').next());
        let device = device.filter(|d| !d.is_empty());
        let index = peripheral
            .and_then(by_alias)
            .or_else(|| device.and_then(|d| by_alias(d.strip_prefix("drive-").unwrap_or(d))))
            .or_else(|| {
                let n = node.and_then(startup_node_index)?;
                let numbered = |(i, d): &(usize, &domain::DiskDef)| {
                    d.source.is_some() && domain::disk_node_names(n) == domain::disk_nodes(*i, d)
                };
                disks.iter().enumerate().position(|x| numbered(&x))
            })?;
        self.disk_at(index)
    }

    /// This definition with disk `target` now backed by `source` in
    /// `format`: the live definition after a block job pivoted the disk,
    /// so the live XML shows the chain the guest really uses.
    pub(crate) fn with_disk_source(&self, target: &str, source: &Path, qcow2: bool) -> Self {
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

/// The disk index a startup node name (`libvirt-N-format` or
/// `libvirt-N-storage`, N = index + 1) stands for.
fn startup_node_index(node: &str) -> Option<usize> {
    let n = node.strip_prefix("libvirt-")?;
    let n = n
        .strip_suffix("-format")
        .or_else(|| n.strip_suffix("-storage"))?;
    if n.starts_with('+') || n.starts_with('0') {
        return None;
    }
    n.parse::<usize>().ok()?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> Def {
        Def::parse(
            "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='disk'><source file='/b.img'/><target dev='sda' bus='sata'/></disk>\
             <disk type='file' device='cdrom'><target dev='sdb' bus='sata'/></disk>\
             </devices></domain>",
        )
        .expect("valid XML")
    }

    fn target(d: Option<DiskInfo>) -> Option<String> {
        d.map(|d| d.target)
    }

    #[test]
    fn startup_node_names_map_back_to_their_disk() {
        for i in [0, 1, 9, 41] {
            let (storage, format) = domain::disk_node_names(i);
            assert_eq!(startup_node_index(&storage), Some(i));
            assert_eq!(startup_node_index(&format), Some(i));
        }
        for bad in [
            "libvirt-0-format",
            "libvirt-01-format",
            "libvirt-+1-format",
            "libvirt-1-other",
            "fv1-format",
            "libvirt-99999999999999999999999-format",
            "",
        ] {
            assert_eq!(startup_node_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn qmp_names_resolve_to_disks() {
        let d = def();
        let by_node = |n| target(d.disk_of_qmp(Some(""), Some(n), None));
        assert_eq!(by_node("libvirt-1-format").as_deref(), Some("vda"));
        assert_eq!(by_node("libvirt-2-storage").as_deref(), Some("sda"));
        // The empty CD-ROM has no nodes; beyond the last disk neither.
        assert_eq!(by_node("libvirt-3-format"), None);
        assert_eq!(by_node("libvirt-4-format"), None);
        assert_eq!(by_node("fv17-format"), None);

        let by_dev = |dev| target(d.disk_of_qmp(Some(dev), None, None));
        assert_eq!(by_dev("virtio-disk0").as_deref(), Some("vda"));
        assert_eq!(by_dev("drive-sata0-0-0").as_deref(), Some("sda"));
        assert_eq!(by_dev("nope"), None);

        let qom = "/machine/peripheral/sata0-0-0/blk";
        let a = d.disk_of_qmp(Some(""), Some("fv17-format"), Some(qom));
        assert_eq!(target(a).as_deref(), Some("sda"));
        let a = d.disk_of_qmp(None, None, Some("/machine/peripheral/virtio-disk0"));
        let a = a.expect("disk by qom path");
        assert_eq!(a.alias, "virtio-disk0");
        assert_eq!(a.source.as_deref(), Some(Path::new("/a.img")));
        assert_eq!(
            d.disk_of_qmp(None, None, Some("/machine/unattached/device[3]")),
            None
        );
    }
}

/// Where a console or channel's character device can be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChardevEndpoint {
    /// The slave side of the pseudo-terminal QEMU allocated.
    Pty(std::path::PathBuf),
    /// A UNIX socket QEMU listens on.
    Unix(std::path::PathBuf),
}

/// A character device a console or channel session opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chardev {
    /// Its alias (`serial0`): sessions are exclusive per alias.
    pub alias: String,
    pub endpoint: ChardevEndpoint,
}

impl Def {
    /// The serial `dev_name` names for `virsh console` (`serialN`, or
    /// `consoleN` for the serial a `<console>` shows), or without a name
    /// the first console's serial, else the first serial; as libvirt.
    pub(crate) fn console(&self, dev_name: Option<&str>) -> Result<Chardev> {
        let d = &self.inner.devices;
        let index = |prefix: &str, n: &str| n.strip_prefix(prefix)?.parse::<usize>().ok();
        let serial_of_console = |c: usize| {
            d.consoles
                .get(c)
                .and_then(|c| d.serials.iter().position(|s| s.port == c.port))
        };
        let i = match dev_name {
            Some(n) => index("serial", n)
                .filter(|i| *i < d.serials.len())
                .or_else(|| index("console", n).and_then(serial_of_console)),
            None => serial_of_console(0).or((!d.serials.is_empty()).then_some(0)),
        };
        let name = dev_name.unwrap_or("<null>");
        let i = i.ok_or_else(|| Error::Internal(format!("cannot find character device {name}")))?;
        let alias = format!("serial{i}");
        let pty = self
            .live
            .as_ref()
            .and_then(|l| l.serial_ptys.get(i).cloned().flatten());
        let endpoint = match (&d.serials[i].source, pty) {
            (ChrSource::Pty, Some(p)) => ChardevEndpoint::Pty(p.into()),
            (ChrSource::Pty, None) => {
                return Err(Error::Internal(format!(
                    "the pty of character device {alias} is not known"
                )));
            }
            (
                ChrSource::Unix {
                    path: Some(path),
                    mode: UnixMode::Bind,
                },
                _,
            ) => ChardevEndpoint::Unix(path.clone()),
            _ => {
                return Err(Error::Internal(format!(
                    "character device {alias} is not using a PTY"
                )));
            }
        };
        Ok(Chardev { alias, endpoint })
    }

    /// The channel `name` names (its alias `channelN` or its target name,
    /// as libvirt matches them), or without a name the first channel. Only
    /// a UNIX socket QEMU listens on opens, as with libvirt.
    pub(crate) fn channel(&self, name: Option<&str>) -> Result<Chardev> {
        let channels = &self.inner.devices.channels;
        let found = channels.iter().enumerate().find(|(i, c)| match name {
            Some(n) => n == format!("channel{i}") || c.name.as_deref() == Some(n),
            None => true,
        });
        let shown = name.unwrap_or("<null>");
        let (i, ch) =
            found.ok_or_else(|| Error::Internal(format!("cannot find channel {shown}")))?;
        let run_dir = self.live.as_ref().and_then(|l| l.run_dir.as_deref());
        let path = match &ch.source {
            ChrSource::Unix {
                path,
                mode: UnixMode::Bind,
            } => path.clone().or_else(|| {
                run_dir.map(|dir| domain::devices::chardev::channel_socket(dir, i, ch))
            }),
            _ => None,
        };
        let path = path.ok_or_else(|| {
            Error::Internal(format!("channel {shown} is not using a UNIX socket"))
        })?;
        Ok(Chardev {
            alias: format!("channel{i}"),
            endpoint: ChardevEndpoint::Unix(path),
        })
    }

    /// The video device and head `screen` is on (`None` for screen 0,
    /// QEMU's first console): heads are counted over the video devices in
    /// order, as libvirt does.
    pub(crate) fn screen(&self, screen: u32) -> Result<Option<(String, u32)>> {
        let videos: Vec<_> = self
            .inner
            .devices
            .video
            .iter()
            .enumerate()
            .filter(|(_, v)| v.model != domain::VideoModel::None)
            .collect();
        if videos.is_empty() {
            return Err(Error::Qemu("no screens to take screenshot from".into()));
        }
        if screen == 0 {
            return Ok(None);
        }
        let mut left = screen;
        for (i, v) in videos {
            let heads = v.heads.unwrap_or(1);
            if left < heads {
                return Ok(Some((format!("video{i}"), left)));
            }
            left -= heads;
        }
        Err(Error::InvalidArg("no such screen ID".into()))
    }

    /// The protocol of graphics `idx` for QEMU's `add_client` (`vnc`,
    /// `spice`), as `virDomainOpenGraphics` needs.
    pub(crate) fn graphics_protocol(&self, idx: u32) -> Result<&'static str> {
        let g = usize::try_from(idx)
            .ok()
            .and_then(|i| self.inner.devices.graphics.get(i))
            .ok_or_else(|| Error::Internal(format!("No graphics backend with index {idx}")))?;
        match g {
            domain::GraphicsDef::Vnc(_) => Ok("vnc"),
            domain::GraphicsDef::Spice(_) => Ok("spice"),
            domain::GraphicsDef::None => Err(Error::Internal(
                "Can only open VNC or SPICE graphics backends, not none".into(),
            )),
        }
    }
}

#[cfg(test)]
mod console_tests {
    use super::*;

    fn def(devices: &str) -> Def {
        Def::parse(&format!(
            "<domain type='qemu'><name>c</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{devices}</devices></domain>"
        ))
        .unwrap()
    }

    fn live(d: &Def, ptys: &[Option<&str>]) -> Def {
        d.live(1)
            .with_ptys(ptys.iter().map(|p| p.map(str::to_owned)).collect())
    }

    #[test]
    fn consoles_resolve_as_libvirt_names_them() {
        let d = def(
            "<serial type='file'><source path='/tmp/s0'/><target port='0'/></serial>\
             <serial type='pty'><target port='1'/></serial>\
             <console type='pty'><target type='serial' port='1'/></console>",
        );
        let l = live(&d, &[None, Some("/dev/pts/7")]);
        // No name: the first console's serial (port 1 is serial1).
        let c = l.console(None).unwrap();
        assert_eq!(c.alias, "serial1");
        assert_eq!(c.endpoint, ChardevEndpoint::Pty("/dev/pts/7".into()));
        assert_eq!(l.console(Some("console0")).unwrap().alias, "serial1");
        let e = l.console(Some("serial0")).unwrap_err();
        assert!(e.to_string().contains("is not using a PTY"), "{e}");
        let e = l.console(Some("serial9")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "internal error: cannot find character device serial9"
        );
        // A pty whose path QEMU did not tell us.
        assert!(live(&d, &[None, None]).console(None).is_err());
    }

    #[test]
    fn a_unix_serial_qemu_listens_on_is_a_console_too() {
        let d = def("<serial type='unix'><source mode='bind' path='/tmp/c.sock'/></serial>");
        let c = live(&d, &[None]).console(None).unwrap();
        assert_eq!(c.endpoint, ChardevEndpoint::Unix("/tmp/c.sock".into()));
        let none = def("");
        assert!(live(&none, &[]).console(None).is_err());
        assert!(
            live(&none, &[])
                .channel(Some("org.qemu.guest_agent.0"))
                .is_err()
        );
    }

    #[test]
    fn channels_resolve_by_alias_or_name_to_the_socket_qemu_listens_on() {
        let d = def("<channel type='unix'><source mode='bind'/>\
             <target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <channel type='unix'><source mode='bind' path='/tmp/ch1.sock'/>\
             <target type='virtio' name='org.example.1'/></channel>\
             <channel type='pty'><target type='virtio' name='org.example.pty'/></channel>");
        let l = d.live(1).with_live(|l| l.run_dir = Some("/run/x".into()));
        let ga = l.channel(Some("org.qemu.guest_agent.0")).unwrap();
        assert_eq!(ga.alias, "channel0");
        assert_eq!(
            ga.endpoint,
            ChardevEndpoint::Unix("/run/x/org.qemu.guest_agent.0".into())
        );
        assert_eq!(l.channel(None).unwrap(), ga);
        let c1 = l.channel(Some("channel1")).unwrap();
        assert_eq!(c1.endpoint, ChardevEndpoint::Unix("/tmp/ch1.sock".into()));
        let e = l.channel(Some("org.example.pty")).unwrap_err();
        assert!(e.to_string().contains("is not using a UNIX socket"), "{e}");
        let e = l.channel(Some("nope")).unwrap_err();
        assert!(e.to_string().contains("cannot find channel nope"), "{e}");
    }

    #[test]
    fn screens_and_graphics() {
        let d = def("<graphics type='vnc'/><video><model type='virtio' heads='2'/></video>");
        assert_eq!(d.screen(0).unwrap(), None);
        assert_eq!(d.screen(1).unwrap(), Some(("video0".into(), 1)));
        assert!(matches!(d.screen(2), Err(Error::InvalidArg(_))));
        assert_eq!(d.graphics_protocol(0).unwrap(), "vnc");
        assert!(d.graphics_protocol(1).is_err());
        let headless = def("<graphics type='none'/>");
        assert!(headless.screen(0).is_err());
        assert!(headless.graphics_protocol(0).is_err());
    }
}
