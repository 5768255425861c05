//! Domain procedures: lists and lookups, definitions, lifecycle.
//!
//! Lists and lookups read the driver's registry and never wait behind a
//! job; lifecycle calls go through the driver's job lock, except destroy,
//! which never waits behind anything.

use std::sync::Arc;

use qemu::{
    Domain, DomainState, DomainSummary, ListFilter, StartOptions, StatePolicy, UndefineOptions,
};
use rpc::CallContext;
use rpc::protocol::remote::{
    ConnectListAllDomainsArgs, ConnectListAllDomainsRet, ConnectListDefinedDomainsArgs,
    ConnectListDefinedDomainsRet, ConnectListDomainsArgs, ConnectListDomainsRet, DomainArgs,
    DomainCreateXmlArgs, DomainDefineXmlArgs, DomainDefineXmlFlagsArgs, DomainFlagsArgs,
    DomainLookupByIdArgs, DomainLookupByNameArgs, DomainLookupByUuidArgs, DomainRet,
    DomainSetAutostartArgs, NumRet,
};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::connect::*;
use crate::flags::{self, domain as f};
use crate::wire::{invalid_arg, listed_domain, vir, wire_domain, wire_id};

// ---- lists and lookups ----

pub(crate) async fn list_all(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListAllDomainsArgs,
) -> Reply<ConnectListAllDomainsRet> {
    let filter = DomainListFilter::from_flags(a.flags)?;
    let domains: Vec<_> = d
        .driver
        .list(ListFilter::All)
        .into_iter()
        .filter(|s| filter.matches(s, || managed_save(d, s)))
        .map(listed_domain)
        .collect();
    let count = u32::try_from(domains.len()).unwrap_or(u32::MAX);
    Ok(ConnectListAllDomainsRet {
        domains: if a.need_results != 0 {
            domains
        } else {
            Vec::new()
        },
        ret: count,
    })
}

fn managed_save(d: &Daemon, s: &DomainSummary) -> bool {
    d.driver
        .lookup_by_uuid(&s.uuid)
        .is_ok_and(|dom| d.driver.has_managed_save(&dom))
}

/// `virConnectListAllDomainsFlags` as a filter. Each pair of opposite
/// flags picks one side (`Some`), or either when neither or both are set.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct DomainListFilter {
    active: Option<bool>,
    persistent: Option<bool>,
    managed_save: Option<bool>,
    autostart: Option<bool>,
    has_snapshot: Option<bool>,
    has_checkpoint: Option<bool>,
    /// The states RUNNING, PAUSED, SHUTOFF, OTHER ask for; all when none.
    states: [bool; 4],
}

impl DomainListFilter {
    pub(crate) fn from_flags(flags: u32) -> Result<Self, VirError> {
        let pairs = [
            (LIST_DOMAINS_ACTIVE, LIST_DOMAINS_INACTIVE),
            (LIST_DOMAINS_PERSISTENT, LIST_DOMAINS_TRANSIENT),
            (LIST_DOMAINS_MANAGEDSAVE, LIST_DOMAINS_NO_MANAGEDSAVE),
            (LIST_DOMAINS_AUTOSTART, LIST_DOMAINS_NO_AUTOSTART),
            (LIST_DOMAINS_HAS_SNAPSHOT, LIST_DOMAINS_NO_SNAPSHOT),
            (LIST_DOMAINS_HAS_CHECKPOINT, LIST_DOMAINS_NO_CHECKPOINT),
        ];
        let states = [
            LIST_DOMAINS_RUNNING,
            LIST_DOMAINS_PAUSED,
            LIST_DOMAINS_SHUTOFF,
            LIST_DOMAINS_OTHER,
        ];
        let known = pairs.iter().fold(0, |m, (on, off)| m | on | off) | states.iter().sum::<u32>();
        flags::check("virConnectListAllDomains", flags, known)?;
        let pick = |(on, off): (u32, u32)| match (flags & on != 0, flags & off != 0) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        Ok(Self {
            active: pick(pairs[0]),
            persistent: pick(pairs[1]),
            managed_save: pick(pairs[2]),
            autostart: pick(pairs[3]),
            has_snapshot: pick(pairs[4]),
            has_checkpoint: pick(pairs[5]),
            states: states.map(|s| flags & s != 0),
        })
    }

