"""Benchmark: the paper's run on one GPU, prepared to measure everything in under 5 minutes.

    python benchmarks/bench_gpu.py            # on a CUDA machine: about 4 minutes with 3 compiled rows (5 now: not timed)
    python benchmarks/bench_gpu.py --smoke    # every code path on the CPU, tiny sizes: seconds (.ci/run)

From a realistic JPEG store (256x256 4:4:4 quality-95 crops of real photographs, bench_jpeg.py's
photo_crops, written as prepare writes a jpeg store), on the paper's net (width 1, 1,000 classes,
batch 128, the GPU profile of configs/ilsvrc2012.yaml: bf16 autocast, channels_last):
  - decode alone: a pass over the store's batches decoded by the hardware decoder (nvJPEG, one
    batched call), by CPU threads (libjpeg-turbo), and by both at once (half of each batch each);
  - the bare step (alexnet.training.loop.train_step on one batch already on the device): eager,
    compiled, CUDA graphs (torch.compile's reduce-overhead mode), each with the grouped
    convolutions and with their dense block-diagonal form (model.grouped_conv), the ceiling
    without the LRN layers, and the deterministic fp32 eager step (configs/ilsvrc2012-deterministic.yaml);
    the compiled net and the CUDA graphs again with the paper's update compiled too (what
    train.compile runs: PaperSGD.compile_update), against the eager update;
  - the loop end to end (alexnet.training.loop.train_one_epoch: loader, decode, augmentation,
    step) with the compiled net and update, against the goal of 20,000 img/s, with every JPEG
    decoded by nvJPEG and with half of every batch on CPU threads (train.decode split); the
    device's part of each batch is made on the producer's own stream (alexnet.data.input.producer);
  - the top kernels of that compiled step (torch.profiler).
A row that fails prints its error, the others go on, and the exit status is 1; the results file
is rewritten after every row ("finished": false until the end), so a run cut short keeps its rows.
--smoke runs the same rows on the CPU with a 1/16-width net, batch 4 and torch.compile's eager
backend for the net and the update (the tracing, not inductor's code generation, which takes
minutes on a small CPU), and writes no file unless --out is given; the full run writes
benchmarks/results/bench_gpu.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

# No progress bars in the timings: tqdm reads TQDM_DISABLE once, when imported (torch imports it).
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from bench_jpeg import photo_crops
from bench_train import random_stats
from common import machine, step_rate, sync, timed, top_kernels, write_result

from alexnet.config import Params, params_from_dict
from alexnet.data.store import PreparedStore
from alexnet.model.net import build_model
from alexnet.runtime import backend as runtime
from alexnet.training import distributed
from alexnet.training.loop import train_one_epoch, train_step
from alexnet.training.optim import build_optimizer
from alexnet.training.train import _make_loaders

RESULTS = Path(__file__).resolve().parent / "results" / "bench_gpu.json"
GOAL = 20_000  # img/s: 90 epochs of ILSVRC-2012 in 1.6 hours (issue 33)
# (model switches, train switches, the net's torch.compile mode: None eager, "default",
# "reduce-overhead"; whether the paper's update is compiled too, as train.compile does)
STEPS: dict[str, tuple[dict, dict, str | None, bool]] = {
    "eager, grouped": ({}, {}, None, False),
    "eager, dense": ({"grouped_conv": "dense"}, {}, None, False),
    "eager, no LRN (ceiling)": ({"lrn": False}, {}, None, False),
    "deterministic fp32 eager": ({}, {"amp": "none", "channels_last": False, "deterministic": True}, None, False),
    "compiled, grouped": ({}, {}, "default", False),
    "compiled, dense": ({"grouped_conv": "dense"}, {}, "default", False),
    "compiled + compiled optimizer, grouped": ({}, {}, "default", True),
    "CUDA graphs (reduce-overhead), grouped": ({}, {}, "reduce-overhead", False),
    "CUDA graphs (reduce-overhead) + compiled optimizer, grouped": ({}, {}, "reduce-overhead", True),
}
# the loop runs through this row's net and optimizer (compiled once): what train.compile runs
LOOP_NET = "compiled + compiled optimizer, grouped"
# the loop end to end, by where the JPEGs are decoded (train.decode): all on the GPU, or half of
# every batch on the GPU and half on CPU threads (decode_device_share 0.5)
LOOPS = {"loop end to end": "device", "loop end to end, decode split half and half": "split"}


class Sizes:
    def __init__(self, smoke: bool, steps: int):
        self.width, self.batch, self.classes = (0.0625, 4, 10) if smoke else (1.0, 128, 1000)
        self.steps, self.repeat, self.warmup = (1, 1, 1) if smoke else (steps, 3, 5)
        self.images = self.batch * (4 if smoke else 24)  # the store: one pass of the loop
        self.threads = 2 if smoke else 16


def profile_params(sizes: Sizes, device: str) -> Params:
    """configs/ilsvrc2012.yaml's GPU profile at these sizes (compile is applied per row)."""
    return params_from_dict({
        "model": {"width": sizes.width},
        "train": {"batch_size": sizes.batch, "epochs": 1, "device": device, "amp": "bf16", "channels_last": True,
                  "deterministic": False}})


