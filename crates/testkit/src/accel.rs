//! Which accelerator real QEMU runs under.
//!
//! Tests use TCG, which behaves the same on every host:
//! `FERROVIRT_TEST_ACCEL=kvm` asks for KVM where it really runs guests (an
//! openable `/dev/kvm` is no proof of that). The bench asks the driver's own
//! probe instead.

use std::path::Path;

/// The environment variable that asks tests for KVM.
pub const TEST_ACCEL_VAR: &str = "FERROVIRT_TEST_ACCEL";

/// Whether tests should run real QEMU under KVM.
pub fn tests_use_kvm() -> bool {
    std::env::var(TEST_ACCEL_VAR).as_deref() == Ok("kvm")
}

/// The `<domain type=...>` of real-QEMU domains in tests: `kvm` or `qemu`.
pub fn test_domain_type() -> &'static str {
    if tests_use_kvm() { "kvm" } else { "qemu" }
}

/// Whether KVM runs a guest on this host in useful time: the driver's own
/// probe (a one-sector guest under KVM), with its image in `scratch`.
pub async fn kvm_works(emulator: &Path, scratch: &Path) -> bool {
    qemu::caps::kvm_works(emulator, scratch).await
}
