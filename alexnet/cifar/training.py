"""The paper's CIFAR-10 claims (stage `cifar`): Figure 1 (ReLU vs tanh) and LRN's 13% -> 11%.

Owns metrics/cifar.json (results), records/cifar.json (timings, what ran where) and the
stage's folder (reports/cifar/: figure1.png, curves.csv, lrn_curves.csv and runs.json, the
per-seed numbers the claims table judges). The data is stage `cifar_download`'s store
(`alexnet.cifar.data`); the nets are `alexnet.cifar.nets`.

Figure 1, as the paper ran it: the four-layer net with ReLUs and with tanh units, no
regularisation of any kind, SGD with momentum. For each activation the learning rate is the one
of `cifar.lr_grid` that reaches `cifar.target_error` training error in the fewest epochs (seed
`cifar.seeds[0]`); the grid's nets train in lockstep, an epoch each in turn, and a net stops
once it reaches the target, diverges, reaches `cifar.epochs`, or can no longer beat the best
net's epochs to the target (it has trained that many epochs without reaching it: pruning it
changes no chosen rate), or has stalled (still within 2 points of chance after 3 epochs: dead
ReLUs or saturated tanh units; it could in principle recover, so this rule, unlike the last,
is a judgement, stated here). Then the chosen rate trains with every other seed. Training error is
the error on the minibatches as they are trained on, per epoch (what cuda-convnet prints).

The LRN claim, as the authors ran it: cuda-convnet's `layers-conv-local-13pct` (no
normalisation) and `-11pct` (cross-map rnorm after conv1 and conv2) nets with their layer-params
(per-layer learning rates, biases at twice the rate, weight decay 0.004 on the locally-connected
and fc layers), on random 24x24 crops with random horizontal flips, the centre of the mean image
subtracted (cuda-convnet's cifar-cropped provider), tested on ten views (four corners and the
centre, each flipped, softmax averaged). Both nets of one seed share the initial draw, the batch
order and the crops. `cifar.lrn_epochs` are the epochs at the base rate, at 1/10 and at 1/100.

Every net checkpoints each epoch (the stage's --checkpoints folder), so a stage killed at any
point resumes where it stopped with the same result; a checkpoint whose settings differ is not
used. Raising `cifar.lrn_epochs[0]` continues the LRN nets from their checkpoints.
Deterministic: seeded init, batch order and crops, torch.use_deterministic_algorithms(True).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure  # files only: no pyplot, no backend switch
from torch import Tensor, nn

from alexnet import imports, paper, runtime
from alexnet.cifar.data import RUNS, CifarData, open_cifar
from alexnet.cifar.nets import ConvLocalNet, Figure1Net
from alexnet.config import CifarConfig, NumericsConfig
from alexnet.fileio import atomic_dir, atomic_path, write_json
from alexnet.provenance import git_revision, hardware

FIGURE = "figure1.png"
CURVES = "curves.csv"
LRN_CURVES = "lrn_curves.csv"
# The code that makes the numbers, hashed when it is imported (airbench style: the run record
# names the code that ran, even when the files change while a long run goes on).
CODE_SHA256 = {name: hashlib.sha256((imports.ROOT / name).read_bytes()).hexdigest()
               for name in sorted(imports.closure(Path(__file__)) | {"alexnet/cifar/training.py"})}
CHANCE = 90.0  # % training error before the first step (10 classes)
STALL_EPOCHS, STALL_MARGIN = 3, 2.0  # a net within 2 points of chance after 3 epochs has stalled


def epochs_to_target(errors: list[float], target: float, chance: float = CHANCE) -> float | None:
    """Epochs until the training error first reaches `target` (linear between epochs; None: never).

    errors[i] is the error of epoch i+1; before training (epoch 0) the error is `chance`.
    """
    prev_e, prev = 0, chance
    for i, err in enumerate(errors, start=1):
        if err <= target:
            if prev == err:
                return float(i)
            return round(prev_e + (prev - target) / (prev - err) * (i - prev_e), 3)
        prev_e, prev = i, err
    return None


def batch_generator(seed: int, epoch: int) -> torch.Generator:
    """The draws of one epoch (batch order, crops, flips): a function of (seed, epoch) only, so a
    resumed net sees the batches an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


