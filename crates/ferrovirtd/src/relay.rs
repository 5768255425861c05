//! Event registrations of clients, and the relay that delivers the driver's
//! domain events to them.
//!
//! The relay is an event listener of the driver (`attach`), called for
//! every domain event in each domain's order. It never blocks: each event
//! is encoded and pushed into each registered client's bounded output
//! queue (`EventSink::try_send_event`). A client whose queue is full is
//! disconnected by the rpc layer and its registrations dropped here, so a
//! client that stops reading costs a bounded amount of memory and never
//! slows delivery to anyone else.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI32, Ordering};

use network::{NetworkDriver, NetworkEvent};
use qemu::{DomainEvent, Driver, EventKind};
use rpc::protocol::remote::{
    DomainEventBalloonChangeMsg, DomainEventBlockJob2Msg, DomainEventBlockJobMsg,
    DomainEventBlockThresholdMsg, DomainEventCallbackBalloonChangeMsg,
    DomainEventCallbackBlockJobMsg, DomainEventCallbackDeviceAddedMsg,
    DomainEventCallbackDeviceRemovalFailedMsg, DomainEventCallbackDeviceRemovedMsg,
    DomainEventCallbackIoErrorMsg, DomainEventCallbackIoErrorReasonMsg,
    DomainEventCallbackJobCompletedMsg, DomainEventCallbackLifecycleMsg,
    DomainEventCallbackMigrationIterationMsg, DomainEventCallbackRebootMsg,
    DomainEventCallbackRtcChangeMsg, DomainEventCallbackTrayChangeMsg,
    DomainEventCallbackWatchdogMsg, DomainEventDeviceRemovedMsg, DomainEventIoErrorMsg,
    DomainEventIoErrorReasonMsg, DomainEventLifecycleMsg, DomainEventRebootMsg,
    DomainEventRtcChangeMsg, DomainEventTrayChangeMsg, DomainEventWatchdogMsg,
    NetworkEventLifecycleMsg, NonnullDomain, NonnullNetwork, NonnullSecret, NonnullStoragePool,
    SecretEventLifecycleMsg, SecretEventValueChangedMsg, StoragePoolEventLifecycleMsg,
    StoragePoolEventRefreshMsg, event_id, procedure as p,
};
use rpc::xdr::Xdr;
use rpc::{ClientId, EventSink};
use secret::{SecretDriver, SecretEvent, SecretEventKind};
use storage::{PoolEvent, PoolEventKind, StorageDriver};
use virterror::{ErrorCode, ErrorDomain, VirError};

use crate::flags::{network as network_flags, secret as secret_flags, storage as storage_flags};
use crate::wire::{event_domain, wire_secret};

/// How the client asked for events, which decides the message it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`: messages carry the
    /// callback id and may be filtered by domain.
    Callback,
    /// `CONNECT_DOMAIN_EVENT_REGISTER(_ANY)`: one registration per event id,
    /// messages without a callback id.
    Legacy,
}

/// What kind of object a registration is for: each has its own event ids
/// and its own (de)registration procedures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Domain,
    StoragePool,
    Network,
    Secret,
}

#[derive(Debug, Clone)]
struct Registration {
    id: i32,
    object: Object,
    event_id: i32,
    /// Only events of this object (by uuid), when set.
    only: Option<uuid::Uuid>,
    style: Style,
}

struct ClientRegs {
    sink: EventSink,
    regs: Vec<Registration>,
}

/// Most registrations one client may hold; each is tiny, but a client must
/// not be able to grow the daemon without bound.
pub(crate) const MAX_REGISTRATIONS_PER_CLIENT: usize = 1024;

/// Registrations by client. Delivery (on every VM's event path) takes the
/// read side only, so VMs never serialise on it; (de)registration writes.
#[derive(Default)]
pub(crate) struct Relay {
    clients: RwLock<HashMap<ClientId, ClientRegs>>,
    next_id: AtomicI32,
}

