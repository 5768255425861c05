//! What a chaos run acts on: a daemon on a root of its own, the domains
//! (persistent ones every client drives, and names each client defines,
//! undefines or creates on its own), a storage pool, and the paths the
//! checks read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::daemon::{Ferrovirtd, Spec};

/// Which QEMU the domains run.
#[derive(Debug, Clone)]
pub enum Emulator {
    /// qemu-sim (this path), with raw disks; its control socket tells the
    /// checks the run state QEMU is really in.
    Sim(PathBuf),
    /// Real QEMU (this path) with qcow2 disks, under `domain_type`
    /// (`qemu` for TCG, `kvm`).
    Real { qemu: PathBuf, domain_type: String },
}

impl Emulator {
    pub fn is_sim(&self) -> bool {
        matches!(self, Emulator::Sim(_))
    }
}

/// Directories under the root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    /// `virsh save` images.
    pub images: PathBuf,
    /// Block copy destinations.
    pub copies: PathBuf,
    /// The domains' disks.
    pub disks: PathBuf,
    /// The storage pool's directory.
    pub pool: PathBuf,
    /// qemu-sim control sockets.
    pub ctl: PathBuf,
}

impl Paths {
    fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
            images: root.join("images"),
            copies: root.join("copies"),
            disks: root.join("disks"),
            pool: root.join("pool"),
            ctl: root.join("ctl"),
        }
    }

    /// The driver's status records, monitor sockets and pidfiles.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run/qemu")
    }

    /// The driver's capability probes.
    pub fn caps_dir(&self) -> PathBuf {
        self.root.join("run/caps")
    }

    /// Persistent definitions.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc/qemu")
    }

    /// Managed-save images.
    pub fn managed_save_dir(&self) -> PathBuf {
        self.root.join("lib/qemu/save")
    }

    pub fn managed_save(&self, name: &str) -> PathBuf {
        self.managed_save_dir().join(format!("{name}.save"))
    }

    pub fn control(&self, name: &str) -> PathBuf {
        self.ctl.join(format!("{name}.sock"))
    }

    pub fn disk(&self, name: &str) -> PathBuf {
        self.disks.join(format!("{name}.img"))
    }
}

/// How a domain takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Defined at set-up and never undefined; every client drives it.
    Base,
    /// Defined and undefined by one client only (so the expected set of
    /// definitions is known), started by anyone.
    Extra { client: usize },
    /// Created (`virsh create`) by one client only.
    Transient { client: usize },
}

/// One domain of the run.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    pub name: String,
    pub uuid: [u8; 16],
    pub role: Role,
    /// Base domains have a disk (block copies work on it).
    pub disk: bool,
}

impl DomainSpec {
    pub fn uuid_string(&self) -> String {
        uuid_string(&self.uuid)
    }
}

/// The canonical text form of a uuid.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A version-4-shaped uuid unique to (seed, index).
fn uuid_for(seed: u64, index: usize) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&seed.to_be_bytes());
    let i = u64::try_from(index).unwrap_or(0);
    u[8..].copy_from_slice(&i.to_be_bytes());
    u[6] = 0x40 | (u[6] & 0x0f);
    u[8] = 0x80 | (u[8] & 0x3f);
    u
}

/// Extra and transient names per client, and volumes and pools per client.
pub const PER_CLIENT: usize = 2;
/// The pool every run starts with.
pub const POOL: &str = "chaos";

/// The run's domains and paths (the daemon is kept beside it: it is
/// killed and started again while clients read the world).
#[derive(Debug)]
pub struct World {
    pub paths: Paths,
    pub emulator: Emulator,
    pub domains: Vec<DomainSpec>,
    pub clients: usize,
    /// The daemon's read-write socket.
    pub socket: PathBuf,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Setup {
    pub root: PathBuf,
    pub ferrovirtd: PathBuf,
    pub emulator: Emulator,
    pub base_domains: usize,
    pub clients: usize,
    pub seed: u64,
}

impl World {
    /// Creates the root's directories and disks and starts the daemon.
    /// The domains and the pool are defined by [`super::run`] over RPC.
    pub fn create(setup: &Setup) -> Result<(World, Ferrovirtd), Error> {
        let paths = Paths::new(&setup.root);
        for d in [&paths.images, &paths.copies, &paths.disks, &paths.pool] {
            std::fs::create_dir_all(d).map_err(Error::io(format!("create {}", d.display())))?;
        }
        crate::account::qemu_user_dir(&paths.ctl)?;
        let domains = domains(setup);
        for d in domains.iter().filter(|d| d.disk) {
            make_disk(&setup.emulator, &paths.disk(&d.name))?;
        }
        let daemon = Ferrovirtd::start(Spec {
            binary: setup.ferrovirtd.clone(),
            root: paths.root.clone(),
            config: "monitor_timeout_secs = 5\ndestroy_grace_secs = 2\njob_wait_secs = 5\n".into(),
            log_filter: "info".into(),
            netns: None,
        })?;
        let world = World {
            paths,
            emulator: setup.emulator.clone(),
            domains,
            clients: setup.clients,
            socket: daemon.socket(),
        };
        Ok((world, daemon))
    }

