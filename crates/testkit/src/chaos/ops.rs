//! Every mutating operation a chaos client does, over the real RPC
//! protocol, and how its answer is classified.

use std::path::PathBuf;

use rpc::protocol::remote::{
    DomainArgs, DomainAttachDeviceFlagsArgs, DomainBlockCopyArgs, DomainCreateXmlArgs,
    DomainDefineXmlArgs, DomainDetachDeviceAliasArgs, DomainFlagsArgs, DomainPathFlagsArgs,
    DomainRestoreArgs, DomainRet, DomainSaveArgs, NameArgs, NonnullDomain, XmlFlagsArgs,
    procedure as p,
};
use rpc::protocol::remote::{NonnullSecret, SecretArgs, SecretRet, SecretSetValueArgs};
use rpc::protocol::remote::{
    NonnullStoragePool, NonnullStorageVol, StoragePoolArgs, StoragePoolFlagsArgs, StoragePoolRet,
    StorageVolCreateXmlArgs, StorageVolCreateXmlFromArgs, StorageVolFlagsArgs,
    StorageVolLookupByNameArgs, StorageVolRet,
};
use rpc::xdr::Opaque;
use rpc::{Client, ClientError};

use super::rng::Rng;
use super::world::{DomainSpec, POOL, Role, World, uuid_string};

/// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE`: an image does not block undefine.
const UNDEFINE_MANAGED_SAVE: u32 = 1;
/// `VIR_DOMAIN_AFFECT_LIVE`.
const AFFECT_LIVE: u32 = 1;

/// One operation, on names of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Start(String),
    Create(String),
    Destroy(String),
    Shutdown(String),
    Suspend(String),
    Resume(String),
    Define(String),
    Undefine(String),
    Save(String, PathBuf),
    Restore(PathBuf),
    ManagedSave(String),
    BlockCopy(String, PathBuf),
    BlockAbort(String),
    /// Plugs a second virtio disk (`vdb`) into the running domain.
    AttachDisk(String),
    /// Unplugs `vdb` (left pending when the daemon dies meanwhile).
    DetachDisk(String),
    VolCreate(String),
    VolDelete(String),
    VolClone {
        from: String,
        to: String,
    },
    PoolDefine(String),
    PoolUndefine(String),
    /// Defines secret `name` (a fixed uuid per name) and sets its value.
    SecretDefine(String),
    SecretUndefine(String),
}

/// The kinds of [`Op`], for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Start,
    Create,
    Destroy,
    Shutdown,
    Suspend,
    Resume,
    Define,
    Undefine,
    Save,
    Restore,
    ManagedSave,
    BlockCopy,
    BlockAbort,
    AttachDisk,
    DetachDisk,
    VolCreate,
    VolDelete,
    VolClone,
    PoolDefine,
    PoolUndefine,
    SecretDefine,
    SecretUndefine,
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::Start(_) => Kind::Start,
            Op::Create(_) => Kind::Create,
            Op::Destroy(_) => Kind::Destroy,
            Op::Shutdown(_) => Kind::Shutdown,
            Op::Suspend(_) => Kind::Suspend,
            Op::Resume(_) => Kind::Resume,
            Op::Define(_) => Kind::Define,
            Op::Undefine(_) => Kind::Undefine,
            Op::Save(..) => Kind::Save,
            Op::Restore(_) => Kind::Restore,
            Op::ManagedSave(_) => Kind::ManagedSave,
            Op::BlockCopy(..) => Kind::BlockCopy,
            Op::BlockAbort(_) => Kind::BlockAbort,
            Op::AttachDisk(_) => Kind::AttachDisk,
            Op::DetachDisk(_) => Kind::DetachDisk,
            Op::VolCreate(_) => Kind::VolCreate,
            Op::VolDelete(_) => Kind::VolDelete,
            Op::VolClone { .. } => Kind::VolClone,
            Op::PoolDefine(_) => Kind::PoolDefine,
            Op::PoolUndefine(_) => Kind::PoolUndefine,
            Op::SecretDefine(_) => Kind::SecretDefine,
            Op::SecretUndefine(_) => Kind::SecretUndefine,
        }
    }
}