impl Relay {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records a registration and returns its callback id.
    pub(crate) fn register(
        &self,
        sink: &EventSink,
        object: Object,
        event_id: i32,
        only: Option<uuid::Uuid>,
        style: Style,
    ) -> Result<i32, VirError> {
        let id = self
            .next_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .max(1);
        let mut clients = self.write();
        let entry = clients.entry(sink.client()).or_insert_with(|| ClientRegs {
            sink: sink.clone(),
            regs: Vec::new(),
        });
        if entry.regs.len() >= MAX_REGISTRATIONS_PER_CLIENT {
            return Err(VirError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Remote,
                format!("too many event registrations (limit {MAX_REGISTRATIONS_PER_CLIENT})"),
            ));
        }
        if style == Style::Legacy
            && entry
                .regs
                .iter()
                .any(|r| r.style == Style::Legacy && r.object == object && r.event_id == event_id)
        {
            return Err(VirError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Remote,
                format!("domain event {event_id} already registered"),
            ));
        }
        entry.regs.push(Registration {
            id,
            object,
            event_id,
            only,
            style,
        });
        Ok(id)
    }

    /// Removes a callback registration of `object` by id.
    pub(crate) fn deregister(
        &self,
        client: ClientId,
        object: Object,
        callback_id: i32,
    ) -> Result<(), VirError> {
        self.remove(client, |r| {
            r.style == Style::Callback && r.object == object && r.id == callback_id
        })
        .then_some(())
        .ok_or_else(|| not_registered(format!("callback {callback_id}")))
    }

    /// Removes the legacy registration for an event id.
    pub(crate) fn deregister_legacy(
        &self,
        client: ClientId,
        event_id: i32,
    ) -> Result<(), VirError> {
        self.remove(client, |r| {
            r.style == Style::Legacy && r.object == Object::Domain && r.event_id == event_id
        })
        .then_some(())
        .ok_or_else(|| not_registered(format!("domain event {event_id}")))
    }

    /// Forgets everything a disconnected client registered.
    pub(crate) fn drop_client(&self, client: ClientId) {
        self.write().remove(&client);
    }

    fn remove(&self, client: ClientId, pred: impl Fn(&Registration) -> bool) -> bool {
        let mut clients = self.write();
        let Some(c) = clients.get_mut(&client) else {
            return false;
        };
        let before = c.regs.len();
        c.regs.retain(|r| !pred(r));
        let removed = c.regs.len() != before;
        if c.regs.is_empty() {
            clients.remove(&client);
        }
        removed
    }

    // A panic while holding this lock cannot leave the map half-updated in
    // a way that matters (every mutation is a single insert/remove), so
    // recover from poisoning instead of taking the daemon down.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ClientId, ClientRegs>> {
        self.clients.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ClientId, ClientRegs>> {
        self.clients.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes one event to every matching registration. Never blocks.
    pub(crate) fn deliver(&self, ev: &DomainEvent) {
        let want: &[i32] = match ev.kind {
            EventKind::Lifecycle { .. } => &[event_id::LIFECYCLE],
            EventKind::Reboot => &[event_id::REBOOT],
            EventKind::BlockJob { .. } => &[event_id::BLOCK_JOB, event_id::BLOCK_JOB_2],
            EventKind::RtcChange { .. } => &[event_id::RTC_CHANGE],
            EventKind::BalloonChange { .. } => &[event_id::BALLOON_CHANGE],
            EventKind::IoError { .. } => &[event_id::IO_ERROR, event_id::IO_ERROR_REASON],
            EventKind::Watchdog { .. } => &[event_id::WATCHDOG],
            EventKind::TrayChange { .. } => &[event_id::TRAY_CHANGE],
            EventKind::BlockThreshold { .. } => &[event_id::BLOCK_THRESHOLD],
            EventKind::DeviceAdded { .. } => &[event_id::DEVICE_ADDED],
            EventKind::DeviceRemoved { .. } => &[event_id::DEVICE_REMOVED],
            EventKind::DeviceRemovalFailed { .. } => &[event_id::DEVICE_REMOVAL_FAILED],
            EventKind::MigrationIteration { .. } => &[event_id::MIGRATION_ITERATION],
            EventKind::JobCompleted { .. } => &[event_id::JOB_COMPLETED],
        };
        let dom = event_domain(ev);
        let mut gone = Vec::new();
        let clients = self.read();
        for (client, c) in clients.iter() {
            let mine = |r: &&Registration| r.object == Object::Domain && want.contains(&r.event_id);
            for r in c.regs.iter().filter(mine) {
                if r.only.is_some_and(|u| u != ev.uuid) {
                    continue;
                }
                if push(&c.sink, r, ev, &dom).is_err() {
                    gone.push(*client);
                    break;
                }
            }
        }
        drop(clients);
        self.drop_gone(gone);
    }

    /// Pushes one storage pool event to every matching registration.
    pub(crate) fn deliver_pool(&self, ev: &PoolEvent) {
        let want = match ev.kind {
            PoolEventKind::Lifecycle(_) => storage_flags::POOL_EVENT_ID_LIFECYCLE,
            PoolEventKind::Refresh => storage_flags::POOL_EVENT_ID_REFRESH,
        };
        let pool = NonnullStoragePool {
            name: ev.name.clone(),
            uuid: *ev.uuid.as_bytes(),
        };
        let mut gone = Vec::new();
        let clients = self.read();
        for (client, c) in clients.iter() {
            let mine = |r: &&Registration| {
                r.object == Object::StoragePool
                    && r.event_id == want
                    && r.only.is_none_or(|u| u == ev.uuid)
            };
            for r in c.regs.iter().filter(mine) {
                let pool = pool.clone();
                let sent = match ev.kind {
                    PoolEventKind::Lifecycle(what) => c.sink.try_send_event_xdr(
                        p::STORAGE_POOL_EVENT_LIFECYCLE,
                        &StoragePoolEventLifecycleMsg {
                            callback_id: r.id,
                            pool,
                            event: what as i32,
                            detail: 0,
                        },
                    ),
                    PoolEventKind::Refresh => c.sink.try_send_event_xdr(
                        p::STORAGE_POOL_EVENT_REFRESH,
                        &StoragePoolEventRefreshMsg {
                            callback_id: r.id,
                            pool,
                        },
                    ),
                };
                if sent.is_err() {
                    gone.push(*client);
                    break;
                }
            }
        }
        drop(clients);
        self.drop_gone(gone);
    }

    /// Pushes one network event to every matching registration.
    pub(crate) fn deliver_network(&self, ev: &NetworkEvent) {
        let net = NonnullNetwork {
            name: ev.name.clone(),
            uuid: *ev.uuid.as_bytes(),
        };
        let mut gone = Vec::new();
        let clients = self.read();
        for (client, c) in clients.iter() {
            let mine = |r: &&Registration| {
                r.object == Object::Network
                    && r.event_id == network_flags::EVENT_ID_LIFECYCLE
                    && r.only.is_none_or(|u| u == ev.uuid)
            };
            for r in c.regs.iter().filter(mine) {
                let msg = NetworkEventLifecycleMsg {
                    callback_id: r.id,
                    net: net.clone(),
                    event: ev.lifecycle as i32,
                    detail: 0,
                };
                if c.sink
                    .try_send_event_xdr(p::NETWORK_EVENT_LIFECYCLE, &msg)
                    .is_err()
                {
                    gone.push(*client);
                    break;
                }
            }
        }
        drop(clients);
        self.drop_gone(gone);
    }

    /// Pushes one secret event to every matching registration.
    pub(crate) fn deliver_secret(&self, ev: &SecretEvent) {
        let want = match ev.kind {
            SecretEventKind::ValueChanged => secret_flags::EVENT_ID_VALUE_CHANGED,
            SecretEventKind::Defined | SecretEventKind::Undefined => {
                secret_flags::EVENT_ID_LIFECYCLE
            }
        };
        let secret = wire_secret(&ev.secret);
        let mut gone = Vec::new();
        let clients = self.read();
        for (client, c) in clients.iter() {
            let mine = |r: &&Registration| {
                r.object == Object::Secret
                    && r.event_id == want
                    && r.only.is_none_or(|u| u == ev.secret.uuid)
            };
            for r in c.regs.iter().filter(mine) {
                if push_secret(&c.sink, r.id, secret.clone(), ev.kind).is_err() {
                    gone.push(*client);
                    break;
                }
            }
        }
        drop(clients);
        self.drop_gone(gone);
    }

    fn drop_gone(&self, gone: Vec<ClientId>) {
        for client in gone {
            tracing::warn!(%client, "dropping event registrations: client disconnected or not reading");
            self.drop_client(client);
        }
    }
}

