"""The training and evaluation input pipeline: prepared store -> augmented batches on the device.

Owns batch order, data-parallel slicing, prefetching and host-to-device transfer. Pixels stay
uint8 until they reach the device; `alexnet.data.input.augment` turns them into input there.

Determinism: the epoch's order is a permutation drawn from (seed, epoch) alone and each global
batch's augmentation from (seed, epoch, batch index) alone, so
- two runs with the same seed see identical batches, whatever the thread timing;
- with `world_size` ranks, rank r gets rows [r*b/w, (r+1)*b/w) of every global batch of b rows,
  so the ranks' batches concatenate to the single-process batch.

Background threads read (memory-mapped shards, the store's job) and, for a CUDA device, pin
the next batches while the device computes; uint8 is copied with `non_blocking=True` and
augmented on the GPU. On the CPU the thread also augments, so reading and augmentation overlap
the training step. Threads, not processes: the work is numpy copies, JPEG decoding and torch
ops, which release the GIL, and nothing has to be pickled between processes.

A jpeg store is decoded where `decode` says: "cpu", by the reader threads (`view.images`);
"device", where the threads only gather the bytes (`view.encoded`) and each batch is decoded on
the device in one call (`view.decode`: nvJPEG on CUDA); "split", the first
round(device_share x rows) images of every batch on the device, the rest by the reader threads:
a fixed split, so which decoder made an image never depends on timing; "auto" picks device for
CUDA, cpu otherwise. All give the same uint8 images to the same augmentation, except that
nvJPEG's inverse DCT may differ from libjpeg-turbo's by a level or two, so GPU-decoded training
is not bit-identical to CPU-decoded training (not tested here: the tests run on a CPU, where
"device" decoding is libjpeg-turbo too).

Whatever is done on the device (decoding there, the copy, augmentation) runs on a producer
thread and, on CUDA, its own stream, a batch or two ahead of the step
(alexnet.data.input.producer). Batches come out in the step's `dtype` and memory format
(`channels_last`), so the step casts nothing: the cast autocast would make, made earlier.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from alexnet.config import AugmentConfig, ConfigError
from alexnet.data.input.augment import AugmentParams, InputStats, apply_params, batch_generator, draw_params
from alexnet.data.input.pixels import MeanMode
from alexnet.data.input.producer import produce
from alexnet.runtime import seeds


@contextmanager
def _one_torch_thread(restore: int) -> Iterator[None]:
    """Run this thread's torch ops on one core: a reader thread augmenting on the CPU beside a
    training step that already uses every core. (torch's thread count is per calling thread;
    left at the default, each op here started a team of its own and the CPU training loop's
    overhead over the bare step rose from 7% to 19%.) Afterwards the count is set to `restore`,
    the caller's: torch also hands the last count set to threads started later."""
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(restore)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Indices of one epoch in presentation order: a permutation seeded by (seed, epoch)."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return torch.randperm(n, generator=seeds.generator(seed, "shuffle", epoch)).numpy()


