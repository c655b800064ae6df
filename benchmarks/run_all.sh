#!/usr/bin/env bash
# Every benchmark, one after the other; each prints its table and writes benchmarks/results/<name>.json.
usage() {
  cat <<'USAGE'
Usage: bash benchmarks/run_all.sh [-h|--help]

Runs every CPU benchmark one after the other (prepare, jpeg, stats, input, train, eval), about
8 minutes on a 2-core CPU. Each prints its table and writes benchmarks/results/bench_<name>.json;
the figures and the machine they were measured on are in BENCHMARKS.md. For one benchmark, or
for --device cuda where a script takes it, run that script directly:
  python benchmarks/bench_train.py --help
On a GPU machine: bash benchmarks/run_gpu.sh
USAGE
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac
set -euo pipefail
cd "$(dirname "$0")/.."
for b in prepare jpeg stats input train eval; do
  echo "=== benchmarks/bench_$b.py"
  python "benchmarks/bench_$b.py"
done
