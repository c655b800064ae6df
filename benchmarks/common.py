"""The benchmarks' shared scaffolding: CPU time, device sync, timing, the machine, results, stores.

Imported by every benchmarks/bench_*.py, which stay runnable directly (`python
benchmarks/bench_x.py`): each puts the repository root (for alexnet) and benchmarks/ (for this
module) on sys.path before importing either.

  - cpu_seconds(): CPU time of this process, its threads and its child processes;
  - sync(device): wait for a CUDA device's queued work (nothing on a CPU);
  - timed(fn, repeat, device): wall and CPU seconds of each of `repeat` calls; timed_once for one;
  - step_rate(step, batch, steps, repeat, device): a training step's images/s after a warm-up;
  - top_kernels(step, device): the kernels (CUDA) or operators (CPU) a step spends its time in;
  - machine(device): the "machine" block every results JSON carries;
  - device_name(device): the GPU's name, or the CPU model;
  - write_result(path, result): the results JSON, written atomically;
  - write_store(root, images, labels, ...): a valid prepared store (docs/architecture.md layout,
    format npy or jpeg) of given uint8 images, which alexnet.data.store.PreparedStore opens.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
import torchvision

from alexnet.config import PrepareConfig, resolve_workers
from alexnet.data import store
from alexnet.data.resize import encode_jpeg
from alexnet.data.store import shard_writer
from alexnet.pipeline.provenance import hardware

try:  # psutil comes with dvc; a bare PyTorch image (benchmarks/run_gpu.sh) may lack it
    import psutil
except ImportError:
    psutil = None


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and of its child processes.

    Children count both once ended and waited for (a process pool's workers, getrusage) and while
    alive (persistent DataLoader workers, psutil; without psutil only ended ones count). On a
    shared, loaded machine wall-clock rates swing with the neighbours; CPU seconds per item
    measure the work itself.
    """
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime
    if psutil is not None:
        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                t = child.cpu_times()
                total += t.user + t.system
            except psutil.Error:  # ended meanwhile
                pass
    return total


