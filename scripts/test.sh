#!/usr/bin/env bash
# Runs every test: the one command README.md promises and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
# Binaries first: end-to-end tests spawn qemu-sim and ferrovirtd from target/.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