    /// `managed_save` is asked only when the filter needs it (a stat).
    pub(crate) fn matches(&self, s: &DomainSummary, managed_save: impl FnOnce() -> bool) -> bool {
        let is = |want: Option<bool>, v: bool| want.is_none_or(|w| w == v);
        is(self.active, s.state.state.is_active())
            && is(self.persistent, s.persistent)
            && is(self.autostart, s.autostart)
            // Snapshots and checkpoints are not supported: no domain has any.
            && is(self.has_snapshot, false)
            && is(self.has_checkpoint, false)
            && self.state_matches(s.state.state)
            && (self.managed_save.is_none() || is(self.managed_save, managed_save()))
    }

    fn state_matches(&self, st: DomainState) -> bool {
        let [running, paused, shutoff, other] = self.states;
        if !(running || paused || shutoff || other) {
            return true;
        }
        match st {
            DomainState::Running => running,
            DomainState::Paused => paused,
            DomainState::Shutoff => shutoff,
            _ => other,
        }
    }
}

pub(crate) async fn num_of_domains(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    Ok(num(d.driver.list(ListFilter::Active).len()))
}

pub(crate) async fn list_domains(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListDomainsArgs,
) -> Reply<ConnectListDomainsRet> {
    let max = usize::try_from(a.maxids).unwrap_or(0);
    let ids = d
        .driver
        .list(ListFilter::Active)
        .into_iter()
        .filter(|s| s.id.is_some())
        .map(|s| wire_id(s.id))
        .take(max)
        .collect();
    Ok(ConnectListDomainsRet { ids })
}

pub(crate) async fn num_of_defined_domains(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    Ok(num(defined(d).len()))
}

pub(crate) async fn list_defined_domains(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListDefinedDomainsArgs,
) -> Reply<ConnectListDefinedDomainsRet> {
    let max = usize::try_from(a.maxnames).unwrap_or(0);
    let names = defined(d).into_iter().map(|s| s.name).take(max).collect();
    Ok(ConnectListDefinedDomainsRet { names })
}

/// Inactive persistent domains (what `virsh list --inactive` shows).
fn defined(d: &Daemon) -> Vec<DomainSummary> {
    d.driver
        .list(ListFilter::Inactive)
        .into_iter()
        .filter(|s| s.persistent)
        .collect()
}

fn num(n: usize) -> NumRet {
    NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    }
}

pub(crate) async fn lookup_by_name(
    d: &Daemon,
    _: &CallContext,
    a: DomainLookupByNameArgs,
) -> Reply<DomainRet> {
    ret(d.driver.lookup_by_name(&a.name).map_err(vir)?)
}

pub(crate) async fn lookup_by_uuid(
    d: &Daemon,
    _: &CallContext,
    a: DomainLookupByUuidArgs,
) -> Reply<DomainRet> {
    let uuid = uuid::Uuid::from_bytes(a.uuid);
    ret(d.driver.lookup_by_uuid(&uuid).map_err(vir)?)
}

pub(crate) async fn lookup_by_id(
    d: &Daemon,
    _: &CallContext,
    a: DomainLookupByIdArgs,
) -> Reply<DomainRet> {
    let id = u32::try_from(a.id).map_err(|_| invalid_arg("negative domain id"))?;
    ret(d.driver.lookup_by_id(id).map_err(vir)?)
}

fn ret(dom: Arc<Domain>) -> Reply<DomainRet> {
    Ok(DomainRet {
        dom: wire_domain(&dom),
    })
}

// ---- definitions ----

pub(crate) async fn define_xml(
    d: &Daemon,
    _: &CallContext,
    a: DomainDefineXmlArgs,
) -> Reply<DomainRet> {
    ret(d.driver.define_xml(&a.xml).await.map_err(vir)?)
}

/// `VIR_DOMAIN_DEFINE_VALIDATE` asks for what every definition gets: the
/// XML is checked against the supported schema.
pub(crate) async fn define_xml_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainDefineXmlFlagsArgs,
) -> Reply<DomainRet> {
    flags::check("virDomainDefineXMLFlags", a.flags, f::DEFINE_VALIDATE)?;
    ret(d.driver.define_xml(&a.xml).await.map_err(vir)?)
}

