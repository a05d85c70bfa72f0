#!/usr/bin/env bash
# Benchmarks: the engine vs kubectl on a real local control plane, plus a
# synthetic 2,000-resource plan. Prints a Markdown table. BENCH_RUNS=N (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
cargo build --locked --release -q -p stacks -p bench
exec target/release/bench "$@"
