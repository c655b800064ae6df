#!/usr/bin/env bash
# Every benchmark, one after the other; each prints its table and writes benchmarks/results/<name>.json.
# Usage: bash benchmarks/run_all.sh   (about 8 minutes on a 2-core CPU; pass --device cuda where
# a script takes it by running that script directly).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in prepare jpeg stats input train eval; do
  echo "=== benchmarks/bench_$b.py"
  python "benchmarks/bench_$b.py"
done
