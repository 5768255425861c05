//! `DomainDef` → QEMU command line (without the binary).
//!
//! Modern QEMU syntax only (`-blockdev`, `-netdev`+`-device`, `-action`),
//! always with `-S`: the driver starts QEMU paused, finishes set-up over QMP
//! and then sends `cont`, so the guest never runs half-configured.
//!
//! `-no-shutdown` is *not* passed when `on_poweroff` is destroy: QEMU then
//! exits by itself after a guest poweroff (emitting SHUTDOWN with
//! `"guest": true` first), which is exactly what destroy means, and the
//! driver need not race to kill a stopped QEMU. For restart/preserve QEMU
//! must stay alive, so `-action shutdown=pause` (≙ -no-shutdown) is passed
//! and the driver resets+continues or leaves it paused.

use crate::caps::EmulatorCaps;
use crate::def::*;
use crate::devices::address::{Address, DriveAddress};
use crate::devices::chardev::{ChrSource, UnixMode};
use crate::devices::controller::ControllerType;
use crate::devices::disk::{
    CacheMode, DiscardMode, DiskBus, DiskDef, DiskDevice, DiskFormat, DiskType, IoMode,
};
use crate::devices::graphics::{GraphicsDef, VideoModel};
use crate::devices::misc::MemballoonModel;
use crate::error::DomainXmlError;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// The accelerator QEMU runs a guest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    Kvm,
    #[default]
    Tcg,
}

