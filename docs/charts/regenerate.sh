#!/usr/bin/env bash
# Redraws the charts of docs/PERFORMANCE.md: reruns the benches behind them
# on this machine, which write their figures to docs/charts/data/*.csv,
# then draws docs/charts/*.svg from those files (examples/charts.rs).
#
#   docs/charts/regenerate.sh              # benches, then charts (about 10 minutes)
#   docs/charts/regenerate.sh --draw-only  # charts from the data in docs/charts/data
#
# The benches compare against Redis: redis-server and redis-benchmark must
# be installed (Debian: apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HASHKV_CHART_DATA="$PWD/docs/charts/data"

if [ "${1:-}" != "--draw-only" ]; then
  cargo bench --bench redis_best -- --keys 1000000 --runs 3
  cargo bench --bench memory -- all 5
  cargo bench --bench growth -- 10000000
  cargo bench --bench snapshot -- 10000000
fi
cargo run --release --example charts -- "$HASHKV_CHART_DATA" docs/charts
