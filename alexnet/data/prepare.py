"""Stage `prepare`: raw images -> the prepared store of fixed-size RGB images.

Owns the run over a whole dataset: images in order, in chunks, through worker processes (each
image as alexnet.data.resize makes it: decoded, the shorter side to 256, the central 256x256
crop), quarantining what cannot be decoded, and filling the store laid out in
docs/architecture.md through alexnet.data.store's shard writers (meta.json, classes.csv,
index.csv, shards/, quarantine.csv).

Speed: worker processes take chunks of raw bytes in order, a bounded number in flight, and
shards are written as they fill, so memory stays flat however large the dataset.

Bounded memory whatever the input: an image's size is read from its header before anything is
decoded, and one with more than `prepare.max_pixels` pixels or an aspect ratio beyond
`prepare.max_aspect` is quarantined with that reason (a 1x16000 PNG, 150 bytes, would otherwise be
resized to 256 x 4,096,000 before the crop: 3 GB). The workers die with the stage (a parent killed
with SIGKILL runs no cleanup): each sets PR_SET_PDEATHSIG on Linux and watches its parent's pid.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from alexnet.config import PrepareConfig, resolve_workers
from alexnet.data import store
from alexnet.data.resize import encode_jpeg, failure_reason, process_image
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_dir, write_json
from alexnet.pipeline.records import write_record

if TYPE_CHECKING:
    from alexnet.data.sources.base import RawDataset, RawRecord

# Images per task sent to a worker: large enough to amortise pickling and task overhead, small
# enough that the chunks in flight (CHUNKS_PER_WORKER per worker) stay a few tens of MB.
CHUNK = 16
CHUNKS_PER_WORKER = 4

def _process_chunk(args: tuple[list[bytes], PrepareConfig]) -> tuple[np.ndarray | list[bytes], list[str | None]]:
    """Worker task: process a chunk; returns (the good images, reason or None per item).

    The good images come stacked (format npy) or as JPEG bytes each (format jpeg).
    """
    datas, cfg = args
    good: list[np.ndarray] = []
    reasons: list[str | None] = []
    for data in datas:
        try:
            good.append(process_image(data, cfg.image_side, cfg.draft, cfg.max_pixels, cfg.max_aspect))
            reasons.append(None)
        except Exception as e:  # noqa: BLE001 -- any decode failure is a quarantine, never a crash
            reasons.append(failure_reason(e))
    if cfg.format == "jpeg":
        return [encode_jpeg(image, cfg.jpeg_quality) for image in good], reasons
    stacked = np.stack(good) if good else np.empty((0, cfg.image_side, cfg.image_side, 3), np.uint8)
    return stacked, reasons


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(stage: int) -> None:
    """Pool initializer: end this worker when the stage (pid `stage`) that started it is gone, even
    by SIGKILL (which runs no cleanup, so the pool cannot shut its workers down).

    The worker watches its own parent: the stage itself (fork, spawn), or the forkserver (Python
    3.14's default on Linux), which exits when the stage does."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher below still does it
    if parent != stage:  # a forkserver's child, or the stage died before prctl took effect
        try:
            os.kill(stage, 0)
        except (ProcessLookupError, PermissionError):  # no such process, or another user's: not ours
            os._exit(1)

    def watch() -> None:  # other platforms, and whatever prctl missed
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process (see `_die_with_parent`)."""
    return ProcessPoolExecutor(workers, initializer=_die_with_parent, initargs=(os.getpid(),))


def _chunks(records: Iterable[RawRecord], n: int) -> Iterator[list[RawRecord]]:
    chunk: list[RawRecord] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ordered_map(pool: Executor | None, fn: Callable, tasks: Iterable[tuple[Any, Any]],
                in_flight: int) -> Iterator[tuple[Any, Any]]:
    """Like an ordered imap, but with at most `in_flight` tasks outstanding.

    `tasks` yields (key, payload); only the payload goes to a worker, and (key, fn(payload)) comes
    back in order. Pool.imap and Executor.map submit their whole input at once, which would pull
    the whole raw dataset into memory while the workers lag behind; here the reader advances only
    as results come back. With pool None everything runs in this process.
    """
    if pool is None:
        for key, payload in tasks:
            yield key, fn(payload)
        return
    pending: collections.deque = collections.deque()
    for key, payload in tasks:
        pending.append((key, pool.submit(fn, payload)))
        if len(pending) >= in_flight:
            k, f = pending.popleft()
            yield k, f.result()
    while pending:
        k, f = pending.popleft()
        yield k, f.result()


def _check_classes(dataset: RawDataset) -> tuple[list[Any], dict[str, int]]:
    """The dataset's classes and wnid -> label (position in the sorted list)."""
    classes = list(dataset.classes)
    wnids = [c.wnid for c in classes]
    if not classes:
        raise PipelineError("the raw dataset has no classes")
    if wnids != sorted(wnids) or len(set(wnids)) != len(wnids):
        raise PipelineError("the raw dataset's classes must be distinct and sorted by WordNet id")
    return classes, {w: i for i, w in enumerate(wnids)}


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[Executor | None]:
    """A process pool (not multiprocessing.Pool): a worker killed mid-task (out of memory, a crash
    inside a decoder) raises BrokenProcessPool, reported here, instead of hanging the stage."""
    pool = make_pool(workers) if workers > 1 else None
    try:
        yield pool
    except BrokenProcessPool as e:
        raise PipelineError(f"a prepare worker process died ({e}); out of memory, or a crash in the "
                            "image decoder: try fewer prepare.workers") from e
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _prepare_split(split: str, dataset: RawDataset, pool: Executor | None, workers: int, cfg: PrepareConfig,
                   root: Path, index: Any, quarantine: Any, label_of: dict[str, int],
                   progress: bool) -> tuple[int, int]:
    """One split's images decoded (in order, by the pool), stored and indexed, or quarantined
    (every record is one or the other). Returns (stored, quarantined)."""
    writer = store.shard_writer(root, split, cfg)
    n_bad = 0
    tasks = ((chunk, ([r.data for r in chunk], cfg)) for chunk in _chunks(dataset.iter_split(split), CHUNK))
    results = ordered_map(pool, _process_chunk, tasks, workers * CHUNKS_PER_WORKER)
    with tqdm(total=dataset.count(split), unit="img", desc=f"prepare {split}", disable=not progress) as bar:
        for chunk, (good, reasons) in results:
            k = 0
            for rec, reason in zip(chunk, reasons):
                if rec.wnid not in label_of:
                    raise PipelineError(f"{split}/{rec.source}: WordNet id {rec.wnid!r} is not one of "
                                        f"the dataset's {len(label_of)} classes")
                if reason is None:
                    shard, offset = writer.add(good[k])
                    k += 1
                    index.writerow([split, shard, offset, label_of[rec.wnid], rec.wnid, rec.source])
                else:
                    n_bad += 1
                    quarantine.writerow([split, rec.source, rec.wnid, reason])
            bar.update(len(chunk))
    writer.flush()
    expected = dataset.count(split)
    if expected is not None and writer.total + n_bad != expected:
        raise PipelineError(f"split {split}: the raw files held {writer.total + n_bad} images where "
                            f"{expected} were listed when the download stage checked them; were "
                            "they changed since? rerun `dvc repro`")
    return writer.total, n_bad


# write_store's results that vary between runs of the same inputs: the run record's, not the metrics'.
RUN_ONLY = ("seconds", "images_per_second", "workers")


def write_store(dataset: RawDataset, out_dir: str | Path, cfg: PrepareConfig, source: str,
                progress: bool = True, subset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prepare every split of `dataset` into the store at `out_dir` (replaced atomically).

    Returns the metrics: images per split, quarantined per split and in total, images/s, the
    format and the mean bytes per image of the shard files. `subset` (alexnet.data.sources.subset's
    summary of what download selected, None for the whole dataset) is recorded in meta.json and
    the metrics. Each split must stream as many records as `dataset.count` says (when it says).
    """
    classes, label_of = _check_classes(dataset)
    workers = resolve_workers(cfg.workers)
    counts: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        shard_dir = tmp / store.SHARDS
        shard_dir.mkdir()
        with _worker_pool(workers) as pool, open(tmp / store.INDEX, "w", newline="") as fi, \
                open(tmp / store.QUARANTINE, "w", newline="") as fq:
            index = csv.writer(fi, lineterminator="\n")
            index.writerow(store.INDEX_COLUMNS)
            quarantine = csv.writer(fq, lineterminator="\n")
            quarantine.writerow(store.QUARANTINE_COLUMNS)
            for split in dataset.splits:
                counts[split], quarantined[split] = _prepare_split(
                    split, dataset, pool, workers, cfg, tmp, index, quarantine, label_of, progress)
        meta = {"size": cfg.image_side, "source": source, "eval_split": dataset.eval_split, "splits": counts,
                "num_classes": len(classes), "format": cfg.format}
        if subset is not None:  # absent: the whole dataset, checked complete against its devkit
            meta["subset"] = subset
        store.write_classes_and_meta(tmp, [(i, c.wnid, c.name) for i, c in enumerate(classes)], meta)
        stored = sum(p.stat().st_size for p in shard_dir.iterdir())
    seconds = time.perf_counter() - start
    seen = sum(counts.values()) + sum(quarantined.values())
    return {
        "images": counts,
        "quarantined": quarantined,
        "quarantined_total": sum(quarantined.values()),
        "images_total": sum(counts.values()),
        "seconds": round(seconds, 3),
        "images_per_second": round(seen / seconds, 1) if seconds > 0 else 0.0,
        "workers": workers,
        "format": cfg.format,
        "bytes_per_image": round(stored / sum(counts.values()), 1) if sum(counts.values()) else 0.0,
        **({"subset": subset} if subset is not None else {}),
    }


def prepare(raw_dir: str | Path, out_dir: str | Path, cfg: PrepareConfig,
            record_path: str | Path | None = None, progress: bool = True,
            root: str | Path | None = None, metrics_path: str | Path | None = None) -> dict[str, Any]:
    """Stage entry point: open data/raw with alexnet.data.sources (a user's own files in `root`,
    params data.root), write the store, the counts (`metrics_path`: images and quarantined per
    split, format, bytes per image, the subset; read by the report) and the run record (speed)."""
    from alexnet.data.sources import (  # here: write_store itself takes any RawDataset-like object
        open_raw,
        read_manifest,
    )
    from alexnet.data.sources.subset import summary

    raw_dir = Path(raw_dir)
    recorded = read_manifest(raw_dir)
    source = str(recorded.get("source", "unknown"))
    metrics = write_store(open_raw(raw_dir, root), out_dir, cfg, source, progress=progress,
                          subset=summary(recorded.get("selection")))
    speed = {k: metrics[k] for k in RUN_ONLY}
    if metrics_path is not None:
        write_json(metrics_path, {k: v for k, v in metrics.items() if k not in RUN_ONLY})
    if record_path is not None:
        write_record(record_path, {k: v for k, v in speed.items() if k != "seconds"}, seconds=speed["seconds"])
    return metrics
