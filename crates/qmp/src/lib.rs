//! qmp (placeholder)
