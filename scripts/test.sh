#!/usr/bin/env bash
# Runs the whole test suite: unit and snapshot tests, and integration tests
# against a real etcd + kube-apiserver + kube-controller-manager and a real
# PostgreSQL, all started by the test kit on loopback ports.
# Then runs the library examples (`examples/`).
# Installs what is missing first (scripts/control-plane.sh install; cached).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
cargo test --workspace --locked "$@"
# The library examples, run as a user would (they check what they expect).
cargo run --locked -q -p preview-examples --example local_files