    /// The domain XML of `d`.
    pub fn xml(&self, d: &DomainSpec, sim_job_ms: u64) -> String {
        let disk = if d.disk {
            let (ty, path) = match &self.emulator {
                Emulator::Sim(_) => ("raw", self.paths.disk(&d.name)),
                Emulator::Real { .. } => ("qcow2", self.paths.disk(&d.name)),
            };
            format!(
                "    <disk type='file' device='disk'><driver name='qemu' type='{ty}'/>\
                 <source file='{}'/><target dev='vda' bus='virtio'/></disk>\n",
                path.display()
            )
        } else {
            String::new()
        };
        let (ty, emulator, extra) = match &self.emulator {
            Emulator::Sim(sim) => (
                "qemu".to_owned(),
                sim.clone(),
                format!(
                    "  <qemu:commandline>\n    <qemu:arg value='-sim-control'/>\
                     <qemu:arg value='{}'/>\n    <qemu:arg value='-sim-job-ms'/>\
                     <qemu:arg value='{sim_job_ms}'/>\n  </qemu:commandline>\n",
                    self.paths.control(&d.name).display()
                ),
            ),
            Emulator::Real { qemu, domain_type } => {
                (domain_type.clone(), qemu.clone(), String::new())
            }
        };
        format!(
            "<domain type='{ty}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  \
             <name>{}</name>\n  <uuid>{}</uuid>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  \
             <os><type arch='x86_64' machine='pc'>hvm</type></os>\n  <devices>\n    \
             <emulator>{}</emulator>\n{disk}  </devices>\n{extra}</domain>\n",
            d.name,
            d.uuid_string(),
            emulator.display()
        )
    }

    pub fn domain(&self, name: &str) -> Option<&DomainSpec> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// The volumes client `c` creates, deletes and clones.
    pub fn volumes(&self, c: usize) -> Vec<String> {
        (0..PER_CLIENT).map(|j| format!("v{c}{j}.img")).collect()
    }

    /// The pools client `c` defines and undefines.
    pub fn extra_pools(&self, c: usize) -> Vec<String> {
        (0..PER_CLIENT).map(|j| format!("p{c}{j}")).collect()
    }

    /// The secrets client `c` defines and undefines (their usage names).
    pub fn secrets(&self, c: usize) -> Vec<String> {
        (0..PER_CLIENT).map(|j| format!("s{c}{j}")).collect()
    }

    /// The directory of extra pool `name`.
    pub fn pool_dir(&self, name: &str) -> PathBuf {
        self.paths.root.join(format!("pool-{name}"))
    }
}

fn domains(setup: &Setup) -> Vec<DomainSpec> {
    let mut out = Vec::new();
    let mut add = |name: String, role: Role, disk: bool| {
        let uuid = uuid_for(setup.seed, out.len());
        out.push(DomainSpec {
            name,
            uuid,
            role,
            disk,
        });
    };
    for i in 0..setup.base_domains {
        add(format!("c{i}"), Role::Base, true);
    }
    for c in 0..setup.clients {
        for j in 0..PER_CLIENT {
            add(format!("x{c}{j}"), Role::Extra { client: c }, false);
            add(format!("t{c}{j}"), Role::Transient { client: c }, false);
        }
    }
    out
}

/// A disk for the emulator: a small raw file for qemu-sim, a qcow2 image
/// for real QEMU.
fn make_disk(emulator: &Emulator, path: &Path) -> Result<(), Error> {
    match emulator {
        Emulator::Sim(_) => {
            let f = std::fs::File::create(path)
                .map_err(Error::io(format!("create {}", path.display())))?;
            f.set_len(1 << 20)
                .map_err(Error::io(format!("size {}", path.display())))
        }
        Emulator::Real { .. } => {
            let out = Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2"])
                .arg(path)
                .arg("16M")
                .output()
                .map_err(Error::io("run qemu-img"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(Error::CommandFailed {
                    command: format!("qemu-img create {}", path.display()),
                    status: out.status,
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
        }
    }
}