impl Accel {
    /// What the domain type asks for (`kvm` → Kvm, `qemu` → Tcg).
    pub fn for_domain(def: &DomainDef) -> Self {
        match def.domain_type {
            DomainType::Kvm => Accel::Kvm,
            DomainType::Qemu => Accel::Tcg,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Per-start parameters chosen by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchParams {
    /// QMP monitor socket (QEMU listens).
    pub qmp_socket: PathBuf,
    pub pidfile: PathBuf,
    /// The domain's private runtime directory. Not referenced by the
    /// current argv (all paths are explicit) but part of the contract so
    /// that per-domain sockets can be placed there without an API change.
    pub domain_run_dir: PathBuf,
    pub accel: Accel,
    pub daemonize: bool,
}

/// QEMU's option-value escaping: a comma inside a value is doubled.
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

fn push(argv: &mut Vec<String>, opt: &str, val: impl Into<String>) {
    argv.push(opt.to_string());
    argv.push(val.into());
}

/// `,bus=pcie.0,addr=0x3[.1][,multifunction=on]` for a PCI address.
fn pci_opts(addr: Option<&Address>, family: MachineFamily) -> String {
    match addr.and_then(Address::pci) {
        None => String::new(),
        Some(p) => {
            let mut s = format!(",bus={},addr=0x{:x}", family.root_bus(), p.slot);
            if p.function != 0 {
                s.push_str(&format!(".{:x}", p.function));
            }
            if let Some(m) = p.multifunction {
                s.push_str(if m {
                    ",multifunction=on"
                } else {
                    ",multifunction=off"
                });
            }
            s
        }
    }
}

/// Node names of disk `i` (libvirt-N-storage / libvirt-N-format, N = i+1),
/// which block jobs and hot-unplug in the driver refer to.
pub fn disk_node_names(i: usize) -> (String, String) {
    (
        format!("libvirt-{}-storage", i + 1),
        format!("libvirt-{}-format", i + 1),
    )
}

/// Boot index per disk and per interface. Per-device `<boot order>` wins;
/// otherwise the legacy `<os><boot dev>` list is turned into bootindex on
/// the first disk / cdrom / NIC, as libvirt does, so `-boot strict=on`
/// means the same order.
fn boot_indexes(def: &DomainDef) -> (Vec<Option<u32>>, Vec<Option<u32>>) {
    let d = &def.devices;
    let mut disks: Vec<Option<u32>> = d.disks.iter().map(|x| x.boot_order).collect();
    let mut nets: Vec<Option<u32>> = d.interfaces.iter().map(|x| x.boot_order).collect();
    if disks.iter().chain(nets.iter()).any(Option::is_some) {
        return (disks, nets);
    }
    let mut next = 1;
    for dev in &def.os.boot_devs {
        let slot = match dev {
            BootDev::Hd => d
                .disks
                .iter()
                .position(|x| x.device == DiskDevice::Disk)
                .map(|i| &mut disks[i]),
            BootDev::Cdrom => d
                .disks
                .iter()
                .position(|x| x.device == DiskDevice::Cdrom)
                .map(|i| &mut disks[i]),
            BootDev::Network => nets.first_mut(),
        };
        if let Some(s) = slot {
            *s = Some(next);
            next += 1;
        }
    }
    (disks, nets)
}

fn cache_json(c: CacheMode) -> (Value, bool) {
    // (cache object for the nodes, write-cache of the device)
    let (direct, no_flush, wc) = match c {
        CacheMode::None => (true, false, true),
        CacheMode::Writeback => (false, false, true),
        CacheMode::Writethrough => (false, false, false),
        CacheMode::Directsync => (true, false, false),
        CacheMode::Unsafe => (false, true, true),
    };
    (json!({"direct": direct, "no-flush": no_flush}), wc)
}

fn disk_args(
    argv: &mut Vec<String>,
    i: usize,
    disk: &DiskDef,
    bootindex: Option<u32>,
    family: MachineFamily,
) {
    let (storage, format) = disk_node_names(i);
    let cache = disk.driver.cache.map(cache_json);
    if let Some(src) = &disk.source {
        let driver = match (disk.disk_type, disk.device) {
            (DiskType::File, _) => "file",
            (DiskType::Block, DiskDevice::Cdrom) => "host_cdrom",
            (DiskType::Block, DiskDevice::Disk) => "host_device",
        };
        let mut s = Map::new();
        s.insert("driver".into(), json!(driver));
        s.insert("filename".into(), json!(src.to_string_lossy()));
        s.insert("node-name".into(), json!(storage));
        if let Some(io) = disk.driver.io {
            s.insert(
                "aio".into(),
                json!(match io {
                    IoMode::Native => "native",
                    IoMode::Threads => "threads",
                }),
            );
        }
        if let Some((c, _)) = &cache {
            s.insert("cache".into(), c.clone());
        }
        s.insert("auto-read-only".into(), json!(true));
        s.insert("discard".into(), json!("unmap"));
        push(argv, "-blockdev", Value::Object(s).to_string());

        let mut f = Map::new();
        f.insert("node-name".into(), json!(format));
        f.insert("read-only".into(), json!(disk.readonly));
        if let Some(d) = disk.driver.discard {
            f.insert(
                "discard".into(),
                json!(match d {
                    DiscardMode::Unmap => "unmap",
                    DiscardMode::Ignore => "ignore",
                }),
            );
        }
        if let Some((c, _)) = &cache {
            f.insert("cache".into(), c.clone());
        }
        f.insert(
            "driver".into(),
            json!(disk.driver.format.unwrap_or(DiskFormat::Raw).as_str()),
        );
        f.insert("file".into(), json!(storage));
        push(argv, "-blockdev", Value::Object(f).to_string());
    }

    let alias = disk.alias();
    let da = disk.drive_address().unwrap_or(DriveAddress {
        controller: 0,
        bus: 0,
        target: 0,
        unit: 0,
    });
    let cd = disk.device == DiskDevice::Cdrom;
    let mut dev = match disk.bus {
        DiskBus::Virtio => format!("virtio-blk-pci{}", pci_opts(disk.address.as_ref(), family)),
        DiskBus::Sata => {
            let bus = if da.controller == 0 && family == MachineFamily::Q35 {
                format!("ide.{}", da.unit)
            } else {
                format!("sata{}.{}", da.controller, da.unit)
            };
            format!("{},bus={bus}", if cd { "ide-cd" } else { "ide-hd" })
        }
        DiskBus::Ide => format!(
            "{},bus=ide.{},unit={}",
            if cd { "ide-cd" } else { "ide-hd" },
            da.bus,
            da.unit
        ),
        DiskBus::Scsi => format!(
            "{},bus=scsi{}.0,channel={},scsi-id={},lun={},device_id=drive-{alias}",
            if cd { "scsi-cd" } else { "scsi-hd" },
            da.controller,
            da.bus,
            da.target,
            da.unit
        ),
    };
    if disk.source.is_some() {
        dev.push_str(&format!(",drive={format}"));
    }
    dev.push_str(&format!(",id={alias}"));
    if let Some(b) = bootindex {
        dev.push_str(&format!(",bootindex={b}"));
    }
    if let Some((_, wc)) = cache
        && !cd
    {
        dev.push_str(if wc {
            ",write-cache=on"
        } else {
            ",write-cache=off"
        });
    }
    push(argv, "-device", dev);
}

fn chardev(id: &str, src: &ChrSource) -> String {
    match src {
        ChrSource::Pty => format!("pty,id={id}"),
        ChrSource::Null => format!("null,id={id}"),
        ChrSource::File { path, append } => {
            let mut s = format!("file,id={id},path={}", esc(&path.to_string_lossy()));
            if let Some(a) = append {
                s.push_str(if *a { ",append=on" } else { ",append=off" });
            }
            s
        }
        ChrSource::Unix { path, mode } => {
            let mut s = format!("socket,id={id},path={}", esc(&path.to_string_lossy()));
            if *mode == UnixMode::Bind {
                s.push_str(",server=on,wait=off");
            }
            s
        }
    }
}

fn cpu_arg(def: &DomainDef, accel: Accel) -> Result<Option<String>, DomainXmlError> {
    let Some(cpu) = &def.cpu else {
        return Ok(None);
    };
    let mut s = match (cpu.mode, accel) {
        (CpuMode::HostPassthrough, Accel::Kvm) => "host".to_string(),
        (CpuMode::HostPassthrough, Accel::Tcg) => {
            return Err(DomainXmlError::unsupported_because(
                "cpu mode",
                "host-passthrough",
                "it needs KVM; use mode='maximum' for TCG",
            ));
        }
        // host-model should expand to a named model matching the host; with
        // KVM `host` is the faithful approximation, with TCG `max`.
        (CpuMode::HostModel, Accel::Kvm) => "host".to_string(),
        (CpuMode::HostModel, Accel::Tcg) | (CpuMode::Maximum, _) => "max".to_string(),
        (CpuMode::Custom, _) => match &cpu.model {
            Some(m) => m.clone(),
            None if cpu.features.is_empty() => return Ok(None),
            None => "qemu64".to_string(),
        },
    };
    if let (Some(m), CpuMode::HostPassthrough) = (cpu.migratable, cpu.mode) {
        s.push_str(if m {
            ",migratable=on"
        } else {
            ",migratable=off"
        });
    }
    for f in &cpu.features {
        s.push_str(&format!(
            ",{}={}",
            f.name,
            if f.policy.enables() { "on" } else { "off" }
        ));
    }
    Ok(Some(s))
}

/// Builds QEMU's argument vector (without argv[0]).
pub fn build_argv(
    def: &DomainDef,
    caps: &EmulatorCaps,
    launch: &LaunchParams,
) -> Result<Vec<String>, DomainXmlError> {
    if launch.accel == Accel::Kvm && !caps.kvm {
        return Err(DomainXmlError::InvalidArgument(
            "KVM acceleration requested but this QEMU/host has no usable KVM".into(),
        ));
    }
    let machine = caps.resolve_machine(def.os.machine.as_deref())?.to_string();
    let family = MachineFamily::of(&machine).ok_or_else(|| {
        DomainXmlError::unsupported_because(
            "machine type",
            &machine,
            "only pc (i440fx) and q35 machine types are supported",
        )
    })?;
    let max = caps
        .cpu_max(&machine)
        .unwrap_or(if family == MachineFamily::Q35 {
            288
        } else {
            255
        });
    if def.vcpus > max {
        return Err(DomainXmlError::unsupported_because(
            "vcpu count",
            def.vcpus.to_string(),
            format!("machine '{machine}' supports at most {max}"),
        ));
    }
    let d = &def.devices;
    let mut a: Vec<String> = Vec::new();

    push(
        &mut a,
        "-name",
        format!("guest={},debug-threads=on", esc(&def.name)),
    );
    a.push("-S".into());

    let mut m = format!(
        "{},usb=off,dump-guest-core=off,accel={}",
        esc(&machine),
        launch.accel.as_str()
    );
    if let Some(v) = def.features.vmport {
        m.push_str(if v { ",vmport=on" } else { ",vmport=off" });
    }
    m.push_str(if def.features.acpi {
        ",acpi=on"
    } else {
        ",acpi=off"
    });
    let timer = |n: &str| {
        def.clock
            .as_ref()
            .and_then(|c| c.timers.iter().find(|t| t.name == n))
    };
    if timer("hpet").and_then(|t| t.present) == Some(false) {
        m.push_str(",hpet=off");
    }
    push(&mut a, "-machine", m);
    if let Some(c) = cpu_arg(def, launch.accel)? {
        push(&mut a, "-cpu", c);
    }
    push(&mut a, "-m", format!("size={}k", def.memory_kib));
    let smp = match def.cpu.as_ref().and_then(|c| c.topology) {
        Some(t) => format!(
            "{},sockets={},dies={},cores={},threads={}",
            def.vcpus, t.sockets, t.dies, t.cores, t.threads
        ),
        None => format!("{},sockets={},cores=1,threads=1", def.vcpus, def.vcpus),
    };
    push(&mut a, "-smp", smp);
    push(&mut a, "-uuid", def.uuid.hyphenated().to_string());
    a.push("-no-user-config".into());
    a.push("-nodefaults".into());
    push(
        &mut a,
        "-chardev",
        format!(
            "socket,id=charmonitor,path={},server=on,wait=off",
            esc(&launch.qmp_socket.to_string_lossy())
        ),
    );
    push(
        &mut a,
        "-mon",
        "chardev=charmonitor,id=monitor,mode=control",
    );

    let mut rtc = match def.clock.as_ref().map(|c| c.offset) {
        Some(ClockOffset::Localtime) => "base=localtime".to_string(),
        _ => "base=utc".to_string(),
    };
    if timer("rtc").and_then(|t| t.tickpolicy.as_deref()) == Some("catchup") {
        rtc.push_str(",driftfix=slew");
    }
    push(&mut a, "-rtc", rtc);
    if let Some(p) = timer("pit").and_then(|t| t.tickpolicy.as_deref())
        && launch.accel == Accel::Kvm
    {
        push(&mut a, "-global", format!("kvm-pit.lost_tick_policy={p}"));
    }
    if let Some(pm) = &def.pm {
        let dev = match family {
            MachineFamily::Q35 => "ICH9-LPC",
            MachineFamily::I440fx => "PIIX4_PM",
        };
        if let Some(v) = pm.suspend_to_mem {
            push(
                &mut a,
                "-global",
                format!("{dev}.disable_s3={}", u8::from(!v)),
            );
        }
        if let Some(v) = pm.suspend_to_disk {
            push(
                &mut a,
                "-global",
                format!("{dev}.disable_s4={}", u8::from(!v)),
            );
        }
    }

    // Lifecycle. on_crash has no argv: without a pvpanic device (not
    // modelled) QEMU never learns of a guest crash.
    let reboot_shutdown = def.on_reboot == LifecycleAction::Destroy;
    let keep_on_poweroff = def.on_poweroff != LifecycleAction::Destroy;
    if caps.has_action_option() {
        if reboot_shutdown {
            push(&mut a, "-action", "reboot=shutdown");
        }
        if keep_on_poweroff {
            push(&mut a, "-action", "shutdown=pause");
        }
        if let Some(w) = &d.watchdog {
            push(
                &mut a,
                "-action",
                format!("watchdog={}", w.action.qemu_action()),
            );
        }
    } else {
        if reboot_shutdown {
            a.push("-no-reboot".into());
        }
        if keep_on_poweroff {
            a.push("-no-shutdown".into());
        }
        if let Some(w) = &d.watchdog {
            push(&mut a, "-watchdog-action", w.action.qemu_action());
        }
    }

    push(
        &mut a,
        "-boot",
        if def.os.bootmenu == Some(true) {
            "menu=on,strict=on"
        } else {
            "strict=on"
        },
    );
    if let Some(k) = &def.os.kernel {
        push(&mut a, "-kernel", k.to_string_lossy());
    }
    if let Some(i) = &def.os.initrd {
        push(&mut a, "-initrd", i.to_string_lossy());
    }
    if let Some(c) = &def.os.cmdline {
        push(&mut a, "-append", c.clone());
    }

    // Controllers that are devices of their own. The PCI root, the builtin
    // IDE and q35's builtin AHCI (sata index 0) are part of the machine.
    // USB: only qemu-xhci/nec-xhci/piix3-uhci are instantiated; other models
    // are accepted for compatibility and not instantiated — no USB devices
    // are supported, so an empty controller has nothing to serve.
    for c in &d.controllers {
        let pci = pci_opts(c.address.as_ref(), family);
        match c.ctype {
            ControllerType::Sata if !(c.index == 0 && family == MachineFamily::Q35) => {
                push(
                    &mut a,
                    "-device",
                    format!("ich9-ahci,id=sata{}{pci}", c.index),
                );
            }
            ControllerType::Scsi => {
                push(
                    &mut a,
                    "-device",
                    format!("virtio-scsi-pci,id=scsi{}{pci}", c.index),
                );
            }
            ControllerType::Usb => {
                let dev = match c.model.as_deref() {
                    Some("qemu-xhci") => "qemu-xhci",
                    Some("nec-xhci") => "nec-usb-xhci",
                    Some("piix3-uhci") => "piix3-usb-uhci",
                    _ => continue,
                };
                push(
                    &mut a,
                    "-device",
                    format!("{dev},id={}{pci}", c.alias(family)),
                );
            }
            _ => {}
        }
    }

    let (disk_boot, net_boot) = boot_indexes(def);
    for (i, disk) in d.disks.iter().enumerate() {
        disk_args(&mut a, i, disk, disk_boot[i], family);
    }
    for (i, n) in d.interfaces.iter().enumerate() {
        push(&mut a, "-netdev", format!("user,id=hostnet{i}"));
        let model = n.model.map(|m| m.qemu_device()).unwrap_or("rtl8139");
        let mut dev = format!(
            "{model},netdev=hostnet{i},id=net{i},mac={}{}",
            n.mac,
            pci_opts(n.address.as_ref(), family)
        );
        if let Some(b) = net_boot[i] {
            dev.push_str(&format!(",bootindex={b}"));
        }
        push(&mut a, "-device", dev);
    }
    for (i, s) in d.serials.iter().enumerate() {
        push(
            &mut a,
            "-chardev",
            chardev(&format!("charserial{i}"), &s.source),
        );
        push(
            &mut a,
            "-device",
            format!(
                "isa-serial,chardev=charserial{i},id=serial{i},index={}",
                s.port
            ),
        );
    }
    for au in &d.audios {
        push(&mut a, "-audiodev", format!("none,id=audio{}", au.id));
    }
    match d.graphics.first() {
        Some(GraphicsDef::Vnc { port, listen }) => {
            let host = match listen {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let mut v = match port {
                Some(p) => format!("{host}:{}", p - 5900),
                // QEMU picks the first free display from 0 up to 100, so no
                // port is reserved (and raced for) by the driver.
                None => format!("{host}:0,to=100"),
            };
            if let Some(au) = d.audios.first() {
                v.push_str(&format!(",audiodev=audio{}", au.id));
            }
            push(&mut a, "-vnc", v);
        }
        Some(GraphicsDef::None) | None => push(&mut a, "-display", "none"),
    }
    for (i, v) in d.video.iter().enumerate() {
        let pci = pci_opts(v.address.as_ref(), family);
        match v.model {
            VideoModel::None => {}
            VideoModel::Vga => push(&mut a, "-device", format!("VGA,id=video{i}{pci}")),
            VideoModel::Virtio => {
                let heads = v
                    .heads
                    .map(|h| format!(",max_outputs={h}"))
                    .unwrap_or_default();
                push(
                    &mut a,
                    "-device",
                    format!("virtio-vga,id=video{i}{heads}{pci}"),
                );
            }
        }
    }
    if let Some(w) = &d.watchdog {
        push(
            &mut a,
            "-device",
            format!(
                "i6300esb,id=watchdog0{}",
                pci_opts(w.address.as_ref(), family)
            ),
        );
    }
    if let Some(b) = &d.memballoon
        && b.model == MemballoonModel::Virtio
    {
        push(
            &mut a,
            "-device",
            format!(
                "virtio-balloon-pci,id=balloon0{}",
                pci_opts(b.address.as_ref(), family)
            ),
        );
    }
    push(&mut a, "-pidfile", launch.pidfile.to_string_lossy());
    if launch.daemonize {
        a.push("-daemonize".into());
    }
    push(&mut a, "-msg", "timestamp=on");
    a.extend(def.qemu_commandline.args.iter().cloned());
    Ok(a)
}