pub(crate) async fn undefine(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    undefine_with(d, &d.domain(&a.dom)?, 0).await
}

pub(crate) async fn undefine_flags(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check(
        "virDomainUndefineFlags",
        a.flags,
        f::UNDEFINE_MANAGED_SAVE
            | f::UNDEFINE_SNAPSHOTS_METADATA
            | f::UNDEFINE_CHECKPOINTS_METADATA
            | f::UNDEFINE_NVRAM
            | f::UNDEFINE_KEEP_NVRAM
            | f::UNDEFINE_TPM
            | f::UNDEFINE_KEEP_TPM,
    )?;
    undefine_with(d, &d.domain(&a.dom)?, a.flags).await
}

/// As libvirt: a managed-save image blocks undefine unless
/// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE` asks to remove it; an NVRAM file
/// blocks it unless `--nvram` removes it or `--keep-nvram` keeps it; TPM
/// state goes unless `--keep-tpm`. Snapshot and checkpoint metadata do not
/// exist here, so there is nothing to keep or remove.
async fn undefine_with(d: &Daemon, dom: &Arc<Domain>, flags: u32) -> Reply<()> {
    let opts = undefine_options(flags)?;
    if d.driver.has_managed_save(dom) {
        if flags & f::UNDEFINE_MANAGED_SAVE == 0 {
            return Err(VirError::new(
                ErrorCode::OperationInvalid,
                ErrorDomain::Qemu,
                "Requested operation is not valid: Refusing to undefine while domain managed save image exists",
            ));
        }
        d.driver.managed_save_remove(dom).await.map_err(vir)?;
    }
    d.driver.undefine_with(dom, opts).await.map_err(vir)
}

/// The NVRAM and TPM flags of `virDomainUndefineFlags`; each pair is
/// exclusive, as in libvirt.
fn undefine_options(flags: u32) -> Result<UndefineOptions, VirError> {
    let policy = |remove: u32, keep: u32, what: &str| match (flags & remove != 0, flags & keep != 0)
    {
        (true, true) => Err(invalid_arg(format!("cannot both keep and delete {what}"))),
        (true, false) => Ok(StatePolicy::Remove),
        (false, true) => Ok(StatePolicy::Keep),
        (false, false) => Ok(StatePolicy::Default),
    };
    Ok(UndefineOptions {
        nvram: policy(f::UNDEFINE_NVRAM, f::UNDEFINE_KEEP_NVRAM, "nvram")?,
        tpm: policy(f::UNDEFINE_TPM, f::UNDEFINE_KEEP_TPM, "TPM state")?,
    })
}

// ---- lifecycle ----

/// The `virDomainCreateFlags` both start procedures accept.
const START_FLAGS: u32 = f::START_PAUSED
    | f::START_AUTODESTROY
    | f::START_BYPASS_CACHE
    | f::START_FORCE_BOOT
    | f::START_VALIDATE;

/// `virsh create`: a transient domain, started at once.
pub(crate) async fn create_xml(
    d: &Daemon,
    _: &CallContext,
    a: DomainCreateXmlArgs,
) -> Reply<DomainRet> {
    flags::check("virDomainCreateXML", a.flags, START_FLAGS)?;
    let paused = a.flags & f::START_PAUSED != 0;
    ret(d
        .driver
        .create_xml(&a.xml_desc, paused)
        .await
        .map_err(vir)?)
}

pub(crate) async fn create(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.start(&dom, false).await.map_err(vir)
}

/// `virsh start [--paused] [--force-boot]`.
pub(crate) async fn create_with_flags(
    d: &Daemon,
    _: &CallContext,
    a: DomainFlagsArgs,
) -> Reply<DomainRet> {
    flags::check("virDomainCreateWithFlags", a.flags, START_FLAGS)?;
    let dom = d.domain(&a.dom)?;
    let opts = StartOptions {
        paused: a.flags & f::START_PAUSED != 0,
        force_boot: a.flags & f::START_FORCE_BOOT != 0,
    };
    d.driver.start_with(&dom, opts).await.map_err(vir)?;
    ret(dom)
}

