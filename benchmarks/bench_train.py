"""Benchmark: the training loop's images/s against the bare model's forward+backward+step.

    python benchmarks/bench_train.py                        # about a minute on a 2-core CPU
    python benchmarks/bench_train.py --width 1 --batch-size 128 --steps 20 --device cuda --amp bf16 --channels-last
    python benchmarks/bench_train.py --bit-identity          # numerics.bit_identity's cost (docs/reproducibility.md)

Writes a prepared store of random 256x256 images (docs/architecture.md layout) and random
training statistics to a temp folder, builds the paper's net (--width, 224 input), then times,
interleaved, the median of --repeat runs of --steps steps each:
  - bare: model forward, cross-entropy, backward and the paper's SGD step (alexnet.training.optim.PaperSGD)
    on one random float32 batch already on the device: what the hardware can do, nothing else;
  - loop: alexnet.training.loop.train_one_epoch over the store: batch order, reading the memory-mapped
    shards, the paper's augmentation (random crops, flips, PCA lighting, mean image) on the
    device, the same step, the running metrics and the loss guard.
The loop's overhead is 1 - loop/bare (the issue's target: under 10% on the CPU). CPU seconds are
reported beside wall seconds because a shared machine's wall clock is noisy. Prints a table and
writes benchmarks/results/bench_train.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

# No progress bars in the timings: tqdm reads TQDM_DISABLE once, when imported (torch imports it).
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import device_name, machine, timed_once, write_result, write_store

from alexnet.config import NumericsConfig, params_from_dict
from alexnet.data.stats import Stats
from alexnet.data.store import PreparedStore
from alexnet.model.net import build_model
from alexnet.runtime import backend as runtime
from alexnet.runtime import pinning
from alexnet.training import distributed
from alexnet.training.loop import train_one_epoch
from alexnet.training.optim import build_optimizer
from alexnet.training.train import _make_loaders

RESULTS = Path(__file__).resolve().parent / "results" / "bench_train.json"


def write_random_store(root: Path, n: int, classes: int, seed: int) -> None:
    """n random 256x256 training images (and a token val split) as a prepared store, in one shard each."""
    rng = np.random.default_rng(seed)
    counts = {"train": n, "val": 1}
    images = {split: rng.integers(0, 256, (count, 256, 256, 3), dtype=np.uint8) for split, count in counts.items()}
    labels = {split: rng.integers(0, classes, count) for split, count in counts.items()}
    write_store(root, images, labels, shard_size=max(n, 1), num_classes=classes, eval_split="val")


def random_stats(seed: int) -> Stats:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return Stats(mean_image=rng.uniform(100, 150, (256, 256, 3)), channel_mean=np.full(3, 120.0),
                 channel_std=np.full(3, 60.0), cov=q @ np.diag([5000.0, 300.0, 50.0]) @ q.T,
                 eigvals=np.array([5000.0, 300.0, 50.0]), eigvecs=q, count=np.int64(256 * 256))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=0.25, help="model.width (default 0.25, the tiny net)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8, help="training steps per timed run (fewer: noisy)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each; the median is reported")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--amp", default="none", choices=["none", "bf16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--bit-identity", action="store_true",
                    help="numerics.bit_identity (re-executes under its pinned environment; writes bench_train_bit_identity.json)")
    ap.add_argument("--threads", type=int, default=2, help="numerics.threads with --bit-identity")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    numerics = NumericsConfig(bit_identity=args.bit_identity, threads=args.threads)
    pinning.pin(numerics)  # torch is loaded: with --bit-identity this starts again under the pinned environment
    out = args.out or RESULTS.with_name("bench_train_bit_identity.json" if args.bit_identity else RESULTS.name)

    params = params_from_dict({
        "model": {"width": args.width},
        "train": {"batch_size": args.batch_size, "epochs": 1, "device": args.device, "amp": args.amp,
                  "channels_last": args.channels_last, "compile": args.compile, "deterministic": False}})
    runtime.configure(numerics, deterministic=False)
    ctx = distributed.setup(args.device)
    device = ctx.device
    n = args.batch_size * args.steps

    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "prepared"
        write_random_store(store_dir, n, args.classes, 0)
        store = PreparedStore(store_dir)
        torch.manual_seed(0)
        model = build_model(params.model, args.classes).to(device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        net = torch.compile(model) if args.compile else model
        optimizer = build_optimizer(model.parameters(), params.train)
        loader, _ = _make_loaders(store, random_stats(0), params, ctx, 0, "paper")
        x = torch.randn(args.batch_size, 3, 224, 224, device=device) * 50
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, args.classes, (args.batch_size,), device=device)

        def bare() -> None:
            model.train()
            for _ in range(args.steps):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        def loop() -> None:
            train_one_epoch(net, loader, optimizer, 1, params, ctx, "none")

        bare(), loop()  # warm-up: allocator, oneDNN primitives, compilation, page cache
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "loop": []}
        for _ in range(args.repeat):
            for name, fn in (("bare", bare), ("loop", loop)):
                _, wall, cpu = timed_once(fn, device)  # the device synchronised before and after
                runs[name].append((wall, cpu))

    rows = {}
    for name, r in runs.items():
        wall = statistics.median(w for w, _ in r)
        cpu = statistics.median(c for _, c in r)
        rows[name] = {"wall_s": wall, "cpu_s": cpu, "images_per_s": n / wall, "images_per_cpu_s": n / cpu,
                      "runs_wall_s": [w for w, _ in r]}
    overhead_wall = 1 - rows["loop"]["images_per_s"] / rows["bare"]["images_per_s"]
    overhead_cpu = 1 - rows["loop"]["images_per_cpu_s"] / rows["bare"]["images_per_cpu_s"]
    dev_name = device_name(device)

    print(f"training step, {device} ({dev_name}), width {args.width}, batch {args.batch_size}, "
          f"{args.steps} steps x {args.repeat} runs (median), amp {args.amp}, channels_last {args.channels_last}, "
          f"compile {args.compile}, bit_identity {args.bit_identity}, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    print(f"{'':<6}{'img/s':>10}{'img/CPU-s':>12}{'wall s':>9}")
    for name, r in rows.items():
        print(f"{name:<6}{r['images_per_s']:>10.1f}{r['images_per_cpu_s']:>12.1f}{r['wall_s']:>9.2f}")
    print(f"loop overhead over bare: {100 * overhead_wall:.1f}% (wall), {100 * overhead_cpu:.1f}% (CPU time); "
          "target < 10%")

    result = {
        "benchmark": "train", "machine": machine(device), "device": str(device), "device_name": dev_name,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0],
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "images_per_run": n, "bare": rows["bare"], "loop": rows["loop"],
        "overhead_wall": overhead_wall, "overhead_cpu": overhead_cpu,
        "numerics": runtime.numerics_record(numerics),
    }
    write_result(out, result)


if __name__ == "__main__":
    main()
