//! Event (de)registration procedures.

use bytes::Bytes;
use rpc::CallContext;
use rpc::protocol::remote::{
    ConnectDomainEventCallbackDeregisterAnyArgs, ConnectDomainEventCallbackRegisterAnyArgs,
    ConnectDomainEventCallbackRegisterAnyRet, ConnectDomainEventRegisterAnyArgs,
    ConnectDomainEventRegisterRet, event_id, procedure as p,
};
use rpc::server::{decode_args, encode_ret, unsupported_procedure};
use virterror::VirError;

use crate::dispatch::Daemon;
use crate::relay::Style;
use crate::wire::{invalid_arg, resolve};

/// Highest `virDomainEventID` libvirt 9 defines; registrations for ids we
/// never raise are accepted (clients like `virsh event --all` register all
/// of them) and simply never fire. Raised: LIFECYCLE, REBOOT, RTC_CHANGE,
/// WATCHDOG, IO_ERROR, IO_ERROR_REASON, BLOCK_JOB, BALLOON_CHANGE,
/// BLOCK_JOB_2 (see `relay`).
const EVENT_ID_MAX: i32 = 26;

pub(crate) fn call(
    d: &Daemon,
    ctx: &CallContext,
    proc_: i32,
    args: &[u8],
) -> Result<Bytes, VirError> {
    match proc_ {
        p::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => {
            let a: ConnectDomainEventCallbackRegisterAnyArgs = decode_args(proc_, args)?;
            check_event_id(a.event_id)?;
            let dom = match a.dom {
                Some(dom) => Some(resolve(&d.driver, &dom)?.uuid()),
                None => None,
            };
            let callback_id = d
                .relay
                .register(&ctx.events, a.event_id, dom, Style::Callback)?;
            tracing::info!(client = %ctx.client, callback_id, event_id = a.event_id, "event callback registered");
            encode_ret(&ConnectDomainEventCallbackRegisterAnyRet { callback_id })
        }
        p::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => {
            let a: ConnectDomainEventCallbackDeregisterAnyArgs = decode_args(proc_, args)?;
            d.relay.deregister(ctx.client, a.callback_id)?;
            Ok(Bytes::new())
        }
        p::CONNECT_DOMAIN_EVENT_REGISTER_ANY => {
            let a: ConnectDomainEventRegisterAnyArgs = decode_args(proc_, args)?;
            check_event_id(a.event_id)?;
            d.relay
                .register(&ctx.events, a.event_id, None, Style::Legacy)?;
            Ok(Bytes::new())
        }
        p::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY => {
            let a: ConnectDomainEventRegisterAnyArgs = decode_args(proc_, args)?;
            d.relay.deregister_legacy(ctx.client, a.event_id)?;
            Ok(Bytes::new())
        }
        p::CONNECT_DOMAIN_EVENT_REGISTER => {
            d.relay
                .register(&ctx.events, event_id::LIFECYCLE, None, Style::Legacy)?;
            encode_ret(&ConnectDomainEventRegisterRet { cb_registered: 1 })
        }
        p::CONNECT_DOMAIN_EVENT_DEREGISTER => {
            d.relay.deregister_legacy(ctx.client, event_id::LIFECYCLE)?;
            encode_ret(&ConnectDomainEventRegisterRet { cb_registered: 0 })
        }
        _ => Err(unsupported_procedure(proc_)),
    }
}

fn check_event_id(id: i32) -> Result<(), VirError> {
    if (0..=EVENT_ID_MAX).contains(&id) {
        Ok(())
    } else {
        Err(invalid_arg(format!("unsupported event ID {id}")))
    }
}
