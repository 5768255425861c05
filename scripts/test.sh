#!/usr/bin/env bash
# Runs every check and test: the one command README.md promises and .ci/run
# calls. Formatting and lints first (workspace policy in Cargo.toml), then the
# tests against real QEMU, virsh and libvirt-python.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Binaries first: end-to-end tests spawn qemu-sim and ferrovirtd from target/.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
