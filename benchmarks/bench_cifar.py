"""Benchmark: the CIFAR-10 stage's training loop in images/s, per net and per CPU numerics option,
against a plain PyTorch loop. Which options the real-data runs use (configs/cifar10*.yaml) comes
from here.

    python benchmarks/bench_cifar.py                 # a few minutes on a 2-core CPU
    python benchmarks/bench_cifar.py --images 3200 --repeat 3 --variants onednn compiled

Nets (width 1, batch 128, on random uint8 32x32 images, one epoch of --images images per run,
the median of --repeat interleaved runs): Figure 1's net in the authors' protocol with its rnorm
layers and in the modern protocol (alexnet.claims.cifar.nets.Figure1Net), and the LRN claim's 11pct net
(locally-connected layers, 24x24 crops and flips), each through alexnet.claims.cifar.training.train_epoch
as the stage runs it. Variants:
  - pinned: oneDNN off (what numerics.bit_identity sets: ATen's im2col + GEMM), channels-last;
  - onednn: oneDNN on (torch's default on x86), channels-last (cifar.channels_last);
  - onednn_nchw: oneDNN on, NCHW memory;
  - compiled: oneDNN on, channels-last, the net under torch.compile (first epoch not timed);
and plain: the textbook loop (a DataLoader over a TensorDataset, NCHW, `loss.item()` every step).
Prints a table and writes benchmarks/results/bench_cifar.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine, timed, write_result

from alexnet.claims.cifar import figure1, lrn
from alexnet.claims.cifar.data import CifarData
from alexnet.claims.cifar.nets import Figure1Net
from alexnet.claims.cifar.training import centred, prepare_inputs, train_epoch
from alexnet.config import CifarConfig

VARIANTS = {"pinned": (False, True, False), "onednn": (True, True, False), "onednn_nchw": (True, False, False),
            "compiled": (True, True, True)}  # name -> (oneDNN, channels-last, torch.compile)


def plain_epoch(images: np.ndarray, labels: np.ndarray) -> None:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() - 128.0
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.from_numpy(labels)),
                                         batch_size=128, shuffle=True)
    net = Figure1Net("relu", input_scale=1 / 64)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for xb, yb in loader:
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()


def loops(data: CifarData, variant: str) -> dict:
    """One timed epoch per net, set up as the stage sets it up under `variant`."""
    mkldnn, channels_last, compiled = VARIANTS[variant]
    cfg = CifarConfig(device="cpu", channels_last=channels_last)
    device = torch.device("cpu")
    inputs = prepare_inputs(data, device, channels_last)
    x = centred(inputs)

    def trainer_for(net_kind: str):
        if net_kind == "11pct":
            t = lrn.conv_local_trainer(cfg, True, 0, device, {"benchmark": "cifar"}, None)
        else:
            protocol, rnorm = ("authors", True) if net_kind == "figure1_authors" else ("modern", False)
            t = figure1.figure1_trainer(CifarConfig(**{**cfg.__dict__, "figure1_protocol": protocol,
                                                       "figure1_rnorm": [rnorm]}), rnorm, "relu", 0.001, 0, device,
                                        {"benchmark": "cifar"}, None)
        if compiled:
            t.net = torch.compile(t.net)
        return t

    def epoch(t, net_kind: str) -> None:
        torch.backends.mkldnn.enabled = mkldnn
        t.run.train_error.clear()  # the same seeded order every time
        if net_kind == "11pct":
            patch, crops = lrn.mean_patch(inputs, cfg.lrn_crop), lrn.crop_views(cfg.lrn_crop)
            train_epoch(t, inputs.train_x, inputs.train_y, cfg.lrn_batch_size, lambda xb, g: crops(xb, g) - patch)
        else:
            train_epoch(t, x, inputs.train_y, cfg.batch_size)

    out = {}
    for net_kind in ("figure1_authors", "figure1_modern", "11pct"):
        t = trainer_for(net_kind)
        if compiled:
            epoch(t, net_kind)  # compilation, not timed
        out[net_kind] = lambda t=t, k=net_kind: epoch(t, k)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3200, help="images per timed epoch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="benchmarks/results/bench_cifar.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.images).astype(np.int64)
    data = CifarData(images, labels, images[:1000], labels[:1000], ())
    runs = {("plain", "figure1_modern"): lambda: plain_epoch(images, labels)}
    for variant in args.variants:
        for net_kind, fn in loops(data, variant).items():
            runs[(variant, net_kind)] = fn
    walls: dict = {k: [] for k in runs}
    for _ in range(args.repeat):  # interleaved, so a neighbour's load hits every loop alike
        for key, fn in runs.items():
            walls[key] += timed(fn, 1)[0]
    rate = {k: args.images / statistics.median(v) for k, v in walls.items()}
    table: dict[str, dict[str, float]] = {}
    for (variant, net_kind), r in rate.items():
        table.setdefault(net_kind, {})[variant] = round(r, 1)
    torch.backends.mkldnn.enabled = True
    result = {"benchmark": "cifar", "images": args.images, "repeat": args.repeat, "images_per_second": table,
              "fastest": {k: max(v, key=v.get) for k, v in table.items()}, "machine": machine(torch.device("cpu"))}
    print(f"{'net':<18}" + "".join(f"{v:>13}" for v in ["plain", *args.variants]))
    for net_kind, row in table.items():
        print(f"{net_kind:<18}" + "".join(f"{row.get(v, float('nan')):>13.0f}" for v in ["plain", *args.variants]))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
