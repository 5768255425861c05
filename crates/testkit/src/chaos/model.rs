//! What the clients know from the answers they got, and what the next
//! check must verify about the operations the kill cut off.
//!
//! Each name a definition check relies on has one writer (a client owns
//! its extra domains, volumes and pools), so "the last answer" is well
//! defined. An operation cut off by the kill may or may not have taken
//! effect: its name is `Unknown` until the next check, which accepts
//! either outcome and then records what it found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::ops::{Kind, Op, Outcome};
use super::world::{Role, World};

/// Whether something exists, as far as the clients know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Present,
    Absent,
    /// The operation that would decide it was cut off by a kill.
    Unknown,
}

/// A consequence of a cut-off or refused operation, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A save cut off by the kill: its image is gone, or complete (and
    /// then, for a plain save, the domain was stopped as saved).
    InterruptedSave {
        domain: String,
        path: PathBuf,
        managed: bool,
    },
    /// A refused save left no image.
    RefusedSave { path: PathBuf },
    /// A block copy cut off by the kill: its destination exists only if
    /// the job it was created for runs.
    InterruptedCopy { domain: String, dest: PathBuf },
    /// A refused block copy left no destination.
    RefusedCopy { dest: PathBuf },
}

/// Answers per operation kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub refused: u64,
    pub interrupted: u64,
}

/// The clients' shared knowledge.
#[derive(Debug, Default)]
pub struct Model {
    /// Extra domains' definitions.
    pub defs: BTreeMap<String, Known>,
    /// Volumes of the main pool.
    pub vols: BTreeMap<String, Known>,
    /// Extra pools' definitions.
    pub pools: BTreeMap<String, Known>,
    /// Secrets (by usage name); `Present` means defined with its value.
    pub secrets: BTreeMap<String, Known>,
    /// Complete save images, any client may restore them.
    pub images: Vec<PathBuf>,
    /// Copy destinations a started block copy explains.
    pub copies: BTreeSet<PathBuf>,
    /// Domains whose block job an operation of this cycle may have ended
    /// (abort, destroy, shutdown, save): a cut-off copy's destination
    /// may then outlive its job.
    pub touched: BTreeSet<String>,
    pub pending: Vec<Pending>,
    pub counts: BTreeMap<Kind, Counts>,
    /// Refusals by operation and libvirt error code, with the first
    /// message seen.
    pub refusals: BTreeMap<(Kind, i32), (u64, String)>,
    serial: u64,
}

impl Model {
    /// Nothing but the base domains and the main pool exists yet.
    pub fn new(w: &World) -> Model {
        let mut m = Model::default();
        for d in &w.domains {
            if matches!(d.role, Role::Extra { .. }) {
                m.defs.insert(d.name.clone(), Known::Absent);
            }
        }
        for c in 0..w.clients {
            for v in w.volumes(c) {
                m.vols.insert(v, Known::Absent);
            }
            for p in w.extra_pools(c) {
                m.pools.insert(p, Known::Absent);
            }
            for s in w.secrets(c) {
                m.secrets.insert(s, Known::Absent);
            }
        }
        m
    }

    /// A number no other operation of the run uses (unique file names).
    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// What the answer `out` to `op` tells.
    pub fn record(&mut self, w: &World, op: &Op, out: &Outcome) {
        let c = self.counts.entry(op.kind()).or_default();
        match out {
            Outcome::Ok => c.ok += 1,
            Outcome::Refused { code, message } => {
                c.refused += 1;
                let r = self
                    .refusals
                    .entry((op.kind(), *code))
                    .or_insert((0, message.clone()));
                r.0 += 1;
            }
            Outcome::Interrupted => c.interrupted += 1,
        }
        match op {
            Op::Define(n) => set(&mut self.defs, n, out, Known::Present),
            Op::Undefine(n) => set(&mut self.defs, n, out, Known::Absent),
            Op::VolCreate(v) | Op::VolClone { to: v, .. } => {
                set(&mut self.vols, v, out, Known::Present)
            }
            Op::VolDelete(v) => set(&mut self.vols, v, out, Known::Absent),
            Op::PoolDefine(p) => set_all_or_nothing(&mut self.pools, p, out, Known::Present),
            Op::PoolUndefine(p) => set_all_or_nothing(&mut self.pools, p, out, Known::Absent),
            Op::SecretDefine(s) => set_all_or_nothing(&mut self.secrets, s, out, Known::Present),
            Op::SecretUndefine(s) => set(&mut self.secrets, s, out, Known::Absent),
            Op::Save(d, path) => self.saved(d, path, out, false),
            Op::ManagedSave(d) => self.saved(d, &w.paths.managed_save(d), out, true),
            Op::BlockCopy(d, dest) => self.copied(d, dest, out),
            _ => {}
        }
        if let Op::BlockAbort(d)
        | Op::Destroy(d)
        | Op::Shutdown(d)
        | Op::ManagedSave(d)
        | Op::Save(d, _) = op
        {
            self.touched.insert(d.clone());
        }
    }

    fn saved(&mut self, domain: &str, path: &Path, out: &Outcome, managed: bool) {
        match (out, managed) {
            (Outcome::Ok, false) => self.images.push(path.to_path_buf()),
            (Outcome::Refused { .. }, false) => self.pending.push(Pending::RefusedSave {
                path: path.to_path_buf(),
            }),
            (Outcome::Interrupted, _) => self.pending.push(Pending::InterruptedSave {
                domain: domain.to_owned(),
                path: path.to_path_buf(),
                managed,
            }),
            _ => {}
        }
    }

    fn copied(&mut self, domain: &str, dest: &Path, out: &Outcome) {
        match out {
            Outcome::Ok => {
                self.copies.insert(dest.to_path_buf());
            }
            Outcome::Refused { .. } => self.pending.push(Pending::RefusedCopy {
                dest: dest.to_path_buf(),
            }),
            Outcome::Interrupted => self.pending.push(Pending::InterruptedCopy {
                domain: domain.to_owned(),
                dest: dest.to_path_buf(),
            }),
        }
    }
}

/// `Ok` sets `to`, a cut-off answer makes it unknown, a refusal changes
/// nothing.
fn set(map: &mut BTreeMap<String, Known>, name: &str, out: &Outcome, to: Known) {
    match out {
        Outcome::Ok => {
            map.insert(name.to_owned(), to);
        }
        Outcome::Interrupted => {
            map.insert(name.to_owned(), Known::Unknown);
        }
        Outcome::Refused { .. } => {}
    }
}

/// For operations made of several calls: a refusal may come after a
/// first call took effect, so only `Ok` is known.
fn set_all_or_nothing(map: &mut BTreeMap<String, Known>, name: &str, out: &Outcome, to: Known) {
    let now = if *out == Outcome::Ok {
        to
    } else {
        Known::Unknown
    };
    map.insert(name.to_owned(), now);
}
