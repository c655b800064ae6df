"""Figure 1 (ReLU against tanh, epochs to 25% training error) as a protocol: the lr grid, the
evaluation seeds, the ratio at every error level, the figures.

The paper: the four-layer net with ReLUs and with tanh units, "no regularisation of any kind",
SGD with momentum, "the learning rates for each network were chosen independently to make
training as fast as possible". Here, per rnorm arm (`cifar.figure1_rnorm`) and activation:

1. The lr grid on `cifar.grid_seed`, a seed that is not an evaluation seed. The grid's nets train
   in lockstep, an epoch each in turn; a net stops once it reaches `cifar.target_error`,
   diverges, reaches `cifar.epochs`, or can no longer beat the best net's epochs to the target
   (it has trained that many epochs without reaching it: pruning it changes no chosen rate), or
   has stalled (still within 2 points of chance after 3 epochs: dead ReLUs or saturated tanh
   units; it could in principle recover, so this rule, unlike the last, is a judgement, stated
   here). The chosen rate reaches the target in the fewest epochs (ties: the smaller rate).
   When it is the smallest or largest rate tried, the next rate beyond it (the same spacing) is
   tried too, up to `cifar.lr_grid_extend` times: the record says whether the choice ended
   interior.
2. The chosen rate trains with every evaluation seed (`cifar.seeds`); per seed the ratio of
   tanh's epochs to ReLU's at the target, and at every level from the target to 50% (the
   ratio-against-threshold curve, `ratio_curve`), since the conclusion depends on the level.

Training error is the error on the minibatches as they are trained on, per epoch (what
cuda-convnet prints). The nets see the mean-subtracted pixels (`training.centred`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure  # files only: no pyplot, no backend switch
from torch import Tensor

from alexnet import paper
from alexnet.claims import verdict
from alexnet.claims.cifar.nets import Figure1Net
from alexnet.claims.cifar.training import CHANCE, NetRun, Trainer, epochs_to_target, fingerprint, seed_mean, train_epoch
from alexnet.config import CifarConfig
from alexnet.runtime import seeds

ACTIVATIONS = ("relu", "tanh")
STALL_EPOCHS, STALL_MARGIN = 3, 2.0  # a net within 2 points of chance after 3 epochs has stalled
CURVE_TOP, CURVE_STEP = 50.0, 2.5  # the ratio-against-threshold curve: from the target to 50%, every 2.5 points


def arm_name(rnorm: bool) -> str:
    """The metrics' and curves' name of an rnorm arm."""
    return "rnorm" if rnorm else "plain"


def figure1_trainer(cfg: CifarConfig, rnorm: bool, activation: str, lr: float, seed: int, device: torch.device,
                    made_with: dict[str, Any], ckpt_dir: Path | None) -> Trainer:
    torch.manual_seed(seeds.stream_seed(seed, "init", 0))  # the same initial weights for every lr, activation and arm
    net = Figure1Net(activation, cfg.width, cfg.input_scale, cfg.figure1_protocol, rnorm).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.param_groups(lr), lr=lr, momentum=cfg.momentum)
    key = {"net": "figure1", "protocol": cfg.figure1_protocol, "rnorm": rnorm, "activation": activation, "lr": lr,
           "seed": seed, "width": cfg.width, "batch_size": cfg.batch_size, "momentum": cfg.momentum,
           "input": "centred", "input_scale": cfg.input_scale, "channels_last": cfg.channels_last,
           "device": device.type, **made_with}
    name = f"figure1-{cfg.figure1_protocol}-{arm_name(rnorm)}-{activation}-lr{lr:g}-s{seed}-{fingerprint(key)}.pt"
    return Trainer(NetRun("figure1", activation, rnorm, lr, seed), net, opt, key, ckpt_dir / name if ckpt_dir else None)


def stop_reason(run: NetRun, cfg: CifarConfig, best: float) -> str:
    """Why a Figure 1 net stops now ("" = train another epoch). `best`: the fewest epochs to
    the target among the finished nets it competes with (inf: none yet)."""
    if run.stopped == "diverged":
        return run.stopped
    # every other reason is decided again: a net stopped under a lower cfg.epochs, or short of
    # another target, trains on from its checkpoint
    if epochs_to_target(run.train_error, cfg.target_error) is not None:
        return "target"
    if len(run.train_error) >= cfg.epochs:
        return "max_epochs"
    if len(run.train_error) >= best:  # its own epochs to target will be more than `best`
        return "pruned"
    if len(run.train_error) >= STALL_EPOCHS and min(run.train_error) >= CHANCE - STALL_MARGIN:
        return "stalled"  # still at chance: dead ReLUs or saturated tanh units at too high a rate
    return ""


def train_lockstep(trainers: list[Trainer], x: Tensor, y: Tensor, cfg: CifarConfig, prune: bool,
                   label: str) -> list[NetRun]:
    """Train Figure 1 nets an epoch each in turn until each stops (stop_reason)."""
    for t in trainers:
        t.load()
    while True:
        reached = [epochs_to_target(t.run.train_error, cfg.target_error) for t in trainers]
        best = min([e for e in reached if e is not None], default=math.inf) if prune else math.inf
        active = []
        for t in trainers:
            reason = stop_reason(t.run, cfg, best)
            if reason != t.run.stopped:
                if not reason and t.weightless:
                    t.start_over(f"it stopped ({t.run.stopped}) under another epochs or target, and its weights are gone")
                t.run.stopped = reason
                t.save()
            if not reason:
                active.append(t)
        if not active:
            return [t.run for t in trainers]
        for t in active:
            start = time.perf_counter()
            err = train_epoch(t, x, y, cfg.batch_size)
            t.run.seconds += time.perf_counter() - start
            if err is None:
                t.run.stopped = "diverged"
            else:
                t.run.train_error.append(err)
                t.run.epoch_lr.append(t.run.lr)
            t.save()
            r = t.run
            print(f"{label} {arm_name(r.lrn)} {r.activation} lr {r.lr:g} seed {r.seed}: epoch {len(r.train_error)} "
                  f"training error {r.train_error[-1] if r.train_error else float('nan'):.2f}%"
                  f"{' (diverged)' if err is None else ''} [{r.seconds:.0f} s]", flush=True)


def best_run(runs: list[NetRun], target: float) -> NetRun:
    """The lr that reaches `target` in the fewest epochs (ties: the smaller lr); if none does,
    the lowest final error."""
    def key(r: NetRun) -> tuple:
        if r.stopped == "diverged" or not r.train_error:
            return (2, math.inf, r.lr)
        e = epochs_to_target(r.train_error, target)
        return (0, e, r.lr) if e is not None else (1, r.train_error[-1], r.lr)
    return min(runs, key=key)


def next_rate(rates: list[float], best: float) -> float | None:
    """The rate beyond the edge `best` sits on, at the spacing of the two rates there; None when
    `best` is interior (or the only rate: no spacing to follow). Rounded to 3 significant digits."""
    if len(rates) < 2 or rates[0] < best < rates[-1]:
        return None
    beyond = rates[0] ** 2 / rates[1] if best == rates[0] else rates[-1] ** 2 / rates[-2]
    return float(f"{beyond:.3g}")


def choose_lr(cfg: CifarConfig, rnorm: bool, activation: str, x: Tensor, y: Tensor, device: torch.device,
              made_with: dict[str, Any], ckpt_dir: Path | None) -> tuple[list[NetRun], NetRun]:
    """The grid on cfg.grid_seed, extended beyond an edge choice; (every run, the chosen one)."""
    trainers = [figure1_trainer(cfg, rnorm, activation, lr, cfg.grid_seed, device, made_with, ckpt_dir)
                for lr in cfg.lr_grid]
    runs = train_lockstep(trainers, x, y, cfg, prune=True, label="grid")
    for _ in range(cfg.lr_grid_extend):
        rates = sorted(r.lr for r in runs)
        beyond = next_rate(rates, best_run(runs, cfg.target_error).lr)
        if beyond is None or beyond in rates:
            break
        trainers.append(figure1_trainer(cfg, rnorm, activation, beyond, cfg.grid_seed, device, made_with, ckpt_dir))
        runs = train_lockstep(trainers, x, y, cfg, prune=True, label="grid")
    runs = sorted(runs, key=lambda r: r.lr)
    return runs, best_run(runs, cfg.target_error)


def figure1(x: Tensor, y: Tensor, cfg: CifarConfig, device: torch.device, made_with: dict[str, Any],
            ckpt_dir: Path | None) -> list[dict[str, Any]]:
    """Per rnorm arm: the grid per activation, then the chosen rates with every evaluation seed."""
    arms = []
    for rnorm in cfg.figure1_rnorm:
        arm: dict[str, Any] = {"rnorm": rnorm, "grids": {}, "chosen": {}, "seeds": {}}
        for activation in ACTIVATIONS:
            grid, best = choose_lr(cfg, rnorm, activation, x, y, device, made_with, ckpt_dir)
            arm["grids"][activation], arm["chosen"][activation] = grid, best.lr
            trainers = [figure1_trainer(cfg, rnorm, activation, best.lr, s, device, made_with, ckpt_dir)
                        for s in cfg.seeds]
            arm["seeds"][activation] = train_lockstep(trainers, x, y, cfg, prune=False, label="seeds")
        arms.append(arm)
    return arms


def curve_levels(target: float) -> list[float]:
    """The error levels of the ratio-against-threshold curve: the target, then up to CURVE_TOP."""
    n = int(round((CURVE_TOP - target) / CURVE_STEP))
    return [target + i * CURVE_STEP for i in range(max(n, 0) + 1)]


def ratio_curve(relu: list[NetRun], tanh: list[NetRun], levels: list[float]) -> list[dict[str, Any]]:
    """Per level: tanh's epochs over ReLU's, per seed (pairs of one seed), and their geometric
    mean with its 95% t interval (on the logs) over the seeds where both nets reached it."""
    rows = []
    for level in levels:
        logs = []
        for r, t in zip(relu, tanh):
            er, et = epochs_to_target(r.train_error, level), epochs_to_target(t.train_error, level)
            if er and et:
                logs.append(math.log(et / er))
        row = {"level": level, "n": len(logs), "of": len(relu), "ratio": None, "low": None, "high": None}
        if logs:
            row["ratio"] = round(math.exp(sum(logs) / len(logs)), 4)
        if len(logs) >= 2:
            _, low, high = verdict.t_interval(logs)
            row["low"], row["high"] = round(math.exp(low), 4), round(math.exp(high), 4)
        rows.append(row)
    return rows


def arm_record(arm: dict[str, Any], cfg: CifarConfig) -> dict[str, Any]:
    """runs.json's entry for one rnorm arm: the rates tried and chosen, per seed, the curve."""
    seeds = []
    for relu, tanh in zip(arm["seeds"]["relu"], arm["seeds"]["tanh"]):
        r, t = (epochs_to_target(x.train_error, cfg.target_error) for x in (relu, tanh))
        seeds.append({"seed": relu.seed, "relu_epochs": r, "tanh_epochs": t,
                      "ratio": round(t / r, 4) if r and t else None})
    rates = {a: [r.lr for r in arm["grids"][a]] for a in ACTIVATIONS}
    return {
        "rnorm": arm["rnorm"],
        "relu_lr": arm["chosen"]["relu"], "tanh_lr": arm["chosen"]["tanh"],
        "rates_tried": rates,
        "interior": {a: rates[a][0] < arm["chosen"][a] < rates[a][-1] for a in ACTIVATIONS},
        "seeds": seeds,
        "ratio_curve": ratio_curve(arm["seeds"]["relu"], arm["seeds"]["tanh"], curve_levels(cfg.target_error)),
    }