def sync(device: Any) -> None:
    """Wait until the work queued on `device` (a torch.device or its name; None: the CPU) is done."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def timed_once(fn: Callable[[], Any], device: Any = None) -> tuple[Any, float, float]:
    """(fn()'s result, wall seconds, CPU seconds) of one call; a CUDA `device` is synchronised
    before and after, so that the wall time covers the work fn queued on it."""
    sync(device)
    c0, t0 = cpu_seconds(), time.perf_counter()
    value = fn()
    sync(device)
    wall = time.perf_counter() - t0
    return value, wall, cpu_seconds() - c0


def timed(fn: Callable[[], Any], repeat: int, device: Any = None) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of `repeat` calls of fn (see timed_once). CPU time is the
    figure that survives a busy machine."""
    walls, cpus = [], []
    for _ in range(repeat):
        _, wall, cpu = timed_once(fn, device)
        walls.append(wall)
        cpus.append(cpu)
    return walls, cpus


def step_rate(step: Callable[[], Any], batch: int, steps: int, repeat: int, device: Any,
              warmup: int = 5) -> dict[str, Any]:
    """Images/s and ms/step of `step` (one training step of `batch` images): the median of `repeat`
    runs of `steps` steps, after `warmup` steps (cuDNN's autotuning, the allocator, compilation)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warm = time.perf_counter() - t0
    runs = timed(lambda: [step() for _ in range(steps)], repeat, device)[0]
    med = statistics.median(runs)
    return {"images_per_second": batch * steps / med, "ms_per_step": 1000 * med / steps, "warmup_s": warm,
            "runs_s": runs}


def top_kernels(step: Callable[[], Any], device: Any, n: int = 15, steps: int = 5) -> list[dict[str, Any]]:
    """The `n` CUDA kernels (a CUDA device) or CPU operators (the CPU) with the most self time over
    `steps` profiled steps, after 3 unprofiled ones: per step, calls and ms, and the share of all."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    for _ in range(3):
        step()
    sync(device)
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
        sync(device)
    self_time = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    events = [e for e in prof.key_averages() if self_time(e) > 0]
    total = sum(self_time(e) for e in events) or 1.0
    events.sort(key=self_time, reverse=True)
    return [{"kernel": e.key[:90], "calls_per_step": e.count / steps, "ms_per_step": self_time(e) / steps / 1e3,
             "share": self_time(e) / total} for e in events[:n]]


def device_name(device: Any = None) -> str:
    """The GPU's name for a CUDA device, otherwise the CPU model (as alexnet.pipeline.provenance.hardware names it)."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return hardware()["cpu"].rsplit(" (", 1)[0]  # without hardware's " (N logical cores)"


def machine(device: Any = None) -> dict[str, Any]:
    """What ran the benchmark: CPU, cores this process may use, load, platform, library versions,
    torch's threads, and the device with the GPU's name when it is a CUDA one (else None)."""
    dev = torch.device(device) if device is not None else None
    return {"cpu": hardware()["cpu"], "cores": resolve_workers(0), "load_avg_1min": os.getloadavg()[0],
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "torch_threads": torch.get_num_threads(), "device": str(dev) if dev is not None else None,
            "gpu": device_name(dev) if dev is not None and dev.type == "cuda" else None}


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write `result` as indented JSON to `path` (folders made), atomically: a reader sees the old
    file or the new one, never half of one. Prints "wrote <path>"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def write_store(root: str | Path, images: np.ndarray | Mapping[str, np.ndarray],
                labels: np.ndarray | Mapping[str, np.ndarray] | None = None, shard_size: int = 1024,
                split: str = "train", *, num_classes: int | None = None, eval_split: str | None = None,
                fmt: str = "npy", jpeg_quality: int = 95) -> None:
    """Write a prepared store (docs/architecture.md layout) at `root`, which must not exist yet.

    images: uint8 [n, S, S, 3], the split `split`; or {split: images} for several splits (in that
    order). labels: int [n] per split likewise (default: all 0). Labels c get wnid n<c:08d>;
    num_classes defaults to the largest label + 1; eval_split to "val" when written, else the
    first split. fmt "jpeg" stores each image as prepare's format jpeg does (4:4:4, quality
    `jpeg_quality`), "npy" as uint8 shards; shard_size images per shard file.
    """
    root = Path(root)
    splits = dict(images) if isinstance(images, Mapping) else {split: images}
    if labels is None:
        labels = {name: np.zeros(len(x), np.int64) for name, x in splits.items()}
    elif not isinstance(labels, Mapping):
        labels = {split: labels}
    if set(labels) != set(splits):
        raise ValueError(f"labels for splits {sorted(labels)}, images for {sorted(splits)}")
    first = next(iter(splits.values()))
    size = first.shape[1] if first.ndim == 4 else 0
    for name, x in splits.items():
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (size, size, 3):
            raise ValueError(f"split {name}: images must be uint8 [n, S, S, 3] with one S for all splits, "
                             f"got {x.dtype} {list(x.shape)}")
    cfg = PrepareConfig(image_side=int(size), shard_size=shard_size, format=fmt, jpeg_quality=jpeg_quality)
    if num_classes is None:
        num_classes = 1 + max((int(np.max(y)) for y in labels.values() if len(y)), default=0)
    if eval_split is None:
        eval_split = "val" if "val" in splits else next(iter(splits))

    (root / store.SHARDS).mkdir(parents=True)
    with open(root / store.INDEX, "w", newline="") as f:
        index = csv.writer(f)
        index.writerow(store.INDEX_COLUMNS)
        for name, x in splits.items():
            y = np.asarray(labels[name])
            if len(y) != len(x):
                raise ValueError(f"split {name}: {len(x)} images, {len(y)} labels")
            writer = shard_writer(root, name, cfg)  # prepare's own shard files
            for i, (image, label) in enumerate(zip(x, y.tolist())):
                k, o = writer.add(encode_jpeg(image, jpeg_quality) if fmt == "jpeg" else image)
                index.writerow((name, k, o, label, f"n{label:08d}", f"{i}.JPEG"))
            writer.flush()
    # meta.json last, as prepare writes it: a store without meta.json is incomplete
    store.write_classes_and_meta(root, [(c, f"n{c:08d}", f"class {c}") for c in range(num_classes)], {
        "size": int(size), "source": "bench", "eval_split": eval_split,
        "splits": {name: len(x) for name, x in splits.items()}, "num_classes": int(num_classes), "format": fmt})