# --- one net, trained epoch by epoch with a checkpoint after each ------------------------------

@dataclass
class NetRun:
    """One net: what it is, its per-epoch training error, and why it stopped."""

    kind: str  # "figure1" or "conv_local"
    activation: str  # relu / tanh (conv_local: relu)
    lrn: bool
    lr: float
    seed: int
    train_error: list[float] = field(default_factory=list)  # % per epoch
    epoch_lr: list[float] = field(default_factory=list)  # the base lr each epoch trained at
    stopped: str = ""  # "" while training; target | max_epochs | pruned | diverged | done
    test_error: float | None = None
    seconds: float = 0.0


class Trainer:
    """A net, its optimiser and its NetRun; `save`/`load` round-trip all three."""

    def __init__(self, run: NetRun, net: nn.Module, opt: torch.optim.Optimizer, key: dict, path: Path | None) -> None:
        self.run, self.net, self.opt, self.key, self.path = run, net, opt, key, path

    def load(self) -> bool:
        """Resume from the checkpoint if it was made with the same settings (key)."""
        if self.path is None or not self.path.is_file():
            return False
        state = runtime.torch_load(self.path, what="checkpoint", hint=": delete it to start that net over")
        if state.get("key") != self.key:
            print(f"checkpoint {self.path} was made with other settings: not used")
            return False
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.run = NetRun(**state["run"])
        return True

    def save(self) -> None:
        if self.path is None:
            return
        with atomic_path(self.path) as tmp:
            torch.save({"key": self.key, "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                        "run": asdict(self.run)}, tmp)


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def train_epoch(trainer: Trainer, x: Tensor, y: Tensor, batch_size: int,
                views: Callable[[Tensor, torch.Generator], Tensor] | None = None) -> float | None:
    """One epoch in the seeded order; the minibatch error (%), or None if the loss diverged."""
    run, net, opt = trainer.run, trainer.net, trainer.opt
    epoch = len(run.train_error)
    gen = batch_generator(run.seed, epoch)
    order = torch.randperm(len(y), generator=gen)
    net.train()
    wrong = torch.zeros((), dtype=torch.int64, device=y.device)  # read once per epoch: no per-step sync
    for start in range(0, len(y), batch_size):
        idx = order[start:start + batch_size].to(x.device)
        xb = x[idx]
        if views is not None:
            xb = views(xb, gen)
        yb = y[idx]
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        if not torch.isfinite(loss):
            return None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        wrong += (logits.argmax(1) != yb).sum()
    return 100.0 * int(wrong) / len(y)


# --- Figure 1 --------------------------------------------------------------------------------

@dataclass
class Inputs:
    """The images as the nets train on them, put on the device once per stage."""

    train_x: Tensor  # float32 [n, 3, 32, 32] (channels-last memory when asked)
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean_image: Tensor  # [3, 32, 32], training set


def prepare_inputs(data: CifarData, device: torch.device, channels_last: bool) -> Inputs:
    def to_tensor(images: np.ndarray) -> Tensor:
        x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    train_x = to_tensor(data.train_images)
    # float64 sum of uint8 pixels: exact, so the mean image does not depend on summation order
    mean = torch.from_numpy(data.train_images.astype(np.float64).mean(axis=0)).permute(2, 0, 1).float().to(device)
    return Inputs(train_x, torch.from_numpy(data.train_labels).to(device), to_tensor(data.test_images),
                  torch.from_numpy(data.test_labels).to(device), mean)


def figure1_trainer(cfg: CifarConfig, activation: str, lr: float, seed: int, device: torch.device,
                    data_md5: str, ckpt_dir: Path | None) -> Trainer:
    torch.manual_seed(seed)  # the same initial weights for every lr and activation of one seed
    net = Figure1Net(activation, cfg.width, cfg.input_scale).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=0.0)
    key = {"net": "figure1", "activation": activation, "lr": lr, "seed": seed, "width": cfg.width,
           "batch_size": cfg.batch_size, "momentum": cfg.momentum, "input_scale": cfg.input_scale,
           "channels_last": cfg.channels_last, "data": data_md5, "device": device.type}
    path = ckpt_dir / f"figure1-{activation}-lr{lr:g}-s{seed}-{fingerprint(key)}.pt" if ckpt_dir else None
    return Trainer(NetRun("figure1", activation, False, lr, seed), net, opt, key, path)


def stop_reason(run: NetRun, cfg: CifarConfig, best: float) -> str:
    """Why a Figure 1 net stops now ("" = train another epoch). `best`: the fewest epochs to
    the target among the finished nets it competes with (inf: none yet)."""
    if run.stopped:
        return run.stopped
    if epochs_to_target(run.train_error, cfg.target_error) is not None:
        return "target"
    if len(run.train_error) >= cfg.epochs:
        return "max_epochs"
    if len(run.train_error) >= best:  # its own epochs to target will be more than `best`
        return "pruned"
    if len(run.train_error) >= STALL_EPOCHS and min(run.train_error) >= CHANCE - STALL_MARGIN:
        return "stalled"  # still at chance: dead ReLUs or saturated tanh units at too high a rate
    return ""


def train_lockstep(trainers: list[Trainer], inputs: Inputs, cfg: CifarConfig, prune: bool, label: str) -> list[NetRun]:
    """Train Figure 1 nets an epoch each in turn until each stops (stop_reason)."""
    for t in trainers:
        t.load()
    while True:
        reached = [epochs_to_target(t.run.train_error, cfg.target_error) for t in trainers]
        best = min([e for e in reached if e is not None], default=math.inf) if prune else math.inf
        active = []
        for t in trainers:
            reason = stop_reason(t.run, cfg, best)
            if reason and not t.run.stopped:
                t.run.stopped = reason
                t.save()
            if not reason:
                active.append(t)
        if not active:
            return [t.run for t in trainers]
        for t in active:
            start = time.perf_counter()
            err = train_epoch(t, inputs.train_x, inputs.train_y, cfg.batch_size)
            t.run.seconds += time.perf_counter() - start
            if err is None:
                t.run.stopped = "diverged"
            else:
                t.run.train_error.append(err)
                t.run.epoch_lr.append(t.run.lr)
            t.save()
            r = t.run
            print(f"{label} {r.activation} lr {r.lr:g} seed {r.seed}: epoch {len(r.train_error)} training error "
                  f"{r.train_error[-1] if r.train_error else float('nan'):.2f}%{' (diverged)' if err is None else ''}"
                  f" [{r.seconds:.0f} s]", flush=True)


def best_run(runs: list[NetRun], target: float) -> NetRun:
    """The lr that reaches `target` in the fewest epochs (ties: the smaller lr); if none does,
    the lowest final error."""
    def key(r: NetRun) -> tuple:
        if r.stopped == "diverged" or not r.train_error:
            return (2, math.inf, r.lr)
        e = epochs_to_target(r.train_error, target)
        return (0, e, r.lr) if e is not None else (1, r.train_error[-1], r.lr)
    return min(runs, key=key)


def figure1(inputs: Inputs, cfg: CifarConfig, device: torch.device, data_md5: str,
            ckpt_dir: Path | None) -> dict[str, Any]:
    """The lr grid per activation (seed cfg.seeds[0]), then the chosen lr with every seed."""
    grids, chosen, seeds = {}, {}, {}
    for activation in ("relu", "tanh"):
        grid = [figure1_trainer(cfg, activation, lr, cfg.seeds[0], device, data_md5, ckpt_dir) for lr in cfg.lr_grid]
        grids[activation] = train_lockstep(grid, inputs, cfg, prune=True, label="grid")
        best = best_run(grids[activation], cfg.target_error)
        chosen[activation] = best.lr
        others = [figure1_trainer(cfg, activation, best.lr, s, device, data_md5, ckpt_dir) for s in cfg.seeds[1:]]
        seeds[activation] = [best, *train_lockstep(others, inputs, cfg, prune=False, label="seeds")]
    return {"grids": grids, "chosen": chosen, "seeds": seeds}


# --- the LRN claim: layers-conv-local-13pct and -11pct -----------------------------------------

def crop_views(crop: int) -> Callable[[Tensor, torch.Generator], Tensor]:
    """Training views of cuda-convnet's cifar-cropped provider: a random crop x crop patch of
    each image (offsets 0..border*2) and a horizontal flip with probability 1/2."""
    def views(x: Tensor, gen: torch.Generator) -> Tensor:
        n, size = x.shape[0], x.shape[-1]
        oy, ox = (torch.randint(0, size - crop + 1, (n,), generator=gen) for _ in range(2))
        flip = torch.randint(0, 2, (n,), generator=gen).bool()
        span = torch.arange(crop)
        rows = (oy[:, None] + span).to(x.device)
        cols = torch.where(flip[:, None], ox[:, None] + crop - 1 - span, ox[:, None] + span).to(x.device)
        out = x[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2)  # advanced indexing puts the channels last
    return views


def mean_patch(inputs: Inputs, crop: int) -> Tensor:
    """The centre crop x crop of the mean image: cifar-cropped subtracts it from every view."""
    border = (inputs.mean_image.shape[-1] - crop) // 2
    return inputs.mean_image[:, border:border + crop, border:border + crop]


def multiview_crops(x: Tensor, crop: int) -> list[Tensor]:
    """cuda-convnet's multiview test: four corners and the centre, and each flipped."""
    size = x.shape[-1]
    b = size - crop
    starts = [(0, 0), (0, b), (b // 2, b // 2), (b, 0), (b, b)]
    views = [x[:, :, y:y + crop, x0:x0 + crop] for y, x0 in starts]
    return views + [v.flip(-1) for v in views]


@torch.no_grad()
def multiview_error(net: nn.Module, x: Tensor, y: Tensor, crop: int, patch: Tensor, batch: int = 1000) -> float:
    """Top-1 error (%) with the softmax averaged over the ten views."""
    net.eval()
    wrong = 0
    for start in range(0, len(y), batch):
        xb = x[start:start + batch]
        probs = sum(F.softmax(net(v - patch), dim=1) for v in multiview_crops(xb, crop))
        wrong += int((probs.argmax(1) != y[start:start + batch]).sum())
    return 100.0 * wrong / len(y)


def lrn_schedule(cfg: CifarConfig) -> list[float]:
    """The base lr of every epoch: lrn_epochs[i] epochs at lrn_lr / 10**i."""
    return [cfg.lrn_lr / 10 ** i for i, n in enumerate(cfg.lrn_epochs) for _ in range(n)]


def conv_local_trainer(cfg: CifarConfig, lrn: bool, seed: int, device: torch.device, data_md5: str,
                       ckpt_dir: Path | None) -> Trainer:
    torch.manual_seed(seed)  # both nets of a seed: the same draw (rnorm has no weights)
    net = ConvLocalNet(lrn, cfg.lrn_width, cfg.lrn_crop, cfg.lrn_size, cfg.lrn_scale, cfg.lrn_pow).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.param_groups(cfg.lrn_lr, cfg.lrn_weight_decay), lr=cfg.lrn_lr, momentum=cfg.lrn_momentum)
    key = {"net": "conv_local", "lrn": lrn, "seed": seed, "width": cfg.lrn_width, "crop": cfg.lrn_crop,
           "batch_size": cfg.lrn_batch_size, "lr": cfg.lrn_lr, "momentum": cfg.lrn_momentum,
           "weight_decay": cfg.lrn_weight_decay, "rnorm": [cfg.lrn_size, cfg.lrn_scale, cfg.lrn_pow],
           "channels_last": cfg.channels_last, "data": data_md5, "device": device.type}
    name = "11pct" if lrn else "13pct"
    path = ckpt_dir / f"conv-local-{name}-s{seed}-{fingerprint(key)}.pt" if ckpt_dir else None
    return Trainer(NetRun("conv_local", "relu", lrn, cfg.lrn_lr, seed), net, opt, key, path)


def _set_lr(opt: torch.optim.Optimizer, base_lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = base_lr * group["lr_mult"]


def train_conv_local(t: Trainer, inputs: Inputs, cfg: CifarConfig) -> NetRun:
    """Train one 13pct/11pct net through the schedule (resuming), then test it on ten views."""
    schedule = lrn_schedule(cfg)
    if t.load() and t.run.epoch_lr != schedule[:len(t.run.epoch_lr)]:
        print(f"checkpoint {t.path} followed another lr schedule: starting over")
        t = conv_local_trainer(cfg, t.run.lrn, t.run.seed, inputs.train_x.device, t.key["data"], t.path.parent if t.path else None)
    patch = mean_patch(inputs, cfg.lrn_crop)
    crops = crop_views(cfg.lrn_crop)
    run = t.run
    while len(run.train_error) < len(schedule) and run.stopped != "diverged":
        lr = schedule[len(run.train_error)]
        _set_lr(t.opt, lr)
        start = time.perf_counter()
        err = train_epoch(t, inputs.train_x, inputs.train_y, cfg.lrn_batch_size, lambda xb, g: crops(xb, g) - patch)
        run.seconds += time.perf_counter() - start
        if err is None:
            run.stopped = "diverged"
        else:
            run.train_error.append(err)
            run.epoch_lr.append(lr)
        t.save()
        print(f"conv-local {'11pct (LRN)' if run.lrn else '13pct'} seed {run.seed}: epoch {len(run.train_error)} "
              f"lr {lr:g} training error {err if err is not None else float('nan'):.2f}% [{run.seconds:.0f} s]", flush=True)
    if run.stopped != "diverged":
        run.stopped = "done"
        run.test_error = round(multiview_error(t.net, inputs.test_x, inputs.test_y, cfg.lrn_crop, patch), 3)
    return run


def lrn_claim(inputs: Inputs, cfg: CifarConfig, device: torch.device, data_md5: str,
              ckpt_dir: Path | None) -> list[tuple[NetRun, NetRun]]:
    """(13pct, 11pct) per seed."""
    return [tuple(train_conv_local(conv_local_trainer(cfg, lrn, seed, device, data_md5, ckpt_dir), inputs, cfg)
                  for lrn in (False, True)) for seed in cfg.seeds]


# --- outputs -------------------------------------------------------------------------------

def plot_figure1(seeds: dict[str, list[NetRun]], target: float, path: Path, dataset: str) -> None:
    """The paper's Figure 1: training error vs epochs, ReLU solid, tanh dashed, every seed, the 25% line."""
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    longest = 1
    for activation, style, name in (("relu", "-", "ReLU"), ("tanh", "--", "tanh")):
        for i, run in enumerate(seeds[activation]):
            errors = [CHANCE, *run.train_error]
            longest = max(longest, len(run.train_error))
            ax.plot(np.arange(len(errors)), np.array(errors) / 100, style, color="black", linewidth=1.2, alpha=0.8,
                    label=f"{name} (lr {run.lr:g}, {len(seeds[activation])} seeds)" if i == 0 else None)
    ax.axhline(target / 100, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Training error rate")
    ax.set_ylim(0, 0.8)
    ax.set_xlim(0, longest)
    ax.legend(frameon=False)
    ax.set_title(f"Figure 1 on {dataset}: four-layer CNN, no regularisation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png", metadata={"Software": None})


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def runs_record(manifest: dict, cfg: CifarConfig, fig1: dict[str, Any], lrn: list[tuple[NetRun, NetRun]]) -> dict:
    """reports/cifar/runs.json: the per-seed numbers the claims table judges, and what data they are."""
    figure1_seeds = []
    for relu, tanh in zip(fig1["seeds"]["relu"], fig1["seeds"]["tanh"]):
        r, t = (epochs_to_target(x.train_error, cfg.target_error) for x in (relu, tanh))
        figure1_seeds.append({"seed": relu.seed, "relu_epochs": r, "tanh_epochs": t,
                              "ratio": round(t / r, 4) if r and t else None})
    epochs = len(lrn_schedule(cfg))
    return {
        "dataset": manifest["dataset"], "source": manifest["source"], "copy": manifest["copy"],
        "official_pixels": manifest["official_pixels"],
        "train_images": manifest["train_images"], "test_images": manifest["test_images"],
        "figure1": {"target_error": cfg.target_error, "max_epochs": cfg.epochs, "lr_grid": cfg.lr_grid,
                    "relu_lr": fig1["chosen"]["relu"],
                    "tanh_lr": fig1["chosen"]["tanh"], "seeds": figure1_seeds},
        "lrn": {"epochs": epochs, "paper_epochs": paper.CONV_LOCAL_EPOCHS, "converged": epochs >= paper.CONV_LOCAL_EPOCHS,
                "seeds": [{"seed": a.seed, "without": a.test_error, "with": b.test_error,
                           "gain": round(a.test_error - b.test_error, 3)
                           if a.test_error is not None and b.test_error is not None else None} for a, b in lrn]},
    }


def metrics_of(runs: dict) -> dict[str, Any]:
    """metrics/cifar.json: flat means over the seeds (runs.json has each seed)."""
    f1, lrn = runs["figure1"], runs["lrn"]
    ratios = [s["ratio"] for s in f1["seeds"] if s["ratio"]]
    return {
        "relu_lr": f1["relu_lr"], "tanh_lr": f1["tanh_lr"],
        "relu_epochs_to_target": _mean([s["relu_epochs"] for s in f1["seeds"]]),
        "tanh_epochs_to_target": _mean([s["tanh_epochs"] for s in f1["seeds"]]),
        # tanh's epochs over ReLU's, geometric mean over the seeds where both reached the target (paper: ~6)
        "epochs_ratio": round(math.exp(sum(map(math.log, ratios)) / len(ratios)), 3) if ratios else None,
        "seeds_reached": len(ratios),
        "no_lrn_test_error": _mean([s["without"] for s in lrn["seeds"]]),
        "lrn_test_error": _mean([s["with"] for s in lrn["seeds"]]),
        # positive: LRN lowers the test error (the paper: 13% -> 11%, a gain of 2 points)
        "lrn_gain": _mean([s["gain"] for s in lrn["seeds"]]),
    }


def curve_rows(fig1: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for activation in ("relu", "tanh"):
        for role, runs in (("grid", fig1["grids"][activation]), ("seed", fig1["seeds"][activation][1:])):
            for r in runs:
                chosen = r.lr == fig1["chosen"][activation]
                rows += [{"activation": activation, "lr": r.lr, "seed": r.seed, "role": role, "chosen": chosen,
                          "epoch": i, "train_error": e, "stopped": r.stopped} for i, e in enumerate(r.train_error, 1)]
    return pd.DataFrame(rows, columns=["activation", "lr", "seed", "role", "chosen", "epoch", "train_error", "stopped"])


def lrn_rows(lrn: list[tuple[NetRun, NetRun]]) -> pd.DataFrame:
    rows = [{"net": "11pct" if r.lrn else "13pct", "lrn": r.lrn, "seed": r.seed, "epoch": i, "lr": lr,
             "train_error": e, "test_error": r.test_error if i == len(r.train_error) else None}
            for pair in lrn for r in pair for i, (e, lr) in enumerate(zip(r.train_error, r.epoch_lr), 1)]
    return pd.DataFrame(rows, columns=["net", "lrn", "seed", "epoch", "lr", "train_error", "test_error"])


def cifar(cfg: CifarConfig, data_dir: str | Path, out_dir: str | Path, metrics_path: str | Path,
          run_record: str | Path, checkpoints: str | Path | None = None,
          numerics: NumericsConfig = NumericsConfig()) -> dict[str, Any]:
    """Stage `cifar`: Figure 1 (grid, then seeds), the LRN nets, their outputs; returns the metrics."""
    start = time.perf_counter()
    runtime.configure(numerics, deterministic=True)
    data, manifest = open_cifar(data_dir)
    device = runtime.choose_device(cfg.device, "cifar.device")
    inputs = prepare_inputs(data, device, cfg.channels_last)
    ckpt_dir = Path(checkpoints) if checkpoints else None
    fig1 = figure1(inputs, cfg, device, manifest["md5"], ckpt_dir)
    lrn = lrn_claim(inputs, cfg, device, manifest["md5"], ckpt_dir)
    runs = runs_record(manifest, cfg, fig1, lrn)
    metrics = metrics_of(runs)
    dataset = "CIFAR-10" if manifest["dataset"] == "cifar10" else "the tiny set"
    with atomic_dir(out_dir) as tmp:
        plot_figure1(fig1["seeds"], cfg.target_error, tmp / FIGURE, dataset)
        curve_rows(fig1).to_csv(tmp / CURVES, index=False)
        lrn_rows(lrn).to_csv(tmp / LRN_CURVES, index=False)
        write_json(tmp / RUNS, runs)
    write_json(metrics_path, metrics)
    nets = [r for a in ("relu", "tanh") for r in fig1["grids"][a] + fig1["seeds"][a][1:]]
    fig1_epochs = sum(len(r.train_error) for r in nets)
    lrn_epochs = sum(len(r.train_error) for pair in lrn for r in pair)
    lrn_seconds = sum(r.seconds for pair in lrn for r in pair)
    write_json(run_record, {
        "dataset": manifest["dataset"], "source": manifest["source"], "copy": manifest["copy"],
        "train_images": manifest["train_images"], "test_images": manifest["test_images"],
        "seconds": round(time.perf_counter() - start, 2), "device": str(device), "threads": torch.get_num_threads(),
        # training seconds summed over the nets, across resumes (checkpoints carry each net's time)
        "figure1_net_epochs": fig1_epochs, "figure1_train_seconds": round(sum(r.seconds for r in nets), 1),
        "figure1_images_per_second": round(fig1_epochs * len(data.train_labels) / max(sum(r.seconds for r in nets), 1e-9)),
        "lrn_net_epochs": lrn_epochs, "lrn_train_seconds": round(lrn_seconds, 1),
        "lrn_images_per_second": round(lrn_epochs * len(data.train_labels) / lrn_seconds) if lrn_seconds else None,
        "revision": git_revision(), "hardware": hardware(),
        "code_sha256": CODE_SHA256, "numerics": runtime.numerics_record(numerics),
        "torch": torch.__version__,
    })
    print(f"Figure 1: ReLU {metrics['relu_epochs_to_target']} epochs (lr {metrics['relu_lr']}), tanh "
          f"{metrics['tanh_epochs_to_target']} epochs (lr {metrics['tanh_lr']}) to {cfg.target_error:g}% training "
          f"error (ratio {metrics['epochs_ratio']}, {metrics['seeds_reached']} of {len(cfg.seeds)} seeds); "
          f"test error 13pct net {metrics['no_lrn_test_error']}, 11pct (LRN) {metrics['lrn_test_error']}")
    return metrics
