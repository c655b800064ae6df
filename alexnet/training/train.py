"""Training (stage `train`): the paper's SGD and schedule (Section 5), checkpoints, exact resume, DDP.

Owns a training run and everything it writes (the steps themselves: alexnet.training.loop):
    models/seed<N>/model.pt, info.json,  the trained net (alexnet.model.net.save_trained), how it was
      architecture.json                  made, and its layer table: nothing that varies between
                                         reruns, so DVC's hash is stable
    records/train-seed<N>.json           the run record: epochs run, seconds, images/s, git revision
    checkpoints/seed<N>/last.pt          written atomically after every epoch (DVC: persist)
    dvclive/train-seed<N>/               per-epoch curves, step = epoch (errors in percent); no timings

The run ends at `train.epochs` or earlier when the plateau schedule says so (alexnet.training.optim.Schedule).
Resume rules, the DVCLive replay and the loss guard: docs/architecture.md, "Training: resume, logs,
guard". Why the tiny run leaves the paper's init: docs/fidelity.md. Data parallel: alexnet.training.distributed
(each rank takes its rows of every global batch; DDP averages the gradients).
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alexnet.config import ModelConfig, Params, TrainConfig, execution_params, to_dict, without_cudagraphs
from alexnet.data.input.loader import BatchLoader
from alexnet.data.stats import load_stats
from alexnet.data.store import PreparedStore, layout_files
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_dir, atomic_path, hash_file, write_json
from alexnet.model import netstore
from alexnet.model.net import architecture, build_model, count_parameters, save_trained
from alexnet.pipeline import provenance
from alexnet.pipeline.records import write_record
from alexnet.runtime import backend as runtime
from alexnet.runtime import seeds
from alexnet.runtime.backend import load_failure, torch_load
from alexnet.training import distributed, state
from alexnet.training.loop import ChanceMonitor, input_dtype, train_one_epoch, validate
from alexnet.training.optim import Schedule, build_optimizer, set_lr

CHECKPOINT_FORMAT = "alexnet-repro/train-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "last.pt"
# Params a checkpoint made with other values of is still resumed, by section: the execution params
# (config.SAME_BYTES and SAME_RECIPE: the same bytes, or the same recipe in other bits: compile
# and its mode, channels_last, amp, deterministic, the device, model.grouped_conv, the seed list;
# each net's seed is in the identity) and epochs (a longer run extends a shorter one). So the paper's run
# moves between the deterministic profile and the fast one, or between machines, without restarting.
EXECUTION_ONLY = {"model": execution_params(ModelConfig), "train": (*execution_params(TrainConfig), "epochs")}
METRIC_KEYS = ("train/loss", "train/top1_error", "train/top5_error", "train/loss_below_chance", "val/loss",
               "val/top1_error", "val/top5_error", "lr", "images_per_second")
# What DVCLive logs: the curves, not the speed (a timing there would change dvclive/ on every rerun;
# images/s per epoch is in the run record).
LIVE_KEYS = tuple(k for k in METRIC_KEYS if k != "images_per_second")


# --------------------------------------------------------------------------- checkpoints


def _section(params: Params, name: str, execution: bool) -> dict[str, Any]:
    """Section `name` of params: the fields EXECUTION_ONLY lists (`execution`) or the others."""
    skip = EXECUTION_ONLY.get(name, ())
    return {k: v for k, v in to_dict(getattr(params, name)).items() if (k in skip) == execution}


def run_identity(params: Params, seed: int, data_fingerprint: str) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: everything that changes the arithmetic."""
    return {**{name: _section(params, name, False) for name in ("model", "augment", "train", "numerics")},
            "seed": seed, "data": data_fingerprint, "code": state.code_fingerprint(__file__)}


def run_execution(params: Params) -> dict[str, Any]:
    """How a run executes (EXECUTION_ONLY's fields): kept in the checkpoint, a change said on resume."""
    return {name: _section(params, name, True) for name in EXECUTION_ONLY}


def data_fingerprint(prepared: Path, stats_dir: Path) -> str:
    """SHA-256 of the store's meta.json and index.csv and of stats.npz (not the pixels: DVC
    hashes those; this catches a checkpoint left over from another dataset)."""
    h = hashlib.sha256()
    for path in (*layout_files(prepared), stats_dir / "stats.npz"):
        hash_file(path, h)
    return h.hexdigest()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint read with weights_only=True; anything unreadable is a PipelineError."""
    ckpt = torch_load(path, "cpu", "checkpoint", "; delete it to start training from scratch")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise PipelineError(f"{path} is not a training checkpoint of this project; move it away")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise PipelineError(f"{path}: checkpoint version {ckpt.get('version')!r}, expected "
                            f"{CHECKPOINT_VERSION}; delete it to start from scratch")
    return ckpt


def _mismatch(e: Exception) -> str:
    """The first concrete line of torch's load_state_dict error (which lists every tensor), and how many more."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    if not detail:
        return load_failure(e)
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    first = detail[0] if len(detail[0]) <= 200 else detail[0][:197] + "..."
    return first.rstrip(".") + more