def figure1_record(arms: list[dict[str, Any]], cfg: CifarConfig) -> dict[str, Any]:
    return {"protocol": cfg.figure1_protocol, "width": cfg.width, "target_error": cfg.target_error,
            "max_epochs": cfg.epochs,
            "lr_grid": cfg.lr_grid, "grid_seed": cfg.grid_seed, "input_scale": cfg.input_scale,
            "arms": [arm_record(a, cfg) for a in arms]}


def arm_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """metrics/cifar.json's keys for one arm: means over the seeds (runs.json has each seed)."""
    seeds = record["seeds"]
    ratios = [s["ratio"] for s in seeds if s["ratio"]]
    name = arm_name(record["rnorm"])
    return {
        f"{name}_relu_lr": record["relu_lr"], f"{name}_tanh_lr": record["tanh_lr"],
        f"{name}_relu_epochs_to_target": seed_mean(seeds, "relu_epochs"),
        f"{name}_tanh_epochs_to_target": seed_mean(seeds, "tanh_epochs"),
        # tanh's epochs over ReLU's, geometric mean over the seeds where both reached the target (paper: ~6)
        f"{name}_epochs_ratio": round(math.exp(sum(map(math.log, ratios)) / len(ratios)), 3) if ratios else None,
        f"{name}_seeds_reached": len(ratios),
    }