fn push_secret(
    sink: &EventSink,
    callback_id: i32,
    secret: NonnullSecret,
    kind: SecretEventKind,
) -> Result<(), rpc::Dropped> {
    let event = match kind {
        SecretEventKind::ValueChanged => {
            return sink.try_send_event_xdr(
                p::SECRET_EVENT_VALUE_CHANGED,
                &SecretEventValueChangedMsg {
                    callback_id,
                    secret,
                },
            );
        }
        SecretEventKind::Defined => secret_flags::EVENT_DEFINED,
        SecretEventKind::Undefined => secret_flags::EVENT_UNDEFINED,
    };
    sink.try_send_event_xdr(
        p::SECRET_EVENT_LIFECYCLE,
        &SecretEventLifecycleMsg {
            callback_id,
            secret,
            event,
            detail: 0,
        },
    )
}

fn not_registered(what: String) -> VirError {
    VirError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Remote,
        format!("{what} is not registered"),
    )
}

fn push(
    sink: &EventSink,
    r: &Registration,
    ev: &DomainEvent,
    dom: &NonnullDomain,
) -> Result<(), rpc::Dropped> {
    let dom = dom.clone();
    match &ev.kind {
        EventKind::Lifecycle { kind, detail } => send(
            sink,
            r,
            (
                p::DOMAIN_EVENT_LIFECYCLE,
                p::DOMAIN_EVENT_CALLBACK_LIFECYCLE,
            ),
            DomainEventLifecycleMsg {
                dom,
                event: kind.as_i32(),
                detail: *detail,
            },
            |callback_id, msg| DomainEventCallbackLifecycleMsg { callback_id, msg },
        ),
        EventKind::Reboot => send(
            sink,
            r,
            (p::DOMAIN_EVENT_REBOOT, p::DOMAIN_EVENT_CALLBACK_REBOOT),
            DomainEventRebootMsg { dom },
            |callback_id, msg| DomainEventCallbackRebootMsg { callback_id, msg },
        ),
        ev @ EventKind::BlockJob { .. } => push_block_job(sink, r, ev, dom),
        EventKind::RtcChange { offset } => send(
            sink,
            r,
            (
                p::DOMAIN_EVENT_RTC_CHANGE,
                p::DOMAIN_EVENT_CALLBACK_RTC_CHANGE,
            ),
            DomainEventRtcChangeMsg {
                dom,
                offset: *offset,
            },
            |callback_id, msg| DomainEventCallbackRtcChangeMsg { callback_id, msg },
        ),
        ev @ EventKind::IoError { .. } => push_io_error(sink, r, ev, dom),
        EventKind::MigrationIteration { iteration } => push_callback_only(
            sink,
            r,
            p::DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
            &DomainEventCallbackMigrationIterationMsg {
                callback_id: r.id,
                dom,
                iteration: *iteration,
            },
        ),
        EventKind::JobCompleted { stats } => push_callback_only(
            sink,
            r,
            p::DOMAIN_EVENT_CALLBACK_JOB_COMPLETED,
            &DomainEventCallbackJobCompletedMsg {
                callback_id: r.id,
                dom,
                params: crate::procs::jobs::job_params(stats),
            },
        ),
        EventKind::BlockThreshold {
            dev,
            path,
            threshold,
            excess,
        } => push_callback_only(
            sink,
            r,
            p::DOMAIN_EVENT_BLOCK_THRESHOLD,
            &DomainEventBlockThresholdMsg {
                callback_id: r.id,
                dom,
                dev: dev.clone(),
                path: Some(path.clone()).filter(|p| !p.is_empty()),
                threshold: *threshold,
                excess: *excess,
            },
        ),
        EventKind::TrayChange { alias, reason } => send(
            sink,
            r,
            (
                p::DOMAIN_EVENT_TRAY_CHANGE,
                p::DOMAIN_EVENT_CALLBACK_TRAY_CHANGE,
            ),
            DomainEventTrayChangeMsg {
                dom,
                dev_alias: alias.clone(),
                reason: *reason,
            },
            |callback_id, msg| DomainEventCallbackTrayChangeMsg { callback_id, msg },
        ),
        EventKind::DeviceRemoved { alias } => send(
            sink,
            r,
            (
                p::DOMAIN_EVENT_DEVICE_REMOVED,
                p::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
            ),
            DomainEventDeviceRemovedMsg {
                dom,
                dev_alias: alias.clone(),
            },
            |callback_id, msg| DomainEventCallbackDeviceRemovedMsg { callback_id, msg },
        ),
        EventKind::DeviceAdded { alias } => push_callback_only(
            sink,
            r,
            p::DOMAIN_EVENT_CALLBACK_DEVICE_ADDED,
            &DomainEventCallbackDeviceAddedMsg {
                callback_id: r.id,
                dom,
                dev_alias: alias.clone(),
            },
        ),
        EventKind::DeviceRemovalFailed { alias } => push_callback_only(
            sink,
            r,
            p::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED,
            &DomainEventCallbackDeviceRemovalFailedMsg {
                callback_id: r.id,
                dom,
                dev_alias: alias.clone(),
            },
        ),
        EventKind::Watchdog { action } => send(
            sink,
            r,
            (p::DOMAIN_EVENT_WATCHDOG, p::DOMAIN_EVENT_CALLBACK_WATCHDOG),
            DomainEventWatchdogMsg {
                dom,
                action: *action,
            },
            |callback_id, msg| DomainEventCallbackWatchdogMsg { callback_id, msg },
        ),
        EventKind::BalloonChange { actual_kib } => send(
            sink,
            r,
            (
                p::DOMAIN_EVENT_BALLOON_CHANGE,
                p::DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE,
            ),
            DomainEventBalloonChangeMsg {
                dom,
                actual: *actual_kib,
            },
            |callback_id, msg| DomainEventCallbackBalloonChangeMsg { callback_id, msg },
        ),
    }
}