pub(crate) async fn destroy(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.destroy(&dom, false).await.map_err(vir)
}

/// `VIR_DOMAIN_DESTROY_GRACEFUL`: SIGTERM only, never SIGKILL.
pub(crate) async fn destroy_flags(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check("virDomainDestroyFlags", a.flags, f::DESTROY_GRACEFUL)?;
    let dom = d.domain(&a.dom)?;
    let graceful = a.flags & f::DESTROY_GRACEFUL != 0;
    d.driver.destroy(&dom, graceful).await.map_err(vir)
}

pub(crate) async fn shutdown(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.shutdown(&dom).await.map_err(vir)
}

/// Shutdown is always the ACPI power button: the default mode, or
/// `VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN`; other modes are refused.
pub(crate) async fn shutdown_flags(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check(
        "virDomainShutdownFlags",
        a.flags,
        f::SHUTDOWN_ACPI_POWER_BTN,
    )?;
    let dom = d.domain(&a.dom)?;
    d.driver.shutdown(&dom).await.map_err(vir)
}

/// Reboot is the ACPI power button then a reset, as shutdown.
pub(crate) async fn reboot(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check("virDomainReboot", a.flags, f::REBOOT_ACPI_POWER_BTN)?;
    let dom = d.domain(&a.dom)?;
    d.driver.reboot(&dom).await.map_err(vir)
}

pub(crate) async fn reset(d: &Daemon, _: &CallContext, a: DomainFlagsArgs) -> Reply<()> {
    flags::check("virDomainReset", a.flags, 0)?;
    let dom = d.domain(&a.dom)?;
    d.driver.reset(&dom).await.map_err(vir)
}

pub(crate) async fn suspend(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.suspend(&dom).await.map_err(vir)
}

pub(crate) async fn resume(d: &Daemon, _: &CallContext, a: DomainArgs) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver.resume(&dom).await.map_err(vir)
}

pub(crate) async fn set_autostart(
    d: &Daemon,
    _: &CallContext,
    a: DomainSetAutostartArgs,
) -> Reply<()> {
    let dom = d.domain(&a.dom)?;
    d.driver
        .set_autostart(&dom, a.autostart != 0)
        .await
        .map_err(vir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qemu::StateReason;

    fn summary(state: DomainState, persistent: bool, autostart: bool) -> DomainSummary {
        DomainSummary {
            name: "vm".into(),
            uuid: uuid::Uuid::nil(),
            id: state.is_active().then_some(1),
            state: StateReason { state, reason: 0 },
            persistent,
            autostart,
        }
    }

    #[test]
    fn list_filter_pairs_and_states() {
        let running = summary(DomainState::Running, true, false);
        let off = summary(DomainState::Shutoff, false, true);
        let all = DomainListFilter::from_flags(0).unwrap();
        assert!(all.matches(&running, || panic!("managed save not needed")));
        let both =
            DomainListFilter::from_flags(LIST_DOMAINS_ACTIVE | LIST_DOMAINS_INACTIVE).unwrap();
        assert_eq!(both, all, "both sides of a pair select either");
        let active = DomainListFilter::from_flags(LIST_DOMAINS_ACTIVE).unwrap();
        assert!(active.matches(&running, || false) && !active.matches(&off, || false));
        let transient = DomainListFilter::from_flags(LIST_DOMAINS_TRANSIENT).unwrap();
        assert!(!transient.matches(&running, || false) && transient.matches(&off, || false));
        let paused_or_off =
            DomainListFilter::from_flags(LIST_DOMAINS_PAUSED | LIST_DOMAINS_SHUTOFF).unwrap();
        assert!(
            !paused_or_off.matches(&running, || false) && paused_or_off.matches(&off, || false)
        );
        let saved = DomainListFilter::from_flags(LIST_DOMAINS_MANAGEDSAVE).unwrap();
        assert!(saved.matches(&off, || true) && !saved.matches(&off, || false));
        let snap = DomainListFilter::from_flags(LIST_DOMAINS_HAS_SNAPSHOT).unwrap();
        assert!(!snap.matches(&running, || false));
        let e = DomainListFilter::from_flags(1 << 16).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArg);
    }
}
