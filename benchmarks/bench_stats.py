"""Benchmark: the stats stage's pixels/s against the memory-bandwidth bound of a plain numpy sum.

    python benchmarks/bench_stats.py                  # well under a minute on a 2-core CPU
    python benchmarks/bench_stats.py --images 8192 --repeat 5

Writes a prepared store of random 256x256 RGB images to a temp folder (page-cached), then times,
on the same uint8 data, the median of --repeat runs of:
  - numpy sum (bound): `shard.sum()` over the memory-mapped shard, a single pass that does
    nothing but read every byte: no statistics code can beat it;
  - naive numpy: what a typical script does, all pixels as one float64 array, then
    `mean(axis=0)` for the mean image and `np.cov` for the 3x3 covariance;
  - ours with 1 .. all workers: alexnet.data.stats.compute_stats (exact integer mean image, channel
    moments, covariance and its eigen-decomposition).
Prints a table with the ratios and writes benchmarks/results/bench_stats.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine, timed, write_result, write_store

from alexnet.config import resolve_workers
from alexnet.data.stats import compute_stats
from alexnet.data.store import PreparedStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2048,
                    help="random 256x256 images (default 2048, 400 MB: enough for worker start-up not to dominate)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method; the median is reported")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--shard-size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_stats.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_stats."))
    try:
        rng = np.random.default_rng(args.seed)  # one class of random images
        write_store(tmp / "store", rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8),
                    shard_size=args.shard_size)
        store = PreparedStore(tmp / "store")
        view = store.split("train")
        shards = [view.shard(k) for k in range(view.num_shards)]
        pixels = args.images * args.size * args.size

        def bound():
            for s in shards:
                s.sum()

        def naive():
            x = np.concatenate([np.asarray(s) for s in shards]).astype(np.float64)
            x.mean(axis=0)
            np.cov(x.reshape(-1, 3).T, bias=True)

        bound()  # warm the page cache
        methods = {"numpy sum (bound)": (bound, 1), "naive numpy float64": (naive, 1)}
        cores = resolve_workers(0)
        for w in sorted({1, *range(2, cores + 1, max(1, cores // 4)), cores}):
            methods[f"ours ({w} worker{'s' * (w > 1)})"] = (
                lambda w=w: compute_stats(store, "train", workers=w, progress=False), w)

        rows = {}
        for name, (fn, workers) in methods.items():
            times, cpus = timed(fn, args.repeat)
            med, cpu = statistics.median(times), statistics.median(cpus)
            rows[name] = {"workers": workers, "seconds": times, "cpu_seconds": cpus, "median_s": med,
                          "pixels_per_second": pixels / med, "pixels_per_cpu_second": pixels / cpu}
            print(f"  {name:<22} {pixels / med / 1e6:8.1f} Mpx/s", file=sys.stderr)

        bound_pps = rows["numpy sum (bound)"]["pixels_per_second"]
        naive_pps = rows["naive numpy float64"]["pixels_per_second"]
        for r in rows.values():
            r["vs_bound"] = r["pixels_per_second"] / bound_pps
            r["vs_naive"] = r["pixels_per_second"] / naive_pps

        m = machine()
        print(f"\nstats: {args.images} images of {args.size}x{args.size} ({pixels / 1e6:.0f} Mpx, "
              f"{pixels * 3 / 1e6:.0f} MB uint8); median of {args.repeat}; {m['cpu']}, {m['cores']} cores, "
              f"load {m['load_avg_1min']:.1f}")
        print(f"{'method':<22} {'Mpx/s':>8} {'GB/s':>6} {'vs bound':>9} {'vs naive':>9} {'Mpx/cpu-s':>10}")
        for name, r in rows.items():
            pps = r["pixels_per_second"]
            print(f"{name:<22} {pps / 1e6:8.1f} {pps * 3 / 1e9:6.2f} {r['vs_bound']:8.2f}x {r['vs_naive']:8.2f}x "
                  f"{r['pixels_per_cpu_second'] / 1e6:10.1f}")

        result = {"benchmark": "stats", "command": "python benchmarks/bench_stats.py " + " ".join(sys.argv[1:]),
                  "machine": m, "images": args.images, "size": args.size, "pixels": pixels,
                  "repeat": args.repeat, "methods": rows}
        write_result(args.out, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