/// Sends an event libvirt has in the callback form only (nothing for a
/// legacy registration, which cannot ask for it).
fn push_callback_only<M: Xdr>(
    sink: &EventSink,
    r: &Registration,
    callback: i32,
    msg: &M,
) -> Result<(), rpc::Dropped> {
    match r.style {
        Style::Callback => sink.try_send_event_xdr(callback, msg),
        Style::Legacy => Ok(()),
    }
}

/// Sends `msg` in the form `r` registered for: as procedure `legacy`, or
/// wrapped with the callback id by `wrap` as procedure `callback`.
fn send<M: Xdr, C: Xdr>(
    sink: &EventSink,
    r: &Registration,
    (legacy, callback): (i32, i32),
    msg: M,
    wrap: impl FnOnce(i32, M) -> C,
) -> Result<(), rpc::Dropped> {
    match r.style {
        Style::Callback => sink.try_send_event_xdr(callback, &wrap(r.id, msg)),
        Style::Legacy => sink.try_send_event_xdr(legacy, &msg),
    }
}

/// BLOCK_JOB (by disk path, legacy or callback form) and BLOCK_JOB_2 (by
/// disk target, callback form only, as in libvirt).
fn push_block_job(
    sink: &EventSink,
    r: &Registration,
    ev: &EventKind,
    dom: NonnullDomain,
) -> Result<(), rpc::Dropped> {
    let EventKind::BlockJob {
        disk,
        path,
        job_type,
        status,
    } = ev
    else {
        return Ok(());
    };
    if r.event_id == event_id::BLOCK_JOB_2 {
        if r.style == Style::Legacy {
            return Ok(());
        }
        let msg = DomainEventBlockJob2Msg {
            callback_id: r.id,
            dom,
            dst: disk.clone(),
            type_: *job_type,
            status: *status,
        };
        return sink.try_send_event_xdr(p::DOMAIN_EVENT_BLOCK_JOB_2, &msg);
    }
    send(
        sink,
        r,
        (
            p::DOMAIN_EVENT_BLOCK_JOB,
            p::DOMAIN_EVENT_CALLBACK_BLOCK_JOB,
        ),
        DomainEventBlockJobMsg {
            dom,
            path: path.clone(),
            type_: *job_type,
            status: *status,
        },
        |callback_id, msg| DomainEventCallbackBlockJobMsg { callback_id, msg },
    )
}