def write_photo_store(root: Path, n: int, classes: int) -> PreparedStore:
    from common import write_store

    crops = photo_crops(-(-n // 3), seed=0)[:n]  # three photos, crops of random size and place
    labels = np.arange(n) % classes
    write_store(root, {"train": crops, "val": crops[:1]}, {"train": labels, "val": labels[:1]}, shard_size=n,
                num_classes=classes, eval_split="val", fmt="jpeg", jpeg_quality=95)
    return PreparedStore(root)


def decode_rows(view: Any, sizes: Sizes, device: torch.device) -> dict[str, dict]:
    """Images/s of decoding the store's batches: the device's decoder, CPU threads, both halves at once."""
    batches = [np.arange(i, min(i + sizes.batch, len(view))) for i in range(0, len(view), sizes.batch)]
    pool = ThreadPoolExecutor(sizes.threads)

    def on_device(idx: np.ndarray) -> Any:
        return view.decode(idx, view.encoded(idx), device)

    def on_cpu(idx: np.ndarray) -> list:  # the threads split the batch, as the loader's readers would
        return list(pool.map(view.images, np.array_split(idx, sizes.threads)))

    def both(idx: np.ndarray) -> None:
        half = len(idx) // 2
        cpu = pool.map(view.images, np.array_split(idx[half:], sizes.threads))
        on_device(idx[:half])
        list(cpu)

    rows = {}
    for name, fn in (("hardware decoder", on_device), ("CPU threads", on_cpu), ("both, half each", both)):
        run = lambda fn=fn: [fn(b) for b in batches]  # noqa: E731
        run()  # warm-up: nvJPEG's handle, the page cache
        walls = timed(run, sizes.repeat, device)[0]
        rows[name] = {"images_per_second": len(view) / min(walls), "threads": sizes.threads}
    pool.shutdown()
    return rows


def make_step(params: Params, sizes: Sizes, mode: str | None, compiled_update: bool, device: torch.device,
              smoke: bool) -> tuple[Callable[[], Any], torch.nn.Module, torch.optim.Optimizer]:
    """One training step of the real loop's train_step on a fixed batch, and the net it runs through."""
    cfg = params.train
    runtime.configure_determinism(cfg.deterministic)
    torch.manual_seed(0)
    model = build_model(params.model, sizes.classes).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if mode is not None:  # smoke: dynamo's tracing with the eager backend (no code generation)
        net = torch.compile(model, backend="eager") if smoke else torch.compile(model, mode=mode)
    if compiled_update and mode is None:
        raise ValueError("a compiled update goes with a compiled net (train.compile compiles both)")
    # the update compiled by build_optimizer, as train.compile does it (smoke: traced only)
    optimizer = build_optimizer(model, replace(cfg, compile=True, compile_mode=mode)
                                if compiled_update and not smoke else cfg)
    if compiled_update and smoke:
        optimizer.compile_update(backend="eager")
    x = torch.randn(sizes.batch, 3, 224, 224, device=device) * 50
    y = torch.randint(0, sizes.classes, (sizes.batch,), device=device)
    return (lambda: train_step(net, optimizer, x, y, cfg)), net, optimizer


def attempt(rows: dict, name: str, fn: Callable[[], dict], failures: list[str]) -> None:
    t0 = time.perf_counter()
    try:
        rows[name] = fn() | {"row_seconds": time.perf_counter() - t0}
        rate = rows[name].get("images_per_second")
        print(f"  {name:<66} {'' if rate is None else f'{rate:9.0f} img/s'}  ({rows[name]['row_seconds']:.0f} s)",
              flush=True)
    except Exception as e:  # noqa: BLE001 -- one failing row must not hide the others
        rows[name] = {"error": f"{type(e).__name__}: {e}"}
        failures.append(name)
        print(f"  {name:<66} failed: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(limit=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="every code path on the CPU at tiny sizes")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed run of a bare step")
    ap.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS}; --smoke: none)")
    args = ap.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("bench_gpu needs a CUDA device (or --smoke)")
    device = torch.device("cpu" if args.smoke else "cuda")
    sizes = Sizes(args.smoke, args.steps)
    base = profile_params(sizes, device.type)
    ctx = distributed.setup(device.type)
    rows: dict[str, dict] = {}
    failures: list[str] = []
    kernels: list[dict] = []
    began = time.perf_counter()
    out = args.out or (None if args.smoke else RESULTS)

    def save(finished: bool) -> None:
        """The rows so far, after each row: a run cut short (run_gpu.sh's timeout) keeps what it measured."""
        if out is not None:
            write_result(out, {
                "benchmark": "gpu", "command": "python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:]),
                "machine": machine(device), "smoke": args.smoke, "width": sizes.width, "batch": sizes.batch,
                "store_images": sizes.images, "seconds": time.perf_counter() - began, "finished": finished,
                "goal_images_per_second": GOAL, "rows": rows, "top_kernels": kernels})

    def measure(name: str, fn: Callable[[], dict]) -> None:
        attempt(rows, name, fn, failures)
        save(finished=False)

    with tempfile.TemporaryDirectory() as tmp:
        store = write_photo_store(Path(tmp) / "prepared", sizes.images, sizes.classes)
        print(f"decode, {sizes.images} photo crops (256x256 4:4:4 q95), batch {sizes.batch}:", flush=True)
        measure("decode", lambda: {"rows": decode_rows(store.split("train"), sizes, device)})
        for name, r in rows.get("decode", {}).get("rows", {}).items():
            print(f"    {name:<64} {r['images_per_second']:9.0f} img/s")

        print(f"bare step, width {sizes.width}, batch {sizes.batch}, bf16 + channels_last unless said:", flush=True)
        nets: dict[str, tuple] = {}
        for name, (model_sw, train_sw, mode, compiled_update) in STEPS.items():
            params = replace(base, model=replace(base.model, **model_sw), train=replace(base.train, **train_sw))

            def row(params: Params = params, mode: str | None = mode, compiled_update: bool = compiled_update,
                    name: str = name) -> dict:
                step, net, optimizer = make_step(params, sizes, mode, compiled_update, device, args.smoke)
                if name == LOOP_NET:
                    nets[name] = (step, net, optimizer)
                result = step_rate(step, sizes.batch, sizes.steps, sizes.repeat, device, sizes.warmup)
                sync(device)
                return result

            measure(f"step: {name}", row)

        def loop(decode: str) -> dict:
            step, net, optimizer = nets[LOOP_NET]
            params = replace(base, train=replace(base.train, decode=decode, decode_device_share=0.5))
            loader, _ = _make_loaders(store, random_stats(0), params, ctx, 0, "paper")
            train_one_epoch(net, loader, optimizer, 1, params, ctx, "none")  # warm-up: threads, page cache
            walls = timed(lambda: train_one_epoch(net, loader, optimizer, 1, params, ctx, "none"), sizes.repeat,
                          device)[0]
            return {"images_per_second": len(loader) * sizes.batch / min(walls), "decode": loader.decode,
                    "device_share": loader.device_share, "workers": loader.workers, "goal": GOAL}

        print("loop end to end (loader, decode, augmentation, the compiled step and update; the batches made "
              "on the producer's stream):", flush=True)
        # decode "device" on the CPU (--smoke) is libjpeg-turbo on the producer thread: its code path
        for name, decode in LOOPS.items():
            measure(name, lambda decode=decode: loop(decode))
        if LOOP_NET in nets:
            kernels = top_kernels(nets[LOOP_NET][0], device, steps=2 if args.smoke else 5)
            print("top kernels of the compiled step, most time first:")
            for k in kernels[:10]:
                print(f"  {k['ms_per_step']:8.3f} ms {k['share']:6.1%} {k['calls_per_step']:5.0f}x  {k['kernel']}")

    seconds = time.perf_counter() - began
    print(f"{seconds:.0f} s in all; {len(failures)} row(s) failed{': ' + ', '.join(failures) if failures else ''}")
    save(finished=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
