#!/usr/bin/env bash
# Runs the whole test suite: unit and snapshot tests, and integration tests
# against a real etcd + kube-apiserver + kube-controller-manager and a real
# PostgreSQL, all started by the test kit on loopback ports.
# The library examples (`examples/`) run within it: examples/tests/examples.rs
# builds each and runs it (custom_stack on the test cluster); local_files runs
# once more below, as a user would.
# Installs what is missing first (scripts/control-plane.sh install; cached).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
cargo test --workspace --locked "$@"
# The library examples, run as a user would (they check what they expect).
cargo run --locked -q -p preview-examples --example local_files
