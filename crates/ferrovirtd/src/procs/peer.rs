//! Peer-to-peer migration (`virsh migrate --p2p`): the client calls only
//! the source's perform, naming the destination daemon's URI; the source
//! daemon connects to it (plain TCP, or TLS presenting its own client
//! certificate) and runs the five phases itself,
//! begin/perform/confirm locally and prepare/finish on the peer, with the
//! same failure handling as a client-driven migration: a failed prepare
//! cancels the begun job, a failed perform cancels the destination, a
//! failed finish resumes the guest here.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use qemu::{Domain, DomainState};
use rpc::protocol::remote::{
    ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet, DomainMigrateFinish3ParamsArgs,
    DomainMigrateFinish3ParamsRet, DomainMigratePrepare3ParamsArgs, DomainMigratePrepare3ParamsRet,
    TypedParam, TypedParamValue, feature, procedure as p,
};
use rpc::xdr::{Opaque, Xdr};
use rpc::{Client, ClientConfig, ClientError};
use virterror::{ErrorCode, ErrorDomain, VirError};

use super::migration::{migrate_flags, migrate_params};
use crate::dispatch::Daemon;
use crate::flags::domain as f;
use crate::wire::{invalid_arg, vir};

/// The deadline of each call to the peer (connecting, prepare, finish):
/// prepare starts a QEMU, finish waits for a stream the source has
/// already sent; neither waits for the guest's memory to cross.
const PEER_CALL: Duration = Duration::from_secs(120);

/// The libvirt daemon's TCP port, when the URI names none.
const DEFAULT_TCP_PORT: u16 = 16509;
/// The libvirt daemon's TLS port, when the URI names none.
const DEFAULT_TLS_PORT: u16 = 16514;

/// Runs the whole migration of `dom` to the daemon at `dconnuri`.
pub(crate) async fn migrate(
    d: &Daemon,
    dom: &Arc<Domain>,
    dconnuri: &str,
    raw: &[TypedParam],
    bits: u32,
    owner: u64,
) -> Result<(), VirError> {
    let flags = migrate_flags("virDomainMigratePerform3Params", bits)?;
    let mut params = migrate_params(raw)?;
    if params.uri.is_some() {
        return Err(invalid_arg(
            "a migration URI cannot be given to a peer-to-peer migration",
        ));
    }
    let peer = connect(d, dconnuri).await?;
    let (xml, cookie) = d
        .driver
        .migrate_begin(dom, &params, flags, owner)
        .await
        .map_err(vir)?;
    // What the destination is told, as libvirt's client tells it.
    let mut dest_bits = bits & !f::MIGRATE_PEER2PEER;
    if dom.state().state == DomainState::Paused {
        dest_bits |= f::MIGRATE_PAUSED;
    }
    let remote = with_string(raw, "destination_xml", &xml);
    let prepared: Result<DomainMigratePrepare3ParamsRet, VirError> = call(
        &peer,
        p::DOMAIN_MIGRATE_PREPARE3_PARAMS,
        &DomainMigratePrepare3ParamsArgs {
            params: remote.clone(),
            cookie_in: Opaque(cookie),
            flags: dest_bits,
        },
    )
    .await;
    let prepared = match prepared {
        Ok(r) => r,
        Err(e) => {
            let _ = d.driver.migrate_confirm(dom, flags, true).await;
            return Err(e);
        }
    };
    params.uri = prepared.uri_out;
    // The name the guest has there (`--dname`, else its own).
    let dest_name = params
        .dest_name
        .clone()
        .unwrap_or_else(|| dom.name().to_owned());
    let performed = if flags.offline {
        Ok(Vec::new())
    } else {
        d.driver
            .migrate_perform(dom, &params, &prepared.cookie_out.0, flags)
            .await
    };
    let finished: Result<DomainMigrateFinish3ParamsRet, VirError> = call(
        &peer,
        p::DOMAIN_MIGRATE_FINISH3_PARAMS,
        &DomainMigrateFinish3ParamsArgs {
            params: with_string(&remote, "destination_name", &dest_name),
            cookie_in: Opaque(performed.as_ref().cloned().unwrap_or_default()),
            flags: dest_bits,
            cancelled: i32::from(performed.is_err()),
        },
    )
    .await;
    // A failed perform undid itself and is not confirmed.
    performed.map_err(vir)?;
    d.driver
        .migrate_confirm(dom, flags, finished.is_err())
        .await
        .map_err(vir)?;
    finished.map(|_| ())
}

/// Opens `dconnuri` (`qemu+tcp://` or `qemu+tls://HOST[:PORT]/system`)
/// and checks the peer speaks migration v3 with parameters.
async fn connect(d: &Daemon, dconnuri: &str) -> Result<Client, VirError> {
    let uri = PeerUri::parse(dconnuri)?;
    let cannot = |e| peer_error(&format!("cannot connect to {dconnuri}"), e);
    let c = match &uri.tls {
        None => deadline(Client::connect_tcp(&uri.addr, ClientConfig::default())).await,
        Some(pkipath) => {
            let files = pkipath
                .as_deref()
                .map(rpc::tls::TlsClientFiles::in_dir)
                .unwrap_or_else(|| d.peer_tls.clone());
            let fut = Client::connect_tls(&uri.addr, &uri.host, &files, ClientConfig::default());
            deadline(fut).await
        }
    }
    .map_err(cannot)?;
    deadline(c.open(Some("qemu:///system"), 0))
        .await
        .map_err(|e| peer_error(&format!("cannot open {dconnuri}"), e))?;
    let r: ConnectSupportsFeatureRet = call(
        &c,
        p::CONNECT_SUPPORTS_FEATURE,
        &ConnectSupportsFeatureArgs {
            feature: feature::MIGRATION_PARAMS,
        },
    )
    .await?;
    if r.supported == 0 {
        return Err(VirError::new(
            ErrorCode::ArgumentUnsupported,
            ErrorDomain::Qemu,
            format!("{dconnuri} does not support migration with parameters"),
        ));
    }
    Ok(c)
}

