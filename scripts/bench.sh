#!/usr/bin/env bash
# Benchmarks: the engine vs kubectl on a real local control plane (plan, first
# up, no-op up; 100 and 500 PR stacks applied by as many processes at once, each
# size on a fresh control plane), plus synthetic 2,000- and 20,000-resource
# plans. Prints a Markdown table with the kubectl baselines measured in the same
# run and whether each target is met. BENCH_RUNS=N (default 5) processes per
# median; BENCH_SCALE=N[,M…] (default 100,500; 0 skips) stacks at once;
# BENCH_KUBECTL_AT_ONCE=N caps the kubectl processes at once (default: as many
# as fit in memory); BENCH_SYNTHETIC=N[,M…] (default 2000,20000);
# BENCH_BACKEND=kubernetes keeps every run's state in kubernetes://preview-state
# (default file://): BENCH_BACKEND=kubernetes BENCH_SCALE=100 is the load check
# of 100 preview-pr ups at once from separate processes on that backend.
# CARGO_TARGET_DIR is honoured. About 15 minutes on a 2-core machine once built.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
# The v1.37 binaries and kubectl the test kit and the bench use.
eval "$(scripts/control-plane.sh env | sed 's/^/export /')"
cargo build --locked --release -q -p stacks-cli -p bench
exec "${CARGO_TARGET_DIR:-target}/release/bench" "$@"
