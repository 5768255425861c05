//! domain (placeholder)
