//! The daemon's RPC handler: routes each REMOTE procedure to the code that
//! serves it. Routing only; the procedures live in `procs/`.

use std::sync::Arc;

use bytes::Bytes;
use qemu::Driver;
use rpc::protocol::remote::procedure as p;
use rpc::server::unsupported_procedure;
use rpc::{CallContext, ClientId, Handler};
use virterror::VirError;

use crate::procs::{connect, domain, events, longjobs, save_image};
use crate::relay::Relay;

/// Shared by every call: the driver, the event relay, and what the daemon
/// tells clients about itself.
pub(crate) struct Daemon {
    pub driver: Driver,
    pub relay: Arc<Relay>,
    pub uri: String,
}

impl Handler for Daemon {
    async fn call(&self, ctx: CallContext, proc_: i32, args: Bytes) -> Result<Bytes, VirError> {
        match proc_ {
            p::AUTH_LIST
            | p::CONNECT_OPEN
            | p::CONNECT_CLOSE
            | p::CONNECT_SUPPORTS_FEATURE
            | p::CONNECT_GET_TYPE
            | p::CONNECT_GET_LIB_VERSION
            | p::CONNECT_GET_HOSTNAME
            | p::CONNECT_GET_URI
            | p::CONNECT_GET_SYSINFO
            | p::CONNECT_GET_MAX_VCPUS
            | p::CONNECT_IS_SECURE
            | p::NODE_GET_INFO
            | p::NODE_GET_SECURITY_MODEL
            | p::CONNECT_REGISTER_CLOSE_CALLBACK
            | p::CONNECT_UNREGISTER_CLOSE_CALLBACK => connect::call(self, &ctx, proc_, &args),
            p::CONNECT_GET_CAPABILITIES => connect::capabilities(self).await,
            p::CONNECT_GET_VERSION => connect::version(self).await,
            p::CONNECT_DOMAIN_EVENT_REGISTER
            | p::CONNECT_DOMAIN_EVENT_DEREGISTER
            | p::CONNECT_DOMAIN_EVENT_REGISTER_ANY
            | p::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY
            | p::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
            | p::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => {
                events::call(self, &ctx, proc_, &args)
            }
            p::DOMAIN_SAVE_IMAGE_GET_XML_DESC | p::DOMAIN_SAVE_IMAGE_DEFINE_XML => {
                match save_image::call(self, &ctx, proc_, &args).await {
                    Some(r) => r,
                    None => Err(unsupported_procedure(proc_)),
                }
            }
            _ => {
                if let Some(r) = longjobs::call(self, &ctx, proc_, &args).await {
                    return r;
                }
                match domain::call(self, &ctx, proc_, &args).await {
                    Some(r) => r,
                    None => Err(unsupported_procedure(proc_)),
                }
            }
        }
    }

    fn on_disconnect(&self, client: ClientId) {
        self.relay.drop_client(client);
    }
}
