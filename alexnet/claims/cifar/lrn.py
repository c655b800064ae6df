"""The CIFAR-10 LRN claim (Section 3.3: 13% test error without normalisation, 11% with) as the
authors ran it: cuda-convnet's `layers-conv-local-13pct` and `-11pct` nets (alexnet.claims.cifar.nets)
with their layer-params (per-layer rates, biases at twice the rate, weight decay on the
locally-connected and fc layers), on random 24x24 crops with random horizontal flips, the centre
of the mean image subtracted (cuda-convnet's cifar-cropped provider), tested on ten views (four
corners and the centre, each flipped, softmax averaged).

The schedule has the shape of the authors' (their wiki and layer-params-conv-local-11pct.cfg):
`cifar.lrn_epochs` = [epochs at lrn_lr, at lrn_lr/10, at lrn_lr/100]. The authors trained about
paper.CONV_LOCAL_EPOCHS passes; a shorter schedule is recorded as shortened, and the claims table
labels such rows so (never the paper's claim). Both nets of one seed share the batch order and
the crops; each checkpoints every epoch. Lengthening the last phase (`cifar.lrn_epochs[2]`)
continues the nets; a change to the first two starts them over, since their later epochs ran at
rates the new schedule puts elsewhere.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alexnet import paper
from alexnet.claims.cifar.nets import ConvLocalNet
from alexnet.claims.cifar.training import Inputs, NetRun, Trainer, fingerprint, seed_mean, train_epoch
from alexnet.config import CifarConfig
from alexnet.runtime import seeds
from alexnet.training.optim import set_lr


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


def conv_local_trainer(cfg: CifarConfig, lrn: bool, seed: int, device: torch.device, made_with: dict[str, Any],
                       ckpt_dir: Path | None) -> Trainer:
    torch.manual_seed(seeds.stream_seed(seed, "init", 0))
    net = ConvLocalNet(lrn, cfg.lrn_width, cfg.lrn_crop, cfg.lrn_size, cfg.lrn_scale, cfg.lrn_pow).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    fc10_wc = cfg.lrn_fc10_weight_decay[int(lrn)]
    opt = torch.optim.SGD(net.param_groups(cfg.lrn_lr, cfg.lrn_weight_decay, fc10_wc), lr=cfg.lrn_lr,
                          momentum=cfg.lrn_momentum)
    key = {"net": "conv_local", "published": "final", "lrn": lrn, "seed": seed, "width": cfg.lrn_width,
           "crop": cfg.lrn_crop, "batch_size": cfg.lrn_batch_size, "lr": cfg.lrn_lr, "momentum": cfg.lrn_momentum,
           "weight_decay": cfg.lrn_weight_decay, "fc10_weight_decay": fc10_wc,
           "rnorm": [cfg.lrn_size, cfg.lrn_scale, cfg.lrn_pow], "channels_last": cfg.channels_last,
           "device": device.type, **made_with}
    name = "11pct" if lrn else "13pct"
    path = ckpt_dir / f"conv-local-{name}-s{seed}-{fingerprint(key)}.pt" if ckpt_dir else None
    return Trainer(NetRun("conv_local", "relu", lrn, cfg.lrn_lr, seed), net, opt, key, path)


def train_conv_local(t: Trainer, inputs: Inputs, cfg: CifarConfig) -> NetRun:
    """Train one 13pct/11pct net through the schedule (resuming), then test it on ten views."""
    schedule = lrn_schedule(cfg)
    loaded = t.load()
    followed = loaded and t.run.epoch_lr == schedule[:len(t.run.epoch_lr)]
    if followed and (t.run.stopped == "diverged" or t.run.stopped == "done" and len(t.run.epoch_lr) == len(schedule)):
        return t.run  # finished (and tested) already: its weights may be gone, a finished record
    if loaded and not followed:
        t.start_over("it followed another lr schedule")
    elif t.weightless:
        t.start_over("it must train on and its weights are gone")
    elif t.run.stopped == "done":
        t.run.stopped = ""  # a longer last phase: it trains on
    patch = mean_patch(inputs, cfg.lrn_crop)
    crops = crop_views(cfg.lrn_crop)
    run = t.run
    while len(run.train_error) < len(schedule) and run.stopped != "diverged":
        lr = schedule[len(run.train_error)]
        set_lr(t.opt, lr)
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
              f"lr {lr:g} training error {err if err is not None else float('nan'):.2f}% [{run.seconds:.0f} s]",
              flush=True)
    if run.stopped != "diverged":
        run.stopped = "done"
        run.test_error = round(multiview_error(t.net, inputs.test_x, inputs.test_y, cfg.lrn_crop, patch), 3)
        t.save()
    return run


def lrn_claim(inputs: Inputs, cfg: CifarConfig, device: torch.device, made_with: dict[str, Any],
              ckpt_dir: Path | None) -> list[tuple[NetRun, NetRun]]:
    """(13pct, 11pct) per seed of cfg.lrn_seeds."""
    return [tuple(train_conv_local(conv_local_trainer(cfg, lrn, seed, device, made_with, ckpt_dir), inputs, cfg)
                  for lrn in (False, True)) for seed in cfg.lrn_seeds]


def lrn_record(lrn: list[tuple[NetRun, NetRun]], cfg: CifarConfig) -> dict[str, Any]:
    """runs.json's LRN entry: the schedule against the authors', and per seed the test errors."""
    epochs = len(lrn_schedule(cfg))
    return {"epochs": epochs, "schedule": list(cfg.lrn_epochs), "paper_epochs": paper.CONV_LOCAL_EPOCHS,
            "shortened": epochs < paper.CONV_LOCAL_EPOCHS,
            "seeds": [{"seed": a.seed, "without": a.test_error, "with": b.test_error,
                       "gain": round(a.test_error - b.test_error, 3)
                       if a.test_error is not None and b.test_error is not None else None} for a, b in lrn]}


def lrn_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """metrics/cifar.json's LRN keys: means over the seeds."""
    seeds = record["seeds"]
    # lrn_gain positive: LRN lowers the test error (the paper: 13% -> 11%, a gain of 2 points)
    return {"no_lrn_test_error": seed_mean(seeds, "without"), "lrn_test_error": seed_mean(seeds, "with"),
            "lrn_gain": seed_mean(seeds, "gain")}


def lrn_rows(lrn: list[tuple[NetRun, NetRun]]) -> pd.DataFrame:
    rows = [{"net": "11pct" if r.lrn else "13pct", "lrn": r.lrn, "seed": r.seed, "epoch": i, "lr": lr,
             "train_error": e, "test_error": r.test_error if i == len(r.train_error) else None}
            for pair in lrn for r in pair for i, (e, lr) in enumerate(zip(r.train_error, r.epoch_lr), 1)]
    return pd.DataFrame(rows, columns=["net", "lrn", "seed", "epoch", "lr", "train_error", "test_error"])


__all__ = ["conv_local_trainer", "crop_views", "lrn_claim", "lrn_metrics", "lrn_record", "lrn_rows", "lrn_schedule",
           "mean_patch", "multiview_crops", "multiview_error", "train_conv_local"]
