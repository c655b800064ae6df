"""alexnet.data.input.producer: batches made ahead on a thread, in order, errors and early stops handled."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch

from alexnet.data.input.producer import produce

CPU = torch.device("cpu")


def slow_square(i: int) -> torch.Tensor:
    time.sleep(random.Random(i).random() * 0.01)  # uneven work: the order must not depend on it
    return torch.tensor([i * i])


def test_results_come_in_order_and_are_made_on_the_producer_thread():
    threads = set()

    def make(i: int) -> torch.Tensor:
        threads.add(threading.current_thread().name)
        return slow_square(i)

    got = [int(t) for t in produce(iter(range(20)), make, CPU)]
    assert got == [i * i for i in range(20)]
    assert threads == {"BatchProducer"}


def test_the_producer_runs_at_most_depth_batches_ahead():
    made: list[int] = []
    depth = 2

    def make(i: int) -> int:
        made.append(i)
        return i

    it = produce(iter(range(10)), make, CPU, depth=depth)
    assert next(it) == 0
    time.sleep(0.3)  # time enough to run ahead as far as it may
    # 0 was taken; `depth` wait in the queue; one more may be made and held until there is room
    assert 1 + depth <= len(made) <= 2 + depth
    it.close()


def test_an_error_reaches_the_caller_at_its_batch_and_the_thread_ends():
    before = threading.active_count()

    def make(i: int) -> int:
        if i == 3:
            raise OSError("decode failed")
        return i

    got = []
    with pytest.raises(OSError, match="decode failed"):
        for x in produce(iter(range(10)), make, CPU):
            got.append(x)
    assert got == [0, 1, 2]
    assert threading.active_count() == before


def test_an_early_stop_ends_the_thread_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(1000)
        finally:
            closed.set()

    before = threading.active_count()
    it = produce(source(), lambda i: i, CPU)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.is_set() and threading.active_count() == before


def test_depth_is_checked():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        next(produce(iter(range(3)), lambda i: i, CPU, depth=0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_are_made_on_a_side_stream_and_ready_on_the_callers():
    """The producer's kernels run on their own stream; the caller's stream waits on an event, so
    a result read there is complete, with no host sync in the hand-off."""
    device = torch.device("cuda")
    streams = set()
    big = torch.randn(2048, 2048, device=device)

    def make(i: int) -> torch.Tensor:
        streams.add(torch.cuda.current_stream(device).cuda_stream)
        return (big @ big).sum().reshape(1) * 0 + i  # long enough to be in flight at the hand-off

    main = torch.cuda.current_stream(device).cuda_stream
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = [t for t in produce(iter(range(8)), make, device)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert main not in streams and len(streams) == 1
    assert [int(t.item()) for t in got] == list(range(8))
