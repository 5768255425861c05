//! Event (de)registration procedures. They only touch the relay's
//! registrations, so they never queue behind other work.

use rpc::CallContext;
use rpc::protocol::remote::{
    ConnectDomainEventCallbackDeregisterAnyArgs, ConnectDomainEventCallbackRegisterAnyArgs,
    ConnectDomainEventCallbackRegisterAnyRet, ConnectDomainEventRegisterAnyArgs,
    ConnectDomainEventRegisterRet, event_id,
};
use virterror::VirError;

use super::Reply;
use crate::dispatch::Daemon;
use crate::relay::{Object, Style};
use crate::wire::invalid_arg;

/// `CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`: an event id, optionally
/// for one domain; returns the callback id the events will carry.
pub(crate) async fn callback_register_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectDomainEventCallbackRegisterAnyArgs,
) -> Reply<ConnectDomainEventCallbackRegisterAnyRet> {
    check_event_id(a.event_id)?;
    let dom = match a.dom {
        Some(dom) => Some(d.domain(&dom)?.uuid()),
        None => None,
    };
    let callback_id = d.relay.register(
        &ctx.events,
        Object::Domain,
        a.event_id,
        dom,
        Style::Callback,
    )?;
    tracing::info!(client = %ctx.client, callback_id, event_id = a.event_id, "event callback registered");
    Ok(ConnectDomainEventCallbackRegisterAnyRet { callback_id })
}

pub(crate) async fn callback_deregister_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectDomainEventCallbackDeregisterAnyArgs,
) -> Reply<()> {
    d.relay
        .deregister(ctx.client, Object::Domain, a.callback_id)
}

/// `CONNECT_DOMAIN_EVENT_REGISTER_ANY` (legacy: one registration per id).
pub(crate) async fn register_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectDomainEventRegisterAnyArgs,
) -> Reply<()> {
    check_event_id(a.event_id)?;
    d.relay
        .register(&ctx.events, Object::Domain, a.event_id, None, Style::Legacy)?;
    Ok(())
}

pub(crate) async fn deregister_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectDomainEventRegisterAnyArgs,
) -> Reply<()> {
    d.relay.deregister_legacy(ctx.client, a.event_id)
}

/// `CONNECT_DOMAIN_EVENT_REGISTER`: the oldest form, lifecycle events only.
pub(crate) async fn register(
    d: &Daemon,
    ctx: &CallContext,
    _: (),
) -> Reply<ConnectDomainEventRegisterRet> {
    d.relay.register(
        &ctx.events,
        Object::Domain,
        event_id::LIFECYCLE,
        None,
        Style::Legacy,
    )?;
    Ok(ConnectDomainEventRegisterRet { cb_registered: 1 })
}

pub(crate) async fn deregister(
    d: &Daemon,
    ctx: &CallContext,
    _: (),
) -> Reply<ConnectDomainEventRegisterRet> {
    d.relay.deregister_legacy(ctx.client, event_id::LIFECYCLE)?;
    Ok(ConnectDomainEventRegisterRet { cb_registered: 0 })
}

/// Registrations for ids we never raise are accepted (clients like
/// `virsh event --all` register every id libvirt 9.0 defines) and simply
/// never fire. Raised: LIFECYCLE, REBOOT, RTC_CHANGE, WATCHDOG, IO_ERROR,
/// IO_ERROR_REASON, BLOCK_JOB, BALLOON_CHANGE, BLOCK_JOB_2, TRAY_CHANGE,
/// BLOCK_THRESHOLD,
/// DEVICE_ADDED, DEVICE_REMOVED, DEVICE_REMOVAL_FAILED (see `relay`).
fn check_event_id(id: i32) -> Result<(), VirError> {
    if (event_id::LIFECYCLE..=event_id::MEMORY_DEVICE_SIZE_CHANGE).contains(&id) {
        Ok(())
    } else {
        Err(invalid_arg(format!("unsupported event ID {id}")))
    }
}