class OutputPool:
    """Float32 batch arrays recycled once nothing outside the pool refers to them any more.

    A tensor made by `torch.from_numpy(array)` (and every view of it) keeps a reference to the
    array, so an array whose reference count is back to the pool's own is free: the batch it
    held has been dropped by the caller. A caller that keeps batches simply gets new arrays.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.arrays: list[np.ndarray] = []
        self.lock = threading.Lock()
        self._unused = [np.empty(0)]  # held by nothing else: calibrates what "free" counts

    def get(self, shape: tuple[int, ...]) -> np.ndarray:
        with self.lock:
            # The count of a free array (the list, the loop variable, getrefcount's argument on
            # CPython 3.11) is measured, not assumed: newer interpreters borrow some references.
            for unused in self._unused:
                free = sys.getrefcount(unused)
            for array in self.arrays:
                if array.shape == shape and sys.getrefcount(array) <= free:
                    return array
            array = np.empty(shape, np.float32)
            if len(self.arrays) < self.capacity:
                self.arrays.append(array)
            return array


class StoreView(Protocol):
    """What BatchLoader reads: alexnet.data.store.SplitView satisfies it (docs/architecture.md)."""

    format: str  # "npy" | "jpeg"
    labels: Any  # int64 [len]

    def __len__(self) -> int: ...

    def images(self, indices: np.ndarray) -> np.ndarray: ...  # uint8 [n, S, S, 3]

    def encoded(self, indices: np.ndarray) -> list[Tensor]: ...  # format jpeg: each image's bytes

    def decode(self, indices: np.ndarray, encoded: list[Tensor], device: torch.device | str) -> Tensor: ...


class BatchLoader:
    """Batches (inputs float32 [b, 3, C, C], labels int64 [b]) on `device` from a StoreView.

    view: an `alexnet.data.store.SplitView` (the StoreView protocol). indices: the view's rows to read,
    in this order (a data-parallel rank's share of the validation split); None: every row.
    output: "input" (the network's float32 input) or "uint8" (the stored images [b, S, S, 3] on
    `device`, for ten-crop evaluation).
    batch_size: the global batch; each of `world_size` ranks gets batch_size / world_size rows.
    stats: `alexnet.data.stats.Stats` (numpy) or `InputStats`; needed unless mean is "none" and
    there is no lighting. augment: training augmentation, or None for evaluation input (centre
    crop, no flip, no lighting, `mean` subtracted). mean: the mean mode when augment is None
    (training uses augment.mean). normalization: "paper" (raw 0-255 minus the mean) or
    "torchvision" (the torchvision variant's input). workers: reader threads (0: 1 on the CPU,
    up to 4 for a GPU, every core for a GPU fed with JPEGs decoded on the CPU); prefetch:
    batches in flight ahead of the caller (0: max(2, workers)). decode: where a jpeg store is
    decoded, "auto", "cpu", "device" or "split" (device_share of each batch on the device; see
    the module docstring). dtype, channels_last: the step's input dtype and memory format
    (output "input" only).
    """

    def __init__(self, view: StoreView, batch_size: int, *, input_size: int, stats: Any,
                 augment: AugmentConfig | None, device: torch.device | str, seed: int, shuffle: bool,
                 drop_last: bool, rank: int = 0, world_size: int = 1, mean: MeanMode = "image",
                 normalization: Literal["paper", "torchvision"] = "paper", prefetch: int = 0,
                 workers: int = 0, decode: Literal["auto", "cpu", "device", "split"] = "auto",
                 device_share: float = 0.5, indices: np.ndarray | None = None,
                 output: Literal["input", "uint8"] = "input", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} of world_size {world_size} is impossible")
        if batch_size % world_size:
            raise ConfigError(f"batch size {batch_size} does not split evenly over {world_size} processes")
        if world_size > 1 and not drop_last:
            raise ConfigError("data-parallel loading needs drop_last=True (every rank must get a full slice)")
        if output not in ("input", "uint8"):
            raise ConfigError(f"output: expected 'input' or 'uint8', got {output!r}")
        self.output = output
        self.view = view
        self.rows = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.n = len(view) if self.rows is None else len(self.rows)
        self.batch_size = batch_size
        self.input_size = input_size
        self.augment = augment
        self.mean: MeanMode = augment.mean if augment is not None else mean
        self.normalization = normalization
        self.device = torch.device(device)
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.rank, self.world_size = rank, world_size
        jpeg = view.format == "jpeg"
        if decode not in ("auto", "cpu", "device", "split"):
            raise ConfigError(f"decode: expected 'auto', 'cpu', 'device' or 'split', got {decode!r}")
        if decode in ("device", "split") and not jpeg:
            raise ConfigError(f"decode {decode!r} needs a jpeg store; {view!r} holds decoded images")
        if not 0.0 <= device_share <= 1.0:
            raise ConfigError(f"device_share: expected a fraction in [0, 1], got {device_share!r}")
        if decode == "auto":
            decode = "device" if jpeg and self.device.type == "cuda" else "cpu"
        self.decode = decode
        self.device_share = {"cpu": 0.0, "device": 1.0}.get(decode, device_share)
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ConfigError(f"dtype: expected a floating input dtype, got {dtype}")
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Reading and augmenting one batch is single-threaded numpy/torch work: a few threads
        # keep a GPU fed; on the CPU they share the cores with training, so one is enough.
        # Decoding JPEGs for a GPU costs ~0.4 ms per image: that takes every core.
        if workers < 0 or prefetch < 0:
            raise ConfigError(f"workers and prefetch must be >= 0, got {workers} and {prefetch}")
        cores = os.cpu_count() or 1
        auto = 1 if self.device.type == "cpu" else cores if jpeg and decode != "device" else min(4, cores)
        self.workers = workers or auto
        self.prefetch = prefetch or max(2, self.workers)
        labels = np.asarray(view.labels, dtype=np.int64)
        self.labels = torch.tensor(labels if self.rows is None else labels[self.rows])
        magnitude = augment.pca_magnitude if augment is not None else "eigval_255"  # unused without lighting
        self.stats = None if stats is None else InputStats.from_stats(stats, self.device, magnitude)
        if self.stats is not None:
            self.image_size = int(self.stats.mean_image.shape[0])
        else:
            self.image_size = int(np.asarray(view.images(self._store_rows(np.arange(1)))).shape[1]) if self.n else input_size
        if input_size > self.image_size:
            raise ConfigError(f"input size {input_size} exceeds the prepared image size {self.image_size}")
        if self.stats is None and (self.mean != "none" and normalization == "paper"
                                   or augment is not None and augment.pca_lighting):
            raise ConfigError("stats are required for mean subtraction and PCA lighting")
        self._pin = self.device.type == "cuda"
        self._pool = OutputPool(self.prefetch + self.workers + 2) if self.device.type == "cpu" else None

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def _store_rows(self, positions: np.ndarray) -> np.ndarray:
        """The view's rows at these positions of the loader's own row list."""
        return positions if self.rows is None else self.rows[positions]

    def _global_params(self, epoch: int, batch: int, rows: int) -> AugmentParams:
        return draw_params(rows, self.image_size, self.input_size, self.augment,
                           batch_generator(self.seed, epoch, batch))

    def _device_rows(self, rows: int) -> int:
        """How many of a batch's first rows the device decodes: fixed by the batch size alone."""
        return round(self.device_share * rows)

    def _read(self, order: np.ndarray, epoch: int, batch: int
              ) -> tuple[tuple[list[Tensor], Tensor], Tensor, AugmentParams, np.ndarray]:
        """(the JPEG bytes of the rows the device decodes, the other rows' uint8 images), labels,
        augmentation choices and the view's rows of this rank's slice of one batch."""
        rows = order[batch * self.batch_size:(batch + 1) * self.batch_size]
        params = self._global_params(epoch, batch, len(rows))
        per_rank = len(rows) // self.world_size
        start = self.rank * per_rank
        idx = rows[start:start + per_rank] if self.world_size > 1 else rows
        params = params.slice(start, start + per_rank) if self.world_size > 1 else params
        labels = self.labels[torch.from_numpy(np.asarray(idx, dtype=np.int64))]
        idx = self._store_rows(np.asarray(idx, dtype=np.int64))
        k = self._device_rows(len(idx))
        encoded = self.view.encoded(idx[:k]) if k else []
        if k < len(idx):
            decoded = torch.from_numpy(np.ascontiguousarray(self.view.images(idx[k:])))
        else:  # the device decodes every row
            decoded = torch.empty((0, self.image_size, self.image_size, 3), dtype=torch.uint8)
        if self._pin:
            decoded, labels = decoded.pin_memory(), labels.pin_memory()
        return (encoded, decoded), labels, params, idx

    def _to_input(self, images: tuple[list[Tensor], Tensor], labels: Tensor, params: AugmentParams,
                  idx: np.ndarray) -> tuple[Tensor, Tensor]:
        encoded, decoded = images
        pixels = decoded.to(self.device, non_blocking=True)
        if encoded:  # the device's rows come first in the batch
            on_device = self.view.decode(idx[:len(encoded)], encoded, self.device)
            pixels = torch.cat([on_device, pixels]) if len(pixels) else on_device
        labels = labels.to(self.device, non_blocking=True)
        if self.output == "uint8":  # the stored pixels on the device (ten-crop evaluation crops them itself)
            return pixels, labels
        out = None
        if self._pool is not None and self.normalization == "paper":
            out = self._pool.get((len(labels), 3, self.input_size, self.input_size))
        x = apply_params(pixels, params, self.input_size, self.stats, self.mean, self.normalization, out)
        return x.to(dtype=self.dtype, memory_format=self.memory_format), labels

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's batches of `epoch`, read ahead by threads (checkpoints are per epoch).

        Up to `prefetch` batches are in flight on `workers` threads while the caller computes;
        they are yielded in order, so the thread timing never changes what comes out.
        """
        order = epoch_order(self.n, self.seed, epoch, self.shuffle)
        # On the CPU with nothing to decode on the device, the reader threads make whole batches,
        # so augmentation overlaps the step; otherwise they read (and decode their share) and the
        # producer does the device's part, on its own stream, ahead of the step.
        if self.device.type == "cpu" and self.device_share == 0.0:
            caller_threads = torch.get_num_threads()

            def whole(batch: int) -> tuple[Tensor, Tensor]:
                with _one_torch_thread(caller_threads):
                    return self._to_input(*self._read(order, epoch, batch))

            yield from self._ahead(whole, epoch)
            return
        reads = self._ahead(lambda batch: self._read(order, epoch, batch), epoch)
        yield from produce(reads, lambda item: self._to_input(*item), self.device)

    def _ahead(self, work: Any, epoch: int) -> Iterator[Any]:
        """work(batch) for every batch of an epoch, in order, `prefetch` ahead on `workers` threads."""
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"BatchLoader-e{epoch}")
        pending: deque[Future] = deque()
        try:
            for batch in range(len(self)):
                pending.append(pool.submit(work, batch))
                if len(pending) > self.prefetch:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # also when the caller stops early: drop what is queued, wait for what runs
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)
