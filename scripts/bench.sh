#!/usr/bin/env bash
# Benchmarks: the engine vs kubectl on a real local control plane (plan, first
# up, no-op up; 100 PR stacks applied by 100 processes at once), plus a
# synthetic 2,000-resource plan. Prints a Markdown table with the kubectl
# baselines measured in the same run. BENCH_RUNS=N (default 5) processes per
# median; BENCH_SCALE=N (default 100; 0 skips) stacks at once. About 2–3 minutes
# on a 2-core machine once built.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
cargo build --locked --release -q -p stacks -p bench
exec target/release/bench "$@"
