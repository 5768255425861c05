//! `DomainDef` → QEMU command line (without the binary), one function per
//! section: machine and CPU ([`machine`]), memory ([`memory`]), firmware
//! and boot ([`firmware`]), clock, power and lifecycle ([`platform`]),
//! controllers ([`controllers`]), disks ([`disks`]), NICs ([`net`]),
//! character devices ([`chardev`]), display and sound ([`display`]), the
//! other devices ([`devices`]) and SMBIOS ([`smbios`]).
//!
//! Modern QEMU syntax only (`-blockdev`, `-netdev`+`-device`, `-action`),
//! always with `-S`: the driver starts QEMU paused, finishes set-up over QMP
//! (see [`startup_actions`]) and then sends `cont`, so the guest never runs
//! half-configured.
//!
//! `-no-shutdown` is *not* passed when `on_poweroff` is destroy: QEMU then
//! exits by itself after a guest poweroff (emitting SHUTDOWN with
//! `"guest": true` first), which is exactly what destroy means, and the
//! driver need not race to kill a stopped QEMU. For restart/preserve QEMU
//! must stay alive, so `-action shutdown=pause` (≙ -no-shutdown) is passed
//! and the driver resets+continues or leaves it paused.

mod chardev;
pub(crate) mod controllers;
pub(crate) mod devices;
pub(crate) mod disks;
mod display;
mod firmware;
mod machine;
mod memory;
pub(crate) mod net;
mod platform;
mod smbios;
mod startup;

use std::path::{Path, PathBuf};

use crate::caps::EmulatorCaps;
use crate::def::*;
use crate::devices::address::Address;
use crate::error::DomainXmlError;

pub use disks::{disk_node_names, disk_nodes};
pub use startup::{StartupAction, startup_actions};

/// The accelerator QEMU runs a guest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LaunchParams {
    /// QMP monitor socket (QEMU listens).
    pub qmp_socket: PathBuf,
    /// The listening monitor socket QEMU inherits at this descriptor
    /// number, bound at `qmp_socket` by the caller (`fd=N`): QEMU then
    /// needs no access to the socket's directory.
    pub monitor_fd: Option<i32>,
    /// QEMU's `-pidfile`; `None` when the caller writes it (QEMU, running
    /// as another user, could not).
    pub pidfile: Option<PathBuf>,
    /// The domain's private runtime directory (the driver creates it):
    /// sockets of unix channels without a path, the swtpm socket,
    /// file-backed RAM.
    pub domain_run_dir: PathBuf,
    pub accel: Accel,
    pub daemonize: bool,
    /// Per interface, by index: the descriptor of the tap the driver made
    /// (inherited by QEMU) for `network`, `bridge` and `ethernet` NICs.
    pub taps: Vec<Option<i32>>,
    /// Whether the host has a usable `/dev/vhost-net`: tap NICs get
    /// `vhost=on` unless `<driver name='qemu'/>` asks otherwise.
    pub vhost_net: bool,
    /// The port chosen for a SPICE display with autoport.
    pub spice_port: Option<u16>,
    /// Unix sockets of serials and channels the caller bound (see
    /// `DomainDef::listening_sockets`), by path, with the descriptor
    /// number QEMU inherits each at: QEMU listens on those (`fd=N`)
    /// instead of creating them.
    pub bound_sockets: Vec<(PathBuf, i32)>,
}

/// Where the swtpm socket of a domain with a TPM is (the driver starts
/// swtpm listening there before QEMU).
pub fn tpm_socket(launch: &LaunchParams) -> PathBuf {
    launch.domain_run_dir.join("swtpm.sock")
}

/// UNIX socket paths are limited to 108 bytes including the NUL.
const UNIX_PATH_MAX: usize = 107;

fn check_socket_path(what: &str, p: &Path) -> Result<(), DomainXmlError> {
    let len = p.as_os_str().len();
    if len > UNIX_PATH_MAX {
        return Err(DomainXmlError::unsupported_because(
            what,
            p.to_string_lossy(),
            format!("a UNIX socket path is at most {UNIX_PATH_MAX} bytes, this one {len}"),
        ));
    }
    Ok(())
}

/// QEMU's option-value escaping: a comma inside a value is doubled.
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

fn esc_path(p: &Path) -> String {
    esc(&p.to_string_lossy())
}

/// The argument vector being built.
#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn opt(&mut self, opt: &str, val: impl Into<String>) {
        self.0.push(opt.to_string());
        self.0.push(val.into());
    }

    fn flag(&mut self, opt: &str) {
        self.0.push(opt.to_string());
    }

    fn device(&mut self, val: impl Into<String>) {
        self.opt("-device", val)
    }
}