/// Where a peer URI points and how to reach it.
#[derive(Debug, PartialEq, Eq)]
struct PeerUri {
    /// The host as written (brackets kept around an IPv6 address).
    host: String,
    /// `HOST:PORT`.
    addr: String,
    /// `None` for plain TCP; for TLS, the URI's `pkipath` if it has one.
    tls: Option<Option<PathBuf>>,
}

impl PeerUri {
    fn parse(uri: &str) -> Result<PeerUri, VirError> {
        let bad = || {
            invalid_arg(format!(
                "peer URI '{uri}' is not qemu+tcp:// or qemu+tls://HOST[:PORT]/system"
            ))
        };
        let (rest, tls, port) = if let Some(r) = uri.strip_prefix("qemu+tcp://") {
            (r, false, DEFAULT_TCP_PORT)
        } else if let Some(r) = uri.strip_prefix("qemu+tls://") {
            (r, true, DEFAULT_TLS_PORT)
        } else {
            return Err(bad());
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(bad());
        }
        let split = authority
            .rsplit_once(':')
            .filter(|(h, p)| !h.ends_with(':') && !p.contains(']'))
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)));
        let (host, addr) = match split {
            Some((h, _)) => (h.to_owned(), authority.to_owned()),
            None => (authority.to_owned(), format!("{authority}:{port}")),
        };
        let pkipath = rest
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("pkipath="))
            .map(PathBuf::from);
        Ok(PeerUri {
            host,
            addr,
            tls: tls.then_some(pkipath),
        })
    }
}

/// `params` with the string `field` set to `value` (replacing it).
fn with_string(params: &[TypedParam], field: &str, value: &str) -> Vec<TypedParam> {
    let mut out: Vec<TypedParam> = params
        .iter()
        .filter(|p| p.field != field)
        .cloned()
        .collect();
    out.push(TypedParam {
        field: field.into(),
        value: TypedParamValue::String(value.into()),
    });
    out
}

async fn deadline<T>(fut: impl Future<Output = Result<T, ClientError>>) -> Result<T, ClientError> {
    tokio::time::timeout(PEER_CALL, fut)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Unexpected(
                "the peer did not answer in time".into(),
            ))
        })
}

async fn call<A: Xdr, R: Xdr>(c: &Client, procedure: i32, args: &A) -> Result<R, VirError> {
    deadline(c.call(procedure, args))
        .await
        .map_err(|e| peer_error("destination", e))
}

/// A failure of the peer: its own error as it reported it, else
/// `VIR_ERR_OPERATION_FAILED` naming what failed.
fn peer_error(what: &str, e: ClientError) -> VirError {
    let message = match &e {
        ClientError::Remote(r) => r.message.clone().unwrap_or_default(),
        other => other.to_string(),
    };
    VirError::new(
        ErrorCode::OperationFailed,
        ErrorDomain::Qemu,
        format!("{what}: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(uri: &str) -> String {
        PeerUri::parse(uri).unwrap().addr
    }

    #[test]
    fn peer_uris_give_an_address_and_a_transport() {
        assert_eq!(addr("qemu+tcp://10.0.0.2:16602/system"), "10.0.0.2:16602");
        assert_eq!(addr("qemu+tcp://dst/system"), "dst:16509");
        assert_eq!(addr("qemu+tcp://[::1]/system"), "[::1]:16509");
        assert_eq!(addr("qemu+tcp://[::1]:7/system"), "[::1]:7");
        assert_eq!(addr("qemu+tls://dst/system"), "dst:16514");
        assert!(PeerUri::parse("qemu+tcp:///system").is_err());
        assert!(PeerUri::parse("qemu+ssh://dst/system").is_err());
        assert_eq!(PeerUri::parse("qemu+tcp://dst/system").unwrap().tls, None);
        let tls = PeerUri::parse("qemu+tls://dst:9/system?pkipath=/p/k&x=1").unwrap();
        assert_eq!(tls.host, "dst");
        assert_eq!(tls.addr, "dst:9");
        assert_eq!(tls.tls, Some(Some(PathBuf::from("/p/k"))));
        let plain = PeerUri::parse("qemu+tls://dst/system").unwrap();
        assert_eq!(plain.tls, Some(None));
    }

    #[test]
    fn parameters_are_replaced_not_repeated() {
        let p = with_string(&[], "destination_xml", "<a/>");
        let p = with_string(&p, "destination_xml", "<b/>");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].value, TypedParamValue::String("<b/>".into()));
    }
}
