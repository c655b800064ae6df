"""Processes and devices for training: one process, or data-parallel ranks under torchrun.

Owns the choice of device (`train.device`: auto = CUDA when present) and the process group.
Launched plainly, training is one process (rank 0 of 1), on the GPU its seed's place in
train.seeds names when there are several (pick_device). Launched with
`torchrun --nproc_per_node N stages/train.py ...`, torchrun sets RANK, LOCAL_RANK and
WORLD_SIZE; each rank then drives one device (cuda:LOCAL_RANK, or the CPU), the process group
uses NCCL on CUDA and gloo on the CPU, and DistributedDataParallel averages gradients. Only
rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from alexnet.errors import PipelineError
from alexnet.runtime.backend import choose_device


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise PipelineError(f"environment variable {name}={value!r} is not an integer") from None


def pick_device(device: str, slot: int = 0) -> torch.device:
    """The device this process trains on. Under torchrun (WORLD_SIZE > 1) each rank drives GPU
    LOCAL_RANK. One process takes GPU `slot` modulo the GPUs there are: train passes its seed's
    place in train.seeds, so on a machine with several GPUs the ensemble's stages, started side
    by side (docs/running.md), train one net per GPU; with one GPU every slot is cuda:0."""
    if _env_int("WORLD_SIZE", 1) > 1:
        index = _env_int("LOCAL_RANK", 0)
    else:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = slot % count if count else 0
    return choose_device(device, "train.device", index)


def setup(device: str, slot: int = 0) -> Context:
    """Pick the device (pick_device) and, under torchrun (WORLD_SIZE > 1), join the process group."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = pick_device(device, slot)
    use_cuda = dev.type == "cuda"
    if use_cuda:
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        # torchrun provides MASTER_ADDR/MASTER_PORT; env:// reads them.
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://",
                                rank=rank, world_size=world_size,
                                device_id=dev if use_cuda else None)
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum `t` over ranks in place (a no-op for one process)."""
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, ctx: Context) -> Any:
    """Rank 0's `obj` on every rank (pickled; for small objects such as a checkpoint's state)."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def gather_objects(obj: Any, ctx: Context) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
