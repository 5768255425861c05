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
            | p::CONNECT_GET_VERSION
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

    fn is_mutating(&self, procedure: i32) -> bool {
        !is_read_only_safe(procedure)
    }

    fn on_disconnect(&self, client: ClientId) {
        self.relay.drop_client(client);
    }
}

/// Procedures that read state only and so are allowed on the read-only
/// socket. Everything not listed is treated as mutating: an allow-list, so
/// a procedure added later is denied on the read-only socket until someone
/// decides otherwise. Flag-dependent cases (e.g. `DOMAIN_GET_XML_DESC` with
/// `VIR_DOMAIN_XML_SECURE`) are for the handler to refine via
/// `CallContext::readonly`.
fn is_read_only_safe(proc_: i32) -> bool {
    use rpc::protocol::remote::procedure::*;
    matches!(
        proc_,
        CONNECT_OPEN
            | CONNECT_CLOSE
            | CONNECT_GET_TYPE
            | CONNECT_GET_VERSION
            | CONNECT_GET_MAX_VCPUS
            | NODE_GET_INFO
            | CONNECT_GET_CAPABILITIES
            | DOMAIN_GET_XML_DESC
            | DOMAIN_GET_AUTOSTART
            | DOMAIN_GET_INFO
            | DOMAIN_GET_MAX_MEMORY
            | DOMAIN_GET_MAX_VCPUS
            | DOMAIN_GET_OS_TYPE
            | DOMAIN_GET_VCPUS
            | CONNECT_LIST_DEFINED_DOMAINS
            | DOMAIN_LOOKUP_BY_ID
            | DOMAIN_LOOKUP_BY_NAME
            | DOMAIN_LOOKUP_BY_UUID
            | CONNECT_NUM_OF_DEFINED_DOMAINS
            | CONNECT_LIST_DEFINED_NETWORKS
            | CONNECT_LIST_DOMAINS
            | CONNECT_LIST_NETWORKS
            | CONNECT_NUM_OF_DEFINED_NETWORKS
            | CONNECT_NUM_OF_DOMAINS
            | CONNECT_NUM_OF_NETWORKS
            | DOMAIN_GET_SCHEDULER_TYPE
            | DOMAIN_GET_SCHEDULER_PARAMETERS
            | CONNECT_GET_HOSTNAME
            | CONNECT_SUPPORTS_FEATURE
            | DOMAIN_BLOCK_STATS
            | DOMAIN_INTERFACE_STATS
            | AUTH_LIST
            | AUTH_SASL_INIT
            | AUTH_SASL_START
            | AUTH_SASL_STEP
            | AUTH_POLKIT
            | NODE_GET_CELLS_FREE_MEMORY
            | NODE_GET_FREE_MEMORY
            | CONNECT_DOMAIN_EVENT_REGISTER
            | CONNECT_DOMAIN_EVENT_DEREGISTER
            | CONNECT_GET_URI
            | DOMAIN_GET_SECURITY_LABEL
            | NODE_GET_SECURITY_MODEL
            | CONNECT_IS_SECURE
            | DOMAIN_IS_ACTIVE
            | DOMAIN_IS_PERSISTENT
            | CONNECT_GET_LIB_VERSION
            | DOMAIN_MEMORY_STATS
            | DOMAIN_GET_JOB_INFO
            | CONNECT_DOMAIN_EVENT_REGISTER_ANY
            | CONNECT_DOMAIN_EVENT_DEREGISTER_ANY
            | DOMAIN_HAS_MANAGED_SAVE_IMAGE
            | DOMAIN_GET_BLOCK_INFO
            | DOMAIN_GET_VCPUS_FLAGS
            | DOMAIN_IS_UPDATED
            | CONNECT_GET_SYSINFO
            | DOMAIN_GET_STATE
            | DOMAIN_GET_CONTROL_INFO
            // libvirt allows it read-only unless the secure flag is asked
            // for; the handler refuses that case.
            | DOMAIN_SAVE_IMAGE_GET_XML_DESC
            | DOMAIN_GET_BLOCK_JOB_INFO
            | DOMAIN_GET_METADATA
            | CONNECT_LIST_ALL_DOMAINS
            | DOMAIN_GET_SECURITY_LABEL_LIST
            | CONNECT_LIST_ALL_STORAGE_POOLS
            | CONNECT_LIST_ALL_NETWORKS
            | DOMAIN_GET_JOB_STATS
            | CONNECT_NETWORK_EVENT_REGISTER_ANY
            | CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
            | CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY
            | CONNECT_GET_DOMAIN_CAPABILITIES
            | CONNECT_GET_ALL_DOMAIN_STATS
            | DOMAIN_GET_IOTHREAD_INFO
            | CONNECT_REGISTER_CLOSE_CALLBACK
            | CONNECT_UNREGISTER_CLOSE_CALLBACK
            | DOMAIN_GET_PERF_EVENTS
            | CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY
            | CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY
            | STORAGE_VOL_GET_INFO_FLAGS
    )
}
