"""The paper's CIFAR-10 claims (stage `cifar`): Figure 1 (ReLU vs tanh) and LRN's 13% -> 11%.

Owns metrics/cifar.json, records/cifar.json (timings) and reports/cifar/ (figure1.png,
curves.csv). The data comes from `alexnet.cifar_data` (stage cifar_download).

The net. The paper calls it "a four-layer convolutional neural network" (Figure 1, Section 3.1)
and, for the LRN claim, "a four-layer CNN" (Section 3.3), without the layers. We take the
four-layer CIFAR-10 net of the authors' own code, cuda-convnet's `layers-18pct.cfg`: three
5x5 conv layers of 32, 32 and 64 kernels (padding 2), each followed by the activation and a 3x3
stride-2 pooling (max after conv1, average after conv2 and conv3), then one fully connected
layer of 10 outputs and the softmax: four layers with weights (Caffe's cifar10_full copies it).
`cifar.width` scales the kernel counts. The LRN variant adds the paper's cross-channel LRN
(Section 3.3, `alexnet.model`'s LocalResponseNorm, cifar.lrn_*) after the first two pooling
layers, where layers-18pct normalises (it uses a within-map `rnorm` there; the claim is about
the paper's cross-map normalisation, so that is what is switched). Input: 0-255 pixels minus the
training set's per-channel mean, times cifar.input_scale; PyTorch's default init, the same draw (cifar.seed) for every net.

How Figure 1's learning rates are chosen and how the LRN comparison is run: docs/ablations.md,
"Figure 1 and the CIFAR-10 LRN claim", "How the CIFAR-10 runs are made".

Deterministic: seeded init and batch order, torch.use_deterministic_algorithms(True).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # files only: no pyplot, no backend switch
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alexnet.cifar_data import CifarData, open_cifar
from alexnet.config import CifarConfig
from alexnet.fileio import atomic_dir, write_json
from alexnet.model import LocalResponseNorm, configure_determinism

BASE_KERNELS = (32, 32, 64)  # layers-18pct.cfg: conv1, conv2, conv3
FIGURE = "figure1.png"
CURVES = "curves.csv"


class CifarNet(nn.Module):
    """cuda-convnet's four-layer CIFAR-10 net (layers-18pct), activation and LRN switchable."""

    def __init__(self, activation: str, lrn: bool, cfg: CifarConfig) -> None:
        super().__init__()
        k = [max(1, int(round(c * cfg.width))) for c in BASE_KERNELS]
        act = nn.ReLU if activation == "relu" else nn.Tanh

        def norm() -> nn.Module:
            return LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k) if lrn else nn.Identity()

        self.input_scale = cfg.input_scale
        # 32x32 -> pool 3/2 (padding 1) 16x16 -> 8x8 -> 4x4, like cuda-convnet's pooling
        self.features = nn.Sequential(
            nn.Conv2d(3, k[0], 5, padding=2), act(), nn.MaxPool2d(3, 2, padding=1), norm(),
            nn.Conv2d(k[0], k[1], 5, padding=2), act(), nn.AvgPool2d(3, 2, padding=1), norm(),
            nn.Conv2d(k[1], k[2], 5, padding=2), act(), nn.AvgPool2d(3, 2, padding=1),
        )
        self.fc = nn.Linear(k[2] * 4 * 4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.features(x * self.input_scale), 1))


@dataclass
class Run:
    """One trained net: its per-epoch training error and final test error."""

    activation: str
    lrn: bool
    lr: float
    train_error: list[float]  # per epoch, % (minibatch error as trained on)
    test_error: float | None
    diverged: bool