/// How an operation ended, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The daemon answered with an error (libvirt's code and message).
    Refused {
        code: i32,
        message: String,
    },
    /// The connection broke before an answer: the daemon was killed.
    Interrupted,
}

impl Outcome {
    fn of<T>(r: Result<T, ClientError>) -> Outcome {
        match r {
            Ok(_) => Outcome::Ok,
            Err(ClientError::Remote(e)) => Outcome::Refused {
                code: e.code,
                message: e.message.clone().unwrap_or_default(),
            },
            // Io, Closed, a frame cut short: the daemon died under us. A
            // reply that does not decode is a refusal the checks report.
            Err(e @ (ClientError::Xdr(_) | ClientError::Unexpected(_))) => Outcome::Refused {
                code: -1,
                message: format!("bad reply: {e}"),
            },
            Err(_) => Outcome::Interrupted,
        }
    }
}

/// What a client knows when it chooses: the images it may restore.
pub struct Choice<'a> {
    pub world: &'a World,
    pub client: usize,
    /// Complete save images (any client's).
    pub images: &'a [PathBuf],
    /// A number unique to this operation (file names).
    pub serial: u64,
}

/// A random operation for client `c.client`.
pub fn choose(rng: &mut Rng, c: &Choice<'_>) -> Op {
    let w = c.world;
    let base: Vec<&DomainSpec> = w.domains.iter().filter(|d| d.role == Role::Base).collect();
    let own = |role: fn(usize) -> Role| -> Vec<&DomainSpec> {
        w.domains
            .iter()
            .filter(|d| d.role == role(c.client))
            .collect()
    };
    let extra = own(|client| Role::Extra { client });
    let transient = own(|client| Role::Transient { client });
    let runnable: Vec<&DomainSpec> = base.iter().chain(extra.iter()).copied().collect();
    let any = |rng: &mut Rng, from: &[&DomainSpec]| from[rng.below(from.len())].name.clone();
    let with_disk = |rng: &mut Rng| any(rng, &base);
    let vols = w.volumes(c.client);
    let pools = w.extra_pools(c.client);
    let vol = |rng: &mut Rng| vols[rng.below(vols.len())].clone();
    let pool = |rng: &mut Rng| pools[rng.below(pools.len())].clone();
    let secrets = w.secrets(c.client);
    let secret = |rng: &mut Rng| secrets[rng.below(secrets.len())].clone();
    match rng.below(26) {
        0..=2 => Op::Start(any(rng, &runnable)),
        3 => Op::Create(any(rng, &transient)),
        4 | 5 => Op::Destroy(any(
            rng,
            &runnable
                .iter()
                .chain(transient.iter())
                .copied()
                .collect::<Vec<_>>(),
        )),
        6 => Op::Shutdown(any(rng, &runnable)),
        7 => Op::Suspend(any(rng, &runnable)),
        8 => Op::Resume(any(rng, &runnable)),
        9 => Op::Define(any(rng, &extra)),
        10 => Op::Undefine(any(rng, &extra)),
        11 | 12 => {
            let d = with_disk(rng);
            let path = w
                .paths
                .images
                .join(format!("{d}-{}-{}.save", c.client, c.serial));
            Op::Save(d, path)
        }
        13 => match rng.pick(c.images) {
            Some(img) => Op::Restore(img.clone()),
            None => Op::Start(with_disk(rng)),
        },
        14 => Op::ManagedSave(with_disk(rng)),
        15 => {
            let d = with_disk(rng);
            let dest = w
                .paths
                .copies
                .join(format!("{d}-{}-{}.img", c.client, c.serial));
            Op::BlockCopy(d, dest)
        }
        16 => Op::BlockAbort(with_disk(rng)),
        17 => Op::VolCreate(vol(rng)),
        18 => Op::VolDelete(vol(rng)),
        19 => Op::VolClone {
            from: vol(rng),
            to: vol(rng),
        },
        20 => Op::PoolDefine(pool(rng)),
        22 => Op::AttachDisk(with_disk(rng)),
        23 => Op::DetachDisk(with_disk(rng)),
        24 => Op::SecretDefine(secret(rng)),
        25 => Op::SecretUndefine(secret(rng)),
        _ => Op::PoolUndefine(pool(rng)),
    }
}