def save_checkpoint(path: Path, contents: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **contents}, tmp)


def choose_start(path: Path, identity: dict[str, Any], epochs: int) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start fresh (see the module docstring)."""
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    differ = state.differences(ckpt.get("identity"), identity)
    if differ:
        what = "code" if all(d.startswith("code") for d in differ) else "params"
        print(f"{path} was made with other {what} ({'; '.join(differ)}); starting from scratch",
              file=sys.stderr)
        return None
    if int(ckpt["epoch"]) > epochs:
        print(f"{path} has {ckpt['epoch']} epochs, more than train.epochs = {epochs}; starting from scratch",
              file=sys.stderr)
        return None
    return ckpt


# --------------------------------------------------------------------------- the stage


def _make_loaders(store: Any, stats: Any, params: Params, ctx: distributed.Context, seed: int,
                  normalization: str) -> tuple[Any, Any]:
    """The training loader (this rank's rows of each global batch) and the validation loader
    (this rank's share of the evaluation split, centre crops, every image exactly once)."""
    cfg = params.train
    common = {"input_size": params.model.input_size, "stats": stats, "device": ctx.device, "seed": seed,
              "normalization": normalization, "workers": cfg.loader_workers, "decode": cfg.decode,
              "device_share": cfg.decode_device_share, "dtype": input_dtype(params),
              "channels_last": cfg.channels_last}
    train = BatchLoader(store.split("train"), cfg.batch_size, augment=params.augment, shuffle=True,
                        drop_last=True, rank=ctx.rank, world_size=ctx.world_size, **common)
    val_view = store.split("val" if "val" in store.splits else store.eval_split)
    # this rank's contiguous share of the split: every image exactly once over the ranks
    share = np.array_split(np.arange(len(val_view), dtype=np.int64), ctx.world_size)[ctx.rank]
    val = BatchLoader(val_view, max(1, cfg.batch_size // ctx.world_size), augment=None, mean=params.augment.mean,
                      shuffle=False, drop_last=False, indices=share, **common)
    return train, val


def _replay(live: Any, history: list[dict[str, float]]) -> None:
    for record in history:
        live.step = int(record["epoch"])
        for key in LIVE_KEYS:
            live.log_metric(key, record[key])
        live.make_summary()


@dataclass
class _Run:
    """What one training run works with, built once by _setup."""

    store: PreparedStore
    model: nn.Module
    train_loader: BatchLoader
    val_loader: BatchLoader
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    identity: dict[str, Any]
    execution: dict[str, Any]
    ckpt_path: Path
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    start_epoch: int = 0


def _setup(params: Params, seed: int, prepared: Path, stats_dir: Path, checkpoints: Path,
           ctx: distributed.Context) -> _Run:
    """The store, the net (the same initial weights on every rank), loaders, optimizer, schedule."""
    cfg = params.train
    store = PreparedStore(prepared)
    stats = load_stats(stats_dir)
    state.seed_everything(seeds.stream_seed(seed, "init", 0))  # the same initial weights on every rank
    model = build_model(params.model, store.num_classes).to(ctx.device)
    train_loader, val_loader = _make_loaders(store, stats, params, ctx, seed, model.input_normalization)
    if len(train_loader) == 0:
        raise PipelineError(f"the training split has {len(train_loader.view)} images, fewer than one "
                            f"global batch of train.batch_size = {cfg.batch_size}")
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)  # weights and biases in their own groups
    identity = run_identity(params, seed, data_fingerprint(prepared, stats_dir))
    return _Run(store, model, train_loader, val_loader, optimizer, Schedule(cfg), identity, run_execution(params),
                checkpoints / CHECKPOINT_NAME)


def _resume(run: _Run, seed: int, epochs: int, ctx: distributed.Context) -> None:
    """Start fresh or carry on from the checkpoint (see docs/architecture.md, "Resume"), and seed
    each rank's dropout stream."""
    # Rank 0 reads the checkpoint; the others receive it (no shared filesystem needed).
    ckpt = choose_start(run.ckpt_path, run.identity, epochs) if ctx.is_main else None
    ckpt = distributed.broadcast_object(ckpt, ctx)
    if ckpt is None:
        # Each rank draws its own dropout masks; rank 0's stream is a single process's.
        state.seed_everything(seeds.stream_seed(seed, "dropout", ctx.rank))
        return
    try:
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.schedule.load_state_dict(ckpt["schedule"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise PipelineError(f"{run.ckpt_path} does not fit the model and optimizer these params describe "
                            f"(another architecture?): {_mismatch(e)}; move it away to start from scratch") from e
    rngs = ckpt["rng"]
    if len(rngs) == ctx.world_size:
        state.set_rng_state(rngs[ctx.rank])
    else:
        print(f"{run.ckpt_path} was made by {len(rngs)} processes, this run has {ctx.world_size}: "
              "dropout draws are reseeded", file=sys.stderr)
        state.seed_everything(seeds.stream_seed(seed, "dropout", ctx.rank) + int(ckpt["epoch"]))
    run.start_epoch, run.history, run.seconds = int(ckpt["epoch"]), list(ckpt["history"]), float(ckpt["seconds"])
    if ctx.is_main:
        changed = state.differences(ckpt.get("execution", {}), run.execution)
        how = f" (runs otherwise now: {'; '.join(changed)})" if changed else ""
        print(f"resuming {run.ckpt_path} after epoch {run.start_epoch}{how}", file=sys.stderr)


def _wrap(model: nn.Module, cfg: TrainConfig, ctx: distributed.Context) -> nn.Module:
    """The module the steps run through: DDP across ranks, torch.compile in train.compile_mode if asked
    (the optimizer's update is compiled by build_optimizer). On the CPU inductor skips CUDA graphs
    by itself: reduce-overhead runs as default there."""
    net: nn.Module = model
    mode = cfg.compile_mode
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if without_cudagraphs(mode) != mode:  # only with train.compile (TrainConfig)
            # CUDA graphs around DDP's compiled buckets: untried here, and PyTorch has reports of
            # crashes (pytorch/pytorch#128218) and slowdowns (#139207); the rest of the mode stays.
            mode = without_cudagraphs(mode)
            if ctx.is_main:
                print(f"train.compile_mode {cfg.compile_mode} with {ctx.world_size} processes: "
                      f"compiled as {mode}, without CUDA graphs", file=sys.stderr)
    return torch.compile(net, mode=mode) if cfg.compile else net


def _open_live(live_dir: Path, history: list[dict[str, float]], ctx: distributed.Context) -> Any:
    """Rank 0's DVCLive logger, with the checkpoint's history replayed into it (step = epoch)."""
    if not ctx.is_main:
        return None
    from dvclive import Live

    live = Live(str(live_dir), resume=False, dvcyaml=False, save_dvc_exp=False, report=None)
    _replay(live, history)
    return live


def _epoch(run: _Run, net: nn.Module, epoch: int, params: Params, ctx: distributed.Context, last_good: str,
           monitor: ChanceMonitor) -> dict[str, float]:
    """Train one epoch at the schedule's lr, validate, tell the schedule; returns the epoch's record."""
    lr = run.schedule.lr(epoch)
    set_lr(run.optimizer, lr)
    began = time.perf_counter()
    train_metrics = train_one_epoch(net, run.train_loader, run.optimizer, epoch, params, ctx, last_good, monitor)
    train_seconds = time.perf_counter() - began
    val_metrics = validate(run.model, run.val_loader, params, ctx)
    run.schedule.observe(epoch, val_metrics["top1_error"])
    run.seconds += time.perf_counter() - began
    record = {"epoch": epoch, **{f"train/{k}": v for k, v in train_metrics.items()},
              "train/loss_below_chance": monitor.chance - train_metrics["loss"],
              **{f"val/{k}": v for k, v in val_metrics.items()}, "lr": lr,
              "images_per_second": len(run.train_loader) * params.train.batch_size / train_seconds}
    run.history.append(record)
    return record


def _save_epoch(run: _Run, record: dict[str, float], live: Any, epochs: int, monitor: ChanceMonitor,
                ctx: distributed.Context) -> None:
    """After an epoch: every rank's RNG state gathered, then on rank 0 the checkpoint, DVCLive, the log line."""
    rngs = distributed.gather_objects(state.rng_state(), ctx)
    if not ctx.is_main:
        return
    epoch = int(record["epoch"])
    save_checkpoint(run.ckpt_path, {
        "identity": run.identity, "execution": run.execution, "epoch": epoch, "batch": 0, "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(), "schedule": run.schedule.state_dict(), "rng": rngs,
        "history": run.history, "seconds": run.seconds, "world_size": ctx.world_size})
    _replay(live, [record])
    print(f"epoch {epoch}/{epochs}: loss {record['train/loss']:.4f} "
          f"({record['train/loss_below_chance']:.3f} below chance ln({run.store.num_classes}) = "
          f"{monitor.chance:.3f}), train top-1 error {record['train/top1_error']:.2f}%, "
          f"val top-1 error {record['val/top1_error']:.2f}% top-5 error {record['val/top5_error']:.2f}%, "
          f"lr {record['lr']:g}, {record['images_per_second']:.0f} img/s", file=sys.stderr)
    if run.schedule.stopped:
        print(f"validation error stopped improving after {run.schedule.drops} lr drops: training ends "
              f"after epoch {epoch} of at most {epochs} (train.schedule plateau, "
              "train.plateau_stop)", file=sys.stderr)


def _write_outputs(run: _Run, params: Params, seed: int, out: Path, run_record: Path | None,
                   final: dict[str, float], ctx: distributed.Context) -> None:
    """models/seed<N>/ (model.pt, info.json, architecture.json: reproducible bytes) and the run record."""
    info = {
        "params": {"model": to_dict(params.model), "augment": to_dict(params.augment),
                   "train": to_dict(params.train)},
        "seed": seed, "num_classes": run.store.num_classes, "versions": provenance.training_versions(),
        "device": provenance.device_name(ctx.device, ctx.world_size), "world_size": ctx.world_size,
        # PyTorch's CPU kernels sum in an order set by the instruction set they run
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "epochs": len(run.history), "data_fingerprint": run.identity["data"],
        "stopped_by_schedule": run.schedule.stopped,
        "final_metrics": {k: v for k, v in final.items() if k != "images_per_second"},
    }
    with atomic_dir(out) as tmp:
        save_trained(tmp / netstore.MODEL, run.model, params.model, run.store.num_classes, info)
        write_json(tmp / netstore.INFO, info)
        # the report's architecture table, so that the report reads files and never the model
        write_json(tmp / netstore.ARCHITECTURE, architecture(run.model))
    if run_record is not None:
        # seconds: training time summed over resumes (the checkpoint carries it)
        write_record(run_record, {
            # epochs run, and whether the plateau stop ended them (the ablations' epochs to converge)
            "seed": seed, "epochs": len(run.history), "stopped_by_schedule": run.schedule.stopped,
            "parameters": count_parameters(run.model),
            "images_per_second": round(run.history[-1]["images_per_second"], 1),
            "images_per_second_per_epoch": [round(r["images_per_second"], 1) for r in run.history],
            "device": info["device"], "bit_identity": provenance.bit_identity()},
            seconds=run.seconds, numerics=runtime.numerics_record(params.numerics))


def train(params: Params, seed: int, prepared: str | Path, stats_dir: str | Path, out: str | Path,
          checkpoints: str | Path, live_dir: str | Path, run_record: str | Path | None = None) -> dict[str, Any]:
    """Train one net (stage train@<seed>); returns the final epoch's metrics.

    Works as one process or as one rank of a torchrun launch (see alexnet.training.distributed).
    """
    cfg = params.train
    runtime.configure(params.numerics, cfg.deterministic)
    ctx = distributed.setup(cfg.device, slot=cfg.seeds.index(seed) if seed in cfg.seeds else 0)  # a GPU per net
    try:
        run = _setup(params, seed, Path(prepared), Path(stats_dir), Path(checkpoints), ctx)
        _resume(run, seed, cfg.epochs, ctx)
        net = _wrap(run.model, cfg, ctx)
        live = _open_live(Path(live_dir), run.history, ctx)
        last_good = f"{run.ckpt_path} (epoch {run.start_epoch})" if run.start_epoch else "none (no epoch finished)"
        monitor = ChanceMonitor(run.store.num_classes, cfg.chance_warn_steps, len(run.train_loader))
        for epoch in range(run.start_epoch + 1, cfg.epochs + 1):
            if run.schedule.stopped:  # a resumed run whose schedule had already ended it
                break
            record = _epoch(run, net, epoch, params, ctx, last_good, monitor)
            _save_epoch(run, record, live, cfg.epochs, monitor, ctx)
            last_good = f"{run.ckpt_path} (epoch {epoch})"
        final = {k: run.history[-1][k] for k in METRIC_KEYS}
        if ctx.is_main:
            live.end()
            _write_outputs(run, params, seed, Path(out), Path(run_record) if run_record is not None else None,
                           final, ctx)
        distributed.barrier(ctx)
        return final
    finally:
        distributed.teardown(ctx)


__all__ = ["load_checkpoint", "train"]
