//! An `rpc::Client` connected the way libvirt's client library connects.

use std::path::Path;

use rpc::protocol::remote::{self, procedure};

use crate::Error;

/// Connects to a libvirt RPC socket, then `AUTH_LIST` and `CONNECT_OPEN`
/// of `qemu:///system`, as libvirt's client library does.
pub async fn open(socket: &Path) -> Result<rpc::Client, Error> {
    let what = format!("libvirt client on {}", socket.display());
    let client = rpc::Client::connect(socket)
        .await
        .map_err(Error::rpc(format!("{what}: connect")))?;
    let _: remote::AuthListRet = client
        .call(procedure::AUTH_LIST, &())
        .await
        .map_err(Error::rpc(format!("{what}: AUTH_LIST")))?;
    client
        .open(Some("qemu:///system"), 0)
        .await
        .map_err(Error::rpc(format!("{what}: CONNECT_OPEN")))?;
    Ok(client)
}