/// IO_ERROR or IO_ERROR_REASON (whichever `r` registered for), legacy or
/// callback form: one driver event serves both ids, as in libvirt.
fn push_io_error(
    sink: &EventSink,
    r: &Registration,
    ev: &EventKind,
    dom: NonnullDomain,
) -> Result<(), rpc::Dropped> {
    let EventKind::IoError {
        src_path,
        dev_alias,
        action,
        reason,
    } = ev
    else {
        return Ok(());
    };
    let (src_path, dev_alias, action) = (src_path.clone(), dev_alias.clone(), *action);
    if r.event_id == event_id::IO_ERROR_REASON {
        return send(
            sink,
            r,
            (
                p::DOMAIN_EVENT_IO_ERROR_REASON,
                p::DOMAIN_EVENT_CALLBACK_IO_ERROR_REASON,
            ),
            DomainEventIoErrorReasonMsg {
                dom,
                src_path,
                dev_alias,
                action,
                reason: reason.clone(),
            },
            |callback_id, msg| DomainEventCallbackIoErrorReasonMsg { callback_id, msg },
        );
    }
    send(
        sink,
        r,
        (p::DOMAIN_EVENT_IO_ERROR, p::DOMAIN_EVENT_CALLBACK_IO_ERROR),
        DomainEventIoErrorMsg {
            dom,
            src_path,
            dev_alias,
            action,
        },
        |callback_id, msg| DomainEventCallbackIoErrorMsg { callback_id, msg },
    )
}

