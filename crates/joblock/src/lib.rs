//! joblock (placeholder)