/// A domain as the wire names it (the daemon resolves the uuid).
pub fn wire_domain(d: &DomainSpec) -> NonnullDomain {
    NonnullDomain {
        name: d.name.clone(),
        uuid: d.uuid,
        id: -1,
    }
}

impl Op {
    /// The domain the operation acts on, if it acts on one.
    fn domain(&self) -> Option<&str> {
        match self {
            Op::Start(n)
            | Op::Create(n)
            | Op::Destroy(n)
            | Op::Shutdown(n)
            | Op::Suspend(n)
            | Op::Resume(n)
            | Op::Define(n)
            | Op::Undefine(n)
            | Op::Save(n, _)
            | Op::ManagedSave(n)
            | Op::BlockCopy(n, _)
            | Op::BlockAbort(n)
            | Op::AttachDisk(n)
            | Op::DetachDisk(n) => Some(n),
            _ => None,
        }
    }
}

/// Runs `op` on `client`.
pub async fn run(client: &Client, w: &World, sim_job_ms: u64, op: &Op) -> Outcome {
    let spec = op.domain().map(|n| w.domain(n));
    let res = match spec {
        Some(None) => {
            return Outcome::Refused {
                code: -1,
                message: format!("the world has no domain for {op:?}"),
            };
        }
        Some(Some(d)) => run_on_domain(client, w, sim_job_ms, op, d).await,
        None => run_other(client, w, op).await,
    };
    Outcome::of(res)
}

async fn run_on_domain(
    client: &Client,
    w: &World,
    sim_job_ms: u64,
    op: &Op,
    d: &DomainSpec,
) -> Res {
    let dom = wire_domain(d);
    match op {
        Op::Start(_) => unit(client, p::DOMAIN_CREATE, &DomainArgs { dom }).await,
        Op::Destroy(_) => unit(client, p::DOMAIN_DESTROY, &DomainArgs { dom }).await,
        Op::Shutdown(_) => unit(client, p::DOMAIN_SHUTDOWN, &DomainArgs { dom }).await,
        Op::Suspend(_) => unit(client, p::DOMAIN_SUSPEND, &DomainArgs { dom }).await,
        Op::Resume(_) => unit(client, p::DOMAIN_RESUME, &DomainArgs { dom }).await,
        Op::Create(_) => {
            let args = DomainCreateXmlArgs {
                xml_desc: w.xml(d, sim_job_ms),
                flags: 0,
            };
            client
                .call::<_, DomainRet>(p::DOMAIN_CREATE_XML, &args)
                .await
                .map(drop)
        }
        Op::Define(_) => {
            let args = DomainDefineXmlArgs {
                xml: w.xml(d, sim_job_ms),
            };
            client
                .call::<_, DomainRet>(p::DOMAIN_DEFINE_XML, &args)
                .await
                .map(drop)
        }
        Op::Undefine(_) => {
            let flags = UNDEFINE_MANAGED_SAVE;
            unit(
                client,
                p::DOMAIN_UNDEFINE_FLAGS,
                &DomainFlagsArgs { dom, flags },
            )
            .await
        }
        Op::Save(_, path) => {
            let to = path.display().to_string();
            unit(client, p::DOMAIN_SAVE, &DomainSaveArgs { dom, to }).await
        }
        Op::ManagedSave(_) => {
            unit(
                client,
                p::DOMAIN_MANAGED_SAVE,
                &DomainFlagsArgs { dom, flags: 0 },
            )
            .await
        }
        Op::BlockCopy(_, dest) => block_copy(client, dom, dest).await,
        Op::BlockAbort(_) => {
            let args = DomainPathFlagsArgs {
                dom,
                path: "vda".into(),
                flags: 0,
            };
            unit(client, p::DOMAIN_BLOCK_JOB_ABORT, &args).await
        }
        Op::AttachDisk(name) => {
            let src = w.paths.disks.join(format!("{name}-hotplug.img"));
            if !src.exists() {
                // An empty raw image; qcow2 is not needed for a plug.
                let _ = std::fs::write(&src, b"");
            }
            let xml = format!(
                "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
                 <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
                src.display()
            );
            let args = DomainAttachDeviceFlagsArgs {
                dom,
                xml,
                flags: AFFECT_LIVE,
            };
            unit(client, p::DOMAIN_ATTACH_DEVICE_FLAGS, &args).await
        }
        Op::DetachDisk(_) => {
            let args = DomainDetachDeviceAliasArgs {
                dom,
                alias: "virtio-disk1".into(),
                flags: AFFECT_LIVE,
            };
            unit(client, p::DOMAIN_DETACH_DEVICE_ALIAS, &args).await
        }
        _ => run_other(client, w, op).await,
    }
}