def _device(cfg: CifarConfig) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_input(images: np.ndarray, mean: np.ndarray, device: torch.device) -> Tensor:
    """uint8 [n, 32, 32, 3] -> float32 [n, 3, 32, 32], per-channel training mean subtracted."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return x - torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)


def epochs_to_target(errors: list[float], target: float, chance: float = 90.0) -> float | None:
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


@dataclass
class TrainingSet:
    """The training images as every net of the sweep trains on them, put on the device once."""

    x: Tensor  # float32 [n, 3, 32, 32], mean subtracted
    y: Tensor  # int64 [n]
    mean: np.ndarray  # per-channel training mean (also subtracted from the test images)
    device: torch.device


def training_set(data: CifarData, device: torch.device) -> TrainingSet:
    mean = data.train_images.reshape(-1, 3).mean(axis=0)
    return TrainingSet(to_input(data.train_images, mean, device), torch.from_numpy(data.train_labels).to(device),
                       mean, device)


def train_net(data: CifarData, train: TrainingSet, cfg: CifarConfig, activation: str, lrn: bool, lr: float) -> Run:
    """Train one net for cfg.epochs epochs with SGD + momentum, no regularisation."""
    device, x_all, y_all = train.device, train.x, train.y
    torch.manual_seed(cfg.seed)  # the same initial weights for every net of one architecture
    net = CifarNet(activation, lrn, cfg).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=0.0)
    n = len(y_all)
    errors: list[float] = []
    diverged = False
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)).to(device)
        wrong = 0
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            logits = net(x_all[idx])
            loss = F.cross_entropy(logits, y_all[idx])
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += int((logits.argmax(1) != y_all[idx]).sum())
        if diverged:
            break
        errors.append(100.0 * wrong / n)
    test_error = None if diverged else classification_error(net, data, train.mean, device)
    return Run(activation, lrn, lr, errors, test_error, diverged)


@torch.no_grad()
def classification_error(net: nn.Module, data: CifarData, mean: np.ndarray, device: torch.device) -> float:
    """Top-1 error (%) of `net` on the test images, in batches of 1000."""
    net.eval()
    wrong = 0
    for start in range(0, len(data.test_labels), 1000):
        x = to_input(data.test_images[start:start + 1000], mean, device)
        y = torch.from_numpy(data.test_labels[start:start + 1000]).to(device)
        wrong += int((net(x).argmax(1) != y).sum())
    return 100.0 * wrong / len(data.test_labels)


def best_run(runs: list[Run], target: float) -> Run:
    """The lr that reaches `target` in the fewest epochs; if none does, the lowest final error."""
    def key(r: Run) -> tuple:
        if r.diverged or not r.train_error:
            return (2, math.inf, 0.0)
        e = epochs_to_target(r.train_error, target)
        return (0, e, r.lr) if e is not None else (1, r.train_error[-1], r.lr)
    return min(runs, key=key)


def plot_figure1(relu: Run, tanh: Run, target: float, path: Path, dataset: str) -> None:
    """The paper's Figure 1: training error vs epochs, ReLU solid, tanh dashed, the 25% line."""
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    for run, style in ((relu, "-"), (tanh, "--")):
        epochs = np.arange(1, len(run.train_error) + 1)
        ax.plot(epochs, np.array(run.train_error) / 100, style, color="black", linewidth=1.6,
                label=f"{'ReLU' if run.activation == 'relu' else 'tanh'} (lr {run.lr:g})")
    ax.axhline(target / 100, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Training error rate")
    ax.set_ylim(0, max(0.8, max(relu.train_error[:1] + tanh.train_error[:1] + [0]) / 100 + 0.05))
    ax.set_xlim(0, max(len(relu.train_error), len(tanh.train_error)))
    ax.legend(frameon=False)
    ax.set_title(f"Figure 1 on {dataset}: four-layer CNN, no regularisation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def cifar(cfg: CifarConfig, raw_dir: str | Path, out_dir: str | Path, metrics_path: str | Path,
          run_record: str | Path) -> dict[str, Any]:
    """Stage `cifar`: the lr sweeps, Figure 1, the LRN comparison; returns the metrics."""
    start = time.perf_counter()
    configure_determinism(True)
    data, manifest = open_cifar(raw_dir)
    dataset = "tiny" if manifest["source"] == "tiny" else "cifar10"
    device = _device(cfg)
    train = training_set(data, device)
    sweeps: dict[str, list[Run]] = {}
    for activation in ("relu", "tanh"):
        sweeps[activation] = [train_net(data, train, cfg, activation, False, lr) for lr in cfg.lr_grid]
        for r in sweeps[activation]:
            e = epochs_to_target(r.train_error, cfg.target_error)
            print(f"{activation} lr {r.lr:g}: training error {['%.1f' % v for v in r.train_error]}"
                  f"{' (diverged)' if r.diverged else ''}; epochs to {cfg.target_error:g}%: {e}")
    relu, tanh = best_run(sweeps["relu"], cfg.target_error), best_run(sweeps["tanh"], cfg.target_error)
    relu_lrn = train_net(data, train, cfg, "relu", True, relu.lr)
    relu_e, tanh_e = epochs_to_target(relu.train_error, cfg.target_error), epochs_to_target(tanh.train_error, cfg.target_error)
    # What the run was (descriptors) goes to the run record; metrics/cifar.json holds results only.
    descriptors = {"dataset": dataset, "train_images": int(data.train_labels.size),
                   "test_images": int(data.test_labels.size), "epochs": cfg.epochs, "target_error": cfg.target_error}
    metrics: dict[str, Any] = {
        "relu_lr": relu.lr,
        "tanh_lr": tanh.lr,
        "relu_epochs_to_target": relu_e,
        "tanh_epochs_to_target": tanh_e,
        # tanh's epochs over ReLU's (the paper: about 6); None when either never reached the target
        "epochs_ratio": round(tanh_e / relu_e, 3) if relu_e and tanh_e else None,
        "relu_final_train_error": relu.train_error[-1] if relu.train_error else None,
        "tanh_final_train_error": tanh.train_error[-1] if tanh.train_error else None,
        "no_lrn_test_error": relu.test_error,
        "lrn_test_error": relu_lrn.test_error,
        # positive: LRN lowers the test error (the paper: 13% -> 11%, a gain of 2 points)
        "lrn_gain": (round(relu.test_error - relu_lrn.test_error, 3)
                     if relu.test_error is not None and relu_lrn.test_error is not None else None),
    }
    rows = [{"activation": r.activation, "lrn": r.lrn, "lr": r.lr, "epoch": i + 1, "train_error": err,
             "chosen": r is relu or r is tanh or r is relu_lrn}
            for r in [*sweeps["relu"], *sweeps["tanh"], relu_lrn] for i, err in enumerate(r.train_error)]
    with atomic_dir(out_dir) as tmp:
        plot_figure1(relu, tanh, cfg.target_error, tmp / FIGURE, "CIFAR-10" if dataset == "cifar10" else "the tiny set")
        pd.DataFrame(rows, columns=["activation", "lrn", "lr", "epoch", "train_error", "chosen"]).to_csv(
            tmp / CURVES, index=False)
    write_json(metrics_path, metrics)
    write_json(run_record, {**descriptors, "seconds": round(time.perf_counter() - start, 2),
                            "device": str(device), "threads": torch.get_num_threads()})
    print(f"Figure 1: ReLU {relu_e} epochs, tanh {tanh_e} epochs to {cfg.target_error:g}% training error "
          f"(ratio {metrics['epochs_ratio']}); test error without LRN {relu.test_error}, with LRN {relu_lrn.test_error}")
    return metrics
