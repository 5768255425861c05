//! Secret procedures. Lists, lookups and XML read the secret driver's map;
//! define, set-value and undefine write files, so they run on a blocking
//! thread. A private secret's value is refused to every client (the
//! driver's rule); the read-only socket may not read any value (its row is
//! `Write`).

use rpc::CallContext;
use rpc::protocol::remote::{
    CallbackIdArgs, ConnectListAllSecretsArgs, ConnectListAllSecretsRet, ConnectListSecretsArgs,
    ConnectListSecretsRet, ConnectSecretEventRegisterAnyArgs, NonnullSecret, NumRet,
    SECRET_LIST_MAX, SecretArgs, SecretFlagsArgs, SecretGetValueRet, SecretLookupByUsageArgs,
    SecretRet, SecretSetValueArgs, UuidArgs, XmlFlagsArgs, XmlRet,
};
use rpc::xdr::Opaque;
use secret::{SecretDriver, SecretFilter};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::Reply;
use crate::dispatch::Daemon;
use crate::flags::{self, secret as f};
use crate::relay::{Object, Style};
use crate::wire::{invalid_arg, wire_secret};

fn uuid_of(s: &NonnullSecret) -> uuid::Uuid {
    uuid::Uuid::from_bytes(s.uuid)
}

/// Runs a change of the secret driver (it writes and syncs files) on a
/// blocking thread.
async fn change<T: Send + 'static>(
    d: &Daemon,
    f: impl FnOnce(&SecretDriver) -> Result<T, VirError> + Send + 'static,
) -> Reply<T> {
    let secrets = d.secrets.clone();
    tokio::task::spawn_blocking(move || f(&secrets))
        .await
        .map_err(|e| {
            VirError::new(
                ErrorCode::InternalError,
                ErrorDomain::Secret,
                format!("internal error: secret change failed: {e}"),
            )
        })?
}

/// libvirt's filter groups: within a group either bit matches, across
/// groups both must.
fn list_filter(flags: u32) -> Result<SecretFilter, VirError> {
    let all = f::CONNECT_LIST_SECRETS_EPHEMERAL
        | f::CONNECT_LIST_SECRETS_NO_EPHEMERAL
        | f::CONNECT_LIST_SECRETS_PRIVATE
        | f::CONNECT_LIST_SECRETS_NO_PRIVATE;
    flags::check("virConnectListAllSecrets", flags, all)?;
    let pick = |yes: u32, no: u32| match (flags & yes != 0, flags & no != 0) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    Ok(SecretFilter {
        ephemeral: pick(
            f::CONNECT_LIST_SECRETS_EPHEMERAL,
            f::CONNECT_LIST_SECRETS_NO_EPHEMERAL,
        ),
        private: pick(
            f::CONNECT_LIST_SECRETS_PRIVATE,
            f::CONNECT_LIST_SECRETS_NO_PRIVATE,
        ),
    })
}

// ---- lists and lookups ----

pub(crate) async fn num_of_secrets(d: &Daemon, _: &CallContext, _: ()) -> Reply<NumRet> {
    let n = d.secrets.list(SecretFilter::default()).len();
    Ok(NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    })
}

pub(crate) async fn list_secrets(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListSecretsArgs,
) -> Reply<ConnectListSecretsRet> {
    let max = usize::try_from(a.maxuuids)
        .ok()
        .filter(|m| *m <= SECRET_LIST_MAX)
        .ok_or_else(|| invalid_arg("maxuuids > REMOTE_SECRET_LIST_MAX"))?;
    let uuids = d.secrets.list(SecretFilter::default());
    Ok(ConnectListSecretsRet {
        uuids: uuids.iter().take(max).map(|h| h.uuid.to_string()).collect(),
    })
}