/// What every section needs besides the definition.
pub(crate) struct Ctx<'a> {
    def: &'a DomainDef,
    caps: &'a EmulatorCaps,
    launch: &'a LaunchParams,
    machine: String,
    family: MachineFamily,
}

/// Runs `f` in the context of a device plugged into a running guest:
/// the definition alone (no probed capabilities, no launch parameters).
pub(crate) fn for_plug<T>(def: &DomainDef, f: impl FnOnce(&Ctx<'_>) -> T) -> T {
    let caps = EmulatorCaps::default();
    let launch = LaunchParams::default();
    let cx = Ctx {
        def,
        caps: &caps,
        launch: &launch,
        machine: String::new(),
        family: def.os.family(),
    };
    f(&cx)
}

impl Ctx<'_> {
    /// The QEMU bus of PCI bus `n`: the root, or the controller `pci.N`.
    fn pci_bus(&self, n: u32) -> String {
        if n == 0 {
            self.family.root_bus().to_string()
        } else {
            format!("pci.{n}")
        }
    }

    /// `,bus=pci.1,addr=0x0[.1][,multifunction=on]` for a PCI address.
    fn pci_opts(&self, addr: Option<&Address>) -> String {
        let Some(p) = addr.and_then(Address::pci) else {
            return String::new();
        };
        let mut s = format!(",bus={},", self.pci_bus(p.bus));
        if let Some(m) = p.multifunction {
            s.push_str(if m {
                "multifunction=on,"
            } else {
                "multifunction=off,"
            });
        }
        s.push_str(&format!("addr=0x{:x}", p.slot));
        if p.function != 0 {
            s.push_str(&format!(".0x{:x}", p.function));
        }
        s
    }

    /// Fails clearly when the emulator lacks the device model `device`
    /// that `what` '`value`' needs.
    fn require_device(&self, device: &str, what: &str, value: &str) -> Result<(), DomainXmlError> {
        if self.caps.device_types.is_empty() || self.caps.has_device(device) {
            return Ok(());
        }
        let why = if device == value {
            "this QEMU binary does not have that device".to_string()
        } else {
            format!("this QEMU binary does not have the device '{device}'")
        };
        Err(DomainXmlError::unsupported_because(what, value, &why))
    }
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
    let cx = Ctx {
        def,
        caps,
        launch,
        machine,
        family,
    };
    let mut a = Args::default();
    a.opt(
        "-name",
        format!("guest={},debug-threads=on", esc(&def.name)),
    );
    a.flag("-S");
    machine::machine(&cx, &mut a)?;
    firmware::firmware(&cx, &mut a);
    machine::cpu(&cx, &mut a)?;
    memory::memory(&cx, &mut a)?;
    machine::smp(&cx, &mut a)?;
    memory::numa(&cx, &mut a);
    memory::iothreads(&cx, &mut a);
    smbios::smbios(&cx, &mut a)?;
    a.opt("-uuid", def.uuid.hyphenated().to_string());
    a.flag("-no-user-config");
    a.flag("-nodefaults");
    monitor(&cx, &mut a);
    platform::clock(&cx, &mut a);
    platform::power(&cx, &mut a);
    platform::lifecycle(&cx, &mut a);
    firmware::boot(&cx, &mut a);
    controllers::controllers(&cx, &mut a)?;
    disks::disks(&cx, &mut a)?;
    net::interfaces(&cx, &mut a)?;
    chardev::serials(&cx, &mut a)?;
    chardev::channels(&cx, &mut a)?;
    devices::inputs(&cx, &mut a)?;
    devices::tpm(&cx, &mut a)?;
    display::audio(&cx, &mut a);
    display::graphics(&cx, &mut a)?;
    display::video(&cx, &mut a)?;
    display::sound(&cx, &mut a)?;
    devices::redirdevs(&cx, &mut a)?;
    devices::watchdog(&cx, &mut a);
    devices::balloon(&cx, &mut a);
    devices::rngs(&cx, &mut a)?;
    if let Some(pidfile) = &launch.pidfile {
        a.opt("-pidfile", pidfile.to_string_lossy());
    }
    if launch.daemonize {
        a.flag("-daemonize");
    }
    a.opt("-msg", "timestamp=on");
    a.0.extend(def.qemu_commandline.args.iter().cloned());
    Ok(a.0)
}

fn monitor(cx: &Ctx<'_>, a: &mut Args) {
    let at = match cx.launch.monitor_fd {
        Some(fd) => format!("fd={fd}"),
        None => format!("path={}", esc_path(&cx.launch.qmp_socket)),
    };
    a.opt(
        "-chardev",
        format!("socket,id=charmonitor,{at},server=on,wait=off"),
    );
    a.opt("-mon", "chardev=charmonitor,id=monitor,mode=control");
}