async fn run_other(client: &Client, w: &World, op: &Op) -> Res {
    match op {
        Op::Restore(path) => {
            let from = path.display().to_string();
            unit(client, p::DOMAIN_RESTORE, &DomainRestoreArgs { from }).await
        }
        Op::VolCreate(v) => vol_create(client, v).await,
        Op::VolDelete(v) => vol_delete(client, v).await,
        Op::VolClone { from, to } => vol_clone(client, from, to).await,
        Op::PoolDefine(name) => pool_define(client, w, name).await,
        Op::PoolUndefine(name) => pool_undefine(client, name).await,
        Op::SecretDefine(name) => secret_define(client, name).await,
        Op::SecretUndefine(name) => {
            let args = SecretArgs {
                secret: wire_secret(name),
            };
            unit(client, p::SECRET_UNDEFINE, &args).await
        }
        _ => Err(ClientError::Unexpected(format!("{op:?} names no domain"))),
    }
}

type Res = Result<(), ClientError>;

async fn unit<A: rpc::xdr::Xdr>(client: &Client, procedure: i32, args: &A) -> Res {
    client.call::<A, ()>(procedure, args).await
}

async fn block_copy(client: &Client, dom: NonnullDomain, dest: &std::path::Path) -> Res {
    let args = DomainBlockCopyArgs {
        dom,
        path: "vda".into(),
        destxml: format!(
            "<disk type='file'><source file='{}'/><driver type='raw'/></disk>",
            dest.display()
        ),
        params: Vec::new(),
        flags: 0,
    };
    unit(client, p::DOMAIN_BLOCK_COPY, &args).await
}

/// The storage pool `name` as the wire names it.
pub async fn pool(client: &Client, name: &str) -> Result<NonnullStoragePool, ClientError> {
    let args = NameArgs { name: name.into() };
    let ret: StoragePoolRet = client.call(p::STORAGE_POOL_LOOKUP_BY_NAME, &args).await?;
    Ok(ret.pool)
}

async fn volume(client: &Client, name: &str) -> Result<NonnullStorageVol, ClientError> {
    let args = StorageVolLookupByNameArgs {
        pool: pool(client, POOL).await?,
        name: name.into(),
    };
    let ret: StorageVolRet = client.call(p::STORAGE_VOL_LOOKUP_BY_NAME, &args).await?;
    Ok(ret.vol)
}

fn vol_xml(name: &str) -> String {
    format!(
        "<volume><name>{name}</name><capacity unit='bytes'>1048576</capacity>\
         <target><format type='raw'/></target></volume>"
    )
}