/// Connects the relay to the driver: every domain event is delivered
/// synchronously, in each domain's order, straight into the registered
/// clients' bounded queues. There is no shared queue in between that could
/// lag, so a slow client only ever costs itself its events.
pub(crate) fn attach(driver: &Driver, relay: std::sync::Arc<Relay>) {
    driver.add_event_listener(std::sync::Arc::new(move |ev: &DomainEvent| {
        relay.deliver(ev)
    }));
}

/// Connects the relay to the storage driver, as [`attach`] does for
/// domains: pool events go straight into the registered clients' queues.
pub(crate) fn attach_storage(storage: &StorageDriver, relay: std::sync::Arc<Relay>) {
    storage.add_event_listener(Box::new(move |ev: &PoolEvent| relay.deliver_pool(ev)));
}

/// Connects the relay to the network driver: network lifecycle events go
/// straight into the registered clients' queues.
pub(crate) fn attach_secrets(secrets: &SecretDriver, relay: std::sync::Arc<Relay>) {
    secrets.add_event_listener(Box::new(move |ev: &SecretEvent| relay.deliver_secret(ev)));
}

pub(crate) fn attach_network(network: &NetworkDriver, relay: std::sync::Arc<Relay>) {
    network.add_event_listener(Box::new(move |ev: &NetworkEvent| relay.deliver_network(ev)));
}