def plot_figure1(arms: list[dict[str, Any]], cfg: CifarConfig, path: Path, dataset: str) -> None:
    """The paper's Figure 1, one panel per arm: training error vs epochs, ReLU solid, tanh dashed,
    every evaluation seed, the target line."""
    fig = Figure(figsize=(5.0 * len(arms), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(arms)))
    for ax, arm in zip(axes, arms):
        longest = 1
        for activation, style, name in (("relu", "-", "ReLU"), ("tanh", "--", "tanh")):
            runs = arm["seeds"][activation]
            for i, run in enumerate(runs):
                errors = [CHANCE, *run.train_error]
                longest = max(longest, len(run.train_error))
                ax.plot(np.arange(len(errors)), np.array(errors) / 100, style, color="black", linewidth=1.2,
                        alpha=0.8, label=f"{name} (lr {run.lr:g}, {len(runs)} seeds)" if i == 0 else None)
        ax.axhline(cfg.target_error / 100, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("Epochs")
        ax.set_ylabel("Training error rate")
        ax.set_ylim(0, 0.8)
        ax.set_xlim(0, longest)
        ax.legend(frameon=False)
        ax.set_title(f"{cfg.figure1_protocol} protocol, {'with' if arm['rnorm'] else 'no'} rnorm layers", fontsize=9)
    fig.suptitle(f"Figure 1 on {dataset}: four-layer CNN, no regularisation", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png", metadata={"Software": None})


def plot_ratio_curve(records: list[dict[str, Any]], protocol: str, path: Path, dataset: str) -> None:
    """tanh's epochs over ReLU's against the training-error level, per arm, with the 95% interval."""
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    for record, style in zip(records, ("-", "--")):
        curve = [c for c in record["ratio_curve"] if c["ratio"] is not None]
        levels = [c["level"] for c in curve]
        ax.plot(levels, [c["ratio"] for c in curve], style, color="black", marker="o", markersize=3,
                label=f"{'with' if record['rnorm'] else 'no'} rnorm layers")
        banded = [c for c in curve if c["low"] is not None]
        ax.fill_between([c["level"] for c in banded], [c["low"] for c in banded], [c["high"] for c in banded],
                        color="grey", alpha=0.25, linewidth=0)
    ax.axhline(paper.FIGURE1_SPEEDUP, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_xlabel("Training error level (%)")
    ax.set_ylabel("Epochs to the level, tanh / ReLU")
    ax.invert_xaxis()  # training runs from high error to low
    ax.legend(frameon=False)
    ax.set_title(f"Figure 1's ratio by level on {dataset} ({protocol} protocol; dotted: the paper's ~6)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png", metadata={"Software": None})


def curve_rows(arms: list[dict[str, Any]]) -> pd.DataFrame:
    """Every Figure 1 net's training error per epoch (the grid's and the evaluation seeds')."""
    rows = []
    for arm in arms:
        for activation in ACTIVATIONS:
            for role, runs in (("grid", arm["grids"][activation]), ("seed", arm["seeds"][activation])):
                for r in runs:
                    chosen = r.lr == arm["chosen"][activation]
                    rows += [{"rnorm": arm["rnorm"], "activation": activation, "lr": r.lr, "seed": r.seed,
                              "role": role, "chosen": chosen, "epoch": i, "train_error": e, "stopped": r.stopped}
                             for i, e in enumerate(r.train_error, 1)]
    return pd.DataFrame(rows, columns=["rnorm", "activation", "lr", "seed", "role", "chosen", "epoch", "train_error",
                                       "stopped"])


def trained(arms: list[dict[str, Any]]) -> list[NetRun]:
    """Every net of the protocol, once (timings)."""
    return [r for arm in arms for a in ACTIVATIONS for r in arm["grids"][a] + arm["seeds"][a]]


__all__ = ["ACTIVATIONS", "arm_metrics", "arm_name", "best_run", "choose_lr", "curve_levels", "curve_rows", "figure1",
           "figure1_record", "figure1_trainer", "next_rate", "plot_figure1", "plot_ratio_curve", "ratio_curve",
           "stop_reason", "train_lockstep", "trained"]
