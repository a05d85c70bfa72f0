#!/usr/bin/env bash
# Load check: 100 `stacks up preview-pr` at once from separate processes with the
# kubernetes:// state backend, on a control plane, node and PostgreSQL of its own
# sized for them, then 100 destroys at once; passes with 0 errors and no state
# left. The runs use the release build of the binary (the test harness is a
# debug build: it only starts processes). LOAD_PREVIEWS=N for another count.
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
eval "$(scripts/control-plane.sh env | sed 's/^/export /')"
cargo build --locked --release -q -p stacks-cli
STACKS_BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/release/stacks"
case "${CARGO_TARGET_DIR:-}" in /*) STACKS_BIN="$CARGO_TARGET_DIR/release/stacks" ;; esac
export STACKS_BIN
exec cargo test --locked -p stacks-cli --test cluster_load \
  hundred_preview_pr_ups_at_once_on_the_kubernetes_backend -- --nocapture
