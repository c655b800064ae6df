"""Batches made a step or two ahead on their own thread and, on a GPU, their own CUDA stream.

Owns `produce(items, make, device, depth)`: a thread takes each read batch from `items` (the
reader threads' output, in order), runs `make` on it (the device's part of making a batch:
the hardware decoder's share, the host-to-device copy, augmentation, the cast to the step's
dtype and memory format) and hands the result to the caller, at most `depth` batches ahead.

Why: on a GPU, making a batch on the training thread puts its kernels in the step's stream, and
nvJPEG's decoder takes a global lock and synchronises its stream, so decode and the step took
turns. Here the batch is made on a side stream; the step's stream waits for an event recorded
behind it (a wait on the GPU, not on the host) and each tensor is marked as used by the step's
stream (`record_stream`), so the caching allocator does not hand its memory back to the side
stream while the step still reads it.

What comes out never depends on timing: batches are made one after another, in order, by one
thread, from inputs fixed by (seed, epoch, batch). On the CPU there is no stream: the thread is
the same, the hand-off is a queue (tests/test_loader.py checks the batches equal the
caller-thread ones, bit for bit).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

DEPTH = 2  # batches made ahead of the step: one in the step, one waiting, one being made
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _tensors(batch: Any) -> list[Tensor]:
    return [t for t in (batch if isinstance(batch, (tuple, list)) else (batch,)) if isinstance(t, Tensor)]


def produce(items: Iterator[Any], make: Callable[[Any], Any], device: torch.device,
            depth: int = DEPTH) -> Iterator[Any]:
    """make(item) for each item, in order, made on a producer thread at most `depth` ahead.

    On CUDA, `make` runs on a stream of its own; each result is ready on the caller's current
    stream when it is yielded (an event wait queued there, no host sync). Stopping early (the
    caller breaks or fails) stops the thread and closes `items`; an error in the thread is
    raised in the caller at the batch it happened on.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    cuda = device.type == "cuda"
    stream = torch.cuda.Stream(device=device) if cuda else None
    if cuda:  # whatever the caller queued before (the mean image's copy) comes first
        stream.wait_stream(torch.cuda.current_stream(device))
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    threads = torch.get_num_threads()

    def put(value: Any) -> bool:
        """Queue `value` unless the caller has gone; False once it has."""
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        torch.set_num_threads(threads)  # a new thread starts with torch's default team
        try:
            for item in items:
                if stop.is_set():
                    return
                if cuda:
                    with torch.cuda.stream(stream):
                        batch = make(item)
                        event = torch.cuda.Event()
                        event.record(stream)
                else:
                    batch, event = make(item), None
                if not put((batch, event)):
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 -- handed to the caller, raised there
            put(_Failed(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="BatchProducer", daemon=True)
    thread.start()
    try:
        while True:
            got = handoff.get()
            if got is _DONE:
                return
            if isinstance(got, _Failed):
                raise got.error
            batch, event = got
            if event is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(event)
                for t in _tensors(batch):
                    t.record_stream(current)
            yield batch
    finally:
        stop.set()
        thread.join()


__all__ = ["DEPTH", "produce"]
