//! rpc (placeholder)