async fn vol_create(client: &Client, name: &str) -> Res {
    let args = StorageVolCreateXmlArgs {
        pool: pool(client, POOL).await?,
        xml: vol_xml(name),
        flags: 0,
    };
    client
        .call::<_, StorageVolRet>(p::STORAGE_VOL_CREATE_XML, &args)
        .await
        .map(drop)
}

async fn vol_delete(client: &Client, name: &str) -> Res {
    let args = StorageVolFlagsArgs {
        vol: volume(client, name).await?,
        flags: 0,
    };
    unit(client, p::STORAGE_VOL_DELETE, &args).await
}

async fn vol_clone(client: &Client, from: &str, to: &str) -> Res {
    let args = StorageVolCreateXmlFromArgs {
        pool: pool(client, POOL).await?,
        xml: vol_xml(to),
        clonevol: volume(client, from).await?,
        flags: 0,
    };
    client
        .call::<_, StorageVolRet>(p::STORAGE_VOL_CREATE_XML_FROM, &args)
        .await
        .map(drop)
}

/// Defines, builds and starts pool `name` (stops at the first refusal).
async fn pool_define(client: &Client, w: &World, name: &str) -> Res {
    let args = XmlFlagsArgs {
        xml: pool_xml(name, &w.pool_dir(name)),
        flags: 0,
    };
    let ret: StoragePoolRet = client.call(p::STORAGE_POOL_DEFINE_XML, &args).await?;
    let flags = StoragePoolFlagsArgs {
        pool: ret.pool,
        flags: 0,
    };
    unit(client, p::STORAGE_POOL_BUILD, &flags).await?;
    unit(client, p::STORAGE_POOL_CREATE, &flags).await
}

/// Stops pool `name` if it runs, then undefines it.
async fn pool_undefine(client: &Client, name: &str) -> Res {
    let args = StoragePoolArgs {
        pool: pool(client, name).await?,
    };
    match unit(client, p::STORAGE_POOL_DESTROY, &args).await {
        Ok(()) | Err(ClientError::Remote(_)) => {}
        Err(e) => return Err(e),
    }
    unit(client, p::STORAGE_POOL_UNDEFINE, &args).await
}

/// `VIR_SECRET_USAGE_TYPE_TLS`: the chaos secrets' usage.
const USAGE_TLS: i32 = 4;

/// Secret `name` as the wire names it: its uuid is fixed by its name.
pub fn wire_secret(name: &str) -> NonnullSecret {
    let mut uuid = [
        0x5e, 0xc7, 0xe7, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0,
    ];
    for (i, b) in name.bytes().rev().take(6).enumerate() {
        uuid[15 - i] = b;
    }
    NonnullSecret {
        uuid,
        usage_type: USAGE_TLS,
        usage_id: name.to_owned(),
    }
}

/// The value a chaos secret holds once its define was answered.
pub fn secret_value(name: &str) -> Vec<u8> {
    name.repeat(1024).into_bytes()
}

/// Defines secret `name` (an update when it exists) and sets its value.
async fn secret_define(client: &Client, name: &str) -> Res {
    let secret = wire_secret(name);
    let args = XmlFlagsArgs {
        xml: format!(
            "<secret><uuid>{}</uuid><usage type='tls'><name>{name}</name></usage></secret>",
            uuid_string(&secret.uuid)
        ),
        flags: 0,
    };
    client
        .call::<_, SecretRet>(p::SECRET_DEFINE_XML, &args)
        .await?;
    let args = SecretSetValueArgs {
        secret,
        value: Opaque(secret_value(name)),
        flags: 0,
    };
    unit(client, p::SECRET_SET_VALUE, &args).await
}

/// A directory pool.
pub fn pool_xml(name: &str, dir: &std::path::Path) -> String {
    format!(
        "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
        dir.display()
    )
}