pub(crate) async fn list_all(
    d: &Daemon,
    _: &CallContext,
    a: ConnectListAllSecretsArgs,
) -> Reply<ConnectListAllSecretsRet> {
    let list = d.secrets.list(list_filter(a.flags)?);
    let ret = u32::try_from(list.len()).unwrap_or(u32::MAX);
    let secrets = if a.need_results != 0 {
        list.iter().map(wire_secret).collect()
    } else {
        Vec::new()
    };
    Ok(ConnectListAllSecretsRet { secrets, ret })
}

pub(crate) async fn lookup_by_uuid(d: &Daemon, _: &CallContext, a: UuidArgs) -> Reply<SecretRet> {
    let h = d.secrets.lookup_by_uuid(&uuid::Uuid::from_bytes(a.uuid))?;
    Ok(SecretRet {
        secret: wire_secret(&h),
    })
}

pub(crate) async fn lookup_by_usage(
    d: &Daemon,
    _: &CallContext,
    a: SecretLookupByUsageArgs,
) -> Reply<SecretRet> {
    let h = d.secrets.lookup_by_usage(a.usage_type, &a.usage_id)?;
    Ok(SecretRet {
        secret: wire_secret(&h),
    })
}

pub(crate) async fn get_xml_desc(d: &Daemon, _: &CallContext, a: SecretFlagsArgs) -> Reply<XmlRet> {
    flags::check("virSecretGetXMLDesc", a.flags, 0)?;
    Ok(XmlRet {
        xml: d.secrets.xml_desc(&uuid_of(&a.secret))?,
    })
}

pub(crate) async fn get_value(
    d: &Daemon,
    _: &CallContext,
    a: SecretFlagsArgs,
) -> Reply<SecretGetValueRet> {
    flags::check("virSecretGetValue", a.flags, 0)?;
    Ok(SecretGetValueRet {
        value: Opaque(d.secrets.value(&uuid_of(&a.secret))?),
    })
}

// ---- changes ----

pub(crate) async fn define_xml(d: &Daemon, _: &CallContext, a: XmlFlagsArgs) -> Reply<SecretRet> {
    // The document is always checked against what libvirt's schema allows,
    // so VALIDATE asks for nothing more.
    flags::check("virSecretDefineXML", a.flags, f::DEFINE_VALIDATE)?;
    let h = change(d, move |s| s.define_xml(&a.xml)).await?;
    Ok(SecretRet {
        secret: wire_secret(&h),
    })
}

pub(crate) async fn set_value(d: &Daemon, _: &CallContext, a: SecretSetValueArgs) -> Reply<()> {
    flags::check("virSecretSetValue", a.flags, 0)?;
    let uuid = uuid_of(&a.secret);
    change(d, move |s| s.set_value(&uuid, &a.value.0)).await
}

pub(crate) async fn undefine(d: &Daemon, _: &CallContext, a: SecretArgs) -> Reply<()> {
    let uuid = uuid_of(&a.secret);
    change(d, move |s| s.undefine(&uuid)).await
}

// ---- events ----

pub(crate) async fn event_register_any(
    d: &Daemon,
    ctx: &CallContext,
    a: ConnectSecretEventRegisterAnyArgs,
) -> Reply<CallbackIdArgs> {
    if a.event_id != f::EVENT_ID_LIFECYCLE && a.event_id != f::EVENT_ID_VALUE_CHANGED {
        return Err(invalid_arg(format!(
            "unsupported secret event ID {}",
            a.event_id
        )));
    }
    let only = match &a.secret {
        Some(s) => Some(d.secrets.lookup_by_uuid(&uuid_of(s))?.uuid),
        None => None,
    };
    let callback_id = d.relay.register(
        &ctx.events,
        Object::Secret,
        a.event_id,
        only,
        Style::Callback,
    )?;
    tracing::info!(client = %ctx.client, callback_id, event_id = a.event_id, "secret event callback registered");
    Ok(CallbackIdArgs { callback_id })
}

pub(crate) async fn event_deregister_any(
    d: &Daemon,
    ctx: &CallContext,
    a: CallbackIdArgs,
) -> Reply<()> {
    d.relay
        .deregister(ctx.client, Object::Secret, a.callback_id)
}
