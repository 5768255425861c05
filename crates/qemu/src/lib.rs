//! qemu (placeholder)
